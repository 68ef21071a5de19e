//! bench-lm-train: training a decoder-only transformer language model from
//! scratch, MLX vs PyTorch: the time of one training step (forward,
//! backward, AdamW update), tokens/s and peak memory.
//!
//! **Model**: mlx-examples' `transformer_lm` TransformerLM: token embedding
//! plus sinusoidal positions (MLX's `SinusoidalPositionalEncoding`
//! formula), pre-norm blocks (LayerNorm eps 1e-5, causal self-attention
//! without projection biases, ReLU feed-forward), a final LayerNorm and an
//! untied output projection. Attention is each framework's fused
//! `scaled_dot_product_attention` with its causal mode.
//!
//! **Same start, same data**: the initial weights are generated on the host
//! from a seed (MLX's default initialisers' distributions), written to ONE
//! safetensors checkpoint, and loaded into both twins by name, with a clear
//! error for a missing, mis-shaped or unexpected tensor. Both twins train
//! on the same batches in the same order.
//!
//! **Text and tokenizer**: Shakespeare's plays from the asset `shakespeare`
//! (the sorted modern-spelling `*_gut.txt` files), tokenised once, untimed,
//! with the WordPiece tokenizer of the asset `minilm` (bert-base-uncased's
//! vocabulary, 30522 tokens) through the tokenizers crate. Why this one: it
//! is a real, published tokenizer that ships offline with the suite, it is
//! deterministic (nothing is trained at set-up, so nothing can drift between
//! library versions or thread counts), and its vocabulary is the size of
//! real LMs' (GPT-2 50257, Llama 32000), so the output projection and the
//! softmax weigh in a step as they do in real training; a small BPE trained
//! on the plays would make that part a toy. Its cost: it is uncased. Its
//! fixed truncation and padding at 128 tokens (for sentence embeddings) are
//! switched off, and `[SEP]` marks the end of each play.
//!
//! **Optimiser**: AdamW, lr 3e-4 with a linear warm-up, weight decay 1e-5,
//! betas (0.9, 0.999), eps 1e-8, as mlx-examples; both twins take
//! PyTorch's update (`torch::optim::AdamW`, bias-corrected), the MLX twin
//! through its own few lines (see [`mlx::AdamW`] for why not mlx-rs's).
//!
//! **Precision**: `f32` everywhere, or `bf16` weights, activations,
//! gradients and AdamW moments on both twins, with the logits cast to
//! float32 for the loss and the AdamW arithmetic in float32 on both.
//! Dropout is the same on both (rate 0 by default, then skipped on both).
//!
//! **Execution** (`--execution best`, the default): MLX compiles the whole
//! step (forward, backward, update) with `compile_with_state`, as
//! mlx-examples does with `mx.compile`, and evaluates it once. PyTorch
//! follows its whole-network CUDA-graph recipe: fused AdamW
//! (`_fused_adamw_`, step count and learning rate on the device) and, on
//! CUDA, the whole step (forward, backward, update) captured once as a
//! CUDA graph and replayed, each batch copied into the graph's inputs (see
//! [`torch`]); off CUDA nothing is captured and the same ops run one by
//! one. tch has no `torch.compile`, so no Inductor kernels on either path.
//! `--execution eager` runs both op by op (PyTorch with libtorch's
//! per-parameter AdamW); each row's `execution=` says what ran.
//!
//! **Timed**: exactly one training step per repetition, synchronised; the
//! batches are on the device before timing. Model building, checkpoint
//! loading, tokenising and the held-out loss are outside it. The original
//! study's flaws (a PyTorch twin whose optimiser never stepped, dropout on
//! one side only, set-up inside the clock) cannot recur: the parity tests
//! compare the losses of several steps, which depend on every update.
//!
//! # What it measures
//!
//! Training a decoder-only transformer language model from scratch, as
//! mlx-examples' `transformer_lm`: token embedding plus sinusoidal
//! positions, pre-norm blocks (causal self-attention through each
//! framework's fused `scaled_dot_product_attention`, ReLU feed-forward),
//! final LayerNorm, untied output layer. One timed repetition is one
//! training step, synchronised: forward, backward and AdamW update (`step`,
//! the headline; tokens/s = batch x context). Both twins load ONE seeded
//! safetensors checkpoint and train on the same batches in the same order:
//! Shakespeare's plays (asset `shakespeare`, the `*_gut.txt` files)
//! tokenised once, untimed, with MiniLM's bert-base-uncased WordPiece
//! tokenizer (30522 tokens: real, offline, deterministic, and a real LM's
//! vocabulary size, so the output layer weighs in as in real training).
//! AdamW as mlx-examples (lr 3e-4, linear warm-up over 200 steps, weight
//! decay 1e-5); both twins take PyTorch's bias-corrected update (the MLX
//! twin in a few lines: mlx-rs's AdamW has no bias correction and would
//! turn bf16 into f32). The MLX step is compiled (`compile_with_state`, as
//! mlx-examples compiles it; fused CPU kernels need g++); PyTorch's runs
//! fused AdamW and, on CUDA, is captured once as a CUDA graph and replayed
//! (`docs/METHOD.md`, "Execution modes"). `bf16`: weights, activations,
//! gradients and AdamW moments in bf16 on both twins, loss and AdamW
//! arithmetic in f32. Dropout: the same rate and places on both (0 by
//! default). The row also gives the held-out loss before and after the
//! timed steps and the first and last step's loss (untimed).
//!
//! # Presets and knobs
//!
//! - `quick`: 4 layers, dim 256, 4 heads, FFN 1024, context 128, batch 4,
//!   4 plays (about 1 s per step on 2 CPU cores).
//! - `paper`: 12 layers, dim 1024, 16 heads, FFN 4096, context 1024,
//!   batch 32 (as the original), all 42 plays.
//!
//! `--set layers= dim= heads= ffn= context= batch_size= dropout=
//! learning_rate= weight_decay= warmup_steps= text_files= eval_batches=
//! record_losses=` (`record_losses=true`: the row lists every step's loss,
//! `losses=`, for the GPU self-test that compares eager and best mode).
//!
//! # Tests
//!
//! From one checkpoint, first-step losses agree within 1e-5 relative and 5
//! steps' within 1e-3 (float32; measured 9e-8 and 2e-7); the loss falls on
//! Shakespeare over 30 steps for both; a missing, mis-shaped or extra
//! tensor is an error naming it and both shapes.
//!
//! # Against the original study
//!
//! The original study's language-model training benchmark never stepped its
//! PyTorch optimiser, used dropout on one side only and timed more than the
//! step; here both twins run their AdamW update every step (the parity test
//! compares several steps' losses, which depend on every update), dropout
//! is the same on both, and only the step is timed.

