//! What one measurement is of: framework x device x precision x preset.

use std::fmt;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::knobs::{self, Knob};
use crate::measure::MeasureSettings;
use crate::settings::Settings;

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
    /// The sizes of the original study.
    Paper,
}

/// How the twins run. `Best` is each framework as its users run it when
/// speed matters (PyTorch: CUDA graphs and fused optimizers; MLX: compiled
/// steps and its CUDA graphs); `Eager` runs both plainly, op by op
/// (`--set execution=eager`). Each row records the mode that actually ran
/// (`execution=`: eager, cuda-graph or compiled).
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
display_as_value_name!(Framework, DeviceKind, Precision, Preset, Execution);

/// Everything one benchmark run needs to know about its cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub framework: Framework,
    pub device: DeviceKind,
    pub precision: Precision,
    pub preset: Preset,
    /// CPU threads, the same for both frameworks.
    pub threads: usize,
    pub measure: MeasureSettings,
    pub seed: u64,
    /// Benchmark-specific knobs from `--set key=value` (batch size, weights
    /// source, ...), the same for both twins.
    pub options: Vec<(String, String)>,
    /// The benchmark's declared knobs: the only keys [`Cell::option`] reads.
    pub knobs: &'static [Knob],
}

impl Cell {
    /// A quick CPU float32 cell of no benchmark, without options: a start
    /// for checks and tests (`Cell { options, knobs, ..Cell::for_checks() }`).
    pub fn for_checks() -> Self {
        Self {
            framework: Framework::Torch,
            device: DeviceKind::Cpu,
            precision: Precision::F32,
            preset: Preset::Quick,
            threads: 1,
            measure: MeasureSettings::default(),
            seed: 0,
            options: Vec::new(),
            knobs: &[],
        }
    }

    /// The cell's settings for the result record.
    pub fn settings(&self) -> Settings {
        let m = &self.measure;
        let mut settings = Settings::new()
            .with("threads", self.threads)
            .with("warmup", m.warmup)
            .with("repetitions", m.repetitions)
            .with("min_repetitions", m.min_repetitions)
            .with("time_budget_s", m.time_budget.as_secs_f64())
            .with("seed", self.seed)
            // The mode asked for; the twin adds the one that ran (`execution=`).
            .with("mode", self.execution().unwrap_or_default().to_string());
        for (key, value) in &self.options {
            // The twin records the mode that actually ran as `execution=`.
            if key != "execution" && key != "mode" {
                settings.push(key, value);
            }
        }
        settings
    }

    /// The execution mode asked for (`--set execution=best|eager`, or
    /// `mode=`, the rows' name for it).
    pub fn execution(&self) -> anyhow::Result<Execution> {
        let mode = self.option("mode")?;
        Ok(self.option("execution")?.or(mode).unwrap_or_default())
    }

    /// The `--set` value of `key`, checked against its declaration and
    /// parsed; None when not given. Reading an undeclared knob is an error,
    /// so that every knob the code reads is one that `--help` lists.
    pub fn option<T: std::str::FromStr>(&self, key: &str) -> anyhow::Result<Option<T>>
    where
        T::Err: std::fmt::Display,
    {
        let Some(knob) = knobs::find(self.knobs, key) else {
            anyhow::bail!("the code reads knob '{key}', which the benchmark does not declare");
        };
        match self.options.iter().rev().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, value)) => {
                knob.check(value)?;
                value
                    .parse()
                    .map(Some)
                    .map_err(|e| anyhow::anyhow!("--set {key}={value}: {e}"))
            }
        }
    }

    /// Overwrites `value` with the `--set` value of `key` where given.
    pub fn set_option<T: std::str::FromStr>(&self, key: &str, value: &mut T) -> anyhow::Result<()>
    where
        T::Err: std::fmt::Display,
    {
        if let Some(given) = self.option(key)? {
            *value = given;
        }
        Ok(())
    }
}

/// Parses one `--set key=value`.
pub fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got '{text}'")),
    }
}

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
