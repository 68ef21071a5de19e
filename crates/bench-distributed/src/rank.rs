//! One rank: a process started by the launcher (`launch.rs`) with the
//! cell's spec. It sets up its framework as a runner would, joins the
//! group, measures each message with every rank in step, and (rank 0)
//! writes the cell's report; an error goes to its error file.
//!
//! Every rank times each repetition between two synchronisations of its
//! device; the ranks then sum a vector holding each one's time at its own
//! index with their framework's all-reduce (untimed), so every rank holds
//! every rank's time. The repetition's sample is the slowest rank's, and
//! since all ranks hold the same samples they agree, without talking
//! further, on when the time budget is spent: no rank is left waiting in a
//! collective the others never start.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use bench_core::{
    DeviceKind, Execution, Framework, MeasureSettings, Precision, Runtime, Summary, Unavailable,
};
use bench_twin::{MlxRuntime, TorchRuntime};
use serde::{Deserialize, Serialize};

use crate::dp::{self, DpSpec, DpTwin};
use crate::launch::{error_path, RankError, FAIL_RANK_VAR, RANK_VAR, SPEC_VAR};
use crate::workload::{Case, Message, Sizes};
use crate::{mlx, torch, DistributedTwin};

/// What every rank of a cell is told (the spec file).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankSpec {
    pub framework: Framework,
    pub device: DeviceKind,
    pub precision: Precision,
    pub execution: Execution,
    /// CPU threads of each rank: the cell's, shared out among the ranks.
    pub threads: usize,
    pub measure: MeasureSettings,
    pub sizes: Sizes,
    /// `allreduce`'s messages (none for `dp-train`).
    pub messages: Vec<Message>,
    /// `dp-train`'s configuration and checkpoint.
    pub dp: Option<DpSpec>,
    /// The framework's backend: "ring" or "nccl" (MLX), "gloo" or "nccl"
    /// (PyTorch).
    pub backend: String,
    /// PyTorch's FileStore.
    pub store: PathBuf,
    /// Where rank 0 writes the report; errors go beside it.
    pub report: PathBuf,
}

/// Rank 0's account of the cell.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RankReport {
    /// Rank 0's device, as its runtime describes it.
    pub device: String,
    /// What ran: "eager", or MLX's own CUDA graphs.
    pub execution: String,
    /// Rank 0's peak resident memory (the row's own is the launcher's).
    pub peak_rss_bytes: Option<u64>,
    pub messages: Vec<MessageResult>,
}

/// One message size, measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MessageResult {
    pub message: Message,
    /// Seconds per repetition (`ops` all-reduces), the slowest rank's.
    pub samples: Vec<f64>,
    /// Each rank's median repetition, seconds, in rank order.
    pub rank_medians: Vec<f64>,
    /// The framework's allocator peak on rank 0, where it reports one.
    pub peak_memory_bytes: Option<u64>,
}

/// A rank's `main`: runs the rank and exits 0, or writes its error for the
/// launcher and exits 3.
pub fn main() -> ExitCode {
    let rank: usize = match std::env::var(RANK_VAR).map(|r| r.parse()) {
        Ok(Ok(rank)) => rank,
        _ => {
            eprintln!("error: {RANK_VAR} is not a rank number");
            return ExitCode::from(2);
        }
    };
    let spec = match read_spec() {
        Ok(spec) => spec,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(rank, &spec)));
    let error = match outcome {
        Ok(Ok(())) => return ExitCode::SUCCESS,
        Ok(Err(error)) => RankError {
            unavailable: bench_core::error::unavailable_reason(&error).is_some(),
            message: bench_core::error::unavailable_reason(&error)
                .unwrap_or_else(|| format!("{error:#}")),
        },
        Err(panic) => RankError {
            message: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .map_or_else(|| "panicked".to_owned(), |m| format!("panicked: {m}")),
            unavailable: false,
        },
    };
    eprintln!("error: {}", error.message);
    if let Some(dir) = spec.report.parent() {
        let _ = std::fs::write(
            error_path(dir, rank),
            serde_json::to_vec(&error).unwrap_or_default(),
        );
    }
    ExitCode::from(3)
}

fn read_spec() -> Result<RankSpec> {
    let path = std::env::var_os(SPEC_VAR).with_context(|| format!("{SPEC_VAR} is not set"))?;
    let text = std::fs::read(&path)
        .with_context(|| format!("reading {}", PathBuf::from(&path).display()))?;
    serde_json::from_slice(&text).context("reading the cell's spec")
}

/// Sets the framework up as a runner does (threads, the TF32 switch), then
/// runs the cell's case with its twin.
fn run(rank: usize, spec: &RankSpec) -> Result<()> {
    let hooks = bench_twin::HOOKS
        .iter()
        .find(|hooks| hooks.framework == spec.framework)
        .context("no hooks for the framework")?;
    (hooks.configure_process)(spec.precision, spec.execution, spec.threads);
    match spec.framework {
        Framework::Mlx => {
            let runtime = MlxRuntime::new(spec.device, spec.precision, spec.threads)?;
            run_case::<mlx::Twin>(&runtime, rank, spec)
        }
        Framework::Torch => {
            let runtime = TorchRuntime::new(spec.device, spec.precision, spec.threads)?;
            run_case::<torch::Twin>(&runtime, rank, spec)
        }
    }
}

