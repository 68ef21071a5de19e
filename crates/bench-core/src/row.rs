//! The result row: the one record that crosses every boundary. A runner
//! writes it (a JSONL line per row, `record::RowWriter`) and tells whoever
//! started it (the `protocol` module); `report` and `compare` read it back;
//! the CSV file beside the JSONL is an export of it (`csv_export`).
//!
//! One row per benchmark x case x framework x device x precision x preset
//! x execution mode x knob values that differ from the preset's defaults
//! (`knobs`), with every repetition's time, its settings and the
//! environment that produced it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::cell::Cell;
use crate::dims::{DeviceKind, Execution, Framework, Precision, Preset};
use crate::env::Environment;
use crate::measure::CaseResult;
use crate::settings::Pairs;
use crate::stats::Summary;

/// The suffix of a Python reference's framework label.
pub const PYTHON_SUFFIX: &str = "-python";

/// Layout version of a JSONL row; raised on a change that old readers
/// would misread. Version 1 was a CSV row with a JSONL line of samples
/// beside it (still read by `report`).
pub const ROW_SCHEMA_VERSION: u32 = 2;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Ok,
    Skipped,
    Failed,
    /// The suite was stopped (Ctrl-C, SIGTERM) while the cell ran; `cargo
    /// xtask bench --resume` runs it again.
    Interrupted,
}

/// What measured a row: the suite's Rust twin, or one of its framework's
/// own Python paths (`xtask/scripts/references/`, named by the row's
/// `reference_path` setting).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Implementation {
    #[default]
    Twin,
    Python,
}

/// One result row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub schema_version: u32,
    /// Groups the rows of one suite run.
    pub run_id: String,
    pub timestamp: String,
    pub benchmark: String,
    /// The quantity measured, e.g. "step", "generate"; "-" for a cell that
    /// measured nothing (skipped, failed).
    pub case: String,
    pub framework: Framework,
    pub implementation: Implementation,
    pub device: DeviceKind,
    pub precision: Precision,
    pub preset: Preset,
    /// The mode asked for; the settings' `execution=` says what ran.
    pub execution: Execution,
    pub status: Status,
    /// Why a row was skipped or failed; empty when ok.
    pub reason: String,
    /// Seconds of each timed repetition, in the order they ran; empty for
    /// a row that timed nothing, and for old rows that kept only figures.
    pub samples_s: Vec<f64>,
    /// The figures of the repetitions (of `samples_s` where there are any).
    pub summary: Option<Summary>,
    /// Throughput at the median time.
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    /// Peak memory of the framework's allocator during the case.
    pub peak_memory_bytes: Option<u64>,
    /// Peak resident set size of the process during the cell.
    pub peak_rss_bytes: Option<u64>,
    /// Every setting of the cell and the twin, in order.
    pub settings: Pairs,
    /// The cell's knob values that differ from its preset's defaults (and
    /// `threads` where `--threads` differs from the machine's default),
    /// sorted by name: part of the cell's identity, so that rows at other
    /// sizes are never pooled or compared as one cell. Empty at the
    /// defaults. Rows written before it was recorded lack it; `report`
    /// derives it from their settings where it knows their presets.
    #[serde(default)]
    pub knobs: Pairs,
    /// E.g. "cpu (8 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
    pub device_name: String,
    pub framework_version: String,
    pub environment: Environment,
}

impl Row {
    /// The start record of a cell: what every row of the cell shares, and
    /// the row that stands for it if it ends without one of its own.
    pub fn start(
        run_id: &str,
        benchmark: &str,
        cell: &Cell,
        framework_version: &str,
        environment: &Environment,
    ) -> Self {
        Self {
            schema_version: ROW_SCHEMA_VERSION,
            run_id: run_id.to_owned(),
            timestamp: now(),
            benchmark: benchmark.to_owned(),
            case: "-".to_owned(),
            framework: cell.framework,
            implementation: Implementation::Twin,
            device: cell.device,
            precision: cell.precision,
            preset: cell.preset,
            execution: cell.execution,
            status: Status::Ok,
            reason: String::new(),
            samples_s: Vec::new(),
            summary: None,
            throughput: None,
            throughput_unit: String::new(),
            peak_memory_bytes: None,
            peak_rss_bytes: None,
            settings: Pairs::from(&cell.settings()),
            knobs: cell.knob_identity(),
            device_name: String::new(),
            framework_version: framework_version.to_owned(),
            environment: environment.clone(),
        }
    }

