//! A run's report as text for pasting into an issue: Markdown, CSV (one
//! line per row, with its pair's speed-up and its environment) and JSON
//! (the whole record).

use std::fmt::Write as _;

use anyhow::{Context, Result};
use serde::Serialize;

use super::record::{Machine, Measurement, RunReport, Speedup};
use crate::cells::{knob_label, preset_label};
use crate::results::significant;

/// The environment of a machine, in one line.
pub fn environment_line(machine: &Machine) -> String {
    let env = &machine.environment;
    let versions: Vec<String> = machine
        .framework_versions
        .iter()
        .map(|(framework, version)| format!("{framework} {version}"))
        .collect();
    let or_dash = |text: &str| {
        if text.is_empty() {
            "-".to_owned()
        } else {
            text.to_owned()
        }
    };
    let versions = if versions.is_empty() {
        "-".to_owned()
    } else {
        versions.join(", ")
    };
    format!(
        "OS {}; CPU {} ({} cores); RAM {:.0} GiB; GPU {} (driver {}); MLX {}; libtorch {}; frameworks: {versions}; OpenBLAS core {}; suite {} at commit {}; measured {} to {}",
        env.os,
        env.cpu,
        env.cpu_cores,
        env.ram_gib,
        or_dash(&env.gpu),
        or_dash(&env.gpu_driver),
        env.mlx_version,
        env.libtorch_version,
        or_dash(&env.openblas_core),
        env.suite_version,
        env.git_commit,
        machine.from,
        machine.to,
    )
}

/// Where the numbers are explained, under every export's table.
pub const LEGEND: &str = "Times are medians of the timed repetitions in seconds, IQR the interquartile range as a share of the median. MLX speed-up = PyTorch median / MLX median (above 1: MLX is faster); in brackets its 95% interval, bootstrapped pass by pass from both twins' repetitions (`repetitions only`: one pass, which cannot show the drift between passes); where the interval holds 1 or the passes lie on both sides of 1, the run does not tell which framework is faster: `no clear winner`. Noisy: IQR above 10% of the median.";

/// "- | text |" cell text: no pipe or line break of its own.
fn cell(text: &str) -> String {
    text.replace('|', "/").replace(['\n', '\r'], " ")
}

/// The Markdown report.
pub fn markdown(report: &RunReport) -> String {
    let mut out = format!(
        "# mlx-vs-torch: run {}\n\n## Machine and environment\n\n",
        report.run
    );
    for machine in &report.machines {
        let _ = writeln!(
            out,
            "- {}: {}",
            machine.devices.join(", "),
            cell(&environment_line(machine))
        );
    }
    out.push_str("\n## MLX speed-up\n\n");
    out.push_str("| Device | Benchmark | Case | Preset and knobs | Precision | Mode (ran: PyTorch; MLX) | PyTorch time (s) | MLX time (s) | MLX speed-up [95% CI] | Noise |\n|---|---|---|---|---|---|---|---|---|---|\n");
    for s in &report.speedups {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} ({}; {}) | {} | {} | {} | {} |",
            cell(&s.device),
            cell(&s.title),
            cell(&s.case),
            cell(&s.label()),
            s.precision,
            s.mode,
            cell(&ran(s.torch.as_ref())),
            cell(&ran(s.mlx.as_ref())),
            time(s.torch.as_ref()),
            time(s.mlx.as_ref()),
            s.text,
            s.noise,
        );
    }
    if report.speedups.is_empty() {
        out.push_str("| - | no twin pairs in this run | | | | | | | | |\n");
    }
    let _ = writeln!(out, "\n{LEGEND}");
    out.push_str("\n## Every row\n\n| Device | Benchmark | Case | Framework | Precision | Preset and knobs | Mode | Median (s) | IQR (s) | n | Throughput | Status |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for m in &report.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&m.device),
            m.benchmark,
            cell(&m.case),
            m.framework,
            m.precision,
            cell(&preset_label(&m.preset, &m.knobs)),
            m.mode,
            figure(m.median_s),
            figure(m.iqr_s),
            m.repetitions.map_or("-".into(), |n| n.to_string()),
            throughput(m),
            cell(&status(m)),
        );
    }
    out.push_str("\n## Every setting\n\n");
    for m in &report.rows {
        let _ = writeln!(
            out,
            "- {}: `{}`",
            cell(&row_name(m)),
            m.settings.encode().replace('`', "'")
        );
    }
    let _ = writeln!(
        out,
        "\nCharts: in the HTML report (`cargo xtask report --run {} --html FILE`).",
        report.run
    );
    out
}

