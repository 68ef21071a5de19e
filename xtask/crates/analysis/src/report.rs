//! `cargo xtask report`: every run under `reports/raw/` (its rows, read
//! by `results`) into
//! `reports/RESULTS.md` and one chart per benchmark under
//! `reports/charts/`; with `--readme`, also the README's results section.
//!
//! The headline shows, per device, one commit's runs (see [`twins`]);
//! RESULTS.md keeps every older run, device by device and commit by commit.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use bench_core::{Row, Status, Summary};
use clap::Args;
use xtask_suite as suite;

use crate::fastest;
use crate::references::reference_table;
use crate::results::{self, machine, significant};
use crate::twins::{self, DeviceRun, Titles};
use crate::uncertainty::noise_note;
use crate::{cells, charts, compare, references, scaling, scaling_chart, share, superseded};

pub const BEGIN: &str = "<!-- results:begin (cargo xtask report --readme writes this section) -->";
pub const END: &str = "<!-- results:end -->";
/// Under the README's table, in place of the legend, the charts and the
/// reference table, which RESULTS.md keeps.
const README_POINTERS: &str = "\nHow to read it: [docs/METHOD.md](docs/METHOD.md#reading-the-results-tables).\n\nCharts, each twin beside its framework's own Python paths, every run, case and setting: [reports/RESULTS.md](reports/RESULTS.md).\n";
/// The begin marker before `--readme` existed, still accepted.
const OLD_BEGIN: &str = "<!-- results:begin (cargo xtask report writes this table) -->";

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// Also rewrite the results section of the tracked README.md.
    #[arg(long, conflicts_with = "run")]
    pub readme: bool,
    /// Report one run only, to share (a run id, found under --results, or a
    /// result file; several, comma-separated, for the passes of one sitting):
    /// Markdown on stdout unless --html or --format says otherwise.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,
    /// Write the run's report as one self-contained HTML page (no external
    /// assets): environment, table with intervals, SVG charts, every setting.
    #[arg(long, value_name = "FILE", requires = "run")]
    pub html: Option<PathBuf>,
    /// Print the run's report to stdout in this format.
    #[arg(long, value_enum, requires = "run")]
    pub format: Option<share::Format>,
    /// Folder of the run files that --run looks run ids up in (default: reports/raw).
    #[arg(long, requires = "run")]
    pub results: Option<PathBuf>,
}

/// `cargo xtask report`: everything ([`generate`]), or one run to share.
pub fn run(root: &Path, args: &ReportArgs) -> Result<()> {
    let Some(run) = &args.run else {
        return generate(root, args.readme);
    };
    let dir = args
        .results
        .clone()
        .unwrap_or_else(|| root.join("reports/raw"));
    let loaded = compare::resolve(run, &dir)?;
    share::run(
        &loaded.rows,
        &titles(root)?,
        args.html.as_deref(),
        args.format,
    )
}

/// Title and headline case of each benchmark of the suite.
fn titles(root: &Path) -> Result<Titles> {
    Ok(suite::discover(root)?
        .iter()
        .map(|b| (b.name.clone(), (b.title.clone(), b.headline.clone())))
        .collect())
}

