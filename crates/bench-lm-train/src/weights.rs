//! The one checkpoint that both twins load: every parameter's name, shape
//! and initial distribution (both twins build the same names), seeded
//! initial weights written on the host to a safetensors file, and the
//! checks that make a bad file an error naming the tensor and both shapes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};
use bench_core::host::HostTensor;
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use bench_core::rng::{fnv1a, SplitMix64};

use crate::config::ModelConfig;

/// MLX's default initialisers, which mlx-examples' TransformerLM uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// `nn.Embedding`: normal with standard deviation sqrt(1 / dim).
    Normal { std: f32 },
    /// `nn.Linear`: uniform in [-sqrt(1 / in), sqrt(1 / in)).
    Uniform { bound: f32 },
    /// `nn.LayerNorm` weight.
    Ones,
    /// `nn.LayerNorm` bias.
    Zeros,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ParameterSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// Every trainable parameter, in model order. The names are those of the
/// twins' module trees (and of mlx-examples' TransformerLM, flattened).
pub fn parameter_specs(config: &ModelConfig) -> Vec<ParameterSpec> {
    let (v, d, f) = (config.vocab_size, config.dim, config.ffn_dim);
    let mut specs = vec![spec(
        "embedding.weight",
        &[v, d],
        Init::Normal {
            std: (1.0 / d as f32).sqrt(),
        },
    )];
    for layer in 0..config.layers {
        let name = |rest: &str| format!("layers.{layer}.{rest}");
        specs.extend(layer_norm(&name("ln1"), d));
        // MLX's MultiHeadAttention has no projection biases by default.
        for projection in ["query_proj", "key_proj", "value_proj", "out_proj"] {
            specs.push(spec(
                &name(&format!("attention.{projection}.weight")),
                &[d, d],
                linear_init(d),
            ));
        }
        specs.extend(layer_norm(&name("ln2"), d));
        specs.extend(linear(&name("linear1"), d, f));
        specs.extend(linear(&name("linear2"), f, d));
    }
    specs.extend(layer_norm("ln", d));
    specs.extend(linear("out_proj", d, v));
    specs
}

fn spec(name: &str, shape: &[usize], init: Init) -> ParameterSpec {
    ParameterSpec {
        name: name.to_owned(),
        shape: shape.to_vec(),
        init,
    }
}

fn linear_init(input: usize) -> Init {
    Init::Uniform {
        bound: (1.0 / input as f32).sqrt(),
    }
}

fn linear(prefix: &str, input: usize, output: usize) -> [ParameterSpec; 2] {
    [
        spec(
            &format!("{prefix}.weight"),
            &[output, input],
            linear_init(input),
        ),
        spec(&format!("{prefix}.bias"), &[output], linear_init(input)),
    ]
}

fn layer_norm(prefix: &str, dim: usize) -> [ParameterSpec; 2] {
    [
        spec(&format!("{prefix}.weight"), &[dim], Init::Ones),
        spec(&format!("{prefix}.bias"), &[dim], Init::Zeros),
    ]
}

/// Bump when the way weights are generated changes: cached files of an
/// older version are then not reused.
const GENERATOR_VERSION: u32 = 1;

/// The initial weights of `config` from `seed`, by name. Each tensor's
/// generator is seeded from the seed and the tensor's name, so a value does
/// not depend on which other tensors exist.
pub fn initial_weights(config: &ModelConfig, seed: u64) -> Vec<(String, HostTensor)> {
    parameter_specs(config)
        .into_iter()
        .map(|spec| {
            let tensor = initial_tensor(&spec, seed);
            (spec.name, tensor)
        })
        .collect()
}

fn initial_tensor(spec: &ParameterSpec, seed: u64) -> HostTensor {
    let len = spec.shape.iter().product();
    let mut rng = SplitMix64::new(seed ^ fnv1a(&spec.name));
    let data = match spec.init {
        Init::Ones => vec![1.0; len],
        Init::Zeros => vec![0.0; len],
        Init::Uniform { bound } => (0..len)
            .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32 * bound)
            .collect(),
        Init::Normal { std } => (0..len).map(|_| rng.next_normal() as f32 * std).collect(),
    };
    HostTensor {
        shape: spec.shape.clone(),
        data,
    }
}

/// Writes float32 tensors to a safetensors file.
pub fn write_checkpoint(path: &Path, tensors: &[(String, HostTensor)]) -> Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, tensor)| {
            let bytes = tensor.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.clone(), bytes, tensor.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, bytes, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .with_context(|| format!("tensor '{name}' for {}", path.display()))?;
            Ok((name.as_str(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = HashMap::from([(
        "generator".to_owned(),
        format!("bench-lm-train v{GENERATOR_VERSION}"),
    )]);
    safetensors::serialize_to_file(views, Some(metadata), path)
        .with_context(|| format!("writing checkpoint {}", path.display()))
}

/// The checkpoint of `config` and `seed`, generated on first use and kept
/// in the temporary directory (the paper preset's is 0.9 GB: generating it
/// every run would be wasted minutes). Written to a private name and then
/// renamed, so concurrent runs never read a half-written file.
pub fn cached_checkpoint(config: &ModelConfig, seed: u64) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join("mlx-vs-torch");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let key = format!(
        "v{GENERATOR_VERSION} vocab {} layers {} dim {} heads {} ffn {} seed {seed}",
        config.vocab_size, config.layers, config.dim, config.heads, config.ffn_dim
    );
    let path = dir.join(format!("lm-train-{:016x}.safetensors", fnv1a(&key)));
    if path.is_file() {
        return Ok(path);
    }
    // Unique per process and call: tests generate the same file from
    // several threads at once.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let partial = dir.join(format!(
        "lm-train-{:016x}.{}-{}.partial",
        fnv1a(&key),
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    ));
    write_checkpoint(&partial, &initial_weights(config, seed))?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("moving {} to {}", partial.display(), path.display()))?;
    Ok(path)
}

