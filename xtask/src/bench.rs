//! `cargo xtask bench`: set-up if needed, build the release runners, run
//! every cell in its own process, then report.
//!
//! One process per cell keeps each framework alone in its process (peak
//! RSS is its own; libraries of the other framework are not loaded into
//! its timing) and turns a crash into a failed row instead of a lost suite.
//! The runner appends its rows to the run's files and tells us of each
//! (`bench_core::protocol`); we write a row only for a runner that died,
//! from its own start record.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bench_core::error::{out_of_memory_reason, size_settings};
use bench_core::protocol::EXIT_FAILURES_RECORDED;
use bench_core::protocol::{self, Message};
use bench_core::record::{csv_path, read_rows, RowWriter};
use bench_core::{DeviceKind, Execution, Framework, Precision, Preset, PresetChoice, Row, Status};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use crate::ceilings::{self, Ceilings};
use crate::cell_process::{self, End};
use crate::interrupt::{signal_name, Interrupt};
use crate::knobs::Checked;
use crate::reference_runs;
use crate::threads::{self, Threads};
use crate::{knobs, runs, summary};
use xtask_analysis::report;
use xtask_setup::setup;
use xtask_suite::{self as suite, BenchCrate};

/// The settings of a run; saved with it (`.runs/<run id>.json`) so that
/// `--resume` runs the rest of it alike. The last three are not the run's.
#[derive(Args, Debug, Clone, Serialize, Deserialize)]
pub struct BenchArgs {
    /// Sizes: quick (seconds per cell on a 2-core CPU), laptop (an accelerator
    /// with 8-16 GB), paper (the original study's), or auto: quick on the CPU,
    /// on an accelerator the largest preset that fits its memory (the row says why).
    #[arg(long, value_enum, default_value_t = PresetChoice::Auto)]
    #[serde(default)]
    pub preset: PresetChoice,
    /// Benchmarks to run (default: all), e.g. `--bench transfer bert`.
    #[arg(long, num_args = 1..)]
    pub bench: Vec<String>,
    /// Frameworks to run (default: both).
    #[arg(long, value_enum, num_args = 1..)]
    pub framework: Vec<Framework>,
    /// Devices (default: cpu and gpu; gpu rows say "skipped" where there is none).
    #[arg(long, value_enum, num_args = 1..)]
    pub device: Vec<DeviceKind>,
    /// Precisions (default: f32).
    #[arg(long, value_enum, num_args = 1..)]
    pub precision: Vec<Precision>,
    /// Execution modes (default: best): best runs each framework at its
    /// fastest (compiled steps, CUDA graphs); eager runs both op by op.
    #[arg(long, value_enum, num_args = 1..)]
    #[serde(default)]
    pub execution: Vec<Execution>,
    /// CPU threads for both frameworks (default: physical cores); a list or
    /// range, e.g. `1,2,4` or `1-8*2`, runs every configuration at each count.
    #[arg(long, value_parser = threads::parse, value_name = "N[,N...]")]
    pub threads: Option<Threads>,
    /// Untimed repetitions before the timed ones (default: each benchmark's, per preset).
    #[arg(long)]
    pub warmup: Option<usize>,
    /// Timed repetitions at most (default: each benchmark's, per preset).
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Seconds of timed work per case after which no repetition starts.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// A benchmark's knob, e.g. `--set batch_size=16` (for every benchmark
    /// asked) or `--set bert.batch_size=16` (for bert only); repeatable.
    /// A list or range sweeps it, one configuration per value, and several
    /// lists their product: `--set batch_size=1,8,32`, `--set
    /// prompt_tokens=128-1024*2` (128 to 1024, doubling), `--set
    /// seq_len=32-128+32` (step 32); a text knob takes its value whole.
    /// Every value is checked before anything runs; `--list-knobs` lists them.
    #[arg(long = "set", value_name = "KEY=VALUE[,VALUE...]")]
    pub options: Vec<String>,
    /// A cell still running after this many seconds is stopped and recorded
    /// as failed (default: 900 for the quick preset and the CPU under auto,
    /// 1800 for laptop, 3600 for paper and accelerators under auto).
    #[arg(long)]
    pub cell_timeout: Option<u64>,
    /// Run prebuilt runners from this folder (a bundle's `bin/`): no set-up,
    /// no build, no report. For machines without a Rust toolchain.
    #[arg(long)]
    #[serde(skip)]
    pub prebuilt: Option<PathBuf>,
    /// Folder for the run's rows, JSONL and its CSV export (default: reports/raw).
    #[arg(long)]
    #[serde(skip)]
    pub results: Option<PathBuf>,
    /// Run the cells that run RUN_ID lacks (never run, or interrupted), with
    /// its settings, appending to its rows.
    #[arg(long, value_name = "RUN_ID", conflicts_with_all = [
        "preset", "bench", "framework", "device", "precision", "execution", "threads",
        "warmup", "repetitions", "time_budget", "options",
    ])]
    #[serde(skip)]
    pub resume: Option<String>,
    /// Also rewrite the README's results section (default: only reports/ changes).
    #[arg(long)]
    #[serde(skip)]
    pub update_readme: bool,
    /// After the twins, run each benchmark's Python references
    /// (xtask/scripts/references/) at the twins' configuration, same device.
    #[arg(long)]
    #[serde(skip)]
    pub references: bool,
    /// The Python for --references (default: .cache/references-venv, built
    /// from the hash-pinned requirements.lock on first use, about 4.7 GB).
    #[arg(long, requires = "references")]
    #[serde(skip)]
    pub python: Option<PathBuf>,
    /// Appended to the run id ("20261129T200000Z-gpu1"): runs started in
    /// parallel (one per GPU of a machine) then never share an id.
    #[arg(long, value_parser = parse_run_tag, conflicts_with = "resume")]
    #[serde(skip)]
    pub run_tag: Option<String>,
    /// Print every benchmark's `--set` knobs (name, range, default, help) and exit.
    #[arg(long, conflicts_with = "resume")]
    #[serde(skip)]
    pub list_knobs: bool,
}

