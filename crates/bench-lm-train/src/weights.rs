//! The one checkpoint that both twins load, each name written once: the
//! typed [`LmWeights`] asks a model_hub [`WeightTree`] for every parameter
//! beside the field it fills, with the shape the config implies and MLX's
//! initialiser as the hint. The seeded initial weights come through that
//! same loader from a generator ([`SeededInit`]) and are written to one
//! safetensors file; the twins read the file back through the loader again,
//! strictly, so a missing, mis-shaped or unexpected tensor is one error
//! naming the file, the tensor and both shapes.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;
use bench_core::rng::{fnv1a, SplitMix64};
use model_hub::{Init, TensorSource, WeightPath, WeightTree};
use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::config::ModelConfig;

/// mlx-examples' TransformerLM's parameters, each a `T`: a host tensor, or
/// a twin's device array uploaded as it was read. The field names are the
/// module tree's (flattened, they are the checkpoint's names).
#[derive(Debug)]
pub struct LmWeights<T> {
    /// [vocab, dim].
    pub embedding: T,
    pub layers: Vec<BlockWeights<T>>,
    pub ln: LayerNormWeights<T>,
    /// [vocab, dim] and [vocab]: not tied to the embedding.
    pub out_proj: LinearWeights<T>,
}

/// A pre-norm block (MLX's `TransformerEncoderLayer`).
#[derive(Debug)]
pub struct BlockWeights<T> {
    pub ln1: LayerNormWeights<T>,
    pub attention: AttentionWeights<T>,
    pub ln2: LayerNormWeights<T>,
    pub linear1: LinearWeights<T>,
    pub linear2: LinearWeights<T>,
}

/// The projections [dim, dim]; MLX's MultiHeadAttention has no biases by
/// default.
#[derive(Debug)]
pub struct AttentionWeights<T> {
    pub query_proj: T,
    pub key_proj: T,
    pub value_proj: T,
    pub out_proj: T,
}

/// x W^T + b, W stored [out, in] as both frameworks store it.
#[derive(Debug)]
pub struct LinearWeights<T> {
    pub weight: T,
    pub bias: T,
}

#[derive(Debug)]
pub struct LayerNormWeights<T> {
    pub weight: T,
    pub bias: T,
}

/// Weights read through a tree, with the names the loader asked for.
pub struct NamedWeights<T> {
    pub weights: LmWeights<T>,
    pub names: ParameterNames,
}

/// Each parameter's checkpoint name, in loading order: what [`LmWeights::load`]
/// asked its tree for, so that no name is written anywhere else.
#[derive(Clone, Debug)]
pub struct ParameterNames(Vec<String>);

