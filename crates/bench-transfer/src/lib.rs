//! bench-transfer: matmul work that moves data between the CPU and the
//! accelerator (the original study's "CPU/GPU switch"), beside the device's
//! measured ceilings (matmul GFLOP/s, bandwidth GB/s).

pub mod mlx;
pub mod torch;
pub mod workload;

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::{
    measure_case, CaseResult, Cell, DeviceKind, MeasureSettings, Preset, Runtime, Settings,
    Throughput,
};
use bench_twin::{MlxRuntime, TorchRuntime, TwinBenchmark};

pub use workload::{CeilingConfig, SwitchConfig};

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
        workload::KNOBS
    }

    fn measure_settings(preset: Preset) -> MeasureSettings {
        match preset {
            Preset::Quick => MeasureSettings::new(1, 5, 3, 20),
            Preset::Paper => MeasureSettings::new(1, 5, 3, 600),
        }
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
        let execution = runtime.execution_label(cell.execution()?, false);
        let twin = Twin {
            switch: &|inputs| {
                let mut switch = mlx::Switch::new(runtime, inputs)?;
                Ok(Box::new(move || switch.iterate()))
            },
            matmul: &|size, seed| {
                let matmul = mlx::Matmul::new(runtime, size, seed)?;
                Ok(Box::new(move || matmul.run()))
            },
            copy: &|elements| {
                let scale = mlx::Scale::new(runtime, elements)?;
                Ok((scale.bytes(), Box::new(move || scale.run())))
            },
        };
        measure_twin(runtime, cell, work, execution, twin)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        let twin = Twin {
            switch: &|inputs| {
                let mut switch = torch::Switch::new(runtime, inputs)?;
                Ok(Box::new(move || switch.iterate()))
            },
            matmul: &|size, seed| {
                let matmul = torch::Matmul::new(runtime, size, seed)?;
                Ok(Box::new(move || matmul.run()))
            },
            copy: &|elements| {
                let scale = torch::Scale::new(runtime, elements)?;
                Ok((scale.bytes(), Box::new(move || scale.run())))
            },
        };
        measure_twin(runtime, cell, work, "eager", twin)
    }
}

/// One run of a piece of timed work.
type Run = Box<dyn FnMut() -> Result<()>>;

/// How one framework builds each piece of a cell's work (`mlx.rs`,
/// `torch.rs`), from the inputs; each is built when its case is measured.
pub struct Twin<'a> {
    /// The switch loop's state from the three matrices; a run is one iteration.
    pub switch: &'a dyn Fn(&[HostTensor; 3]) -> Result<Run>,
    /// The N x N matmul ceiling from N and a seed; a run is one product.
    pub matmul: &'a dyn Fn(usize, u64) -> Result<Run>,
    /// The y = 2x bandwidth ceiling from its element count: the bytes one
    /// run reads and writes, and the run.
    pub copy: &'a dyn Fn(usize) -> Result<(f64, Run)>,
}

/// The same steps for either twin: build each piece (untimed), measure it,
/// drop it before the next, so that peak memory is per case.
fn measure_twin(
    runtime: &dyn Runtime,
    cell: &Cell,
    work: &Work,
    execution: &str,
    twin: Twin,
) -> Result<Vec<CaseResult>> {
    let mut iterate = (twin.switch)(&work.inputs)?;
    let iterations = work.switch.iterations;
    let switch_case = measure_case(&cell.measure, runtime, "switch", || {
        (0..iterations).try_for_each(|_| iterate())
    })?;
    drop(iterate);
    let mut matmul = (twin.matmul)(work.ceilings.matmul_size, cell.seed)?;
    let matmul_case = measure_case(&cell.measure, runtime, "ceiling-matmul", &mut matmul)?;
    drop(matmul);
    let (copy_bytes, mut copy) = (twin.copy)(work.ceilings.copy_elements)?;
    let copy_case = measure_case(&cell.measure, runtime, "ceiling-copy", &mut copy)?;
    Ok(describe_cases(
        cell,
        &work.switch,
        &work.ceilings,
        execution,
        copy_bytes,
        [switch_case, matmul_case, copy_case],
    ))
}

/// Adds each case's throughput and sizes.
fn describe_cases(
    cell: &Cell,
    switch: &SwitchConfig,
    ceilings: &CeilingConfig,
    execution: &str,
    copy_bytes: f64,
    [mut switch_case, mut matmul_case, mut copy_case]: [CaseResult; 3],
) -> Vec<CaseResult> {
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
        work_per_repetition: copy_bytes / 1e9,
        unit: "GB/s".into(),
    });
    copy_case.settings = Settings::new()
        .with("elements", ceilings.copy_elements)
        .with("kernel", "y=2x, bytes read+written");
    vec![switch_case, matmul_case, copy_case]
}
