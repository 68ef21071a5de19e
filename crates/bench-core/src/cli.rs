//! The command line shared by every benchmark's runner binary.
//!
//! A runner measures one benchmark for the frameworks asked, on one device
//! and precision, and appends a row per measured case as soon as it has
//! it. A cell that fails becomes a failed row with its reason; the runner
//! goes on with the next cell and exits with [`EXIT_FAILURES_RECORDED`].
//!
//! Whoever starts it, a runner measures alike: each framework in a process
//! of its own, with OpenBLAS's core set ([`crate::process`]).

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cell::Cell;
use crate::dims::{DeviceKind, Execution, Framework, Precision, Preset, PresetChoice};
use crate::env::{self, Environment};
use crate::error::{out_of_memory_reason, size_settings, unavailable_reason};
use crate::knobs::{self, Knob};
use crate::measure::{CaseResult, MeasureSettings};
use crate::memory;
use crate::presets;
use crate::process;
use crate::protocol::{Message, EXIT_FAILURES_RECORDED};
use crate::record::RowWriter;
use crate::row::{Row, Status};
use crate::settings::Pairs;
use crate::sweep;

/// What the runner needs of a benchmark: its name, knobs, measure
/// settings, and one cell run. Benchmark crates do not implement it
/// themselves: they implement `bench_twin::TwinBenchmark`, and
/// `bench_twin::Runner` turns that into this (bench-core knows no
/// framework, so the MLX/PyTorch dispatch lives there).
pub trait Benchmark {
    /// The name used on the command line and in reports, e.g. "transfer".
    fn name(&self) -> &'static str;

    /// Its `--set` knobs: the only keys its cells read.
    fn knobs(&self) -> &'static [Knob];

    /// Accelerator memory a preset's work needs, roughly (GiB): what
    /// `--preset auto` weighs against the device's. A benchmark that does
    /// not say needs more than any device has: `auto` runs it quick.
    fn needs_gib(&self, preset: Preset) -> f64 {
        let _ = preset;
        f64::INFINITY
    }

    /// Warm-up, repetitions and time budget for a preset.
    fn measure_settings(&self, preset: Preset) -> MeasureSettings {
        let _ = preset;
        MeasureSettings::default()
    }

    /// Runs one cell and returns its measured cases.
    fn run(&self, cell: &Cell) -> Result<CellOutput>;
}

/// What a cell produced.
#[derive(Debug)]
pub struct CellOutput {
    /// E.g. "cpu (8 threads)" or "cuda:0 NVIDIA H100 80GB HBM3".
    pub device_name: String,
    pub cases: Vec<CaseResult>,
}

/// What the harness needs of a framework adapter before anything runs.
#[derive(Clone, Copy)]
pub struct FrameworkHooks {
    pub framework: Framework,
    /// Library version, read without initialising a device.
    pub version: fn() -> String,
    /// Applies process-wide settings that must precede the framework's
    /// first use: CPU threads, the TF32 switch, and the switches of eager
    /// mode that the framework reads once (MLX's compile and CUDA graphs).
    pub configure_process: fn(Precision, Execution, usize),
}

