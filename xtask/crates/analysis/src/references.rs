//! Each twin beside its framework's own Python paths
//! (`xtask/scripts/references/`): twin / fastest reference, per device,
//! benchmark, preset and precision, in throughput (above 1: the twin is
//! faster).
//!
//! Speed varies more from run to run on a shared GPU host than within a
//! run, so each figure is the median over every run of the code that made
//! its latest row (same git commit), with the range and count. And since a
//! later device session may get another host, a reference is compared with
//! the twin's runs of its own session only (`SESSION`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use bench_core::row::Implementation;
use bench_core::{Execution, Framework, Row, Status, Summary};

use crate::results::{machine, ran, samples};
use crate::twins::ratio_cell;
use crate::uncertainty::{
    noise_note, ratio_interval, relative_iqr, undecided, Interval, Pass, NO_CLEAR_WINNER,
};

/// The headline case of each benchmark that has Python references.
pub const REFERENCE_CASES: [(&str, &str); 4] = [
    ("tinyllama", "generate"),
    ("lm-train", "step"),
    ("bert", "step"),
    ("whisper", "transcribe"),
];

/// The name of a Python reference's path: its `reference_path`, else its
/// framework's name.
fn reference_name(row: &Row) -> String {
    let framework = match row.framework {
        Framework::Torch => "PyTorch",
        Framework::Mlx => "MLX",
    };
    row.setting("reference_path")
        .unwrap_or(framework)
        .to_owned()
}

/// The longest a device machine is held: runs further apart than this
/// from every reference run were not measured on the reference's host.
const SESSION: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

fn instant(row: &Row) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(&row.timestamp).ok()
}

/// The twin rows measured in the same device sessions as `references`
/// (within `SESSION` of one of them); every twin row where a timestamp
/// does not parse.
fn same_session<'a>(twins: &[&'a Row], references: &[&Row]) -> Vec<&'a Row> {
    let times: Option<Vec<_>> = references.iter().map(|r| instant(r)).collect();
    let Some(times) = times else {
        return twins.to_vec();
    };
    twins
        .iter()
        .filter(|twin| match instant(twin) {
            Some(at) => times.iter().any(|t| (at - *t).abs() <= SESSION),
            None => true,
        })
        .copied()
        .collect()
}

/// Speed of a row: its throughput (higher is faster), else 1 / median.
fn speed(row: &Row) -> Option<f64> {
    row.throughput
        .or_else(|| row.median_s().filter(|m| *m > 0.0).map(|m| 1.0 / m))
}

/// Each run's repetitions as a pass of the interval's bootstrap.
pub(crate) fn passes(runs: &[Vec<f64>]) -> Vec<Pass<'_>> {
    runs.iter().map(Vec::as_slice).collect()
}

/// The rows of one figure: every run of the latest code.
#[derive(Clone, Debug)]
pub struct Figure<'a> {
    pub rows: Vec<&'a Row>,
    pub summary: Summary,
}

impl<'a> Figure<'a> {
    /// The runs that share the latest row's git commit.
    fn of(rows: &[&'a Row]) -> Option<Self> {
        let latest = rows.iter().max_by(|a, b| a.timestamp.cmp(&b.timestamp))?;
        let commit = &latest.environment.git_commit;
        let rows: Vec<&Row> = rows
            .iter()
            .filter(|r| r.environment.git_commit == *commit)
            .copied()
            .collect();
        let speeds: Vec<f64> = rows.iter().filter_map(|r| speed(r)).collect();
        Some(Self {
            summary: Summary::of(&speeds).ok()?,
            rows,
        })
    }

    /// Each repetition's speed, run by run (each run a pass of the
    /// interval's bootstrap), of the runs that recorded them.
    pub(crate) fn sample_speeds(&self) -> Vec<Vec<f64>> {
        self.rows
            .iter()
            .filter_map(|row| {
                let samples = samples(row)?;
                // Work per repetition, so that speed = work / time.
                let work = match row.throughput {
                    Some(t) => t * row.median_s()?,
                    None => 1.0,
                };
                Some(
                    samples
                        .iter()
                        .filter(|s| **s > 0.0)
                        .map(|s| work / s)
                        .collect(),
                )
            })
            .collect()
    }

    /// The row with the widest relative spread.
    fn noisiest(&self) -> Option<&'a Row> {
        self.rows.iter().copied().max_by(|a, b| {
            let spread = |r: &Row| relative_iqr(r).unwrap_or(0.0);
            spread(a).total_cmp(&spread(b))
        })
    }

