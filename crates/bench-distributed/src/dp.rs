//! `dp-train`: lm-train's training step, data-parallel over the ranks, in
//! each framework's own way (the twins' `DpTwin`): MLX averages the
//! gradients inside its compiled step (`mlx.nn.average_gradients`),
//! PyTorch runs DDP's Reducer, whose bucketed all-reduces overlap
//! backward.
//!
//! Every rank loads the one checkpoint (written by the launcher before the
//! ranks start) and tokenises the same text; the global batch of step i is
//! lm-train's i-th batch, and rank r trains on its rows r, r + N, ... . At a
//! fixed global batch (`batch_per=global`) N ranks thus follow one rank's
//! losses, up to the order of floating-point sums. After the timed steps
//! every rank's parameter checksum is gathered: data-parallel ranks must
//! hold the same parameters.

use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use bench_core::{CaseResult, Cell, Settings, Summary, Throughput};
use bench_lm_train::data::Batch;
use bench_lm_train::{Dataset, LmConfig, LmTrainer};
use serde::{Deserialize, Serialize};

use crate::rank::{measure_in_step, RankSpec};
use crate::workload::{BatchPer, KNOBS, NO_MULTICAST};
use crate::DistributedTwin;

/// What each framework's twin adds for `dp-train` (`mlx.rs`, `torch.rs`).
pub trait DpTwin: DistributedTwin {
    type Trainer: LmTrainer<Runtime = Self::Runtime>;
    /// The framework's bucket (or all-reduce group) when the cell sets
    /// none: DDP's 25 MiB, `mlx.nn.average_gradients`' 32 MiB.
    const DEFAULT_BUCKET_BYTES: usize;
    /// How the gradients are averaged, for the row.
    const AVERAGING: &'static str;
    /// lm-train's trainer, made data-parallel over `group`.
    fn trainer(
        runtime: &Self::Runtime,
        spec: &RankSpec,
        config: &LmConfig,
        checkpoint: &std::path::Path,
        group: &Self::Group,
        bucket_bytes: usize,
    ) -> Result<Self::Trainer>;
}

/// What the launcher prepares for `dp-train`'s ranks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpSpec {
    /// The cell's preset, seed and `--set` pairs: each rank reads
    /// lm-train's configuration from them.
    pub preset: bench_core::Preset,
    pub seed: u64,
    pub options: Vec<(String, String)>,
    /// The one initial checkpoint.
    pub checkpoint: PathBuf,
}

impl DpSpec {
    /// The launcher's part: the checkpoint, written once before any rank
    /// reads it.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let config = LmConfig::for_cell(cell)?;
        let checkpoint = bench_lm_train::weights::cached_checkpoint(&config.model, cell.seed)?;
        Ok(Self {
            preset: cell.preset,
            seed: cell.seed,
            options: cell.options.clone(),
            checkpoint,
        })
    }
}

/// The batches of a `dp-train` cell.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batches {
    pub global: usize,
    pub rank: usize,
}

impl Batches {
    pub fn new(batch_size: usize, per: BatchPer, world: usize) -> Result<Self> {
        Ok(match per {
            BatchPer::Global => {
                ensure!(
                    batch_size.is_multiple_of(world),
                    "--set batch_size={batch_size} is the global batch (batch_per=global) \
                     and world={world} does not divide it"
                );
                Self {
                    global: batch_size,
                    rank: batch_size / world,
                }
            }
            BatchPer::Rank => Self {
                global: batch_size * world,
                rank: batch_size,
            },
        })
    }
}

/// lm-train's configuration of a `dp-train` cell, with lm-train's
/// `batch_size` read as `batch_per` says.
pub fn lm_config(spec: &RankSpec, dp: &DpSpec) -> Result<(LmConfig, Batches)> {
    let cell = Cell {
        framework: spec.framework,
        device: spec.device,
        precision: spec.precision,
        preset: dp.preset,
        execution: spec.execution,
        threads: spec.threads,
        measure: spec.measure.clone(),
        seed: dp.seed,
        options: dp.options.clone(),
        knobs: &KNOBS,
    };
    let config = LmConfig::for_cell(&cell)?;
    let batches = Batches::new(
        config.train.batch_size,
        spec.sizes.batch_per,
        spec.sizes.world,
    )?;
    Ok((config, batches))
}

