//! Reading result files for `report` and `compare`: each run's rows
//! ([`bench_core::Row`]), from its JSONL record (one row per line, schema
//! 2), or, for runs written before it, from its CSV rows with the
//! repetitions of the schema-1 JSONL file beside it where there is one
//! (older runs have none: their rows carry summary figures only).
//!
//! Rows written before they recorded their knobs get them from their
//! settings ([`identity`]).
//!
//! Reading is forgiving: a malformed row is skipped with a warning that
//! names its file and line, and the rest is read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bench_core::csv_export::CsvRow;
use bench_core::row::ROW_SCHEMA_VERSION;
use bench_core::settings::Pairs;
use bench_core::{DeviceKind, Row, Summary};
use serde_json::Value;

use crate::identity;

/// The layout of the JSONL lines of samples beside a schema-1 CSV file.
const SAMPLES_SCHEMA_VERSION: u64 = 1;

/// What was read, and what was skipped (one line per skipped row).
#[derive(Debug, Default)]
pub struct Loaded {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
}

impl Loaded {
    fn extend(&mut self, other: Loaded) {
        self.rows.extend(other.rows);
        self.warnings.extend(other.warnings);
    }

    /// Prints the warnings to stderr.
    pub fn warn(&self) {
        for warning in &self.warnings {
            eprintln!("warning: {warning}");
        }
    }
}

/// Every run in `dir`: each `*.csv` with its `*.jsonl`, and each `*.jsonl`
/// whose CSV is missing.
pub fn load_dir(dir: &Path) -> Result<Loaded> {
    let mut loaded = Loaded::default();
    if !dir.exists() {
        return Ok(loaded);
    }
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| {
            let ext = path.extension().and_then(|e| e.to_str());
            ext == Some("csv") || (ext == Some("jsonl") && !path.with_extension("csv").exists())
        })
        .collect();
    files.sort();
    for file in files {
        loaded.extend(load_run(&file)?);
    }
    Ok(loaded)
}

/// One run's file (its CSV or its JSONL), with the other one beside it.
/// A JSONL record of schema-2 rows is the run (its CSV is an export);
/// otherwise the CSV's rows, each with its schema-1 line's samples.
pub fn load_run(path: &Path) -> Result<Loaded> {
    let csv = path.with_extension("csv");
    let jsonl = path.with_extension("jsonl");
    anyhow::ensure!(
        csv.exists() || jsonl.exists(),
        "no result file {} (nor {})",
        csv.display(),
        jsonl.display()
    );
    let mut loaded = Loaded::default();
    let lines = if jsonl.exists() {
        read_jsonl(&jsonl, &mut loaded.warnings)?
    } else {
        Lines::default()
    };
    if !lines.rows.is_empty() {
        for line in lines.legacy {
            loaded.warnings.push(format!(
                "{}:{}: line skipped: schema_version 1 among rows of schema {ROW_SCHEMA_VERSION}",
                jsonl.display(),
                line.number
            ));
        }
        loaded.rows = lines.rows;
        let mut unrecorded: Vec<&mut Row> = loaded
            .rows
            .iter_mut()
            .zip(&lines.knobs_recorded)
            .filter(|(_, recorded)| !**recorded)
            .map(|(row, _)| row)
            .collect();
        identity::derive_unrecorded(&mut unrecorded);
        return Ok(loaded);
    }
    if !csv.exists() {
        for line in lines.legacy {
            match line.to_row() {
                Ok(row) => loaded.rows.push(row),
                Err(error) => loaded.warnings.push(format!(
                    "{}:{}: line skipped: {error}",
                    jsonl.display(),
                    line.number
                )),
            }
        }
        derive_every_row(&mut loaded.rows);
        return Ok(loaded);
    }
    // The runner wrote a CSV row and its JSONL line together: a line is
    // found again by the row's identity (settings compared as maps, since
    // the JSONL sorts them).
    let mut by_key: HashMap<String, VecDeque<Vec<f64>>> = HashMap::new();
    for line in lines.legacy {
        by_key
            .entry(line.key())
            .or_default()
            .push_back(line.samples);
    }
    for (number, line) in read_csv(&csv, &mut loaded.warnings)? {
        let samples = by_key.get_mut(&key(&line)).and_then(VecDeque::pop_front);
        match legacy_framework(line).into_row() {
            Ok(mut row) => {
                row.samples_s = samples.unwrap_or_default();
                loaded.rows.push(row);
            }
            Err(error) => loaded
                .warnings
                .push(format!("{}:{number}: row skipped: {error}", csv.display())),
        }
    }
    derive_every_row(&mut loaded.rows);
    Ok(loaded)
}

