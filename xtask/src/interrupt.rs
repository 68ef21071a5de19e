//! Ctrl-C, SIGTERM and SIGHUP during a suite: the first one asks the job
//! loop to stop the running cell, record it as interrupted and say how to
//! resume; a second one ends the process at once (its runner, in its own
//! process group, is then ended by its parent-death signal).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

/// The signals that stop a suite.
const STOPPING: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

#[derive(Clone)]
pub struct Interrupt {
    signal: Arc<AtomicUsize>,
}

impl Interrupt {
    /// Catches the stopping signals from now on, for the rest of the process.
    pub fn install() -> Result<Self> {
        let armed = Arc::new(AtomicBool::new(false));
        let signal = Arc::new(AtomicUsize::new(0));
        for number in STOPPING {
            // Order matters: the shutdown checks the flag the first signal sets.
            signal_hook::flag::register_conditional_shutdown(number, 128 + number, armed.clone())
                .and_then(|_| signal_hook::flag::register(number, armed.clone()))
                .and_then(|_| {
                    signal_hook::flag::register_usize(number, signal.clone(), number as usize)
                })
                .with_context(|| format!("catching signal {number}"))?;
        }
        Ok(Self { signal })
    }

    /// The first stopping signal that arrived, if any.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::SeqCst) {
            0 => None,
            number => Some(number as i32),
        }
    }
}

/// "SIGINT (Ctrl-C)", "SIGTERM", ... for messages.
pub fn signal_name(number: i32) -> String {
    match number {
        SIGINT => "SIGINT (Ctrl-C)".into(),
        SIGTERM => "SIGTERM".into(),
        SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}
