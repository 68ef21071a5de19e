//! bench-transfer: matmul work that moves data between the CPU and the
//! accelerator (the original study's "CPU/GPU switch"), beside the device's
//! measured ceilings (matmul GFLOP/s, bandwidth GB/s).

pub mod mlx;
pub mod torch;
pub mod workload;

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::{measure_case, CaseResult, Cell, DeviceKind, MeasureSettings, Preset, Throughput};
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
        measure_twin!(mlx, runtime, cell, work, execution)
    }

    fn torch(runtime: &TorchRuntime, cell: &Cell, work: &Work) -> Result<Vec<CaseResult>> {
        measure_twin!(torch, runtime, cell, work, "eager")
    }
}

/// The same steps for either twin: build each workload (untimed), measure
/// it, drop it before the next, so that peak memory is per case.
macro_rules! measure_twin {
    ($twin:ident, $runtime:ident, $cell:ident, $work:ident, $execution:expr) => {{
        let mut switch = $twin::Switch::new($runtime, &$work.inputs)?;
        let iterations = $work.switch.iterations;
        let switch_case = measure_case(&$cell.measure, $runtime, "switch", || {
            (0..iterations).try_for_each(|_| switch.iterate())
        })?;
        drop(switch);
        let matmul = $twin::Matmul::new($runtime, $work.ceilings.matmul_size, $cell.seed)?;
        let matmul_case =
            measure_case(&$cell.measure, $runtime, "ceiling-matmul", || matmul.run())?;
        drop(matmul);
        let scale = $twin::Scale::new($runtime, $work.ceilings.copy_elements)?;
        let copy_bytes = scale.bytes();
        let copy_case = measure_case(&$cell.measure, $runtime, "ceiling-copy", || scale.run())?;
        Ok(describe_cases(
            $cell,
            &$work.switch,
            &$work.ceilings,
            $execution,
            copy_bytes,
            [switch_case, matmul_case, copy_case],
        ))
    }};
}
use measure_twin;

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
    switch_case.settings = vec![
        ("n".into(), switch.size.to_string()),
        ("iterations".into(), switch.iterations.to_string()),
        ("placement".into(), placement.into()),
        ("execution".into(), execution.into()),
    ];
    matmul_case.throughput = Some(Throughput {
        work_per_repetition: ceilings.matmul_flops() / 1e9,
        unit: "GFLOP/s".into(),
    });
    matmul_case.settings = vec![("n".into(), ceilings.matmul_size.to_string())];
    copy_case.throughput = Some(Throughput {
        work_per_repetition: copy_bytes / 1e9,
        unit: "GB/s".into(),
    });
    copy_case.settings = vec![
        ("elements".into(), ceilings.copy_elements.to_string()),
        ("kernel".into(), "y=2x, bytes read+written".into()),
    ];
    vec![switch_case, matmul_case, copy_case]
}
