//! Sweeps: the cells of one device that differ in exactly one knob value,
//! everything else equal (`--set batch_size=1,8,32`), and what the scaling
//! charts draw of them: each case's throughput (or time) per framework and
//! the MLX speed-up with its 95% interval, at each value of the knob.

use std::collections::{BTreeMap, BTreeSet};

use bench_core::{Execution, Row};

use crate::cells::{knob_label, CasePair, Knobs};
use crate::charts::{quartiles, Whisker};

/// One knob swept on one device, configuration and set of other knobs.
#[derive(Clone, Debug, PartialEq)]
pub struct Sweep {
    pub machine: String,
    pub benchmark: String,
    pub preset: String,
    pub precision: String,
    pub mode: Execution,
    pub knob: String,
    /// The other knobs' values, the same at every point.
    pub fixed: Knobs,
    /// The commit the rows were measured at.
    pub commit: String,
    /// Each case measured at two values of the knob or more, by name.
    pub cases: Vec<Series>,
}

impl Sweep {
    /// "CPU: EPYC (2 cores), f32, best, quick, seq_len=64": what stays
    /// the same along the sweep.
    pub fn setting(&self) -> String {
        let mut text = format!(
            "{}, {}, {}, {}",
            self.machine, self.precision, self.mode, self.preset
        );
        if !self.fixed.is_empty() {
            text.push_str(", ");
            text.push_str(&knob_label(&self.fixed));
        }
        text
    }

    /// A file name for its chart, unique among the sweeps:
    /// `scaling-<benchmark>-<knob>-<what stays the same>`.
    pub fn file_stem(&self) -> String {
        let slug: String = self
            .setting()
            .trim_start_matches("GPU: ")
            .trim_start_matches("CPU: ")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        let slug = slug
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        format!("scaling-{}-{}-{slug}", self.benchmark, self.knob)
    }
}

/// What a series plots per framework.
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// Throughput in this unit (higher is better).
    Throughput(String),
    /// Median time per repetition, in seconds.
    Time,
}

/// One case of a sweep: a point per knob value, in increasing order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub case: String,
    pub measure: Measure,
    pub points: Vec<Point>,
}

/// One knob value's figures: (low, middle, high) of each.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub x: f64,
    /// The knob value as recorded.
    pub value: String,
    /// Interquartile whiskers of the measure, per framework.
    pub torch: Option<Whisker>,
    pub mlx: Option<Whisker>,
    /// The MLX speed-up and its 95% interval (the ratio alone without
    /// repetitions).
    pub speedup: Option<Whisker>,
}

/// Every sweep among the pairs, in a stable order: for each device and
/// configuration, each knob whose value alone differs between two cells
/// or more.
pub fn sweeps(pairs: &[CasePair]) -> Vec<Sweep> {
    type Config = (String, String, String, String, Execution);
    let mut by_config: BTreeMap<Config, Vec<&CasePair>> = BTreeMap::new();
    for cp in pairs {
        let p = &cp.pair;
        let config = (
            p.machine.clone(),
            p.benchmark.clone(),
            cp.preset.clone(),
            p.precision.clone(),
            p.mode,
        );
        by_config.entry(config).or_default().push(cp);
    }
    let mut out = Vec::new();
    for ((machine, benchmark, preset, precision, mode), cells) in by_config {
        let knobs: BTreeSet<&String> = cells.iter().flat_map(|c| c.knobs.keys()).collect();
        for knob in knobs {
            // The other knobs' values -> the cells that share them.
            let mut lines: BTreeMap<Knobs, Vec<&CasePair>> = BTreeMap::new();
            for &cell in &cells {
                let mut fixed = cell.knobs.clone();
                fixed.remove(knob);
                lines.entry(fixed).or_default().push(cell);
            }
            for (fixed, line) in lines {
                let cases = series(knob, &line);
                if cases.is_empty() {
                    continue;
                }
                let commit = line
                    .iter()
                    .flat_map(|c| [c.pair.torch.as_deref(), c.pair.mlx.as_deref()])
                    .flatten()
                    .map(|row| row.environment.git_commit.clone())
                    .next()
                    .unwrap_or_default();
                out.push(Sweep {
                    machine: machine.clone(),
                    benchmark: benchmark.clone(),
                    preset: preset.clone(),
                    precision: precision.clone(),
                    mode,
                    knob: knob.clone(),
                    fixed,
                    commit,
                    cases,
                });
            }
        }
    }
    out
}

/// The value of `knob` in a cell: its knob value, else (the knob at its
/// preset's default) the setting its rows recorded under that name.
fn value_of(knob: &str, cell: &CasePair) -> Option<String> {
    if let Some(value) = cell.knobs.get(knob) {
        return Some(value.clone());
    }
    let row = cell.pair.torch.as_deref().or(cell.pair.mlx.as_deref())?;
    row.setting(knob).map(str::to_owned)
}

