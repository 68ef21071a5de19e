//! What a measuring process holds, whoever starts it: one framework per
//! process (libtorch's BLAS can serve MLX's calls in a process that loaded
//! both, and peak RSS is then its own), and OpenBLAS's core set before the
//! library loads ([`crate::openblas`]).
//!
//! A runner asked for several frameworks runs this same program once per
//! framework, naming it in [`FRAMEWORK_VAR`], with the run id and the rows
//! file fixed for all ([`RUN_ID_VAR`], [`ROWS_VAR`]); the Criterion
//! harnesses do the same. `cargo xtask bench` starts one framework per
//! runner, so it meets the same processes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result};

use crate::dims::Framework;
use crate::openblas;
use crate::protocol::{self, Message, EXIT_FAILURES_RECORDED};
use crate::record::RowWriter;
use crate::row::{Row, Status};

/// Names the one framework a process runs.
pub const FRAMEWORK_VAR: &str = "MLX_VS_TORCH_FRAMEWORK";
/// The run id every framework's process of one runner shares.
pub const RUN_ID_VAR: &str = "MLX_VS_TORCH_RUN_ID";
/// The rows file every framework's process of one runner appends to.
pub const ROWS_VAR: &str = "MLX_VS_TORCH_ROWS";

/// The framework this process was started for, where it was started as
/// one of several; exits with a clear error on a value that names none.
pub fn framework_of_this_process() -> Option<Framework> {
    let name = std::env::var(FRAMEWORK_VAR).ok()?;
    match <Framework as clap::ValueEnum>::from_str(&name, true) {
        Ok(framework) => Some(framework),
        Err(_) => {
            eprintln!("error: {FRAMEWORK_VAR}={name}: expected mlx or torch");
            std::process::exit(2);
        }
    }
}

/// This program, with its arguments, for `framework` alone.
pub fn child(framework: Framework) -> Result<Command> {
    let program = std::env::current_exe().context("finding this program to start it again")?;
    let mut command = Command::new(program);
    command
        .args(std::env::args_os().skip(1))
        .env(FRAMEWORK_VAR, framework.to_string())
        .envs(openblas::setting_for_children());
    Ok(command)
}

/// Replaces this process with itself, OpenBLAS's core set, where the
/// variable is unset and this CPU needs it: the library has read it by the
/// time `main` runs. Where that fails, the run goes on as it is, and its
/// rows record no core.
pub fn restart_with_openblas_core() {
    let Some((variable, core)) = openblas::setting_for_children() else {
        return;
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let Ok(program) = std::env::current_exe() else {
            return;
        };
        let error = Command::new(program)
            .args(std::env::args_os().skip(1))
            .env(variable, core)
            .exec();
        eprintln!("warning: could not restart with {variable}={core}: {error}");
    }
}

/// Passes each line of a framework process's output on as it is (whoever
/// started us reads the messages too), keeping its messages.
fn pass_on(output: impl BufRead) -> Result<protocol::Cell> {
    let mut cell = protocol::Cell::default();
    let mut out = std::io::stdout();
    for line in output.lines() {
        let line = line.context("reading the framework process's output")?;
        writeln!(out, "{line}")?;
        if let Some(Ok(message)) = Message::parse(&line) {
            cell.take(message);
        }
    }
    Ok(cell)
}

/// Runs the cell of `start`'s framework in a process of its own, passing
/// its output through; returns how many of its rows failed. A process that
/// ends without finishing its cell gets a failed row from its start record
/// (or from `start`, where it gave none).
pub fn run_framework(start: &Row, run_id: &str, rows: &Path) -> Result<usize> {
    let mut command = child(start.framework)?;
    command
        .env(RUN_ID_VAR, run_id)
        .env(ROWS_VAR, rows)
        .stdout(Stdio::piped());
    let mut process = command
        .spawn()
        .with_context(|| format!("starting the {} process", start.framework))?;
    let stdout = process.stdout.take().expect("piped");
    let passed_on = pass_on(BufReader::new(stdout));
    // Reaped whatever happened to its output: no process is left behind.
    let exit = process.wait()?;
    let cell = passed_on?;
    let finished = exit.success() || exit.code() == Some(EXIT_FAILURES_RECORDED.into());
    if finished && cell.status().is_some() {
        let failed = cell.rows.iter().filter(|r| r.status == Status::Failed);
        return Ok(failed.count());
    }
    let reason = if finished {
        format!(
            "the {} process ended ({exit}) but wrote no row",
            start.framework
        )
    } else {
        format!("the {} process died ({exit})", start.framework)
    };
    let row = cell
        .failure(Some(start), Status::Failed, &reason)
        .expect("a fallback start record");
    eprintln!("{} {}: {reason}", row.benchmark, row.framework);
    RowWriter::open(rows)?.append(&row)?;
    Message::Row { row }.emit()?;
    Ok(1)
}
