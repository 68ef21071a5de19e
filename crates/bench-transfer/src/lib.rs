//! bench-transfer: matmul work that moves data between the CPU and the
//! accelerator (the original study's "CPU/GPU switch"), beside the device's
//! measured ceilings (matmul GFLOP/s, bandwidth GB/s).
//!
//! # What it measures
//!
//! The original study's "CPU/GPU switch": three N x N float32 matrices; each
//! iteration computes norm(a@b), norm(b@c), norm(c@a) (norm: each column
//! divided by its maximum) on the accelerator, then again on the CPU from
//! those results. PyTorch copies the matrices between devices; MLX places
//! the work on its GPU and CPU streams over unified memory. Also each
//! framework's ceilings on the device: matmul GFLOP/s (`ceiling-matmul`)
//! and memory bandwidth GB/s (`ceiling-copy`: the framework's y = 2x, bytes
//! read + written), the latter also as a fraction of the device's one copy
//! ceiling, measured once per run by a probe of neither framework and the
//! same for both twins (`bandwidth_fraction` over `ceiling_gbps`; see
//! `device-ceiling`). Without
//! an accelerator (`--device cpu`) both halves run on the CPU and the rows
//! say `placement=cpu only`.
//!
//! # Presets and knobs
//!
//! - `quick`: N = 512, 4 iterations; CPU ceilings: 1024^2 matmul, 64 MiB.
//! - `paper`: N = 10000, 50 iterations (as the original); CPU ceilings:
//!   4096^2, 256 MiB.
//! - On a GPU the ceilings are 8192^2 and 1 GiB whatever the preset, smaller
//!   where the device has less memory (an eighth of it per problem).
//!
//! `--set n=... --set iterations=...` override the sizes (recorded in the
//! row).
//!
//! # Against the original study
//!
//! The original Python study's switch benchmark had its PyTorch twin
//! compute a@c where MLX computed c@a; here both compute c@a, and a parity
//! test checks both twins against a float64 reference.

pub mod mlx;
pub mod torch;
pub mod workload;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use bench_core::{
    measure_case, CaseResult, Ceiling, Cell, DeviceKind, Preset, Runtime, Settings, Summary,
    Throughput,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

pub use workload::{CeilingConfig, SwitchConfig};

/// What each framework's twin provides (`mlx::Twin`, `torch::Twin`): each
/// piece of a cell's work, built from its inputs (untimed) when its case is
/// measured.
pub trait TransferTwin {
    type Runtime: Runtime;
    /// The switch loop's state: three matrices that live between iterations.
    type Switch: Switching;
    /// One N x N product: the matmul ceiling.
    type Matmul: Kernel;
    /// y = 2x over many elements: the bandwidth ceiling.
    type Copy: Kernel;
    fn switch(runtime: &Self::Runtime, inputs: &[HostTensor; 3]) -> Result<Self::Switch>;
    fn matmul(runtime: &Self::Runtime, size: usize, seed: u64) -> Result<Self::Matmul>;
    /// The copy and the bytes one run reads and writes.
    fn copy(runtime: &Self::Runtime, elements: usize) -> Result<(f64, Self::Copy)>;
}

/// The switch loop: one iteration is the products on the accelerator, then
/// on the CPU.
pub trait Switching {
    fn iterate(&mut self) -> Result<()>;
}

/// A ceiling's kernel: one run, evaluated.
pub trait Kernel {
    fn run(&self) -> Result<()>;
}

pub struct Transfer;

/// What both twins share: the sizes and the three input matrices.
pub struct Work {
    pub switch: SwitchConfig,
    pub ceilings: CeilingConfig,
    pub inputs: [HostTensor; 3],
}

impl TwinBenchmark for Transfer {
    const NAME: &'static str = "transfer";
    type Work = Work;

    fn knobs() -> &'static [bench_core::Knob] {
        &workload::KNOBS
    }

    type Sizes = workload::SwitchConfig;