#[derive(Parser, Debug, Clone)]
pub struct RunnerArgs {
    /// Sizes: quick (seconds on a 2-core CPU), laptop (an accelerator with 8-16 GB),
    /// paper (the original study's), or auto: quick on the CPU, on an accelerator
    /// the largest that fits its memory.
    #[arg(long, value_enum, default_value_t = PresetChoice::Auto)]
    pub preset: PresetChoice,
    /// Frameworks to run, one after the other, each in a process of its own (default: all).
    #[arg(long, value_enum, num_args = 1..)]
    pub framework: Vec<Framework>,
    /// Where the twins run: the CPU, or the accelerator (CUDA, Metal / MPS).
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// One per process: TF32 switches are read once, at framework start-up.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// best: each framework at its fastest (compiled steps, CUDA graphs); eager: both op by op.
    #[arg(long, value_enum, default_value_t = Execution::Best)]
    pub execution: Execution,
    /// CPU threads for both frameworks (default: physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Untimed repetitions before the timed ones (default: the benchmark's, per preset).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed repetitions at most (default: the benchmark's, per preset).
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Timed repetitions at least, even past the time budget.
    #[arg(long)]
    pub min_repetitions: Option<usize>,
    /// Seconds of timed work after which no further repetition starts.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// Seed of every random choice (weights, data order, sampling), the same for both twins.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A benchmark-specific knob, e.g. `--set batch_size=16` (repeatable; the
    /// list is below). With --check, a list or range (`batch_size=1,8,32`,
    /// `n=128-1024*2`) plans one cell per combination.
    #[arg(long = "set", value_parser = crate::cell::parse_option)]
    pub options: Vec<(String, String)>,
    /// The run's JSONL record to append rows to; their CSV export goes
    /// beside it (default: reports/raw/<run id>.jsonl).
    #[arg(long, env = process::ROWS_VAR)]
    pub rows: Option<PathBuf>,
    /// Groups the rows of one suite run (default: the start time, e.g. 20250101T120000Z).
    #[arg(long, env = process::RUN_ID_VAR)]
    pub run_id: Option<String>,
    /// Print this benchmark's `--set` knobs (name, range, default, help) and exit.
    #[arg(long)]
    pub list_knobs: bool,
    /// Check the arguments and `--set` knobs, print each framework's start
    /// record (what its cells would record) and exit without running anything.
    #[arg(long)]
    pub check: bool,
}

impl RunnerArgs {
    fn run_id(&self) -> String {
        self.run_id
            .clone()
            .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string())
    }

    fn rows_path(&self, run_id: &str) -> PathBuf {
        self.rows
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("reports/raw/{run_id}.jsonl")))
    }

    /// The frameworks asked, in order (all where none was named).
    fn frameworks(&self, available: &[FrameworkHooks]) -> Vec<Framework> {
        if self.framework.is_empty() {
            available.iter().map(|hooks| hooks.framework).collect()
        } else {
            self.framework.clone()
        }
    }

    fn measure_settings(&self, defaults: MeasureSettings) -> MeasureSettings {
        let mut settings = MeasureSettings {
            warmup: self.warmup.unwrap_or(defaults.warmup),
            repetitions: self.repetitions.unwrap_or(defaults.repetitions),
            min_repetitions: self.min_repetitions.unwrap_or(defaults.min_repetitions),
            time_budget: self
                .time_budget
                .map(Duration::from_secs_f64)
                .unwrap_or(defaults.time_budget),
        };
        settings.min_repetitions = settings.min_repetitions.min(settings.repetitions);
        settings
    }
}

/// The runner's command line: its name, one-line description, version,
/// and its knobs after the options in `--help`.
pub fn command(
    suite_version: &'static str,
    about: &'static str,
    benchmark: &dyn Benchmark,
) -> clap::Command {
    RunnerArgs::command()
        .name(benchmark.name())
        .bin_name(format!("bench-{}", benchmark.name()))
        .display_name(format!("bench-{}", benchmark.name()))
        .about(about)
        .version(suite_version)
        .after_help(format!(
            "Knobs (--set key=value; with `cargo xtask bench`, --set {}.key=value sets it for this benchmark only):\n{}",
            benchmark.name(),
            knobs::describe(benchmark.knobs())
        ))
}

