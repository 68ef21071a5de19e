//! Whisper's tokens: the tokenizer (Hugging Face `tokenizer.json` through
//! the tokenizers crate), the decoder prompt and the suppression masks.

use std::path::Path;

use anyhow::{ensure, Context, Result};

use crate::config::{ModelDims, SuppressRules};

/// Token ids that steer decoding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    pub end_of_text: u32,
    /// The prompt: <|startoftranscript|>, then for multilingual models the
    /// language and <|transcribe|>, then <|notimestamps|>.
    pub prompt: Vec<u32>,
}

pub struct WhisperTokenizer {
    inner: tokenizers::Tokenizer,
    pub special: SpecialTokens,
}

impl WhisperTokenizer {
    /// Loads `tokenizer.json`; `language` (e.g. "en") is used by
    /// multilingual models only.
    pub fn load(path: &Path, dims: &ModelDims, language: &str) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("loading the tokenizer {}", path.display()))?;
        let id = |token: &str| -> Result<u32> {
            let id = inner
                .token_to_id(token)
                .with_context(|| format!("{} has no token {token}", path.display()))?;
            ensure!(
                (id as usize) < dims.n_vocab,
                "{}: {token} is id {id}, outside the model's {} tokens",
                path.display(),
                dims.n_vocab
            );
            Ok(id)
        };
        let mut prompt = vec![id("<|startoftranscript|>")?];
        if dims.is_multilingual() {
            prompt.push(id(&format!("<|{language}|>"))?);
            prompt.push(id("<|transcribe|>")?);
        }
        prompt.push(id("<|notimestamps|>")?);
        let special = SpecialTokens {
            end_of_text: id("<|endoftext|>")?,
            prompt,
        };
        Ok(Self { inner, special })
    }

    /// The text of sampled tokens; special and timestamp tokens (ids from
    /// <|endoftext|> up) are left out.
    pub fn decode(&self, tokens: &[u32]) -> Result<String> {
        let text_tokens: Vec<u32> = tokens
            .iter()
            .copied()
            .filter(|&t| t < self.special.end_of_text)
            .collect();
        self.inner
            .decode(&text_tokens, true)
            .map_err(|e| anyhow::anyhow!("decoding {} tokens: {e}", text_tokens.len()))
    }
}

/// Additive logit masks (0 or -inf) of n_vocab entries, the same for both
/// twins: `first` for the first sampled token, `rest` after it.
#[derive(Clone, Debug, PartialEq)]
pub struct SuppressMasks {
    pub first: Vec<f32>,
    pub rest: Vec<f32>,
}

impl SuppressMasks {
    /// Whisper's greedy decoding without timestamps: the model's suppress
    /// list always; every special and timestamp token (ids above
    /// <|endoftext|>) always, so that only text or the end is sampled; and
    /// at the first step also the `suppress_blank` ids (a space, the end).
    pub fn new(rules: &SuppressRules, special: &SpecialTokens, n_vocab: usize) -> Result<Self> {
        let mut rest = vec![0f32; n_vocab];
        let suppress = |mask: &mut Vec<f32>, id: u32| -> Result<()> {
            let slot = mask.get_mut(id as usize).with_context(|| {
                format!("suppressed token {id} is outside the {n_vocab}-token vocabulary")
            })?;
            *slot = f32::NEG_INFINITY;
            Ok(())
        };
        for &id in &rules.always {
            suppress(&mut rest, id)?;
        }
        for id in special.end_of_text + 1..n_vocab as u32 {
            suppress(&mut rest, id)?;
        }
        let mut first = rest.clone();
        for &id in &rules.at_begin {
            suppress(&mut first, id)?;
        }
        Ok(Self { first, rest })
    }
}

/// Lower case, letters, digits and apostrophes only, single spaces: for
/// comparing transcripts word for word whatever the punctuation.
pub fn normalize(text: &str) -> String {
    text.to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(n_vocab: usize) -> ModelDims {
        ModelDims {
            n_vocab,
            ..ModelDims::TINY_EN
        }
    }

    fn tokenizer_path() -> std::path::PathBuf {
        bench_core::assets::asset_file("whisper-tiny-en-ct2", "tokenizer.json").unwrap()
    }

    #[test]
    fn normalize_keeps_words_only() {
        assert_eq!(
            normalize(" And so, my fellow Americans: ask NOT -- what's yours?"),
            "and so my fellow americans ask not what's yours"
        );
        assert_eq!(normalize("..."), "");
    }

    #[test]
    fn prompt_depends_on_the_vocabulary() {
        let english = WhisperTokenizer::load(&tokenizer_path(), &dims(51864), "en").unwrap();
        assert_eq!(english.special.prompt, vec![50257, 50362]);
        // a multilingual-sized vocabulary adds the language and the task,
        // looked up by name in the tokenizer
        let multilingual = WhisperTokenizer::load(&tokenizer_path(), &dims(51865), "de").unwrap();
        let id = |t: &str| multilingual.inner.token_to_id(t).unwrap();
        assert_eq!(
            multilingual.special.prompt,
            vec![
                id("<|startoftranscript|>"),
                id("<|de|>"),
                id("<|transcribe|>"),
                id("<|notimestamps|>")
            ]
        );
        let error = WhisperTokenizer::load(&tokenizer_path(), &dims(51865), "xx")
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("<|xx|>"), "{error}");
        // decoding drops special tokens
        let text = english.decode(&[50257, 843, 50256]).unwrap();
        assert!(!text.contains("<|"), "{text}");
    }

    #[test]
    fn masks_suppress_blank_only_first_and_specials_always() {
        let special = SpecialTokens {
            end_of_text: 5,
            prompt: vec![6, 8],
        };
        let rules = SuppressRules {
            always: vec![1],
            at_begin: vec![2, 5],
        };
        let masks = SuppressMasks::new(&rules, &special, 10).unwrap();
        let blocked = |mask: &[f32]| -> Vec<usize> {
            (0..mask.len())
                .filter(|&i| mask[i] == f32::NEG_INFINITY)
                .collect()
        };
        assert_eq!(blocked(&masks.first), vec![1, 2, 5, 6, 7, 8, 9]);
        assert_eq!(blocked(&masks.rest), vec![1, 6, 7, 8, 9]);
        let outside = SuppressRules {
            always: vec![10],
            at_begin: vec![],
        };
        let error = SuppressMasks::new(&outside, &special, 10)
            .unwrap_err()
            .to_string();
        assert!(error.contains("token 10"), "{error}");
    }
}
