//! bench-bert: fine-tuning a pretrained BERT for sequence classification
//! (SpamAssassin spam vs ham), MLX vs PyTorch.
//!
//! Cases: `step` (one training step: forward, backward, AdamW; samples/s)
//! and `time-to-accuracy` (the training time a fresh fine-tune needs to
//! reach the target test accuracy, evaluations excluded; one sample per
//! cell). Reaching the target is a quality gate, as in MLPerf: a twin that
//! does not reach it fails the cell instead of reporting a speed.
//!
//! Precision: the weights and AdamW state are float32 in every run. At
//! `bf16` both twins run the forward and backward in bfloat16, casting
//! each weight where it is used (PyTorch's autocast does the same for
//! matmuls), with the loss in float32: mixed precision, alike on both.
//!
//! # What it measures
//!
//! Fine-tuning a pretrained BERT for sequence classification: SpamAssassin
//! emails (Subject line + body; 4150 ham, 1896 spam; a fixed 80/20
//! train/test split), a classifier on BERT's pooled `[CLS]`, AdamW with
//! PyTorch's bias correction on both sides, dropout 0. The BERT twins
//! (embeddings with positions and token types, post-LN layers, exact erf
//! GELU, pooler) load any Hugging Face BERT `model.safetensors` +
//! `config.json` + `tokenizer.json` (MiniLM-L6 to bert-large; `bert.`
//! prefix or not; every tensor's shape checked against the config first).
//! Cases: `step` (forward, backward, AdamW on one batch; samples/s) and
//! `time-to-accuracy` (training time until the test accuracy reaches the
//! target, evaluations excluded; a run that never reaches it fails the
//! cell, as MLPerf's quality gate). Tokenising is untimed. Precision:
//! float32 weights and AdamW state always; `bf16` is mixed precision alike
//! on both twins (forward and backward in bfloat16, each weight cast where
//! it is used, as autocast does for matmuls; loss in float32); `f16` is
//! refused (it would need loss scaling).
//!
//! # Presets and knobs
//!
//! - `quick`: all-MiniLM-L6-v2 (22M), sequences of 128, batch 16, lr 5e-5,
//!   target 95% on 192 test emails checked every 8 steps, at most 1 epoch.
//! - `paper`: bert-base-uncased (110M; MiniLM when the Hub is unreachable,
//!   recorded as `model_fallback`), sequences of 128, batch 8, lr 5e-5, up
//!   to 3 epochs, target 95% on all 1209 test emails every 50 steps (the
//!   original fine-tuned a small BERT on NLI pairs with these sequence
//!   length, batch, lr and epochs).
//!
//! Knobs: `--set model=<hub id>` (Hub when online, registry copy of MiniLM
//! offline; the row records `origin`), `seq_len`, `batch_size`, `lr`,
//! `target_accuracy`, `eval_every`, `max_epochs`, `train_emails`,
//! `test_emails`, `time_to_accuracy=false`, `offline=true` (registry copy,
//! no Hub), `record_losses=true` (the step row lists every step's loss,
//! `losses=`, for the GPU self-test that compares eager and best mode).
//!
//! # Against the original study
//!
//! The original study's BERT benchmark trained a small BERT from scratch on
//! NLI sentence pairs; here a pretrained BERT is fine-tuned on labelled
//! emails, so that a quality gate (test accuracy) can show that both twins
//! learn. The email headers other than Subject are dropped: they record how
//! the corpus was collected, not what the mail says.

pub mod config;
pub mod data;
pub mod mlx;
pub mod tokens;
pub mod torch;
pub mod weights;
pub mod workload;

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bench_core::host::HostTensor;
use bench_core::{
    measure_case, CaseResult, Cell, Precision, Preset, Runtime, Settings, Throughput, Unavailable,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};
use model_hub::{ModelFiles, ModelSource, Preference};

pub use config::BertConfig;
pub use data::{permutation, Label, SpamSplit};
pub use tokens::{EncodedSet, LabelledBatch, TextEncoder, TokenBatch};
pub use weights::BertWeights;
pub use workload::{FineTuneConfig, OptimizerSettings, BERT_BASE, MINILM};