pub mod config;
pub mod data;
pub mod mlx;
pub mod torch;
pub mod weights;
pub mod workload;

use anyhow::Result;
use bench_core::{measure, CaseResult, Cell, Preset, Runtime, Settings, Throughput};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

pub use config::ModelConfig;
pub use data::{Batch, Dataset};
pub use workload::{LmConfig, TrainConfig};

pub struct LmTrain;

/// What both twins share: the configuration, the tokenised text and the
/// one initial checkpoint.
pub struct Work {
    pub config: LmConfig,
    pub data: Dataset,
    pub checkpoint: std::path::PathBuf,
}

/// What each framework's trainer provides (`mlx::Trainer`, `torch::Trainer`,
/// in this order).
pub trait LmTrainer: Sized {
    type Runtime: Runtime;
    /// A batch on the device.
    type DeviceBatch;
    /// The model from the one checkpoint, its AdamW; `seed` seeds the
    /// dropout masks.
    fn new(
        runtime: &Self::Runtime,
        config: &LmConfig,
        checkpoint: &std::path::Path,
        seed: u64,
        execution: bench_core::Execution,
    ) -> Result<Self>;
    /// The row's `execution=`.
    fn execution(&self) -> &'static str;
    /// The row's `optimizer=`.
    fn optimizer(&self) -> &'static str;
    /// Copies a host batch to the device (untimed set-up).
    fn upload(&self, batch: &Batch) -> Result<Self::DeviceBatch>;
    /// One training step: forward, backward, AdamW update, all evaluated.
    /// Returns the step's loss (before the update).
    fn train_step(&mut self, batch: &Self::DeviceBatch) -> Result<f32>;
    /// Mean loss over held-out batches, without dropout or gradients.
    fn eval_loss(&mut self, batches: &[Self::DeviceBatch]) -> Result<f32>;
    /// The current weights by name, as float32 on the host.
    fn weights(&self) -> Result<Vec<(String, bench_core::host::HostTensor)>>;
}

impl TwinBenchmark for LmTrain {
    const NAME: &'static str = "lm-train";
    type Work = Work;

    fn knobs() -> &'static [bench_core::Knob] {
        &workload::KNOBS
    }

    type Sizes = workload::LmConfig;

    fn presets(preset: Preset) -> bench_core::PresetRow<Self::Sizes> {
        workload::presets(preset)
    }

    fn prepare(cell: &Cell) -> Result<Work> {
        let config = LmConfig::for_cell(cell)?;
        let data = Dataset::shakespeare(&config, cell.seed)?;
        let checkpoint = weights::cached_checkpoint(&config.model, cell.seed)?;
        Ok(Work {
            config,
            data,
            checkpoint,
        })
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        measure_twin::<mlx::Trainer>(runtime, cell, work)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        measure_twin::<torch::Trainer>(runtime, cell, work)
    }
}

