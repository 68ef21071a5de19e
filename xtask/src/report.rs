//! `cargo xtask report`: every CSV under `reports/raw/` into
//! `reports/RESULTS.md` (every case and figure) and the README's results
//! table (headline case: median time per framework, spread, MLX speed-up).
//! Where a cell was measured more than once, its latest row counts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{bail, Context, Result};
use bench_core::record::{read_records, Record, Status};
use bench_core::Summary;

use crate::suite;

pub const BEGIN: &str = "<!-- results:begin (cargo xtask report writes this table) -->";
pub const END: &str = "<!-- results:end -->";

pub fn generate(root: &Path) -> Result<()> {
    let records = load(&root.join("reports/raw"))?;
    let benches = suite::discover(root)?;
    let titles: BTreeMap<String, (String, String)> = benches
        .iter()
        .map(|b| (b.name.clone(), (b.title.clone(), b.headline.clone())))
        .collect();
    let latest = latest_rows(&records);
    let table = summary_table(&latest, &titles) + &reference_table(&records, false);
    let results = results_page(
        &latest,
        &(summary_table(&latest, &titles) + &reference_table(&records, true)),
    );
    fs::write(root.join("reports/RESULTS.md"), results)?;
    let readme_path = root.join("README.md");
    let readme = fs::read_to_string(&readme_path).context("reading README.md")?;
    fs::write(&readme_path, replace_between_markers(&readme, &table)?)?;
    eprintln!(
        "report: {} rows from {} runs -> reports/RESULTS.md and README.md",
        latest.len(),
        records
            .iter()
            .map(|r| &r.run_id)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    Ok(())
}

fn load(dir: &Path) -> Result<Vec<Record>> {
    let mut records = Vec::new();
    if !dir.exists() {
        return Ok(records);
    }
    let mut files: Vec<_> = fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "csv"))
        .collect();
    files.sort();
    for file in files {
        records.extend(read_records(&file)?);
    }
    Ok(records)
}

/// The machine a row was measured on, as the table shows it.
fn machine(record: &Record) -> String {
    if record.device == "gpu" {
        let gpu = if record.gpu.is_empty() {
            record.device_name.as_str()
        } else {
            record.gpu.as_str()
        };
        format!("GPU: {gpu}")
    } else {
        format!("CPU: {} ({} cores)", record.cpu, record.cpu_cores)
    }
}

type CellKey = (String, String, String, String, String, String, String);

fn cell_key(record: &Record) -> CellKey {
    (
        machine(record),
        record.benchmark.clone(),
        record.preset.clone(),
        record.precision.clone(),
        record.framework.clone(),
        record.device.clone(),
        mode(record).to_owned(),
    )
}

/// The value of one `key=value` of a row's settings.
fn setting<'a>(record: &'a Record, key: &str) -> Option<&'a str> {
    record
        .settings
        .split(';')
        .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
}

/// The execution mode asked for: "best" (each framework's fast path, the
/// default) or "eager"; rows from before the setting existed ran "best".
fn mode(record: &Record) -> &str {
    setting(record, "mode").unwrap_or("best")
}

/// What actually ran (`execution=`: eager, cuda-graph, compiled, ...).
fn execution(record: &Record) -> &str {
    setting(record, "execution").unwrap_or("-")
}

/// The rows of each cell's latest run (a cell's rows share a run and a
/// process; an older success does not hide a newer failure).
fn latest_rows(records: &[Record]) -> Vec<Record> {
    let mut latest: BTreeMap<CellKey, (String, String)> = BTreeMap::new();
    for record in records {
        let stamp = (record.timestamp.clone(), record.run_id.clone());
        let entry = latest
            .entry(cell_key(record))
            .or_insert_with(|| stamp.clone());
        if stamp.1 != entry.1 && stamp > *entry {
            *entry = stamp;
        }
    }
    records
        .iter()
        .filter(|r| {
            latest
                .get(&cell_key(r))
                .is_some_and(|(_, run)| *run == r.run_id)
        })
        .cloned()
        .collect()
}

fn seconds(record: &Record) -> String {
    match (record.median_s, record.iqr_s) {
        (Some(median), Some(iqr)) => format!("{} (IQR {})", significant(median), significant(iqr)),
        _ => "-".into(),
    }
}

