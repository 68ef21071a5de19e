//! Reading result files for `report` and `compare`: each run's CSV rows,
//! with the repetitions of its JSONL file beside it where there is one
//! (older runs have none: their rows carry summary figures only).
//!
//! Reading is forgiving: a malformed row is skipped with a warning that
//! names its file and line, and the rest is read.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bench_core::record::{samples_path, Record, SampleRecord, SAMPLES_SCHEMA_VERSION};

/// A result row and, where recorded, the time of each repetition.
#[derive(Clone, Debug)]
pub struct Row {
    pub record: Record,
    pub samples: Option<Vec<f64>>,
}

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
pub fn load_run(path: &Path) -> Result<Loaded> {
    let csv = path.with_extension("csv");
    let jsonl = samples_path(&csv);
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
        Vec::new()
    };
    if !csv.exists() {
        loaded.rows = lines
            .into_iter()
            .map(|line| Row {
                record: line.to_record(),
                samples: Some(line.samples_s),
            })
            .collect();
        return Ok(loaded);
    }
    // The runner writes a CSV row and its JSONL line together: a line is
    // found again by the row's identity (settings compared as maps, since
    // the JSONL sorts them).
    let mut by_key: HashMap<String, VecDeque<Vec<f64>>> = HashMap::new();
    for line in lines {
        by_key
            .entry(key(&line.to_record()))
            .or_default()
            .push_back(line.samples_s);
    }
    for record in read_csv(&csv, &mut loaded.warnings)? {
        let samples = by_key.get_mut(&key(&record)).and_then(VecDeque::pop_front);
        loaded.rows.push(Row {
            record,
            samples: samples.filter(|s| !s.is_empty()),
        });
    }
    Ok(loaded)
}

/// The machine a row was measured on, as the tables show it: the GPU for
/// accelerator rows, the CPU otherwise.
pub fn machine(record: &Record) -> String {
    if record.device == "gpu" {
        let gpu = if record.gpu.is_empty() {
            record.device_name.as_str()
        } else {
            record.gpu.as_str()
        };
        // A cell runs on one GPU: "2x NVIDIA H200" (the host's) and the
        // references' "NVIDIA H200" are the same device.
        let one = gpu
            .split_once("x ")
            .filter(|(count, _)| !count.is_empty() && count.chars().all(|c| c.is_ascii_digit()))
            .map_or(gpu, |(_, name)| name);
        format!("GPU: {one}")
    } else {
        format!("CPU: {} ({} cores)", record.cpu, record.cpu_cores)
    }
}

/// The value of one `key=value` of a row's settings.
pub fn setting<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .settings
        .split(';')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// The execution mode asked for: "best" (each framework's fast path, the
/// default) or "eager"; rows from before the setting existed ran "best".
pub fn mode(record: &Record) -> &str {
    setting(record, "mode").unwrap_or("best")
}

/// What actually ran (`execution=`: eager, cuda-graph, compiled, ...).
pub fn execution(record: &Record) -> &str {
    setting(record, "execution").unwrap_or("-")
}