/// The `main` of a benchmark's runner binary; `about` is its one-line description.
pub fn main(
    suite_version: &'static str,
    about: &'static str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
) -> ExitCode {
    let matches = command(suite_version, about, benchmark).get_matches();
    let mut args = RunnerArgs::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    if args.list_knobs {
        print!("{}", knobs::describe(benchmark.knobs()));
        return ExitCode::SUCCESS;
    }
    // Before anything runs: a mistyped or out-of-range knob stops here.
    let combinations = match check_options(benchmark, &mut args) {
        Ok(combinations) => combinations,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let outcome = if args.check {
        plan(suite_version, benchmark, frameworks, &args, &combinations).map(|()| 0)
    } else if combinations.len() > 1 {
        eprintln!(
            "error: a list or range of --set values makes {} cells; a runner runs one: give one value \
             each, or run the list with `cargo xtask bench` (one cell per combination)",
            combinations.len()
        );
        return ExitCode::from(2);
    } else {
        // Measure as the suite does, whoever started us.
        process::restart_with_openblas_core();
        run(suite_version, benchmark, frameworks, &args)
    };
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_FAILURES_RECORDED),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the `--set` knobs against the benchmark's declaration, every
/// element of a list or range too; a knob scoped to this benchmark
/// (`transfer.n=64`) loses its prefix. Returns the cells the knobs ask
/// for ([`sweep::combinations`]): one where each knob has one value.
pub fn check_options(
    benchmark: &dyn Benchmark,
    args: &mut RunnerArgs,
) -> Result<Vec<Vec<(String, String)>>> {
    let name = benchmark.name();
    args.options = knobs::scoped(name, &[name], &args.options)?;
    sweep::combinations(name, benchmark.knobs(), &args.options)
}

/// Sets each framework's process-wide knobs (threads, TF32) before any of
/// them starts.
pub fn configure_processes(
    frameworks: &[FrameworkHooks],
    precision: Precision,
    execution: Execution,
    threads: usize,
) {
    for hooks in frameworks {
        (hooks.configure_process)(precision, execution, threads);
    }
}

/// The environment variable that picks the framework of a process that
/// runs one of several (a runner's or a Criterion harness's).
pub const HARNESS_FRAMEWORK_VAR: &str = process::FRAMEWORK_VAR;

/// One framework per process for the Criterion harnesses: libtorch's BLAS
/// can serve MLX's calls in a process that set up both. With
/// MLX_VS_TORCH_FRAMEWORK=mlx|torch, returns that framework, its
/// process-wide knobs set; without it, runs this same program (with its
/// arguments) once per framework, each in its own process with OpenBLAS's
/// core set as the runners have it, and exits.
pub fn harness_framework(frameworks: &[FrameworkHooks], threads: usize) -> Framework {
    if let Some(framework) = process::framework_of_this_process() {
        let Some(hooks) = frameworks.iter().find(|h| h.framework == framework) else {
            eprintln!("error: this harness has no {framework} twin");
            std::process::exit(2);
        };
        configure_processes(&[*hooks], Precision::F32, Execution::Best, threads);
        return hooks.framework;
    }
    let asked: Vec<Framework> = frameworks.iter().map(|hooks| hooks.framework).collect();
    for framework in asked {
        match process::child(framework).and_then(|mut child| Ok(child.status()?)) {
            Ok(status) if status.success() => {}
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(error) => {
                eprintln!("error: running this harness again for {framework}: {error}");
                std::process::exit(1);
            }
        }
    }
    std::process::exit(0)
}

/// The preset of this runner's cells, and why ([`presets::choose`]).
fn preset_of(benchmark: &dyn Benchmark, args: &RunnerArgs) -> (Preset, String) {
    let memory = presets::device_memory(args.device);
    presets::choose(args.preset, args.device, memory, |preset| {
        benchmark.needs_gib(preset)
    })
}

/// The cell of `framework` that these arguments ask for, at `preset`.
fn cell(
    benchmark: &dyn Benchmark,
    args: &RunnerArgs,
    framework: Framework,
    threads: usize,
    preset: Preset,
) -> Cell {
    Cell {
        framework,
        device: args.device,
        precision: args.precision,
        preset,
        execution: args.execution,
        threads,
        measure: args.measure_settings(benchmark.measure_settings(preset)),
        seed: args.seed,
        options: args.options.clone(),
        knobs: benchmark.knobs(),
    }
}

/// The machine, with every framework's version (read without starting a device).
fn environment(suite_version: &str, frameworks: &[FrameworkHooks]) -> Environment {
    let mut environment = Environment::capture(suite_version);
    for hooks in frameworks {
        let version = (hooks.version)();
        match hooks.framework {
            Framework::Mlx => environment.mlx_version = version,
            Framework::Torch => environment.libtorch_version = version,
        }
    }
    environment
}

fn hooks_of(frameworks: &[FrameworkHooks], framework: Framework) -> Result<FrameworkHooks> {
    frameworks
        .iter()
        .find(|hooks| hooks.framework == framework)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("this runner has no {framework} twin"))
}

