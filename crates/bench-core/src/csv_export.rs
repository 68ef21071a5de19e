//! The CSV export of a [`Row`]: one flat line per row, for spreadsheets and
//! for the CSV files of runs written before the JSONL record held whole
//! rows (schema 1), which `report` still reads back through
//! [`CsvRow::into_row`].
//!
//! The columns are schema 1's, in its order, with the columns added since
//! at the end, so that old files read with the same type.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::dims::{Execution, Framework};
use crate::env::Environment;
use crate::row::{Implementation, Row, Status, PYTHON_SUFFIX, ROW_SCHEMA_VERSION};
use crate::settings::Pairs;
use crate::stats::Summary;

/// One CSV line. Field order is column order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct CsvRow {
    pub run_id: String,
    pub timestamp: String,
    pub benchmark: String,
    pub case: String,
    pub framework: String,
    pub device: String,
    pub precision: String,
    pub preset: String,
    pub status: Status,
    pub reason: String,
    pub repetitions: Option<usize>,
    pub median_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    pub mean_s: Option<f64>,
    pub std_s: Option<f64>,
    pub iqr_s: Option<f64>,
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    pub peak_memory_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    /// `key=value` pairs separated by `;`.
    pub settings: String,
    pub device_name: String,
    pub framework_version: String,
    // The environment, inlined: CSV has no nesting.
    pub os: String,
    pub cpu: String,
    pub cpu_cores: usize,
    pub ram_gib: f64,
    pub gpu: String,
    pub gpu_driver: String,
    pub mlx_version: String,
    pub libtorch_version: String,
    pub suite_version: String,
    pub git_commit: String,
    // Since schema 2 (absent from older files).
    #[serde(default)]
    pub execution: Option<Execution>,
    #[serde(default)]
    pub openblas_core: String,
    #[serde(default)]
    pub pid: Option<u32>,
    /// The row's `knobs`, `key=value;...` (since knobs were recorded).
    #[serde(default)]
    pub knobs: String,
}

impl From<&Row> for CsvRow {
    fn from(row: &Row) -> Self {
        let summary = row.summary.as_ref();
        let figure = |pick: fn(&Summary) -> f64| summary.map(pick);
        let env = &row.environment;
        let framework = row.framework_label();
        Self {
            run_id: row.run_id.clone(),
            timestamp: row.timestamp.clone(),
            benchmark: row.benchmark.clone(),
            case: row.case.clone(),
            framework,
            device: row.device.to_string(),
            precision: row.precision.to_string(),
            preset: row.preset.to_string(),
            status: row.status,
            reason: row.reason.clone(),
            repetitions: summary.map(|s| s.n),
            median_s: figure(|s| s.median),
            min_s: figure(|s| s.min),
            max_s: figure(|s| s.max),
            mean_s: figure(|s| s.mean),
            std_s: figure(|s| s.std_dev),
            iqr_s: figure(|s| s.iqr),
            throughput: row.throughput,
            throughput_unit: row.throughput_unit.clone(),
            peak_memory_bytes: row.peak_memory_bytes,
            peak_rss_bytes: row.peak_rss_bytes,
            settings: row.settings.encode(),
            device_name: row.device_name.clone(),
            framework_version: row.framework_version.clone(),
            os: env.os.clone(),
            cpu: env.cpu.clone(),
            cpu_cores: env.cpu_cores,
            ram_gib: env.ram_gib,
            gpu: env.gpu.clone(),
            gpu_driver: env.gpu_driver.clone(),
            mlx_version: env.mlx_version.clone(),
            libtorch_version: env.libtorch_version.clone(),
            suite_version: env.suite_version.clone(),
            git_commit: env.git_commit.clone(),
            execution: Some(row.execution),
            openblas_core: env.openblas_core.clone(),
            pid: env.pid,
            knobs: row.knobs.encode(),
        }
    }
}

impl CsvRow {
    /// The line's bytes, with the header line first when asked.
    pub fn encode(&self, with_header: bool) -> Result<Vec<u8>> {
        let mut writer = csv::WriterBuilder::new()
            .has_headers(with_header)
            .from_writer(Vec::new());
        writer.serialize(self)?;
        writer.into_inner().context("encoding a CSV row")
    }

