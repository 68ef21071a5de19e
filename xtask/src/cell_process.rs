//! One runner process per cell. It runs in its own process group, so that
//! ending it ends whatever it started too (a shell's children, a Python
//! reference), and on Linux it is tied to our life by a parent-death signal,
//! so that no runner outlives a suite that was killed outright.

use std::io::{self, BufRead, BufReader, Read};
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

/// Each line of a runner's output, as it comes (stdout and stderr alike).
pub type LineSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// Runs `command` (the runner of one cell) until it ends, the time limit
/// passes or `interrupt` fires; `show` gets each line of its output as it
/// comes, so that a long cell is seen working. Returns how it ended and
/// its whole output.
pub fn run(
    mut command: Command,
    limit: Duration,
    interrupt: &Interrupt,
    show: LineSink,
) -> Result<(End, String)> {
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
    let output = collect_output(&mut child, show);
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
/// blocks on a full pipe while we wait for it; shows each line as it comes.
fn collect_output(child: &mut Child, show: LineSink) -> std::thread::JoinHandle<String> {
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let show_err = show.clone();
    std::thread::spawn(move || {
        let err_thread = std::thread::spawn(move || read_lines(stderr, &show_err));
        read_lines(stdout, &show) + &err_thread.join().unwrap_or_default()
    })
}

/// The whole of `pipe`, line by line (bytes that are not UTF-8 replaced).
fn read_lines(pipe: impl Read, show: &LineSink) -> String {
    let mut reader = BufReader::new(pipe);
    let mut text = String::new();
    let mut line = Vec::new();
    while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
        let decoded = String::from_utf8_lossy(&line);
        show(decoded.trim_end_matches(['\n', '\r']));
        text.push_str(&decoded);
        line.clear();
    }
    text
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// The runner waits for a file that only the shown first line creates:
    /// output held back until the end would leave it waiting (a time-out).
    #[test]
    fn output_is_shown_while_the_runner_still_runs() {
        let flag = std::env::temp_dir().join(format!("cell-stream-{}", std::process::id()));
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "echo one; while [ ! -e {0} ]; do sleep 0.05; done; echo two >&2",
            flag.display()
        ));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (seen_in, flag_in) = (seen.clone(), flag.clone());
        let show: LineSink = Arc::new(move |line: &str| {
            seen_in.lock().unwrap().push(line.to_owned());
            if line == "one" {
                std::fs::write(&flag_in, "").unwrap();
            }
        });
        let interrupt = Interrupt::install().unwrap();
        let (end, output) = run(command, Duration::from_secs(20), &interrupt, show).unwrap();
        std::fs::remove_file(&flag).ok();
        assert!(
            matches!(end, End::Exited(status) if status.success()),
            "{end:?}"
        );
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
        assert_eq!(output, "one\ntwo\n");
    }
}