    /// The row of a measured case of this cell.
    pub fn measured(&self, result: &CaseResult, peak_rss: Option<u64>) -> Result<Self> {
        let summary =
            Summary::of(&result.samples).with_context(|| format!("case {}", result.case))?;
        let mut settings = self.settings.clone();
        for (key, value) in result.settings.iter() {
            settings.push(key, &value.to_string());
        }
        let throughput = result.throughput.as_ref();
        Ok(Self {
            timestamp: now(),
            case: result.case.clone(),
            samples_s: result.samples.clone(),
            throughput: throughput.map(|t| t.work_per_repetition / summary.median),
            throughput_unit: throughput.map(|t| t.unit.clone()).unwrap_or_default(),
            summary: Some(summary),
            peak_memory_bytes: result.peak_memory_bytes,
            peak_rss_bytes: peak_rss,
            settings,
            ..self.clone()
        })
    }

    /// The row of a cell that ended without a measurement: skipped, failed
    /// or interrupted, with why.
    pub fn ended(&self, status: Status, reason: &str) -> Self {
        Self {
            timestamp: now(),
            case: "-".to_owned(),
            status,
            reason: reason.to_owned(),
            ..self.clone()
        }
    }

    /// The median time of the repetitions, in seconds.
    pub fn median_s(&self) -> Option<f64> {
        self.summary.as_ref().map(|s| s.median)
    }

    /// The last value of setting `key`.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings.get(key)
    }

    /// The preset and the knobs of the identity, as tables label a cell:
    /// "paper", or "paper, iterations=5, n=2048".
    pub fn configuration(&self) -> String {
        std::iter::once(self.preset.to_string())
            .chain(
                self.knobs
                    .iter()
                    .map(|(key, value)| format!("{key}={value}")),
            )
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The framework as files and tables name it: "torch", "mlx", and for
    /// a Python reference "torch-python", "mlx-python".
    pub fn framework_label(&self) -> String {
        match self.implementation {
            Implementation::Twin => self.framework.to_string(),
            Implementation::Python => format!("{}{PYTHON_SUFFIX}", self.framework),
        }
    }

    /// A quick CPU float32 PyTorch cell's start record, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Self {
        let cell = Cell::for_checks();
        Self::start("run", "bert", &cell, "2.11.0", &Environment::default())
    }

    /// Whether this is a twin's row (not a Python reference's).
    pub fn is_twin(&self) -> bool {
        self.implementation == Implementation::Twin
    }
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Throughput;
    use crate::settings::Settings;

    fn start() -> Row {
        let cell = Cell {
            options: vec![("batch_size".into(), "4".into())],
            ..Cell::for_checks()
        };
        Row::start("run", "bert", &cell, "2.11.0", &Environment::default())
    }

    #[test]
    fn a_measured_row_has_its_figures_its_cells_settings_then_its_own() {
        let result = CaseResult {
            case: "step".into(),
            samples: vec![2.0, 1.0, 3.0],
            throughput: Some(Throughput {
                work_per_repetition: 8.0,
                unit: "samples/s".into(),
            }),
            peak_memory_bytes: Some(7),
            settings: Settings::new().with("execution", "compiled"),
        };
        let row = start().measured(&result, Some(9)).unwrap();
        assert_eq!(row.median_s(), Some(2.0));
        assert_eq!(row.throughput, Some(4.0));
        assert_eq!(row.samples_s, [2.0, 1.0, 3.0]);
        assert_eq!(row.setting("batch_size"), Some("4"));
        assert_eq!(row.setting("execution"), Some("compiled"));
        assert!(row.settings.encode().starts_with("threads=1;"));
        assert_eq!(row.peak_rss_bytes, Some(9));
    }

    #[test]
    fn a_row_is_labelled_by_its_preset_and_the_knobs_that_differ_from_it() {
        const KNOBS: &[crate::Knob] = &[
            crate::Knob::at_least("n", 1, "512 (paper: 10000)", "size"),
            crate::Knob::at_least("iterations", 1, "4 (paper: 50)", "loops"),
        ];
        let cell = |options: &[(&str, &str)]| Cell {
            preset: crate::Preset::Paper,
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            knobs: KNOBS,
            ..Cell::for_checks()
        };
        let row = |options| {
            Row::start(
                "run",
                "transfer",
                &cell(options),
                "1",
                &Environment::default(),
            )
        };
        assert_eq!(row(&[]).configuration(), "paper");
        assert_eq!(row(&[("n", "10000")]).configuration(), "paper");
        let sized = row(&[("n", "2048"), ("iterations", "5")]);
        assert_eq!(sized.configuration(), "paper, iterations=5, n=2048");
        // Recorded in the JSONL line; a line without it reads as none.
        let json = serde_json::to_string(&sized).unwrap();
        assert!(
            json.contains(r#""knobs":{"iterations":"5","n":"2048"}"#),
            "{json}"
        );
        let back: Row = serde_json::from_str(&json).unwrap();
        assert_eq!(back, sized);
        let mut value: serde_json::Value = serde_json::from_str(&json).unwrap();
        value.as_object_mut().unwrap().remove("knobs");
        let old: Row = serde_json::from_value(value).unwrap();
        assert!(old.knobs.iter().next().is_none());
    }
}
