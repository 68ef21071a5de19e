//! The work, independent of framework: sizes per preset, `--set` knobs,
//! the optimiser's settings, and accuracy on the host.

use std::sync::LazyLock;

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;
use bench_core::{Cell, Kind, Knob, KnobDefaults, MeasureSettings, Preset, PresetRow, Settings};

/// The default model: 22M parameters, 6 layers, 384 wide; a registry copy
/// exists for offline use (asset `minilm`).
pub const MINILM: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// The original BERT (110M parameters); Hub only.
pub const BERT_BASE: &str = "google-bert/bert-base-uncased";

/// Emails of the training split, and of the test split.
pub const TRAIN_SPLIT_EMAILS: usize = 4837;
pub const TEST_SPLIT_EMAILS: usize = 1209;

/// The `--set` knobs; defaults are the quick preset's (the paper's in
/// brackets), read from [`presets`].
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| knobs(&KnobDefaults::of(presets)));

/// The knobs, with the defaults that both presets' settings give.
pub fn knobs(defaults: &KnobDefaults<FineTuneConfig>) -> Vec<Knob> {
    let emails =
        |n: Option<usize>, split: usize| n.map_or(format!("all {split}"), |n| n.to_string());
    vec![
        Knob::new(
            "model",
            Kind::Model,
            defaults.text(|c| c.model.clone()),
            "a BERT: Hub id, or a folder with config.json, model.safetensors, tokenizer.json",
        ),
        Knob::int(
            "seq_len",
            8,
            512,
            defaults.text(|c| c.seq_len),
            "tokens per email (cut or padded)",
        ),
        Knob::int(
            "batch_size",
            1,
            65_536,
            defaults.text(|c| c.batch_size),
            "emails per training step",
        ),
        Knob::new(
            "lr",
            Kind::Positive,
            defaults.text(|c| format!("{:e}", c.optimizer.learning_rate)),
            "AdamW's learning rate",
        ),
        Knob::new(
            "target_accuracy",
            Kind::Float { min: 0.0, max: 1.0 },
            defaults.text(|c| c.target_accuracy),
            "test accuracy that ends time-to-accuracy",
        ),
        Knob::at_least(
            "eval_every",
            1,
            defaults.text(|c| c.eval_every),
            "training steps between evaluations",
        ),
        Knob::at_least(
            "max_epochs",
            1,
            defaults.text(|c| c.max_epochs),
            "epochs before giving up on the target",
        ),
        Knob::at_least(
            "train_emails",
            1,
            defaults.text(|c| emails(c.train_emails, TRAIN_SPLIT_EMAILS)),
            "training emails used",
        ),
        Knob::at_least(
            "test_emails",
            1,
            defaults.text(|c| emails(c.test_emails, TEST_SPLIT_EMAILS)),
            "test emails evaluated",
        ),
        Knob::new(
            "time_to_accuracy",
            Kind::Bool,
            defaults.text(|c| c.time_to_accuracy),
            "run the time-to-accuracy case (minutes on a CPU)",
        ),
        Knob::new(
            "offline",
            Kind::Bool,
            defaults.text(|c| c.offline),
            "use the registry copy of MiniLM without asking the Hub",
        ),
        Knob::new(
            "record_losses",
            Kind::Bool,
            "false",
            "list every step's loss in the step row (losses=); reads each loss inside the timed step",
        ),
    ]
}

/// `--set record_losses=true`: whether the step row lists every step's
/// loss (warm-up included), so that eager and best mode can be compared
/// step by step (`bundle/selftest.sh`). Off by default: reading a loss
/// back waits for the device inside the timed step.
pub fn record_losses(cell: &Cell) -> Result<bool> {
    Ok(cell.option("record_losses")?.unwrap_or(false))
}

/// AdamW as both frameworks define it by default in PyTorch: bias
/// correction, decoupled weight decay `p -= lr * wd * p`, eps added to
/// the bias-corrected sqrt(v). Applied to every parameter alike.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerSettings {
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

impl OptimizerSettings {
    /// AdamW's hyper-parameters besides the learning rate, as both twins take them.
    pub fn hyper(&self) -> bench_core::AdamWHyper {
        bench_core::AdamWHyper {
            beta1: self.beta1,
            beta2: self.beta2,
            weight_decay: self.weight_decay,
            eps: self.eps,
        }
    }

