//! `cargo xtask`: the suite's one entry point. See README.md.

mod bench;
mod cell_process;
mod interrupt;
mod knobs;
mod new_bench;
mod reference_runs;
mod runs;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use xtask_analysis::{compare, report};
use xtask_setup::{bundle, requirements, setup};

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
    /// Aggregate reports/raw/ into reports/RESULTS.md and reports/charts/ (and the README's results with --readme).
    Report {
        /// Also rewrite the results section of the tracked README.md.
        #[arg(long)]
        readme: bool,
    },
    /// Compare two runs (run ids or result files), cell by cell: medians, ratio with its interval, verdict.
    Compare(compare::CompareArgs),
    /// Create crates/bench-NAME: a working benchmark (twin trait, both twins, workload, parity test, Criterion harness) to fill in.
    NewBench(new_bench::NewBenchArgs),
    /// Set up if needed, run every test of the workspace, then check that a benchmark made by new-bench builds, passes its tests and runs.
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
        Commands::Report { readme } => report::generate(&root, readme)?,
        Commands::Compare(args) => return compare::run(&root, &args),
        Commands::NewBench(args) => new_bench::run(&root, &args)?,
        Commands::Test { cargo_args } => {
            setup::ensure(
                &root,
                setup::SetupOptions::building(requirements::Build::Tests),
            )?;
            let passed = cargo_test(&root, &cargo_args)?;
            // With a filter, only what was asked.
            if passed && cargo_args.is_empty() {
                new_bench::check_skeleton(&root)?;
            }
            return Ok(if passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            });
        }
    }
    Ok(ExitCode::SUCCESS)
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