/// The start records of the asked frameworks' cells (the machine read once).
fn start_records(
    suite_version: &str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
    args: &RunnerArgs,
    run_id: &str,
    asked: &[Framework],
) -> Result<Vec<Row>> {
    let machine = Machine::read(suite_version, benchmark, frameworks, args);
    machine.start_records(benchmark, frameworks, args, run_id, asked)
}

/// What the start records of a runner's cells share: the machine and the
/// preset it gets.
struct Machine {
    environment: Environment,
    preset: Preset,
    why: String,
}

impl Machine {
    fn read(
        suite_version: &str,
        benchmark: &dyn Benchmark,
        frameworks: &[FrameworkHooks],
        args: &RunnerArgs,
    ) -> Self {
        let (preset, why) = preset_of(benchmark, args);
        Self {
            environment: environment(suite_version, frameworks),
            preset,
            why,
        }
    }

    fn start_records(
        &self,
        benchmark: &dyn Benchmark,
        frameworks: &[FrameworkHooks],
        args: &RunnerArgs,
        run_id: &str,
        asked: &[Framework],
    ) -> Result<Vec<Row>> {
        let threads = args.threads.unwrap_or_else(env::default_threads);
        anyhow::ensure!(threads >= 1, "--threads must be at least 1");
        asked
            .iter()
            .map(|&framework| {
                let hooks = hooks_of(frameworks, framework)?;
                let cell = cell(benchmark, args, framework, threads, self.preset);
                let version = (hooks.version)();
                let mut start =
                    Row::start(run_id, benchmark.name(), &cell, &version, &self.environment);
                start.settings.push("preset_choice", &self.why);
                start.knobs = with_threads(&start.knobs, args.threads);
                Ok(start)
            })
            .collect()
    }
}

/// A cell's identity with `threads=N` where `--threads` asked other than
/// the machine's default (its physical cores): a thread sweep's cells stay
/// apart, and a run at the default matches one that did not ask.
fn with_threads(knobs: &Pairs, threads: Option<usize>) -> Pairs {
    let Some(threads) = threads.filter(|&t| t != env::default_threads()) else {
        return knobs.clone();
    };
    let mut sorted: BTreeMap<String, String> = knobs
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    sorted.insert("threads".to_owned(), threads.to_string());
    sorted.into_iter().collect()
}

/// `--check`: for each cell of the knobs' combinations, each asked
/// framework's start record, as a plan message (the machine read once).
fn plan(
    suite_version: &str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
    args: &RunnerArgs,
    combinations: &[Vec<(String, String)>],
) -> Result<()> {
    let asked = args.frameworks(frameworks);
    let machine = Machine::read(suite_version, benchmark, frameworks, args);
    let run_id = args.run_id();
    for options in combinations {
        let args = RunnerArgs {
            options: options.clone(),
            ..args.clone()
        };
        for start in machine.start_records(benchmark, frameworks, &args, &run_id, &asked)? {
            let measure = args.measure_settings(benchmark.measure_settings(start.preset));
            Message::Plan {
                start,
                measure,
                options: Some(options.clone()),
            }
            .emit()?;
        }
    }
    Ok(())
}