/// The knobs of a run written before rows recorded them.
fn derive_every_row(rows: &mut [Row]) {
    identity::derive_unrecorded(&mut rows.iter_mut().collect::<Vec<_>>());
}

/// The repetitions of a row, where it recorded any.
pub fn samples(row: &Row) -> Option<&[f64]> {
    Some(row.samples_s.as_slice()).filter(|s| !s.is_empty())
}

/// The machine a row was measured on, as the tables show it: the GPU for
/// accelerator rows, the CPU otherwise. A Mac is its chip with its GPU
/// cores ("Apple M4 Max (40-core GPU)"), so that two Macs are never pooled
/// as passes of one configuration.
pub fn machine(row: &Row) -> String {
    let env = &row.environment;
    if row.device == DeviceKind::Gpu {
        if let Some(mac) = &env.mac {
            return format!("GPU: {}", mac.gpu_name());
        }
        let gpu = if env.gpu.is_empty() {
            row.device_name.as_str()
        } else {
            env.gpu.as_str()
        };
        // A cell runs on one GPU: "2x NVIDIA H200" (the host's) and the
        // references' "NVIDIA H200" are the same device.
        let one = gpu
            .split_once("x ")
            .filter(|(count, _)| !count.is_empty() && count.chars().all(|c| c.is_ascii_digit()))
            .map_or(gpu, |(_, name)| name);
        format!("GPU: {one}")
    } else {
        format!("CPU: {} ({} cores)", env.cpu, env.cpu_cores)
    }
}

/// What actually ran (`execution=`: eager, cuda-graph, compiled, ...).
pub fn ran(row: &Row) -> &str {
    row.setting("execution").unwrap_or("-")
}

/// The model a row ran, as the tables name it: the checkpoint (and the one
/// it stands in for, where the asked one was unavailable), else its size
/// and weights.
pub fn model(row: &Row) -> String {
    let last = |name: &str| name.rsplit('/').next().unwrap_or(name).to_owned();
    if let Some(name) = row.setting("model") {
        let asked = row
            .setting("model_fallback")
            .and_then(|why| why.split_whitespace().next())
            .map(|asked| format!(" in place of {}", last(asked)))
            .unwrap_or_default();
        return format!("{}{asked}", last(name));
    }
    let parameters = row
        .setting("parameters")
        .and_then(|p| p.parse::<f64>().ok())
        .map(|p| {
            if p >= 1e9 {
                format!("{:.1}B parameters", p / 1e9)
            } else {
                format!("{:.0}M parameters", p / 1e6)
            }
        });
    match (parameters, row.setting("weights")) {
        (Some(size), Some(weights)) => format!("{size}, {weights}"),
        (Some(size), None) => size,
        (None, _) => "-".into(),
    }
}

/// Four significant digits, without exponent for ordinary magnitudes.
pub fn significant(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let digits = (3 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

/// The identity of a schema-1 row, shared by its CSV row and JSONL line.
fn identity(line: &CsvRow, settings: &BTreeMap<String, String>) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{settings:?}",
        line.run_id,
        line.timestamp,
        line.benchmark,
        line.case,
        line.framework,
        line.device,
        line.precision,
        line.preset
    )
}

/// A CSV row's identity (a repeated setting: the last one wins).
fn key(line: &CsvRow) -> String {
    identity(
        line,
        &Pairs::decode(&line.settings).iter().map(owned).collect(),
    )
}

fn owned((key, value): (&str, &str)) -> (String, String) {
    (key.to_owned(), value.to_owned())
}

