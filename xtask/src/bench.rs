//! `cargo xtask bench`: set-up if needed, build the release runners, run
//! every cell in its own process, append rows as they come, then report.
//!
//! One process per cell keeps each framework alone in its process (peak
//! RSS is its own; libraries of the other framework are not loaded into
//! its timing) and turns a crash into a failed row instead of a lost suite.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use bench_core::cli::EXIT_FAILURES_RECORDED;
use bench_core::env::Environment;
use bench_core::record::{CsvAppender, RecordHeader};
use bench_core::{Cell, DeviceKind, Framework, MeasureSettings, Precision, Preset};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::suite::{self, BenchCrate};
use crate::{report, setup};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value_t = Preset::Quick)]
    pub preset: Preset,
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
    /// CPU threads for both frameworks (default: physical cores).
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub warmup: Option<usize>,
    #[arg(long)]
    pub repetitions: Option<usize>,
    /// Seconds of timed work per case after which no repetition starts.
    #[arg(long)]
    pub time_budget: Option<f64>,
    /// A benchmark-specific knob passed to every runner, e.g. `--set batch_size=16`.
    #[arg(long = "set")]
    pub options: Vec<String>,
    /// A cell still running after this many seconds is stopped and recorded as failed.
    #[arg(long, default_value_t = 3600)]
    pub cell_timeout: u64,
    /// Run prebuilt runners from this folder (a bundle's `bin/`): no set-up,
    /// no build, no report. For machines without a Rust toolchain.
    #[arg(long)]
    pub prebuilt: Option<PathBuf>,
    /// Folder for the CSV (default: reports/raw).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Also rewrite the README's results section (default: only reports/ changes).
    #[arg(long)]
    pub update_readme: bool,
}

/// One runner invocation.
#[derive(Clone, Debug)]
struct Job {
    bench: BenchCrate,
    framework: Framework,
    device: DeviceKind,
    precision: Precision,
}

pub fn run(root: &Path, args: &BenchArgs) -> Result<()> {
    let (benches, runner_dir) = match &args.prebuilt {
        Some(dir) => (
            suite::select(&suite::prebuilt(dir)?, &args.bench)?,
            dir.clone(),
        ),
        None => {
            let benches = suite::select(&suite::discover(root)?, &args.bench)?;
            setup::ensure(root, setup::SetupOptions::default())?;
            build_runners(root, &benches)?;
            (benches, root.join("target/release"))
        }
    };
    let run_id = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let results = args
        .results
        .clone()
        .unwrap_or_else(|| root.join("reports/raw"));
    let csv_path = results.join(format!("{run_id}.csv"));
    let jobs = plan(&benches, args);
    let progress = ProgressBar::new(jobs.len() as u64).with_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let started = Instant::now();
    for job in &jobs {
        progress.set_message(format!(
            "{} {} {} {}",
            job.bench.name, job.framework, job.device, job.precision
        ));
        let outcome = run_job(&runner_dir, job, args, &run_id, &csv_path)?;
        for line in outcome.lines() {
            // A hidden bar (output not a terminal) drops println: print plainly.
            if progress.is_hidden() {
                eprintln!("{line}");
            } else {
                progress.println(line);
            }
        }
        progress.inc(1);
    }
    progress.finish_with_message(format!("done in {:.0} s", started.elapsed().as_secs_f64()));
    eprintln!("results: {}", csv_path.display());
    if args.prebuilt.is_some() {
        return Ok(());
    }
    report::generate(root, args.update_readme)
}