/// Runs every asked cell; returns how many failed. One framework runs
/// here; several run one after the other, each in a process of its own.
pub fn run(
    suite_version: &str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
    args: &RunnerArgs,
) -> Result<usize> {
    let run_id = args.run_id();
    let rows_path = args.rows_path(&run_id);
    let asked = match process::framework_of_this_process() {
        Some(framework) => vec![framework],
        None => args.frameworks(frameworks),
    };
    let failures = match asked[..] {
        [framework] => run_here(
            suite_version,
            benchmark,
            frameworks,
            args,
            framework,
            &run_id,
            &rows_path,
        )?,
        _ => {
            let mut failures = 0;
            for start in start_records(suite_version, benchmark, frameworks, args, &run_id, &asked)?
            {
                failures += process::run_framework(&start, &run_id, &rows_path)?;
            }
            failures
        }
    };
    eprintln!("rows appended to {}", rows_path.display());
    Ok(failures)
}

/// Runs `framework`'s cell in this process: its start record first, then
/// each row as it is written.
fn run_here(
    suite_version: &str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
    args: &RunnerArgs,
    framework: Framework,
    run_id: &str,
    rows_path: &Path,
) -> Result<usize> {
    let hooks = hooks_of(frameworks, framework)?;
    let threads = args.threads.unwrap_or_else(env::default_threads);
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    // Only this framework is set up in this process.
    configure_processes(&[hooks], args.precision, args.execution, threads);
    let asked = [framework];
    let start =
        start_records(suite_version, benchmark, frameworks, args, run_id, &asked)?.remove(0);
    Message::Start { row: start.clone() }.emit()?;
    let mut writer = RowWriter::open(rows_path)?;
    let cell = cell(benchmark, args, framework, threads, start.preset);
    let mut failures = 0;
    for row in run_cell(benchmark, &cell, start) {
        failures += usize::from(row.status == Status::Failed);
        print_row(&row);
        writer.append(&row)?;
        Message::Row { row }.emit()?;
    }
    Ok(failures)
}

fn run_cell(benchmark: &dyn Benchmark, cell: &Cell, mut start: Row) -> Vec<Row> {
    memory::reset_peak_rss();
    let outcome = catch_unwind(AssertUnwindSafe(|| benchmark.run(cell)));
    let output = match outcome {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            return vec![match unavailable_reason(&error) {
                Some(reason) => start.ended(Status::Skipped, &reason),
                None => failed(&start, cell, format!("{error:#}")),
            }];
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            return vec![failed(&start, cell, format!("panicked: {message}"))];
        }
    };
    start.device_name = output.device_name;
    let peak_rss = memory::peak_rss_bytes();
    output
        .cases
        .iter()
        .map(|case| match start.measured(case, peak_rss) {
            Ok(row) => row,
            Err(error) => start.ended(Status::Failed, &format!("{error:#}")),
        })
        .collect()
}

/// A failed row; one that ran out of memory says so, with the cell's sizes
/// (libtorch's allocator errors reach us as `unwrap` panics).
fn failed(start: &Row, cell: &Cell, message: String) -> Row {
    let sizes = size_settings(&cell.preset.to_string(), &cell.options);
    let reason = out_of_memory_reason(&message, &sizes).unwrap_or(message);
    start.ended(Status::Failed, &reason)
}

fn print_row(row: &Row) {
    let figure = match (&row.summary, row.throughput) {
        (Some(s), Some(throughput)) => format!(
            "median {:.4} s (IQR {:.4}, n={}), {throughput:.2} {}",
            s.median, s.iqr, s.n, row.throughput_unit
        ),
        (Some(s), None) => format!("median {:.4} s (IQR {:.4}, n={})", s.median, s.iqr, s.n),
        _ => format!("{:?}: {}", row.status, row.reason),
    };
    eprintln!(
        "{} {} {} {} {}: {figure}",
        row.benchmark, row.case, row.framework, row.device, row.precision
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_join_the_identity_only_where_they_differ_from_the_default() {
        let knobs = Pairs::decode("n=64;weights=random");
        let default = env::default_threads();
        assert_eq!(with_threads(&knobs, None), knobs);
        assert_eq!(with_threads(&knobs, Some(default)), knobs);
        assert_eq!(
            with_threads(&knobs, Some(default + 1)).encode(),
            format!("n=64;threads={};weights=random", default + 1)
        );
    }
}