/// Four significant digits, without exponent for ordinary magnitudes.
fn significant(value: f64) -> String {
    if value == 0.0 {
        return "0".into();
    }
    let digits = (3 - value.abs().log10().floor() as i32).max(0) as usize;
    format!("{value:.digits$}")
}

fn summary_table(rows: &[Record], titles: &BTreeMap<String, (String, String)>) -> String {
    // (machine, benchmark, preset, precision, mode) -> (torch row, mlx row)
    type Key = (String, String, String, String, String);
    let mut cells: BTreeMap<Key, [Option<&Record>; 2]> = BTreeMap::new();
    let mut skipped = Vec::new();
    for row in rows {
        let headline = titles
            .get(&row.benchmark)
            .map(|t| t.1.as_str())
            .unwrap_or("");
        let key = (
            machine(row),
            row.benchmark.clone(),
            row.preset.clone(),
            row.precision.clone(),
            mode(row).to_owned(),
        );
        match row.status {
            Status::Ok if row.case == headline => {
                // Rows of the frameworks' own Python implementations are
                // references, shown in their own table.
                let slot = match row.framework.as_str() {
                    "torch" => 0,
                    "mlx" => 1,
                    _ => continue,
                };
                cells.entry(key).or_default()[slot] = Some(row);
            }
            Status::Ok => {}
            _ => skipped.push(row),
        }
    }
    let mut out = String::new();
    out.push_str(
        "| Device | Benchmark | Precision | Mode | PyTorch time (s) | MLX time (s) | MLX speed-up |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for ((machine, benchmark, preset, precision, mode), [torch, mlx]) in &cells {
        let title = titles
            .get(benchmark)
            .map(|t| t.0.as_str())
            .unwrap_or(benchmark);
        let speedup = match (torch.and_then(|r| r.median_s), mlx.and_then(|r| r.median_s)) {
            (Some(t), Some(m)) if m > 0.0 => format!("{:.2}x", t / m),
            _ => "-".into(),
        };
        let ran = |row: Option<&&Record>| row.map_or("-", |r| execution(r)).to_owned();
        let _ = writeln!(
            out,
            "| {machine} | {title} ({preset}) | {precision} | {mode} (PyTorch: {}; MLX: {}) | {} | {} | {speedup} |",
            ran(torch.as_ref()),
            ran(mlx.as_ref()),
            torch.map(seconds).unwrap_or_else(|| "-".into()),
            mlx.map(seconds).unwrap_or_else(|| "-".into()),
        );
    }
    if cells.is_empty() {
        out.push_str("| - | no results yet: run `cargo xtask bench` | | | | | |\n");
    }
    if !skipped.is_empty() {
        out.push_str("\nNot measured: ");
        let notes: Vec<String> = skipped
            .iter()
            .map(|r| {
                format!(
                    "{} {} on {} ({:?}: {})",
                    r.benchmark, r.framework, r.device, r.status, r.reason
                )
            })
            .collect();
        out.push_str(&notes.join("; "));
        out.push('\n');
    }
    out.push_str("\nMedian of the timed repetitions, interquartile range in brackets; speed-up = PyTorch median / MLX median. Mode: `best` runs each framework as its users do when speed matters (PyTorch: CUDA graphs and fused AdamW; MLX: compiled steps and its own CUDA graphs), `eager` runs both op by op (`--set execution=eager`); in brackets what each twin actually ran. Every case, figure and setting: [reports/RESULTS.md](reports/RESULTS.md).\n");
    out
}

/// The headline case of each benchmark that has Python references.
const REFERENCE_CASES: [(&str, &str); 4] = [
    ("tinyllama", "generate"),
    ("lm-train", "step"),
    ("bert", "step"),
    ("whisper", "transcribe"),
];

/// The twin framework a row stands beside ("torch" or "mlx") and the name
/// of its Python path, for the rows of the frameworks' own Python
/// implementations (`xtask/scripts/references/`, and the older
/// hf-transformers / mlx-lm rows of TinyLlama).
fn reference_of(record: &Record) -> Option<(&'static str, String)> {
    let path = setting(record, "reference_path");
    match record.framework.as_str() {
        "torch-python" => Some(("torch", path.unwrap_or("PyTorch").to_owned())),
        "mlx-python" => Some(("mlx", path.unwrap_or("MLX").to_owned())),
        "hf-transformers" => Some(("torch", "transformers generate eager".to_owned())),
        "mlx-lm" => Some(("mlx", "mlx-lm generate_step".to_owned())),
        _ => None,
    }
}

