//! bench-distributed: each framework's own communication across ranks,
//! one process per rank: MLX's distributed ops (`all_sum`; its ring
//! backend on the CPU, NCCL on CUDA) against PyTorch's c10d (`allreduce`
//! and DDP; gloo on the CPU, NCCL on CUDA). On a CUDA machine both twins
//! load the same `libnccl.so.2`, so a gap between them is the framework's,
//! not NCCL's. Issue #26; how the ranks run, and how it would run across
//! Macs: docs/DISTRIBUTED.md.
//!
//! # Cases (`--set case=`)
//!
//! **`allreduce`** (the default), one row per message size
//! (`allreduce-<size>`): `ops` all-reduces (sum) of one message back to
//! back, each on the last one's result, between two synchronisations of
//! the device, in the cell's precision (f32, bf16, f16). A row's samples
//! are the slowest rank's time per repetition. Its settings hold
//! nccl-tests' figures (their definitions): `latency_us`, one all-reduce
//! at the median; `algbw_gbs` = bytes / latency; `busbw_gbs` = algbw x
//! 2(n-1)/n, the row's throughput, comparable with the links' bandwidth
//! whatever the world size. Also each rank's median (`rank_medians_s`: a
//! slow rank shows), `backend`, `world`. Before a size is timed, every
//! rank sends rank + 1 and checks that every element of the sum is
//! world(world + 1)/2; the timed messages are zeros (repeated sums stay
//! finite). MLX's `all_sum` returns a new array and the chain is evaluated
//! once per repetition, as MLX is used; PyTorch's `allreduce` works in
//! place, each waited for as `dist.all_reduce` does.
//!
//! **`dp-train`** (`dp.rs`): lm-train's model, checkpoint and batches,
//! data-parallel. Each global batch is lm-train's; rank r trains on its
//! rows r, r + N, ... (`batch_per=global`, the default: lm-train's
//! `batch_size` is the global batch; `rank`: each rank's). The MLX twin
//! averages the gradients inside its compiled step as
//! `mlx.nn.average_gradients` does (gradients concatenated into groups of
//! at least 32 MiB, one `all_sum` each, divided by N). The PyTorch twin
//! runs DDP's own engine, c10d's `Reducer` (through fw-torch's shim: c10d's
//! bucket assignment, 25 MiB buckets and a 1 MiB first one, all-reduces
//! started by autograd hooks during backward), eagerly: DDP under
//! CUDA-graph capture is not done here, and the row says so
//! (`cuda_graph=`). `bucket_mb` sets both frameworks' bucket. One row,
//! `dp-train`: the slowest rank's step, global tokens/s (the throughput)
//! and `tokens_per_s_per_rank`, every step's global loss (`losses`: the
//! mean of the ranks'), and every rank's parameter checksum (`checksums`,
//! `checksum_spread`). `world=1` runs the same path with one rank (MLX's
//! one-process group, where its collectives are no-ops; DDP over a gloo or
//! NCCL group of one): the baseline of scaling efficiency E(N) =
//! throughput(N) / (N x throughput(1)) and of exposed communication
//! step(N) - step(1), both read from cells of one sitting (not yet in the
//! report). lm-train's knobs (`layers`, `dim`, `batch_size`, ...) set the
//! model and training.
//!
//! Every row records the three variables that keep NVLink multicast off
//! (`NCCL_NVLS_ENABLE=0`, ...).
//!
//! # Ranks
//!
//! The runner starts the ranks, each this program in a process of its own,
//! and watches them; a rank that dies fails the cell and the others are
//! stopped (`launch.rs`). Ranks time in step and agree on the repetitions
//! (`rank.rs`). Rank 0 writes the results; the row's peak RSS is the
//! runner's, rank 0's is in `rank0_peak_rss_bytes`. On a GPU each rank
//! has one GPU of its own (`world` GPUs are needed, else the cell is
//! skipped); the CPU threads of a cell are shared out among its ranks.
//!
//! # Presets and knobs
//!
//! - `quick` (a 2-core CPU): messages 4 KiB to 16 MiB by x16, 5
//!   all-reduces per repetition; lm-train's quick model.
//! - `laptop`: 4 KiB to 256 MiB by x4, 20 per repetition.
//! - `paper`: 4 KiB to 1 GiB by x4, 20 per repetition (nccl-tests').
//!
//! `--set case=allreduce|dp-train`, `world=N` (default 2; `allreduce`
//! needs 2 or more), `min_bytes`, `max_bytes`, `factor`, `ops`,
//! `bucket_mb`, `batch_per`, and lm-train's. The headline case is
//! `allreduce-16MiB`, which every preset has.
//!
//! # Tests
//!
//! On the CPU (`tests/process.rs`, through the runner): both twins'
//! `allreduce` at world = 2 (MLX's ring over loopback, PyTorch's gloo), f32
//! and bf16; `dp-train` of a tiny model at world 1 and 2, a global batch
//! of 4: two ranks follow one rank's losses within 1e-5 and end with equal
//! checksums; a rank that dies gives a failed row naming it, and no rank
//! is left behind.

pub mod dp;
pub mod launch;
pub mod mlx;
pub mod rank;
pub mod torch;
pub mod workload;

use anyhow::Result;
use bench_core::cli::{Benchmark, CellOutput};
use bench_core::{CaseResult, Cell, Knob, MeasureSettings, Preset, Runtime, Settings, Throughput};

use crate::dp::{DpReport, DpSpec};
use crate::launch::Rendezvous;
use crate::rank::{MessageResult, RankReport, RankSpec};
use crate::workload::{busbw_factor, Case, Message, Sizes, NO_MULTICAST};

