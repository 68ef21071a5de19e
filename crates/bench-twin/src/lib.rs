//! bench-twin: the contract of a twin benchmark, and the one dispatch.
//!
//! A benchmark crate implements [`TwinBenchmark`]:
//! - the framework-free work, prepared once per cell (configurations, host
//!   inputs, a checkpoint read from disk);
//! - one measure function per framework, each a one-line call of the
//!   crate's generic measure function with that framework's twin.
//!
//! Which framework a cell runs, and building its runtime (device,
//! precision, threads), happens here and nowhere else. A runner's
//! `main.rs` is one line: `bench_twin::runner!(bench_x::X);`.
//! `bench-core` stays free of any framework; this crate is where both meet.

#[cfg(feature = "criterion")]
pub mod harness;
pub mod testing;

use std::marker::PhantomData;
use std::process::ExitCode;

use anyhow::Result;
use bench_core::cli::{Benchmark, CellOutput, FrameworkHooks};
use bench_core::{CaseResult, Cell, Framework, Knob, MeasureSettings, Preset, PresetRow, Runtime};
pub use fw_mlx::MlxRuntime;
pub use fw_torch::TorchRuntime;

/// A benchmark with an MLX twin and a PyTorch twin.
pub trait TwinBenchmark {
    /// The name on the command line and in reports, e.g. "transfer".
    const NAME: &'static str;

    /// What both twins share, prepared once per cell before any framework
    /// is touched: a failure here (a missing asset, a bad knob) names the
    /// input, whichever framework the cell asked for.
    type Work;

    /// The `--set` knobs: the only keys its
    /// cells read.
    fn knobs() -> &'static [Knob];

    /// The sizes a row of its preset table holds.
    type Sizes;

    /// Its preset table (`bench_core::presets`): sizes, measure settings
    /// and the memory the work needs, per preset.
    fn presets(preset: Preset) -> PresetRow<Self::Sizes>;

    /// The framework-free work of a cell.
    fn prepare(cell: &Cell) -> Result<Self::Work>;

    /// The MLX twin's cases.
    fn mlx(runtime: &MlxRuntime, cell: &Cell, work: &Self::Work) -> Result<Vec<CaseResult>>;

    /// The PyTorch twin's cases.
    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Self::Work) -> Result<Vec<CaseResult>>;
}

/// Both frameworks' process-wide hooks, for the runner and the harnesses.
pub const HOOKS: [FrameworkHooks; 2] = [fw_mlx::HOOKS, fw_torch::HOOKS];

/// A [`TwinBenchmark`] as the runner's [`Benchmark`]: the one dispatch.
pub struct Runner<B>(PhantomData<B>);

impl<B> Runner<B> {
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<B> Default for Runner<B> {
    fn default() -> Self {
        Self::new()
    }
}

impl<B: TwinBenchmark> Benchmark for Runner<B> {
    fn name(&self) -> &'static str {
        B::NAME
    }

    fn knobs(&self) -> &'static [Knob] {
        B::knobs()
    }

    fn measure_settings(&self, preset: Preset) -> MeasureSettings {
        B::presets(preset).measure
    }

    fn needs_gib(&self, preset: Preset) -> f64 {
        B::presets(preset).needs_gib
    }

    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        let work = B::prepare(cell)?;
        match cell.framework {
            Framework::Mlx => {
                let runtime = MlxRuntime::new(cell.device, cell.precision, cell.threads)?;
                let cases = B::mlx(&runtime, cell, &work)?;
                Ok(CellOutput {
                    device_name: runtime.device_description(),
                    cases,
                })
            }
            Framework::Torch => {
                let runtime = TorchRuntime::new(cell.device, cell.precision, cell.threads)?;
                let cases = B::torch(&runtime, cell, &work)?;
                Ok(CellOutput {
                    device_name: runtime.device_description(),
                    cases,
                })
            }
        }
    }
}

/// The runner of a twin benchmark: `bench-<name> --help`.
pub fn main<B: TwinBenchmark>(version: &'static str, description: &'static str) -> ExitCode {
    bench_core::cli::main(version, description, &Runner::<B>::new(), &HOOKS)
}

/// A runner's whole `main.rs`: `bench_twin::runner!(bench_x::X);`.
#[macro_export]
macro_rules! runner {
    ($benchmark:ty) => {
        fn main() -> std::process::ExitCode {
            $crate::main::<$benchmark>(env!("CARGO_PKG_VERSION"), env!("CARGO_PKG_DESCRIPTION"))
        }
    };
}