/// The same steps for either twin: data, checkpoint, model and batches
/// (untimed), the held-out loss (untimed), the timed training steps, the
/// held-out loss again.
fn measure_twin<T: LmTrainer>(
    runtime: &T::Runtime,
    cell: &Cell,
    work: &Work,
) -> Result<Vec<CaseResult>> {
    let (config, data) = (&work.config, &work.data);
    let mut trainer = T::new(runtime, config, &work.checkpoint, cell.seed, cell.execution)?;
    let steps = cell.measure.warmup + cell.measure.repetitions;
    let batches = (0..steps)
        .map(|index| trainer.upload(&data.train_batch(index)))
        .collect::<Result<Vec<_>>>()?;
    let held_out = data
        .eval_batches(config.eval_batches)
        .iter()
        .map(|batch| trainer.upload(batch))
        .collect::<Result<Vec<_>>>()?;
    let eval_before = trainer.eval_loss(&held_out)?;
    let mut losses = Vec::with_capacity(steps);
    runtime.reset_peak_memory();
    let samples = measure(&cell.measure, runtime, || {
        losses.push(trainer.train_step(&batches[losses.len()])?);
        Ok(())
    })?;
    let peak_memory_bytes = runtime.peak_memory_bytes();
    let figures = Figures {
        losses,
        execution: trainer.execution(),
        optimizer: trainer.optimizer(),
        eval_before,
        eval_after: trainer.eval_loss(&held_out)?,
        train_tokens: data.train_tokens(),
        eval_tokens: data.eval_tokens(),
        eval_batches: held_out.len(),
    };
    let mut step = step_case(cell, config, samples, peak_memory_bytes, &figures);
    if workload::record_losses(cell)? {
        step.settings.push(
            bench_core::settings::LOSSES,
            bench_core::settings::losses_text(&figures.losses),
        );
    }
    Ok(vec![step])
}

/// What training produced besides timings.
struct Figures {
    /// The loss of every step, warm-up included.
    losses: Vec<f32>,
    execution: &'static str,
    optimizer: &'static str,
    eval_before: f32,
    eval_after: f32,
    train_tokens: usize,
    eval_tokens: usize,
    eval_batches: usize,
}

/// The headline case: one training step, with tokens/s and every setting.
fn step_case(
    cell: &Cell,
    config: &LmConfig,
    samples: Vec<f64>,
    peak_memory_bytes: Option<u64>,
    figures: &Figures,
) -> CaseResult {
    let (m, t) = (&config.model, &config.train);
    let dtype = cell.precision.dtype_name();
    let settings = Settings::new()
        .with(
            "timed",
            "one step: forward + backward + AdamW update + reading the loss",
        )
        .with("execution", figures.execution)
        .with("tokenizer", data::TOKENIZER_DESCRIPTION)
        .with(
            "text",
            format!("{} Shakespeare *_gut.txt files", config.text_files),
        )
        .with("train_tokens", figures.train_tokens)
        .with("eval_tokens", figures.eval_tokens)
        .with("vocab", m.vocab_size)
        .with("layers", m.layers)
        .with("dim", m.dim)
        .with("heads", m.heads)
        .with("ffn", m.ffn_dim)
        .with("context", m.context)
        .with("batch_size", t.batch_size)
        .with("parameters", m.parameter_count())
        .with("dropout", m.dropout)
        .with("optimizer", figures.optimizer)
        .with(
            "update",
            format!(
                "AdamW (PyTorch's bias-corrected update) betas {}/{} eps {:e}",
                t.beta1, t.beta2, t.eps
            ),
        )
        .with("learning_rate", t.learning_rate)
        .with("weight_decay", t.weight_decay)
        .with("warmup_steps", t.warmup_steps)
        .with(
            "precision_policy",
            format!(
                "weights activations gradients and AdamW moments in {dtype}; \
                 loss and AdamW arithmetic in float32"
            ),
        )
        .with("positions", "sinusoidal (MLX formula) host table")
        .with("attention", "fused scaled_dot_product_attention causal")
        .with(
            "initial_weights",
            format!("one seeded host checkpoint (seed {})", cell.seed),
        )
        .with("steps_trained", figures.losses.len())
        .with("loss_first_step", format_loss(figures.losses.first()))
        .with("loss_last_step", format_loss(figures.losses.last()))
        .with("eval_batches", figures.eval_batches)
        .with("eval_loss_before", format!("{:.4}", figures.eval_before))
        .with("eval_loss_after", format!("{:.4}", figures.eval_after));
    CaseResult {
        case: "step".into(),
        samples,
        throughput: Some(Throughput {
            work_per_repetition: t.tokens_per_step(m) as f64,
            unit: "tokens/s".into(),
        }),
        peak_memory_bytes,
        settings,
    }
}

fn format_loss(loss: Option<&f32>) -> String {
    loss.map(|l| format!("{l:.4}"))
        .unwrap_or_else(|| "-".into())
}
