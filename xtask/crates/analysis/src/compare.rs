//! `cargo xtask compare A B`: every cell measured in both runs, baseline A
//! beside candidate B: both medians, B / A with its 95% interval, and a
//! verdict. `--fail-above PCT` makes a confident regression (B slower than
//! A by more than PCT percent, interval and all) an error exit, for CI.
//!
//! A side may be several runs (`r1,r2,r3`): passes of one code. Its cells
//! then pool their repetitions, and the interval resamples each side's
//! passes before their repetitions, so that drift between passes counts
//! (`uncertainty`); one run a side gives an interval of repetitions only.
//!
//! A cell is the same in both runs only at the same knobs.
//!
//! `cargo xtask compare --devices`: each device's MLX speed-up side by
//! side ([`devices`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Result};
use bench_core::{Row, Status};
use clap::Args;

use crate::devices;
use crate::results::{self, machine, samples, significant, Loaded};
use crate::twins::{pooled, ratio_cell, Titles};
use crate::uncertainty::{ratio_interval, relative_iqr, Interval, Pass};

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Baseline: a run id (found under --results) or a result file (.csv or
    /// .jsonl); several, comma-separated, are passes of one code.
    #[arg(required_unless_present = "devices")]
    pub baseline: Option<String>,
    /// Candidate: a run id or a result file; several, comma-separated.
    #[arg(required_unless_present = "devices")]
    pub candidate: Option<String>,
    /// Exit non-zero when a cell is slower than the baseline by more than
    /// PCT percent with 95% confidence (runs without samples: beyond their
    /// IQR), e.g. `--fail-above 5`.
    #[arg(long, value_name = "PCT")]
    pub fail_above: Option<f64>,
    /// Folder of the run files that run ids are looked up in (default: reports/raw).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Instead of two runs: each device's MLX speed-up side by side (the
    /// runs of the README's table, from --results), for the configurations
    /// that match on preset and knobs; names those that do not.
    #[arg(long, conflicts_with_all = ["baseline", "candidate", "fail_above"])]
    pub devices: bool,
}

pub fn run(root: &Path, args: &CompareArgs) -> Result<ExitCode> {
    let dir = args
        .results
        .clone()
        .unwrap_or_else(|| root.join("reports/raw"));
    let (Some(baseline), Some(candidate)) = (&args.baseline, &args.candidate) else {
        let loaded = results::load_dir(&dir)?;
        loaded.warn();
        let benches = xtask_suite::discover(root)?;
        let titles: Titles = benches
            .iter()
            .map(|b| (b.name.clone(), (b.title.clone(), b.headline.clone())))
            .collect();
        let suite: Vec<String> = benches.iter().map(|b| b.name.clone()).collect();
        print!("{}", devices::table(&loaded.rows, &titles, &suite));
        return Ok(ExitCode::SUCCESS);
    };
    let baseline = resolve(baseline, &dir)?;
    let candidate = resolve(candidate, &dir)?;
    let comparison = compare(&baseline.rows, &candidate.rows, args.fail_above);
    print!("{}", comparison.text);
    if let Some(pct) = args.fail_above {
        if comparison.regressions > 0 {
            eprintln!(
                "compare: {} cell(s) slower than the baseline by more than {pct}%",
                comparison.regressions
            );
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows of the runs of a comma-separated list, each a file or a run id.
pub(crate) fn resolve(list: &str, dir: &Path) -> Result<Loaded> {
    let mut all = Loaded::default();
    for spec in list.split(',').map(str::trim) {
        if spec.is_empty() {
            bail!("'{list}' names an empty run: give run ids or files, comma-separated");
        }
        let loaded = resolve_one(spec, dir)?;
        all.rows.extend(loaded.rows);
        all.warnings.extend(loaded.warnings);
    }
    Ok(all)
}

/// The rows of a run: a file (with the CSV or JSONL beside it), else a run
/// id found in `dir`.
fn resolve_one(spec: &str, dir: &Path) -> Result<Loaded> {
    for path in [PathBuf::from(spec), dir.join(spec)] {
        if path.is_file() {
            let loaded = results::load_run(&path)?;
            loaded.warn();
            return Ok(loaded);
        }
    }
    let mut loaded = results::load_dir(dir)?;
    loaded.warn();
    loaded.rows.retain(|r| r.run_id == spec);
    if loaded.rows.is_empty() {
        bail!(
            "'{spec}' is neither a result file nor a run id in {}",
            dir.display()
        );
    }
    Ok(loaded)
}

/// What one cell's two rows say.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Verdict {
    Faster,
    Slower,
    WithinNoise,
}

/// B / A of one cell's time rows, a row per pass (run) on each side: the
/// ratio of the pooled medians, its pass-aware interval (from samples) and
/// the verdict. The interval decides where there is one; else the change
/// must exceed both sides' relative IQR.
pub fn judge(a: &[&Row], b: &[&Row]) -> Option<(f64, Option<Interval>, Verdict)> {
    let (passes_a, passes_b) = (a, b);
    let (a, b) = (pooled_passes(passes_a)?, pooled_passes(passes_b)?);
    let (a, b) = (&a, &b);
    let ratio = b.median_s()? / a.median_s().filter(|m| *m > 0.0)?;
    let interval = match (pass_samples(passes_b), pass_samples(passes_a)) {
        (Some(sb), Some(sa)) => ratio_interval(&sb, &sa),
        _ => None,
    };
    let verdict = match interval {
        Some(i) if i.contains(1.0) => Verdict::WithinNoise,
        Some(i) if i.low > 1.0 => Verdict::Slower,
        Some(_) => Verdict::Faster,
        None => {
            let noise = relative_iqr(a)
                .unwrap_or(0.0)
                .max(relative_iqr(b).unwrap_or(0.0));
            if (ratio - 1.0).abs() <= noise {
                Verdict::WithinNoise
            } else if ratio > 1.0 {
                Verdict::Slower
            } else {
                Verdict::Faster
            }
        }
    };
    Some((ratio, interval, verdict))
}

/// One row for a side's passes: the row itself for one pass, else their
/// repetitions pooled (`twins::pooled`). None without a row.
fn pooled_passes(passes: &[&Row]) -> Option<Row> {
    match passes {
        [] => None,
        [one] => Some((*one).clone()),
        several => Some(pooled(several)),
    }
}

/// Each pass's repetitions; None where one lacks them.
fn pass_samples<'a>(passes: &[&'a Row]) -> Option<Vec<Pass<'a>>> {
    passes.iter().map(|row| samples(row)).collect()
}