    fn unit(&self) -> String {
        self.rows
            .first()
            .map(|r| r.throughput_unit.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "1/s".into())
    }

    pub(crate) fn describe(&self) -> String {
        let s = &self.summary;
        if s.n == 1 {
            format!("{:.1} {}", s.median, self.unit())
        } else {
            format!(
                "{:.1} ({:.1}-{:.1}, {} runs) {}",
                s.median,
                s.min,
                s.max,
                s.n,
                self.unit()
            )
        }
    }
}

/// Said of a reference whose row does not record that its mode ran.
pub const MODE_NOT_CHECKED: &str = "mode not checked";

/// A twin beside one reference of its framework.
#[derive(Clone, Debug)]
pub struct Versus<'a> {
    pub name: String,
    pub reference: Figure<'a>,
    /// The twin's runs of the reference's device sessions.
    pub twin: Option<Figure<'a>>,
    /// Twin speed / reference speed.
    pub ratio: Option<f64>,
    pub interval: Option<Interval>,
}

impl Versus<'_> {
    /// The reference's name, and where its latest row records no
    /// `mode_check` (references written before the mode checks, #25) a
    /// warning that its fast path was not proven to have run.
    pub(crate) fn label(&self) -> String {
        let checked = self
            .reference
            .rows
            .iter()
            .max_by(|a, b| a.timestamp.cmp(&b.timestamp))
            .is_some_and(|row| row.setting("mode_check").is_some());
        if checked {
            self.name.clone()
        } else {
            format!("{}; {MODE_NOT_CHECKED}", self.name)
        }
    }

    /// "0.80x [0.78-0.82]", with "; no clear winner" where the interval
    /// holds 1.
    fn ratio_cell(&self) -> String {
        let mut cell = ratio_cell(self.ratio, self.interval);
        if self.ratio.is_some() && undecided(self.interval, &[]) {
            cell.push_str("; ");
            cell.push_str(NO_CLEAR_WINNER);
        }
        cell
    }
}

/// One framework's twin and references in one configuration.
#[derive(Clone, Debug, Default)]
pub struct Side<'a> {
    pub twin: Option<Figure<'a>>,
    /// Every reference, fastest first.
    pub references: Vec<Versus<'a>>,
}

/// (device, benchmark, preset with its knobs ([`Row::configuration`]),
/// precision), as the tables print (and sort) them.
pub type Group = (String, String, String, String);

/// Every configuration with references: per framework, the twin (best
/// mode) and its references.
pub fn comparisons(rows: &[Row]) -> BTreeMap<Group, BTreeMap<Framework, Side<'_>>> {
    type Found<'a> = (Vec<&'a Row>, BTreeMap<String, Vec<&'a Row>>);
    let mut groups: BTreeMap<Group, BTreeMap<Framework, Found>> = BTreeMap::new();
    for row in rows {
        let headline = REFERENCE_CASES
            .iter()
            .any(|(bench, case)| row.benchmark == *bench && row.case == *case);
        if !headline
            || row.status != Status::Ok
            || speed(row).is_none()
            || row.execution != Execution::Best
        {
            continue;
        }
        let key = (
            machine(row),
            row.benchmark.clone(),
            row.configuration(),
            row.precision.to_string(),
        );
        let slot = groups
            .entry(key)
            .or_default()
            .entry(row.framework)
            .or_default();
        match row.implementation {
            Implementation::Twin => slot.0.push(row),
            Implementation::Python => slot.1.entry(reference_name(row)).or_default().push(row),
        }
    }
    groups.retain(|_, found| found.values().any(|(_, references)| !references.is_empty()));
    groups
        .into_iter()
        .map(|(group, found)| {
            let sides = found
                .into_iter()
                .map(|(framework, (twins, references))| {
                    let mut references: Vec<Versus> = references
                        .into_iter()
                        .filter_map(|(name, rows)| {
                            let reference = Figure::of(&rows)?;
                            let twin = Figure::of(&same_session(&twins, &reference.rows));
                            let ratio = twin
                                .as_ref()
                                .map(|t| t.summary.median / reference.summary.median);
                            let interval = twin.as_ref().and_then(|t| {
                                let (twin, reference) =
                                    (t.sample_speeds(), reference.sample_speeds());
                                ratio_interval(&passes(&twin), &passes(&reference))
                            });
                            Some(Versus {
                                name,
                                reference,
                                twin,
                                ratio,
                                interval,
                            })
                        })
                        .collect();
                    references.sort_by(|a, b| {
                        b.reference
                            .summary
                            .median
                            .total_cmp(&a.reference.summary.median)
                    });
                    let twin = Figure::of(&twins);
                    (framework, Side { twin, references })
                })
                .collect();
            (group, sides)
        })
        .collect()
}