/// Rank `rank`'s rows of a global batch: r, r + N, ... .
pub fn shard(global: &Batch, rank: usize, world: usize) -> Batch {
    let row = global.context;
    let rows: Vec<usize> = (rank..global.batch_size).step_by(world).collect();
    let take = |tokens: &[u32]| {
        rows.iter()
            .flat_map(|&r| tokens[r * row..(r + 1) * row].iter().copied())
            .collect()
    };
    Batch {
        batch_size: rows.len(),
        context: row,
        inputs: take(&global.inputs),
        targets: take(&global.targets),
    }
}

/// Rank 0's account of a `dp-train` cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpReport {
    pub device: String,
    pub execution: String,
    pub peak_rss_bytes: Option<u64>,
    pub peak_memory_bytes: Option<u64>,
    /// Seconds per step, the slowest rank's.
    pub samples: Vec<f64>,
    pub rank_medians: Vec<f64>,
    /// Every step's loss, warm-up included: the mean of the ranks' (equal
    /// shards: the global batch's loss).
    pub losses: Vec<f64>,
    /// Each rank's sum of its parameters (float64 on the host).
    pub checksums: Vec<f64>,
    pub batches: Batches,
    pub bucket_bytes: usize,
    pub averaging: String,
    pub parameters: usize,
    pub tokens_per_step: usize,
    pub config: String,
}