impl BenchArgs {
    /// The wall-clock limit in seconds of a cell on `device`.
    /// `planned` is the preset the runner's plan resolved, where known.
    fn cell_timeout(&self, device: DeviceKind, planned: Option<Preset>) -> u64 {
        let preset = planned.unwrap_or(match (self.preset, device) {
            (PresetChoice::Quick, _) | (PresetChoice::Auto, DeviceKind::Cpu) => Preset::Quick,
            (PresetChoice::Laptop, _) => Preset::Laptop,
            (PresetChoice::Paper, _) | (PresetChoice::Auto, DeviceKind::Gpu) => Preset::Paper,
        });
        self.cell_timeout.unwrap_or(match preset {
            Preset::Quick => 900,
            Preset::Laptop => 1800,
            Preset::Paper => 3600,
        })
    }
}

/// One runner invocation: one cell.
#[derive(Clone, Debug)]
struct Job {
    bench: BenchCrate,
    framework: Framework,
    device: DeviceKind,
    precision: Precision,
    execution: Execution,
    /// Its benchmark's knobs and its runner's plan.
    knobs: Checked,
}

impl Job {
    /// "bert mlx cpu f32 best", then its configuration's knobs and threads.
    fn label(&self) -> String {
        let mut label = format!(
            "{} {} {} {} {}",
            self.bench.name, self.framework, self.device, self.precision, self.execution
        );
        let configuration = summary::knob_text(&self.knobs.options, self.knobs.threads);
        if !configuration.is_empty() {
            label = format!("{label}, {configuration}");
        }
        label
    }

    /// Whether `row` is of this cell: its dimensions, and its settings hold
    /// this configuration's knob values and thread count.
    fn owns(&self, row: &Row) -> bool {
        row.framework == self.framework && self.configuration().holds(row)
    }

    /// The configuration this cell is one twin of.
    fn configuration(&self) -> summary::Configuration {
        summary::Configuration {
            benchmark: self.bench.name.clone(),
            device: self.device,
            precision: self.precision,
            execution: self.execution,
            options: self.knobs.options.clone(),
            threads: self.knobs.threads,
        }
    }

    /// The record of a runner that died before giving its own start
    /// record: its `--check` plan, set to this cell.
    fn planned_start(&self) -> Option<Row> {
        let planned = self.knobs.start(self.framework)?;
        Some(Row {
            device: self.device,
            precision: self.precision,
            execution: self.execution,
            ..planned.clone()
        })
    }
}

