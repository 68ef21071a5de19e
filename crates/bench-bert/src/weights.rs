//! The model's weights, framework-neutral: a Hugging Face BERT safetensors
//! file read once on the host as float32, into the structure both twins
//! build their modules from, so that both start from the same numbers.
//! Each checkpoint name is written once, below, beside the field it fills
//! and the shape `config.json` implies for it.

use std::path::Path;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use model_hub::{WeightPath, WeightTree};

use crate::config::BertConfig;

/// Standard deviation of BERT's initialiser (`initializer_range`), used for
/// the classification head, which no pretrained checkpoint has.
const HEAD_INIT_STD: f32 = 0.02;

/// x W^T + b, W stored [out, in] as PyTorch stores it.
#[derive(Clone, Debug)]
pub struct LinearWeights {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

#[derive(Clone, Debug)]
pub struct LayerNormWeights {
    pub weight: HostTensor,
    pub bias: HostTensor,
}

/// Token, position and token-type tables [rows, hidden], and their norm.
#[derive(Clone, Debug)]
pub struct EmbeddingWeights {
    pub word: HostTensor,
    pub position: HostTensor,
    pub token_type: HostTensor,
    pub norm: LayerNormWeights,
}

/// One post-LN encoder layer.
#[derive(Clone, Debug)]
pub struct LayerWeights {
    pub query: LinearWeights,
    pub key: LinearWeights,
    pub value: LinearWeights,
    pub attention_output: LinearWeights,
    pub attention_norm: LayerNormWeights,
    pub intermediate: LinearWeights,
    pub output: LinearWeights,
    pub output_norm: LayerNormWeights,
}

/// BERT (encoder and pooler) and a sequence-classification head.
#[derive(Clone, Debug)]
pub struct BertWeights {
    pub embeddings: EmbeddingWeights,
    pub layers: Vec<LayerWeights>,
    pub pooler: LinearWeights,
    /// Freshly initialised: no pretrained checkpoint has one.
    pub classifier: LinearWeights,
}

impl BertWeights {
    /// Reads `path` and checks it against `config`: every missing or
    /// mis-shaped tensor is named in one error. Names may carry the
    /// `bert.` prefix (`BertFor*` checkpoints) or not (`BertModel`); old
    /// LayerNorm names (`gamma`, `beta`) are accepted. The classification
    /// head of `labels` classes is seeded by `seed` (see
    /// [`LinearWeights::seeded_head`]).
    pub fn read(path: &Path, config: &BertConfig, labels: usize, seed: u64) -> Result<Self> {
        let tree = WeightTree::from_safetensors(path)
            .with_context(|| format!("reading BERT weights {}", path.display()))?
            .with_names(hugging_face_name)?;
        let weights = Self::load(&tree, config, labels, seed);
        tree.finish_strict(unused_by_the_classifier)?;
        Ok(weights)
    }

    /// Takes every tensor `config` calls for from `tree` (Hugging Face
    /// names without the `bert.` prefix), and seeds the head.
    pub fn load(tree: &WeightTree, config: &BertConfig, labels: usize, seed: u64) -> Self {
        let hidden = config.hidden_size;
        let layers = tree.pp("encoder.layer");
        Self {
            embeddings: EmbeddingWeights::load(tree.pp("embeddings"), config),
            layers: (0..config.num_hidden_layers)
                .map(|i| LayerWeights::load(layers.pp(i), config))
                .collect(),
            pooler: LinearWeights::load(tree.pp("pooler.dense"), hidden, hidden),
            classifier: LinearWeights::seeded_head(hidden, labels, seed),
        }
    }

    /// Parameters held (the head's included), for reports.
    pub fn parameter_count(&self) -> usize {
        let layers = self.layers.iter().flat_map(LayerWeights::tensors);
        self.embeddings
            .tensors()
            .into_iter()
            .chain(layers)
            .chain(self.pooler.tensors())
            .chain(self.classifier.tensors())
            .map(|tensor| tensor.data.len())
            .sum()
    }
}

impl EmbeddingWeights {
    fn load(path: WeightPath, config: &BertConfig) -> Self {
        let hidden = config.hidden_size;
        let table = |name: &str, rows: usize| path.pp(name).get(&[rows, hidden], "weight");
        Self {
            word: table("word_embeddings", config.vocab_size),
            position: table("position_embeddings", config.max_position_embeddings),
            token_type: table("token_type_embeddings", config.type_vocab_size),
            norm: LayerNormWeights::load(path.pp("LayerNorm"), hidden),
        }
    }

