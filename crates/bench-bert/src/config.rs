//! A BERT checkpoint's `config.json`, and the tensors (names and shapes)
//! that such a model must have.

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

    /// Every tensor of the encoder and pooler, with its shape, in Hugging
    /// Face's names without the `bert.` prefix. Linear weights are
    /// [out, in], as PyTorch stores them.
    pub fn expected_tensors(&self) -> Vec<(String, Vec<usize>)> {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        let mut tensors = vec![
            (
                "embeddings.word_embeddings.weight".to_owned(),
                vec![self.vocab_size, h],
            ),
            (
                "embeddings.position_embeddings.weight".to_owned(),
                vec![self.max_position_embeddings, h],
            ),
            (
                "embeddings.token_type_embeddings.weight".to_owned(),
                vec![self.type_vocab_size, h],
            ),
        ];
        push_layer_norm(&mut tensors, "embeddings.LayerNorm", h);
        for layer in 0..self.num_hidden_layers {
            let prefix = format!("encoder.layer.{layer}");
            for projection in ["query", "key", "value"] {
                push_linear(
                    &mut tensors,
                    &format!("{prefix}.attention.self.{projection}"),
                    h,
                    h,
                );
            }
            push_linear(
                &mut tensors,
                &format!("{prefix}.attention.output.dense"),
                h,
                h,
            );
            push_layer_norm(
                &mut tensors,
                &format!("{prefix}.attention.output.LayerNorm"),
                h,
            );
            push_linear(&mut tensors, &format!("{prefix}.intermediate.dense"), h, i);
            push_linear(&mut tensors, &format!("{prefix}.output.dense"), i, h);
            push_layer_norm(&mut tensors, &format!("{prefix}.output.LayerNorm"), h);
        }
        push_linear(&mut tensors, "pooler.dense", h, h);
        tensors
    }
}

fn push_linear(tensors: &mut Vec<(String, Vec<usize>)>, name: &str, input: usize, output: usize) {
    tensors.push((format!("{name}.weight"), vec![output, input]));
    tensors.push((format!("{name}.bias"), vec![output]));
}

fn push_layer_norm(tensors: &mut Vec<(String, Vec<usize>)>, name: &str, size: usize) {
    tensors.push((format!("{name}.weight"), vec![size]));
    tensors.push((format!("{name}.bias"), vec![size]));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minilm_like() -> BertConfig {
        serde_json::from_str(
            r#"{"vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
                "num_attention_heads": 12, "intermediate_size": 1536,
                "max_position_embeddings": 512, "type_vocab_size": 2,
                "hidden_act": "gelu", "layer_norm_eps": 1e-12}"#,
        )
        .unwrap()
    }

    #[test]
    fn expected_tensors_count_and_shapes() {
        let config = minilm_like();
        config.validate().unwrap();
        let tensors = config.expected_tensors();
        // 3 embeddings + LayerNorm (2), 16 per layer, pooler (2)
        assert_eq!(tensors.len(), 5 + 16 * 6 + 2);
        let shape = |name: &str| tensors.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(
            shape("encoder.layer.5.intermediate.dense.weight"),
            [1536, 384]
        );
        assert_eq!(shape("encoder.layer.0.output.dense.weight"), [384, 1536]);
        assert_eq!(shape("embeddings.word_embeddings.weight"), [30522, 384]);
    }

    #[test]
    fn unsupported_activation_is_named() {
        let mut config = minilm_like();
        config.hidden_act = "gelu_new".into();
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("gelu_new"), "{error}");
    }
}