    fn presets(preset: Preset) -> bench_core::PresetRow<Self::Sizes> {
        workload::presets(preset)
    }

    fn prepare(cell: &Cell) -> Result<Work> {
        let switch = SwitchConfig::for_cell(cell)?;
        let inputs = switch.inputs(cell.seed);
        Ok(Work {
            ceilings: CeilingConfig::for_cell(cell.preset, cell.device),
            switch,
            inputs,
        })
    }

    fn mlx(runtime: &MlxRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        let execution = runtime.execution_label(cell.execution, false);
        measure::<mlx::Twin>(runtime, cell, work, execution)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        measure::<torch::Twin>(runtime, cell, work, "eager")
    }
}

/// The same steps for either twin: build each piece (untimed), measure it,
/// drop it before the next, so that peak memory is per case.
fn measure<T: TransferTwin>(
    runtime: &T::Runtime,
    cell: &Cell,
    work: &Work,
    execution: &str,
) -> Result<Vec<CaseResult>> {
    let mut switch = T::switch(runtime, &work.inputs)?;
    let iterations = work.switch.iterations;
    let switch_case = measure_case(&cell.measure, runtime, "switch", || {
        (0..iterations).try_for_each(|_| switch.iterate())
    })?;
    drop(switch);
    let matmul = T::matmul(runtime, work.ceilings.matmul_size, cell.seed)?;
    let matmul_case = measure_case(&cell.measure, runtime, "ceiling-matmul", || matmul.run())?;
    drop(matmul);
    let (copy_bytes, copy) = T::copy(runtime, work.ceilings.copy_elements)?;
    let copy_case = measure_case(&cell.measure, runtime, "ceiling-copy", || copy.run())?;
    drop(copy);
    let device = device_ceiling::for_cell(cell.device).context("the device's copy ceiling")?;
    describe_cases(
        cell,
        &work.switch,
        &work.ceilings,
        execution,
        CopyFigures {
            bytes: copy_bytes,
            device: &device,
        },
        [switch_case, matmul_case, copy_case],
    )
}

/// The framework's copy: the bytes a pass reads and writes, and the
/// device's one ceiling it is divided by.
struct CopyFigures<'a> {
    bytes: f64,
    device: &'a Ceiling,
}

/// Adds each case's throughput and sizes.
fn describe_cases(
    cell: &Cell,
    switch: &SwitchConfig,
    ceilings: &CeilingConfig,
    execution: &str,
    copy: CopyFigures,
    [mut switch_case, mut matmul_case, mut copy_case]: [CaseResult; 3],
) -> Result<Vec<CaseResult>> {
    let placement = match cell.device {
        DeviceKind::Gpu => "accelerator then cpu",
        DeviceKind::Cpu => "cpu only (no accelerator asked)",
    };
    switch_case.throughput = Some(Throughput {
        work_per_repetition: switch.flops() / 1e9,
        unit: "GFLOP/s".into(),
    });
    switch_case.settings = Settings::new()
        .with("n", switch.size)
        .with("iterations", switch.iterations)
        .with("placement", placement)
        .with("execution", execution);
    matmul_case.throughput = Some(Throughput {
        work_per_repetition: ceilings.matmul_flops() / 1e9,
        unit: "GFLOP/s".into(),
    });
    matmul_case.settings = Settings::new().with("n", ceilings.matmul_size);
    copy_case.throughput = Some(Throughput {
        work_per_repetition: copy.bytes / 1e9,
        unit: "GB/s".into(),
    });
    let achieved_gbps = copy.bytes / Summary::of(&copy_case.samples)?.median / 1e9;
    copy_case.settings = Settings::new()
        .with("elements", ceilings.copy_elements)
        .with("kernel", "y=2x through the framework, bytes read+written")
        .with(
            "bandwidth_fraction",
            format!("{:.3}", copy.device.fraction(achieved_gbps)),
        );
    copy_case.settings.extend(copy.device.settings());
    Ok(vec![switch_case, matmul_case, copy_case])
}
