//! A BERT checkpoint's `config.json`: the sizes that the weights'
//! shapes follow from (see `weights.rs`).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde::Deserialize;

/// The architecture fields of a Hugging Face BERT `config.json`; other
/// fields (dropout rates, `architectures`, ...) are ignored.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
    #[serde(default = "default_position_embedding_type")]
    pub position_embedding_type: String,
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}

fn default_position_embedding_type() -> String {
    "absolute".to_owned()
}

impl BertConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading BERT config {}", path.display()))?;
        let config: Self = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a BERT config.json", path.display()))?;
        config
            .validate()
            .with_context(|| format!("{}: unsupported BERT config", path.display()))?;
        Ok(config)
    }

    /// What the twins implement: post-LN BERT with exact (erf) GELU and
    /// learned absolute positions.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.hidden_act == "gelu",
            "hidden_act is '{}': the twins implement BERT's exact (erf) GELU only",
            self.hidden_act
        );
        ensure!(
            self.position_embedding_type == "absolute",
            "position_embedding_type is '{}': only learned absolute positions are implemented",
            self.position_embedding_type
        );
        ensure!(
            self.num_attention_heads > 0 && self.hidden_size % self.num_attention_heads == 0,
            "hidden_size {} is not a multiple of num_attention_heads {}",
            self.hidden_size,
            self.num_attention_heads
        );
        ensure!(
            self.vocab_size > 0
                && self.num_hidden_layers > 0
                && self.intermediate_size > 0
                && self.max_position_embeddings > 0
                && self.type_vocab_size > 0,
            "sizes must be positive: {self:?}"
        );
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// MiniLM-L6's architecture, for the unit tests.
#[cfg(test)]
pub(crate) fn minilm_like() -> BertConfig {
    serde_json::from_str(
        r#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
            "num_attention_heads": 12, "intermediate_size": 1536,
            "max_position_embeddings": 512, "type_vocab_size": 2,
            "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#,
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsupported_activation_is_named() {
        let mut config = minilm_like();
        config.hidden_act = "gelu_new".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("gelu_new"), "{error}");
    }
}