/// Python references written before they were named by `reference_path`
/// (TinyLlama's transformers and mlx-lm rows, now under reports/archive/):
/// their framework's reference, with that name.
fn legacy_framework(mut line: CsvRow) -> CsvRow {
    let (framework, path) = match line.framework.as_str() {
        "hf-transformers" => ("torch-python", "transformers generate eager"),
        "mlx-lm" => ("mlx-python", "mlx-lm generate_step"),
        _ => return line,
    };
    line.framework = framework.to_owned();
    let separator = if line.settings.is_empty() { "" } else { ";" };
    line.settings = format!("{}{separator}reference_path={path}", line.settings);
    line
}

/// The rows of a CSV file, with their line numbers; a row that is not a
/// result row is skipped.
fn read_csv(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<(u64, CsvRow)>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let headers = reader
        .headers()
        .with_context(|| format!("reading {}", path.display()))?
        .clone();
    let mut rows = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let parsed = record.and_then(|record| {
            let line = record.position().map_or(index as u64 + 2, |p| p.line());
            Ok((line, record.deserialize::<CsvRow>(Some(&headers))?))
        });
        match parsed {
            Ok(row) => rows.push(row),
            Err(error) => {
                let line = error
                    .position()
                    .map_or(index as u64 + 2, |position| position.line());
                warnings.push(format!(
                    "{}:{line}: row skipped: {}",
                    path.display(),
                    error_text(&error)
                ));
                if matches!(error.kind(), csv::ErrorKind::Io(_)) {
                    break;
                }
            }
        }
    }
    Ok(rows)
}

/// The error without the position that the warning already names.
fn error_text(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Deserialize { err, .. } => err.to_string(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("{len} fields where the header has {expected_len}"),
        _ => error.to_string(),
    }
}

/// A schema-1 JSONL line: a CSV row's identity and figures with every
/// repetition's time, its settings as a map and its environment as an
/// object.
struct LegacyLine {
    number: usize,
    /// The line as a CSV row: the environment inlined, the settings encoded.
    row: CsvRow,
    samples: Vec<f64>,
}

impl LegacyLine {
    fn parse(number: usize, mut line: Value, samples: Vec<f64>) -> Result<Self> {
        let object = line.as_object_mut().context("not a JSON object")?;
        let settings: BTreeMap<String, String> = match object.remove("settings") {
            Some(settings) => serde_json::from_value(settings)?,
            None => BTreeMap::new(),
        };
        if let Some(Value::Object(environment)) = object.remove("environment") {
            object.extend(environment);
        }
        let encoded = settings.iter().collect::<Pairs>().encode();
        object.insert("settings".into(), encoded.into());
        Ok(Self {
            number,
            row: serde_json::from_value(line)?,
            samples,
        })
    }

    /// The identity of the CSV row this line was written with.
    fn key(&self) -> String {
        let settings = Pairs::decode(&self.row.settings);
        identity(&self.row, &settings.iter().map(owned).collect())
    }

    /// The row this line stands for, for a run whose CSV file is lost:
    /// its figures from its samples, where the line lacks them.
    fn to_row(&self) -> Result<Row> {
        let summary = Summary::of(&self.samples).ok();
        let figure = |pick: fn(&Summary) -> f64| summary.as_ref().map(pick);
        let line = CsvRow {
            repetitions: summary.as_ref().map(|s| s.n),
            median_s: self.row.median_s.or(figure(|s| s.median)),
            min_s: figure(|s| s.min),
            max_s: figure(|s| s.max),
            mean_s: figure(|s| s.mean),
            std_s: figure(|s| s.std_dev),
            iqr_s: self.row.iqr_s.or(figure(|s| s.iqr)),
            ..self.row.clone()
        };
        let mut row = legacy_framework(line).into_row()?;
        row.samples_s = self.samples.clone();
        Ok(row)
    }
}

/// What a JSONL file holds: rows of schema 2, or schema-1 lines of samples.
#[derive(Default)]
struct Lines {
    rows: Vec<Row>,
    /// Per row, whether its line holds its knobs (rows written before they
    /// were recorded do not: see [`identity`]).
    knobs_recorded: Vec<bool>,
    legacy: Vec<LegacyLine>,
}