/// What the harness needs of a twin's trainer (`mlx::Trainer`,
/// `torch::Trainer`).
pub trait FineTune {
    /// One training step on `batch`: forward, backward, AdamW.
    fn step(&mut self, batch: &LabelledBatch) -> Result<()>;
    /// Class logits [batch, classes] of the current model, on the host.
    fn logits(&mut self, tokens: &TokenBatch) -> Result<HostTensor>;
    /// The loss of the last step.
    fn last_loss(&self) -> Result<f32>;
    /// How the step ran, for the row's `execution=`.
    fn execution(&self) -> &'static str;
    /// Which AdamW ran, for the row's `optimizer=`.
    fn optimizer(&self) -> &'static str;
}

pub struct Bert;

impl TwinBenchmark for Bert {
    const NAME: &'static str = "bert";
    type Work = Prepared;

    fn knobs() -> &'static [bench_core::Knob] {
        &workload::KNOBS
    }

    type Sizes = workload::FineTuneConfig;

    fn presets(preset: Preset) -> bench_core::PresetRow<Self::Sizes> {
        workload::presets(preset)
    }

    fn prepare(cell: &Cell) -> Result<Prepared> {
        if cell.precision == Precision::F16 {
            bail!(Unavailable(
                "float16 fine-tuning needs loss scaling, which neither twin implements; \
                 use bf16"
                    .into()
            ));
        }
        Prepared::load(&FineTuneConfig::for_cell(cell)?, cell.seed)
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, prepared: &Prepared) -> Result<Vec<CaseResult>> {
        runtime.seed(cell.seed)?;
        run_twin(runtime, cell, prepared, || {
            mlx::Trainer::new(
                runtime,
                &prepared.bert,
                &prepared.weights,
                &prepared.fine_tune.optimizer,
                cell.execution,
            )
        })
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, prepared: &Prepared) -> Result<Vec<CaseResult>> {
        runtime.seed(cell.seed)?;
        run_twin(runtime, cell, prepared, || {
            torch::Trainer::new(
                runtime,
                &prepared.bert,
                &prepared.weights,
                &prepared.fine_tune.optimizer,
                cell.execution,
            )
        })
    }
}

/// Everything a twin needs, read and tokenised on the host (untimed), the
/// same for both twins.
pub struct Prepared {
    pub fine_tune: FineTuneConfig,
    pub bert: BertConfig,
    /// Pretrained weights plus the seeded classification head.
    pub weights: BertWeights,
    /// The Hub id of the model used, and where its files came from.
    pub model: String,
    pub origin: String,
    /// Why the preset's model was replaced by MiniLM, if it was.
    pub fallback: Option<String>,
    pub train: EncodedSet,
    pub test: EncodedSet,
}

impl Prepared {
    pub fn load(fine_tune: &FineTuneConfig, seed: u64) -> Result<Self> {
        let (model, files, fallback) = resolve_model(fine_tune)?;
        let bert = BertConfig::from_file(files.path("config.json")?)?;
        let weights =
            BertWeights::read(files.path("model.safetensors")?, &bert, Label::COUNT, seed)?;
        ensure!(
            fine_tune.seq_len <= bert.max_position_embeddings,
            "seq_len {} exceeds the model's {} positions",
            fine_tune.seq_len,
            bert.max_position_embeddings
        );
        let encoder = TextEncoder::from_file(files.path("tokenizer.json")?, fine_tune.seq_len)?;
        let split = SpamSplit::load()?;
        let take = |emails: &[data::Email], limit: Option<usize>| {
            emails[..limit.unwrap_or(emails.len()).min(emails.len())].to_vec()
        };
        let train = encoder.encode_emails(&take(&split.train, fine_tune.train_emails))?;
        let test = encoder.encode_emails(&take(&split.test, fine_tune.test_emails))?;
        ensure!(
            train.len() >= fine_tune.batch_size,
            "{} training emails do not fill one batch of {}",
            train.len(),
            fine_tune.batch_size
        );
        ensure!(!test.is_empty(), "no test emails");
        Ok(Self {
            fine_tune: fine_tune.clone(),
            bert,
            weights,
            model,
            origin: files.origin,
            fallback,
            train,
            test,
        })
    }