pub struct Comparison {
    pub text: String,
    /// Cells slower by more than `--fail-above` with confidence.
    pub regressions: usize,
}

/// Benchmark, case, framework, device, precision, preset with its knobs
/// ([`Row::configuration`]) and mode, as the table prints (and sorts) them.
type CellKey = (String, String, String, String, String, String, String);

/// Each cell's passes, by cell.
type Cells<'a> = BTreeMap<CellKey, Vec<&'a Row>>;

/// Each cell's passes: its latest row of each run, oldest first.
fn cells(rows: &[Row]) -> Cells<'_> {
    let mut out = Cells::new();
    for row in rows {
        let key = (
            row.benchmark.clone(),
            row.case.clone(),
            row.framework_label(),
            row.device.to_string(),
            row.precision.to_string(),
            row.configuration(),
            row.execution.to_string(),
        );
        let passes = out.entry(key).or_default();
        match passes.iter_mut().find(|pass| pass.run_id == row.run_id) {
            Some(slot) if row.timestamp >= slot.timestamp => *slot = row,
            Some(_) => {}
            None => passes.push(row),
        }
    }
    for passes in out.values_mut() {
        passes.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
    }
    out
}

fn describe_key(key: &CellKey) -> String {
    let (benchmark, case, framework, device, precision, preset, mode) = key;
    format!("{benchmark} {case} {framework} {device} {precision} ({preset}) {mode}")
}

/// The verdicts over the cells both runs have.
#[derive(Default)]
struct Tally {
    faster: usize,
    slower: usize,
    same: usize,
    regressions: usize,
}

pub fn compare(baseline: &[Row], candidate: &[Row], fail_above: Option<f64>) -> Comparison {
    let a = cells(baseline);
    let b = cells(candidate);
    let mut text = header(baseline, candidate);
    let mut tally = Tally::default();
    for (key, rows_a) in &a {
        if let Some(rows_b) = b.get(key) {
            text.push_str(&cell_line(key, rows_a, rows_b, fail_above, &mut tally));
        }
    }
    text.push_str(&footer(&tally, &unmatched(&a, &b)));
    Comparison {
        text,
        regressions: tally.regressions,
    }
}

