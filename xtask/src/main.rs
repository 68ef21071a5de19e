//! `cargo xtask`: the suite's one entry point. See README.md.

mod bench;
mod ceilings;
mod cell_process;
mod interrupt;
mod knobs;
mod new_bench;
mod reference_runs;
mod runs;
mod summary;
mod threads;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xtask_analysis::{compare, report, selftest};
use xtask_setup::{bundle, macos_check, requirements, setup};

#[derive(Parser)]
#[command(about = "mlx-vs-torch: set-up, benchmarks, tests and reports")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Check the machine, then install what the build needs (Debian packages, MLX, libtorch, assets) into .cache/.
    Setup {
        /// The full CUDA libtorch instead of the slim CPU one; later commands keep it.
        #[arg(long)]
        cuda: bool,
        /// Go back to the slim CPU libtorch after a --cuda set-up.
        #[arg(long, conflicts_with = "cuda")]
        cpu: bool,
    },
    /// Set up if needed, run the suite, append CSV and JSONL to reports/raw/, regenerate reports/RESULTS.md.
    Bench(Box<bench::BenchArgs>),
    /// Pack runners, assets and MLX's CUDA runtime for a machine without Rust or network.
    Bundle(bundle::BundleArgs),
    /// Aggregate reports/raw/ into reports/RESULTS.md and reports/charts/ (and the README's results with --readme); with --run, one run's report to share (--html FILE, --format md|csv|json).
    Report(report::ReportArgs),
    /// Compare two runs (run ids or result files), cell by cell: medians, ratio with its interval, verdict; or, with --devices, each device's MLX speed-up side by side.
    Compare(compare::CompareArgs),
    /// The GPU capture self-test's verdict (bundle/selftest.sh): eager and best mode's losses and tokens, row by row.
    SelftestCheck(selftest::SelftestArgs),
    /// Create crates/bench-NAME: a working benchmark (twin trait, both twins, workload, parity test, Criterion harness) to fill in.
    NewBench(new_bench::NewBenchArgs),
    /// Type-check the whole workspace, every target, for macOS on Apple silicon (no native library is built or linked).
    CheckMacos,
    /// Set up if needed, run every test of the workspace, check that a benchmark made by new-bench builds, passes its tests and runs, then run check-macos.
    Test {
        /// Passed to `cargo test` after `--`, e.g. a test name filter.
        #[arg(last = true)]
        cargo_args: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let root = workspace_root();
    match cli.command {
        Commands::Setup { cuda, cpu } => {
            let started = std::time::Instant::now();
            // Neither flag: keep the libtorch that is installed.
            let cuda = (cuda || cpu).then_some(cuda);
            setup::ensure(
                &root,
                setup::SetupOptions {
                    cuda,
                    ..Default::default()
                },
            )?;
            setup::verify(&root)?;
            eprintln!(
                "set-up complete in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Commands::Bench(args) => return bench::run(&root, &args),
        Commands::Bundle(args) => bundle::run(&root, &args)?,
        Commands::Report(args) => report::run(&root, &args)?,
        Commands::Compare(args) => return compare::run(&root, &args),
        Commands::SelftestCheck(args) => return selftest::run(&args),
        Commands::NewBench(args) => new_bench::run(&root, &args)?,
        Commands::CheckMacos => return Ok(exit_code(check_macos(&root)?)),
        Commands::Test { cargo_args } => {
            setup::ensure(
                &root,
                setup::SetupOptions::building(requirements::Build::Tests),
            )?;
            let mut passed = cargo_test(&root, &cargo_args)?;
            // With a filter, only what was asked.
            if passed && cargo_args.is_empty() {
                new_bench::check_skeleton(&root)?;
                passed = check_macos(&root)?;
            }
            return Ok(exit_code(passed));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn exit_code(passed: bool) -> ExitCode {
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `cargo check` of the workspace for macOS (see xtask-setup's
/// `macos_check`): quiet, one line per error, and at the end the crates
/// that failed. Whether it passed.
fn check_macos(root: &Path) -> Result<bool> {
    let started = Instant::now();
    let vars = macos_check::ensure(root)?;
    eprintln!(
        "check-macos: type-checking the workspace for {}",
        macos_check::TARGET
    );
    let mut child = Command::new(env!("CARGO"))
        .current_dir(root)
        .envs(vars)
        .args(["check", "--quiet", "--message-format=short"])
        .args(macos_check::CHECK_ARGS)
        .stderr(Stdio::piped())
        .spawn()
        .context("running cargo check")?;
    let (mut failed, mut warnings) = (Vec::new(), Vec::new());
    let stderr = child.stderr.take().expect("stderr is piped");
    for line in BufReader::new(stderr).lines() {
        let line = line.context("reading cargo check's output")?;
        eprintln!("{line}");
        failed.extend(failed_crate(&line));
        warnings.extend(warned_at(&line));
    }
    let status = child.wait().context("waiting for cargo check")?;
    let seconds = started.elapsed().as_secs_f64();
    let problem = if !status.success() {
        let which = if failed.is_empty() {
            format!("cargo check exited with {status}")
        } else {
            failed.join(", ")
        };
        format!("failed: {which}")
    } else if !warnings.is_empty() {
        // Clippy denies warnings on the host; code only macOS compiles
        // gets the same rule here.
        format!(
            "passed with {} warning(s), which the suite does not allow: {}",
            warnings.len(),
            warnings.join(", ")
        )
    } else {
        eprintln!("check-macos: passed in {seconds:.0} s");
        return Ok(true);
    };
    eprintln!(
        "error: the macOS type-check ({}) {problem} ({seconds:.0} s)",
        macos_check::TARGET
    );
    Ok(false)
}

/// Where a compiler warning in `--message-format=short` points
/// (`path:line:column: warning: ...`); None for other lines.
fn warned_at(line: &str) -> Option<String> {
    let (place, _) = line.split_once(": warning")?;
    (!place.is_empty() && !place.contains(' ') && place.contains(':')).then(|| place.to_owned())
}

/// The crate (and what of it) that a cargo failure line names.
fn failed_crate(line: &str) -> Option<String> {
    let named = |prefix: &str| {
        let rest = line.strip_prefix(prefix)?;
        let (name, after) = rest.split_once('`')?;
        Some((name.to_owned(), after))
    };
    if let Some((name, after)) = named("error: could not compile `") {
        let what = after.trim().split(" due to").next().unwrap_or_default();
        return Some(format!("{name} {what}").trim().to_owned());
    }
    let (name, _) = named("error: failed to run custom build command for `")?;
    let name = name.split(" (").next().unwrap_or(&name).to_owned();
    Some(format!("{name} (build script)"))
}

/// Whether every test passed.
fn cargo_test(root: &Path, extra: &[String]) -> Result<bool> {
    let status = Command::new(env!("CARGO"))
        .current_dir(root)
        // Tests that run MLX in their own process get the runners' BLAS core.
        .envs(bench_core::openblas::setting_for_children())
        .args(["test", "--workspace"])
        .args(extra)
        .status()
        .context("running cargo test")?;
    Ok(status.success())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn a_failed_check_names_the_crate() {
        assert_eq!(
            failed_crate("error: could not compile `fw-torch` (lib) due to 2 previous errors"),
            Some("fw-torch (lib)".to_owned())
        );
        assert_eq!(
            failed_crate("error: could not compile `xtask` (bin \"xtask\" test)"),
            Some("xtask (bin \"xtask\" test)".to_owned())
        );
        assert_eq!(
            failed_crate(
                "error: failed to run custom build command for `mlx-sys v0.7.0 (/r/third_party/mlx-sys)`"
            ),
            Some("mlx-sys v0.7.0 (build script)".to_owned())
        );
        assert_eq!(failed_crate("warning: unused import"), None);
    }

    #[test]
    fn a_warning_is_named_by_its_place() {
        assert_eq!(
            warned_at("crates/fw-mlx/tests/runtime.rs:5:14: warning: unused import: `blas`"),
            Some("crates/fw-mlx/tests/runtime.rs:5:14".to_owned())
        );
        assert_eq!(warned_at("warning: unused manifest key: x"), None);
        assert_eq!(warned_at("warning: fw-torch@0.1.0: shim not built"), None);
    }

    /// Every command and option says what it does in `--help`.
    #[test]
    fn every_command_and_option_has_help() {
        let cli = Cli::command();
        for command in cli.get_subcommands() {
            assert!(
                command.get_about().is_some(),
                "{} has no help",
                command.get_name()
            );
            for arg in command.get_arguments() {
                assert!(
                    arg.get_help().is_some(),
                    "{} --{} has no help text",
                    command.get_name(),
                    arg.get_id()
                );
            }
        }
    }
}