    /// Settings shared by every case's row.
    fn settings(&self, cell: &Cell) -> Settings {
        let mut settings = self.fine_tune.settings();
        settings.set("model", &self.model);
        settings.extend(
            Settings::new()
                .with("origin", &self.origin)
                .with("layers", self.bert.num_hidden_layers)
                .with("hidden", self.bert.hidden_size)
                .with("parameters", self.weights.parameter_count())
                .with("train_set", self.train.len())
                .with("weights", weights_description(cell.precision))
                .with("test_set", self.test.len()),
        );
        if let Some(reason) = &self.fallback {
            settings.push("model_fallback", reason);
        }
        settings
    }
}

fn weights_description(precision: Precision) -> &'static str {
    match precision {
        Precision::Bf16 => "float32 with float32 AdamW state, cast to bfloat16 where used",
        _ => "float32 with float32 AdamW state",
    }
}

/// The model's files: Hub first, the registry copy offline (MiniLM only).
/// A preset's bert-base-uncased that cannot be fetched falls back to
/// MiniLM, and the row says so; a model asked with `--set model=` does not.
fn resolve_model(fine_tune: &FineTuneConfig) -> Result<(String, ModelFiles, Option<String>)> {
    const FILES: [&str; 3] = ["config.json", "model.safetensors", "tokenizer.json"];
    let source = |model: &str| ModelSource {
        hub_repo: model.to_owned(),
        offline_asset: (model == MINILM).then(|| "minilm".to_owned()),
    };
    let preference = if fine_tune.offline {
        Preference::OfflineOnly
    } else {
        Preference::Auto
    };
    match model_hub::resolve(&source(&fine_tune.model), &FILES, preference) {
        Ok(files) => Ok((fine_tune.model.clone(), files, None)),
        Err(error) if fine_tune.model_is_default && fine_tune.model != MINILM => {
            let reason =
                format!("{} unavailable ({error:#})", fine_tune.model).replace([';', '\n'], ",");
            eprintln!("warning: {reason}; using {MINILM}");
            let files = model_hub::resolve(&source(MINILM), &FILES, preference)?;
            Ok((MINILM.to_owned(), files, Some(reason)))
        }
        Err(error) => Err(error).with_context(|| format!("fetching {}", fine_tune.model)),
    }
}

/// Both cases for one twin: a fresh trainer each, so that each starts
/// from the pretrained weights and peak memory is per case.
fn run_twin<T: FineTune>(
    runtime: &dyn Runtime,
    cell: &Cell,
    prepared: &Prepared,
    new_trainer: impl Fn() -> Result<T>,
) -> Result<Vec<CaseResult>> {
    let fine_tune = &prepared.fine_tune;
    let order = permutation(prepared.train.len(), cell.seed);
    let batches = prepared.train.batches(&order, fine_tune.batch_size);
    let record_losses = workload::record_losses(cell)?;
    let mut losses = Vec::new();
    let mut trainer = new_trainer()?;
    let mut next = 0;
    let mut step = measure_case(&cell.measure, runtime, "step", || {
        let batch = &batches[next % batches.len()];
        next += 1;
        trainer.step(batch)?;
        if record_losses {
            losses.push(trainer.last_loss()?);
        }
        Ok(())
    })?;
    step.throughput = Some(Throughput {
        work_per_repetition: fine_tune.batch_size as f64,
        unit: "samples/s".into(),
    });
    let modes = Settings::new()
        .with("execution", trainer.execution())
        .with("optimizer", trainer.optimizer());
    step.settings = prepared.settings(cell);
    step.settings.extend(modes.clone());
    step.settings.extend(
        Settings::new()
            .with("steps_run", next)
            .with("last_loss", format!("{:.4}", trainer.last_loss()?)),
    );
    if record_losses {
        step.settings.push(
            bench_core::settings::LOSSES,
            bench_core::settings::losses_text(&losses),
        );
    }
    drop(trainer);
    if !fine_tune.time_to_accuracy {
        return Ok(vec![step]);
    }

    let mut trainer = new_trainer()?;
    runtime.reset_peak_memory();
    let run = train_to_target(&mut trainer, runtime, prepared, cell.seed)?;
    ensure!(
        run.reached,
        "quality gate: test accuracy {:.4} after {} steps ({} epochs) is below the target {} \
         (raise max_epochs or lr with --set)",
        run.accuracy,
        run.steps,
        fine_tune.max_epochs,
        fine_tune.target_accuracy
    );
    let mut to_target = CaseResult {
        case: "time-to-accuracy".into(),
        samples: vec![run.training.as_secs_f64()],
        throughput: None,
        peak_memory_bytes: runtime.peak_memory_bytes(),
        settings: prepared.settings(cell),
    };
    to_target.settings.extend(modes);
    to_target.settings.extend(
        Settings::new()
            .with("target_accuracy", fine_tune.target_accuracy)
            .with("test_accuracy", format!("{:.4}", run.accuracy))
            .with("steps_to_target", run.steps)
            .with("samples_to_target", run.steps * fine_tune.batch_size)
            .with("eval_every", fine_tune.eval_every)
            .with("evaluations", run.evaluations)
            .with("wall_s_with_eval", format!("{:.2}", run.wall.as_secs_f64())),
    );
    Ok(vec![step, to_target])
}

