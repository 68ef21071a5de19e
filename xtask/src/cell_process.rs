//! One runner process per cell. It runs in its own process group, so that
//! ending it ends whatever it started too (a shell's children, a Python
//! reference), and on Linux it is tied to our life by a parent-death signal,
//! so that no runner outlives a suite that was killed outright.

use std::io::{self, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::interrupt::Interrupt;

/// How a runner process ended.
#[derive(Debug)]
pub enum End {
    Exited(ExitStatus),
    /// Still running at the cell's time limit; its group was killed.
    TimedOut,
    /// A stopping signal reached the suite; the runner's group was killed.
    Interrupted(i32),
}

/// Runs `command` (the runner of one cell) until it ends, the time limit
/// passes or `interrupt` fires; returns how it ended and its output.
pub fn run(mut command: Command, limit: Duration, interrupt: &Interrupt) -> Result<(End, String)> {
    command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group: the terminal's Ctrl-C reaches only us, and we end
        // the whole group, grandchildren included.
        .process_group(0);
    die_with_parent(&mut command);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {program}"))?;
    let output = collect_output(&mut child);
    let deadline = Instant::now() + limit;
    // None: the runner ended by itself.
    let stopped = loop {
        if has_exited(&child)? {
            break None;
        }
        if let Some(signal) = interrupt.signal() {
            break Some(End::Interrupted(signal));
        }
        if Instant::now() >= deadline {
            break Some(End::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Also when it ended by itself: whatever it left behind in its group
    // would hold its output pipes open.
    kill_group(&child);
    let status = child.wait().context("reaping the runner")?;
    let end = stopped.unwrap_or(End::Exited(status));
    let output = output.join().unwrap_or_default();
    Ok((end, output))
}

/// Whether the child has ended, without reaping it: while it is an unreaped
/// zombie its process group id cannot be reused, so `kill_group` after this
/// can only reach the runner's own group.
fn has_exited(child: &Child) -> Result<bool> {
    // SAFETY: siginfo_t is plain data; waitid writes into it. Zeroed, its
    // si_signo stays 0 when no child is waitable (WNOHANG).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: waitid on our own child's id, with a valid siginfo_t.
    let rc = unsafe { libc::waitid(libc::P_PID, child.id(), &mut info, flags) };
    if rc != 0 {
        return Err(io::Error::last_os_error()).context("waiting for the runner");
    }
    Ok(info.si_signo != 0)
}

/// SIGKILL to the runner's process group (its id is the runner's pid).
fn kill_group(child: &Child) {
    // SAFETY: a plain system call; an empty group (ESRCH) is fine.
    unsafe {
        libc::killpg(child.id() as libc::pid_t, libc::SIGKILL);
    }
}

/// Asks the kernel (Linux) to kill the runner when this process dies.
fn die_with_parent(command: &mut Command) {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure makes only async-signal-safe system calls.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(io::Error::last_os_error());
                }
                // We may have died before prctl took effect.
                if libc::getppid() != parent {
                    return Err(io::Error::other(
                        "the suite ended before its runner started",
                    ));
                }
                Ok(())
            });
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = command;
}

/// Reads the child's stdout and stderr on threads, so a chatty runner never
/// blocks on a full pipe while we wait for it.
fn collect_output(child: &mut Child) -> std::thread::JoinHandle<String> {
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

/// "runner exit status: 1", "runner killed by SIGABRT", for failure reasons.
pub fn describe(status: ExitStatus) -> String {
    match status.signal() {
        Some(libc::SIGKILL) => {
            "runner killed by SIGKILL (by the system's out-of-memory killer?)".into()
        }
        Some(libc::SIGABRT) => "runner aborted (SIGABRT)".into(),
        Some(libc::SIGSEGV) => "runner crashed (SIGSEGV)".into(),
        Some(signal) => format!("runner killed by signal {signal}"),
        None => format!("runner {status}"),
    }
}
