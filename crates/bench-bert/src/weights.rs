//! The framework-neutral checkpoint reader: one Hugging Face BERT
//! safetensors file, checked against its `config.json`, read once on the
//! host and handed to both twins, so that both start from the same numbers.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bench_core::host::HostTensor;
use safetensors::SafeTensors;

use crate::config::BertConfig;

/// Names of the sequence-classification head, as in Hugging Face's
/// `BertForSequenceClassification`.
pub const CLASSIFIER_WEIGHT: &str = "classifier.weight";
pub const CLASSIFIER_BIAS: &str = "classifier.bias";

/// Standard deviation of BERT's initialiser (`initializer_range`), used for
/// the classification head, which no pretrained checkpoint has.
const HEAD_INIT_STD: f32 = 0.02;

/// Every tensor the twins need, float32 on the host, by Hugging Face name
/// without the `bert.` prefix.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    tensors: HashMap<String, HostTensor>,
}

impl Checkpoint {
    /// Reads `path`, maps its names, and checks that every tensor `config`
    /// calls for is there with its shape, before anything is converted.
    /// Names may carry the `bert.` prefix (`BertFor*` checkpoints) or not
    /// (`BertModel`); old LayerNorm names (`gamma`, `beta`) are accepted.
    /// Other tensors (`embeddings.position_ids`, pretraining heads) are
    /// ignored.
    pub fn read(path: &Path, config: &BertConfig) -> Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading BERT weights {}", path.display()))?;
        let file = SafeTensors::deserialize(&bytes)
            .with_context(|| format!("{}: not a safetensors file", path.display()))?;
        let names = hugging_face_names(&file, path)?;
        let expected = config.expected_tensors();
        check_presence(&names, &expected, path)?;
        let mut tensors = HashMap::with_capacity(expected.len());
        for (name, shape) in expected {
            let stored = &names[&name];
            let view = file.tensor(stored)?;
            if view.shape() != shape.as_slice() {
                bail!(
                    "{}: tensor {stored} has shape {:?}, expected {shape:?} (from config.json)",
                    path.display(),
                    view.shape()
                );
            }
            let data = model_hub::floats::to_f32(view.dtype(), view.data())
                .with_context(|| format!("{}: tensor {stored}", path.display()))?;
            tensors.insert(name, HostTensor::new(shape, data)?);
        }
        Ok(Self { tensors })
    }

    /// Adds a freshly initialised classification head (normal(0, 0.02)
    /// weight, zero bias, as Hugging Face initialises it), seeded on the
    /// host so that both twins get the same head.
    pub fn add_classifier(&mut self, hidden_size: usize, labels: usize, seed: u64) {
        let weight = normal(vec![labels, hidden_size], HEAD_INIT_STD, seed);
        let bias = HostTensor {
            shape: vec![labels],
            data: vec![0.0; labels],
        };
        self.tensors.insert(CLASSIFIER_WEIGHT.to_owned(), weight);
        self.tensors.insert(CLASSIFIER_BIAS.to_owned(), bias);
    }

    /// The tensor `name` (Hugging Face name without the `bert.` prefix).
    pub fn get(&self, name: &str) -> Result<&HostTensor> {
        self.tensors
            .get(name)
            .with_context(|| format!("the checkpoint has no tensor {name}"))
    }

    /// Parameters held, for reports.
    pub fn parameter_count(&self) -> usize {
        self.tensors.values().map(|t| t.data.len()).sum()
    }
}

/// Maps each stored tensor name to its Hugging Face name without the
/// `bert.` prefix and with `weight`/`bias` for LayerNorm.
fn hugging_face_names(file: &SafeTensors, path: &Path) -> Result<HashMap<String, String>> {
    let mut names: HashMap<String, String> = HashMap::new();
    for stored in file.names() {
        let mut name = stored.strip_prefix("bert.").unwrap_or(stored).to_owned();
        if name.contains("LayerNorm.") {
            if let Some(base) = name.strip_suffix(".gamma") {
                name = format!("{base}.weight");
            } else if let Some(base) = name.strip_suffix(".beta") {
                name = format!("{base}.bias");
            }
        }
        if let Some(other) = names.insert(name.clone(), stored.to_owned()) {
            bail!(
                "{}: tensors {other} and {stored} both name {name}",
                path.display()
            );
        }
    }
    Ok(names)
}

/// Names every missing tensor (up to a few) with its expected shape.
fn check_presence(
    names: &HashMap<String, String>,
    expected: &[(String, Vec<usize>)],
    path: &Path,
) -> Result<()> {
    let missing: Vec<String> = expected
        .iter()
        .filter(|(name, _)| !names.contains_key(name))
        .map(|(name, shape)| format!("tensor {name} is missing (expected shape {shape:?})"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let shown = missing
        .iter()
        .take(5)
        .cloned()
        .collect::<Vec<_>>()
        .join("; ");
    let more = match missing.len() {
        n if n > 5 => format!("; and {} more", n - 5),
        _ => String::new(),
    };
    bail!(
        "{}: {shown}{more} (of {} tensors config.json calls for; the file holds {})",
        path.display(),
        expected.len(),
        names.len()
    )
}

/// Normal(0, std) values from the suite's seeded uniform generator
/// (Box-Muller), identical on every platform.
pub fn normal(shape: Vec<usize>, std: f32, seed: u64) -> HostTensor {
    let len: usize = shape.iter().product();
    let uniform = HostTensor::uniform(vec![2 * len], seed).data;
    let data = uniform
        .chunks_exact(2)
        .map(|pair| {
            // 1 - u lies in (0, 1], so the logarithm is finite.
            let radius = (-2.0 * (1.0 - pair[0]).ln()).sqrt();
            radius * (std::f32::consts::TAU * pair[1]).cos() * std
        })
        .collect();
    HostTensor { shape, data }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_the_asked_spread() {
        let values = normal(vec![20_000], 0.02, 5).data;
        let mean = values.iter().sum::<f32>() / values.len() as f32;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
        assert!(mean.abs() < 1e-3, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 1e-3, "std {}", var.sqrt());
        assert_eq!(values, normal(vec![20_000], 0.02, 5).data);
    }
}