    fn tensors(&self) -> Vec<&HostTensor> {
        let tables = [&self.word, &self.position, &self.token_type];
        tables.into_iter().chain(self.norm.tensors()).collect()
    }
}

impl LayerWeights {
    fn load(path: WeightPath, config: &BertConfig) -> Self {
        let (hidden, inner) = (config.hidden_size, config.intermediate_size);
        let attention = path.pp("attention.self");
        let linear = |name: &str, input, output| LinearWeights::load(path.pp(name), input, output);
        Self {
            query: LinearWeights::load(attention.pp("query"), hidden, hidden),
            key: LinearWeights::load(attention.pp("key"), hidden, hidden),
            value: LinearWeights::load(attention.pp("value"), hidden, hidden),
            attention_output: linear("attention.output.dense", hidden, hidden),
            attention_norm: LayerNormWeights::load(path.pp("attention.output.LayerNorm"), hidden),
            intermediate: linear("intermediate.dense", hidden, inner),
            output: linear("output.dense", inner, hidden),
            output_norm: LayerNormWeights::load(path.pp("output.LayerNorm"), hidden),
        }
    }

    fn tensors(&self) -> Vec<&HostTensor> {
        let linears = [
            &self.query,
            &self.key,
            &self.value,
            &self.attention_output,
            &self.intermediate,
            &self.output,
        ];
        let norms = [&self.attention_norm, &self.output_norm];
        let linears = linears.into_iter().flat_map(LinearWeights::tensors);
        linears
            .chain(norms.into_iter().flat_map(LayerNormWeights::tensors))
            .collect()
    }
}

impl LinearWeights {
    fn load(path: WeightPath, input: usize, output: usize) -> Self {
        Self {
            weight: path.get(&[output, input], "weight"),
            bias: path.get(&[output], "bias"),
        }
    }

    /// A fresh classification head [labels, hidden]: normal(0, 0.02)
    /// weight and zero bias, as Hugging Face initialises it, seeded on the
    /// host so that both twins get the same head.
    pub fn seeded_head(hidden: usize, labels: usize, seed: u64) -> Self {
        Self {
            weight: normal(vec![labels, hidden], HEAD_INIT_STD, seed),
            bias: HostTensor {
                shape: vec![labels],
                data: vec![0.0; labels],
            },
        }
    }

    fn tensors(&self) -> [&HostTensor; 2] {
        [&self.weight, &self.bias]
    }
}

impl LayerNormWeights {
    fn load(path: WeightPath, size: usize) -> Self {
        Self {
            weight: path.get(&[size], "weight"),
            bias: path.get(&[size], "bias"),
        }
    }

    fn tensors(&self) -> [&HostTensor; 2] {
        [&self.weight, &self.bias]
    }
}

/// A stored name as the model names it: without the `bert.` prefix, and
/// with `weight`/`bias` for the original release's LayerNorm
/// `gamma`/`beta`.
fn hugging_face_name(stored: &str) -> String {
    let name = stored.strip_prefix("bert.").unwrap_or(stored);
    let renamed = match name.contains("LayerNorm.") {
        true => name
            .strip_suffix(".gamma")
            .map(|base| format!("{base}.weight"))
            .or_else(|| {
                name.strip_suffix(".beta")
                    .map(|base| format!("{base}.bias"))
            }),
        false => None,
    };
    renamed.unwrap_or_else(|| name.to_owned())
}

/// What BERT checkpoints carry that the classifier does not use: the
/// position ids (a buffer), the pretraining heads (`cls.`), and a
/// fine-tuned head (`classifier.`), which the seeded head replaces.
fn unused_by_the_classifier(name: &str) -> bool {
    name == "embeddings.position_ids" || name.starts_with("cls.") || name.starts_with("classifier.")
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
    use crate::config::minilm_like;

    #[test]
    fn the_encoder_asks_for_every_tensor_once_with_its_config_shape() {
        let tree = WeightTree::from_tensors(Default::default(), "nothing");
        let weights = BertWeights::load(&tree, &minilm_like(), 2, 0);
        let requested = tree.requested();
        // 3 embeddings + LayerNorm (2), 16 per layer, pooler (2)
        assert_eq!(requested.len(), 5 + 16 * 6 + 2);
        let shape = |name: &str| {
            let request = requested.iter().find(|r| r.name == name);
            request.unwrap().shape.clone()
        };
        assert_eq!(
            shape("encoder.layer.5.intermediate.dense.weight"),
            [1536, 384]
        );
        assert_eq!(shape("encoder.layer.0.output.dense.weight"), [384, 1536]);
        assert_eq!(shape("embeddings.word_embeddings.weight"), [30522, 384]);
        assert_eq!(weights.classifier.weight.shape, [2, 384]);
        // MiniLM-L6's 22.7M parameters, and the head's 770.
        assert_eq!(weights.parameter_count(), 22_713_216 + 770);
    }

    #[test]
    fn original_release_names_map_to_the_models() {
        assert_eq!(
            hugging_face_name("bert.encoder.layer.1.output.LayerNorm.gamma"),
            "encoder.layer.1.output.LayerNorm.weight"
        );
        assert_eq!(
            hugging_face_name("embeddings.LayerNorm.beta"),
            "embeddings.LayerNorm.bias"
        );
        assert_eq!(
            hugging_face_name("bert.pooler.dense.bias"),
            "pooler.dense.bias"
        );
    }

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