    pub fn adamw(learning_rate: f64) -> Self {
        Self {
            learning_rate,
            weight_decay: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }
}

/// One fine-tuning run's settings. Dropout is 0 everywhere, so that the
/// twins compute the same function and runs repeat exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct FineTuneConfig {
    /// Hugging Face Hub id of the pretrained BERT.
    pub model: String,
    /// True when the preset chose the model (it may then fall back to
    /// MiniLM offline); false when `--set model=` asked for it.
    pub model_is_default: bool,
    pub seq_len: usize,
    pub batch_size: usize,
    pub optimizer: OptimizerSettings,
    /// The quality gate: test accuracy the fine-tune must reach.
    pub target_accuracy: f64,
    /// Training steps between evaluations on the test emails.
    pub eval_every: usize,
    /// Epochs over the training emails before giving up on the target.
    pub max_epochs: usize,
    /// Training emails used (None: all [`TRAIN_SPLIT_EMAILS`] of the split).
    pub train_emails: Option<usize>,
    /// Test emails evaluated (None: all [`TEST_SPLIT_EMAILS`] of the split).
    pub test_emails: Option<usize>,
    /// Whether to run the `time-to-accuracy` case (minutes on a CPU).
    pub time_to_accuracy: bool,
    /// Use the registry copy without asking the Hub (MiniLM only).
    pub offline: bool,
}

/// The one table of settings per preset (see [`bench_core::presets`]):
/// the cells' work, the rows' measurement settings, the knobs' defaults
/// and the Criterion harness all read it.
pub fn presets(preset: Preset) -> PresetRow<FineTuneConfig> {
    match preset {
        // One to a few seconds per step on a 2-core CPU; the target
        // is typically reached after 20-30 steps.
        Preset::Quick => PresetRow {
            sizes: FineTuneConfig {
                model: MINILM.to_owned(),
                model_is_default: true,
                seq_len: 128,
                batch_size: 16,
                optimizer: OptimizerSettings::adamw(5e-5),
                target_accuracy: 0.95,
                // Evaluating costs about as much as training here.
                eval_every: 8,
                max_epochs: 1,
                train_emails: None,
                // 12 batches per evaluation: the target is checked often
                // without evaluation dominating the run.
                test_emails: Some(192),
                time_to_accuracy: true,
                offline: false,
            },
            // A step takes seconds on a 2-core CPU.
            measure: MeasureSettings::new(1, 5, 3, 20),
            needs_gib: 1.0,
        },
        // The original study fine-tuned with sequences of 128 tokens,
        // batch 8, AdamW at lr 5e-5, 3 epochs (a small BERT trained
        // from scratch on NLI pairs); here a pretrained bert-base, which a
        // laptop holds as well.
        Preset::Laptop | Preset::Paper => PresetRow {
            sizes: FineTuneConfig {
                model: BERT_BASE.to_owned(),
                model_is_default: true,
                seq_len: 128,
                batch_size: 8,
                optimizer: OptimizerSettings::adamw(5e-5),
                target_accuracy: 0.95,
                eval_every: 50,
                max_epochs: 3,
                train_emails: None,
                test_emails: None,
                time_to_accuracy: true,
                offline: false,
            },
            measure: MeasureSettings::new(3, 30, 5, 300),
            // bert-base's 110M parameters with gradients and AdamW's moments.
            needs_gib: 3.0,
        },
    }
}

