//! The command line shared by every benchmark's runner binary.
//!
//! A runner measures one benchmark for the frameworks asked, on one device
//! and precision, and appends a CSV row per measured case as soon as it has
//! it. A cell that fails becomes a failed row with its reason; the runner
//! goes on with the next cell and exits with [`EXIT_FAILURES_RECORDED`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::{CommandFactory, FromArgMatches, Parser};

use crate::cell::{Cell, DeviceKind, Execution, Framework, Precision, Preset};
use crate::env::{self, Environment};
use crate::error::{out_of_memory_reason, size_settings, unavailable_reason};
use crate::knobs::{self, Knob};
use crate::measure::MeasureSettings;
use crate::record::{samples_path, CaseResult, CsvAppender, JsonlAppender, Record, RecordHeader};

/// Exit status of a runner that recorded at least one failed cell.
pub const EXIT_FAILURES_RECORDED: u8 = 3;

/// What the runner needs of a benchmark: its name, knobs, measure
/// settings, and one cell run. Benchmark crates do not implement it
/// themselves: they implement `bench_twin::TwinBenchmark`, and
/// `bench_twin::Runner` turns that into this (bench-core knows no
/// framework, so the MLX/PyTorch dispatch lives there).
pub trait Benchmark {
    /// The name used on the command line and in reports, e.g. "transfer".
    fn name(&self) -> &'static str;

    /// Its `--set` knobs (the generic ones, [`crate::knobs::GENERIC`], come
    /// on top): the only keys its cells read.
    fn knobs(&self) -> &'static [Knob];

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
    /// Sizes: quick (seconds on a 2-core CPU) or paper (the original study's).
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
    /// Frameworks to run, one after the other (default: all).
    #[arg(long, value_enum, num_args = 1..)]
    pub framework: Vec<Framework>,
    /// Where the twins run: the CPU, or the accelerator (CUDA, Metal / MPS).
    #[arg(long, value_enum, default_value_t = DeviceKind::Cpu)]
    pub device: DeviceKind,
    /// One per process: TF32 switches are read once, at framework start-up.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
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
    /// list is below); `--set execution=eager` runs both twins op by op instead
    /// of at their best.
    #[arg(long = "set", value_parser = crate::cell::parse_option)]
    pub options: Vec<(String, String)>,
    /// CSV file to append rows to (default: reports/raw/<timestamp>.csv).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Groups the rows of one suite run (default: the start time, e.g. 20250101T120000Z).
    #[arg(long)]
    pub run_id: Option<String>,
    /// Print this benchmark's `--set` knobs (name, range, default, help) and exit.
    #[arg(long)]
    pub list_knobs: bool,
    /// Check the arguments and `--set` knobs, then exit without running anything.
    #[arg(long)]
    pub check: bool,
}

