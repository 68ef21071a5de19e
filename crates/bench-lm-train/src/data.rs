//! The training text: Shakespeare's plays (asset `shakespeare`), tokenised
//! once with MiniLM's WordPiece tokenizer, cut into windows of context + 1
//! tokens, split into train and held-out windows, and served in a seeded
//! order. Batches are host-side token ids, identical for both twins.

use std::path::PathBuf;

use anyhow::{anyhow, ensure, Context, Result};
use bench_core::assets;
use tokenizers::Tokenizer;

use crate::workload::LmConfig;
use bench_core::rng::SplitMix64;

/// Named in the results' settings.
pub const TOKENIZER_DESCRIPTION: &str =
    "MiniLM (bert-base-uncased) WordPiece from asset minilm, 30522 tokens";

/// One batch: `inputs[b][t]` predicts `targets[b][t]` (= `inputs[b][t+1]`),
/// both row-major [batch_size, context].
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub batch_size: usize,
    pub context: usize,
    pub inputs: Vec<u32>,
    pub targets: Vec<u32>,
}

/// The sorted `*_gut.txt` files of the Shakespeare asset, first `count`.
/// The `*_gut_f.txt` files are the same plays in First Folio spelling: left
/// out, so held-out text is not a respelling of training text.
pub fn shakespeare_files(count: usize) -> Result<Vec<PathBuf>> {
    let dir = assets::asset_dir("shakespeare")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with("_gut.txt"))
        })
        .collect();
    files.sort();
    ensure!(
        files.len() >= count,
        "asked for {count} Shakespeare texts, {} has {} *_gut.txt files",
        dir.display(),
        files.len()
    );
    files.truncate(count);
    Ok(files)
}

