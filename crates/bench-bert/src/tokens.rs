//! Text to token ids with the checkpoint's own `tokenizer.json`, done on
//! the host before any timing, and the batches both twins read.

use std::path::Path;

use anyhow::{ensure, Result};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use crate::data::Email;

/// Characters kept per token of sequence length before tokenising: a
/// bound on the work for long emails, far above the ~4-6 characters of an
/// English word piece, so that the first `seq_len` tokens are unchanged.
const CHARS_PER_TOKEN: usize = 32;

/// A batch of token sequences, row-major [batch, seq_len].
#[derive(Clone, Debug, PartialEq)]
pub struct TokenBatch {
    pub ids: Vec<i32>,
    pub type_ids: Vec<i32>,
    /// 1 for a real token, 0 for padding.
    pub mask: Vec<i32>,
    pub batch: usize,
    pub seq_len: usize,
}

/// Token sequences with their class labels.
#[derive(Clone, Debug, PartialEq)]
pub struct LabelledBatch {
    pub tokens: TokenBatch,
    pub labels: Vec<i32>,
}

/// The checkpoint's tokenizer, truncating and padding to one length.
pub struct TextEncoder {
    tokenizer: Tokenizer,
    seq_len: usize,
}

impl TextEncoder {
    /// Loads `tokenizer.json` and replaces its own padding and truncation
    /// (MiniLM's fixes both at 128) by `seq_len`: every batch has the same
    /// shape, as the original study's `padding="max_length"` gave.
    pub fn from_file(path: &Path, seq_len: usize) -> Result<Self> {
        ensure!(
            seq_len >= 2,
            "sequence length {seq_len} leaves no room for [CLS] and [SEP]"
        );
        let mut tokenizer = Tokenizer::from_file(path)
            .map_err(|e| anyhow::anyhow!("{}: not a tokenizer.json: {e}", path.display()))?;
        let pad_id = tokenizer.token_to_id("[PAD]").unwrap_or(0);
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: seq_len,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("{}: truncation: {e}", path.display()))?;
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::Fixed(seq_len),
            pad_id,
            pad_token: "[PAD]".to_owned(),
            ..Default::default()
        }));
        Ok(Self { tokenizer, seq_len })
    }

    pub fn seq_len(&self) -> usize {
        self.seq_len
    }

    /// Tokenises `texts` as one batch.
    pub fn encode(&self, texts: &[String]) -> Result<TokenBatch> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenising: {e}"))?;
        let mut batch = TokenBatch {
            ids: Vec::with_capacity(texts.len() * self.seq_len),
            type_ids: Vec::with_capacity(texts.len() * self.seq_len),
            mask: Vec::with_capacity(texts.len() * self.seq_len),
            batch: texts.len(),
            seq_len: self.seq_len,
        };
        for encoding in &encodings {
            ensure!(
                encoding.get_ids().len() == self.seq_len,
                "the tokenizer gave {} tokens, not {}",
                encoding.get_ids().len(),
                self.seq_len
            );
            batch
                .ids
                .extend(encoding.get_ids().iter().map(|&i| i as i32));
            batch
                .type_ids
                .extend(encoding.get_type_ids().iter().map(|&i| i as i32));
            batch
                .mask
                .extend(encoding.get_attention_mask().iter().map(|&i| i as i32));
        }
        Ok(batch)
    }

    /// Reads and tokenises `emails`, keeping their labels.
    pub fn encode_emails(&self, emails: &[Email]) -> Result<EncodedSet> {
        let texts = emails
            .iter()
            .map(|email| email.text(self.seq_len * CHARS_PER_TOKEN))
            .collect::<Result<Vec<_>>>()?;
        Ok(EncodedSet {
            tokens: self.encode(&texts)?,
            labels: emails.iter().map(|e| e.label.index() as i32).collect(),
        })
    }
}

/// A tokenised data set: one row per email.
#[derive(Clone, Debug)]
pub struct EncodedSet {
    pub tokens: TokenBatch,
    pub labels: Vec<i32>,
}

impl EncodedSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The rows `rows`, in that order, as one batch.
    pub fn batch(&self, rows: &[usize]) -> LabelledBatch {
        let s = self.tokens.seq_len;
        let gather = |values: &[i32]| -> Vec<i32> {
            rows.iter()
                .flat_map(|&r| values[r * s..(r + 1) * s].iter().copied())
                .collect()
        };
        LabelledBatch {
            tokens: TokenBatch {
                ids: gather(&self.tokens.ids),
                type_ids: gather(&self.tokens.type_ids),
                mask: gather(&self.tokens.mask),
                batch: rows.len(),
                seq_len: s,
            },
            labels: rows.iter().map(|&r| self.labels[r]).collect(),
        }
    }

    /// Consecutive batches of `batch_size` rows in the given order; a
    /// last, short batch is dropped, so that every step has one shape.
    pub fn batches(&self, order: &[usize], batch_size: usize) -> Vec<LabelledBatch> {
        order
            .chunks_exact(batch_size)
            .map(|rows| self.batch(rows))
            .collect()
    }

    /// Batches in order covering every row (the last may be short): for
    /// evaluation, where every email counts.
    pub fn all_batches(&self, batch_size: usize) -> Vec<LabelledBatch> {
        let rows: Vec<usize> = (0..self.len()).collect();
        rows.chunks(batch_size)
            .map(|rows| self.batch(rows))
            .collect()
    }
}