fn plan(benches: &[BenchCrate], args: &BenchArgs) -> Vec<Job> {
    let frameworks = or(&args.framework, &[Framework::Torch, Framework::Mlx]);
    let devices = or(&args.device, &[DeviceKind::Cpu, DeviceKind::Gpu]);
    let precisions = or(&args.precision, &[Precision::F32]);
    let mut jobs = Vec::new();
    for bench in benches {
        for &device in &devices {
            for &precision in &precisions {
                for &framework in &frameworks {
                    jobs.push(Job {
                        bench: bench.clone(),
                        framework,
                        device,
                        precision,
                    });
                }
            }
        }
    }
    jobs
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
        .args(["build", "--release", "--bins"]);
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

/// Runs one job; returns the runner's output for the log. A runner that
/// dies or times out gets a failed row here, after any rows it wrote.
fn run_job(
    runner_dir: &Path,
    job: &Job,
    args: &BenchArgs,
    run_id: &str,
    csv_path: &Path,
) -> Result<String> {
    let mut command = Command::new(runner_path(runner_dir, &job.bench));
    command
        .args(["--preset", &args.preset.to_string()])
        .args(["--framework", &job.framework.to_string()])
        .args(["--device", &job.device.to_string()])
        .args(["--precision", &job.precision.to_string()])
        .args(["--run-id", run_id])
        .arg("--csv")
        .arg(csv_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (flag, value) in [
        ("--threads", args.threads.map(|v| v.to_string())),
        ("--warmup", args.warmup.map(|v| v.to_string())),
        ("--repetitions", args.repetitions.map(|v| v.to_string())),
        ("--time-budget", args.time_budget.map(|v| v.to_string())),
    ] {
        if let Some(value) = value {
            command.args([flag, &value]);
        }
    }
    for option in &args.options {
        command.args(["--set", option]);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", runner_path(runner_dir, &job.bench).display()))?;
    let output = collect_output(&mut child);
    let deadline = Instant::now() + Duration::from_secs(args.cell_timeout);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = output.join().unwrap_or_default();
    let failure = match status {
        None => Some(format!("timed out after {} s", args.cell_timeout)),
        Some(status)
            if status.success() || status.code() == Some(EXIT_FAILURES_RECORDED.into()) =>
        {
            None
        }
        Some(status) => Some(format!("runner {status}: {}", tail(&output, 600))),
    };
    if let Some(reason) = failure {
        record_failure(job, args, run_id, csv_path, &reason)?;
        return Ok(format!(
            "{output}{} {} {} {}: failed: {reason}",
            job.bench.name, job.framework, job.device, job.precision
        ));
    }
    Ok(output.trim_end().to_owned())
}

/// Reads the child's stdout and stderr on threads, so a chatty runner never
/// blocks on a full pipe while we wait for it.
fn collect_output(child: &mut std::process::Child) -> std::thread::JoinHandle<String> {
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let err_thread = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text + &err_thread.join().unwrap_or_default()
    })
}

fn tail(text: &str, max_chars: usize) -> String {
    let chars: Vec<char> = text.trim().chars().collect();
    let start = chars.len().saturating_sub(max_chars);
    chars[start..]
        .iter()
        .collect::<String>()
        .replace('\n', " | ")
}

fn record_failure(
    job: &Job,
    args: &BenchArgs,
    run_id: &str,
    csv_path: &Path,
    reason: &str,
) -> Result<()> {
    let cell = Cell {
        framework: job.framework,
        device: job.device,
        precision: job.precision,
        preset: args.preset,
        threads: args
            .threads
            .unwrap_or_else(bench_core::env::default_threads),
        measure: MeasureSettings::default(),
        seed: 0,
        options: Vec::new(),
    };
    let mut header = RecordHeader::for_cell(run_id, &job.bench.name, &cell);
    // Only what the runner was told: its own defaults are unknown here.
    header.settings = [
        ("threads", Some(cell.threads.to_string())),
        ("warmup", args.warmup.map(|v| v.to_string())),
        ("repetitions", args.repetitions.map(|v| v.to_string())),
        ("time_budget_s", args.time_budget.map(|v| v.to_string())),
        ("cell_timeout_s", Some(args.cell_timeout.to_string())),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.map(|v| (key.to_owned(), v)))
    .chain(
        args.options
            .iter()
            .filter_map(|o| bench_core::cell::parse_option(o).ok()),
    )
    .collect();
    let env = Environment::capture(env!("CARGO_PKG_VERSION"));
    CsvAppender::open(csv_path)?.append(&header.failed(reason, &env))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        bench: BenchArgs,
    }

    #[test]
    fn default_plan_is_both_frameworks_on_both_devices_in_f32() {
        let args = Wrapper::parse_from(["x"]).bench;
        let bench = BenchCrate {
            name: "transfer".into(),
            package: "bench-transfer".into(),
            title: String::new(),
            headline: "switch".into(),
            assets: Vec::new(),
            dir: PathBuf::new(),
        };
        let jobs = plan(&[bench], &args);
        assert_eq!(jobs.len(), 4);
        assert!(jobs.iter().all(|j| j.precision == Precision::F32));
        assert_eq!(
            jobs.iter().filter(|j| j.device == DeviceKind::Gpu).count(),
            2
        );
    }

    #[test]
    fn tail_keeps_the_end_on_one_line() {
        assert_eq!(tail("a\nb\nxyz\n", 5), "b | xyz");
    }
}