/// MiniLM's tokenizer with its fixed truncation and padding (128 tokens,
/// for sentence embeddings) switched off: a play is one long sequence.
pub fn load_tokenizer() -> Result<Tokenizer> {
    let path = assets::asset_file("minilm", "tokenizer.json")?;
    let mut tokenizer = Tokenizer::from_file(&path)
        .map_err(|e| anyhow!("loading tokenizer {}: {e}", path.display()))?;
    tokenizer
        .with_truncation(None)
        .map_err(|e| anyhow!("switching off truncation of {}: {e}", path.display()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// Token ids of the files, in order, each play followed by `[SEP]` as a
/// document boundary.
pub fn tokenize_files(tokenizer: &Tokenizer, files: &[PathBuf]) -> Result<Vec<u32>> {
    let separator = tokenizer
        .token_to_id("[SEP]")
        .context("the tokenizer has no [SEP] token")?;
    let mut tokens = Vec::new();
    for file in files {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let encoding = tokenizer
            .encode(text.as_str(), false)
            .map_err(|e| anyhow!("tokenizing {}: {e}", file.display()))?;
        tokens.extend_from_slice(encoding.get_ids());
        tokens.push(separator);
    }
    Ok(tokens)
}

/// Windows of context + 1 tokens: the last tenth (at least one batch) held
/// out for evaluation, the rest served in a seeded order that is reshuffled
/// every epoch.
#[derive(Clone, Debug)]
pub struct Dataset {
    tokens: Vec<u32>,
    context: usize,
    batch_size: usize,
    train_windows: usize,
    eval_windows: usize,
    seed: u64,
}

impl Dataset {
    pub fn new(tokens: Vec<u32>, context: usize, batch_size: usize, seed: u64) -> Result<Self> {
        let windows = tokens.len() / (context + 1);
        let eval_windows = (windows / 10).max(batch_size);
        ensure!(
            windows >= eval_windows + batch_size,
            "{} tokens make {windows} windows of {} tokens: too few for a training batch \
             and an evaluation batch of {batch_size} (read more text files)",
            tokens.len(),
            context + 1
        );
        Ok(Self {
            tokens,
            context,
            batch_size,
            train_windows: windows - eval_windows,
            eval_windows,
            seed,
        })
    }

    /// The preset's text, tokenised, for `config`'s context and batch size.
    pub fn shakespeare(config: &LmConfig, seed: u64) -> Result<Self> {
        let tokenizer = load_tokenizer()?;
        let vocab = tokenizer.get_vocab_size(true);
        ensure!(
            vocab == config.model.vocab_size,
            "the tokenizer has {vocab} tokens, the model {}",
            config.model.vocab_size
        );
        let tokens = tokenize_files(&tokenizer, &shakespeare_files(config.text_files)?)?;
        Self::new(tokens, config.model.context, config.train.batch_size, seed)
    }

    pub fn train_tokens(&self) -> usize {
        self.train_windows * (self.context + 1)
    }

    pub fn eval_tokens(&self) -> usize {
        self.eval_windows * (self.context + 1)
    }

    /// The `index`-th training batch (0-based) of the seeded order.
    pub fn train_batch(&self, index: usize) -> Batch {
        let first = index * self.batch_size;
        let mut order = Vec::new();
        let mut epoch = usize::MAX;
        let windows = (first..first + self.batch_size).map(|position| {
            if position / self.train_windows != epoch {
                epoch = position / self.train_windows;
                order = self.epoch_order(epoch);
            }
            order[position % self.train_windows]
        });
        self.batch(windows.collect())
    }

    /// Up to `count` held-out batches, always the same ones.
    pub fn eval_batches(&self, count: usize) -> Vec<Batch> {
        let available = self.eval_windows / self.batch_size;
        (0..count.min(available))
            .map(|b| {
                let first = self.train_windows + b * self.batch_size;
                self.batch((first..first + self.batch_size).collect())
            })
            .collect()
    }

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.train_windows).collect();
        let epoch_seed = (epoch as u64).wrapping_mul(0xA076_1D64_78BD_642F);
        SplitMix64::new(self.seed ^ epoch_seed).shuffle(&mut order);
        order
    }

    fn batch(&self, windows: Vec<usize>) -> Batch {
        let span = self.context + 1;
        let mut inputs = Vec::with_capacity(windows.len() * self.context);
        let mut targets = Vec::with_capacity(windows.len() * self.context);
        for window in windows {
            let tokens = &self.tokens[window * span..(window + 1) * span];
            inputs.extend_from_slice(&tokens[..self.context]);
            targets.extend_from_slice(&tokens[1..]);
        }
        Batch {
            batch_size: self.batch_size,
            context: self.context,
            inputs,
            targets,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_shifted_windows_in_a_seeded_order() {
        // 100 windows of 5 tokens whose ids encode their position
        let tokens: Vec<u32> = (0..500).collect();
        let data = Dataset::new(tokens, 4, 3, 9).unwrap();
        assert_eq!((data.train_windows, data.eval_windows), (90, 10));
        let batch = data.train_batch(0);
        assert_eq!(batch.inputs.len(), 12);
        for row in 0..3 {
            let input = &batch.inputs[row * 4..row * 4 + 4];
            let target = &batch.targets[row * 4..row * 4 + 4];
            assert_eq!(input[0] % 5, 0, "windows start on a window boundary");
            assert!(input[0] < 450, "training windows come before held-out ones");
            assert_eq!(target, &input.iter().map(|t| t + 1).collect::<Vec<_>>()[..]);
        }
        assert_eq!(batch, data.train_batch(0));
        assert_ne!(batch, data.train_batch(1));
        // one epoch visits every training window once
        let mut seen: Vec<u32> = (0..30)
            .flat_map(|b| {
                data.train_batch(b)
                    .inputs
                    .chunks(4)
                    .map(|w| w[0])
                    .collect::<Vec<_>>()
            })
            .collect();
        seen.sort();
        assert_eq!(seen, (0..90).map(|w| w * 5).collect::<Vec<_>>());
        let eval = data.eval_batches(10);
        assert_eq!(eval.len(), 3);
        assert_eq!(eval[0].inputs[0], 450);
    }

    #[test]
    fn too_little_text_is_an_error_that_says_so() {
        let error = Dataset::new((0..20).collect(), 4, 3, 0).unwrap_err();
        assert!(error.to_string().contains("too few"), "{error}");
    }
}
