//! The benchmarks' `--set` knobs, as the suite sees them: each runner
//! declares its own (`bench-<name> --list-knobs`) and checks given ones
//! (`--check`), so the suite asks the runners instead of keeping a copy.
//! `--set bench.key=value` scopes a knob to one benchmark.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use bench_core::knobs::scoped;

use crate::bench::BenchArgs;
use xtask_suite::BenchCrate;

/// What a benchmark's runner said of the knobs it gets.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// The `--set` pairs for this benchmark (scoped ones without prefix).
    pub options: Vec<(String, String)>,
    /// Its time budget per case, in seconds: the progress bar's weight.
    pub time_budget_s: f64,
}

impl Default for Checked {
    fn default() -> Self {
        Self {
            options: Vec::new(),
            time_budget_s: 60.0,
        }
    }
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

/// Checks the run's `--set` knobs with every benchmark's runner before any
/// cell runs; the error is the runner's (the closest known key, the range).
pub fn check(
    runner_dir: &Path,
    benches: &[BenchCrate],
    args: &BenchArgs,
) -> Result<BTreeMap<String, Checked>> {
    let given = parse(&args.options)?;
    let names: Vec<&str> = benches.iter().map(|b| b.name.as_str()).collect();
    let mut checked = BTreeMap::new();
    for bench in benches {
        let options = scoped(&bench.name, &names, &given)?;
        let mut command = runner(runner_dir, bench);
        command.args(["--check", "--preset", &args.preset.to_string()]);
        if let Some(budget) = args.time_budget {
            command.args(["--time-budget", &budget.to_string()]);
        }
        for (key, value) in &options {
            command.args(["--set", &format!("{key}={value}")]);
        }
        let output = command
            .output()
            .with_context(|| format!("running {} --check", bench.package))?;
        if !output.status.success() {
            let said = String::from_utf8_lossy(&output.stderr);
            let said = said.trim().trim_start_matches("error: ");
            let hint = if benches.len() > 1 {
                "\n(a plain --set goes to every benchmark asked; --set <benchmark>.<key>=<value> to one)"
            } else {
                ""
            };
            bail!("{said}{hint}");
        }
        let time_budget_s = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .find_map(|pair| pair.strip_prefix("time_budget_s=")?.parse().ok())
            .unwrap_or(Checked::default().time_budget_s);
        checked.insert(
            bench.name.clone(),
            Checked {
                options,
                time_budget_s,
            },
        );
    }
    Ok(checked)
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