#[derive(Default)]
struct Tally {
    ok: usize,
    skipped: usize,
    failed: usize,
    interrupted: usize,
}

impl Tally {
    fn add(&mut self, outcome: Status) {
        *match outcome {
            Status::Ok => &mut self.ok,
            Status::Skipped => &mut self.skipped,
            Status::Failed => &mut self.failed,
            Status::Interrupted => &mut self.interrupted,
        } += 1;
    }

    /// The suite's last line, e.g. "cells: 3 ok, 1 skipped, 0 failed, 1
    /// interrupted, 2 not run" (of `planned` cells).
    fn summary(&self, planned: usize) -> String {
        let ended = self.ok + self.skipped + self.failed + self.interrupted;
        let mut line = format!(
            "cells: {} ok, {} skipped, {} failed, {} interrupted",
            self.ok, self.skipped, self.failed, self.interrupted
        );
        if planned > ended {
            line.push_str(&format!(", {} not run", planned - ended));
        }
        line
    }
}

/// Runs the suite; the exit code says whether every cell ran (a skip is
/// not a failure): 1 when a cell failed, 128 + signal when interrupted.
pub fn run(root: &Path, given: &BenchArgs) -> Result<ExitCode> {
    let results = given
        .results
        .clone()
        .unwrap_or_else(|| root.join("reports/raw"));
    if given.list_knobs {
        let (benches, runner_dir) = runners(root, given)?;
        return knobs::list(&runner_dir, &benches).map(|()| ExitCode::SUCCESS);
    }
    let (args, run_id) = resolve_run(given, &results)?;
    // First, before any set-up or build: a second suite, an unwritable
    // folder or a full disk stops here.
    let _lock = runs::lock(&results, &run_id)?;
    let (runner_dir, jobs) = plan_run(root, &args, &results, &run_id)?;
    let rows = results.join(format!("{run_id}.jsonl"));
    let interrupt = Interrupt::install()?;
    let place = Place {
        runner_dir: &runner_dir,
        run_id: &run_id,
        rows: &rows,
        interrupt: &interrupt,
        ceilings: &measure_ceilings(&runner_dir, &jobs, &run_id, &interrupt),
    };
    let tally = run_cells(&place, &jobs, &args)?;
    // What the run measured, configuration by configuration, as hyperfine
    // ends; the rows of cells a resumed run had already are in it too.
    let configurations: Vec<summary::Configuration> = jobs.iter().map(Job::configuration).collect();
    let written = read_rows(&rows)?;
    eprint!(
        "{}",
        summary::text(&written, &configurations, &titles(&jobs, &written))
    );
    eprintln!("{}", tally.summary(jobs.len()));
    eprintln!(
        "results: {} (CSV export: {})",
        rows.display(),
        csv_path(&rows).display()
    );
    if let Some(signal) = place.interrupt.signal() {
        eprintln!(
            "stopped by {}; the finished rows are kept. Resume with:\n  {}",
            signal_name(signal),
            resume_command(given, &run_id)
        );
        return Ok(ExitCode::from(128 + signal as u8));
    }
    if given.references {
        if is_sweep(&jobs) {
            eprintln!(
                "references: this run is a sweep; each benchmark's references run once per device \
                 and precision, at its newest twin row's sizes (the last configuration) and the \
                 first --threads count"
            );
        }
        run_references(root, given, &args, &rows, &run_id, place.interrupt)?;
        if let Some(signal) = place.interrupt.signal() {
            // The twins' rows are whole; the references' rows written so far stay.
            eprintln!(
                "stopped by {} during the references; every twin row and the finished reference rows are kept",
                signal_name(signal)
            );
            return Ok(ExitCode::from(128 + signal as u8));
        }
    }
    if args.prebuilt.is_none() {
        report::generate(root, given.update_readme)?;
    }
    Ok(if tally.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The runners, built where needed, and the cells still to run: every
/// cell of a new run, or those a resumed run lacks. Knobs are checked
/// before any cell, and a new run's settings saved.
fn plan_run(
    root: &Path,
    args: &BenchArgs,
    results: &Path,
    run_id: &str,
) -> Result<(PathBuf, Vec<Job>)> {
    let (benches, runner_dir) = runners(root, args)?;
    let request = knobs::Request {
        preset: args.preset,
        measure_flags: &measure_flags(args),
        threads: args.threads.as_ref().map_or(&[], |t| &t.0),
        frameworks: &or(&args.framework, &[Framework::Torch, Framework::Mlx]),
        devices: &or(&args.device, &[DeviceKind::Cpu, DeviceKind::Gpu]),
        options: &args.options,
    };
    // Before any cell: a mistyped or out-of-range knob stops the suite.
    let checked = knobs::check(&runner_dir, &benches, &request)?;
    let mut jobs = plan(&benches, args, &checked);
    if args.resume.is_none() {
        runs::save_plan(results, run_id, args)?;
        return Ok((runner_dir, jobs));
    }
    let done = runs::rows(&results.join(format!("{run_id}.jsonl")))?;
    let all = jobs.len();
    // A cell is done when its last row is not an interrupted one (rows
    // it wrote before the interrupt came do not make it whole).
    jobs.retain(|job| {
        done.iter()
            .rfind(|row| job.owns(row))
            .is_none_or(|row| row.status == Status::Interrupted)
    });
    eprintln!("resuming run {run_id}: {} of {all} cells left", jobs.len());
    Ok((runner_dir, jobs))
}

/// Runs the cells one after the other under the suite's bar, until all
/// ran or a stopping signal came.
fn run_cells(place: &Place, jobs: &[Job], args: &BenchArgs) -> Result<Tally> {
    let progress = suite_progress(jobs);
    let show = show_lines(&progress);
    let started = Instant::now();
    let mut tally = Tally::default();
    for (done, job) in jobs.iter().enumerate() {
        if place.interrupt.signal().is_some() {
            break;
        }
        progress.set_message(format!("cell {}/{}: {}", done + 1, jobs.len(), job.label()));
        let (outcome, last_word) = run_job(place, job, args, show.clone())?;
        if let Some(line) = last_word {
            show(&line);
        }
        tally.add(outcome);
        progress.inc(weight(job));
    }
    progress.abandon_with_message(format!("{:.0} s", started.elapsed().as_secs_f64()));
    Ok(tally)
}

/// Each device's copy ceiling, measured once before the first cell of
/// this sitting (a resumed run measures again, and its rows say when).
fn measure_ceilings(
    runner_dir: &Path,
    jobs: &[Job],
    run_id: &str,
    interrupt: &Interrupt,
) -> Ceilings {
    let mut devices: Vec<DeviceKind> = jobs.iter().map(|job| job.device).collect();
    devices.sort();
    devices.dedup();
    let show: cell_process::LineSink = Arc::new(|line: &str| eprintln!("{line}"));
    Ceilings::measure(runner_dir, &devices, run_id, interrupt, &show)
}

/// The Python references of the run's ok twin configurations; their
/// failures are reported, not fatal (the twins' rows stand on their own).
fn run_references(
    root: &Path,
    given: &BenchArgs,
    args: &BenchArgs,
    rows: &Path,
    run_id: &str,
    interrupt: &Interrupt,
) -> Result<()> {
    let targets = reference_runs::targets(root, &read_rows(rows)?);
    if targets.is_empty() {
        eprintln!("references: no ok twin row of a benchmark with references in this run");
        return Ok(());
    }
    let python = reference_runs::python(root, given.python.as_deref())?;
    let context = reference_runs::RunContext {
        root,
        python: &python,
        twins_csv: &csv_path(rows),
        run_id,
        threads: args
            .threads
            .as_ref()
            .and_then(|t| t.0.first().copied())
            .unwrap_or_else(bench_core::env::default_threads),
        limit: Duration::from_secs(args.cell_timeout(DeviceKind::Gpu, None)),
    };
    reference_runs::run_all(&context, &targets, interrupt).map(drop)
}

/// The benchmarks asked and the folder of their runners: a bundle's, or
/// this workspace's, set up and built first.
fn runners(root: &Path, args: &BenchArgs) -> Result<(Vec<BenchCrate>, PathBuf)> {
    Ok(match &args.prebuilt {
        Some(dir) => (
            suite::select(&suite::prebuilt(dir)?, &args.bench)?,
            dir.clone(),
        ),
        None => {
            let benches = suite::select(&suite::discover(root)?, &args.bench)?;
            setup::ensure(
                root,
                setup::SetupOptions::building(crate::requirements::Build::Runners),
            )?;
            build_runners(root, &benches)?;
            (benches, root.join("target/release"))
        }
    })
}

/// The suite's bar: it ticks every second with the time spent, and its
/// length is the cells' time budgets, so that its estimate of the time
/// left weighs a long cell as long.
fn suite_progress(jobs: &[Job]) -> ProgressBar {
    let total = jobs.iter().map(weight).sum();
    let progress = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {msg} (about {eta} left)")
            .expect("valid template")
            .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_secs(1));
    progress
}

/// A cell's share of the bar: its time budget (per case), at least a second.
fn weight(job: &Job) -> u64 {
    job.knobs.measure.time_budget.as_secs_f64().max(1.0).round() as u64
}

/// Prints a runner's lines above the bar, as they come.
fn show_lines(progress: &ProgressBar) -> cell_process::LineSink {
    let progress = progress.clone();
    Arc::new(move |line: &str| {
        // A hidden bar (output not a terminal) drops println: print plainly.
        if progress.is_hidden() {
            eprintln!("{line}");
        } else {
            progress.println(line);
        }
    })
}

/// The settings and id of the run: a new one, or the one `--resume` names
/// (its saved settings; where its runners are and the cell limit may change).
fn resolve_run(given: &BenchArgs, results: &Path) -> Result<(BenchArgs, String)> {
    let Some(run_id) = &given.resume else {
        let mut run_id = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        if let Some(tag) = &given.run_tag {
            run_id = format!("{run_id}-{tag}");
        }
        return Ok((given.clone(), run_id));
    };
    let mut args: BenchArgs = runs::load_plan(results, run_id)?;
    args.cell_timeout = given.cell_timeout.or(args.cell_timeout);
    args.prebuilt.clone_from(&given.prebuilt);
    args.results = Some(results.to_path_buf());
    args.resume = Some(run_id.clone());
    Ok((args, run_id.clone()))
}

/// A run tag becomes part of file names: letters, digits and '-' only.
fn parse_run_tag(tag: &str) -> Result<String, String> {
    let fine = !tag.is_empty() && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if fine {
        Ok(tag.to_owned())
    } else {
        Err(format!(
            "run tag {tag:?}: use letters, digits and '-' only (it goes into file names)"
        ))
    }
}

/// The command that runs the rest of an interrupted run.
fn resume_command(given: &BenchArgs, run_id: &str) -> String {
    let mut command = format!("cargo xtask bench --resume {run_id}");
    for (flag, path) in [
        ("--prebuilt", &given.prebuilt),
        ("--results", &given.results),
    ] {
        if let Some(path) = path {
            command.push_str(&format!(" {flag} {}", path.display()));
        }
    }
    command
}

fn plan(benches: &[BenchCrate], args: &BenchArgs, checked: &knobs::CheckedCells) -> Vec<Job> {
    let frameworks = or(&args.framework, &[Framework::Torch, Framework::Mlx]);
    let devices = or(&args.device, &[DeviceKind::Cpu, DeviceKind::Gpu]);
    let precisions = or(&args.precision, &[Precision::F32]);
    let executions = or(&args.execution, &[Execution::Best]);
    let mut jobs = Vec::new();
    for bench in benches {
        for &device in &devices {
            let Some(configurations) = checked.get(&(bench.name.clone(), device)) else {
                continue;
            };
            // A sweep's sizes one after the other, each with every precision
            // and mode; both twins of a cell back to back, so that the two
            // of a pair see the machine in the same state.
            for knobs in configurations {
                for &precision in &precisions {
                    for &execution in &executions {
                        for &framework in &frameworks {
                            jobs.push(Job {
                                bench: bench.clone(),
                                framework,
                                device,
                                precision,
                                execution,
                                knobs: knobs.clone(),
                            });
                        }
                    }
                }
            }
        }
    }
    jobs
}

/// Whether a benchmark ran in several configurations on one device.
fn is_sweep(jobs: &[Job]) -> bool {
    jobs.iter().any(|a| {
        jobs.iter().any(|b| {
            a.bench.name == b.bench.name
                && a.device == b.device
                && (a.knobs.options != b.knobs.options || a.knobs.threads != b.knobs.threads)
        })
    })
}

/// Each benchmark's title and headline case, by name. A prebuilt runner's
/// headline is not known (a bundle has no crate metadata): its first case
/// measured in `rows` stands in.
fn titles(jobs: &[Job], rows: &[Row]) -> xtask_analysis::Titles {
    jobs.iter()
        .map(|job| {
            let bench = &job.bench;
            let mut headline = bench.headline.clone();
            if headline.is_empty() {
                let first = rows
                    .iter()
                    .find(|r| r.benchmark == bench.name && r.is_twin() && r.status == Status::Ok);
                headline = first.map(|r| r.case.clone()).unwrap_or_default();
            }
            (bench.name.clone(), (bench.title.clone(), headline))
        })
        .collect()
}

/// `given`, or `default` when nothing was given.
fn or<T: Clone>(given: &[T], default: &[T]) -> Vec<T> {
    if given.is_empty() {
        default.to_vec()
    } else {
        given.to_vec()
    }
}

fn build_runners(root: &Path, benches: &[BenchCrate]) -> Result<()> {
    let mut command = Command::new(env!("CARGO"));
    command
        .current_dir(root)
        .args(["build", "--release", "--bins", "-p", ceilings::PROBE]);
    for bench in benches {
        command.args(["-p", &bench.package]);
    }
    let status = command.status().context("running cargo build")?;
    ensure!(
        status.success(),
        "building the benchmark runners failed ({status})"
    );
    Ok(())
}

fn runner_path(runner_dir: &Path, bench: &BenchCrate) -> PathBuf {
    runner_dir.join(&bench.package)
}

/// What every job of a run shares.
struct Place<'a> {
    runner_dir: &'a Path,
    run_id: &'a str,
    /// The run's JSONL record.
    rows: &'a Path,
    interrupt: &'a Interrupt,
    /// Each device's copy ceiling, handed to its cells.
    ceilings: &'a Ceilings,
}

