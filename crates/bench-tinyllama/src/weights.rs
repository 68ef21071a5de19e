//! Where the weights come from, framework-neutral: both twins take the
//! same float32 host tensors, one at a time (so that a 1.1B-parameter
//! model never sits in memory twice over), and upload them.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{ensure, Context, Result};
use bench_core::host::HostTensor;
use bench_core::rng::{draw_at, fnv1a};
use safetensors::tensor::TensorInfo;

use crate::config::{TensorKind, TensorSpec};

/// Standard deviation of random projection weights (Llama's
/// `initializer_range`).
pub const RANDOM_WEIGHT_STD: f32 = 0.02;

/// A source of named weight tensors.
pub trait WeightSource {
    /// The tensor `spec` names, as float32, checked against its shape.
    fn load(&self, spec: &TensorSpec) -> Result<HostTensor>;
    /// For every result row: "random weights (seed N)" or "hub:<repo>".
    fn description(&self) -> String;
}

/// Seeded random weights: projections normal with std 0.02, RMSNorm scales
/// one. Every element is a function of (seed, tensor name, index) alone, so
/// any process, thread count or loading order gives the same numbers.
#[derive(Clone, Debug)]
pub struct RandomWeights {
    pub seed: u64,
    /// Standard deviation of the projections and embeddings.
    pub std: f32,
}

impl RandomWeights {
    /// Llama's initialisation: std 0.02.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            std: RANDOM_WEIGHT_STD,
        }
    }
}

impl WeightSource for RandomWeights {
    fn load(&self, spec: &TensorSpec) -> Result<HostTensor> {
        let data = match spec.kind {
            TensorKind::Norm => vec![1.0; spec.elements()],
            TensorKind::Matrix => {
                normal_values(spec.elements(), self.seed ^ fnv1a(&spec.name), self.std)
            }
        };
        HostTensor::new(spec.shape.clone(), data)
    }

    fn description(&self) -> String {
        if self.std == RANDOM_WEIGHT_STD {
            format!("random weights (seed {})", self.seed)
        } else {
            format!("random weights (seed {}, std {})", self.seed, self.std)
        }
    }
}

/// `len` normal values (Box-Muller on two 24-bit uniforms per 64-bit draw),
/// filled by all cores: TinyLlama has 1.1 billion of them.
pub fn normal_values(len: usize, key: u64, std: f32) -> Vec<f32> {
    let mut data = vec![0.0f32; len];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    // Chunks of whole pairs, so each pair's two values come from one draw.
    let chunk = len.div_ceil(threads).div_ceil(2).max(1) * 2;
    std::thread::scope(|scope| {
        for (index, part) in data.chunks_mut(chunk).enumerate() {
            scope.spawn(move || {
                let first_pair = (index * chunk / 2) as u64;
                for (pair, values) in part.chunks_mut(2).enumerate() {
                    let bits = draw_at(key.wrapping_add(first_pair + pair as u64).wrapping_add(1));
                    let scale = 1.0 / (1u32 << 24) as f32;
                    // u1 in (0, 1] keeps ln finite; u2 in [0, 1).
                    let u1 = ((bits >> 40) as f32 + 1.0) * scale;
                    let u2 = (bits & 0xFF_FFFF) as f32 * scale;
                    let radius = (-2.0 * u1.ln()).sqrt() * std;
                    let (sin, cos) = (std::f32::consts::TAU * u2).sin_cos();
                    values[0] = radius * cos;
                    if let Some(second) = values.get_mut(1) {
                        *second = radius * sin;
                    }
                }
            });
        }
    });
    data
}

/// Weights in Hugging Face safetensors files: one `model.safetensors`, or
/// the shards that `model.safetensors.index.json` lists. Only the headers
/// are read up front; each tensor is read from disk when asked for.
#[derive(Debug)]
pub struct SafetensorsWeights {
    tensors: HashMap<String, StoredTensor>,
    origin: String,
}