impl<T> LmWeights<T> {
    /// Reads the checkpoint `path` for `config`, each tensor passed through
    /// `upload` as it is read; strict: a tensor the model does not have is
    /// an error too (a checkpoint of another configuration).
    pub fn read(
        path: &Path,
        config: &ModelConfig,
        upload: impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<NamedWeights<T>> {
        let tree = WeightTree::from_safetensors(path)
            .with_context(|| format!("reading lm-train checkpoint {}", path.display()))?;
        let named = Self::load_named(&tree, config, upload)?;
        tree.finish_strict(|_| false)?;
        Ok(named)
    }

    /// Takes every parameter `config` calls for from `tree`, each hinted
    /// with MLX's default initialiser (for a generator).
    pub fn load(
        tree: &WeightTree,
        config: &ModelConfig,
        mut upload: impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let (vocab, dim) = (config.vocab_size, config.dim);
        // nn.Embedding: normal with standard deviation sqrt(1 / dim).
        let table = Init::NormalStd {
            std: (1.0 / dim as f32).sqrt(),
        };
        let layers = tree.pp("layers");
        Ok(Self {
            embedding: upload(
                tree.pp("embedding")
                    .get_init(&[vocab, dim], "weight", table),
            )?,
            layers: (0..config.layers)
                .map(|i| BlockWeights::load(layers.pp(i), config, &mut upload))
                .collect::<Result<_>>()?,
            ln: LayerNormWeights::load(tree.pp("ln"), dim, &mut upload)?,
            out_proj: LinearWeights::load(tree.pp("out_proj"), dim, vocab, &mut upload)?,
        })
    }

    /// [`load`](Self::load), and the names it asked for.
    fn load_named(
        tree: &WeightTree,
        config: &ModelConfig,
        upload: impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<NamedWeights<T>> {
        let weights = Self::load(tree, config, upload)?;
        let names = tree.requested().into_iter().map(|r| r.name).collect();
        Ok(NamedWeights {
            weights,
            names: ParameterNames(names),
        })
    }

    /// Every tensor, in loading order (the order of [`ParameterNames`]).
    pub fn tensors(&self) -> Vec<&T> {
        let mut tensors = vec![&self.embedding];
        tensors.extend(self.layers.iter().flat_map(BlockWeights::tensors));
        tensors.extend(self.ln.tensors());
        tensors.extend(self.out_proj.tensors());
        tensors
    }
}

impl LmWeights<HostTensor> {
    /// The initial weights of `config` from `seed`: the loader over the
    /// seeded generator, so what is written is what the loader asked for.
    pub fn initial(config: &ModelConfig, seed: u64) -> Result<NamedWeights<HostTensor>> {
        let tree = WeightTree::new(SeededInit { seed });
        let named = Self::load_named(&tree, config, Ok)?;
        tree.finish()?;
        Ok(named)
    }
}

impl<T> BlockWeights<T> {
    fn load(
        path: WeightPath,
        config: &ModelConfig,
        upload: &mut impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let (dim, ffn) = (config.dim, config.ffn_dim);
        Ok(Self {
            ln1: LayerNormWeights::load(path.pp("ln1"), dim, upload)?,
            attention: AttentionWeights::load(path.pp("attention"), dim, upload)?,
            ln2: LayerNormWeights::load(path.pp("ln2"), dim, upload)?,
            linear1: LinearWeights::load(path.pp("linear1"), dim, ffn, upload)?,
            linear2: LinearWeights::load(path.pp("linear2"), ffn, dim, upload)?,
        })
    }

    fn tensors(&self) -> Vec<&T> {
        let mut tensors = self.ln1.tensors();
        tensors.extend(self.attention.tensors());
        tensors.extend(self.ln2.tensors());
        tensors.extend(self.linear1.tensors());
        tensors.extend(self.linear2.tensors());
        tensors
    }
}

impl<T> AttentionWeights<T> {
    fn load(
        path: WeightPath,
        dim: usize,
        upload: &mut impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let mut projection = |name: &str| {
            upload(
                path.pp(name)
                    .get_init(&[dim, dim], "weight", linear_init(dim)),
            )
        };
        Ok(Self {
            query_proj: projection("query_proj")?,
            key_proj: projection("key_proj")?,
            value_proj: projection("value_proj")?,
            out_proj: projection("out_proj")?,
        })
    }

    fn tensors(&self) -> Vec<&T> {
        let projections = [&self.query_proj, &self.key_proj, &self.value_proj];
        projections.into_iter().chain([&self.out_proj]).collect()
    }
}

impl<T> LinearWeights<T> {
    fn load(
        path: WeightPath,
        input: usize,
        output: usize,
        upload: &mut impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let init = linear_init(input);
        Ok(Self {
            weight: upload(path.get_init(&[output, input], "weight", init))?,
            bias: upload(path.get_init(&[output], "bias", init))?,
        })
    }

    fn tensors(&self) -> Vec<&T> {
        vec![&self.weight, &self.bias]
    }
}

impl<T> LayerNormWeights<T> {
    fn load(
        path: WeightPath,
        dim: usize,
        upload: &mut impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        Ok(Self {
            weight: upload(path.get_init(&[dim], "weight", Init::Ones))?,
            bias: upload(path.get_init(&[dim], "bias", Init::Zeros))?,
        })
    }

    fn tensors(&self) -> Vec<&T> {
        vec![&self.weight, &self.bias]
    }
}

/// `nn.Linear`'s weight and bias: uniform in [-sqrt(1 / in), sqrt(1 / in)).
fn linear_init(input: usize) -> Init {
    Init::Uniform {
        bound: (1.0 / input as f32).sqrt(),
    }
}

impl ParameterNames {
    /// `weights`' tensors with their names, in loading order.
    pub fn label<'w, T>(&'w self, weights: &'w LmWeights<T>) -> Result<Vec<(&'w str, &'w T)>> {
        let tensors = weights.tensors();
        ensure!(
            tensors.len() == self.0.len(),
            "{} parameter names for {} tensors: the weights are not of the loaded model",
            self.0.len(),
            tensors.len()
        );
        Ok(self.0.iter().map(String::as_str).zip(tensors).collect())
    }
}

/// MLX's default initialisers, seeded per tensor: each tensor's values come
/// from a SplitMix64 seeded by the seed and the tensor's name, so a value
/// does not depend on which other tensors exist.
#[derive(Clone, Debug)]
pub struct SeededInit {
    pub seed: u64,
}

/// Generates any tensor asked for, of the shape asked for.
impl TensorSource for SeededInit {
    fn origin(&self) -> String {
        format!("seeded initial weights (seed {})", self.seed)
    }