fn run_case<T: DpTwin>(runtime: &T::Runtime, rank: usize, spec: &RankSpec) -> Result<()> {
    match spec.sizes.case {
        Case::Allreduce => measure::<T>(runtime, rank, spec),
        Case::DpTrain => dp::run::<T>(runtime, rank, spec),
    }
}

/// The same steps for either twin: join, then for each message check the
/// sum once and time its all-reduces.
fn measure<T: DistributedTwin>(runtime: &T::Runtime, rank: usize, spec: &RankSpec) -> Result<()> {
    let world = spec.sizes.world;
    let group = T::join(runtime, spec, rank)?;
    die_if_asked(rank);
    let mut messages = Vec::new();
    for &message in &spec.messages {
        check_sum::<T>(runtime, &group, rank, world, message)?;
        // Zeros: repeated sums stay finite, and no framework is slowed by
        // subnormal numbers.
        let mut buffer = T::filled(runtime, message.elements, 0.0)?;
        runtime.reset_peak_memory();
        let (samples, rank_medians) =
            measure_in_step::<T>(runtime, &group, rank, world, &spec.measure, || {
                T::allreduce(&group, &mut buffer, spec.sizes.ops)
            })
            .with_context(|| message.case())?;
        messages.push(MessageResult {
            message,
            samples,
            rank_medians,
            peak_memory_bytes: runtime.peak_memory_bytes(),
        });
    }
    if rank == 0 {
        let report = RankReport {
            device: runtime.device_description(),
            execution: T::execution(runtime, spec),
            peak_rss_bytes: bench_core::memory::peak_rss_bytes(),
            messages,
        };
        std::fs::write(&spec.report, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", spec.report.display()))?;
    }
    Ok(())
}

/// For the tests: the rank named in [`FAIL_RANK_VAR`] dies here, once it
/// has joined its group, while the others wait in their first collective.
pub fn die_if_asked(rank: usize) {
    if std::env::var(FAIL_RANK_VAR).is_ok_and(|r| r == rank.to_string()) {
        eprintln!("dying on purpose ({FAIL_RANK_VAR})");
        std::process::exit(101);
    }
}

/// Every rank sends rank + 1; every element of the sum must be
/// world(world + 1)/2 (exact in every precision for the world sizes here).
fn check_sum<T: DistributedTwin>(
    runtime: &T::Runtime,
    group: &T::Group,
    rank: usize,
    world: usize,
    message: Message,
) -> Result<()> {
    let mut buffer = T::filled(runtime, message.elements, rank as f32 + 1.0)?;
    T::allreduce(group, &mut buffer, 1)?;
    let expected = (world * (world + 1) / 2) as f32;
    let error = T::max_abs_diff(&buffer, expected)?;
    ensure!(
        error == 0.0,
        "the all-reduce of {} gave elements {error} away from the sum {expected}",
        message.case()
    );
    Ok(())
}

/// [`bench_core::measure`]'s loop, with every rank in step: warm-up, then
/// timed repetitions; each repetition's sample is the slowest rank's.
/// Returns the samples and each rank's median.
pub fn measure_in_step<T: DistributedTwin>(
    runtime: &T::Runtime,
    group: &T::Group,
    rank: usize,
    world: usize,
    settings: &MeasureSettings,
    mut step: impl FnMut() -> Result<()>,
) -> Result<(Vec<f64>, Vec<f64>)> {
    ensure!(settings.repetitions >= 1, "repetitions must be at least 1");
    for _ in 0..settings.warmup {
        step()?;
        runtime.synchronize()?;
    }
    // All ranks leave the warm-up together.
    T::gather(group, runtime, rank, world, 0.0)?;
    let mut samples = Vec::with_capacity(settings.repetitions);
    let mut per_rank = vec![Vec::with_capacity(settings.repetitions); world];
    let mut spent = Duration::ZERO;
    while samples.len() < settings.repetitions {
        if samples.len() >= settings.min_repetitions.max(1) && spent >= settings.time_budget {
            break;
        }
        runtime.synchronize()?;
        let start = Instant::now();
        step()?;
        runtime.synchronize()?;
        let mine = start.elapsed().as_secs_f64();
        let times = T::gather(group, runtime, rank, world, mine)?;
        if times.len() != world {
            bail!("gathered {} ranks' times, expected {world}", times.len());
        }
        let slowest = times.iter().copied().fold(0.0, f64::max);
        for (all, time) in per_rank.iter_mut().zip(&times) {
            all.push(*time);
        }
        spent += Duration::from_secs_f64(slowest);
        samples.push(slowest);
    }
    let medians = per_rank
        .iter()
        .map(|times| Ok(Summary::of(times)?.median))
        .collect::<Result<_>>()?;
    Ok((samples, medians))
}

/// The backend each framework's users run on `device`: MLX's ring on the
/// CPU and NCCL on CUDA; PyTorch's gloo on the CPU and NCCL on CUDA.
pub fn backend(framework: Framework, device: DeviceKind) -> Result<&'static str> {
    Ok(match (framework, device) {
        (Framework::Mlx, DeviceKind::Cpu) => "ring",
        (Framework::Torch, DeviceKind::Cpu) => "gloo",
        (_, DeviceKind::Gpu) if cfg!(target_os = "macos") => {
            bail!(Unavailable(
                "a Mac has one GPU: ranks on several GPUs need several Macs (docs/DISTRIBUTED.md)"
                    .into()
            ))
        }
        (_, DeviceKind::Gpu) => "nccl",
    })
}
