//! What a run's shareable report holds, built once from the run's rows:
//! every export (HTML, Markdown, CSV, JSON) prints this record.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Result;
use bench_core::env::Environment;
use bench_core::settings::Pairs;
use bench_core::{Row, Status};
use serde::Serialize;

use crate::cells::{self, preset_label, CasePair, Knobs};
use crate::results::{machine, ran};
use crate::scaling_chart;
use crate::twins::{speedup_text, time_cell, Titles};
use crate::uncertainty::relative_iqr;
use crate::{charts, references, scaling};

/// One run, for sharing.
#[derive(Debug, Serialize)]
pub struct RunReport {
    /// The run id(s) of the rows.
    pub run: String,
    /// Where the rows were measured, one entry per environment.
    pub machines: Vec<Machine>,
    /// Each case's MLX speed-up, per device and configuration.
    pub speedups: Vec<Speedup>,
    /// Every row of the run, with every setting.
    pub rows: Vec<Measurement>,
    /// Inline SVG charts (HTML only).
    #[serde(skip)]
    pub charts: Vec<Chart>,
}

/// One environment the run's rows share.
#[derive(Debug, Serialize)]
pub struct Machine {
    /// The devices measured there, as the tables name them.
    pub devices: Vec<String>,
    /// Each framework's version there ("torch" -> "2.11.0+cpu").
    pub framework_versions: BTreeMap<String, String>,
    /// First and last row's time stamps.
    pub from: String,
    pub to: String,
    /// The measuring process's id left out: it differs by cell.
    pub environment: Environment,
}

/// One case's pair: both twins' figures and the MLX speed-up.
#[derive(Debug, Serialize)]
pub struct Speedup {
    pub device: String,
    pub benchmark: String,
    pub title: String,
    pub case: String,
    pub preset: String,
    /// The knob values that differ from the preset's defaults.
    pub knobs: Knobs,
    pub precision: String,
    pub mode: String,
    pub torch: Option<Figures>,
    pub mlx: Option<Figures>,
    /// PyTorch median / MLX median: above 1, MLX is faster.
    pub speedup: Option<f64>,
    /// Its 95% bootstrap interval, where both twins recorded repetitions.
    pub interval_low: Option<f64>,
    pub interval_high: Option<f64>,
    /// The passes the interval resampled (1: repetitions of one pass only).
    pub interval_passes: Option<usize>,
    /// Each pass's speed-up where the run measured the cell several times.
    pub passes: Vec<f64>,
    /// Whether the run leaves open which framework is faster.
    pub no_clear_winner: bool,
    /// As the results tables print it: "1.21x [1.18-1.25, repetitions only]".
    pub text: String,
    /// "noisy (MLX IQR 13%)", or empty.
    pub noise: String,
}

impl Speedup {
    /// "quick, batch_size=4".
    pub fn label(&self) -> String {
        preset_label(&self.preset, &self.knobs)
    }
}

/// One twin's figures in a pair.
#[derive(Debug, Serialize)]
pub struct Figures {
    pub median_s: f64,
    /// Interquartile range over the median.
    pub iqr_fraction: Option<f64>,
    pub repetitions: Option<usize>,
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    /// What ran (`execution=`).
    pub ran: String,
    /// "0.2112 (IQR 0.1%)".
    pub text: String,
}

/// One row of the run.
#[derive(Debug, Serialize)]
pub struct Measurement {
    pub device: String,
    pub benchmark: String,
    pub case: String,
    /// "torch", "mlx", or a Python reference's "torch-python", ...
    pub framework: String,
    pub precision: String,
    pub preset: String,
    /// The knob values that differ from the preset's defaults.
    pub knobs: Knobs,
    pub mode: String,
    pub status: String,
    pub reason: String,
    pub median_s: Option<f64>,
    pub iqr_s: Option<f64>,
    pub min_s: Option<f64>,
    pub max_s: Option<f64>,
    pub repetitions: Option<usize>,
    pub throughput: Option<f64>,
    pub throughput_unit: String,
    pub peak_memory_bytes: Option<u64>,
    pub peak_rss_bytes: Option<u64>,
    pub framework_version: String,
    pub commit: String,
    pub run_id: String,
    /// Every setting, in the order the row recorded them.
    pub settings: Pairs,
}

/// One inline chart.
#[derive(Debug)]
pub struct Chart {
    pub caption: String,
    pub svg: String,
}

impl RunReport {
    /// The report of `rows` (one run's); an error where there are none.
    pub fn of(rows: &[Row], titles: &Titles) -> Result<Self> {
        anyhow::ensure!(!rows.is_empty(), "the run has no rows");
        let runs: BTreeSet<&str> = rows.iter().map(|r| r.run_id.as_str()).collect();
        let refs: Vec<&Row> = rows.iter().collect();
        let pairs = cells::case_pairs(&refs, titles);
        Ok(Self {
            run: runs.into_iter().collect::<Vec<_>>().join(", "),
            machines: machines(rows),
            speedups: pairs.iter().map(|cp| speedup(cp, titles)).collect(),
            rows: rows
                .iter()
                .map(|row| measurement(row, cells::knob_values(row)))
                .collect(),
            charts: charts(rows, &pairs, titles)?,
        })
    }
}

