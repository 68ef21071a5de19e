//! Result records: one CSV row per benchmark x case x framework x device x
//! precision x preset, with its figures, settings and environment.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::append::Appender;
use crate::cell::Cell;
use crate::env::Environment;
use crate::stats::Summary;

/// How much work one repetition does, so that throughput = work / median time.
#[derive(Clone, Debug, PartialEq)]
pub struct Throughput {
    pub work_per_repetition: f64,
    /// Unit of work per second, e.g. "GFLOP/s", "tokens/s", "samples/s".
    pub unit: String,
}

/// What a benchmark returns for one measured case.
#[derive(Clone, Debug)]
pub struct CaseResult {
    /// The quantity measured, e.g. "step", "prompt", "generate", "ceiling-matmul".
    pub case: String,
    /// Seconds per timed repetition.
    pub samples: Vec<f64>,
    pub throughput: Option<Throughput>,
    pub peak_memory_bytes: Option<u64>,
    /// Benchmark-specific settings and figures (sizes, accuracy, ...).
    pub settings: Vec<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Skipped,
    Failed,
    /// The suite was stopped (Ctrl-C, SIGTERM) while the cell ran; `cargo
    /// xtask bench --resume` runs it again.
    Interrupted,
}

/// One CSV row. Field order is column order.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Record {
    pub run_id: String,
    pub timestamp: String,
    pub benchmark: String,
    pub case: String,
    pub framework: String,
    pub device: String,
    pub precision: String,
    pub preset: String,
    pub status: Status,
    /// Why a row was skipped or failed; empty when ok.
    pub reason: String,
    pub repetitions: Option<usize>,
    pub median_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    pub mean_s: Option<f64>,
    pub std_s: Option<f64>,
    pub iqr_s: Option<f64>,
    /// Throughput at the median time.
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    pub peak_memory_bytes: Option<u64>,
    /// Peak resident set size of the process during the case (Linux).
    pub peak_rss_bytes: Option<u64>,
    /// `key=value` pairs separated by `;`: every setting of the run.
    pub settings: String,
    pub device_name: String,
    pub framework_version: String,
    // The environment, inlined: the csv crate cannot write nested structs.
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
}

/// The identifying part of a record, shared by all rows of one cell.
#[derive(Clone, Debug)]
pub struct RecordHeader {
    pub run_id: String,
    pub benchmark: String,
    pub framework: String,
    pub device: String,
    pub precision: String,
    pub preset: String,
    pub device_name: String,
    pub framework_version: String,
    pub settings: Vec<(String, String)>,
}

impl RecordHeader {
    pub fn for_cell(run_id: &str, benchmark: &str, cell: &Cell) -> Self {
        Self {
            run_id: run_id.to_owned(),
            benchmark: benchmark.to_owned(),
            framework: cell.framework.to_string(),
            device: cell.device.to_string(),
            precision: cell.precision.to_string(),
            preset: cell.preset.to_string(),
            device_name: String::new(),
            framework_version: String::new(),
            settings: cell.settings(),
        }
    }

    fn record(&self, case: &str, status: Status, reason: String, env: &Environment) -> Record {
        Record {
            run_id: self.run_id.clone(),
            timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            benchmark: self.benchmark.clone(),
            case: case.to_owned(),
            framework: self.framework.clone(),
            device: self.device.clone(),
            precision: self.precision.clone(),
            preset: self.preset.clone(),
            status,
            reason,
            repetitions: None,
            median_s: None,
            min_s: None,
            max_s: None,
            mean_s: None,
            std_s: None,
            iqr_s: None,
            throughput: None,
            throughput_unit: String::new(),
            peak_memory_bytes: None,
            peak_rss_bytes: None,
            settings: join_settings(&self.settings),
            device_name: self.device_name.clone(),
            framework_version: self.framework_version.clone(),
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
        }
    }

    /// A row for a measured case.
    pub fn measured(
        &self,
        result: &CaseResult,
        peak_rss: Option<u64>,
        env: &Environment,
    ) -> Result<Record> {
        let summary =
            Summary::of(&result.samples).with_context(|| format!("case {}", result.case))?;
        let mut record = self.record(&result.case, Status::Ok, String::new(), env);
        let mut settings = self.settings.clone();
        settings.extend(result.settings.iter().cloned());
        record.settings = join_settings(&settings);
        record.repetitions = Some(summary.n);
        record.median_s = Some(summary.median);
        record.min_s = Some(summary.min);
        record.max_s = Some(summary.max);
        record.mean_s = Some(summary.mean);
        record.std_s = Some(summary.std_dev);
        record.iqr_s = Some(summary.iqr);
        if let Some(throughput) = &result.throughput {
            record.throughput = Some(throughput.work_per_repetition / summary.median);
            record.throughput_unit = throughput.unit.clone();
        }
        record.peak_memory_bytes = result.peak_memory_bytes;
        record.peak_rss_bytes = peak_rss;
        Ok(record)
    }

    /// A row for a cell that did not run here.
    pub fn skipped(&self, reason: &str, env: &Environment) -> Record {
        self.record("-", Status::Skipped, reason.to_owned(), env)
    }

    /// A row for a cell that failed.
    pub fn failed(&self, reason: &str, env: &Environment) -> Record {
        self.record("-", Status::Failed, reason.to_owned(), env)
    }

    /// A row for a cell stopped by an interrupt.
    pub fn interrupted(&self, reason: &str, env: &Environment) -> Record {
        self.record("-", Status::Interrupted, reason.to_owned(), env)
    }
}

fn join_settings(settings: &[(String, String)]) -> String {
    settings
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Appends records to a CSV file, writing the header only when the file is
/// new or empty. Each row is one write, whole or not at all
/// ([`Appender`]), so a crash or a full disk loses at most that row.
pub struct CsvAppender {
    file: Appender,
}

impl CsvAppender {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            file: Appender::open(path)?,
        })
    }

    pub fn append(&mut self, record: &Record) -> Result<()> {
        self.file.append(|with_header| {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(with_header)
                .from_writer(Vec::new());
            writer.serialize(record)?;
            writer.into_inner().context("encoding a CSV row")
        })
    }
}

/// Reads every record of a CSV file written by [`CsvAppender`].
pub fn read_records(path: &Path) -> Result<Vec<Record>> {
    let mut reader =
        csv::Reader::from_path(path).with_context(|| format!("opening {}", path.display()))?;
    reader
        .deserialize()
        .enumerate()
        .map(|(index, row)| {
            row.with_context(|| {
                format!(
                    "{}: row {} is not a result record",
                    path.display(),
                    index + 2
                )
            })
        })
        .collect()
}
