//! The twins side by side: which rows a table shows, and the speed-up
//! table itself.
//!
//! A speed-up pairs the PyTorch and MLX rows of one run (same run id: same
//! build, machine and session), never one twin's row of one run with the
//! other's of another. Several passes with both twins pool into one pair,
//! whose interval resamples the passes, then their repetitions
//! (`uncertainty`); where it holds 1 or the passes straddle 1, the table
//! says `no clear winner`. A device's
//! table shows one commit: the latest at which every benchmark of the suite
//! was measured there, else the latest, naming what it lacks.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use bench_core::env::is_dirty;
use bench_core::stats::{quantile, Summary};
use bench_core::{Execution, Framework, Row, Status};

use crate::results::{machine, model, ran, samples, significant};
use crate::uncertainty::{
    self, noise_note, paired_ratio_interval, relative_iqr, undecided, Interval, Pass,
    NO_CLEAR_WINNER,
};

/// Title and headline case of each benchmark, by name.
pub type Titles = BTreeMap<String, (String, String)>;

/// The rows of one device at one commit.
#[derive(Clone, Debug)]
pub struct DeviceRun<'a> {
    pub machine: String,
    pub commit: String,
    pub rows: Vec<&'a Row>,
    /// Benchmarks of the suite without a measured twin row here.
    pub missing: Vec<String>,
}

impl DeviceRun<'_> {
    fn runs(&self) -> BTreeSet<&str> {
        self.rows.iter().map(|r| r.run_id.as_str()).collect()
    }

    fn dates(&self) -> BTreeSet<&str> {
        self.rows
            .iter()
            .map(|r| r.timestamp.get(..10).unwrap_or(&r.timestamp))
            .collect()
    }
}

/// Every device's runs, commit by commit, newest commit first.
pub fn history<'a>(rows: &'a [Row], suite: &[String]) -> Vec<DeviceRun<'a>> {
    // machine -> commit -> rows
    let mut by_commit: BTreeMap<String, BTreeMap<&str, Vec<&Row>>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.is_twin()) {
        by_commit
            .entry(machine(row))
            .or_default()
            .entry(row.environment.git_commit.as_str())
            .or_default()
            .push(row);
    }
    let mut out = Vec::new();
    for (machine, commits) in by_commit {
        let mut runs: Vec<DeviceRun> = commits
            .into_iter()
            .map(|(commit, rows)| {
                let measured: BTreeSet<&str> = rows
                    .iter()
                    .filter(|r| r.status == Status::Ok)
                    .map(|r| r.benchmark.as_str())
                    .collect();
                DeviceRun {
                    machine: machine.clone(),
                    commit: commit.to_owned(),
                    missing: suite
                        .iter()
                        .filter(|b| !measured.contains(b.as_str()))
                        .cloned()
                        .collect(),
                    rows,
                }
            })
            .collect();
        let newest = |run: &DeviceRun| {
            run.rows
                .iter()
                .map(|r| r.timestamp.clone())
                .max()
                .unwrap_or_default()
        };
        runs.sort_by_key(|run| std::cmp::Reverse(newest(run)));
        out.extend(runs);
    }
    out
}

/// Per device, the run the headline shows: the latest complete one, else
/// the latest.
pub fn headline<'a>(history: &[DeviceRun<'a>]) -> Vec<DeviceRun<'a>> {
    let machines: BTreeSet<&str> = history.iter().map(|r| r.machine.as_str()).collect();
    machines
        .into_iter()
        .filter_map(|machine| {
            let mut runs = history.iter().filter(|r| r.machine == machine);
            let first = runs.clone().next()?;
            Some(runs.find(|r| r.missing.is_empty()).unwrap_or(first).clone())
        })
        .collect()
}

