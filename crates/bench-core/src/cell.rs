//! What one measurement is of: framework x device x precision x preset x
//! execution, with the benchmark's knobs.

use crate::dims::{DeviceKind, Execution, Framework, Precision, Preset};
use crate::knobs::{self, Knob};
use crate::measure::MeasureSettings;
use crate::settings::Settings;

/// Everything one benchmark run needs to know about its cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub framework: Framework,
    pub device: DeviceKind,
    pub precision: Precision,
    pub preset: Preset,
    /// How the twins run, asked on the command line (`--execution`); the
    /// twin records what actually ran in its settings (`execution=`).
    pub execution: Execution,
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
            execution: Execution::Best,
            threads: 1,
            measure: MeasureSettings::default(),
            seed: 0,
            options: Vec::new(),
            knobs: &[],
        }
    }

    /// The cell's settings for the result record: how it was measured,
    /// then its knobs as given.
    pub fn settings(&self) -> Settings {
        let m = &self.measure;
        let mut settings = Settings::new()
            .with("threads", self.threads)
            .with("warmup", m.warmup)
            .with("repetitions", m.repetitions)
            .with("min_repetitions", m.min_repetitions)
            .with("time_budget_s", m.time_budget.as_secs_f64())
            .with("seed", self.seed);
        for (key, value) in &self.options {
            settings.push(key, value);
        }
        settings
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
