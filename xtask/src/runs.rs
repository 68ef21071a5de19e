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

/// The rows of a run so far (none if it has no record yet). A run written
/// before rows were whole JSONL lines (schema 1) cannot be resumed: its
/// cells would all run again and append rows of another layout.
pub fn rows(jsonl: &Path) -> Result<Vec<Row>> {
    let text = match fs::read_to_string(jsonl) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error).with_context(|| format!("reading {}", jsonl.display())),
    };
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(index, line)| {
            serde_json::from_str(line).with_context(|| {
                format!(
                    "{}:{}: not a result row of this suite's layout (a run from before schema 2?); start a new run instead of resuming it",
                    jsonl.display(),
                    index + 1
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_core::env::Environment;
    use bench_core::{Cell, Status};

    #[test]
    fn a_run_of_rows_resumes_and_one_of_the_old_layout_is_refused() {
        let dir = std::env::temp_dir().join(format!("runs-rows-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.jsonl");
        assert!(
            rows(&path).unwrap().is_empty(),
            "no record yet: nothing done"
        );
        let row = Row::start(
            "run",
            "bert",
            &Cell::for_checks(),
            "1",
            &Environment::default(),
        )
        .ended(Status::Interrupted, "stopped");
        fs::write(&path, format!("{}\n", serde_json::to_string(&row).unwrap())).unwrap();
        assert_eq!(rows(&path).unwrap(), vec![row]);
        // A schema-1 line: samples only, no typed cell.
        fs::write(&path, "{\"schema_version\":1,\"samples_s\":[0.1]}\n").unwrap();
        let error = format!("{:#}", rows(&path).unwrap_err());
        assert!(error.contains("start a new run"), "{error}");
        assert!(error.contains("run.jsonl:1"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