/// The PyTorch and MLX rows of one configuration's headline case: from one
/// run, or, where the commit ran the configuration in several passes (both
/// twins each time), rows that pool those passes' repetitions. Preset and
/// precision as the tables print them (and sort them: by name).
#[derive(Clone, Debug)]
pub struct Pair<'a> {
    pub machine: String,
    pub benchmark: String,
    /// The preset with the knobs that differ from it
    /// ([`Row::configuration`]): rows at other knobs are other pairs.
    pub preset: String,
    pub precision: String,
    pub mode: Execution,
    pub torch: Option<Cow<'a, Row>>,
    pub mlx: Option<Cow<'a, Row>>,
    /// Each pass's speed-up, oldest first, where there were several.
    pub passes: Vec<f64>,
    /// The PyTorch and MLX rows of each pass with both, oldest first: what
    /// the interval resamples.
    pub pass_rows: Vec<(&'a Row, &'a Row)>,
}

impl Pair<'_> {
    /// PyTorch median / MLX median: above 1, MLX is faster.
    pub fn speedup(&self) -> Option<f64> {
        speedup(self.torch.as_deref()?, self.mlx.as_deref()?)
    }

    /// The speed-up's 95% interval: passes resampled, then both twins'
    /// repetitions within them (`uncertainty`). None where a pass lacks
    /// repetitions.
    pub fn interval(&self) -> Option<Interval> {
        let passes: Option<Vec<(Pass, Pass)>> = self
            .pass_rows
            .iter()
            .map(|(torch, mlx)| Some((samples(torch)?, samples(mlx)?)))
            .collect();
        paired_ratio_interval(&passes?)
    }

    /// Whether the run leaves open which twin is faster.
    pub fn undecided(&self) -> bool {
        self.speedup().is_some() && undecided(self.interval(), &self.passes)
    }

    pub fn noise(&self) -> String {
        noise_note(&[
            ("PyTorch", self.torch.as_deref()),
            ("MLX", self.mlx.as_deref()),
        ])
    }

    pub fn model(&self) -> String {
        self.torch
            .as_deref()
            .or(self.mlx.as_deref())
            .map_or("-".into(), model)
    }
}

/// PyTorch median / MLX median: above 1, MLX is faster.
fn speedup(torch: &Row, mlx: &Row) -> Option<f64> {
    let torch = torch.median_s()?;
    let mlx = mlx.median_s().filter(|m| *m > 0.0)?;
    Some(torch / mlx)
}

/// Each configuration's pair, from the measured headline rows: its passes
/// with both twins pooled (a commit measured in several interleaved passes),
/// else its latest pair.
pub fn pairs<'a>(rows: &[&'a Row], titles: &Titles) -> Vec<Pair<'a>> {
    // configuration -> run -> (PyTorch, MLX)
    type Config = (String, String, String, String, Execution);
    type Twins<'a> = (Option<&'a Row>, Option<&'a Row>);
    let mut found: BTreeMap<Config, BTreeMap<&str, Twins<'a>>> = BTreeMap::new();
    for &row in rows {
        let headline = titles.get(&row.benchmark).map(|t| t.1.as_str());
        if row.status != Status::Ok || headline != Some(row.case.as_str()) || !row.is_twin() {
            continue;
        }
        let config = (
            machine(row),
            row.benchmark.clone(),
            row.configuration(),
            row.precision.to_string(),
            row.execution,
        );
        let twins = found
            .entry(config)
            .or_default()
            .entry(row.run_id.as_str())
            .or_default();
        match row.framework {
            Framework::Torch => twins.0 = Some(row),
            Framework::Mlx => twins.1 = Some(row),
        }
    }
    let newest = |twins: &Twins| {
        [twins.0, twins.1]
            .iter()
            .flatten()
            .map(|r| r.timestamp.clone())
            .max()
            .unwrap_or_default()
    };
    found
        .into_iter()
        .filter_map(|((machine, benchmark, preset, precision, mode), runs)| {
            let mut complete: Vec<(&'a Row, &'a Row)> = runs
                .values()
                .filter_map(|twins| Some((twins.0?, twins.1?)))
                .collect();
            complete.sort_by_key(|(torch, mlx)| newest(&(Some(*torch), Some(*mlx))));
            let pass_rows = complete.clone();
            let (torch, mlx, passes) = match complete.as_slice() {
                [] => {
                    let latest = runs.values().max_by_key(|t| newest(t))?;
                    (
                        latest.0.map(Cow::Borrowed),
                        latest.1.map(Cow::Borrowed),
                        Vec::new(),
                    )
                }
                [(torch, mlx)] => (
                    Some(Cow::Borrowed(*torch)),
                    Some(Cow::Borrowed(*mlx)),
                    Vec::new(),
                ),
                several => {
                    let torch: Vec<&Row> = several.iter().map(|p| p.0).collect();
                    let mlx: Vec<&Row> = several.iter().map(|p| p.1).collect();
                    let passes = several.iter().filter_map(|(t, m)| speedup(t, m)).collect();
                    (
                        Some(Cow::Owned(pooled(&torch))),
                        Some(Cow::Owned(pooled(&mlx))),
                        passes,
                    )
                }
            };
            Some(Pair {
                machine,
                benchmark,
                preset,
                precision,
                mode,
                torch,
                mlx,
                passes,
                pass_rows,
            })
        })
        .collect()
}

