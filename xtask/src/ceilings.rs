//! The run's copy ceilings: one per device, measured once by the
//! `device-ceiling` probe (no framework) before the first cell and handed
//! to every cell of that device (`bench_core::ceiling::VARIABLE`), so that
//! both twins' bandwidth is divided by the same figure.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Result};
use bench_core::ceiling::VARIABLE;
use bench_core::protocol::Message;
use bench_core::{Ceiling, DeviceKind};

use crate::cell_process::{self, End, LineSink};
use crate::interrupt::Interrupt;

/// The probe's binary, beside the runners (built with them, and bundled).
pub const PROBE: &str = "device-ceiling";

/// A probe still running after this is stopped (it takes about a second).
const LIMIT: Duration = Duration::from_secs(120);

/// Each device's ceiling for this run; a device without one (no GPU here,
/// or runners without the probe) lets its cells measure the probe
/// themselves, and their rows say so.
#[derive(Debug, Default)]
pub struct Ceilings(Vec<Ceiling>);

impl Ceilings {
    /// Measures the ceiling of each of `devices`, once, with the probe in
    /// `runner_dir`; says what it got (or why not) through `show`.
    pub fn measure(
        runner_dir: &Path,
        devices: &[DeviceKind],
        run_id: &str,
        interrupt: &Interrupt,
        show: &LineSink,
    ) -> Self {
        let probe = runner_dir.join(PROBE);
        if !probe.exists() {
            show(&format!(
                "copy ceilings: no {PROBE} in {}: each cell measures its own",
                runner_dir.display()
            ));
            return Self::default();
        }
        let mut ceilings = Vec::new();
        for &device in devices {
            let mut command = Command::new(&probe);
            command.args(["--device", &device.to_string(), "--run-id", run_id]);
            match run_probe(command, interrupt) {
                Ok(ceiling) => {
                    show(&format!(
                        "copy ceiling of the {device}: {:.2} GB/s ({}), for every {device} cell of this run",
                        ceiling.gbps, ceiling.probe
                    ));
                    ceilings.push(ceiling);
                }
                Err(error) => show(&format!(
                    "copy ceiling of the {device}: none ({error:#}); its cells measure their own"
                )),
            }
        }
        Self(ceilings)
    }

    /// The ceiling of `device`, where measured.
    pub fn of(&self, device: DeviceKind) -> Option<&Ceiling> {
        self.0.iter().find(|ceiling| ceiling.device == device)
    }

    /// Hands a cell on `device` its ceiling; where there is none, no
    /// inherited value is handed on either.
    pub fn apply(&self, device: DeviceKind, command: &mut Command) {
        match self.of(device) {
            Some(ceiling) => command.env(VARIABLE, ceiling.to_variable()),
            None => command.env_remove(VARIABLE),
        };
    }
}

/// Runs the probe; its ceiling message, or why there is none.
fn run_probe(command: Command, interrupt: &Interrupt) -> Result<Ceiling> {
    let ceiling = Arc::new(Mutex::new(None));
    let said = ceiling.clone();
    let sink: LineSink = Arc::new(move |line: &str| {
        if let Some(Ok(Message::Ceiling { ceiling })) = Message::parse(line) {
            *said.lock().expect("one reader") = Some(ceiling);
        }
    });
    let (end, output) = cell_process::run(command, LIMIT, interrupt, sink)?;
    let found = ceiling.lock().expect("the probe has ended").take();
    match (end, found) {
        (End::Exited(status), Some(ceiling)) if status.success() => Ok(ceiling),
        (End::Exited(_), _) => {
            let last = output
                .lines()
                .rfind(|line| Message::parse(line).is_none() && !line.trim().is_empty());
            let last = last.unwrap_or("the probe gave no ceiling").trim();
            bail!("{}", last.strip_prefix("error: ").unwrap_or(last))
        }
        (End::TimedOut, _) => bail!("the probe ran past {} s", LIMIT.as_secs()),
        (End::Interrupted(_), _) => bail!("interrupted"),
    }
}
