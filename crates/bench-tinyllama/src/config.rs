//! The model's shape, read from a Llama-family `config.json` (the Hub's, or
//! the built-in copy of TinyLlama's); the tensors it implies are asked for
//! in `weights.rs`.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::Deserialize;

/// TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json, for offline runs: the
/// same text is parsed by the same code as a downloaded one.
pub const TINYLLAMA_CONFIG_JSON: &str = r#"{
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5632,
  "max_position_embeddings": 2048,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 22,
  "num_key_value_heads": 4,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 10000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "use_cache": true,
  "vocab_size": 32000
}"#;

/// The hyper-parameters both twins are built from.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub vocab_size: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub bos_token_id: u32,
    pub eos_token_id: u32,
}

/// The fields of config.json that matter here; serde names a missing one.
#[derive(Deserialize)]
struct RawConfig {
    model_type: Option<String>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    /// Absent in multi-head (non-GQA) configs: as many as query heads.
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    vocab_size: usize,
    rms_norm_eps: f64,
    #[serde(default = "default_rope_theta")]
    rope_theta: f64,
    max_position_embeddings: usize,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    #[serde(default)]
    hidden_act: Option<String>,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    #[serde(default = "default_bos")]
    bos_token_id: u32,
    #[serde(default = "default_eos")]
    eos_token_id: TokenIds,
}

/// Llama 3 configs list several end-of-sequence ids; the first one counts.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenIds {
    One(u32),
    Many(Vec<u32>),
}

fn default_rope_theta() -> f64 {
    10_000.0
}

fn default_bos() -> u32 {
    1
}

fn default_eos() -> TokenIds {
    TokenIds::One(2)
}

impl LlamaConfig {
    /// TinyLlama 1.1B's exact shape (the built-in config.json).
    pub fn tinyllama() -> Self {
        Self::from_json(TINYLLAMA_CONFIG_JSON, "built-in TinyLlama config.json")
            .expect("the built-in config is valid")
    }

    /// Parses a config.json file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses config.json text; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text)
            .with_context(|| format!("{origin} is not a Llama config.json"))?;
        Self::validate(raw).with_context(|| format!("{origin} describes no model this can run"))
    }

    fn validate(raw: RawConfig) -> Result<Self> {
        if let Some(model_type) = &raw.model_type {
            ensure!(
                model_type == "llama",
                "model_type is \"{model_type}\", expected \"llama\""
            );
        }
        if let Some(act) = &raw.hidden_act {
            ensure!(
                act == "silu",
                "hidden_act is \"{act}\"; the Llama MLP here is SwiGLU (silu)"
            );
        }
        ensure!(
            !raw.attention_bias && !raw.mlp_bias,
            "attention_bias / mlp_bias are set; Llama projections here have no bias"
        );
        if let Some(scaling) = raw.rope_scaling.as_ref().filter(|v| !v.is_null()) {
            bail!("rope_scaling {scaling} is not supported (plain RoPE only)");
        }
        let positive = [
            ("hidden_size", raw.hidden_size),
            ("intermediate_size", raw.intermediate_size),
            ("num_hidden_layers", raw.num_hidden_layers),
            ("num_attention_heads", raw.num_attention_heads),
            ("vocab_size", raw.vocab_size),
            ("max_position_embeddings", raw.max_position_embeddings),
        ];
        for (name, value) in positive {
            ensure!(value > 0, "{name} is 0");
        }
        let num_kv_heads = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        ensure!(
            num_kv_heads > 0 && raw.num_attention_heads.is_multiple_of(num_kv_heads),
            "num_attention_heads ({}) is not a multiple of num_key_value_heads ({num_kv_heads})",
            raw.num_attention_heads
        );
        let head_dim = match raw.head_dim {
            Some(dim) => dim,
            None => {
                ensure!(
                    raw.hidden_size.is_multiple_of(raw.num_attention_heads),
                    "hidden_size ({}) is not a multiple of num_attention_heads ({})",
                    raw.hidden_size,
                    raw.num_attention_heads
                );
                raw.hidden_size / raw.num_attention_heads
            }
        };
        ensure!(
            head_dim > 0 && head_dim % 2 == 0,
            "head_dim ({head_dim}) must be even for rotary embeddings"
        );
        ensure!(
            raw.rms_norm_eps > 0.0 && raw.rope_theta > 0.0,
            "rms_norm_eps and rope_theta must be positive"
        );
        let eos_token_id = match raw.eos_token_id {
            TokenIds::One(id) => id,
            TokenIds::Many(ids) => *ids.first().context("eos_token_id is an empty list")?,
        };
        Ok(Self {
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_layers: raw.num_hidden_layers,
            num_heads: raw.num_attention_heads,
            num_kv_heads,
            head_dim,
            vocab_size: raw.vocab_size,
            rms_norm_eps: raw.rms_norm_eps,
            rope_theta: raw.rope_theta,
            max_position_embeddings: raw.max_position_embeddings,
            tie_word_embeddings: raw.tie_word_embeddings,
            bos_token_id: raw.bos_token_id,
            eos_token_id,
        })
    }

    /// Number of weights (1.1 billion for TinyLlama): the shapes that
    /// `LlamaWeights::load` asks for, summed (a test checks the two agree).
    pub fn parameter_count(&self) -> usize {
        let (hidden, inner) = (self.hidden_size, self.intermediate_size);
        let q = self.num_heads * self.head_dim;
        let kv = self.num_kv_heads * self.head_dim;
        let table = self.vocab_size * hidden;
        let attention = 2 * q * hidden + 2 * kv * hidden;
        let layer = 2 * hidden + attention + 3 * inner * hidden;
        let head = if self.tie_word_embeddings { 0 } else { table };
        table + self.num_layers * layer + hidden + head
    }

    /// Weights read from memory to generate one token: all of them except
    /// the embedding table, of which one row is read. A tied output head
    /// reads the (shared) table in full.
    pub fn weight_elements_per_token(&self) -> usize {
        let table = self.vocab_size * self.hidden_size;
        let untouched_table = if self.tie_word_embeddings {
            0
        } else {
            table - self.hidden_size
        };
        self.parameter_count() - untouched_table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tinyllama_has_one_point_one_billion_weights() {
        let config = LlamaConfig::tinyllama();
        assert_eq!(
            (config.num_heads, config.num_kv_heads, config.head_dim),
            (32, 4, 64)
        );
        assert_eq!(config.parameter_count(), 1_100_048_384);
    }
}