/// The error for a tensor that the model needs and the file lacks.
pub fn missing_tensor(path: &Path, name: &str, expected: &[usize]) -> anyhow::Error {
    anyhow::anyhow!(
        "checkpoint {} has no tensor '{name}' (the model needs shape {expected:?})",
        path.display()
    )
}

/// Fails unless the file's tensor has the shape the model expects.
pub fn check_shape(path: &Path, name: &str, expected: &[usize], actual: &[usize]) -> Result<()> {
    if expected != actual {
        bail!(
            "checkpoint {}: tensor '{name}' has shape {actual:?}, the model expects {expected:?}",
            path.display()
        );
    }
    Ok(())
}

/// Fails when the file has tensors the model does not use (a checkpoint of
/// another configuration, e.g. more layers).
pub fn check_all_used(path: &Path, mut unused: Vec<String>) -> Result<()> {
    if unused.is_empty() {
        return Ok(());
    }
    unused.sort();
    let mut list = String::new();
    for name in unused.iter().take(5) {
        let _ = write!(list, " '{name}'");
    }
    bail!(
        "checkpoint {} has {} tensor(s) the model does not have:{list}{}",
        path.display(),
        unused.len(),
        if unused.len() > 5 { " ..." } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_layers() -> ModelConfig {
        ModelConfig {
            vocab_size: 10,
            layers: 2,
            dim: 8,
            heads: 2,
            ffn_dim: 16,
            context: 4,
            dropout: 0.0,
        }
    }

    #[test]
    fn names_and_shapes_follow_the_module_tree() {
        let specs = parameter_specs(&two_layers());
        // embedding + 2 x (2 norms x 2 + 4 projections + 2 linears x 2) + norm + output
        assert_eq!(specs.len(), 1 + 2 * 12 + 2 + 2);
        let find = |name: &str| specs.iter().find(|s| s.name == name).unwrap();
        assert_eq!(find("embedding.weight").shape, vec![10, 8]);
        assert_eq!(find("layers.1.linear1.weight").shape, vec![16, 8]);
        assert_eq!(find("layers.1.linear2.bias").shape, vec![8]);
        assert_eq!(find("layers.0.attention.key_proj.weight").shape, vec![8, 8]);
        assert_eq!(find("out_proj.weight").shape, vec![10, 8]);
        assert_eq!(find("ln.weight").init, Init::Ones);
        // 80 + 2 x (16 + 4 x 64 + 16 + 144 + 136) + 16 + 90
        assert_eq!(two_layers().parameter_count(), 1322);
    }

    fn tiny() -> ModelConfig {
        ModelConfig {
            vocab_size: 50,
            layers: 1,
            dim: 16,
            heads: 2,
            ffn_dim: 32,
            context: 4,
            dropout: 0.0,
        }
    }

    #[test]
    fn weights_follow_their_distributions_and_the_seed() {
        let weights = initial_weights(&tiny(), 7);
        assert_eq!(weights, initial_weights(&tiny(), 7));
        assert_ne!(weights, initial_weights(&tiny(), 8));
        let get = |name: &str| &weights.iter().find(|(n, _)| n == name).unwrap().1;
        let bound = (1.0f32 / 16.0).sqrt();
        let linear = get("layers.0.linear1.weight");
        assert!(linear.data.iter().all(|x| x.abs() <= bound));
        let embedding = get("embedding.weight");
        let mean = embedding.data.iter().sum::<f32>() / embedding.data.len() as f32;
        let var = embedding
            .data
            .iter()
            .map(|x| (x - mean).powi(2))
            .sum::<f32>()
            / embedding.data.len() as f32;
        // 800 samples of N(0, 1/16): the sample std is within 10% of 0.25
        assert!((var.sqrt() - 0.25).abs() < 0.025, "std {}", var.sqrt());
        assert!(get("ln.weight").data.iter().all(|&x| x == 1.0));
    }

    #[test]
    fn shape_errors_name_the_tensor_and_both_shapes() {
        let path = Path::new("/x/model.safetensors");
        let error = check_shape(path, "ln.bias", &[16], &[8])
            .unwrap_err()
            .to_string();
        assert!(error.contains("'ln.bias'") && error.contains("[8]") && error.contains("[16]"));
        assert!(error.contains("/x/model.safetensors"), "{error}");
        assert!(check_shape(path, "ln.bias", &[16], &[16]).is_ok());
        let error = check_all_used(path, vec!["layers.9.ln1.bias".into()]).unwrap_err();
        assert!(error.to_string().contains("'layers.9.ln1.bias'"), "{error}");
    }
}
