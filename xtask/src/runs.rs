//! A suite's bookkeeping in `<results>/.runs/`: the lock that keeps a
//! second suite out of the same results folder while one runs, and each
//! run's plan (its `cargo xtask bench` settings) that `--resume` reads back.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use bench_core::Row;
use serde::{de::DeserializeOwned, Serialize};

/// Held for the whole suite; the operating system lets go of it when the
/// process ends, however it ends, so a lock is never stale.
pub struct SuiteLock {
    _file: File,
}

fn runs_dir(results: &Path) -> PathBuf {
    results.join(".runs")
}

/// Takes the results folder for this suite. Also the first write there, so
/// an unwritable folder or a full disk stops the suite before any cell.
pub fn lock(results: &Path, run_id: &str) -> Result<SuiteLock> {
    let dir = runs_dir(results);
    fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot write results to {}: creating {}",
            results.display(),
            dir.display()
        )
    })?;
    let path = dir.join("suite.lock");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| {
            format!(
                "cannot write results to {}: opening {}",
                results.display(),
                path.display()
            )
        })?;
    match fs4::FileExt::try_lock(&file) {
        Ok(()) => {}
        Err(fs4::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another `cargo xtask bench` is writing to {} ({}); wait for it to end or stop \
                 it, or give this one its own --results folder",
                results.display(),
                holder.trim()
            );
        }
        // Some network file systems have no locks: run unguarded, and say so.
        Err(fs4::TryLockError::Error(error)) => eprintln!(
            "warning: cannot lock {} ({error}); nothing stops a second suite from writing to {}",
            path.display(),
            results.display()
        ),
    }
    // Who holds it, for the message a second suite prints.
    let holder = format!(
        "pid {}, run {run_id}, since {}\n",
        std::process::id(),
        chrono::Utc::now().format("%H:%M:%S UTC")
    );
    file.set_len(0)
        .and_then(|()| (&file).write_all(holder.as_bytes()))
        .with_context(|| {
            format!(
                "cannot write results to {}: writing {}",
                results.display(),
                path.display()
            )
        })?;
    Ok(SuiteLock { _file: file })
}

/// A run id names files: only what `cargo xtask bench` makes (a UTC time).
pub fn check_run_id(run_id: &str) -> Result<()> {
    ensure!(
        !run_id.is_empty()
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "'{run_id}' is not a run id (e.g. 20261127T143323Z, the name of its CSV file)"
    );
    Ok(())
}

fn plan_path(results: &Path, run_id: &str) -> PathBuf {
    runs_dir(results).join(format!("{run_id}.json"))
}

/// Saves a run's settings for `--resume` (written whole: temp file, rename).
pub fn save_plan(results: &Path, run_id: &str, plan: &impl Serialize) -> Result<()> {
    let path = plan_path(results, run_id);
    let partial = path.with_extension("json.partial");
    let text = serde_json::to_string_pretty(plan)?;
    fs::write(&partial, text)
        .and_then(|()| fs::rename(&partial, &path))
        .with_context(|| {
            format!(
                "cannot write results to {}: writing {}",
                results.display(),
                path.display()
            )
        })
}

/// The settings of an earlier run, as `save_plan` left them.
pub fn load_plan<T: DeserializeOwned>(results: &Path, run_id: &str) -> Result<T> {
    check_run_id(run_id)?;
    let path = plan_path(results, run_id);
    let text = match fs::read_to_string(&path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => bail!(
            "no run {run_id} to resume in {}: {} is missing (was it started by `cargo xtask \
             bench` with this --results folder?)",
            results.display(),
            path.display()
        ),
        other => other.with_context(|| format!("reading {}", path.display()))?,
    };
    serde_json::from_str(&text).with_context(|| format!("{} is not a run's plan", path.display()))
}

/// The rows of a run so far (none if it has no record yet). A line that
/// does not parse is left out: it cannot stand for a finished cell.
pub fn rows(jsonl: &Path) -> Result<Vec<Row>> {
    let text = match fs::read_to_string(jsonl) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", jsonl.display())),
    };
    Ok(text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect())
}