/// Which runs A and B are, then the table's header.
fn header(baseline: &[Row], candidate: &[Row]) -> String {
    let mut text = String::new();
    let _ = writeln!(text, "A (baseline): {}", describe_runs(baseline));
    let _ = writeln!(text, "B (candidate): {}\n", describe_runs(candidate));
    text.push_str("| Benchmark | Case | Framework | Device | Precision | Preset, knobs | Mode | A median (s) | B median (s) | B / A [95% CI] | Verdict |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    text
}

/// "<machine> at <commit>" of each run among `rows`, in order of first row.
fn describe_runs(rows: &[Row]) -> String {
    let mut seen: Vec<String> = Vec::new();
    for r in rows {
        let what = format!("{} at {}", machine(r), r.environment.git_commit);
        if !seen.contains(&what) {
            seen.push(what);
        }
    }
    seen.join("; ")
}

/// One cell's line: both (pooled) medians, B / A and the verdict.
fn cell_line(
    key: &CellKey,
    rows_a: &[&Row],
    rows_b: &[&Row],
    fail_above: Option<f64>,
    tally: &mut Tally,
) -> String {
    let (benchmark, case, framework, device, precision, preset, mode) = key;
    let (measured_a, measured_b) = (measured(rows_a), measured(rows_b));
    let median = |rows: &[&Row]| {
        pooled_passes(rows)
            .and_then(|row| row.median_s())
            .map_or("-".into(), significant)
    };
    let (ratio, verdict) = ratio_and_verdict(rows_a, rows_b, fail_above, tally);
    format!(
        "| {benchmark} | {case} | {framework} | {device} | {precision} | {preset} | {mode} | {} | {} | {ratio} | {verdict} |\n",
        median(&measured_a),
        median(&measured_b),
    )
}

/// The passes that measured the cell.
fn measured<'a>(rows: &[&'a Row]) -> Vec<&'a Row> {
    rows.iter()
        .filter(|row| row.status == Status::Ok)
        .copied()
        .collect()
}

/// The ratio and verdict cells of a cell both runs have, counted in `tally`:
/// of the passes that measured it, else the latest pass's status.
fn ratio_and_verdict(
    rows_a: &[&Row],
    rows_b: &[&Row],
    fail_above: Option<f64>,
    tally: &mut Tally,
) -> (String, String) {
    let (measured_a, measured_b) = (measured(rows_a), measured(rows_b));
    if measured_a.is_empty() || measured_b.is_empty() {
        let status = |rows: &[&Row]| {
            rows.last().map_or("missing".into(), |row| {
                format!("{:?}", row.status).to_lowercase()
            })
        };
        return (
            "-".to_owned(),
            format!("A {}, B {}", status(rows_a), status(rows_b)),
        );
    }
    let Some((ratio, interval, verdict)) = judge(&measured_a, &measured_b) else {
        return ("-".into(), "no median".into());
    };
    let limit = fail_above.map(|pct| 1.0 + pct / 100.0);
    let bound = interval.map_or(ratio, |i| i.low);
    let regression = verdict == Verdict::Slower && limit.is_some_and(|limit| bound > limit);
    tally.regressions += usize::from(regression);
    let mut word = match verdict {
        Verdict::Faster => {
            tally.faster += 1;
            "faster".to_owned()
        }
        Verdict::Slower => {
            tally.slower += 1;
            "slower".to_owned()
        }
        Verdict::WithinNoise => {
            tally.same += 1;
            "within noise".to_owned()
        }
    };
    if interval.is_none() {
        word.push_str(" (by IQR: no samples)");
    }
    if regression {
        word.push_str(" REGRESSION");
    }
    (ratio_cell(Some(ratio), interval), word)
}

/// The cells in one run only: A's, then B's.
fn unmatched(a: &Cells, b: &Cells) -> Vec<String> {
    let only = |these: &Cells, others: &Cells, run: &str| {
        these
            .keys()
            .filter(|k| !others.contains_key(*k))
            .map(|k| format!("{} only in {run}", describe_key(k)))
            .collect::<Vec<_>>()
    };
    let mut out = only(a, b, "A");
    out.extend(only(b, a, "B"));
    out
}

