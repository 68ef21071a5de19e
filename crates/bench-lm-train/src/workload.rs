//! Sizes and hyperparameters, independent of framework: presets and the
//! `--set key=value` knobs that override them, the same for both twins.
//! The architecture itself is [`crate::config::ModelConfig`].

use std::sync::LazyLock;

use anyhow::{ensure, Result};
use bench_core::{Cell, Kind, Knob, KnobDefaults, MeasureSettings, Preset, PresetRow};

use crate::config::ModelConfig;

/// The `--set` knobs; the defaults are the quick preset's (the paper's in
/// brackets), read from [`presets`].
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| knobs(&KnobDefaults::of(presets)));

/// The knobs, with the defaults that both presets' sizes give.
pub fn knobs(defaults: &KnobDefaults<LmConfig>) -> Vec<Knob> {
    vec![
        Knob::int(
            "layers",
            1,
            256,
            defaults.text(|c| c.model.layers),
            "transformer blocks",
        ),
        Knob::int(
            "dim",
            4,
            65_536,
            defaults.text(|c| c.model.dim),
            "model width; even, a multiple of heads",
        ),
        Knob::int(
            "heads",
            1,
            1024,
            defaults.text(|c| c.model.heads),
            "attention heads",
        ),
        Knob::int(
            "ffn",
            1,
            262_144,
            defaults.text(|c| c.model.ffn_dim),
            "feed-forward width",
        ),
        Knob::int(
            "context",
            1,
            65_536,
            defaults.text(|c| c.model.context),
            "tokens per sequence",
        ),
        Knob::new(
            "dropout",
            Kind::Float {
                min: 0.0,
                max: 0.99,
            },
            defaults.text(|c| c.model.dropout),
            "dropout probability",
        ),
        Knob::int(
            "batch_size",
            1,
            65_536,
            defaults.text(|c| c.train.batch_size),
            "sequences per step",
        ),
        Knob::new(
            "learning_rate",
            Kind::Positive,
            defaults.text(|c| format!("{:e}", c.train.learning_rate)),
            "AdamW's peak learning rate",
        ),
        Knob::new(
            "weight_decay",
            Kind::Float { min: 0.0, max: 1.0 },
            defaults.text(|c| format!("{:e}", c.train.weight_decay)),
            "AdamW's weight decay",
        ),
        Knob::int(
            "warmup_steps",
            0,
            1_000_000,
            defaults.text(|c| c.train.warmup_steps),
            "steps of linear learning-rate warm-up",
        ),
        Knob::at_least(
            "text_files",
            1,
            defaults.text(|c| c.text_files),
            "Shakespeare plays to train on",
        ),
        Knob::int(
            "eval_batches",
            1,
            10_000,
            defaults.text(|c| c.eval_batches),
            "batches per evaluation",
        ),
        Knob::new(
            "record_losses",
            Kind::Bool,
            "false",
            "list every step's loss in the row (losses=)",
        ),
    ]
}

/// `--set record_losses=true`: whether the row lists every step's loss
/// (warm-up included), so that eager and best mode can be compared step
/// by step (`bundle/selftest.sh`). Every step reads its loss anyway; off
/// by default only to keep rows short.
pub fn record_losses(cell: &Cell) -> Result<bool> {
    Ok(cell.option("record_losses")?.unwrap_or(false))
}

/// AdamW with a linear learning-rate warm-up.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    /// Steps over which the learning rate rises linearly to its peak.
    pub warmup_steps: usize,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Everything one run needs: model, training and how much text to read.
#[derive(Clone, Debug, PartialEq)]
pub struct LmConfig {
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// How many of the sorted Shakespeare `*_gut.txt` files to read.
    pub text_files: usize,
    /// Held-out batches whose mean loss is reported (untimed).
    pub eval_batches: usize,
}

/// Vocabulary of the MiniLM (BERT uncased) WordPiece tokenizer.
pub const MINILM_VOCAB_SIZE: usize = 30_522;

impl TrainConfig {
    /// AdamW's hyper-parameters besides the learning rate, as both twins take them.
    pub fn adamw_hyper(&self) -> bench_core::AdamWHyper {
        bench_core::AdamWHyper {
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.weight_decay,
            eps: self.eps,
        }
    }

    /// The learning rate of 1-based `step`: linear warm-up from lr/warmup
    /// to lr over `warmup_steps`, then constant. (mlx-examples starts its
    /// schedule at 0, which makes the first update a no-op; starting at
    /// step 1 keeps every timed step a real update.)
    pub fn learning_rate_at(&self, step: usize) -> f64 {
        if self.warmup_steps == 0 {
            return self.learning_rate;
        }
        self.learning_rate * (step.min(self.warmup_steps) as f64 / self.warmup_steps as f64)
    }

    /// Tokens consumed (and predicted) by one step.
    pub fn tokens_per_step(&self, model: &ModelConfig) -> usize {
        self.batch_size * model.context
    }
}