    fn stored(&self) -> Vec<(String, Vec<usize>)> {
        Vec::new()
    }

    fn shape(&self, _: &str, expected: &[usize]) -> Option<Vec<usize>> {
        Some(expected.to_vec())
    }

    fn read(&self, name: &str, shape: &[usize], init: Init) -> Result<HostTensor> {
        let len = shape.iter().product();
        let mut rng = SplitMix64::new(self.seed ^ fnv1a(name));
        let data = match init {
            Init::Ones => vec![1.0; len],
            Init::Zeros => vec![0.0; len],
            Init::Uniform { bound } => (0..len)
                .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32 * bound)
                .collect(),
            Init::NormalStd { std } => (0..len).map(|_| rng.next_normal() as f32 * std).collect(),
            // MLX's initialisers all have a stated spread.
            Init::Normal => bail!("no initialiser: a normal one needs its standard deviation"),
        };
        HostTensor::new(shape.to_vec(), data)
    }
}

/// Bump when the way weights are generated changes: cached files of an
/// older version are then not reused.
const GENERATOR_VERSION: u32 = 1;

/// The initial weights of `config` from `seed`, by name, in loading order.
pub fn initial_weights(config: &ModelConfig, seed: u64) -> Result<Vec<(String, HostTensor)>> {
    let initial = LmWeights::initial(config, seed)?;
    let named = initial.names.label(&initial.weights)?;
    Ok(named
        .into_iter()
        .map(|(name, tensor)| (name.to_owned(), tensor.clone()))
        .collect())
}