pub fn generate(root: &Path, update_readme: bool) -> Result<()> {
    let loaded = results::load_dir(&root.join("reports/raw"))?;
    loaded.warn();
    let titles = titles(root)?;
    let suite: Vec<String> = titles.keys().cloned().collect();
    let history = twins::history(&loaded.rows, &suite);
    // The headline and the fastest table leave superseded campaigns out;
    // the page's every-run section keeps them.
    let superseded = superseded::load(&root.join("reports/superseded.csv"))?;
    let current: Vec<Row> = loaded
        .rows
        .iter()
        .filter(|r| !superseded::is_superseded(&superseded, r))
        .cloned()
        .collect();
    let current_history = twins::history(&current, &suite);
    let headline = twins::headline(&current_history);
    let left_out = superseded::notes(&superseded, &loaded.rows);
    for entry in superseded::unused(&superseded, &loaded.rows) {
        eprintln!(
            "warning: reports/superseded.csv: no row is of {} at {}: check the device and commit",
            entry.device, entry.commit
        );
    }
    let pairs: Vec<twins::Pair> = headline
        .iter()
        .flat_map(|run| twins::pairs(&run.rows, &titles))
        .collect();
    let chart_dir = root.join("reports/charts");
    let charts = charts::write(
        &chart_dir,
        &pairs,
        &references::comparisons(&current),
        &titles,
    )?;
    let scaling = scaling_chart::write(
        &chart_dir,
        &newest_sweeps(&current_history, &titles),
        &titles,
    )?;
    remove_stale_charts(&chart_dir, &[charts.as_slice(), &scaling].concat())?;

    let charts = Charts {
        benchmarks: charts,
        scaling,
    };
    let fastest = fastest::table(&current);
    let readme_section = headline_section(&headline, &left_out, &titles, &charts, &fastest, true);
    let page = results_page(
        &loaded.rows,
        &history,
        (&headline, &left_out),
        &titles,
        &charts,
        &fastest,
    );
    fs::write(root.join("reports/RESULTS.md"), page).context("writing reports/RESULTS.md")?;
    if update_readme {
        let readme_path = root.join("README.md");
        let readme = fs::read_to_string(&readme_path).context("reading README.md")?;
        fs::write(
            &readme_path,
            replace_between_markers(&readme, &readme_section)?,
        )?;
    }
    let runs: BTreeSet<&str> = loaded.rows.iter().map(|r| r.run_id.as_str()).collect();
    eprintln!(
        "report: {} rows of {} runs -> reports/RESULTS.md, {} chart(s), {} scaling chart(s){}",
        loaded.rows.len(),
        runs.len(),
        charts.benchmarks.len(),
        charts.scaling.len(),
        if update_readme {
            " and README.md"
        } else {
            " (README.md unchanged: `cargo xtask report --readme` updates it)"
        }
    );
    Ok(())
}

/// Each sweep as the newest commit of its device that ran it measured it:
/// a sweep is seldom part of the headline's complete run.
fn newest_sweeps(history: &[DeviceRun], titles: &Titles) -> Vec<scaling::Sweep> {
    let mut sweeps: Vec<scaling::Sweep> = Vec::new();
    // Each device's commits come newest first.
    for run in history {
        for sweep in scaling::sweeps(&cells::case_pairs(&run.rows, titles)) {
            if !sweeps.iter().any(|s| s.file_stem() == sweep.file_stem()) {
                sweeps.push(sweep);
            }
        }
    }
    sweeps
}

/// Charts of benchmarks that no longer have headline rows would mislead.
fn remove_stale_charts(dir: &Path, written: &[(String, PathBuf)]) -> Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let svg = path.extension().is_some_and(|e| e == "svg");
        if svg && !written.iter().any(|(_, p)| *p == path) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// The charts written under reports/charts/.
struct Charts {
    /// (benchmark, file): each benchmark's headline configurations.
    benchmarks: Vec<(String, PathBuf)>,
    /// (caption, file): each swept knob's chart.
    scaling: Vec<(String, PathBuf)>,
}