#[derive(Debug)]
struct StoredTensor {
    file: PathBuf,
    /// Where the tensor's bytes start in the file.
    data_start: u64,
    info: TensorInfo,
}

impl SafetensorsWeights {
    /// Reads the headers of `files`; `origin` names the source in rows.
    pub fn open(files: &[PathBuf], origin: &str) -> Result<Self> {
        let mut tensors = HashMap::new();
        for file in files {
            let (data_start, infos) = read_header(file)?;
            for (name, info) in infos {
                tensors.insert(
                    name,
                    StoredTensor {
                        file: file.clone(),
                        data_start,
                        info,
                    },
                );
            }
        }
        Ok(Self {
            tensors,
            origin: origin.to_owned(),
        })
    }

    /// The shard files named by a `model.safetensors.index.json`.
    pub fn shards_of_index(index: &Path) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Index {
            weight_map: HashMap<String, String>,
        }
        let text = std::fs::read_to_string(index)
            .with_context(|| format!("reading {}", index.display()))?;
        let parsed: Index = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a safetensors index", index.display()))?;
        let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
        shards.sort();
        shards.dedup();
        Ok(shards)
    }
}

impl WeightSource for SafetensorsWeights {
    fn load(&self, spec: &TensorSpec) -> Result<HostTensor> {
        let stored = self.tensors.get(&spec.name).with_context(|| {
            format!(
                "weights from {}: no tensor {} (expected shape {:?})",
                self.origin, spec.name, spec.shape
            )
        })?;
        ensure!(
            stored.info.shape == spec.shape,
            "weights from {}: tensor {} has shape {:?}, the config implies {:?}",
            self.origin,
            spec.name,
            stored.info.shape,
            spec.shape
        );
        let (start, end) = stored.info.data_offsets;
        let mut bytes = vec![0u8; end - start];
        let mut file = File::open(&stored.file)
            .with_context(|| format!("opening {}", stored.file.display()))?;
        file.seek(SeekFrom::Start(stored.data_start + start as u64))
            .and_then(|_| file.read_exact(&mut bytes))
            .with_context(|| format!("reading {} from {}", spec.name, stored.file.display()))?;
        let data = model_hub::floats::to_f32(stored.info.dtype, &bytes)
            .with_context(|| format!("tensor {} in {}", spec.name, stored.file.display()))?;
        HostTensor::new(spec.shape.clone(), data)
    }

    fn description(&self) -> String {
        self.origin.clone()
    }
}

/// The tensor table of a safetensors file and where its data begins.
fn read_header(path: &Path) -> Result<(u64, Vec<(String, TensorInfo)>)> {
    let context = || format!("reading the safetensors header of {}", path.display());
    let mut file = File::open(path).with_context(context)?;
    let mut length = [0u8; 8];
    file.read_exact(&mut length).with_context(context)?;
    let length = u64::from_le_bytes(length);
    ensure!(
        length < 100_000_000,
        "{}: header length {length} is not plausible",
        path.display()
    );
    let mut header = vec![0u8; length as usize];
    file.read_exact(&mut header).with_context(context)?;
    let entries: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).with_context(context)?;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, value) in entries {
        if name == "__metadata__" {
            continue;
        }
        let info: TensorInfo = serde_json::from_value(value)
            .with_context(|| format!("{}: entry {name} is not a tensor", path.display()))?;
        tensors.push((name, info));
    }
    Ok((8 + length, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_weights_are_normal_with_the_asked_spread() {
        let values = normal_values(200_001, 5, 0.02);
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (v as f64 - mean).powi(2))
            .sum::<f64>()
            / n;
        assert!(mean.abs() < 2e-4, "mean {mean}");
        assert!((var.sqrt() - 0.02).abs() < 2e-4, "std {}", var.sqrt());
        // seeded and stream-separated
        assert_eq!(values[..100], normal_values(100, 5, 0.02)[..]);
        assert_ne!(values[..100], normal_values(100, 6, 0.02)[..]);
    }
}
