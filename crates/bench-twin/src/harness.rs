//! What every crate's Criterion harness shares (feature `criterion`): one
//! framework per process (libtorch's BLAS can serve MLX's calls in a
//! process that set up both; see `bench_core::cli::harness_framework`), its
//! CPU runtime, the suite's sampling, and timing that synchronises the
//! device before each clock read.

use std::time::Duration;

use bench_core::{time_iterations, DeviceKind, Precision, Runtime};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

use crate::HOOKS;

/// The framework this process measures, with its CPU runtime.
pub enum CpuTwin {
    Mlx(MlxRuntime),
    Torch(TorchRuntime),
}

impl CpuTwin {
    /// The framework picked for this process (the harness runs itself once
    /// per framework), on the CPU at `precision` with the default threads.
    pub fn for_this_process(precision: Precision) -> Self {
        let threads = bench_core::env::default_threads();
        match bench_core::cli::harness_framework(&HOOKS, threads) {
            bench_core::Framework::Mlx => Self::Mlx(
                MlxRuntime::new(DeviceKind::Cpu, precision, threads)
                    .unwrap_or_else(|e| panic!("MLX on the CPU: {e:#}")),
            ),
            bench_core::Framework::Torch => Self::Torch(
                TorchRuntime::new(DeviceKind::Cpu, precision, threads)
                    .unwrap_or_else(|e| panic!("PyTorch on the CPU: {e:#}")),
            ),
        }
    }
}

/// A benchmark group with the suite's sampling: 10 samples (steps take
/// from milliseconds to seconds) over `measurement`.
pub fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
    measurement: Duration,
) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(10).measurement_time(measurement);
    group
}

/// Benchmarks `step` as `id`, timing each batch of iterations between two
/// synchronisations of `runtime` (lazy and asynchronous work included).
pub fn bench_synced(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: impl Into<String>,
    runtime: &dyn Runtime,
    mut step: impl FnMut(),
) {
    group.bench_function(id.into(), |b| {
        b.iter_custom(|iters| time_iterations(runtime, iters, &mut step))
    });
}