/// How a fine-tune towards the target went.
#[derive(Clone, Debug)]
pub struct AccuracyRun {
    pub reached: bool,
    /// Test accuracy at the last evaluation.
    pub accuracy: f64,
    pub steps: usize,
    pub evaluations: usize,
    /// Training steps only, each bracketed by device synchronisations.
    pub training: Duration,
    /// Everything, evaluations included.
    pub wall: Duration,
}

/// Trains epoch by epoch (a seeded shuffle per epoch, shared by both
/// twins), evaluating on the test emails every `eval_every` steps and at
/// each epoch's end, until the target accuracy or `max_epochs`.
pub fn train_to_target<T: FineTune>(
    trainer: &mut T,
    runtime: &dyn Runtime,
    prepared: &Prepared,
    seed: u64,
) -> Result<AccuracyRun> {
    let fine_tune = &prepared.fine_tune;
    let test_batches = prepared.test.all_batches(fine_tune.batch_size);
    let wall = Instant::now();
    let mut run = AccuracyRun {
        reached: false,
        accuracy: 0.0,
        steps: 0,
        evaluations: 0,
        training: Duration::ZERO,
        wall: Duration::ZERO,
    };
    for epoch in 0..fine_tune.max_epochs {
        let order = permutation(prepared.train.len(), seed.wrapping_add(epoch as u64));
        let batches = prepared.train.batches(&order, fine_tune.batch_size);
        for (i, batch) in batches.iter().enumerate() {
            runtime.synchronize()?;
            let start = Instant::now();
            trainer.step(batch)?;
            runtime.synchronize()?;
            run.training += start.elapsed();
            run.steps += 1;
            if run.steps % fine_tune.eval_every == 0 || i + 1 == batches.len() {
                run.accuracy = accuracy(trainer, &test_batches)?;
                run.evaluations += 1;
                if run.accuracy >= fine_tune.target_accuracy {
                    run.reached = true;
                    run.wall = wall.elapsed();
                    return Ok(run);
                }
            }
        }
    }
    run.wall = wall.elapsed();
    Ok(run)
}

/// The share of `batches`' emails whose predicted class is their label.
pub fn accuracy<T: FineTune>(trainer: &mut T, batches: &[LabelledBatch]) -> Result<f64> {
    let (mut correct, mut total) = (0, 0);
    for batch in batches {
        let logits = trainer.logits(&batch.tokens)?;
        correct += workload::correct_predictions(&logits, &batch.labels)?;
        total += batch.labels.len();
    }
    ensure!(total > 0, "no emails to evaluate");
    Ok(correct as f64 / total as f64)
}