/// How to read the table, the tally and the cells in one run only.
fn footer(tally: &Tally, unmatched: &[String]) -> String {
    let Tally {
        faster,
        slower,
        same,
        ..
    } = tally;
    format!(
        "\nB / A of the median times (a side of several runs: their repetitions pooled): above 1, B is slower. Verdict from the 95% interval bootstrapped from both sides' runs, then their repetitions within each (within noise: it holds 1; `repetitions only`: a side of one run, whose drift from run to run it cannot show); for runs without recorded repetitions, from the IQR (within noise: the change is within the larger relative IQR).\n\nB against A: {faster} faster, {slower} slower, {same} within noise; {} cell(s) in one run only{}\n",
        unmatched.len(),
        if unmatched.is_empty() {
            String::new()
        } else {
            format!(": {}", unmatched.join(", "))
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{row, set_iqr, temp_dir, write_run};

    /// A pass of a cell: 20 repetitions over +-2% of `median`.
    fn pass(median: f64, run: &str) -> Row {
        let mut r = cell("torch", "switch", median, run);
        r.samples_s = (0..20)
            .map(|i| median * (0.981 + 0.002 * f64::from(i)))
            .collect();
        r
    }

    fn cell(framework: &str, case: &str, median: f64, run: &str) -> Row {
        let mut r = row(framework, case, median, run);
        set_iqr(&mut r, median * 0.02);
        r.samples_s = [0.98, 0.99, 1.0, 1.01, 1.02].map(|f| f * median).to_vec();
        r
    }

    #[test]
    fn verdicts_and_a_failing_regression_gate() {
        let dir = temp_dir("compare");
        write_run(
            &dir.join("a.csv"),
            &[
                cell("torch", "switch", 1.0, "A"),
                cell("mlx", "switch", 1.0, "A"),
                cell("mlx", "ceiling", 1.0, "A"),
            ],
        );
        write_run(
            &dir.join("b.csv"),
            &[
                cell("torch", "switch", 1.5, "B"),  // slower by 50%
                cell("mlx", "switch", 0.5, "B"),    // faster
                cell("mlx", "ceiling", 1.001, "B"), // the same
            ],
        );
        let a = resolve("A", &dir).unwrap();
        let b = resolve(dir.join("b.csv").to_str().unwrap(), &dir).unwrap();
        let result = compare(&a.rows, &b.rows, Some(10.0));
        let text = &result.text;
        assert!(
            text.contains("| switch | torch | cpu | f32 | quick | best | 1.000 | 1.500 | 1.50x ["),
            "{text}"
        );
        assert!(text.contains("| slower REGRESSION |"), "{text}");
        assert!(
            text.contains("| 0.50x [") && text.contains("| faster |"),
            "{text}"
        );
        assert!(text.contains("| within noise |"), "{text}");
        assert!(
            text.contains("1 faster, 1 slower, 1 within noise"),
            "{text}"
        );
        assert_eq!(result.regressions, 1);
        // A 60% threshold: the 50% slow-down is not a failure.
        assert_eq!(compare(&a.rows, &b.rows, Some(60.0)).regressions, 0);
        assert!(resolve("nope", &dir).is_err());
        fs_cleanup(&dir);
    }

    fn fs_cleanup(dir: &Path) {
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_samples_the_iqr_decides() {
        let row = |median: f64, iqr: f64| {
            let mut r = row("torch", "switch", median, "r");
            set_iqr(&mut r, iqr);
            r
        };
        let a = row(1.0, 0.1);
        let judge = |b: Row| judge(&[&a], &[&b]).unwrap();
        assert_eq!(judge(row(1.05, 0.1)).2, Verdict::WithinNoise);
        assert_eq!(judge(row(1.3, 0.1)).2, Verdict::Slower);
        assert_eq!(judge(row(0.7, 0.1)).2, Verdict::Faster);
        assert_eq!(judge(row(1.3, 0.1)).1, None);
    }

    #[test]
    fn several_runs_a_side_are_passes_whose_drift_the_verdict_sees() {
        let dir = temp_dir("compare-passes");
        // A steady baseline; a candidate drifting from run to run.
        for (run, a, b) in [("A1", 1.0, 0.95), ("A2", 1.0, 1.1), ("A3", 1.0, 1.12)] {
            write_run(&dir.join(format!("{run}.csv")), &[pass(a, run)]);
            let candidate = run.replace('A', "B");
            write_run(
                &dir.join(format!("{candidate}.csv")),
                &[pass(b, &candidate)],
            );
        }
        let a = resolve("A1,A2,A3", &dir).unwrap();
        let b = resolve("B1, B2,B3", &dir).unwrap();
        let (ra, rb): (Vec<&Row>, Vec<&Row>) = (a.rows.iter().collect(), b.rows.iter().collect());
        let (ratio, interval, verdict) = judge(&ra, &rb).unwrap();
        let interval = interval.unwrap();
        assert!((ratio - 1.1).abs() < 0.01, "{ratio}");
        assert_eq!((interval.passes, verdict), (3, Verdict::WithinNoise));
        // The same repetitions as one run each: the drift is invisible and
        // the candidate looks slower.
        let (one_a, one_b) = (pooled(&ra), pooled(&rb));
        let (_, interval, verdict) = judge(&[&one_a], &[&one_b]).unwrap();
        assert!(interval.unwrap().repetitions_only());
        assert_eq!(verdict, Verdict::Slower);
        // The table: pooled medians, the interval of three passes.
        let text = compare(&a.rows, &b.rows, Some(5.0)).text;
        assert!(
            text.contains("| 1.000 | 1.099 | 1.10x [0.9") && text.contains("] | within noise |"),
            "{text}"
        );
        assert!(!text.contains("repetitions only]"), "{text}");
        assert!(resolve("A1,,A2", &dir).is_err());
        fs_cleanup(&dir);
    }
}