    /// The row this line stands for. Summary figures come from the line
    /// (the caller adds the samples where a JSONL file kept them); a line
    /// of schema 1 names its asked mode in the `mode=` setting.
    pub fn into_row(self) -> Result<Row> {
        let (framework, implementation) = match self.framework.strip_suffix(PYTHON_SUFFIX) {
            Some(framework) => (framework, Implementation::Python),
            None => (self.framework.as_str(), Implementation::Twin),
        };
        let framework: Framework = parse("framework", framework)?;
        let settings = Pairs::decode(&self.settings);
        let execution = match self.execution {
            Some(execution) => execution,
            None => settings
                .get("mode")
                .map(|mode| parse::<Execution>("mode", mode))
                .transpose()?
                .unwrap_or_default(),
        };
        let summary = self.median_s.map(|median| Summary {
            n: self.repetitions.unwrap_or_default(),
            median,
            min: self.min_s.unwrap_or(median),
            max: self.max_s.unwrap_or(median),
            mean: self.mean_s.unwrap_or(median),
            std_dev: self.std_s.unwrap_or_default(),
            iqr: self.iqr_s.unwrap_or_default(),
        });
        Ok(Row {
            schema_version: ROW_SCHEMA_VERSION,
            device: parse("device", &self.device)?,
            precision: parse("precision", &self.precision)?,
            preset: parse("preset", &self.preset)?,
            run_id: self.run_id,
            timestamp: self.timestamp,
            benchmark: self.benchmark,
            case: self.case,
            framework,
            implementation,
            execution,
            status: self.status,
            reason: self.reason,
            samples_s: Vec::new(),
            summary,
            throughput: self.throughput,
            throughput_unit: self.throughput_unit,
            peak_memory_bytes: self.peak_memory_bytes,
            peak_rss_bytes: self.peak_rss_bytes,
            settings,
            knobs: Pairs::decode(&self.knobs),
            device_name: self.device_name,
            framework_version: self.framework_version,
            environment: Environment {
                os: self.os,
                cpu: self.cpu,
                cpu_cores: self.cpu_cores,
                ram_gib: self.ram_gib,
                gpu: self.gpu,
                gpu_driver: self.gpu_driver,
                mlx_version: self.mlx_version,
                libtorch_version: self.libtorch_version,
                suite_version: self.suite_version,
                git_commit: self.git_commit,
                openblas_core: self.openblas_core,
                pid: self.pid,
                // No CSV columns: the JSONL record keeps the Mac's identity
                // (its `gpu` and `cpu` columns name the chip and cores).
                mac: None,
            },
        })
    }
}

/// A dimension's value as the CSV names it.
fn parse<T: clap::ValueEnum>(column: &str, value: &str) -> Result<T> {
    T::from_str(value, true)
        .map_err(|_| anyhow::anyhow!("{column} '{value}' is not one the suite knows"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cell::Cell;
    use crate::measure::CaseResult;
    use crate::settings::Settings;

    const KNOBS: &[crate::Knob] = &[crate::Knob::at_least("n", 1, "512", "size")];

    #[test]
    fn a_row_and_its_csv_line_carry_the_same_figures_and_settings() {
        let cell = Cell {
            execution: Execution::Eager,
            options: vec![("n".into(), "64".into())],
            knobs: KNOBS,
            ..Cell::for_checks()
        };
        let start = Row::start("run", "bert", &cell, "2.11.0", &Environment::default());
        let case = CaseResult {
            case: "step".into(),
            samples: vec![1.0, 2.0, 4.0],
            throughput: None,
            peak_memory_bytes: None,
            settings: Settings::new().with("prompt", "a; b"),
        };
        let row = start.measured(&case, None).unwrap();
        let line = CsvRow::from(&row);
        assert_eq!(line.median_s, Some(2.0));
        assert_eq!(line.framework, "torch");
        assert!(line.settings.ends_with(";prompt=a, b"), "{}", line.settings);
        assert_eq!(line.knobs, "n=64");
        let mut back = line.into_row().unwrap();
        back.samples_s = row.samples_s.clone();
        assert_eq!(back, row);
    }

    #[test]
    fn a_schema_1_line_reads_its_mode_and_its_python_framework() {
        let line = CsvRow {
            framework: "mlx-python".into(),
            device: "gpu".into(),
            precision: "bf16".into(),
            preset: "paper".into(),
            settings: "seed=0;mode=eager;execution=compiled".into(),
            median_s: Some(0.5),
            repetitions: Some(3),
            ..CsvRow::default()
        };
        let row = line.into_row().unwrap();
        assert_eq!(row.framework, Framework::Mlx);
        assert_eq!(row.implementation, Implementation::Python);
        assert_eq!(row.execution, Execution::Eager);
        assert_eq!(row.median_s(), Some(0.5));
        let unknown = CsvRow {
            framework: "jax".into(),
            ..CsvRow::default()
        };
        let error = unknown.into_row().unwrap_err().to_string();
        assert!(error.contains("framework 'jax'"), "{error}");
    }
}