/// The table of twins beside their fastest references; with `every`, also
/// each reference's own figure (for RESULTS.md).
pub fn reference_table(rows: &[Row], every: bool) -> String {
    let groups = comparisons(rows);
    if groups.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nEach twin beside its framework's fastest own Python path (`xtask/scripts/references/`), same machine, configuration and device session; headline case, median over the runs of the latest code in the reference's sessions (range, runs); twin / reference above 1: the twin is faster, 95% interval in brackets:\n\n| Device | Benchmark | Preset, knobs | Precision | PyTorch twin | fastest PyTorch reference | twin / reference | MLX twin | fastest MLX reference | twin / reference | Noise |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut each = String::from(
        "\nEvery reference's own figure (headline case; median over the runs of the latest code):\n\n| Device | Benchmark | Preset, knobs | Precision | Framework | Reference | Execution | Figure | Twin / reference | Noise |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((machine, benchmark, preset, precision), sides) in &groups {
        let _ = write!(out, "| {machine} | {benchmark} | {preset} | {precision} |");
        let mut noise = Vec::new();
        for (framework, name) in [(Framework::Torch, "PyTorch"), (Framework::Mlx, "MLX")] {
            let empty = Side::default();
            let side = sides.get(&framework).unwrap_or(&empty);
            let fastest = side.references.first();
            // The twin as it ran beside that reference (else every run).
            let twin = fastest.map_or(side.twin.as_ref(), |v| v.twin.as_ref());
            let _ = write!(
                out,
                " {} | {} | {} |",
                twin.map_or("-".into(), Figure::describe),
                fastest.map_or("-".into(), |v| format!(
                    "{} ({})",
                    v.reference.describe(),
                    v.label()
                )),
                fastest.map_or("-".into(), Versus::ratio_cell),
            );
            noise.push((format!("{name} twin"), twin.and_then(Figure::noisiest)));
            noise.push((
                format!("{name} reference"),
                fastest.and_then(|v| v.reference.noisiest()),
            ));
            for versus in &side.references {
                let _ = writeln!(
                    each,
                    "| {machine} | {benchmark} | {preset} | {precision} | {framework}-python | {} | {} | {} | {} | {} |",
                    versus.label(),
                    versus.reference.rows.last().map_or("-", |r| ran(r)),
                    versus.reference.describe(),
                    versus.ratio_cell(),
                    noise_note(&[("reference", versus.reference.noisiest())]),
                );
            }
        }
        let named: Vec<(&str, Option<&Row>)> =
            noise.iter().map(|(n, r)| (n.as_str(), *r)).collect();
        let _ = writeln!(out, " {} |", noise_note(&named));
    }
    if every {
        out.push_str(&each);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{row, set_median, set_settings};

    /// A row of `benchmark` with a throughput.
    fn measured(framework: &str, case: &str, benchmark: &str, throughput: f64) -> Row {
        let mut r = row(framework, case, 0.5, "r");
        r.benchmark = benchmark.into();
        r.throughput = Some(throughput);
        r
    }

    #[test]
    fn references_are_compared_to_their_twin() {
        let twin = measured("mlx", "generate", "tinyllama", 200.0);
        // TinyLlama's mlx-lm reference, as its archived rows read back.
        let mut reference = twin.clone();
        reference.implementation = Implementation::Python;
        set_settings(
            &mut reference,
            "reference_path=mlx-lm generate_step;mode_check=MLX: mx.compile not turned off",
        );
        reference.throughput = Some(250.0);
        let table = reference_table(&[twin.clone(), reference.clone()], true);
        assert!(
            table.contains("| 200.0 1/s | 250.0 1/s (mlx-lm generate_step) | 0.80x [no samples] |"),
            "{table}"
        );
        // Runs of the latest code are pooled (median, range, count); a run
        // of older code is not.
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
        old.environment.git_commit = "older".into();
        old.throughput = Some(10.0);
        let rows = [twin, second, third, old, reference];
        let table = reference_table(&rows, true);
        assert!(
            table.contains(
                "| 220.0 (200.0-300.0, 3 runs) 1/s | 250.0 1/s (mlx-lm generate_step) | 0.88x [no samples] |"
            ),
            "{table}"
        );
    }

    #[test]
    fn a_reference_is_compared_with_the_twin_runs_of_its_own_session() {
        let mut twin = measured("torch", "generate", "tinyllama", 600.0);
        twin.run_id = "r1".into();
        twin.timestamp = "2026-01-01T10:00:00Z".into();
        let mut reference = twin.clone();
        reference.implementation = Implementation::Python;
        reference.timestamp = "2026-01-01T10:10:00Z".into();
        reference.throughput = Some(500.0);
        // A later session, on a slower host, without the reference.
        let mut later = twin.clone();
        later.run_id = "r2".into();
        later.timestamp = "2026-01-01T12:00:00Z".into();
        later.throughput = Some(300.0);
        let rows = [twin, later, reference];
        let table = reference_table(&rows, true);
        // Its row records no mode check (as references before #25): said.
        assert!(
            table.contains(
                "| 600.0 1/s | 500.0 1/s (PyTorch; mode not checked) | 1.20x [no samples] |"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_fastest_reference_is_compared_with_an_interval_from_samples() {
        let mut twin = row("torch", "step", 0.010, "r");
        twin.benchmark = "bert".into();
        twin.throughput = Some(800.0);
        twin.throughput_unit = "samples/s".into();
        set_settings(&mut twin, "mode=best;execution=cuda-graph");
        let reference = |path: &str, throughput: f64| {
            let mut r = twin.clone();
            r.implementation = Implementation::Python;
            r.throughput = Some(throughput);
            set_median(&mut r, 8.0 / throughput);
            set_settings(
                &mut r,
                &format!("reference_path={path};execution=x;mode_check=ok"),
            );
            r
        };
        // An eager twin is not the one compared with the references.
        let mut eager = twin.clone();
        eager.execution = Execution::Eager;
        set_settings(&mut eager, "mode=eager;execution=eager");
        eager.throughput = Some(100.0);
        let mut fastest = reference("hf-compile-graphs", 1000.0);
        fastest.samples_s = vec![0.0079, 0.0080, 0.0081];
        let mut twin_row = twin.clone();
        twin_row.samples_s = vec![0.0099, 0.0100, 0.0101];
        let rows = [
            twin_row,
            eager,
            reference("hf-eager", 400.0),
            fastest,
            reference("hf-compile", 700.0),
        ];
        let table = reference_table(&rows, true);
        assert!(
            table.contains(
                "| 800.0 samples/s | 1000.0 samples/s (hf-compile-graphs) | 0.80x [0.78-0.82, repetitions only] |"
            ),
            "{table}"
        );
        for line in [
            "| hf-eager | x | 400.0 samples/s | 2.00x [no samples] |",
            "| hf-compile | x | 700.0 samples/s | 1.14x [no samples] |",
        ] {
            assert!(table.contains(line), "{line} in {table}");
        }
        // Without references there is no table.
        assert!(reference_table(&rows[..1], true).is_empty());
    }
}