/// Speed of a row: its throughput (higher is faster), else 1 / median.
fn speed(record: &Record) -> Option<f64> {
    record
        .throughput
        .or_else(|| record.median_s.filter(|m| *m > 0.0).map(|m| 1.0 / m))
}

/// Each twin (best mode) beside the fastest of its framework's own Python
/// paths, per device, benchmark, preset and precision: twin / best
/// reference >= 1 means the twin is at least as fast. Speed varies from run
/// to run on a shared GPU host more than within a run, so each figure is the
/// median over every run of the code that made its latest row (same git
/// commit), with the range and count. With `every`, also each reference's
/// own figure (for RESULTS.md).
fn reference_table(records: &[Record], every: bool) -> String {
    type Group = (String, String, String, String);
    // a framework's twin rows, and its references' rows by name
    type Found<'a> = (Vec<&'a Record>, BTreeMap<String, Vec<&'a Record>>);
    // group -> framework ("torch"/"mlx") -> (twin rows, reference name -> rows)
    let mut groups: BTreeMap<Group, BTreeMap<&str, Found>> = BTreeMap::new();
    for row in records {
        let headline = REFERENCE_CASES
            .iter()
            .any(|(bench, case)| row.benchmark == *bench && row.case == *case);
        if !headline || row.status != Status::Ok || speed(row).is_none() || mode(row) != "best" {
            continue;
        }
        let key = (
            machine(row),
            row.benchmark.clone(),
            row.preset.clone(),
            row.precision.clone(),
        );
        let (framework, reference) = match row.framework.as_str() {
            "torch" => ("torch", None),
            "mlx" => ("mlx", None),
            _ => match reference_of(row) {
                Some((framework, name)) => (framework, Some(name)),
                None => continue,
            },
        };
        let slot = groups.entry(key).or_default().entry(framework).or_default();
        match reference {
            None => slot.0.push(row),
            Some(name) => slot.1.entry(name).or_default().push(row),
        }
    }
    groups.retain(|_, found| found.values().any(|(_, references)| !references.is_empty()));
    if groups.is_empty() {
        return String::new();
    }
    let unit = |rows: &[&Record]| {
        rows.first()
            .map(|r| r.throughput_unit.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "1/s".into())
    };
    let mut out = String::from(
        "\nEach twin beside its framework's fastest own Python path (`xtask/scripts/references/`), same machine, configuration and device call; headline case, median over the runs of the latest code (range, runs); twin / reference above 1: the twin is faster:\n\n| Device | Benchmark | Preset | Precision | PyTorch twin | fastest PyTorch reference | twin / reference | MLX twin | fastest MLX reference | twin / reference |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut each = String::from(
        "\nEvery reference's own figure (headline case; median over the runs of the latest code):\n\n| Device | Benchmark | Preset | Precision | Framework | Reference | Execution | Figure | Twin / reference |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((machine, benchmark, preset, precision), found) in &groups {
        let _ = write!(out, "| {machine} | {benchmark} | {preset} | {precision} |");
        for framework in ["torch", "mlx"] {
            let empty = (Vec::new(), BTreeMap::new());
            let (twins, references) = found.get(framework).unwrap_or(&empty);
            let twin = latest_code_runs(twins);
            let summaries: Vec<(&String, Summary, &Vec<&Record>)> = references
                .iter()
                .filter_map(|(name, rows)| Some((name, latest_code_runs(rows)?, rows)))
                .collect();
            let best = summaries
                .iter()
                .max_by(|a, b| a.1.median.total_cmp(&b.1.median));
            let ratio = |reference: &Summary| match &twin {
                Some(t) => format!("{:.2}x", t.median / reference.median),
                None => "-".into(),
            };
            let show = |v: &Option<Summary>, rows: &[&Record]| {
                v.as_ref().map_or("-".into(), |v| {
                    format!("{} {}", describe_runs(v), unit(rows))
                })
            };
            let (best_text, best_ratio) = match best {
                Some((name, summary, rows)) => (
                    format!("{} ({name})", show(&Some(summary.clone()), rows)),
                    ratio(summary),
                ),
                None => ("-".into(), "-".into()),
            };
            let _ = write!(
                out,
                " {} | {best_text} | {best_ratio} |",
                show(&twin, twins)
            );
            for (name, summary, rows) in &summaries {
                let _ = writeln!(
                    each,
                    "| {machine} | {benchmark} | {preset} | {precision} | {framework}-python | {name} | {} | {} | {} |",
                    rows.last().map_or("-", |r| execution(r)),
                    show(&Some(summary.clone()), rows),
                    ratio(summary)
                );
            }
        }
        out.push('\n');
    }
    if every {
        out.push_str(&each);
    }
    out
}

