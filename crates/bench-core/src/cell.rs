//! What one measurement is of: framework x device x precision x preset x
//! execution, with the benchmark's knobs.

use std::collections::BTreeMap;

use crate::dims::{DeviceKind, Execution, Framework, Precision, Preset};
use crate::knobs::{self, Kind, Knob};
use crate::measure::MeasureSettings;
use crate::presets::preset_default;
use crate::settings::{Pairs, Settings};

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

    /// The knobs given that differ from the preset's defaults, sorted by
    /// name, numbers as Rust prints them (`lr=5e-5` and `lr=0.00005` are one
    /// cell): with the cell's dimensions, its identity, which `report` and
    /// `compare` never pool across. A knob given at its default is left
    /// out, as is one given twice the earlier value.
    pub fn knob_identity(&self) -> Pairs {
        let mut given: BTreeMap<&str, &str> = BTreeMap::new();
        for (key, value) in &self.options {
            given.insert(key, value);
        }
        given
            .into_iter()
            .filter_map(|(key, value)| {
                let Some(knob) = knobs::find(self.knobs, key) else {
                    return Some((key, value.to_owned()));
                };
                let default = preset_default(knob.default, self.preset);
                let value = canonical(knob.kind, value);
                (value != canonical(knob.kind, default)).then_some((key, value))
            })
            .collect()
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

/// A knob's value as the identity holds it: a number as Rust prints it, a
/// flag as `true`/`false`, anything else (or what does not parse) as given.
fn canonical(kind: Kind, value: &str) -> String {
    let value = value.trim();
    let parsed = match kind {
        Kind::Int { .. } => value.parse::<i64>().ok().map(|n| n.to_string()),
        Kind::Float { .. } | Kind::Positive => value.parse::<f64>().ok().map(|x| x.to_string()),
        Kind::Bool => value.parse::<bool>().ok().map(|b| b.to_string()),
        _ => None,
    };
    parsed.unwrap_or_else(|| value.to_owned())
}

/// Parses one `--set key=value`.
pub fn parse_option(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got '{text}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOBS: &[Knob] = &[
        Knob::at_least("n", 1, "512 (laptop: 4096, paper: 10000)", "matrix size"),
        Knob::new("lr", Kind::Positive, "5e-5", "learning rate"),
        Knob::new(
            "weights",
            Kind::Choice(&["auto", "random"]),
            "auto",
            "source",
        ),
    ];

    fn identity(preset: Preset, options: &[(&str, &str)]) -> String {
        Cell {
            preset,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            knobs: KNOBS,
            ..Cell::for_checks()
        }
        .knob_identity()
        .encode()
    }

    #[test]
    fn the_identity_holds_the_knobs_that_differ_from_the_presets_defaults_sorted() {
        assert_eq!(identity(Preset::Paper, &[]), "");
        // The paper default given again is no knob of the identity; the
        // quick default at paper is.
        assert_eq!(identity(Preset::Paper, &[("n", "10000")]), "");
        assert_eq!(identity(Preset::Paper, &[("n", "512")]), "n=512");
        assert_eq!(identity(Preset::Quick, &[("n", "512")]), "");
        // Sorted by name; the later of a knob given twice; numbers canonical.
        assert_eq!(
            identity(
                Preset::Quick,
                &[
                    ("weights", "random"),
                    ("n", "64"),
                    ("lr", "1e-3"),
                    ("n", "0128")
                ]
            ),
            "lr=0.001;n=128;weights=random"
        );
        assert_eq!(identity(Preset::Quick, &[("lr", "0.00005")]), "");
    }
}
