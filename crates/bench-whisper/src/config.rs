//! The model's dimensions and its decoding rules, read from the checkpoint's
//! config.json (Hugging Face), or from the CTranslate2 model's tensors and
//! config.json (whose config lists only the decoding rules).

use std::path::Path;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

use crate::ct2::Ct2Model;

/// Whisper's dimensions, as OpenAI's `ModelDimensions` names them. Every
/// size of the family (tiny ... large, the .en variants) is one of these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelDims {
    pub n_mels: usize,
    /// Encoder positions: half the input frames (the second conv has stride 2).
    pub n_audio_ctx: usize,
    pub n_audio_state: usize,
    pub n_audio_head: usize,
    pub n_audio_layer: usize,
    pub n_vocab: usize,
    pub n_text_ctx: usize,
    pub n_text_state: usize,
    pub n_text_head: usize,
    pub n_text_layer: usize,
}

impl ModelDims {
    /// whisper-tiny.en's dimensions (OpenAI's `ModelDimensions`), the model
    /// the tests and the registry copy use.
    pub const TINY_EN: ModelDims = ModelDims {
        n_mels: 80,
        n_audio_ctx: 1500,
        n_audio_state: 384,
        n_audio_head: 6,
        n_audio_layer: 4,
        n_vocab: 51864,
        n_text_ctx: 448,
        n_text_state: 384,
        n_text_head: 6,
        n_text_layer: 4,
    };

    /// From a Hugging Face `WhisperConfig` (config.json).
    pub fn from_hf_config(config: &Value, path: &Path) -> Result<Self> {
        let field = |key: &str| -> Result<usize> {
            config
                .get(key)
                .and_then(Value::as_u64)
                .map(|v| v as usize)
                .with_context(|| format!("{} has no integer '{key}'", path.display()))
        };
        let d_model = field("d_model")?;
        let dims = Self {
            n_mels: field("num_mel_bins")?,
            n_audio_ctx: field("max_source_positions")?,
            n_audio_state: d_model,
            n_audio_head: field("encoder_attention_heads")?,
            n_audio_layer: field("encoder_layers")?,
            n_vocab: field("vocab_size")?,
            n_text_ctx: field("max_target_positions")?,
            n_text_state: d_model,
            n_text_head: field("decoder_attention_heads")?,
            n_text_layer: field("decoder_layers")?,
        };
        dims.validate()
            .with_context(|| format!("dimensions from {}", path.display()))?;
        Ok(dims)
    }

    /// From a CTranslate2 Whisper model, whose config.json holds no sizes:
    /// they are read off the tensors (conv1 gives mels and width, the
    /// position tables the contexts) and the stored head counts.
    pub fn from_ct2(model: &Ct2Model) -> Result<Self> {
        ensure!(
            model.spec == "WhisperSpec",
            "{} holds a {}, not a Whisper model",
            model.path.display(),
            model.spec
        );
        let shape = |name: &str, rank: usize| -> Result<Vec<usize>> {
            let shape = model.variable(name)?.shape.clone();
            ensure!(
                shape.len() == rank,
                "{}: {name} has shape {shape:?}, expected rank {rank}",
                model.path.display()
            );
            Ok(shape)
        };
        let conv1 = shape("encoder/conv1/weight", 3)?;
        let audio_positions = shape("encoder/position_encodings/encodings", 2)?;
        let embeddings = shape("decoder/embeddings/weight", 2)?;
        let text_positions = shape("decoder/position_encodings/encodings", 2)?;
        let layers = |prefix: &str| {
            (0..)
                .take_while(|i| {
                    model
                        .names_with_prefix(&format!("{prefix}/layer_{i}/"))
                        .next()
                        .is_some()
                })
                .count()
        };
        let heads = |name: &str| -> Result<usize> {
            let heads = model.scalar(name)?;
            ensure!(heads > 0, "{}: {name} is {heads}", model.path.display());
            Ok(heads as usize)
        };
        let dims = Self {
            n_mels: conv1[1],
            n_audio_ctx: audio_positions[0],
            n_audio_state: conv1[0],
            n_audio_head: heads("encoder/num_heads")?,
            n_audio_layer: layers("encoder"),
            n_vocab: embeddings[0],
            n_text_ctx: text_positions[0],
            n_text_state: embeddings[1],
            n_text_head: heads("decoder/num_heads")?,
            n_text_layer: layers("decoder"),
        };
        dims.validate()
            .with_context(|| format!("dimensions read from {}", model.path.display()))?;
        Ok(dims)
    }

    fn validate(&self) -> Result<()> {
        ensure!(
            self.n_audio_layer > 0 && self.n_text_layer > 0,
            "no layers: {self:?}"
        );
        ensure!(
            self.n_audio_head > 0 && self.n_audio_state % self.n_audio_head == 0,
            "encoder width {} is not a multiple of its {} heads",
            self.n_audio_state,
            self.n_audio_head
        );
        ensure!(
            self.n_text_head > 0 && self.n_text_state % self.n_text_head == 0,
            "decoder width {} is not a multiple of its {} heads",
            self.n_text_state,
            self.n_text_head
        );
        ensure!(
            self.n_audio_state == self.n_text_state,
            "encoder width {} differs from decoder width {}: cross-attention needs them equal",
            self.n_audio_state,
            self.n_text_state
        );
        ensure!(
            self.n_mels > 0 && self.n_audio_ctx > 0 && self.n_vocab > 0 && self.n_text_ctx > 0,
            "a zero size: {self:?}"
        );
        Ok(())
    }

    /// Mel frames in one window: the encoder halves them.
    pub fn input_frames(&self) -> usize {
        2 * self.n_audio_ctx
    }

    /// OpenAI's rule: the multilingual vocabulary has 51865 tokens or more.
    pub fn is_multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Whisper's token suppression: ids never to sample, and ids not to sample
/// as the first token (a blank or end of text, `suppress_blank`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuppressRules {
    pub always: Vec<u32>,
    pub at_begin: Vec<u32>,
}

impl SuppressRules {
    /// From a config with the Hugging Face keys (`suppress_tokens`,
    /// `begin_suppress_tokens`) or the CTranslate2 ones (`suppress_ids`,
    /// `suppress_ids_begin`). None when the config has neither.
    pub fn from_config(config: &Value, path: &Path) -> Result<Option<Self>> {
        let pairs = [
            ("suppress_tokens", "begin_suppress_tokens"),
            ("suppress_ids", "suppress_ids_begin"),
        ];
        for (always_key, begin_key) in pairs {
            let Some(always) = config.get(always_key).filter(|v| !v.is_null()) else {
                continue;
            };
            let ids = |value: &Value, key: &str| -> Result<Vec<u32>> {
                value
                    .as_array()
                    .and_then(|items| {
                        items
                            .iter()
                            .map(|v| v.as_u64().map(|id| id as u32))
                            .collect::<Option<Vec<_>>>()
                    })
                    .with_context(|| {
                        format!("{}: '{key}' is not a list of token ids", path.display())
                    })
            };
            let at_begin = match config.get(begin_key).filter(|v| !v.is_null()) {
                Some(value) => ids(value, begin_key)?,
                None => Vec::new(),
            };
            return Ok(Some(Self {
                always: ids(always, always_key)?,
                at_begin,
            }));
        }
        Ok(None)
    }
}

/// Reads a JSON file with its name in any error.
pub fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}