/// The lines of a JSONL file; a line that is neither a row nor a sample
/// line of a known schema is skipped.
fn read_jsonl(path: &Path, warnings: &mut Vec<String>) -> Result<Lines> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = Lines::default();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let number = index + 1;
        if let Err(why) = read_line(line, number, &mut lines) {
            warnings.push(format!("{}:{number}: line skipped: {why}", path.display()));
        }
    }
    Ok(lines)
}

/// One line into `lines`, or why not.
fn read_line(line: &str, number: usize, lines: &mut Lines) -> Result<(), String> {
    let value: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
    let schema = value
        .get("schema_version")
        .and_then(Value::as_u64)
        .ok_or("no schema_version")?;
    let samples: Vec<f64> = match schema {
        SAMPLES_SCHEMA_VERSION => match value.get("samples_s") {
            Some(samples) => serde_json::from_value(samples.clone()).map_err(|e| e.to_string())?,
            None => Vec::new(),
        },
        // From the line itself: a JSON value would sort the settings and
        // merge their repeated keys.
        ROW_SCHEMA => {
            let row: Row = serde_json::from_str(line).map_err(|e| e.to_string())?;
            check(&row.samples_s)?;
            lines.rows.push(row);
            lines.knobs_recorded.push(value.get("knobs").is_some());
            return Ok(());
        }
        newer if newer > ROW_SCHEMA => {
            return Err(format!(
                "schema_version {newer} is newer than this reader's {ROW_SCHEMA_VERSION}"
            ))
        }
        other => {
            return Err(format!(
                "schema_version {other} is not one this reader knows"
            ))
        }
    };
    check(&samples)?;
    let legacy = LegacyLine::parse(number, value, samples).map_err(|e| e.to_string())?;
    lines.legacy.push(legacy);
    Ok(())
}

const ROW_SCHEMA: u64 = ROW_SCHEMA_VERSION as u64;