/// "bert step torch, CPU: EPYC (2 cores), f32, quick, batch_size=4, best
/// (run r1)".
pub fn row_name(m: &Measurement) -> String {
    format!(
        "{} {} {}, {}, {}, {}, {} (run {})",
        m.benchmark,
        m.case,
        m.framework,
        m.device,
        m.precision,
        preset_label(&m.preset, &m.knobs),
        m.mode,
        m.run_id
    )
}

pub fn ran(figures: Option<&super::record::Figures>) -> String {
    figures.map_or("-".into(), |f| f.ran.clone())
}

pub fn time(figures: Option<&super::record::Figures>) -> String {
    figures.map_or("-".into(), |f| f.text.clone())
}

pub fn figure(value: Option<f64>) -> String {
    value.map_or("-".into(), significant)
}

pub fn throughput(m: &Measurement) -> String {
    m.throughput.map_or("-".into(), |t| {
        format!("{} {}", significant(t), m.throughput_unit)
    })
}

/// "ok", or "failed: why".
pub fn status(m: &Measurement) -> String {
    if m.reason.is_empty() {
        m.status.clone()
    } else {
        format!("{}: {}", m.status, m.reason)
    }
}

/// One CSV line: a row with its pair's speed-up and its environment.
#[derive(Serialize)]
struct CsvLine<'a> {
    run_id: &'a str,
    device: &'a str,
    benchmark: &'a str,
    case: &'a str,
    framework: &'a str,
    precision: &'a str,
    preset: &'a str,
    knobs: String,
    mode: &'a str,
    status: &'a str,
    reason: &'a str,
    median_s: Option<f64>,
    iqr_s: Option<f64>,
    min_s: Option<f64>,
    max_s: Option<f64>,
    repetitions: Option<usize>,
    throughput: Option<f64>,
    throughput_unit: &'a str,
    peak_memory_bytes: Option<u64>,
    peak_rss_bytes: Option<u64>,
    mlx_speedup: Option<f64>,
    mlx_speedup_low: Option<f64>,
    mlx_speedup_high: Option<f64>,
    noise: &'a str,
    framework_version: &'a str,
    environment: String,
    commit: &'a str,
    settings: String,
}

/// The CSV report.
pub fn csv(report: &RunReport) -> Result<String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    for m in &report.rows {
        let pair = report.speedups.iter().find(|s| of_pair(s, m));
        let machine = report
            .machines
            .iter()
            .find(|x| x.devices.contains(&m.device) && x.environment.git_commit == m.commit);
        writer.serialize(CsvLine {
            run_id: &m.run_id,
            device: &m.device,
            benchmark: &m.benchmark,
            case: &m.case,
            framework: &m.framework,
            precision: &m.precision,
            preset: &m.preset,
            knobs: knob_label(&m.knobs),
            mode: &m.mode,
            status: &m.status,
            reason: &m.reason,
            median_s: m.median_s,
            iqr_s: m.iqr_s,
            min_s: m.min_s,
            max_s: m.max_s,
            repetitions: m.repetitions,
            throughput: m.throughput,
            throughput_unit: &m.throughput_unit,
            peak_memory_bytes: m.peak_memory_bytes,
            peak_rss_bytes: m.peak_rss_bytes,
            mlx_speedup: pair.and_then(|s| s.speedup),
            mlx_speedup_low: pair.and_then(|s| s.interval_low),
            mlx_speedup_high: pair.and_then(|s| s.interval_high),
            noise: pair.map_or("", |s| s.noise.as_str()),
            framework_version: &m.framework_version,
            environment: machine.map_or(String::new(), environment_line),
            commit: &m.commit,
            settings: m.settings.encode(),
        })?;
    }
    let bytes = writer.into_inner().context("writing the CSV report")?;
    String::from_utf8(bytes).context("the CSV report is not UTF-8")
}

/// Whether row `m` is one of the twins of pair `s`: its cell and knobs.
fn of_pair(s: &Speedup, m: &Measurement) -> bool {
    let twin = match m.framework.as_str() {
        "torch" => s.torch.as_ref(),
        "mlx" => s.mlx.as_ref(),
        _ => None,
    };
    twin.is_some()
        && s.device == m.device
        && s.benchmark == m.benchmark
        && s.case == m.case
        && s.precision == m.precision
        && s.preset == m.preset
        && s.mode == m.mode
        && s.knobs == m.knobs
}

/// The JSON report: the whole record, charts left out.
pub fn json(report: &RunReport) -> Result<String> {
    serde_json::to_string_pretty(report).context("writing the JSON report")
}
