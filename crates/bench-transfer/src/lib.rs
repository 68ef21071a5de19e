//! bench-transfer: matmul work that moves data between the CPU and the
//! accelerator (the original study's "CPU/GPU switch"), beside the device's
//! measured ceilings (matmul GFLOP/s, bandwidth GB/s).

pub mod mlx;
pub mod torch;
pub mod workload;

use anyhow::Result;
use bench_core::cli::{Benchmark, CellOutput};
use bench_core::{
    measure_case, CaseResult, Cell, DeviceKind, Framework, MeasureSettings, Preset, Runtime,
    Throughput,
};
use fw_mlx::MlxRuntime;
use fw_torch::TorchRuntime;

pub use workload::{CeilingConfig, SwitchConfig};

pub struct Transfer;

impl Benchmark for Transfer {
    fn name(&self) -> &'static str {
        "transfer"
    }

    fn knobs(&self) -> &'static [bench_core::Knob] {
        workload::KNOBS
    }

    fn measure_settings(&self, preset: Preset) -> MeasureSettings {
        match preset {
            Preset::Quick => MeasureSettings::new(1, 5, 3, 20),
            Preset::Paper => MeasureSettings::new(1, 5, 3, 600),
        }
    }

    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        let switch = SwitchConfig::for_cell(cell)?;
        let ceilings = CeilingConfig::for_cell(cell.preset, cell.device);
        match cell.framework {
            Framework::Mlx => {
                let runtime = MlxRuntime::new(cell.device, cell.precision, cell.threads)?;
                let execution = runtime.execution_label(cell.execution()?, false);
                measure_twin!(mlx, runtime, cell, switch, ceilings, execution)
            }
            Framework::Torch => {
                let runtime = TorchRuntime::new(cell.device, cell.precision, cell.threads)?;
                measure_twin!(torch, runtime, cell, switch, ceilings, "eager")
            }
        }
    }
}

/// The same steps for either twin: build each workload (untimed), measure
/// it, drop it before the next, so that peak memory is per case.
macro_rules! measure_twin {
    ($twin:ident, $runtime:ident, $cell:ident, $switch:ident, $ceilings:ident, $execution:expr) => {{
        let inputs = $switch.inputs($cell.seed);
        let mut switch = $twin::Switch::new(&$runtime, &inputs)?;
        let iterations = $switch.iterations;
        let switch_case = measure_case(&$cell.measure, &$runtime, "switch", || {
            (0..iterations).try_for_each(|_| switch.iterate())
        })?;
        drop(switch);
        let matmul = $twin::Matmul::new(&$runtime, $ceilings.matmul_size, $cell.seed)?;
        let matmul_case =
            measure_case(&$cell.measure, &$runtime, "ceiling-matmul", || matmul.run())?;
        drop(matmul);
        let scale = $twin::Scale::new(&$runtime, $ceilings.copy_elements)?;
        let copy_bytes = scale.bytes();
        let copy_case = measure_case(&$cell.measure, &$runtime, "ceiling-copy", || scale.run())?;
        Ok(CellOutput {
            device_name: $runtime.device_description(),
            cases: describe_cases(
                $cell,
                &$switch,
                &$ceilings,
                $execution,
                copy_bytes,
                [switch_case, matmul_case, copy_case],
            ),
        })
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