/// One row for several passes of a cell: their repetitions pooled, the
/// median, quartiles, extremes and throughput recomputed from them, the run
/// ids joined. Where a pass lacks repetitions, the median of the medians.
pub fn pooled(rows: &[&Row]) -> Row {
    let last = *rows.last().expect("at least one pass");
    let mut row = last.clone();
    row.run_id = rows
        .iter()
        .map(|r| r.run_id.as_str())
        .collect::<Vec<_>>()
        .join("+");
    row.samples_s = Vec::new();
    let all: Option<Vec<f64>> = rows
        .iter()
        .map(|r| samples(r))
        .collect::<Option<Vec<_>>>()
        .map(|s| s.concat());
    let median = match all.as_deref().and_then(|s| Summary::of(s).ok()) {
        Some(summary) => {
            let median = summary.median;
            row.summary = Some(summary);
            row.samples_s = all.unwrap_or_default();
            median
        }
        None => {
            let mut medians: Vec<f64> = rows.iter().filter_map(|r| r.median_s()).collect();
            medians.sort_by(f64::total_cmp);
            if medians.is_empty() {
                return row;
            }
            let median = quantile(&medians, 0.5);
            let summary = row
                .summary
                .get_or_insert_with(|| Summary::of(&[median]).unwrap());
            summary.median = median;
            median
        }
    };
    // Throughput is work / median: the same work over the pooled median.
    if let (Some(throughput), Some(old)) = (row.throughput, last.median_s()) {
        row.throughput = Some(throughput * old / median);
    }
    row
}

/// "0.2112 (IQR 0.1%)".
pub fn time_cell(row: Option<&Row>) -> String {
    match row.and_then(|r| Some((r.median_s()?, relative_iqr(r)?))) {
        Some((median, iqr)) => format!("{} (IQR {})", significant(median), percent(iqr)),
        None => "-".into(),
    }
}

fn percent(fraction: f64) -> String {
    let value = fraction * 100.0;
    if value < 1.0 {
        format!("{value:.1}%")
    } else {
        format!("{value:.0}%")
    }
}

/// "1.21x [1.18-1.25]", or "1.21x [1.18-1.25, repetitions only]" where
/// one pass could not show drift; the interval is missing where the rows
/// carry no repetitions (runs before the JSONL files).
pub fn ratio_cell(ratio: Option<f64>, interval: Option<Interval>) -> String {
    match (ratio, interval) {
        (Some(r), Some(i)) if i.repetitions_only() => {
            format!("{r:.2}x [{:.2}-{:.2}, repetitions only]", i.low, i.high)
        }
        (Some(r), Some(i)) => format!("{r:.2}x [{:.2}-{:.2}]", i.low, i.high),
        (Some(r), None) => format!("{r:.2}x [no samples]"),
        _ => "-".into(),
    }
}

const SPEEDUP_HEADER: &str = "| Device | Benchmark | Model | Precision | Mode (what ran: PyTorch; MLX) | PyTorch time (s) | MLX time (s) | MLX speed-up [95% CI] | Noise |\n|---|---|---|---|---|---|---|---|---|\n";