/// What each framework's twin provides (`mlx.rs`, `torch.rs`, in this
/// order), inside one rank.
pub trait DistributedTwin {
    type Runtime: Runtime;
    /// The framework's process group.
    type Group;
    /// One message on the rank's device.
    type Buffer;
    /// Joins the cell's group (`spec.backend`) as `rank`.
    fn join(runtime: &Self::Runtime, spec: &RankSpec, rank: usize) -> Result<Self::Group>;
    /// A message of `elements` at the runtime's precision, every element
    /// `value`, evaluated on the runtime's device.
    fn filled(runtime: &Self::Runtime, elements: usize, value: f32) -> Result<Self::Buffer>;
    /// `ops` all-reduces (sum) over the group, back to back, each on the
    /// last one's result, left in `buffer`; issued as the framework's
    /// users issue them (the caller synchronises the device).
    fn allreduce(group: &Self::Group, buffer: &mut Self::Buffer, ops: usize) -> Result<()>;
    /// The largest |element - expected| of `buffer`.
    fn max_abs_diff(buffer: &Self::Buffer, expected: f32) -> Result<f64>;
    /// Every rank's `seconds`, in rank order: each rank's value at its own
    /// index of a zero vector, summed over the group (float32).
    fn gather(
        group: &Self::Group,
        runtime: &Self::Runtime,
        rank: usize,
        world: usize,
        seconds: f64,
    ) -> Result<Vec<f64>>;
    /// The row's `execution=`: what actually ran.
    fn execution(runtime: &Self::Runtime, spec: &RankSpec) -> String;
}

/// The benchmark, as the runner sees it. Not a `bench_twin::TwinBenchmark`:
/// the runner only launches and watches; the frameworks run in the ranks
/// (`rank.rs`), so the runner never holds a device.
pub struct Distributed;

impl Benchmark for Distributed {
    fn name(&self) -> &'static str {
        "distributed"
    }

    fn knobs(&self) -> &'static [Knob] {
        &workload::KNOBS
    }

    /// `--preset auto` chooses before the case is known: the larger of the
    /// two cases' needs (`dp-train`'s is lm-train's, one rank's at most).
    fn needs_gib(&self, preset: Preset) -> f64 {
        let lm_train = bench_lm_train::workload::presets(preset).needs_gib;
        workload::presets(preset).needs_gib.max(lm_train)
    }

    fn measure_settings(&self, preset: Preset) -> MeasureSettings {
        workload::presets(preset).measure
    }

    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        let sizes = Sizes::for_cell(cell)?;
        let backend = rank::backend(cell.framework, cell.device)?;
        let rendezvous = Rendezvous::new()?;
        let dp = match sizes.case {
            Case::DpTrain => Some(DpSpec::for_cell(cell)?),
            Case::Allreduce => None,
        };
        let messages = match sizes.case {
            Case::Allreduce => sizes.messages(),
            Case::DpTrain => Vec::new(),
        };
        let spec = RankSpec {
            framework: cell.framework,
            device: cell.device,
            precision: cell.precision,
            execution: cell.execution,
            threads: (cell.threads / sizes.world).max(1),
            measure: cell.measure.clone(),
            messages: messages
                .into_iter()
                .map(|bytes| Message::new(bytes, cell.precision))
                .collect(),
            sizes,
            dp,
            backend: backend.to_owned(),
            store: rendezvous.store(),
            report: rendezvous.report(),
        };
        if spec.sizes.case == Case::DpTrain {
            let report: DpReport = launch::run(&spec, &rendezvous)?;
            return Ok(CellOutput {
                device_name: format!("{} x {} ranks", report.device, spec.sizes.world),
                cases: vec![dp::describe(&spec, &report)?],
            });
        }
        let report: RankReport = launch::run(&spec, &rendezvous)?;
        Ok(CellOutput {
            device_name: format!("{} x {} ranks", report.device, spec.sizes.world),
            cases: report
                .messages
                .iter()
                .map(|result| describe(&spec, &report, result))
                .collect(),
        })
    }
}

/// A message's row: nccl-tests' figures, and how the ranks ran.
fn describe(spec: &RankSpec, report: &RankReport, result: &MessageResult) -> CaseResult {
    let world = spec.sizes.world;
    let ops = spec.sizes.ops;
    let bytes = result.message.bytes as f64;
    let factor = busbw_factor(world);
    let median = median(&result.samples);
    let latency = median / ops as f64;
    let algbw = bytes / latency / 1e9;
    let rank_medians: Vec<String> = result
        .rank_medians
        .iter()
        .map(|s| format!("{s:.6}"))
        .collect();
    let mut settings = Settings::new()
        .with("world", world)
        .with("backend", &spec.backend)
        .with("bytes", result.message.bytes)
        .with("elements", result.message.elements)
        .with("dtype", spec.precision.dtype_name())
        .with("ops", ops)
        .with("latency_us", latency * 1e6)
        .with("algbw_gbs", algbw)
        .with("busbw_gbs", algbw * factor)
        .with("busbw_factor", factor)
        .with("rank_medians_s", rank_medians.join(" "))
        .with("threads_per_rank", spec.threads)
        .with("execution", &report.execution);
    if let Some(rss) = report.peak_rss_bytes {
        settings.push("rank0_peak_rss_bytes", rss);
    }
    for (name, value) in NO_MULTICAST {
        settings.push(name, value);
    }
    CaseResult {
        case: result.message.case(),
        samples: result.samples.clone(),
        throughput: Some(Throughput {
            work_per_repetition: bytes * ops as f64 * factor / 1e9,
            unit: "GB/s busbw".into(),
        }),
        peak_memory_bytes: result.peak_memory_bytes,
        settings,
    }
}

fn median(values: &[f64]) -> f64 {
    bench_core::Summary::of(values).map_or(f64::NAN, |s| s.median)
}
