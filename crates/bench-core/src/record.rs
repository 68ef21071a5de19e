//! Result records: one CSV row per benchmark x case x framework x device x
//! precision x preset, with its figures, settings and environment; and
//! beside each CSV file a JSONL file of the same rows with every
//! repetition's time ([`SampleRecord`]), for `report` and `compare`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::append::Appender;
use crate::cell::Cell;
use crate::env::{is_dirty, Environment};
use crate::settings::Settings;
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
    pub settings: Settings,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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

/// One CSV row. Field order is column order.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
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

impl Record {
    /// The figures of its repetitions: n, median, extremes, mean, spread.
    pub fn set_summary(&mut self, summary: &Summary) {
        self.repetitions = Some(summary.n);
        self.median_s = Some(summary.median);
        self.min_s = Some(summary.min);
        self.max_s = Some(summary.max);
        self.mean_s = Some(summary.mean);
        self.std_s = Some(summary.std_dev);
        self.iqr_s = Some(summary.iqr);
    }

    /// The environment inlined in the row.
    pub fn environment(&self) -> Environment {
        Environment {
            os: self.os.clone(),
            cpu: self.cpu.clone(),
            cpu_cores: self.cpu_cores,
            ram_gib: self.ram_gib,
            gpu: self.gpu.clone(),
            gpu_driver: self.gpu_driver.clone(),
            mlx_version: self.mlx_version.clone(),
            libtorch_version: self.libtorch_version.clone(),
            suite_version: self.suite_version.clone(),
            git_commit: self.git_commit.clone(),
        }
    }

    /// Inlines an environment into the row.
    fn set_environment(&mut self, env: Environment) {
        self.os = env.os;
        self.cpu = env.cpu;
        self.cpu_cores = env.cpu_cores;
        self.ram_gib = env.ram_gib;
        self.gpu = env.gpu;
        self.gpu_driver = env.gpu_driver;
        self.mlx_version = env.mlx_version;
        self.libtorch_version = env.libtorch_version;
        self.suite_version = env.suite_version;
        self.git_commit = env.git_commit;
    }

    /// The settings as `key -> value` (a repeated key: the last one wins, as
    /// the runner applies them).
    pub fn settings_map(&self) -> BTreeMap<String, String> {
        crate::settings::decode(&self.settings)
    }
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
    pub settings: Settings,
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
        let mut record = Record {
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
            settings: self.settings.encode(),
            device_name: self.device_name.clone(),
            framework_version: self.framework_version.clone(),
            ..Record::default()
        };
        record.set_environment(env.clone());
        record
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
        settings.extend(result.settings.clone());
        record.settings = settings.encode();
        record.set_summary(&summary);
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

/// Layout version of [`SampleRecord`]; raised on a change that old readers
/// would misread.
pub const SAMPLES_SCHEMA_VERSION: u32 = 1;

/// The JSONL file beside a CSV file: `<run>.csv` -> `<run>.jsonl`.
pub fn samples_path(csv_path: &Path) -> PathBuf {
    csv_path.with_extension("jsonl")
}

/// One JSONL line: a CSV row's identity and figures, with every repetition's
/// time, the settings as a map and the environment as an object.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SampleRecord {
    pub schema_version: u32,
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
    /// Seconds of each timed repetition, in the order they ran; empty for a
    /// skipped or failed row.
    pub samples_s: Vec<f64>,
    pub median_s: Option<f64>,
    pub iqr_s: Option<f64>,
    /// Throughput at the median time.
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    pub peak_memory_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub settings: BTreeMap<String, String>,
    pub device_name: String,
    pub framework_version: String,
    pub environment: SampleEnvironment,
}

/// The environment of a [`SampleRecord`], with the dirty flag spelled out.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SampleEnvironment {
    #[serde(flatten)]
    pub machine: Environment,
    /// The checkout had uncommitted changes outside `reports/`.
    pub git_dirty: bool,
}

impl SampleRecord {
    pub fn new(record: &Record, samples: &[f64]) -> Self {
        let machine = record.environment();
        Self {
            schema_version: SAMPLES_SCHEMA_VERSION,
            run_id: record.run_id.clone(),
            timestamp: record.timestamp.clone(),
            benchmark: record.benchmark.clone(),
            case: record.case.clone(),
            framework: record.framework.clone(),
            device: record.device.clone(),
            precision: record.precision.clone(),
            preset: record.preset.clone(),
            status: record.status,
            reason: record.reason.clone(),
            samples_s: samples.to_vec(),
            median_s: record.median_s,
            iqr_s: record.iqr_s,
            throughput: record.throughput,
            throughput_unit: record.throughput_unit.clone(),
            peak_memory_bytes: record.peak_memory_bytes,
            peak_rss_bytes: record.peak_rss_bytes,
            settings: record.settings_map(),
            device_name: record.device_name.clone(),
            framework_version: record.framework_version.clone(),
            environment: SampleEnvironment {
                git_dirty: is_dirty(&machine.git_commit),
                machine,
            },
        }
    }

    /// The CSV row this line stands for (summary figures from the samples),
    /// for a run whose CSV file is lost.
    pub fn to_record(&self) -> Record {
        let summary = Summary::of(&self.samples_s).ok();
        let figure = |pick: fn(&Summary) -> f64| summary.as_ref().map(pick);
        let mut record = Record {
            run_id: self.run_id.clone(),
            timestamp: self.timestamp.clone(),
            benchmark: self.benchmark.clone(),
            case: self.case.clone(),
            framework: self.framework.clone(),
            device: self.device.clone(),
            precision: self.precision.clone(),
            preset: self.preset.clone(),
            status: self.status,
            reason: self.reason.clone(),
            repetitions: summary.as_ref().map(|s| s.n),
            median_s: self.median_s.or(figure(|s| s.median)),
            min_s: figure(|s| s.min),
            max_s: figure(|s| s.max),
            mean_s: figure(|s| s.mean),
            std_s: figure(|s| s.std_dev),
            iqr_s: self.iqr_s.or(figure(|s| s.iqr)),
            throughput: self.throughput,
            throughput_unit: self.throughput_unit.clone(),
            peak_memory_bytes: self.peak_memory_bytes,
            peak_rss_bytes: self.peak_rss_bytes,
            settings: self.settings.iter().collect::<Settings>().encode(),
            device_name: self.device_name.clone(),
            framework_version: self.framework_version.clone(),
            ..Record::default()
        };
        record.set_environment(self.environment.machine.clone());
        record
    }
}

/// Appends [`SampleRecord`]s to a JSONL file, one line per row, each
/// line one whole write ([`Appender`]), as the CSV rows.
pub struct JsonlAppender {
    file: Appender,
}

impl JsonlAppender {
    pub fn open(path: &Path) -> Result<Self> {
        Ok(Self {
            file: Appender::open(path)?,
        })
    }

    /// Appends the row with its samples (seconds per timed repetition).
    pub fn append(&mut self, record: &Record, samples: &[f64]) -> Result<()> {
        self.file.append(|_| {
            let mut line = serde_json::to_vec(&SampleRecord::new(record, samples))?;
            line.push(b'\n');
            Ok(line)
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
