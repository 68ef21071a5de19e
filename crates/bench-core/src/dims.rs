//! The dimensions of a cell: framework, device, precision, preset and
//! execution mode. Typed here once; rows, the command lines and the report
//! all use these types.

use std::fmt;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Framework {
    Mlx,
    Torch,
}

/// `Gpu` is the accelerator: CUDA, or Metal (MLX) / MPS (PyTorch) on macOS.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Cpu,
    Gpu,
}

/// Numeric precision, applied alike to both twins. `F32` is strict float32
/// (no TF32 anywhere); `Tf32` lets float32 matmuls use TF32 on CUDA.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    Tf32,
    Bf16,
    F16,
}

impl Precision {
    /// The element type that weights and activations are stored in (TF32
    /// changes how float32 matmuls compute, not what is stored).
    pub fn dtype_name(self) -> &'static str {
        match self {
            Self::F32 | Self::Tf32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }

    /// Bytes of one stored element.
    pub fn element_bytes(self) -> usize {
        match self {
            Self::F32 | Self::Tf32 => 4,
            Self::Bf16 | Self::F16 => 2,
        }
    }
}

#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// Small sizes: seconds per benchmark on a 2-core CPU.
    Quick,
    /// Sizes for an accelerator with 8-16 GB (a laptop's unified memory):
    /// the paper's where they fit, smaller models or problems where not.
    Laptop,
    /// The sizes of the original study.
    Paper,
}

/// The sizes asked on the command line: a preset, or `auto`, which picks
/// one per cell from the device and its memory (`presets::choose`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PresetChoice {
    /// The CPU runs quick; an accelerator the largest preset that fits its memory.
    #[default]
    Auto,
    Quick,
    Laptop,
    Paper,
}

/// How the twins run. `Best` is each framework as its users run it when
/// speed matters (PyTorch: CUDA graphs and fused optimizers; MLX: compiled
/// steps and its CUDA graphs); `Eager` runs both plainly, op by op
/// (`--execution eager`). A row holds the mode asked for, and its settings
/// the mode that actually ran (`execution=`: eager, cuda-graph, compiled).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Execution {
    #[default]
    Best,
    Eager,
}

impl std::str::FromStr for Execution {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        <Self as ValueEnum>::from_str(text, true)
            .map_err(|_| format!("expected best or eager, got '{text}'"))
    }
}

macro_rules! display_as_value_name {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let value = self.to_possible_value().expect("no skipped variants");
                f.write_str(value.get_name())
            }
        }
    )*};
}
display_as_value_name!(
    Framework,
    DeviceKind,
    Precision,
    Preset,
    PresetChoice,
    Execution
);

#[cfg(test)]
mod precision_tests {
    use super::*;

    #[test]
    fn precision_names_its_stored_type_and_size() {
        assert_eq!(Precision::Tf32.dtype_name(), "float32");
        assert_eq!(Precision::Bf16.dtype_name(), "bfloat16");
        assert_eq!(Precision::F16.element_bytes(), 2);
        assert_eq!(Precision::F32.element_bytes(), 4);
    }
}