impl FineTuneConfig {
    /// The preset's settings with the cell's `--set` knobs applied:
    /// model, seq_len, batch_size, lr, target_accuracy, eval_every,
    /// max_epochs, train_emails, test_emails, time_to_accuracy, offline.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let mut config = presets(cell.preset).sizes;
        if let Some(model) = cell.option::<String>("model")? {
            config.model = model;
            config.model_is_default = false;
        }
        cell.set_option("seq_len", &mut config.seq_len)?;
        cell.set_option("batch_size", &mut config.batch_size)?;
        cell.set_option("lr", &mut config.optimizer.learning_rate)?;
        cell.set_option("target_accuracy", &mut config.target_accuracy)?;
        cell.set_option("eval_every", &mut config.eval_every)?;
        cell.set_option("max_epochs", &mut config.max_epochs)?;
        if let Some(v) = cell.option("train_emails")? {
            config.train_emails = Some(v);
        }
        if let Some(v) = cell.option("test_emails")? {
            config.test_emails = Some(v);
        }
        cell.set_option("time_to_accuracy", &mut config.time_to_accuracy)?;
        cell.set_option("offline", &mut config.offline)?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.seq_len >= 8, "seq_len {} is too short", self.seq_len);
        ensure!(self.batch_size >= 1, "batch_size must be at least 1");
        ensure!(self.eval_every >= 1, "eval_every must be at least 1");
        ensure!(self.max_epochs >= 1, "max_epochs must be at least 1");
        ensure!(
            (0.0..=1.0).contains(&self.target_accuracy),
            "target_accuracy {} is not in [0, 1]",
            self.target_accuracy
        );
        ensure!(self.optimizer.learning_rate > 0.0, "lr must be positive");
        Ok(())
    }

    /// The settings for the result rows.
    pub fn settings(&self) -> Settings {
        let emails = |n: Option<usize>| n.map_or("all".to_owned(), |n| n.to_string());
        Settings::new()
            .with("model", &self.model)
            .with("seq_len", self.seq_len)
            .with("batch_size", self.batch_size)
            .with("lr", self.optimizer.learning_rate)
            .with("optimizer", optimizer_description(&self.optimizer))
            .with("dropout", 0)
            .with("train_emails", emails(self.train_emails))
            .with("test_emails", emails(self.test_emails))
    }
}

fn optimizer_description(o: &OptimizerSettings) -> String {
    format!(
        "AdamW(bias-corrected, betas=({}, {}), eps={}, weight_decay={})",
        o.beta1, o.beta2, o.eps, o.weight_decay
    )
}

/// How many rows of `logits` [batch, classes] have their largest value at
/// the row's label.
pub fn correct_predictions(logits: &HostTensor, labels: &[i32]) -> Result<usize> {
    ensure!(
        logits.shape.len() == 2 && logits.shape[0] == labels.len(),
        "logits of shape {:?} for {} labels",
        logits.shape,
        labels.len()
    );
    let classes = logits.shape[1];
    Ok(logits
        .data
        .chunks_exact(classes)
        .zip(labels)
        .filter(|(row, &label)| {
            let best =
                row.iter().enumerate().fold(
                    (0, f32::MIN),
                    |best, (i, &v)| if v > best.1 { (i, v) } else { best },
                );
            best.0 as i32 == label
        })
        .count())
}

/// Mean of the last hidden state over real tokens, L2-normalised: the
/// sentence embedding all-MiniLM-L6-v2 was trained for.
pub fn sentence_embeddings(hidden: &HostTensor, mask: &[i32]) -> Result<Vec<Vec<f32>>> {
    ensure!(
        hidden.shape.len() == 3,
        "hidden states of shape {:?}",
        hidden.shape
    );
    let (batch, seq, width) = (hidden.shape[0], hidden.shape[1], hidden.shape[2]);
    ensure!(
        mask.len() == batch * seq,
        "mask of {} for {batch} x {seq}",
        mask.len()
    );
    Ok((0..batch)
        .map(|b| {
            let mut sum = vec![0.0f32; width];
            let mut count = 0.0f32;
            for s in 0..seq {
                if mask[b * seq + s] != 0 {
                    let row = &hidden.data[(b * seq + s) * width..(b * seq + s + 1) * width];
                    sum.iter_mut().zip(row).for_each(|(acc, v)| *acc += v);
                    count += 1.0;
                }
            }
            let mean: Vec<f32> = sum.iter().map(|v| v / count.max(1.0)).collect();
            let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            mean.iter().map(|v| v / norm).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS, knobs, FineTuneConfig::for_cell);
    }

    #[test]
    fn predictions_are_the_row_maximum() {
        let logits = HostTensor::new(vec![3, 2], vec![0.1, 0.9, 2.0, -1.0, 0.0, 0.5]).unwrap();
        assert_eq!(correct_predictions(&logits, &[1, 0, 0]).unwrap(), 2);
        assert!(correct_predictions(&logits, &[1, 0]).is_err());
    }

    #[test]
    fn embeddings_average_real_tokens_only() {
        // two tokens, the second padding: the embedding is the first, normalised
        let hidden = HostTensor::new(vec![1, 2, 2], vec![3.0, 4.0, 100.0, -100.0]).unwrap();
        let e = sentence_embeddings(&hidden, &[1, 0]).unwrap();
        assert_eq!(e, vec![vec![0.6, 0.8]]);
    }
}
