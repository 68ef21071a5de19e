//! The measurement loop: untimed warm-up, then timed repetitions, each
//! bracketed by device synchronisations so that the clock sees all the work.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};

use crate::runtime::Runtime;
use crate::settings::Settings;

/// How much work one repetition does, so that throughput = work / median time.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    pub work_per_repetition: f64,
    /// Unit of work per second, e.g. "GFLOP/s", "tokens/s", "samples/s".
    pub unit: String,
}

/// What a benchmark returns for one measured case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The quantity measured, e.g. "step", "prompt", "generate", "ceiling-matmul".
    pub case: String,
    /// Seconds per timed repetition.
    pub samples: Vec<f64>,
    pub throughput: Option<Throughput>,
    pub peak_memory_bytes: Option<u64>,
    /// Benchmark-specific settings and figures (sizes, accuracy, ...).
    pub settings: Settings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeasureSettings {
    /// Untimed runs before timing starts (compilation, caches, allocator).
    pub warmup: usize,
    /// Timed runs at most.
    pub repetitions: usize,
    /// Timed runs at least, even past the time budget.
    pub min_repetitions: usize,
    /// Stop adding repetitions once this much timed work has been done.
    pub time_budget: Duration,
}

impl MeasureSettings {
    /// A benchmark's per-preset defaults in one line each.
    pub fn new(
        warmup: usize,
        repetitions: usize,
        min_repetitions: usize,
        time_budget_s: u64,
    ) -> Self {
        Self {
            warmup,
            repetitions,
            min_repetitions,
            time_budget: Duration::from_secs(time_budget_s),
        }
    }
}

impl Default for MeasureSettings {
    fn default() -> Self {
        Self {
            warmup: 2,
            repetitions: 10,
            min_repetitions: 3,
            time_budget: Duration::from_secs(60),
        }
    }
}

/// Times `step` and returns one duration in seconds per timed repetition.
///
/// The device is synchronised before each clock start (so earlier queued
/// work is not billed to this step) and before each clock stop (so lazy or
/// asynchronous work is). Warm-up runs are synchronised too, but not timed.
pub fn measure(
    settings: &MeasureSettings,
    runtime: &dyn Runtime,
    mut step: impl FnMut() -> Result<()>,
) -> Result<Vec<f64>> {
    ensure!(settings.repetitions >= 1, "repetitions must be at least 1");
    ensure!(
        settings.min_repetitions <= settings.repetitions,
        "min_repetitions ({}) exceeds repetitions ({})",
        settings.min_repetitions,
        settings.repetitions
    );
    for _ in 0..settings.warmup {
        step()?;
        runtime.synchronize()?;
    }
    let mut samples = Vec::with_capacity(settings.repetitions);
    let mut spent = Duration::ZERO;
    while samples.len() < settings.repetitions {
        if samples.len() >= settings.min_repetitions.max(1) && spent >= settings.time_budget {
            break;
        }
        let elapsed = synchronized(runtime, &mut step)?;
        spent += elapsed;
        samples.push(elapsed.as_secs_f64());
    }
    Ok(samples)
}

/// One case measured from a fresh peak-memory count: its samples and the
/// allocator's peak during them; the caller adds throughput and settings.
pub fn measure_case(
    settings: &MeasureSettings,
    runtime: &dyn Runtime,
    case: &str,
    step: impl FnMut() -> Result<()>,
) -> Result<CaseResult> {
    runtime.reset_peak_memory();
    let samples = measure(settings, runtime, step).with_context(|| format!("case {case}"))?;
    Ok(CaseResult {
        case: case.to_owned(),
        samples,
        throughput: None,
        peak_memory_bytes: runtime.peak_memory_bytes(),
        settings: Settings::new(),
    })
}

/// Times `iterations` calls of `step` back to back between two device
/// synchronisations: the body of a Criterion `iter_custom`, so that the
/// crates' Criterion harnesses synchronise as [`measure`] does.
pub fn time_iterations(runtime: &dyn Runtime, iterations: u64, mut step: impl FnMut()) -> Duration {
    synchronized(runtime, || {
        (0..iterations).for_each(|_| step());
        Ok(())
    })
    .expect("synchronise")
}

/// The wall time of `work`, with the device synchronised before the clock
/// starts (so earlier queued work is not billed to it) and before it stops
/// (so its lazy or asynchronous work is).
fn synchronized(runtime: &dyn Runtime, work: impl FnOnce() -> Result<()>) -> Result<Duration> {
    runtime.synchronize()?;
    let start = Instant::now();
    work()?;
    runtime.synchronize()?;
    Ok(start.elapsed())
}