/// The throughputs of the runs that share the latest row's git commit.
fn latest_code_runs(rows: &[&Record]) -> Option<Summary> {
    let latest = rows.iter().max_by(|a, b| a.timestamp.cmp(&b.timestamp))?;
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r.git_commit == latest.git_commit)
        .filter_map(|r| r.throughput)
        .collect();
    Summary::of(&values).ok()
}

fn describe_runs(runs: &Summary) -> String {
    if runs.n == 1 {
        format!("{:.1}", runs.median)
    } else {
        format!(
            "{:.1} ({:.1}-{:.1}, {} runs)",
            runs.median, runs.min, runs.max, runs.n
        )
    }
}

fn results_page(rows: &[Record], table: &str) -> String {
    let mut out = String::from("# Results\n\nGenerated by `cargo xtask report` from `reports/raw/*.csv`; each cell's latest run.\n\n## Summary\n\n");
    out.push_str(table);
    out.push_str("\n## Every case\n\n");
    out.push_str("| Machine | Benchmark | Case | Preset | Precision | Framework | Median (s) | IQR (s) | Min (s) | Max (s) | n | Throughput | Peak memory (MiB) | Peak RSS (MiB) | Status |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mib = |bytes: Option<u64>| {
        bytes
            .map(|b| format!("{:.0}", b as f64 / 1048576.0))
            .unwrap_or_else(|| "-".into())
    };
    let opt = |value: Option<f64>| value.map(significant).unwrap_or_else(|| "-".into());
    let mut sorted: Vec<&Record> = rows.iter().collect();
    sorted.sort_by_key(|r| {
        (
            machine(r),
            r.benchmark.clone(),
            r.preset.clone(),
            r.case.clone(),
            r.precision.clone(),
            r.framework.clone(),
        )
    });
    for r in &sorted {
        let status = match r.status {
            Status::Ok => "ok".to_owned(),
            other => format!("{other:?}: {}", r.reason.replace('|', "/")),
        };
        let throughput = r
            .throughput
            .map(|t| format!("{} {}", significant(t), r.throughput_unit))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {throughput} | {} | {} | {status} |",
            machine(r),
            r.benchmark,
            r.case,
            r.preset,
            r.precision,
            r.framework,
            opt(r.median_s),
            opt(r.iqr_s),
            opt(r.min_s),
            opt(r.max_s),
            r.repetitions.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            mib(r.peak_memory_bytes),
            mib(r.peak_rss_bytes),
        );
    }
    out.push_str("\n## Environments and settings\n\n");
    let mut seen = std::collections::BTreeSet::new();
    for r in &sorted {
        let line = format!(
            "- {} / {} {} {} {}: {} {}; OS {}; RAM {:.0} GiB; GPU driver {}; MLX {}; libtorch {}; suite {} at {}; run {}; settings: {}",
            machine(r),
            r.benchmark,
            r.framework,
            r.device,
            r.precision,
            r.framework,
            r.device_name,
            r.os,
            r.ram_gib,
            if r.gpu_driver.is_empty() { "-" } else { &r.gpu_driver },
            r.mlx_version,
            r.libtorch_version,
            r.suite_version,
            r.git_commit,
            r.run_id,
            r.settings
        );
        if seen.insert(line.clone()) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn replace_between_markers(readme: &str, table: &str) -> Result<String> {
    let (Some(begin), Some(end)) = (readme.find(BEGIN), readme.find(END)) else {
        bail!("README.md lacks the results markers:\n{BEGIN}\n{END}");
    };
    if end < begin {
        bail!("README.md's results markers are out of order");
    }
    Ok(format!(
        "{}{BEGIN}\n{table}{}",
        &readme[..begin],
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_core::record::Status;

    fn row(framework: &str, case: &str, median: f64, run: &str, status: Status) -> Record {
        Record {
            run_id: run.into(),
            timestamp: format!("2026-01-01T00:00:0{}Z", run.len()),
            benchmark: "transfer".into(),
            case: case.into(),
            framework: framework.into(),
            device: "cpu".into(),
            precision: "f32".into(),
            preset: "quick".into(),
            status,
            reason: if status == Status::Ok {
                String::new()
            } else {
                "boom".into()
            },
            repetitions: Some(5),
            median_s: Some(median),
            min_s: Some(median),
            max_s: Some(median),
            mean_s: Some(median),
            std_s: Some(0.0),
            iqr_s: Some(0.001),
            throughput: None,
            throughput_unit: String::new(),
            peak_memory_bytes: None,
            peak_rss_bytes: None,
            settings: String::new(),
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

    fn titles() -> BTreeMap<String, (String, String)> {
        [(
            "transfer".to_owned(),
            ("CPU/GPU switch".to_owned(), "switch".to_owned()),
        )]
        .into()
    }

    #[test]
    fn table_shows_headline_medians_and_speedup() {
        let rows = vec![
            row("torch", "switch", 2.0, "r", Status::Ok),
            row("mlx", "switch", 1.0, "r", Status::Ok),
            row("mlx", "ceiling-matmul", 9.0, "r", Status::Ok),
        ];
        let table = summary_table(&rows, &titles());
        assert!(table.contains("| CPU: EPYC (2 cores) | CPU/GPU switch (quick) | f32 | best (PyTorch: -; MLX: -) | 2.000 (IQR 0.001000) | 1.000 (IQR 0.001000) | 2.00x |"), "{table}");
        assert!(!table.contains("9.000"), "{table}");
    }

    #[test]
    fn latest_run_of_a_cell_wins_and_failures_are_listed() {
        let rows = vec![
            row("mlx", "switch", 1.0, "r", Status::Ok),
            row("mlx", "-", 0.0, "r2", Status::Failed),
        ];
        let latest = latest_rows(&rows);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].status, Status::Failed);
        let table = summary_table(&latest, &titles());
        assert!(
            table.contains("Not measured: transfer mlx on cpu (Failed: boom)"),
            "{table}"
        );
    }

    #[test]
    fn markers_are_required_and_content_is_replaced() {
        let readme = format!("intro\n{BEGIN}\nold\n{END}\nafter\n");
        let updated = replace_between_markers(&readme, "new\n").unwrap();
        assert_eq!(updated, format!("intro\n{BEGIN}\nnew\n{END}\nafter\n"));
        assert!(replace_between_markers("no markers", "x").is_err());
    }

    #[test]
    fn references_are_kept_out_of_the_twins_and_compared_to_them() {
        let mut twin = row("mlx", "generate", 0.5, "r", Status::Ok);
        twin.benchmark = "tinyllama".into();
        twin.throughput = Some(200.0);
        let mut reference = twin.clone();
        reference.framework = "mlx-lm".into();
        reference.throughput = Some(250.0);
        reference.median_s = Some(0.4);
        let titles: BTreeMap<String, (String, String)> = [(
            "tinyllama".to_owned(),
            ("TinyLlama".to_owned(), "generate".to_owned()),
        )]
        .into();
        let table = summary_table(&[twin.clone(), reference.clone()], &titles);
        assert!(
            table.contains("| TinyLlama (quick) | f32 | best (PyTorch: -; MLX: -) | - | 0.5000 (IQR 0.001000) | - |"),
            "{table}"
        );
        let references = reference_table(&[twin.clone(), reference.clone()], true);
        assert!(
            references.contains("| 200.0 1/s | 250.0 1/s (mlx-lm generate_step) | 0.80x |"),
            "{references}"
        );
        // Runs of the latest code are pooled (median, range, count); a
        // run of older code is not.
        let mut second = twin.clone();
        second.run_id = "r2".into();
        second.timestamp = "2026-01-01T00:00:09Z".into();
        second.throughput = Some(300.0);
        let mut third = second.clone();
        third.run_id = "r3".into();
        third.throughput = Some(220.0);
        let mut old = twin.clone();
        old.run_id = "r0".into();
        old.timestamp = "2025-01-01T00:00:00Z".into();
        old.git_commit = "older".into();
        old.throughput = Some(10.0);
        let references = reference_table(&[twin, second, third, old, reference], true);
        assert!(
            references.contains(
                "| 220.0 (200.0-300.0, 3 runs) 1/s | 250.0 1/s (mlx-lm generate_step) | 0.88x |"
            ),
            "{references}"
        );
    }

    #[test]
    fn the_fastest_reference_of_each_framework_is_the_one_compared() {
        let mut twin = row("torch", "step", 0.010, "r", Status::Ok);
        twin.benchmark = "bert".into();
        twin.throughput = Some(800.0);
        twin.throughput_unit = "samples/s".into();
        twin.settings = "mode=best;execution=cuda-graph".into();
        let reference = |path: &str, throughput: f64| {
            let mut r = twin.clone();
            r.framework = "torch-python".into();
            r.throughput = Some(throughput);
            r.settings = format!("reference_path={path};execution=x");
            r
        };
        // An eager twin is not the one compared with the references.
        let mut eager = twin.clone();
        eager.settings = "mode=eager;execution=eager".into();
        eager.throughput = Some(100.0);
        let rows = [
            twin.clone(),
            eager,
            reference("hf-eager", 400.0),
            reference("hf-compile-graphs", 1000.0),
            reference("hf-compile", 700.0),
        ];
        let table = reference_table(&rows, true);
        assert!(
            table.contains("| 800.0 samples/s | 1000.0 samples/s (hf-compile-graphs) | 0.80x |"),
            "{table}"
        );
        for line in [
            "| hf-eager | x | 400.0 samples/s | 2.00x |",
            "| hf-compile | x | 700.0 samples/s | 1.14x |",
        ] {
            assert!(table.contains(line), "{line} in {table}");
        }
        // Without references there is no table.
        assert!(reference_table(&[twin], true).is_empty());
    }

    #[test]
    fn significant_digits() {
        assert_eq!(significant(0.039212), "0.03921");
        assert_eq!(significant(123.456), "123.5");
        assert_eq!(significant(12345.6), "12346");
    }
}

/// The Python references read their configuration from the twins' rows
/// (`xtask/scripts/references/common.py`, `REQUIRED`): every key they need
/// must be in the newest committed twin row of that benchmark, or a
/// reference would stop (or, worse, drift) on the next campaign.
#[cfg(test)]
mod reference_contract {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::process::Command;

    use super::{load, setting, REFERENCE_CASES};
    use bench_core::record::Status;

    #[test]
    fn twin_rows_hold_every_setting_the_references_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let output = Command::new("python3")
            .current_dir(root.join("xtask/scripts/references"))
            .args([
                "-c",
                "import common, json; print(json.dumps(common.REQUIRED))",
            ])
            .output()
            .expect("python3 runs");
        assert!(output.status.success(), "{output:?}");
        let required: BTreeMap<String, Vec<String>> =
            serde_json::from_slice(&output.stdout).expect("REQUIRED as JSON");
        assert!(required.len() >= 3, "{required:?}");
        let records = load(&root.join("reports/raw")).unwrap();
        for (benchmark, keys) in &required {
            let case = REFERENCE_CASES
                .iter()
                .find(|(b, _)| b == benchmark)
                .map(|(_, case)| *case)
                .unwrap_or_else(|| panic!("no headline case for {benchmark}"));
            let newest = records
                .iter()
                .filter(|r| &r.benchmark == benchmark && r.case == case && r.status == Status::Ok)
                .filter(|r| r.framework == "torch" || r.framework == "mlx")
                .filter(|r| setting(r, "mode").is_some())
                .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                .unwrap_or_else(|| panic!("no committed {benchmark} twin row with mode="));
            for key in keys {
                assert!(
                    setting(newest, key).is_some(),
                    "the {benchmark} twin row of {} lacks `{key}`, which its reference reads",
                    newest.run_id
                );
            }
        }
    }
}