/// The speed-up table of some device runs, with a note per run (commit,
/// run ids, what it lacks) and what was not measured.
pub fn speedup_table(runs: &[DeviceRun], titles: &Titles) -> String {
    let mut out = String::from(SPEEDUP_HEADER);
    let mut notes = String::new();
    let mut any = false;
    for run in runs {
        let pairs = pairs(&run.rows, titles);
        for pair in &pairs {
            any = true;
            out.push_str(&speedup_row(pair, titles));
        }
        notes.push_str(&run_note(run));
        notes.push_str(&unmeasured_failures(run, &pairs));
    }
    if !any {
        out.push_str("| - | no results yet: run `cargo xtask bench` | | | | | | | |\n");
    }
    out.push('\n');
    out.push_str(&notes);
    out
}

/// The speed-up cell of a pair: "1.21x [1.18-1.25]", each pass's own
/// where there were several, and whether the run names no winner.
pub fn speedup_text(pair: &Pair) -> String {
    let mut ratio = ratio_cell(pair.speedup(), pair.interval());
    if !pair.passes.is_empty() {
        let passes: Vec<String> = pair.passes.iter().map(|p| format!("{p:.2}")).collect();
        let _ = write!(ratio, "; passes {}", passes.join(", "));
    }
    if pair.undecided() {
        let _ = write!(ratio, "; {NO_CLEAR_WINNER}");
    }
    ratio
}

/// One pair's line of the speed-up table.
fn speedup_row(pair: &Pair, titles: &Titles) -> String {
    let title = titles
        .get(&pair.benchmark)
        .map_or(pair.benchmark.as_str(), |t| t.0.as_str());
    let ran = |row: Option<&Row>| row.map_or("-", ran).to_owned();
    let ratio = speedup_text(pair);
    format!(
        "| {} | {title} ({}) | {} | {} | {} ({}; {}) | {} | {} | {} | {} |\n",
        pair.machine,
        pair.preset,
        pair.model(),
        pair.precision,
        pair.mode,
        ran(pair.torch.as_deref()),
        ran(pair.mlx.as_deref()),
        time_cell(pair.torch.as_deref()),
        time_cell(pair.mlx.as_deref()),
        ratio,
        pair.noise(),
    )
}

/// "- <machine>: commit `<commit>`, <n> runs (<ids>) on <dates>", and what
/// the commit did not measure.
fn run_note(run: &DeviceRun) -> String {
    let runs = run.runs();
    let mut note = format!(
        "- {}: commit `{}`{}, {} run{} ({}) on {}",
        run.machine,
        run.commit,
        if is_dirty(&run.commit) {
            " (uncommitted changes)"
        } else {
            ""
        },
        runs.len(),
        if runs.len() == 1 { "" } else { "s" },
        runs.into_iter().collect::<Vec<_>>().join(", "),
        run.dates().into_iter().collect::<Vec<_>>().join(", "),
    );
    if !run.missing.is_empty() {
        let _ = write!(
            note,
            "; not measured at this commit: {}",
            run.missing.join(", ")
        );
    }
    note.push('\n');
    note
}

/// A line per failed row of the run, unless the run shows that twin
/// measured.
fn unmeasured_failures(run: &DeviceRun, pairs: &[Pair]) -> String {
    let mut lines = String::new();
    for r in &run.rows {
        if r.status != Status::Ok && !measured(pairs, r) {
            let _ = writeln!(
                lines,
                "  - {} {} {} {}: {:?}: {}",
                r.benchmark,
                r.framework_label(),
                r.device,
                r.precision,
                r.status,
                r.reason.replace('|', "/")
            );
        }
    }
    lines
}

/// Whether a pair of this configuration holds the row's twin.
fn measured(pairs: &[Pair], r: &Row) -> bool {
    pairs.iter().any(|p| {
        let twin = match r.framework {
            Framework::Torch => p.torch.as_deref(),
            Framework::Mlx => p.mlx.as_deref(),
        };
        p.benchmark == r.benchmark
            && p.precision == r.precision.to_string()
            && p.preset == r.configuration()
            && p.mode == r.execution
            && twin.is_some()
    })
}

