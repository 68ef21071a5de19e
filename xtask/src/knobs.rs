//! The benchmarks' `--set` knobs, as the suite sees them: each runner
//! declares its own (`bench-<name> --list-knobs`) and checks given ones
//! (`--check`), so the suite asks the runners instead of keeping a copy.
//! `--set bench.key=value` scopes a knob to one benchmark. A list or range
//! of values (`--set batch_size=1,8,32`, `bench_core::sweep`) is expanded
//! and checked by the runner, which plans one cell per combination; a
//! `--threads` list is one `--check` per thread count.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bench_core::knobs::scoped;
use bench_core::protocol::Message;
use bench_core::{DeviceKind, Framework, MeasureSettings, PresetChoice, Row};
use xtask_suite::BenchCrate;

/// What a benchmark's runner said of one configuration it would run (one
/// combination of its knobs' values, at one thread count): its knobs, and
/// each framework's start record and measure settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The `--set` pairs of this configuration, one value each (scoped
    /// ones without prefix).
    pub options: Vec<(String, String)>,
    /// `--threads` for its cells, where given.
    pub threads: Option<usize>,
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
    /// The measure options every cell gets (`--warmup`, ...): the plan
    /// records what the cells will.
    pub measure_flags: &'a [String],
    /// The thread counts, each its own configuration (none: the runner's default).
    pub threads: &'a [usize],
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

/// What each benchmark's runner said, per device: its configurations,
/// thread count by thread count, each in the order of its knobs' product.
pub type CheckedCells = BTreeMap<(String, DeviceKind), Vec<Checked>>;

/// Checks the run's `--set` knobs with every benchmark's runner before any
/// cell runs (`--check`); the error is the runner's (the closest known
/// key, the range, the bad element of a list). Each runner answers with
/// its plan messages, for each device and thread count asked.
pub fn check(runner_dir: &Path, benches: &[BenchCrate], request: &Request) -> Result<CheckedCells> {
    let given = parse(request.options)?;
    let names: Vec<&str> = benches.iter().map(|b| b.name.as_str()).collect();
    let threads: Vec<Option<usize>> = if request.threads.is_empty() {
        vec![None]
    } else {
        request.threads.iter().copied().map(Some).collect()
    };
    let mut checked = BTreeMap::new();
    for bench in benches {
        let options = scoped(&bench.name, &names, &given)?;
        for &device in request.devices {
            let mut configurations = Vec::new();
            for &threads in &threads {
                let asked = Asked {
                    device,
                    threads,
                    options: &options,
                };
                configurations.extend(plan_of(runner_dir, bench, request, &asked, benches.len())?);
            }
            checked.insert((bench.name.clone(), device), configurations);
        }
    }
    Ok(checked)
}

/// What one `--check` asks a runner.
struct Asked<'a> {
    device: DeviceKind,
    threads: Option<usize>,
    /// The benchmark's `--set` pairs, lists as given.
    options: &'a [(String, String)],
}

/// One runner's `--check` for one device and thread count: its
/// configurations, one per combination of its knobs' values.
fn plan_of(
    runner_dir: &Path,
    bench: &BenchCrate,
    request: &Request,
    asked: &Asked,
    benchmarks: usize,
) -> Result<Vec<Checked>> {
    let mut command = runner(runner_dir, bench);
    command.args(["--check", "--preset", &request.preset.to_string()]);
    command.args(["--device", &asked.device.to_string()]);
    if !request.frameworks.is_empty() {
        command.arg("--framework");
        command.args(request.frameworks.iter().map(ToString::to_string));
    }
    command.args(request.measure_flags);
    if let Some(threads) = asked.threads {
        command.args(["--threads", &threads.to_string()]);
    }
    let options = asked.options;
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
    plans(
        &String::from_utf8_lossy(&output.stdout),
        options,
        asked.threads,
    )
    .with_context(|| format!("{} --check", bench.package))
}

/// The plan messages of a runner's `--check` output, one configuration per
/// combination of knob values, in the order given. A runner of before knob
/// lists names none: its configuration has the pairs as `given`.
fn plans(stdout: &str, given: &[(String, String)], threads: Option<usize>) -> Result<Vec<Checked>> {
    let mut configurations: Vec<Checked> = Vec::new();
    for message in stdout.lines().filter_map(Message::parse) {
        let Message::Plan {
            start,
            measure,
            options,
        } = message?
        else {
            continue;
        };
        let options = options.unwrap_or_else(|| given.to_vec());
        match configurations.iter_mut().find(|c| c.options == options) {
            Some(configuration) => configuration.starts.push(start),
            None => configurations.push(Checked {
                options,
                threads,
                starts: vec![start],
                measure,
            }),
        }
    }
    anyhow::ensure!(!configurations.is_empty(), "the runner gave no plan");
    Ok(configurations)
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

#[cfg(test)]
mod tests {
    use super::*;
    use bench_core::env::Environment;
    use bench_core::Cell;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A `--check` line of one framework's plan at these knob values.
    fn plan_line(framework: Framework, options: Option<&[(&str, &str)]>) -> String {
        let cell = Cell {
            framework,
            ..Cell::for_checks()
        };
        let start = Row::start("r", "bert", &cell, "1", &Environment::default());
        let message = Message::Plan {
            start,
            measure: MeasureSettings::default(),
            options: options.map(pairs),
        };
        format!(
            "{}{}",
            bench_core::protocol::PREFIX,
            serde_json::to_string(&message).unwrap()
        )
    }

    #[test]
    fn a_runners_plans_make_one_configuration_per_combination_in_its_order() {
        let small: &[(&str, &str)] = &[("batch_size", "1")];
        let large: &[(&str, &str)] = &[("batch_size", "4")];
        let stdout = [
            plan_line(Framework::Torch, Some(small)),
            plan_line(Framework::Mlx, Some(small)),
            "a line that is not a message".to_owned(),
            plan_line(Framework::Torch, Some(large)),
            plan_line(Framework::Mlx, Some(large)),
        ]
        .join("\n");
        let given = pairs(&[("batch_size", "1,4")]);
        let configurations = plans(&stdout, &given, Some(2)).unwrap();
        let options: Vec<_> = configurations.iter().map(|c| c.options.clone()).collect();
        assert_eq!(options, [pairs(small), pairs(large)]);
        assert!(configurations
            .iter()
            .all(|c| c.starts.len() == 2 && c.threads == Some(2)));
        // A runner that names no values: its one configuration has the given pairs.
        let old = plan_line(Framework::Torch, None);
        let given = pairs(&[("batch_size", "8")]);
        let configurations = plans(&old, &given, None).unwrap();
        assert_eq!(configurations.len(), 1);
        assert_eq!(configurations[0].options, given);
        assert!(plans("no plan here", &given, None).is_err());
    }
}
