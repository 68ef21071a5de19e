//! The model's weights, framework-neutral: each checkpoint name is
//! written once, below, beside the field it fills and the shape the config
//! implies for it. Both twins take the same float32 host tensors from a
//! [`TensorSource`] (Hub safetensors or seeded random weights), one at a
//! time, and upload each as it comes (so that a 1.1B-parameter model never
//! sits in memory twice over).

use anyhow::{bail, Result};
use bench_core::host::HostTensor;
use bench_core::rng::{draw_at, fnv1a};
use model_hub::{Init, TensorSource, WeightPath, WeightTree};

use crate::config::LlamaConfig;

/// Standard deviation of random projection weights (Llama's
/// `initializer_range`).
pub const RANDOM_WEIGHT_STD: f32 = 0.02;

/// Llama's weights, each a `T`: a host tensor, or a twin's device array
/// uploaded as soon as it was read.
pub struct LlamaWeights<T> {
    pub embed_tokens: T,
    pub layers: Vec<DecoderWeights<T>>,
    pub norm: T,
    /// None: tied to `embed_tokens` (`tie_word_embeddings`).
    pub lm_head: Option<T>,
}

/// One decoder layer; projections are [out, in], as PyTorch stores them.
pub struct DecoderWeights<T> {
    pub input_layernorm: T,
    pub q_proj: T,
    pub k_proj: T,
    pub v_proj: T,
    pub o_proj: T,
    pub post_attention_layernorm: T,
    pub gate_proj: T,
    pub up_proj: T,
    pub down_proj: T,
}

impl<T> LlamaWeights<T> {
    /// Every weight `config` calls for from `source`, each passed through
    /// `upload` as soon as it is read; one error names every missing or
    /// mis-shaped tensor, and any stored tensor the model does not use.
    pub fn from_source(
        source: &dyn TensorSource,
        config: &LlamaConfig,
        upload: impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let tree = WeightTree::new(source);
        let weights = Self::load(&tree, config, upload)?;
        tree.finish_strict(|name| unused_by_llama(name, config))?;
        Ok(weights)
    }

    /// Takes every weight `config` calls for from `tree`, in Hugging Face's
    /// names (those of `LlamaForCausalLM` safetensors).
    pub fn load(
        tree: &WeightTree,
        config: &LlamaConfig,
        mut upload: impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let (vocab, hidden) = (config.vocab_size, config.hidden_size);
        let model = tree.pp("model");
        let layers = model.pp("layers");
        Ok(Self {
            embed_tokens: upload(model.pp("embed_tokens").get(&[vocab, hidden], "weight"))?,
            layers: (0..config.num_layers)
                .map(|i| DecoderWeights::load(layers.pp(i), config, &mut upload))
                .collect::<Result<_>>()?,
            norm: upload(model.pp("norm").get_init(&[hidden], "weight", Init::Ones))?,
            lm_head: match config.tie_word_embeddings {
                true => None,
                false => Some(upload(tree.pp("lm_head").get(&[vocab, hidden], "weight"))?),
            },
        })
    }
}

impl<T> DecoderWeights<T> {
    fn load(
        path: WeightPath,
        config: &LlamaConfig,
        upload: &mut impl FnMut(HostTensor) -> Result<T>,
    ) -> Result<Self> {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let q = config.num_heads * config.head_dim;
        let kv = config.num_kv_heads * config.head_dim;
        let norm = |name: &str| path.pp(name).get_init(&[hidden], "weight", Init::Ones);
        let (attention, mlp) = (path.pp("self_attn"), path.pp("mlp"));
        let projection = |path: &WeightPath, name: &str, output, input| {
            path.pp(name).get(&[output, input], "weight")
        };
        Ok(Self {
            input_layernorm: upload(norm("input_layernorm"))?,
            q_proj: upload(projection(&attention, "q_proj", q, hidden))?,
            k_proj: upload(projection(&attention, "k_proj", kv, hidden))?,
            v_proj: upload(projection(&attention, "v_proj", kv, hidden))?,
            o_proj: upload(projection(&attention, "o_proj", hidden, q))?,
            post_attention_layernorm: upload(norm("post_attention_layernorm"))?,
            gate_proj: upload(projection(&mlp, "gate_proj", inner, hidden))?,
            up_proj: upload(projection(&mlp, "up_proj", inner, hidden))?,
            down_proj: upload(projection(&mlp, "down_proj", hidden, inner))?,
        })
    }
}

/// What Llama checkpoints may carry that the model does not use: rotary
/// frequency buffers (older exports), and a tied head's stored copy.
fn unused_by_llama(name: &str, config: &LlamaConfig) -> bool {
    name.ends_with(".rotary_emb.inv_freq")
        || (config.tie_word_embeddings && name == "lm_head.weight")
}

/// Seeded random weights: projections normal with std 0.02, RMSNorm scales
/// one (`Init::Ones`). Every element is a function of (seed, tensor name, index) alone, so
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

/// Generates any tensor asked for, of the shape asked for.
impl TensorSource for RandomWeights {
    fn stored(&self) -> Vec<(String, Vec<usize>)> {
        Vec::new()
    }

    fn shape(&self, _: &str, expected: &[usize]) -> Option<Vec<usize>> {
        Some(expected.to_vec())
    }

    fn read(&self, name: &str, shape: &[usize], init: Init) -> Result<HostTensor> {
        let elements = shape.iter().product();
        let data = match init {
            Init::Ones => vec![1.0; elements],
            Init::Normal => normal_values(elements, self.seed ^ fnv1a(name), self.std),
            // Llama's loader asks for norms (ones) and normal matrices only;
            // the other hints belong to models with their own generator.
            other => bail!("{name}: random Llama weights have no {other:?} initialiser"),
        };
        HostTensor::new(shape.to_vec(), data)
    }

    fn origin(&self) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(tied: bool) -> LlamaConfig {
        let json = format!(
            r#"{{"hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
                "rms_norm_eps": 1e-5, "max_position_embeddings": 64,
                "tie_word_embeddings": {tied}}}"#
        );
        LlamaConfig::from_json(&json, "tiny").unwrap()
    }

    #[test]
    fn the_parameter_count_is_what_loading_asks_for() {
        for tied in [false, true] {
            let config = tiny(tied);
            let tree = WeightTree::new(RandomWeights::new(0));
            LlamaWeights::load(&tree, &config, |tensor| Ok(tensor.data.len())).unwrap();
            let requested = tree.requested();
            let asked: usize = requested
                .iter()
                .map(|r| r.shape.iter().product::<usize>())
                .sum();
            assert_eq!(config.parameter_count(), asked);
            assert_eq!(requested.len(), 1 + 2 * 9 + 1 + usize::from(!tied));
        }
    }

    #[test]
    fn norms_start_at_one_and_projections_are_random() {
        let tree = WeightTree::new(RandomWeights::new(3));
        let weights = LlamaWeights::load(&tree, &tiny(false), Ok).unwrap();
        assert!(weights.norm.data.iter().all(|&v| v == 1.0));
        let q = &weights.layers[1].q_proj;
        assert_eq!(q.shape, [64, 64]);
        assert!(q.data.iter().any(|&v| v != 0.0));
        tree.finish_strict(|_| false).unwrap();
    }

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

    #[test]
    fn hints_llama_does_not_use_are_errors() {
        let random = RandomWeights::new(1);
        for init in [
            Init::Zeros,
            Init::Uniform { bound: 0.5 },
            Init::NormalStd { std: 3.0 },
        ] {
            let error = random.read("w", &[10], init).unwrap_err().to_string();
            assert!(error.contains("w: random Llama weights have no"), "{error}");
        }
    }
}
