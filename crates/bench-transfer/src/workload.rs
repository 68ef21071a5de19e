//! The work, independent of framework: sizes per preset, inputs, FLOPs.

use std::sync::LazyLock;

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::{Cell, DeviceKind, Knob, KnobDefaults, MeasureSettings, Preset, PresetRow};

/// The switch loop: three N x N matrices; each iteration computes, on the
/// accelerator, r1 = norm(a @ b), r2 = norm(b @ c), r3 = norm(c @ a), where
/// norm divides each column by its maximum; then the same on the CPU from
/// those results. The original PyTorch twin computed a @ c where MLX
/// computed c @ a; here both compute c @ a.
#[derive(Clone, Debug, PartialEq)]
pub struct SwitchConfig {
    pub size: usize,
    pub iterations: usize,
}

/// The one table of sizes per preset (see [`bench_core::presets`]): the
/// cells' work, the rows' measurement settings, the knobs' defaults and
/// the Criterion harness all read it.
pub fn presets(preset: Preset) -> PresetRow<SwitchConfig> {
    match preset {
        Preset::Quick => PresetRow {
            sizes: SwitchConfig {
                size: 512,
                iterations: 4,
            },
            measure: MeasureSettings::new(1, 5, 3, 20),
            needs_gib: 0.5,
        },
        // Three 4096^2 matrices; fewer iterations, as a laptop's GPU takes
        // longer per switch.
        Preset::Laptop => PresetRow {
            sizes: SwitchConfig {
                size: 4096,
                iterations: 20,
            },
            measure: MeasureSettings::new(1, 5, 3, 300),
            needs_gib: 1.0,
        },
        // As the original: N = 10000, 50 iterations.
        Preset::Paper => PresetRow {
            sizes: SwitchConfig {
                size: 10_000,
                iterations: 50,
            },
            measure: MeasureSettings::new(1, 5, 3, 600),
            // Three 10000^2 float32 matrices (1.2 GB) and a product.
            needs_gib: 2.0,
        },
    }
}

/// The `--set` knobs of the switch loop (the ceilings' sizes are fixed),
/// their defaults read from [`presets`].
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| knobs(&KnobDefaults::of(presets)));

/// The knobs, with the defaults that both presets' sizes give.
pub fn knobs(defaults: &KnobDefaults<SwitchConfig>) -> Vec<Knob> {
    vec![
        Knob::int(
            "n",
            1,
            65_536,
            defaults.text(|s| s.size),
            "N of the three N x N matrices",
        ),
        Knob::int(
            "iterations",
            1,
            100_000,
            defaults.text(|s| s.iterations),
            "switch iterations per timed repetition",
        ),
    ]
}

/// Sizes of the device ceilings measured beside the switch loop.
#[derive(Clone, Debug, PartialEq)]
pub struct CeilingConfig {
    /// N of the N x N matmul.
    pub matmul_size: usize,
    /// Float32 elements streamed by the bandwidth kernel (y = 2x).
    pub copy_elements: usize,
}

impl SwitchConfig {
    /// The preset's sizes, with `--set n=...` and `--set iterations=...`
    /// overriding them (both recorded in the row's settings).
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let preset = presets(cell.preset).sizes;
        Ok(Self {
            size: cell.option("n")?.unwrap_or(preset.size),
            iterations: cell.option("iterations")?.unwrap_or(preset.iterations),
        })
    }

    /// Matmul FLOPs of one repetition (all iterations, both halves);
    /// the column normalisation's O(N^2) is left out.
    pub fn flops(&self) -> f64 {
        let n = self.size as f64;
        6.0 * 2.0 * n * n * n * self.iterations as f64
    }

    /// The three input matrices, the same for both twins.
    pub fn inputs(&self, seed: u64) -> [HostTensor; 3] {
        let shape = vec![self.size, self.size];
        [0, 1, 2].map(|i| HostTensor::uniform(shape.clone(), seed.wrapping_add(i)))
    }
}

impl CeilingConfig {
    /// An accelerator's ceilings need large problems whatever the preset
    /// (a 1024^2 matmul measures launch overhead on a GPU, not its peak):
    /// 8192^2 and 1 GiB copies, smaller where the device's memory is
    /// (`bench_core::presets::device_memory`).
    pub fn for_cell(preset: Preset, device: DeviceKind) -> Self {
        match device {
            DeviceKind::Cpu => Self::for_cpu(preset),
            DeviceKind::Gpu => {
                let memory = bench_core::presets::device_memory(device).map(|(gib, _)| gib);
                Self::for_accelerator(memory)
            }
        }
    }

    fn for_cpu(preset: Preset) -> Self {
        let (matmul_size, copy_elements) = match preset {
            Preset::Quick => (1024, 1 << 24),
            Preset::Laptop | Preset::Paper => (4096, 1 << 26),
        };
        Self {
            matmul_size,
            copy_elements,
        }
    }

    /// The accelerator's ceilings for `memory_gib` (unknown: the largest):
    /// the matmul's three matrices and the copy's two buffers each within
    /// an eighth of the memory.
    pub fn for_accelerator(memory_gib: Option<f64>) -> Self {
        const LARGEST: (usize, usize) = (8192, 1 << 28);
        let Some(gib) = memory_gib else {
            return Self {
                matmul_size: LARGEST.0,
                copy_elements: LARGEST.1,
            };
        };
        let eighth = gib * (1u64 << 30) as f64 / 8.0;
        // Three f32 matrices, sizes a multiple of 1024.
        let side = ((eighth / 12.0).sqrt() as usize / 1024 * 1024).clamp(1024, LARGEST.0);
        // Two f32 buffers, a power of two elements.
        let elements = ((eighth / 8.0) as usize).max(1 << 20);
        let copy = (1usize << elements.ilog2()).min(LARGEST.1);
        Self {
            matmul_size: side,
            copy_elements: copy,
        }
    }

    pub fn matmul_flops(&self) -> f64 {
        2.0 * (self.matmul_size as f64).powi(3)
    }
}

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    #[test]
    fn accelerator_ceilings_scale_with_memory_up_to_8192_squared_and_a_gib() {
        let of = |gib| {
            let c = CeilingConfig::for_accelerator(gib);
            (c.matmul_size, c.copy_elements)
        };
        // An H200, a 16 GB Mac: the largest problems.
        assert_eq!(of(Some(141.0)), (8192, 1 << 28));
        assert_eq!(of(Some(16.0)), (8192, 1 << 28));
        // An 8 GB Mac: the matmul fits (805 MB of 1 GiB), the copy halves.
        assert_eq!(of(Some(8.0)), (8192, 1 << 27));
        // 2 GB: a 4096^2 matmul (201 MB of 256 MB), 32M-element buffers.
        assert_eq!(of(Some(2.0)), (4096, 1 << 25));
        assert_eq!(of(None), (8192, 1 << 28));
    }

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS, knobs, SwitchConfig::for_cell);
    }
}