impl RunnerArgs {
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
    if let Err(error) = check_options(benchmark, &mut args) {
        eprintln!("error: {error:#}");
        return ExitCode::from(2);
    }
    if args.check {
        // What would run, for a person and for the suite's time estimate.
        let m = args.measure_settings(benchmark.measure_settings(args.preset));
        println!(
            "ok: warmup={} repetitions={} min_repetitions={} time_budget_s={}",
            m.warmup,
            m.repetitions,
            m.min_repetitions,
            m.time_budget.as_secs_f64()
        );
        return ExitCode::SUCCESS;
    }
    match run(suite_version, benchmark, frameworks, &args) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(EXIT_FAILURES_RECORDED),
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Checks the `--set` knobs against the benchmark's declaration; a knob
/// scoped to this benchmark (`transfer.n=64`) loses its prefix.
pub fn check_options(benchmark: &dyn Benchmark, args: &mut RunnerArgs) -> Result<()> {
    let name = benchmark.name();
    args.options = knobs::scoped(name, &[name], &args.options)?;
    knobs::check(name, benchmark.knobs(), &args.options)
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

/// The environment variable that picks a Criterion harness's framework.
pub const HARNESS_FRAMEWORK_VAR: &str = "MLX_VS_TORCH_FRAMEWORK";

/// One framework per process for the Criterion harnesses: libtorch's BLAS
/// can serve MLX's calls in a process that set up both. With
/// MLX_VS_TORCH_FRAMEWORK=mlx|torch, returns that framework, its
/// process-wide knobs set; without it, runs this same program (with its
/// arguments) once per framework, each in its own process, and exits.
pub fn harness_framework(frameworks: &[FrameworkHooks], threads: usize) -> Framework {
    let hooks_of = |framework: Framework| frameworks.iter().find(|h| h.framework == framework);
    if let Ok(name) = std::env::var(HARNESS_FRAMEWORK_VAR) {
        let picked = <Framework as clap::ValueEnum>::from_str(&name, true)
            .ok()
            .and_then(hooks_of);
        let Some(hooks) = picked else {
            eprintln!("error: {HARNESS_FRAMEWORK_VAR}={name}: expected mlx or torch");
            std::process::exit(2);
        };
        configure_processes(&[*hooks], Precision::F32, Execution::Best, threads);
        return hooks.framework;
    }
    let program = std::env::current_exe().expect("the harness's own path");
    for hooks in frameworks {
        let status = std::process::Command::new(&program)
            .args(std::env::args_os().skip(1))
            .env(HARNESS_FRAMEWORK_VAR, hooks.framework.to_string())
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => std::process::exit(status.code().unwrap_or(1)),
            Err(error) => {
                eprintln!(
                    "error: running {} for {}: {error}",
                    program.display(),
                    hooks.framework
                );
                std::process::exit(1);
            }
        }
    }
    std::process::exit(0)
}

/// Runs every asked cell; returns how many failed.
pub fn run(
    suite_version: &str,
    benchmark: &dyn Benchmark,
    frameworks: &[FrameworkHooks],
    args: &RunnerArgs,
) -> Result<usize> {
    let threads = args.threads.unwrap_or_else(env::default_threads);
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    // What `Cell::execution` will read, needed before any cell exists.
    let execution = Cell {
        options: args.options.clone(),
        knobs: benchmark.knobs(),
        ..Cell::for_checks()
    }
    .execution()?;
    configure_processes(frameworks, args.precision, execution, threads);
    let mut environment = Environment::capture(suite_version);
    for hooks in frameworks {
        let version = (hooks.version)();
        match hooks.framework {
            Framework::Mlx => environment.mlx_version = version,
            Framework::Torch => environment.libtorch_version = version,
        }
    }
    let run_id = args
        .run_id
        .clone()
        .unwrap_or_else(|| chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string());
    let csv_path = args
        .csv
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("reports/raw/{run_id}.csv")));
    let mut csv = CsvAppender::open(&csv_path)?;
    // Every repetition's time, beside the CSV (which keeps summary figures).
    let mut jsonl = JsonlAppender::open(&samples_path(&csv_path))?;
    let asked: Vec<Framework> = if args.framework.is_empty() {
        frameworks.iter().map(|hooks| hooks.framework).collect()
    } else {
        args.framework.clone()
    };
    let mut failures = 0;
    for framework in asked {
        let hooks = frameworks
            .iter()
            .find(|hooks| hooks.framework == framework)
            .ok_or_else(|| anyhow::anyhow!("{} has no {framework} twin", benchmark.name()))?;
        let cell = Cell {
            framework,
            device: args.device,
            precision: args.precision,
            preset: args.preset,
            threads,
            measure: args.measure_settings(benchmark.measure_settings(args.preset)),
            seed: args.seed,
            options: args.options.clone(),
            knobs: benchmark.knobs(),
        };
        let mut header = RecordHeader::for_cell(&run_id, benchmark.name(), &cell);
        header.framework_version = (hooks.version)();
        for (record, samples) in run_cell(benchmark, &cell, &mut header, &environment) {
            failures += usize::from(record.status == crate::record::Status::Failed);
            print_row(&record);
            csv.append(&record)?;
            jsonl.append(&record, &samples)?;
        }
    }
    eprintln!("rows appended to {}", csv_path.display());
    Ok(failures)
}

fn run_cell(
    benchmark: &dyn Benchmark,
    cell: &Cell,
    header: &mut RecordHeader,
    env: &Environment,
) -> Vec<(Record, Vec<f64>)> {
    env::reset_peak_rss();
    let outcome = catch_unwind(AssertUnwindSafe(|| benchmark.run(cell)));
    let output = match outcome {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => {
            let record = match unavailable_reason(&error) {
                Some(reason) => header.skipped(&reason, env),
                None => failed(header, cell, format!("{error:#}"), env),
            };
            return vec![(record, Vec::new())];
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".to_owned());
            return vec![(
                failed(header, cell, format!("panicked: {message}"), env),
                Vec::new(),
            )];
        }
    };
    header.device_name = output.device_name;
    let peak_rss = env::peak_rss_bytes();
    output
        .cases
        .iter()
        .map(|case| match header.measured(case, peak_rss, env) {
            Ok(record) => (record, case.samples.clone()),
            Err(error) => (header.failed(&format!("{error:#}"), env), Vec::new()),
        })
        .collect()
}

/// A failed row; one that ran out of memory says so, with the cell's sizes
/// (libtorch's allocator errors reach us as `unwrap` panics).
fn failed(header: &RecordHeader, cell: &Cell, message: String, env: &Environment) -> Record {
    let sizes = size_settings(&cell.preset.to_string(), &cell.options);
    let reason = out_of_memory_reason(&message, &sizes).unwrap_or(message);
    header.failed(&reason, env)
}

fn print_row(record: &Record) {
    let figure = match (record.median_s, record.throughput) {
        (Some(median), Some(throughput)) => format!(
            "median {median:.4} s (IQR {:.4}, n={}), {throughput:.2} {}",
            record.iqr_s.unwrap_or_default(),
            record.repetitions.unwrap_or_default(),
            record.throughput_unit
        ),
        (Some(median), None) => format!(
            "median {median:.4} s (IQR {:.4}, n={})",
            record.iqr_s.unwrap_or_default(),
            record.repetitions.unwrap_or_default()
        ),
        _ => format!("{:?}: {}", record.status, record.reason),
    };
    eprintln!(
        "{} {} {} {} {}: {figure}",
        record.benchmark, record.case, record.framework, record.device, record.precision
    );
}
