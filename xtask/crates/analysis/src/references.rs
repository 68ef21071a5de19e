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

use bench_core::record::Status;
use bench_core::{Record, Summary};

use crate::results::{execution, machine, mode, setting, Row};
use crate::twins::ratio_cell;
use crate::uncertainty::{noise_note, ratio_interval, relative_iqr, Interval};

/// The headline case of each benchmark that has Python references.
pub const REFERENCE_CASES: [(&str, &str); 4] = [
    ("tinyllama", "generate"),
    ("lm-train", "step"),
    ("bert", "step"),
    ("whisper", "transcribe"),
];

/// The twin framework a row stands beside ("torch" or "mlx") and the name
/// of its Python path, for the rows of the frameworks' own Python
/// implementations (and the older hf-transformers / mlx-lm rows of
/// TinyLlama).
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

/// The longest a device machine is held: runs further apart than this
/// from every reference run were not measured on the reference's host.
const SESSION: chrono::TimeDelta = chrono::TimeDelta::minutes(30);

fn instant(record: &Record) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    chrono::DateTime::parse_from_rfc3339(&record.timestamp).ok()
}

/// The twin rows measured in the same device sessions as `references`
/// (within `SESSION` of one of them); every twin row where a timestamp
/// does not parse.
fn same_session<'a>(twins: &[&'a Row], references: &[&Row]) -> Vec<&'a Row> {
    let times: Option<Vec<_>> = references.iter().map(|r| instant(&r.record)).collect();
    let Some(times) = times else {
        return twins.to_vec();
    };
    twins
        .iter()
        .filter(|twin| match instant(&twin.record) {
            Some(at) => times.iter().any(|t| (at - *t).abs() <= SESSION),
            None => true,
        })
        .copied()
        .collect()
}

/// Speed of a row: its throughput (higher is faster), else 1 / median.
fn speed(record: &Record) -> Option<f64> {
    record
        .throughput
        .or_else(|| record.median_s.filter(|m| *m > 0.0).map(|m| 1.0 / m))
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
        let latest = rows
            .iter()
            .max_by(|a, b| a.record.timestamp.cmp(&b.record.timestamp))?;
        let rows: Vec<&Row> = rows
            .iter()
            .filter(|r| r.record.git_commit == latest.record.git_commit)
            .copied()
            .collect();
        let speeds: Vec<f64> = rows.iter().filter_map(|r| speed(&r.record)).collect();
        Some(Self {
            summary: Summary::of(&speeds).ok()?,
            rows,
        })
    }

    /// Each repetition's speed, pooled over the runs that recorded them.
    fn sample_speeds(&self) -> Vec<f64> {
        self.rows
            .iter()
            .filter_map(|row| {
                let samples = row.samples.as_ref()?;
                let record = &row.record;
                // Work per repetition, so that speed = work / time.
                let work = match record.throughput {
                    Some(t) => t * record.median_s?,
                    None => 1.0,
                };
                Some(samples.iter().filter(|s| **s > 0.0).map(move |s| work / s))
            })
            .flatten()
            .collect()
    }

    /// The row with the widest relative spread.
    fn noisiest(&self) -> Option<&'a Record> {
        self.rows.iter().map(|r| &r.record).max_by(|a, b| {
            let spread = |r: &Record| relative_iqr(r).unwrap_or(0.0);
            spread(a).total_cmp(&spread(b))
        })
    }

    fn unit(&self) -> String {
        self.rows
            .first()
            .map(|r| r.record.throughput_unit.clone())
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "1/s".into())
    }

    fn describe(&self) -> String {
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

/// One framework's twin and references in one configuration.
#[derive(Clone, Debug, Default)]
pub struct Side<'a> {
    pub twin: Option<Figure<'a>>,
    /// Every reference, fastest first.
    pub references: Vec<Versus<'a>>,
}

/// (device, benchmark, preset, precision)
pub type Group = (String, String, String, String);