/// What the numbers mean, under every speed-up table.
pub fn legend() -> String {
    format!(
        "\nHow to read it: each time is the median of the timed repetitions of the benchmark's headline case, in seconds; IQR is the interquartile range as a share of that median. MLX speed-up = PyTorch median / MLX median (above 1: MLX is faster), from the two twins' rows of one run; where the commit ran a configuration in several passes (both twins each time), the times pool every pass's repetitions and `passes` gives each pass's own speed-up, oldest first: their spread is how far the machine drifted between passes. In brackets, a 95% interval bootstrapped (2000 resamples, fixed seed) pass by pass: each resample draws the passes with replacement, then the repetitions within each drawn pass, so that drift between passes widens it (and it holds each pass's own speed-up); `repetitions only` marks an interval of one pass, which cannot show that drift and is narrower than another pass would be. Where the interval holds 1 or the passes lie on both sides of 1, the run does not tell which framework is faster, and the cell says `no clear winner`. Runs from before raw samples were recorded say `no samples`. A cell whose IQR exceeds {:.0}% of its median is flagged noisy: its median may move that much from run to run. Mode `best` runs each framework as its users do when speed matters (PyTorch: CUDA graphs and fused AdamW; MLX: compiled steps and its own CUDA graphs); `eager` runs both op by op (`--execution eager`); in brackets what each twin actually ran. Model: the checkpoint or size that ran.\n",
        uncertainty::NOISY_IQR_FRACTION * 100.0
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::set_iqr;

    fn row(framework: &str, median: f64, run: &str, commit: &str, samples: bool) -> Row {
        let mut row = crate::results::tests::row(framework, "switch", median, run);
        row.environment.git_commit = commit.into();
        if samples {
            row.samples_s = vec![median * 0.99, median, median * 1.01];
        }
        row
    }

    fn titles() -> Titles {
        [
            (
                "transfer".to_owned(),
                ("CPU/GPU switch".to_owned(), "switch".to_owned()),
            ),
            ("bert".to_owned(), ("BERT".to_owned(), "step".to_owned())),
        ]
        .into()
    }

    #[test]
    fn speedups_pair_rows_of_one_run() {
        // r2 (newer) has MLX only: the pair is r1's, not r2's MLX with r1's PyTorch.
        let rows = [
            row("torch", 2.0, "r1", "c", true),
            row("mlx", 1.0, "r1", "c", true),
            row("mlx", 0.1, "r22", "c", true),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let pairs = pairs(&refs, &titles());
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].speedup(), Some(2.0));
        let interval = pairs[0].interval().unwrap();
        assert!(interval.contains(2.0) && interval.low > 1.9, "{interval:?}");
        // Without samples: the ratio, and no interval.
        let old = [
            row("torch", 2.0, "r", "c", false),
            row("mlx", 1.0, "r", "c", false),
        ];
        let refs: Vec<&Row> = old.iter().collect();
        let pair = &pairs_of(&refs)[0];
        assert_eq!(
            ratio_cell(pair.speedup(), pair.interval()),
            "2.00x [no samples]"
        );
    }

    fn pairs_of<'a>(rows: &[&'a Row]) -> Vec<Pair<'a>> {
        pairs(rows, &titles())
    }

    #[test]
    fn headline_is_one_commit_per_device_complete_first() {
        let mut bert = row("torch", 1.0, "b", "old", false);
        bert.benchmark = "bert".into();
        bert.case = "step".into();
        bert.timestamp = "2025-01-01T00:00:00Z".into();
        let mut old = row("torch", 3.0, "o", "old", false);
        old.timestamp = "2025-01-01T00:00:00Z".into();
        let rows = [
            bert,
            old,
            row("torch", 2.0, "n", "new-dirty", true),
            row("mlx", 1.0, "n", "new-dirty", true),
        ];
        let suite = ["bert".to_owned(), "transfer".to_owned()];
        let history = history(&rows, &suite);
        assert_eq!(history.len(), 2);
        assert_eq!(history[0].commit, "new-dirty");
        assert_eq!(history[0].missing, vec!["bert".to_owned()]);
        // "old" measured both benchmarks: complete, so it is the headline.
        let chosen = headline(&history);
        assert_eq!((chosen.len(), chosen[0].commit.as_str()), (1, "old"));
        // With only transfer in the suite, the newest commit is complete.
        let chosen = headline(&super::history(&rows, &suite[1..]));
        assert_eq!(chosen[0].commit, "new-dirty");
        let table = speedup_table(&chosen, &titles());
        assert!(
            table.contains("| CPU: EPYC (2 cores) | CPU/GPU switch (quick) | - | f32 | best (-; -) | 2.000 (IQR 1%) | 1.000 (IQR 1%) | 2.00x ["),
            "{table}"
        );
        assert!(
            table.contains("- CPU: EPYC (2 cores): commit `new-dirty` (uncommitted changes), 1 run (n) on 2026-01-01"),
            "{table}"
        );
    }

    #[test]
    fn noisy_cells_and_failures_are_shown() {
        let mut torch = row("torch", 2.0, "r", "c", false);
        set_iqr(&mut torch, 0.5);
        let mut failed = row("mlx", 0.0, "r", "c", false);
        failed.status = Status::Failed;
        failed.reason = "boom".into();
        let rows = [torch, failed];
        let runs = history(&rows, &["transfer".to_owned()]);
        let table = speedup_table(&runs, &titles());
        assert!(table.contains("| noisy (PyTorch IQR 25%) |"), "{table}");
        assert!(
            table.contains("  - transfer mlx cpu f32: Failed: boom"),
            "{table}"
        );
    }

    #[test]
    fn passes_with_both_twins_pool_and_list_their_own_speedups() {
        let rows = [
            row("torch", 2.0, "p1", "c", true),
            row("mlx", 1.0, "p1", "c", true),
            row("torch", 2.0, "p2", "c", true),
            row("mlx", 2.0, "p2", "c", true),
            row("torch", 2.0, "p3", "c", true),
            row("mlx", 1.0, "p3", "c", true),
            // MLX alone: not a pass.
            row("mlx", 9.0, "p4", "c", true),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let pairs = pairs_of(&refs);
        assert_eq!(pairs.len(), 1);
        let pair = &pairs[0];
        assert_eq!(pair.passes, vec![2.0, 1.0, 2.0]);
        let mlx = pair.mlx.as_deref().unwrap();
        assert_eq!(mlx.run_id, "p1+p2+p3");
        assert_eq!(mlx.summary.as_ref().map(|s| s.n), Some(9));
        assert_eq!(samples(mlx).map(<[f64]>::len), Some(9));
        // Pooled MLX repetitions: 0.99, 1, 1.01 twice and 1.98, 2, 2.02.
        assert_eq!(mlx.median_s(), Some(1.01));
        let speedup = pair.speedup().unwrap();
        assert!((speedup - 2.0 / 1.01).abs() < 1e-9, "{speedup}");
        let table = speedup_table(&history(&rows, &["transfer".to_owned()]), &titles());
        // Pass 2 saw the twins level: the run does not name a winner.
        assert!(
            table.contains("; passes 2.00, 1.00, 2.00; no clear winner |"),
            "{table}"
        );
    }

    /// The table line of one configuration measured in passes of these
    /// PyTorch and MLX medians (repetitions +-1%).
    fn table_of(passes: &[(f64, f64)]) -> String {
        let rows: Vec<Row> = passes
            .iter()
            .enumerate()
            .flat_map(|(i, (torch, mlx))| {
                let run = format!("p{i}");
                [
                    row("torch", *torch, &run, "c", true),
                    row("mlx", *mlx, &run, "c", true),
                ]
            })
            .collect();
        speedup_table(&history(&rows, &["transfer".to_owned()]), &titles())
    }

    #[test]
    fn passes_on_both_sides_of_one_say_the_run_does_not_tell() {
        // MLX 1.2x, 0.8x, 1.1x faster: pooled, 1.1x; no winner.
        let table = table_of(&[(1.2, 1.0), (0.8, 1.0), (1.1, 1.0)]);
        assert!(
            table.contains("; passes 1.20, 0.80, 1.10; no clear winner |"),
            "{table}"
        );
        // Every pass on one side of 1: the winner stands, the interval
        // holds each pass.
        let table = table_of(&[(1.3, 1.0), (1.2, 1.0), (1.4, 1.0)]);
        assert!(
            table.contains("1.30x [1.20-1.40]; passes 1.30, 1.20, 1.40 |"),
            "{table}"
        );
        // One pass: repetitions only, and said so.
        let table = table_of(&[(2.0, 1.0)]);
        assert!(table.contains("| 2.00x [1.9"), "{table}");
        assert!(table.contains(", repetitions only] |"), "{table}");
        let table = table_of(&[(1.0, 1.0)]);
        assert!(
            table.contains("repetitions only]; no clear winner |"),
            "{table}"
        );
    }

    /// A Metal row of a Mac with `gpu_cores`.
    fn mac_row(framework: &str, median: f64, run: &str, gpu_cores: u32) -> Row {
        let mut row = row(framework, median, run, "c", true);
        row.device = bench_core::DeviceKind::Gpu;
        let mac = bench_core::mac::MacIdentity {
            chip: "Apple M4 Max".into(),
            performance_cores: Some(if gpu_cores == 40 { 12 } else { 10 }),
            efficiency_cores: Some(4),
            gpu_cores: Some(gpu_cores),
            ..Default::default()
        };
        row.environment.gpu = mac.gpu_name();
        row.environment.cpu = mac.cpu_name();
        row.environment.mac = Some(mac);
        row
    }

    #[test]
    fn macs_with_different_gpus_are_never_pooled() {
        // The same chip name, 32 and 40 GPU cores: two machines, each with
        // its own pair, not one pair pooling both as passes.
        let rows = [
            mac_row("torch", 2.0, "a", 32),
            mac_row("mlx", 1.0, "a", 32),
            mac_row("torch", 3.0, "b", 40),
            mac_row("mlx", 1.0, "b", 40),
        ];
        let history = history(&rows, &["transfer".to_owned()]);
        let machines: Vec<&str> = history.iter().map(|r| r.machine.as_str()).collect();
        assert_eq!(
            machines,
            [
                "GPU: Apple M4 Max (32-core GPU)",
                "GPU: Apple M4 Max (40-core GPU)"
            ]
        );
        let table = speedup_table(&headline(&history), &titles());
        for line in [
            "| GPU: Apple M4 Max (32-core GPU) | CPU/GPU switch (quick) | - | f32 | best (-; -) | 2.000 (IQR 1%) | 1.000 (IQR 1%) | 2.00x [",
            "| GPU: Apple M4 Max (40-core GPU) | CPU/GPU switch (quick) | - | f32 | best (-; -) | 3.000 (IQR 1%) | 1.000 (IQR 1%) | 3.00x [",
        ] {
            assert!(table.contains(line), "{line:?} not in:\n{table}");
        }
        assert!(!table.contains("passes"), "{table}");
        // The identity names the machine even where `gpu` says otherwise
        // (a row recorded before `gpu` named the chip).
        let mut old = mac_row("mlx", 1.0, "c", 40);
        old.environment.gpu = "Apple GPU (Metal)".into();
        assert_eq!(machine(&old), "GPU: Apple M4 Max (40-core GPU)");
    }

    #[test]
    fn a_pass_without_repetitions_pools_to_the_median_of_medians() {
        let rows = [
            row("mlx", 1.0, "a", "c", false),
            row("mlx", 3.0, "b", "c", true),
            row("mlx", 2.0, "d", "c", true),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let pooled = pooled(&refs);
        assert_eq!(pooled.median_s(), Some(2.0));
        assert!(samples(&pooled).is_none());
    }
}