/// The model a row ran, as the tables name it: the checkpoint (and the one
/// it stands in for, where the asked one was unavailable), else its size
/// and weights.
pub fn model(record: &Record) -> String {
    let last = |name: &str| name.rsplit('/').next().unwrap_or(name).to_owned();
    if let Some(name) = setting(record, "model") {
        let asked = setting(record, "model_fallback")
            .and_then(|why| why.split_whitespace().next())
            .map(|asked| format!(" in place of {}", last(asked)))
            .unwrap_or_default();
        return format!("{}{asked}", last(name));
    }
    let parameters = setting(record, "parameters")
        .and_then(|p| p.parse::<f64>().ok())
        .map(|p| {
            if p >= 1e9 {
                format!("{:.1}B parameters", p / 1e9)
            } else {
                format!("{:.0}M parameters", p / 1e6)
            }
        });
    match (parameters, setting(record, "weights")) {
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

fn key(record: &Record) -> String {
    let settings: BTreeMap<String, String> = record.settings_map();
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{settings:?}",
        record.run_id,
        record.timestamp,
        record.benchmark,
        record.case,
        record.framework,
        record.device,
        record.precision,
        record.preset
    )
}

/// The rows of a CSV file; a row that is not a result record is skipped.
fn read_csv(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<Record>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    for (index, row) in reader.deserialize::<Record>().enumerate() {
        match row {
            Ok(record) => records.push(record),
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
    Ok(records)
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

/// The lines of a JSONL file; a line that is not a sample record of a
/// known schema is skipped.
fn read_jsonl(path: &Path, warnings: &mut Vec<String>) -> Result<Vec<SampleRecord>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let skip = |why: String| format!("{}:{}: line skipped: {why}", path.display(), index + 1);
        match serde_json::from_str::<SampleRecord>(line) {
            Ok(record) if record.schema_version > SAMPLES_SCHEMA_VERSION => {
                warnings.push(skip(format!(
                    "schema_version {} is newer than this reader's {SAMPLES_SCHEMA_VERSION}",
                    record.schema_version
                )))
            }
            Ok(record) if record.samples_s.iter().any(|s| !s.is_finite() || *s < 0.0) => {
                warnings.push(skip("a sample is negative or not a number".into()))
            }
            Ok(record) => lines.push(record),
            Err(error) => warnings.push(skip(error.to_string())),
        }
    }
    Ok(lines)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use bench_core::record::{CsvAppender, JsonlAppender, Status};

    /// A measured row, as the report's tests build them.
    pub fn record(framework: &str, case: &str, median: f64, run: &str) -> Record {
        Record {
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
            throughput: None,
            throughput_unit: String::new(),
            peak_memory_bytes: None,
            peak_rss_bytes: None,
            settings: "threads=2;mode=best".into(),
            device_name: "cpu".into(),
            framework_version: String::new(),
            os: "Linux".into(),
            cpu: "EPYC".into(),
            cpu_cores: 2,
            ram_gib: 24.0,
            gpu: String::new(),
            gpu_driver: String::new(),
            mlx_version: "0.32.2".into(),
            libtorch_version: "2.11.0".into(),
            suite_version: "0.1.0".into(),
            git_commit: "abc".into(),
        }
    }

    /// A fresh temporary folder for one test.
    pub fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// Writes rows as the runner does: CSV, and JSONL with the samples.
    pub fn write_run(path: &Path, rows: &[(Record, Vec<f64>)]) {
        let mut csv = CsvAppender::open(path).unwrap();
        let mut jsonl = JsonlAppender::open(&samples_path(path)).unwrap();
        for (record, samples) in rows {
            csv.append(record).unwrap();
            jsonl.append(record, samples).unwrap();
        }
    }

    #[test]
    fn a_gpu_cell_is_named_by_its_one_gpu() {
        let mut r = record("mlx", "switch", 1.0, "r");
        r.device = "gpu".into();
        r.gpu = "2x NVIDIA H200".into();
        assert_eq!(machine(&r), "GPU: NVIDIA H200");
        r.gpu = "NVIDIA H200".into();
        assert_eq!(machine(&r), "GPU: NVIDIA H200");
        r.gpu = "Radeon 9x Max".into();
        assert_eq!(machine(&r), "GPU: Radeon 9x Max");
    }

    #[test]
    fn model_names_the_checkpoint_or_the_size() {
        let mut bert = record("torch", "step", 1.0, "r");
        bert.settings = "model=sentence-transformers/all-MiniLM-L6-v2;model_fallback=google-bert/bert-base-uncased unavailable (offline)".into();
        assert_eq!(
            model(&bert),
            "all-MiniLM-L6-v2 in place of bert-base-uncased"
        );
        bert.settings = "parameters=1100048384;weights=random weights (seed 0)".into();
        assert_eq!(model(&bert), "1.1B parameters, random weights (seed 0)");
        bert.settings = "parameters=18813242".into();
        assert_eq!(model(&bert), "19M parameters");
        bert.settings = String::new();
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
        let a = record("torch", "switch", 2.0, "r1");
        let b = record("mlx", "switch", 1.0, "r1");
        write_run(
            &dir.join("r1.csv"),
            &[(a.clone(), vec![2.0, 2.1, 1.9]), (b, vec![1.0, 1.0, 1.2])],
        );
        // An older run: CSV only.
        CsvAppender::open(&dir.join("r0.csv"))
            .unwrap()
            .append(&record("torch", "switch", 3.0, "r0"))
            .unwrap();
        // A run whose CSV is lost: rows from the JSONL.
        let mut lost = JsonlAppender::open(&dir.join("r2.jsonl")).unwrap();
        lost.append(&record("mlx", "switch", 0.5, "r2"), &[0.5, 0.4, 0.6])
            .unwrap();
        let loaded = load_dir(&dir).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        let find = |run: &str, framework: &str| {
            loaded
                .rows
                .iter()
                .find(|r| r.record.run_id == run && r.record.framework == framework)
                .unwrap()
        };
        assert_eq!(find("r1", "torch").samples, Some(vec![2.0, 2.1, 1.9]));
        assert_eq!(find("r1", "torch").record, a);
        assert_eq!(find("r1", "mlx").samples, Some(vec![1.0, 1.0, 1.2]));
        assert_eq!(find("r0", "torch").samples, None);
        let recovered = find("r2", "mlx");
        assert_eq!(recovered.record.median_s, Some(0.5));
        assert_eq!(recovered.record.repetitions, Some(3));
        assert_eq!(loaded.rows.len(), 4);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn malformed_rows_are_skipped_with_file_and_line() {
        let dir = temp_dir("malformed");
        let path = dir.join("r1.csv");
        write_run(
            &path,
            &[
                (record("torch", "switch", 2.0, "r1"), vec![2.0]),
                (record("mlx", "switch", 1.0, "r1"), vec![1.0]),
            ],
        );
        // A truncated CSV row (line 4) and a bad number (line 5).
        let text = fs::read_to_string(&path).unwrap();
        let second = text.lines().nth(2).unwrap().to_owned();
        let bad_number = second.replacen(",1.0,", ",fast,", 1);
        fs::write(&path, format!("{text}r1,2026,transfer\n{bad_number}\n")).unwrap();
        // A JSONL line that is not JSON (line 2), one of a future schema (line 3).
        let jsonl = samples_path(&path);
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
        assert!(loaded.rows.iter().all(|r| r.samples.is_some()));
        let warnings = loaded.warnings.join("\n");
        for expected in [
            format!("{}:4: row skipped", path.display()),
            format!("{}:5: row skipped", path.display()),
            format!("{}:2: line skipped", jsonl.display()),
            format!("{}:3: line skipped: schema_version 99", jsonl.display()),
        ] {
            assert!(warnings.contains(&expected), "{expected} in {warnings}");
        }
        assert_eq!(loaded.warnings.len(), 4, "{warnings}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