/// Every configuration with references: per framework ("torch", "mlx"),
/// the twin (best mode) and its references.
pub fn comparisons(rows: &[Row]) -> BTreeMap<Group, BTreeMap<&'static str, Side<'_>>> {
    type Found<'a> = (Vec<&'a Row>, BTreeMap<String, Vec<&'a Row>>);
    let mut groups: BTreeMap<Group, BTreeMap<&str, Found>> = BTreeMap::new();
    for row in rows {
        let r = &row.record;
        let headline = REFERENCE_CASES
            .iter()
            .any(|(bench, case)| r.benchmark == *bench && r.case == *case);
        if !headline || r.status != Status::Ok || speed(r).is_none() || mode(r) != "best" {
            continue;
        }
        let (framework, reference) = match r.framework.as_str() {
            "torch" => ("torch", None),
            "mlx" => ("mlx", None),
            _ => match reference_of(r) {
                Some((framework, name)) => (framework, Some(name)),
                None => continue,
            },
        };
        let key = (
            machine(r),
            r.benchmark.clone(),
            r.preset.clone(),
            r.precision.clone(),
        );
        let slot = groups.entry(key).or_default().entry(framework).or_default();
        match reference {
            None => slot.0.push(row),
            Some(name) => slot.1.entry(name).or_default().push(row),
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
                                ratio_interval(&t.sample_speeds(), &reference.sample_speeds())
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
        "\nEach twin beside its framework's fastest own Python path (`xtask/scripts/references/`), same machine, configuration and device session; headline case, median over the runs of the latest code in the reference's sessions (range, runs); twin / reference above 1: the twin is faster, 95% interval in brackets:\n\n| Device | Benchmark | Preset | Precision | PyTorch twin | fastest PyTorch reference | twin / reference | MLX twin | fastest MLX reference | twin / reference | Noise |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let mut each = String::from(
        "\nEvery reference's own figure (headline case; median over the runs of the latest code):\n\n| Device | Benchmark | Preset | Precision | Framework | Reference | Execution | Figure | Twin / reference | Noise |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for ((machine, benchmark, preset, precision), sides) in &groups {
        let _ = write!(out, "| {machine} | {benchmark} | {preset} | {precision} |");
        let mut noise = Vec::new();
        for (framework, name) in [("torch", "PyTorch"), ("mlx", "MLX")] {
            let empty = Side::default();
            let side = sides.get(framework).unwrap_or(&empty);
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
                    v.name
                )),
                fastest.map_or("-".into(), |v| ratio_cell(v.ratio, v.interval)),
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
                    versus.name,
                    versus.reference.rows.last().map_or("-", |r| execution(&r.record)),
                    versus.reference.describe(),
                    ratio_cell(versus.ratio, versus.interval),
                    noise_note(&[("reference", versus.reference.noisiest())]),
                );
            }
        }
        let named: Vec<(&str, Option<&Record>)> =
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
    use crate::results::tests::record;

    fn row(record: Record) -> Row {
        Row {
            record,
            samples: None,
        }
    }

    #[test]
    fn references_are_compared_to_their_twin() {
        let mut twin = record("mlx", "generate", 0.5, "r");
        twin.benchmark = "tinyllama".into();
        twin.throughput = Some(200.0);
        let mut reference = twin.clone();
        reference.framework = "mlx-lm".into();
        reference.throughput = Some(250.0);
        let table = reference_table(&[row(twin.clone()), row(reference.clone())], true);
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
        old.git_commit = "older".into();
        old.throughput = Some(10.0);
        let rows: Vec<Row> = [twin, second, third, old, reference]
            .into_iter()
            .map(row)
            .collect();
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
        let mut twin = record("torch", "generate", 0.5, "r1");
        twin.benchmark = "tinyllama".into();
        twin.timestamp = "2026-01-01T10:00:00Z".into();
        twin.throughput = Some(600.0);
        let mut reference = twin.clone();
        reference.framework = "torch-python".into();
        reference.timestamp = "2026-01-01T10:10:00Z".into();
        reference.throughput = Some(500.0);
        // A later session, on a slower host, without the reference.
        let mut later = twin.clone();
        later.run_id = "r2".into();
        later.timestamp = "2026-01-01T12:00:00Z".into();
        later.throughput = Some(300.0);
        let rows: Vec<Row> = [twin, later, reference].into_iter().map(row).collect();
        let table = reference_table(&rows, true);
        assert!(
            table.contains("| 600.0 1/s | 500.0 1/s (PyTorch) | 1.20x [no samples] |"),
            "{table}"
        );
    }

    #[test]
    fn the_fastest_reference_is_compared_with_an_interval_from_samples() {
        let mut twin = record("torch", "step", 0.010, "r");
        twin.benchmark = "bert".into();
        twin.throughput = Some(800.0);
        twin.throughput_unit = "samples/s".into();
        twin.settings = "mode=best;execution=cuda-graph".into();
        let reference = |path: &str, throughput: f64| {
            let mut r = twin.clone();
            r.framework = "torch-python".into();
            r.throughput = Some(throughput);
            r.median_s = Some(8.0 / throughput);
            r.settings = format!("reference_path={path};execution=x");
            r
        };
        // An eager twin is not the one compared with the references.
        let mut eager = twin.clone();
        eager.settings = "mode=eager;execution=eager".into();
        eager.throughput = Some(100.0);
        let mut fastest = row(reference("hf-compile-graphs", 1000.0));
        fastest.samples = Some(vec![0.0079, 0.0080, 0.0081]);
        let mut twin_row = row(twin.clone());
        twin_row.samples = Some(vec![0.0099, 0.0100, 0.0101]);
        let rows = [
            twin_row,
            row(eager),
            row(reference("hf-eager", 400.0)),
            fastest,
            row(reference("hf-compile", 700.0)),
        ];
        let table = reference_table(&rows, true);
        assert!(
            table.contains(
                "| 800.0 samples/s | 1000.0 samples/s (hf-compile-graphs) | 0.80x [0.78-0.82] |"
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