fn machines(rows: &[Row]) -> Vec<Machine> {
    let mut out: Vec<Machine> = Vec::new();
    for row in rows {
        let mut environment = row.environment.clone();
        environment.pid = None;
        let index = match out.iter().position(|m| m.environment == environment) {
            Some(index) => index,
            None => {
                out.push(Machine {
                    devices: Vec::new(),
                    framework_versions: BTreeMap::new(),
                    from: row.timestamp.clone(),
                    to: row.timestamp.clone(),
                    environment,
                });
                out.len() - 1
            }
        };
        let entry = &mut out[index];
        let device = machine(row);
        if !entry.devices.contains(&device) {
            entry.devices.push(device);
        }
        if !row.framework_version.is_empty() {
            entry
                .framework_versions
                .insert(row.framework_label(), row.framework_version.clone());
        }
        entry.from = entry.from.clone().min(row.timestamp.clone());
        entry.to = entry.to.clone().max(row.timestamp.clone());
    }
    out
}

fn speedup(cp: &CasePair, titles: &Titles) -> Speedup {
    let pair = &cp.pair;
    let interval = pair.interval();
    Speedup {
        device: pair.machine.clone(),
        benchmark: pair.benchmark.clone(),
        title: titles
            .get(&pair.benchmark)
            .map_or(pair.benchmark.clone(), |t| t.0.clone()),
        case: cp.case.clone(),
        preset: cp.preset.clone(),
        knobs: cp.knobs.clone(),
        precision: pair.precision.clone(),
        mode: pair.mode.to_string(),
        torch: pair.torch.as_deref().and_then(figures),
        mlx: pair.mlx.as_deref().and_then(figures),
        speedup: pair.speedup(),
        interval_low: interval.map(|i| i.low),
        interval_high: interval.map(|i| i.high),
        interval_passes: interval.map(|i| i.passes),
        passes: pair.passes.clone(),
        no_clear_winner: pair.undecided(),
        text: speedup_text(pair),
        noise: pair.noise(),
    }
}

fn figures(row: &Row) -> Option<Figures> {
    Some(Figures {
        median_s: row.median_s()?,
        iqr_fraction: relative_iqr(row),
        repetitions: row.summary.as_ref().map(|s| s.n),
        throughput: row.throughput,
        throughput_unit: row.throughput_unit.clone(),
        ran: ran(row).to_owned(),
        text: time_cell(Some(row)),
    })
}

fn measurement(row: &Row, knobs: Knobs) -> Measurement {
    let summary = row.summary.as_ref();
    Measurement {
        device: machine(row),
        benchmark: row.benchmark.clone(),
        case: row.case.clone(),
        framework: row.framework_label(),
        precision: row.precision.to_string(),
        preset: row.preset.to_string(),
        knobs,
        mode: row.execution.to_string(),
        status: match row.status {
            Status::Ok => "ok",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
        }
        .to_owned(),
        reason: row.reason.clone(),
        median_s: summary.map(|s| s.median),
        iqr_s: summary.map(|s| s.iqr),
        min_s: summary.map(|s| s.min),
        max_s: summary.map(|s| s.max),
        repetitions: summary.map(|s| s.n),
        throughput: row.throughput,
        throughput_unit: row.throughput_unit.clone(),
        peak_memory_bytes: row.peak_memory_bytes,
        peak_rss_bytes: row.peak_rss_bytes,
        framework_version: row.framework_version.clone(),
        commit: row.environment.git_commit.clone(),
        run_id: row.run_id.clone(),
        settings: row.settings.clone(),
    }
}

/// Each benchmark's chart of its headline case (a column per cell, labelled
/// with its knobs), then the scaling chart of each swept knob.
fn charts(rows: &[Row], pairs: &[CasePair], titles: &Titles) -> Result<Vec<Chart>> {
    let headline: Vec<_> = pairs
        .iter()
        .filter(|cp| titles.get(&cp.pair.benchmark).map(|t| &t.1) == Some(&cp.case))
        .map(|cp| cp.pair.clone())
        .collect();
    let mut out: Vec<Chart> = charts::svgs(&headline, &references::comparisons(rows), titles)?
        .into_iter()
        .map(|(benchmark, svg)| Chart {
            caption: titles
                .get(&benchmark)
                .map_or(benchmark.clone(), |t| t.0.clone()),
            svg,
        })
        .collect();
    for sweep in scaling::sweeps(pairs) {
        out.push(Chart {
            caption: scaling_chart::caption(&sweep, titles),
            svg: scaling_chart::svg(&sweep, titles)?,
        });
    }
    Ok(out)
}