/// Runs one job, showing its runner's output as it comes; returns how the
/// cell ended and, where the suite wrote the row, a line saying why. A
/// runner that dies, times out, is interrupted or writes no row gets a row
/// of that here, after any rows it wrote, from its start record.
fn run_job(
    place: &Place,
    job: &Job,
    args: &BenchArgs,
    show: cell_process::LineSink,
) -> Result<(Status, Option<String>)> {
    let command = runner_command(place, job, args);
    let cell = Arc::new(Mutex::new(protocol::Cell::default()));
    let started = Instant::now();
    let planned = job.planned_start().map(|start| start.preset);
    let limit = args.cell_timeout(job.device, planned);
    let (end, output) = cell_process::run(
        command,
        Duration::from_secs(limit),
        place.interrupt,
        take_messages(cell.clone(), show),
    )?;
    let cell = cell.lock().expect("no reader panicked").clone();
    let (status, reason) = match end {
        End::Interrupted(signal) => (
            Status::Interrupted,
            format!(
                "interrupted by {} after {:.0} s",
                signal_name(signal),
                started.elapsed().as_secs_f64()
            ),
        ),
        End::TimedOut => (Status::Failed, format!("timed out after {limit} s")),
        End::Exited(exit)
            if exit.success() || exit.code() == Some(EXIT_FAILURES_RECORDED.into()) =>
        {
            match cell.status() {
                Some(status) => return Ok((status, None)),
                None => (
                    Status::Failed,
                    format!("the runner ended ({exit}) but wrote no row"),
                ),
            }
        }
        End::Exited(exit) => (Status::Failed, death_reason(exit, &output, job, args)),
    };
    let mut row = cell
        .failure(job.planned_start().as_ref(), status, &reason)
        .context("the runner gave no start record, and its plan has none for this cell")?;
    // The limit it ran under: the suite's setting, not the runner's.
    row.settings.push("cell_timeout_s", &limit.to_string());
    RowWriter::open(place.rows)?.append(&row)?;
    Ok((status, Some(format!("{}: {reason}", job.label()))))
}