/// The headline table, then what it means and the charts; for the README
/// (`readme`), which must stay short, a pointer to both instead, and the
/// scaling charts.
fn headline_section(
    headline: &[DeviceRun],
    left_out: &str,
    titles: &Titles,
    charts: &Charts,
    fastest: &str,
    readme: bool,
) -> String {
    let mut out = String::from(
        "Per device, the runs of one commit: the latest at which every benchmark was measured there, else the latest (what it lacks is named below; older runs are in RESULTS.md).\n\n",
    );
    out.push_str(&twins::speedup_table(headline, titles));
    out.push_str(left_out);
    out.push_str(fastest);
    let file = |path: &PathBuf| {
        path.file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    // RESULTS.md is in reports/, the README one folder up.
    let folder = if readme { "reports/charts" } else { "charts" };
    let scaling = |out: &mut String| {
        if charts.scaling.is_empty() {
            return;
        }
        out.push_str(SCALING_INTRO);
        for (caption, path) in &charts.scaling {
            let _ = write!(out, "\n![{caption}]({folder}/{})\n", file(path));
        }
    };
    if readme {
        out.push_str(README_POINTERS);
        scaling(&mut out);
        return out;
    }
    out.push_str(&twins::legend());
    for (benchmark, path) in &charts.benchmarks {
        let title = titles
            .get(benchmark)
            .map_or(benchmark.as_str(), |t| t.0.as_str());
        let _ = write!(out, "\n![{title}]({folder}/{})\n", file(path));
    }
    scaling(&mut out);
    out
}

/// Above the scaling charts.
const SCALING_INTRO: &str = "\n### How the answer moves with size\n\nFor each knob swept on a device (cells that differ in that knob alone), at the newest commit that swept it there: each case's throughput, or median time where a case has no throughput, per framework (IQR whiskers), and beside it the MLX speed-up with its 95% interval. An axis is logarithmic where its values span more than a factor of 10.\n";

fn results_page(
    rows: &[Row],
    history: &[DeviceRun],
    (headline, left_out): (&[DeviceRun], &str),
    titles: &Titles,
    charts: &Charts,
    fastest: &str,
) -> String {
    let mut out = String::from(
        "# Results\n\nGenerated by `cargo xtask report` from `reports/raw/` (each run's CSV, and the JSONL beside it with every repetition where the run recorded one).\n\n## Headline\n\n",
    );
    out.push_str(&headline_section(
        headline, left_out, titles, charts, fastest, false,
    ));
    out.push_str("\n## Twins beside the Python references\n");
    out.push_str(&reference_table(rows, true));
    out.push_str("\n## Every run, by device and commit (newest first)\n");
    for run in history {
        let _ = writeln!(out, "\n### {} at `{}`\n", run.machine, run.commit);
        out.push_str(&twins::speedup_table(std::slice::from_ref(run), titles));
    }
    out.push_str(&every_case(&latest_rows(rows)));
    out
}

/// Machine, benchmark, preset with its knobs ([`Row::configuration`]),
/// precision, framework, device and mode, as the tables print them.
type CellKey = (String, String, String, String, String, String, String);

fn cell_key(row: &Row) -> CellKey {
    (
        machine(row),
        row.benchmark.clone(),
        row.configuration(),
        row.precision.to_string(),
        row.framework_label(),
        row.device.to_string(),
        row.execution.to_string(),
    )
}

/// The rows of each cell's latest run (a cell's rows share a run and a
/// process; an older success does not hide a newer failure).
fn latest_rows(rows: &[Row]) -> Vec<&Row> {
    let mut latest: BTreeMap<CellKey, (String, String)> = BTreeMap::new();
    for row in rows {
        let stamp = (row.timestamp.clone(), row.run_id.clone());
        let entry = latest.entry(cell_key(row)).or_insert_with(|| stamp.clone());
        if stamp.1 != entry.1 && stamp > *entry {
            *entry = stamp;
        }
    }
    rows.iter()
        .filter(|r| {
            latest
                .get(&cell_key(r))
                .is_some_and(|(_, run)| *run == r.run_id)
        })
        .collect()
}

/// Every case of each cell's latest run, and the environments.
fn every_case(rows: &[&Row]) -> String {
    let mut out = String::from("\n## Every case (each cell's latest run)\n\n");
    out.push_str("| Machine | Benchmark | Case | Preset, knobs | Precision | Framework | Mode | Median (s) | IQR (s) | Min (s) | Max (s) | n | Throughput | Peak memory (MiB) | Peak RSS (MiB) | Commit | Status | Noise |\n");
    out.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    let mib = |bytes: Option<u64>| {
        bytes
            .map(|b| format!("{:.0}", b as f64 / 1048576.0))
            .unwrap_or_else(|| "-".into())
    };
    let opt = |value: Option<f64>| value.map(significant).unwrap_or_else(|| "-".into());
    let mut sorted: Vec<&Row> = rows.to_vec();
    sorted.sort_by_key(|r| {
        (
            machine(r),
            r.benchmark.clone(),
            r.configuration(),
            r.case.clone(),
            r.precision.to_string(),
            r.framework_label(),
            r.execution.to_string(),
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
        let figure = |pick: fn(&Summary) -> f64| opt(r.summary.as_ref().map(pick));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {throughput} | {} | {} | {} | {status} | {} |",
            machine(r),
            r.benchmark,
            r.case,
            r.configuration(),
            r.precision,
            r.framework_label(),
            r.execution,
            figure(|s| s.median),
            figure(|s| s.iqr),
            figure(|s| s.min),
            figure(|s| s.max),
            r.summary.as_ref().map(|s| s.n.to_string()).unwrap_or_else(|| "-".into()),
            mib(r.peak_memory_bytes),
            mib(r.peak_rss_bytes),
            r.environment.git_commit,
            noise_note(&[("", Some(r))]),
        );
    }
    out.push_str("\n## Environments and settings\n\n");
    let mut seen = BTreeSet::new();
    for r in &sorted {
        let env = &r.environment;
        let framework = r.framework_label();
        let line = format!(
            "- {} / {} {framework} {} {}: {framework} {}; OS {}; RAM {:.0} GiB; GPU driver {}; MLX {}; libtorch {}; suite {} at {}; run {}; settings: {}",
            machine(r),
            r.benchmark,
            r.device,
            r.precision,
            r.device_name,
            env.os,
            env.ram_gib,
            if env.gpu_driver.is_empty() { "-" } else { &env.gpu_driver },
            env.mlx_version,
            env.libtorch_version,
            env.suite_version,
            env.git_commit,
            r.run_id,
            r.settings.encode()
        );
        if seen.insert(line.clone()) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn replace_between_markers(readme: &str, section: &str) -> Result<String> {
    let begin = readme
        .find(BEGIN)
        .map(|at| (at, BEGIN.len()))
        .or_else(|| readme.find(OLD_BEGIN).map(|at| (at, OLD_BEGIN.len())));
    let (Some((begin, marker_len)), Some(end)) = (begin, readme.find(END)) else {
        bail!("README.md lacks the results markers:\n{BEGIN}\n{END}");
    };
    if end < begin + marker_len {
        bail!("README.md's results markers are out of order");
    }
    Ok(format!(
        "{}{BEGIN}\n{section}{}",
        &readme[..begin],
        &readme[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::tests::knob_row;
    use crate::results::tests::{row, set_iqr, temp_dir, write_run};

    #[test]
    fn latest_run_of_a_cell_wins() {
        let ok = row("mlx", "switch", 1.0, "r");
        let mut failed = row("mlx", "-", 0.0, "r2");
        failed.status = Status::Failed;
        let rows = [ok, failed];
        let latest = latest_rows(&rows);
        assert_eq!(latest.len(), 1);
        assert_eq!(latest[0].status, Status::Failed);
    }

    #[test]
    fn markers_are_required_and_content_is_replaced() {
        let readme = format!("intro\n{BEGIN}\nold\n{END}\nafter\n");
        let updated = replace_between_markers(&readme, "new\n").unwrap();
        assert_eq!(updated, format!("intro\n{BEGIN}\nnew\n{END}\nafter\n"));
        let old = format!("intro\n{OLD_BEGIN}\nold\n{END}\nafter\n");
        assert_eq!(replace_between_markers(&old, "new\n").unwrap(), updated);
        assert!(replace_between_markers("no markers", "x").is_err());
    }

    /// The README's pointers lead somewhere: a moved heading breaks this.
    #[test]
    fn readme_pointers_resolve() {
        // The workspace root: this crate is xtask/crates/<name>.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(3)
            .unwrap();
        let method = fs::read_to_string(root.join("docs/METHOD.md")).unwrap();
        assert!(README_POINTERS.contains("docs/METHOD.md#reading-the-results-tables"));
        assert!(method.contains("\n## Reading the results tables\n"));
        assert!(root.join("reports/RESULTS.md").is_file());
    }

    /// A workspace with one benchmark crate and a README, for `generate`.
    fn workspace(name: &str) -> PathBuf {
        let root = temp_dir(name);
        let manifest = "[package]\nname = \"bench-transfer\"\n[package.metadata.suite]\nbenchmark = \"transfer\"\ntitle = \"CPU/GPU switch\"\nheadline = \"switch\"\n";
        fs::create_dir_all(root.join("crates/bench-transfer")).unwrap();
        fs::write(root.join("crates/bench-transfer/Cargo.toml"), manifest).unwrap();
        fs::write(
            root.join("README.md"),
            format!("# x\n{BEGIN}\nold\n{END}\n"),
        )
        .unwrap();
        root
    }

    #[test]
    fn report_leaves_the_readme_alone_unless_asked_and_survives_bad_rows() {
        let root = workspace("report");
        let raw = root.join("reports/raw");
        let sampled = |framework: &str, m: f64| Row {
            samples_s: vec![m * 0.95, m, m * 1.05, m * 0.98, m * 1.02],
            ..row(framework, "switch", m, "r1")
        };
        let mut noisy = sampled("mlx", 1.0);
        set_iqr(&mut noisy, 0.3);
        write_run(&raw.join("r1.csv"), &[sampled("torch", 2.0), noisy]);
        // A broken row does not stop the report.
        let jsonl = raw.join("r1.jsonl");
        let text = fs::read_to_string(&jsonl).unwrap();
        fs::write(&jsonl, format!("{text}garbage,row\n")).unwrap();

        generate(&root, false).unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains("\nold\n"), "{readme}");
        let page = fs::read_to_string(root.join("reports/RESULTS.md")).unwrap();
        assert!(page.contains("| 2.00x ["), "{page}");
        assert!(page.contains("noisy (MLX IQR 30%)"), "{page}");
        assert!(
            page.contains("![CPU/GPU switch](charts/transfer.svg)"),
            "{page}"
        );
        assert!(root.join("reports/charts/transfer.svg").is_file());

        generate(&root, true).unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        assert!(!readme.contains("\nold\n"), "{readme}");
        assert!(readme.contains("| 2.00x ["), "{readme}");
        assert!(readme.contains("commit `abc`"), "{readme}");
        // The README stays short: the legend and charts are RESULTS.md's.
        assert!(readme.contains(README_POINTERS), "{readme}");
        assert!(!readme.contains("charts/transfer.svg"), "{readme}");
        assert!(!readme.contains(&twins::legend()), "{readme}");
        // No sweep, no scaling charts.
        assert!(!readme.contains(SCALING_INTRO), "{readme}");
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_swept_knob_gets_its_scaling_chart_in_results_and_readme() {
        let root = workspace("report-scaling");
        let rows: Vec<Row> = [(64, 2.0, 1.0), (256, 8.0, 2.0), (1024, 32.0, 4.0)]
            .into_iter()
            .flat_map(|(n, torch, mlx)| {
                [("torch", torch), ("mlx", mlx)].map(|(framework, m)| {
                    knob_row(framework, "switch", m, "r1", (&format!("n={n}"), ""))
                })
            })
            .collect();
        write_run(&root.join("reports/raw/r1.csv"), &rows);
        // A newer commit at the preset's sizes is the headline; the sweep
        // of the older one is still drawn, and says its commit.
        let newer: Vec<Row> = [("torch", 2.0), ("mlx", 1.0)]
            .into_iter()
            .map(|(framework, m)| {
                let mut row = knob_row(framework, "switch", m, "r22", ("", "n=512"));
                row.environment.git_commit = "new".into();
                row
            })
            .collect();
        write_run(&root.join("reports/raw/r22.csv"), &newer);
        generate(&root, true).unwrap();
        let readme = fs::read_to_string(root.join("README.md")).unwrap();
        assert!(readme.contains("commit `new`"), "{readme}");
        assert!(!readme.contains("commit `abc`"), "{readme}");
        let file = "scaling-transfer-n-epyc-2-cores-f32-best-quick.svg";
        let svg = fs::read_to_string(root.join("reports/charts").join(file)).unwrap();
        assert!(svg.contains("CPU/GPU switch against n"), "{svg}");
        let caption =
            "CPU/GPU switch against n (CPU: EPYC (2 cores), f32, best, quick; commit abc)";
        let page = fs::read_to_string(root.join("reports/RESULTS.md")).unwrap();
        assert!(page.contains(SCALING_INTRO), "{page}");
        assert!(
            page.contains(&format!("![{caption}](charts/{file})")),
            "{page}"
        );
        assert!(
            readme.contains(&format!("![{caption}](reports/charts/{file})")),
            "{readme}"
        );
        fs::remove_dir_all(&root).unwrap();
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

    use crate::references::REFERENCE_CASES;
    use crate::results::load_dir;
    use bench_core::Status;

    #[test]
    fn twin_rows_hold_every_setting_the_references_read() {
        // The workspace root: this crate is xtask/crates/<name>.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .nth(3)
            .unwrap();
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
        let loaded = load_dir(&root.join("reports/raw")).unwrap();
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        for (benchmark, keys) in &required {
            let case = REFERENCE_CASES
                .iter()
                .find(|(b, _)| b == benchmark)
                .map(|(_, case)| *case)
                .unwrap_or_else(|| panic!("no headline case for {benchmark}"));
            let newest = loaded
                .rows
                .iter()
                .filter(|r| &r.benchmark == benchmark && r.case == case && r.status == Status::Ok)
                .filter(|r| r.is_twin())
                // Rows of the suite since it recorded the mode: a `mode=`
                // setting, or (written as schema 2) the measuring process.
                .filter(|r| r.setting("mode").is_some() || r.environment.pid.is_some())
                .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
                .unwrap_or_else(|| panic!("no committed {benchmark} twin row with its mode"));
            for key in keys {
                assert!(
                    newest.setting(key).is_some(),
                    "the {benchmark} twin row of {} lacks `{key}`, which its reference reads",
                    newest.run_id
                );
            }
        }
    }
}