/// A rank's `dp-train`: lm-train's trainer over its shard, timed in step
/// with the others; rank 0 writes the report.
pub fn run<T: DpTwin>(runtime: &T::Runtime, rank: usize, spec: &RankSpec) -> Result<()> {
    use bench_core::Runtime;
    let dp = spec
        .dp
        .as_ref()
        .context("a dp-train cell without its spec")?;
    let world = spec.sizes.world;
    let (config, batches) = lm_config(spec, dp)?;
    let mut global = config.clone();
    global.train.batch_size = batches.global;
    let data = Dataset::shakespeare(&global, dp.seed)?;
    let mut mine = config.clone();
    mine.train.batch_size = batches.rank;
    let group = T::join(runtime, spec, rank)?;
    crate::rank::die_if_asked(rank);
    let bucket_bytes = spec.sizes.bucket_mb.map_or(T::DEFAULT_BUCKET_BYTES, |mb| {
        (mb * (1 << 20) as f64) as usize
    });
    let mut trainer = T::trainer(runtime, spec, &mine, &dp.checkpoint, &group, bucket_bytes)?;
    let steps = spec.measure.warmup + spec.measure.repetitions;
    let shards = (0..steps)
        .map(|step| trainer.upload(&shard(&data.train_batch(step), rank, world)))
        .collect::<Result<Vec<_>>>()?;
    let mut losses = Vec::with_capacity(steps);
    runtime.reset_peak_memory();
    let (samples, rank_medians) =
        measure_in_step::<T>(runtime, &group, rank, world, &spec.measure, || {
            losses.push(trainer.train_step(&shards[losses.len()])?);
            Ok(())
        })?;
    let peak_memory_bytes = runtime.peak_memory_bytes();
    // Untimed: the global losses and every rank's checksum, gathered.
    let losses = losses
        .iter()
        .map(|&loss| {
            let all = T::gather(&group, runtime, rank, world, f64::from(loss))?;
            Ok(all.iter().sum::<f64>() / world as f64)
        })
        .collect::<Result<Vec<_>>>()?;
    let checksum: f64 = trainer
        .weights()?
        .iter()
        .flat_map(|(_, tensor)| tensor.data.iter().map(|&x| f64::from(x)))
        .sum();
    let checksums = T::gather(&group, runtime, rank, world, checksum)?;
    if rank == 0 {
        let m = &config.model;
        let report = DpReport {
            device: runtime.device_description(),
            execution: trainer.execution().to_owned(),
            peak_rss_bytes: bench_core::memory::peak_rss_bytes(),
            peak_memory_bytes,
            samples,
            rank_medians,
            losses,
            checksums,
            batches,
            bucket_bytes,
            averaging: T::AVERAGING.to_owned(),
            parameters: m.parameter_count(),
            tokens_per_step: batches.global * m.context,
            config: format!(
                "layers {} dim {} heads {} ffn {} context {} vocab {}",
                m.layers, m.dim, m.heads, m.ffn_dim, m.context, m.vocab_size
            ),
        };
        std::fs::write(&spec.report, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", spec.report.display()))?;
    }
    Ok(())
}

/// The `dp-train` row: global tokens/s (the slowest rank's step), per-rank
/// tokens/s, the losses and the ranks' checksums.
pub fn describe(spec: &RankSpec, report: &DpReport) -> Result<CaseResult> {
    let world = spec.sizes.world;
    let median = Summary::of(&report.samples)?.median;
    let global = report.tokens_per_step as f64 / median;
    let spread = report.checksums.iter().copied().fold(f64::MIN, f64::max)
        - report.checksums.iter().copied().fold(f64::MAX, f64::min);
    let join = |values: &[f64], digits: usize| {
        values
            .iter()
            .map(|v| format!("{v:.digits$}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut settings = Settings::new()
        .with("world", world)
        .with("backend", &spec.backend)
        .with("model", &report.config)
        .with("parameters", report.parameters)
        .with("global_batch", report.batches.global)
        .with("rank_batch", report.batches.rank)
        .with(
            "batch_per",
            match spec.sizes.batch_per {
                BatchPer::Global => "global",
                BatchPer::Rank => "rank",
            },
        )
        .with("averaging", &report.averaging)
        .with("bucket_bytes", report.bucket_bytes)
        .with("execution", &report.execution)
        .with("tokens_per_s_per_rank", global / world as f64)
        .with("rank_medians_s", join(&report.rank_medians, 6))
        .with("losses", join(&report.losses, 6))
        .with("checksums", join(&report.checksums, 6))
        .with("checksum_spread", spread)
        .with("threads_per_rank", spec.threads);
    if spec.device == bench_core::DeviceKind::Gpu && spec.framework == bench_core::Framework::Torch
    {
        settings.push(
            "cuda_graph",
            "not captured: DDP's Reducer under CUDA-graph capture is not done here",
        );
    }
    if let Some(rss) = report.peak_rss_bytes {
        settings.push("rank0_peak_rss_bytes", rss);
    }
    for (name, value) in NO_MULTICAST {
        settings.push(name, value);
    }
    Ok(CaseResult {
        case: "dp-train".into(),
        samples: report.samples.clone(),
        throughput: Some(Throughput {
            work_per_repetition: report.tokens_per_step as f64,
            unit: "tokens/s".into(),
        }),
        peak_memory_bytes: report.peak_memory_bytes,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_takes_every_worlds_row_of_the_global_batch() {
        let global = Batch {
            batch_size: 4,
            context: 2,
            inputs: vec![0, 0, 1, 1, 2, 2, 3, 3],
            targets: vec![10, 10, 11, 11, 12, 12, 13, 13],
        };
        let second = shard(&global, 1, 2);
        assert_eq!(second.batch_size, 2);
        assert_eq!(second.inputs, [1, 1, 3, 3]);
        assert_eq!(second.targets, [11, 11, 13, 13]);
        assert_eq!(shard(&global, 0, 1).inputs, global.inputs);
    }

    #[test]
    fn a_global_batch_must_divide_among_the_ranks() {
        let b = Batches::new(8, BatchPer::Global, 2).unwrap();
        assert_eq!((b.global, b.rank), (8, 4));
        let b = Batches::new(8, BatchPer::Rank, 2).unwrap();
        assert_eq!((b.global, b.rank), (16, 8));
        let error = Batches::new(5, BatchPer::Global, 2)
            .unwrap_err()
            .to_string();
        assert!(error.contains("world=2 does not divide it"), "{error}");
    }
}