/// The runner of one cell, told everything the run decided.
fn runner_command(place: &Place, job: &Job, args: &BenchArgs) -> Command {
    let mut command = Command::new(runner_path(place.runner_dir, &job.bench));
    command
        .args(["--preset", &args.preset.to_string()])
        .args(["--framework", &job.framework.to_string()])
        .args(["--device", &job.device.to_string()])
        .args(["--precision", &job.precision.to_string()])
        .args(["--execution", &job.execution.to_string()])
        .args(["--run-id", place.run_id])
        .arg("--rows")
        .arg(place.rows);
    command.args(measure_flags(args));
    if let Some(threads) = job.knobs.threads {
        command.args(["--threads", &threads.to_string()]);
    }
    for (key, value) in &job.knobs.options {
        command.args(["--set", &format!("{key}={value}")]);
    }
    place.ceilings.apply(job.device, &mut command);
    command
}

/// The measure options given for every cell, as the runner takes them
/// (`--threads` is each configuration's: [`Checked::threads`]).
fn measure_flags(args: &BenchArgs) -> Vec<String> {
    [
        ("--warmup", args.warmup.map(|v| v.to_string())),
        ("--repetitions", args.repetitions.map(|v| v.to_string())),
        ("--time-budget", args.time_budget.map(|v| v.to_string())),
    ]
    .into_iter()
    .filter_map(|(flag, value)| Some([flag.to_owned(), value?]))
    .flatten()
    .collect()
}