/// Writes float32 tensors to a safetensors file.
pub fn write_checkpoint<N, T>(path: &Path, tensors: &[(N, T)]) -> Result<()>
where
    N: AsRef<str>,
    T: Borrow<HostTensor>,
{
    let bytes: Vec<(&str, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, tensor)| {
            let tensor = tensor.borrow();
            let bytes = tensor.data.iter().flat_map(|x| x.to_le_bytes()).collect();
            (name.as_ref(), bytes, tensor.shape.clone())
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, bytes, shape)| {
            let view = TensorView::new(Dtype::F32, shape.clone(), bytes)
                .with_context(|| format!("tensor '{name}' for {}", path.display()))?;
            Ok((*name, view))
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
    let initial = LmWeights::initial(config, seed)?;
    write_checkpoint(&partial, &initial.names.label(&initial.weights)?)?;
    std::fs::rename(&partial, &path)
        .with_context(|| format!("moving {} to {}", partial.display(), path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
        let tree = WeightTree::new(SeededInit { seed: 0 });
        LmWeights::load(&tree, &two_layers(), Ok).unwrap();
        let requested = tree.requested();
        // embedding + 2 x (2 norms x 2 + 4 projections + 2 linears x 2) + norm + output
        assert_eq!(requested.len(), 1 + 2 * 12 + 2 + 2);
        let find = |name: &str| requested.iter().find(|r| r.name == name).unwrap();
        assert_eq!(find("embedding.weight").shape, vec![10, 8]);
        assert_eq!(find("layers.1.linear1.weight").shape, vec![16, 8]);
        assert_eq!(find("layers.1.linear2.bias").shape, vec![8]);
        assert_eq!(find("layers.0.attention.key_proj.weight").shape, vec![8, 8]);
        assert_eq!(find("out_proj.weight").shape, vec![10, 8]);
        assert_eq!(find("ln.weight").init, Init::Ones);
        assert_eq!(find("ln.bias").init, Init::Zeros);
        let asked: usize = requested
            .iter()
            .map(|r| r.shape.iter().product::<usize>())
            .sum();
        // 80 + 2 x (16 + 4 x 64 + 16 + 144 + 136) + 16 + 90
        assert_eq!(asked, 1322);
        assert_eq!(two_layers().parameter_count(), asked);
        tree.finish_strict(|_| false).unwrap();
    }

    #[test]
    fn each_tensor_is_listed_under_the_name_it_was_read_by() {
        // Every stored tensor distinct (filled with its position), so that
        // a name paired with another field's tensor shows.
        let generated = WeightTree::new(SeededInit { seed: 0 });
        LmWeights::load(&generated, &two_layers(), Ok).unwrap();
        let stored: BTreeMap<String, HostTensor> = (generated.requested().into_iter().enumerate())
            .map(|(i, r)| {
                let len = r.shape.iter().product();
                (
                    r.name,
                    HostTensor::new(r.shape, vec![i as f32; len]).unwrap(),
                )
            })
            .collect();
        let tree = WeightTree::from_tensors(stored, "numbered");
        let named = LmWeights::load_named(&tree, &two_layers(), |t| Ok(t.data[0])).unwrap();
        tree.finish_strict(|_| false).unwrap();
        let labelled = named.names.label(&named.weights).unwrap();
        assert_eq!(labelled.len(), 1 + 2 * 12 + 2 + 2);
        for (i, (name, &position)) in labelled.into_iter().enumerate() {
            assert_eq!(position, i as f32, "{name}");
        }
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
        let weights = initial_weights(&tiny(), 7).unwrap();
        assert_eq!(weights, initial_weights(&tiny(), 7).unwrap());
        assert_ne!(weights, initial_weights(&tiny(), 8).unwrap());
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
        assert!(get("ln.bias").data.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn a_bad_file_names_the_file_the_tensor_and_both_shapes() {
        let mut weights = initial_weights(&tiny(), 0).unwrap();
        weights.retain(|(name, _)| name != "ln.weight");
        let short = HostTensor::new(vec![8], vec![0.0; 8]).unwrap();
        let bias = weights.iter_mut().find(|(n, _)| n == "ln.bias").unwrap();
        bias.1 = short.clone();
        weights.push(("layers.9.ln1.bias".into(), short));
        let path = std::env::temp_dir().join(format!(
            "lm-train-{}-bad-unit.safetensors",
            std::process::id()
        ));
        write_checkpoint(&path, &weights).unwrap();
        let error = LmWeights::read(&path, &tiny(), Ok).err().unwrap();
        std::fs::remove_file(&path).unwrap();
        let error = format!("{error:#}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("tensor ln.weight is missing (expected shape [16])"));
        assert!(error.contains("tensor ln.bias has shape [8], expected [16]"));
        assert!(error.contains("tensor layers.9.ln1.bias [8] is not used by the model"));
    }
}
