//! The benchmarks' `--set` knobs, as the suite sees them: each runner
//! declares its own (`bench-<name> --list-knobs`) and checks given ones
//! (`--check`), so the suite asks the runners instead of keeping a copy.
//! `--set bench.key=value` scopes a knob to one benchmark.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bench_core::knobs::scoped;
use bench_core::protocol::Message;
use bench_core::{DeviceKind, Framework, MeasureSettings, PresetChoice, Row};
use xtask_suite::BenchCrate;

/// What a benchmark's runner said of the cells it would run: the knobs it
/// gets, and each framework's start record and measure settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The `--set` pairs for this benchmark (scoped ones without prefix).
    pub options: Vec<(String, String)>,
    /// Each framework's start record: the failed row of a runner that dies
    /// before giving its own.
    pub starts: Vec<Row>,
    /// How its cells are measured: the progress bar weighs a cell by its
    /// time budget.
    pub measure: MeasureSettings,
}

impl Checked {
    /// The start record of `framework`'s cell, where the runner gave one.
    pub fn start(&self, framework: Framework) -> Option<&Row> {
        self.starts.iter().find(|row| row.framework == framework)
    }
}

/// What the suite asks of every runner before any cell.
pub struct Request<'a> {
    pub preset: PresetChoice,
    /// The measure options every cell gets (`--threads`, `--warmup`, ...):
    /// the plan records what the cells will.
    pub measure_flags: &'a [String],
    pub frameworks: &'a [Framework],
    /// Each device is planned apart: `--preset auto` picks per device.
    pub devices: &'a [DeviceKind],
    /// The `--set key=value` texts as given.
    pub options: &'a [String],
}

/// `cargo xtask bench --list-knobs`: every benchmark's knobs.
pub fn list(runner_dir: &Path, benches: &[BenchCrate]) -> Result<()> {
    for bench in benches {
        let output = runner(runner_dir, bench)
            .arg("--list-knobs")
            .output()
            .with_context(|| format!("running {} --list-knobs", bench.package))?;
        if !output.status.success() {
            bail!(
                "{} --list-knobs failed ({}): {}",
                bench.package,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        println!("{} (--set {}.key=value):", bench.name, bench.name);
        print!("{}", String::from_utf8_lossy(&output.stdout));
    }
    Ok(())
}

/// What each benchmark's runner said, per device.
pub type CheckedCells = BTreeMap<(String, DeviceKind), Checked>;

/// Checks the run's `--set` knobs with every benchmark's runner before any
/// cell runs (`--check`); the error is the runner's (the closest known
/// key, the range). Each runner answers with its plan messages, for each
/// device asked.
pub fn check(runner_dir: &Path, benches: &[BenchCrate], request: &Request) -> Result<CheckedCells> {
    let given = parse(request.options)?;
    let names: Vec<&str> = benches.iter().map(|b| b.name.as_str()).collect();
    let mut checked = BTreeMap::new();
    for bench in benches {
        let options = scoped(&bench.name, &names, &given)?;
        for &device in request.devices {
            let plan = plan_of(runner_dir, bench, request, device, &options, benches.len())?;
            checked.insert((bench.name.clone(), device), plan);
        }
    }
    Ok(checked)
}

/// One runner's `--check` for one device.
fn plan_of(
    runner_dir: &Path,
    bench: &BenchCrate,
    request: &Request,
    device: DeviceKind,
    options: &[(String, String)],
    benchmarks: usize,
) -> Result<Checked> {
    let mut command = runner(runner_dir, bench);
    command.args(["--check", "--preset", &request.preset.to_string()]);
    command.args(["--device", &device.to_string()]);
    if !request.frameworks.is_empty() {
        command.arg("--framework");
        command.args(request.frameworks.iter().map(ToString::to_string));
    }
    command.args(request.measure_flags);
    for (key, value) in options {
        command.args(["--set", &format!("{key}={value}")]);
    }
    let output = command
        .output()
        .with_context(|| format!("running {} --check", bench.package))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        let said = said.trim().trim_start_matches("error: ");
        let hint = if benchmarks > 1 {
            "\n(a plain --set goes to every benchmark asked; --set <benchmark>.<key>=<value> to one)"
        } else {
            ""
        };
        bail!("{said}{hint}");
    }
    let (starts, measure) = plans(&String::from_utf8_lossy(&output.stdout))
        .with_context(|| format!("{} --check", bench.package))?;
    Ok(Checked {
        options: options.to_vec(),
        starts,
        measure,
    })
}

/// The plan messages of a runner's `--check` output.
fn plans(stdout: &str) -> Result<(Vec<Row>, MeasureSettings)> {
    let mut starts = Vec::new();
    let mut measure = None;
    for message in stdout.lines().filter_map(Message::parse) {
        if let Message::Plan { start, measure: m } = message? {
            starts.push(start);
            measure = Some(m);
        }
    }
    let measure = measure.context("the runner gave no plan")?;
    Ok((starts, measure))
}

fn runner(runner_dir: &Path, bench: &BenchCrate) -> Command {
    Command::new(runner_dir.join(&bench.package))
}

/// The `--set key=value` texts as pairs.
pub fn parse(options: &[String]) -> Result<Vec<(String, String)>> {
    options
        .iter()
        .map(|text| bench_core::cell::parse_option(text).map_err(|e| anyhow::anyhow!("--set {e}")))
        .collect()
}