/// A sink that keeps the runner's messages in `cell` and shows its other lines.
fn take_messages(
    cell: Arc<Mutex<protocol::Cell>>,
    show: cell_process::LineSink,
) -> cell_process::LineSink {
    Arc::new(move |line: &str| match Message::parse(line) {
        Some(Ok(message)) => cell.lock().expect("one reader").take(message),
        Some(Err(error)) => show(&format!("warning: {error:#}")),
        None => show(line),
    })
}

/// Why a runner that died failed: out of memory, with the cell's sizes,
/// where its output says so; else its exit and the end of its output.
fn death_reason(
    exit: std::process::ExitStatus,
    output: &str,
    job: &Job,
    args: &BenchArgs,
) -> String {
    // The runner's own words, without its messages.
    let said: String = output
        .lines()
        .filter(|line| Message::parse(line).is_none())
        .map(|line| format!("{line}\n"))
        .collect();
    let preset = job.planned_start().map(|start| start.preset.to_string());
    let sizes = size_settings(
        &preset.unwrap_or_else(|| args.preset.to_string()),
        &job.knobs.options,
    );
    out_of_memory_reason(&said, &sizes)
        .unwrap_or_else(|| format!("{}: {}", cell_process::describe(exit), tail(&said, 600)))
}

fn tail(text: &str, max_chars: usize) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let start = chars.len().saturating_sub(max_chars);
    chars[start..]
        .iter()
        .collect::<String>()
        .replace('\n', " | ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    fn bench(name: &str) -> BenchCrate {
        BenchCrate {
            name: name.into(),
            package: format!("bench-{name}"),
            title: String::new(),
            headline: "step".into(),
            assets: Vec::new(),
            dir: PathBuf::new(),
        }
    }

    /// A configuration of these knob values and threads.
    fn checked(options: &[(&str, &str)], threads: Option<usize>) -> Checked {
        Checked {
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            threads,
            starts: Vec::new(),
            measure: bench_core::MeasureSettings::default(),
        }
    }

    #[test]
    fn default_plan_is_both_frameworks_on_both_devices_in_f32() {
        let args = Wrapper::parse_from(["x"]).bench;
        let one = vec![checked(&[], None)];
        let checked = BTreeMap::from([
            (("transfer".to_owned(), DeviceKind::Cpu), one.clone()),
            (("transfer".to_owned(), DeviceKind::Gpu), one),
        ]);
        let jobs = plan(&[bench("transfer")], &args, &checked);
        assert_eq!(jobs.len(), 4);
        assert!(jobs.iter().all(|j| j.execution == Execution::Best));
        assert!(jobs.iter().all(|j| j.precision == Precision::F32));
        assert_eq!(
            jobs.iter().filter(|j| j.device == DeviceKind::Gpu).count(),
            2
        );
    }

    /// A sweep runs its sizes one after the other, both twins of each cell
    /// back to back, every precision at each size.
    #[test]
    fn a_sweep_runs_size_by_size_with_both_twins_of_a_cell_back_to_back() {
        let args = Wrapper::parse_from(["x", "--precision", "f32", "bf16"]).bench;
        let sizes = vec![
            checked(&[("batch_size", "1"), ("seq_len", "32")], Some(1)),
            checked(&[("batch_size", "4"), ("seq_len", "32")], Some(1)),
            checked(&[("batch_size", "1"), ("seq_len", "32")], Some(2)),
        ];
        let checked = BTreeMap::from([(("bert".to_owned(), DeviceKind::Cpu), sizes)]);
        let jobs = plan(&[bench("bert")], &args, &checked);
        let labels: Vec<String> = jobs.iter().map(Job::label).collect();
        let expected = [
            "bert torch cpu f32 best, batch_size=1 seq_len=32 threads=1",
            "bert mlx cpu f32 best, batch_size=1 seq_len=32 threads=1",
            "bert torch cpu bf16 best, batch_size=1 seq_len=32 threads=1",
            "bert mlx cpu bf16 best, batch_size=1 seq_len=32 threads=1",
            "bert torch cpu f32 best, batch_size=4 seq_len=32 threads=1",
            "bert mlx cpu f32 best, batch_size=4 seq_len=32 threads=1",
            "bert torch cpu bf16 best, batch_size=4 seq_len=32 threads=1",
            "bert mlx cpu bf16 best, batch_size=4 seq_len=32 threads=1",
            "bert torch cpu f32 best, batch_size=1 seq_len=32 threads=2",
            "bert mlx cpu f32 best, batch_size=1 seq_len=32 threads=2",
            "bert torch cpu bf16 best, batch_size=1 seq_len=32 threads=2",
            "bert mlx cpu bf16 best, batch_size=1 seq_len=32 threads=2",
        ];
        assert_eq!(labels, expected);
        // Each cell's runner gets its own knob values and thread count.
        let place = Place {
            runner_dir: Path::new("/bin"),
            run_id: "r",
            rows: Path::new("/tmp/r.jsonl"),
            interrupt: &Interrupt::install().unwrap(),
            ceilings: &Ceilings::default(),
        };
        let command = runner_command(&place, &jobs[4], &args);
        let argv: Vec<String> = command
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let argv = argv.join(" ");
        assert!(
            argv.ends_with("--threads 1 --set batch_size=4 --set seq_len=32"),
            "{argv}"
        );
    }

    #[test]
    fn a_row_is_owned_by_the_cell_of_its_knob_values_only() {
        let args = Wrapper::parse_from(["x", "--framework", "torch"]).bench;
        let sizes = vec![
            checked(&[("batch_size", "1")], None),
            checked(&[("batch_size", "4")], None),
        ];
        let checked = BTreeMap::from([(("bert".to_owned(), DeviceKind::Cpu), sizes)]);
        let jobs = plan(&[bench("bert")], &args, &checked);
        let cell = bench_core::Cell {
            options: vec![("batch_size".into(), "4".into())],
            ..bench_core::Cell::for_checks()
        };
        let env = bench_core::env::Environment::default();
        let row = Row::start("r", "bert", &cell, "1", &env).ended(Status::Ok, "");
        let owners: Vec<bool> = jobs.iter().map(|job| job.owns(&row)).collect();
        assert_eq!(owners, [false, true]);
    }

    #[test]
    fn threads_take_a_list_and_a_bad_count_is_refused_naming_it() {
        let args = Wrapper::parse_from(["x", "--threads", "1-4*2"]).bench;
        assert_eq!(args.threads, Some(Threads(vec![1, 2, 4])));
        let error = Wrapper::try_parse_from(["x", "--threads", "2,0"])
            .err()
            .unwrap()
            .to_string();
        assert!(
            error.contains("0 threads: a count is at least 1"),
            "{error}"
        );
    }

    #[test]
    fn tail_keeps_the_end_on_one_line() {
        assert_eq!(tail("a\nb\nxyz\n", 5), "b | xyz");
    }

    #[test]
    fn run_tag_goes_after_the_time_and_must_be_a_file_name() {
        let args = Wrapper::parse_from(["x", "--run-tag", "gpu1"]).bench;
        let (_, run_id) = resolve_run(&args, Path::new("/nonexistent")).unwrap();
        assert!(run_id.ends_with("Z-gpu1"), "{run_id}");
        assert!(Wrapper::try_parse_from(["x", "--run-tag", "../x"]).is_err());
        assert!(Wrapper::try_parse_from(["x", "--run-tag", "a b"]).is_err());
    }
}