/// Each case with two numeric values of the knob or more.
fn series(knob: &str, cells: &[&CasePair]) -> Vec<Series> {
    let mut by_case: BTreeMap<&str, Vec<(f64, String, &CasePair)>> = BTreeMap::new();
    for &cell in cells {
        let Some(value) = value_of(knob, cell) else {
            continue;
        };
        let Some(x) = value.parse::<f64>().ok().filter(|x| x.is_finite()) else {
            continue;
        };
        by_case
            .entry(&cell.case)
            .or_default()
            .push((x, value, cell));
    }
    by_case
        .into_iter()
        .filter_map(|(case, mut points)| {
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            points.dedup_by(|a, b| a.0 == b.0);
            if points.len() < 2 {
                return None;
            }
            let rows = points
                .iter()
                .flat_map(|(_, _, c)| [c.pair.torch.as_deref(), c.pair.mlx.as_deref()])
                .flatten();
            let measure = measure(rows);
            let points = points
                .into_iter()
                .map(|(x, value, cell)| Point {
                    x,
                    value,
                    torch: cell.pair.torch.as_deref().and_then(|r| figure(r, &measure)),
                    mlx: cell.pair.mlx.as_deref().and_then(|r| figure(r, &measure)),
                    speedup: cell.pair.speedup().map(|ratio| {
                        let interval = cell.pair.interval();
                        interval.map_or((ratio, ratio, ratio), |i| (i.low, ratio, i.high))
                    }),
                })
                .collect();
            Some(Series {
                case: case.to_owned(),
                measure,
                points,
            })
        })
        .collect()
}

/// Throughput where every row has it, in one unit; else time.
fn measure<'a>(mut rows: impl Iterator<Item = &'a Row>) -> Measure {
    let Some(first) = rows.next() else {
        return Measure::Time;
    };
    let unit = &first.throughput_unit;
    let same = |r: &Row| r.throughput.is_some() && &r.throughput_unit == unit;
    if same(first) && !unit.is_empty() && rows.all(same) {
        Measure::Throughput(unit.clone())
    } else {
        Measure::Time
    }
}

/// The row's (q1, median, q3) of the measure: throughput is the work of a
/// repetition over its time, so its low end is the slow quartile's.
fn figure(row: &Row, measure: &Measure) -> Option<Whisker> {
    let (q1, median, q3) = quartiles(row)?;
    match measure {
        Measure::Time => Some((q1, median, q3)),
        Measure::Throughput(_) => {
            let work = row.throughput? * row.median_s()?;
            (q1 > 0.0).then(|| (work / q3, work / median, work / q1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cells::case_pairs;
    use crate::cells::tests::{knob_row, titles};

    /// A run that sweeps n over 64, 512 (quick's default: no knob) and
    /// 1024 at the default threads (2), and threads over 2 and 4 at n=64,
    /// with throughput on the switch case.
    fn swept_rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for (knobs, n, torch, mlx) in [
            ("n=64", 64, 2.0, 1.0),
            ("", 512, 4.0, 2.0),
            ("n=1024", 1024, 64.0, 16.0),
            ("n=64;threads=4", 64, 1.0, 1.0),
        ] {
            let settings = format!("threads=2;n={n};seed=0");
            for (framework, median) in [("torch", torch), ("mlx", mlx)] {
                let mut row = knob_row(framework, "switch", median, "r", (knobs, &settings));
                row.throughput = Some(n as f64 / median);
                row.throughput_unit = "elements/s".into();
                rows.push(row);
            }
        }
        rows
    }

    #[test]
    fn each_knob_that_alone_differs_is_a_sweep() {
        let rows = swept_rows();
        let refs: Vec<&Row> = rows.iter().collect();
        let sweeps = sweeps(&case_pairs(&refs, &titles()));
        let found: Vec<(String, String, Vec<f64>)> = sweeps
            .iter()
            .map(|s| {
                let xs = s.cases[0].points.iter().map(|p| p.x).collect();
                (s.knob.clone(), knob_label(&s.fixed), xs)
            })
            .collect();
        assert_eq!(
            found,
            [
                // The default's value from its settings.
                ("n".into(), "".into(), vec![64.0, 512.0, 1024.0]),
                ("threads".into(), "n=64".into(), vec![2.0, 4.0]),
            ]
        );
        let n = &sweeps[0].cases[0];
        assert_eq!(n.measure, Measure::Throughput("elements/s".into()));
        let speedups: Vec<f64> = n.points.iter().map(|p| p.speedup.unwrap().1).collect();
        assert_eq!(speedups, [2.0, 2.0, 4.0]);
        let (low, ratio, high) = n.points[2].speedup.unwrap();
        assert!(low < ratio && ratio < high, "{low} {ratio} {high}");
        // MLX at n=1024: 1024 elements in 16 s, the slow quartile lower.
        let (slow, median, fast) = n.points[2].mlx.unwrap();
        assert_eq!(median, 64.0);
        assert!(slow < median && median < fast);
        assert_eq!(
            sweeps[1].file_stem(),
            "scaling-transfer-threads-epyc-2-cores-f32-best-quick-n-64"
        );
    }

    #[test]
    fn cells_that_differ_in_two_knobs_are_no_sweep() {
        let rows: Vec<Row> = [("n=64", 1.0), ("threads=4;n=128", 2.0)]
            .into_iter()
            .flat_map(|(knobs, median)| {
                ["torch", "mlx"].map(|f| knob_row(f, "switch", median, "r", (knobs, "")))
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        assert!(sweeps(&case_pairs(&refs, &titles())).is_empty());
    }

    #[test]
    fn without_throughput_a_sweep_plots_time() {
        let rows: Vec<Row> = [("n=64", 1.0), ("n=128", 2.0)]
            .into_iter()
            .flat_map(|(knobs, median)| {
                ["torch", "mlx"].map(|f| knob_row(f, "switch", median, "r", (knobs, "")))
            })
            .collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let sweeps = sweeps(&case_pairs(&refs, &titles()));
        assert_eq!(sweeps.len(), 1);
        assert_eq!(sweeps[0].cases[0].measure, Measure::Time);
        assert_eq!(sweeps[0].cases[0].points[1].torch.unwrap().1, 2.0);
    }
}