/// The one table of sizes per preset (see [`bench_core::presets`]): the
/// cells' work, the rows' measurement settings, the knobs' defaults and
/// the Criterion harness all read it.
pub fn presets(preset: Preset) -> PresetRow<LmConfig> {
    let train = TrainConfig {
        batch_size: 32,
        // mlx-examples transformer_lm: lr 3e-4, weight decay 1e-5,
        // 200 warm-up steps; PyTorch's and MLX's AdamW betas and eps.
        learning_rate: 3e-4,
        weight_decay: 1e-5,
        warmup_steps: 200,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
    };
    match preset {
        // Tuned for about one second per step on a 2-core CPU (release;
        // 1.6 s measured with other work sharing the 2 cores).
        Preset::Quick => PresetRow {
            sizes: LmConfig {
                model: ModelConfig {
                    vocab_size: MINILM_VOCAB_SIZE,
                    layers: 4,
                    dim: 256,
                    heads: 4,
                    ffn_dim: 1024,
                    context: 128,
                    dropout: 0.0,
                },
                train: TrainConfig {
                    batch_size: 4,
                    ..train
                },
                text_files: 4,
                eval_batches: 4,
            },
            measure: MeasureSettings::new(2, 10, 3, 20),
            needs_gib: 0.5,
        },
        // About 50M parameters at 4096 tokens a step: a few GB, for an
        // accelerator with 8-16 GB.
        Preset::Laptop => PresetRow {
            sizes: LmConfig {
                model: ModelConfig {
                    vocab_size: MINILM_VOCAB_SIZE,
                    layers: 6,
                    dim: 512,
                    heads: 8,
                    ffn_dim: 2048,
                    context: 512,
                    dropout: 0.0,
                },
                train: TrainConfig {
                    batch_size: 8,
                    ..train
                },
                text_files: 42,
                eval_batches: 4,
            },
            measure: MeasureSettings::new(2, 10, 3, 300),
            needs_gib: 4.0,
        },
        // As the original: 12 layers, dim 1024, 16 heads, FFN 4096,
        // context 1024, batch 32.
        Preset::Paper => PresetRow {
            sizes: LmConfig {
                model: ModelConfig {
                    vocab_size: MINILM_VOCAB_SIZE,
                    layers: 12,
                    dim: 1024,
                    heads: 16,
                    ffn_dim: 4096,
                    context: 1024,
                    dropout: 0.0,
                },
                train,
                text_files: 42,
                eval_batches: 4,
            },
            measure: MeasureSettings::new(2, 10, 3, 600),
            // 214M parameters with their gradients and AdamW's moments
            // (3.4 GB), activations of 32 x 1024 tokens, logits over the
            // 30522-token vocabulary: measured to run on a 141 GB H200.
            needs_gib: 40.0,
        },
    }
}

impl LmConfig {
    /// The preset's sizes with the cell's `--set` knobs applied.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let mut config = presets(cell.preset).sizes;
        let model = &mut config.model;
        let train = &mut config.train;
        cell.set_option("layers", &mut model.layers)?;
        cell.set_option("dim", &mut model.dim)?;
        cell.set_option("heads", &mut model.heads)?;
        cell.set_option("ffn", &mut model.ffn_dim)?;
        cell.set_option("context", &mut model.context)?;
        cell.set_option("dropout", &mut model.dropout)?;
        cell.set_option("batch_size", &mut train.batch_size)?;
        cell.set_option("learning_rate", &mut train.learning_rate)?;
        cell.set_option("weight_decay", &mut train.weight_decay)?;
        cell.set_option("warmup_steps", &mut train.warmup_steps)?;
        cell.set_option("text_files", &mut config.text_files)?;
        cell.set_option("eval_batches", &mut config.eval_batches)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        self.model.validate()?;
        ensure!(self.train.batch_size >= 1, "batch_size must be at least 1");
        ensure!(self.text_files >= 1, "text_files must be at least 1");
        ensure!(self.eval_batches >= 1, "eval_batches must be at least 1");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS, knobs, LmConfig::for_cell);
    }

    #[test]
    fn warm_up_is_linear_then_constant() {
        let train = presets(Preset::Quick).sizes.train;
        assert_eq!(train.learning_rate_at(1), 3e-4 / 200.0);
        assert_eq!(train.learning_rate_at(100), 1.5e-4);
        assert_eq!(train.learning_rate_at(200), 3e-4);
        assert_eq!(train.learning_rate_at(5000), 3e-4);
        let no_warmup = TrainConfig {
            warmup_steps: 0,
            ..train
        };
        assert_eq!(no_warmup.learning_rate_at(1), 3e-4);
    }

    #[test]
    fn paper_preset_is_the_original_size() {
        let paper = presets(Preset::Paper).sizes;
        let m = &paper.model;
        assert_eq!(
            (m.layers, m.dim, m.heads, m.ffn_dim, m.context),
            (12, 1024, 16, 4096, 1024)
        );
        assert_eq!(paper.train.batch_size, 32);
        assert_eq!(
            (paper.train.learning_rate, paper.train.weight_decay),
            (3e-4, 1e-5)
        );
    }

    #[test]
    fn bad_sizes_are_refused_with_the_reason() {
        let mut config = presets(Preset::Quick).sizes;
        config.model.heads = 3;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("multiple of heads (3)"), "{error}");
    }
}
