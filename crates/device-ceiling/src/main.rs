//! `device-ceiling --device gpu`: measures the device's copy bandwidth
//! once, prints it for people on standard error and as a runner message
//! (`bench_core::protocol`) on standard output. `cargo xtask bench` runs it
//! once per device before a run's cells.

use std::process::ExitCode;

use bench_core::protocol::Message;
use bench_core::DeviceKind;
use clap::Parser;

#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// The device whose ceiling to measure: the CPU, or the accelerator
    /// (CUDA, Metal).
    #[arg(long, value_enum)]
    device: DeviceKind,
    /// Host threads of the CPU's probe (default: physical cores).
    #[arg(long)]
    threads: Option<usize>,
    /// The run the ceiling is measured for, recorded with it.
    #[arg(long)]
    run_id: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let threads = args
        .threads
        .unwrap_or_else(bench_core::env::default_threads);
    let outcome = device_ceiling::probe(args.device, threads).and_then(|mut ceiling| {
        ceiling.measured = match &args.run_id {
            // The time tells a resumed run's sittings apart.
            Some(run) => format!(
                "once for run {run}, before its cells ({})",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
            ),
            None => "by device-ceiling, alone in its process".into(),
        };
        eprintln!(
            "{} copy ceiling: {:.2} GB/s ({})",
            ceiling.device, ceiling.gbps, ceiling.probe
        );
        Message::Ceiling { ceiling }.emit()
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