/// Samples are times: finite, not negative.
fn check(samples: &[f64]) -> Result<(), String> {
    if samples.iter().any(|s| !s.is_finite() || *s < 0.0) {
        return Err("a sample is negative or not a number".into());
    }
    Ok(())
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use bench_core::env::Environment;
    use bench_core::record::RowWriter;
    use bench_core::{Execution, Status};

    /// A measured row, as the report's tests build them.
    pub fn row(framework: &str, case: &str, median: f64, run: &str) -> Row {
        CsvRow {
            run_id: run.into(),
            timestamp: format!("2026-01-01T00:00:0{}Z", run.len()),
            benchmark: "transfer".into(),
            case: case.into(),
            framework: framework.into(),
            device: "cpu".into(),
            precision: "f32".into(),
            preset: "quick".into(),
            status: Status::Ok,
            reason: String::new(),
            repetitions: Some(5),
            median_s: Some(median),
            min_s: Some(median),
            max_s: Some(median),
            mean_s: Some(median),
            std_s: Some(0.0),
            iqr_s: Some(median * 0.01),
            settings: "threads=2;mode=best".into(),
            device_name: "cpu".into(),
            os: "Linux".into(),
            cpu: "EPYC".into(),
            cpu_cores: 2,
            ram_gib: 24.0,
            mlx_version: "0.32.2".into(),
            libtorch_version: "2.11.0".into(),
            suite_version: "0.1.0".into(),
            git_commit: "abc".into(),
            ..CsvRow::default()
        }
        .into_row()
        .unwrap()
    }

    /// Sets a measured row's median.
    pub fn set_median(row: &mut Row, median: f64) {
        row.summary.as_mut().expect("a measured row").median = median;
    }

    /// Sets a measured row's interquartile range.
    pub fn set_iqr(row: &mut Row, iqr: f64) {
        row.summary.as_mut().expect("a measured row").iqr = iqr;
    }

    /// Sets a row's settings from their CSV form.
    pub fn set_settings(row: &mut Row, settings: &str) {
        row.settings = Pairs::decode(settings);
    }

    /// A fresh temporary folder for one test.
    pub fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes rows as the runner does: `<run>.jsonl`, and its CSV export.
    pub fn write_run(path: &Path, rows: &[Row]) {
        let mut writer = RowWriter::open(&path.with_extension("jsonl")).unwrap();
        for row in rows {
            writer.append(row).unwrap();
        }
    }

    /// The columns of a schema-1 CSV file: the export's, less those added
    /// since.
    const SCHEMA_1_COLUMNS: usize = 34;

    /// Writes rows as the runner did before schema 2: a CSV of schema 1's
    /// columns and, where `samples`, a JSONL line of samples per row.
    fn write_legacy_run(csv_path: &Path, rows: &[Row], samples: bool) {
        let mut writer = csv::Writer::from_path(csv_path).unwrap();
        for (index, row) in rows.iter().enumerate() {
            let text = CsvRow::from(row).encode(index == 0).unwrap();
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(text.as_slice());
            for record in reader.records() {
                let record = record.unwrap();
                writer
                    .write_record(record.iter().take(SCHEMA_1_COLUMNS))
                    .unwrap();
            }
        }
        writer.flush().unwrap();
        if samples {
            let lines: String = rows.iter().map(|r| legacy_line(r) + "\n").collect();
            fs::write(csv_path.with_extension("jsonl"), lines).unwrap();
        }
    }

    /// A row's schema-1 JSONL line, as the runner wrote it.
    fn legacy_line(row: &Row) -> String {
        let env = &row.environment;
        let settings: BTreeMap<&str, &str> = row.settings.iter().collect();
        serde_json::json!({
            "schema_version": 1,
            "run_id": row.run_id,
            "timestamp": row.timestamp,
            "benchmark": row.benchmark,
            "case": row.case,
            "framework": row.framework_label(),
            "device": row.device.to_string(),
            "precision": row.precision.to_string(),
            "preset": row.preset.to_string(),
            "status": row.status,
            "reason": row.reason,
            "samples_s": row.samples_s,
            "median_s": row.median_s(),
            "iqr_s": row.summary.as_ref().map(|s| s.iqr),
            "throughput": row.throughput,
            "throughput_unit": row.throughput_unit,
            "peak_memory_bytes": row.peak_memory_bytes,
            "peak_rss_bytes": row.peak_rss_bytes,
            "settings": settings,
            "device_name": row.device_name,
            "framework_version": row.framework_version,
            "environment": {
                "os": env.os, "cpu": env.cpu, "cpu_cores": env.cpu_cores,
                "ram_gib": env.ram_gib, "gpu": env.gpu, "gpu_driver": env.gpu_driver,
                "mlx_version": env.mlx_version, "libtorch_version": env.libtorch_version,
                "suite_version": env.suite_version, "git_commit": env.git_commit,
                "git_dirty": false,
            },
        })
        .to_string()
    }

    /// A row with its samples and figures from them.
    fn sampled(framework: &str, samples: &[f64], run: &str) -> Row {
        let mut row = row(framework, "switch", 0.0, run);
        row.summary = Some(Summary::of(samples).unwrap());
        row.samples_s = samples.to_vec();
        row
    }

    #[test]
    fn a_gpu_cell_is_named_by_its_one_gpu() {
        let mut r = row("mlx", "switch", 1.0, "r");
        r.device = DeviceKind::Gpu;
        r.environment.gpu = "2x NVIDIA H200".into();
        assert_eq!(machine(&r), "GPU: NVIDIA H200");
        r.environment.gpu = "NVIDIA H200".into();
        assert_eq!(machine(&r), "GPU: NVIDIA H200");
        r.environment.gpu = "Radeon 9x Max".into();
        assert_eq!(machine(&r), "GPU: Radeon 9x Max");
    }

    #[test]
    fn model_names_the_checkpoint_or_the_size() {
        let mut bert = row("torch", "step", 1.0, "r");
        set_settings(&mut bert, "model=sentence-transformers/all-MiniLM-L6-v2;model_fallback=google-bert/bert-base-uncased unavailable (offline)");
        assert_eq!(
            model(&bert),
            "all-MiniLM-L6-v2 in place of bert-base-uncased"
        );
        set_settings(
            &mut bert,
            "parameters=1100048384;weights=random weights (seed 0)",
        );
        assert_eq!(model(&bert), "1.1B parameters, random weights (seed 0)");
        set_settings(&mut bert, "parameters=18813242");
        assert_eq!(model(&bert), "19M parameters");
        set_settings(&mut bert, "");
        assert_eq!(model(&bert), "-");
    }

    #[test]
    fn significant_digits() {
        assert_eq!(significant(0.039212), "0.03921");
        assert_eq!(significant(123.456), "123.5");
        assert_eq!(significant(12345.6), "12346");
    }

    #[test]
    fn samples_join_their_csv_rows_and_old_runs_have_none() {
        let dir = temp_dir("join");
        let a = sampled("torch", &[2.0, 2.1, 1.9], "r1");
        let b = sampled("mlx", &[1.0, 1.0, 1.2], "r1");
        write_legacy_run(&dir.join("r1.csv"), &[a.clone(), b], true);
        // An older run: CSV only.
        write_legacy_run(
            &dir.join("r0.csv"),
            &[row("torch", "switch", 3.0, "r0")],
            false,
        );
        // A run whose CSV is lost: rows from the JSONL.
        let lost = sampled("mlx", &[0.5, 0.4, 0.6], "r2");
        fs::write(dir.join("r2.jsonl"), legacy_line(&lost)).unwrap();
        let loaded = load_dir(&dir).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let find = |run: &str, framework: &str| {
            loaded
                .rows
                .iter()
                .find(|r| r.run_id == run && r.framework_label() == framework)
                .unwrap()
        };
        assert_eq!(samples(find("r1", "torch")), Some(&[2.0, 2.1, 1.9][..]));
        assert_eq!(*find("r1", "torch"), a);
        assert_eq!(samples(find("r1", "mlx")), Some(&[1.0, 1.0, 1.2][..]));
        assert_eq!(samples(find("r0", "torch")), None);
        let recovered = find("r2", "mlx");
        assert_eq!(recovered.median_s(), Some(0.5));
        assert_eq!(recovered.summary.as_ref().map(|s| s.n), Some(3));
        assert_eq!(loaded.rows.len(), 4);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_legacy_run_and_a_schema_2_run_load_as_the_same_rows() {
        let dir = temp_dir("schemas");
        let mut rows = vec![
            sampled("torch", &[2.0, 2.1, 1.9], "old"),
            sampled("mlx", &[1.0, 1.0, 1.2], "old"),
            sampled("mlx-python", &[0.5, 0.4, 0.6], "old"),
        ];
        set_settings(&mut rows[2], "reference_path=mlx-lm;execution=compiled");
        let mut failed = row("torch", "-", 0.0, "old");
        failed.summary = None;
        failed.status = Status::Failed;
        failed.reason = "out of memory".into();
        rows.push(failed);
        // An eager cell: schema 1 named the mode in its settings.
        let mut eager = sampled("torch", &[3.0, 3.0, 3.1], "old");
        eager.execution = Execution::Eager;
        set_settings(&mut eager, "threads=2;mode=eager;execution=eager");
        rows.push(eager);
        for row in &mut rows {
            row.environment = Environment {
                gpu: "NVIDIA H100".into(),
                ..row.environment.clone()
            };
            // Figures of few digits: serde_json (without its
            // float_roundtrip feature) may read a 17-digit one back a bit
            // off.
            if let Some(summary) = row.summary.as_mut() {
                summary.mean = summary.median;
                summary.std_dev = 0.25;
                summary.iqr = 0.125;
            }
        }
        write_legacy_run(&dir.join("old.csv"), &rows, true);
        write_run(&dir.join("new.csv"), &rows);
        // Schema 2: the JSONL is the record, whatever its CSV export says.
        let export = dir.join("new.csv");
        let text = fs::read_to_string(&export).unwrap();
        fs::write(&export, format!("{text}garbage,row\n")).unwrap();
        let old = load_run(&dir.join("old.jsonl")).unwrap();
        let new = load_run(&export).unwrap();
        assert!(old.warnings.is_empty(), "{:?}", old.warnings);
        assert!(new.warnings.is_empty(), "{:?}", new.warnings);
        assert_eq!(old.rows, rows);
        assert_eq!(new.rows, rows);
        assert_eq!(samples(&new.rows[0]), Some(&[2.0, 2.1, 1.9][..]));
        assert_eq!(samples(&old.rows[3]), None);
        assert_eq!(old.rows[4].execution, Execution::Eager);
        // Both files of a run, and the folder, give the same rows.
        assert_eq!(load_run(&dir.join("new.jsonl")).unwrap().rows, rows);
        let all = load_dir(&dir).unwrap();
        assert_eq!(all.rows.len(), 2 * rows.len(), "{:?}", all.warnings);
        // A schema-2 line that is not a row is skipped, the rest read.
        let jsonl = dir.join("new.jsonl");
        let lines = fs::read_to_string(&jsonl).unwrap();
        let broken = lines.replacen("\"framework\":\"torch\"", "\"framework\":\"jax\"", 1);
        fs::write(&jsonl, broken).unwrap();
        let partial = load_run(&jsonl).unwrap();
        assert_eq!(partial.rows.len(), rows.len() - 1);
        assert_eq!(partial.warnings.len(), 1, "{:?}", partial.warnings);
        assert!(
            partial.warnings[0].starts_with(&format!("{}:1: line skipped", jsonl.display())),
            "{:?}",
            partial.warnings
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn archived_references_stand_as_their_frameworks_python_paths() {
        let dir = temp_dir("archived");
        let path = dir.join("r.csv");
        write_legacy_run(&path, &[row("torch-python", "generate", 1.0, "r")], false);
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, text.replace(",torch-python,", ",hf-transformers,")).unwrap();
        let loaded = load_run(&path).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let reference = &loaded.rows[0];
        assert_eq!(reference.framework_label(), "torch-python");
        assert_eq!(
            reference.setting("reference_path"),
            Some("transformers generate eager")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_rows_are_skipped_with_file_and_line() {
        let dir = temp_dir("malformed");
        let path = dir.join("r1.csv");
        write_legacy_run(
            &path,
            &[sampled("torch", &[2.0], "r1"), sampled("mlx", &[1.0], "r1")],
            true,
        );
        // A truncated CSV row (line 4), a bad number (line 5) and a
        // framework the suite does not know (line 6).
        let text = fs::read_to_string(&path).unwrap();
        let second = text.lines().nth(2).unwrap().to_owned();
        let bad_number = second.replacen(",1.0,", ",fast,", 1);
        let unknown = second.replacen(",mlx,", ",jax,", 1);
        fs::write(
            &path,
            format!("{text}r1,2026,transfer\n{bad_number}\n{unknown}\n"),
        )
        .unwrap();
        // A JSONL line that is not JSON (line 2), one of a future schema (line 3).
        let jsonl = path.with_extension("jsonl");
        let lines = fs::read_to_string(&jsonl).unwrap();
        let first = lines.lines().next().unwrap();
        let future = first.replace("\"schema_version\":1", "\"schema_version\":99");
        fs::write(
            &jsonl,
            format!(
                "{first}\n{{not json\n{future}\n{}\n",
                lines.lines().nth(1).unwrap()
            ),
        )
        .unwrap();
        let loaded = load_run(&path).unwrap();
        assert_eq!(loaded.rows.len(), 2, "{:?}", loaded.warnings);
        assert!(loaded.rows.iter().all(|r| samples(r).is_some()));
        let warnings = loaded.warnings.join("\n");
        for expected in [
            format!("{}:4: row skipped", path.display()),
            format!("{}:5: row skipped", path.display()),
            format!("{}:6: row skipped: framework 'jax'", path.display()),
            format!("{}:2: line skipped", jsonl.display()),
            format!("{}:3: line skipped: schema_version 99", jsonl.display()),
        ] {
            assert!(warnings.contains(&expected), "{expected} in {warnings}");
        }
        assert_eq!(loaded.warnings.len(), 5, "{warnings}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
