//! `cargo xtask bench --references`: after the twins, each benchmark's
//! Python references (`xtask/scripts/references/<bench>.py`) run at the
//! configuration of the twins' rows just written, on the same device and in
//! the same invocation, so that the report can set each twin beside its
//! framework's own Python paths.
//!
//! They run in `.cache/references-venv`, built from the hash-pinned
//! `requirements.lock` (PyPI's torch is a CUDA build: about 4.7 GB
//! installed), or in the Python that `--python` names (checked for the
//! packages first). MLX's CPU BLAS there is pointed at OpenBLAS, as for the
//! twins, so that the CPU references measure MLX and not netlib.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use bench_core::record::{read_records, Status};

use crate::cell_process::{self, End};
use crate::interrupt::Interrupt;
use xtask_setup::{download, setup};

pub const SCRIPTS: &str = "xtask/scripts/references";
const LOCK: &str = "requirements.lock";
const VENV: &str = ".cache/references-venv";
/// Inside the venv: the sha256 of the lock it was built from.
const VENV_STAMP: &str = ".requirements-lock-sha256";

/// The Python to run the references with: `given`, checked for the
/// packages, or the pinned environment (built on first use).
pub fn python(root: &Path, given: Option<&Path>) -> Result<PathBuf> {
    if let Some(python) = given {
        check_packages(python)?;
        return Ok(python.to_path_buf());
    }
    let venv = root.join(VENV);
    let lock = root.join(SCRIPTS).join(LOCK);
    let wanted = download::sha256_of(&lock)?;
    let built = fs::read_to_string(venv.join(VENV_STAMP)).unwrap_or_default();
    if built.trim() != wanted {
        eprintln!(
            "references: building {} from {} (about 4.7 GB; once)",
            venv.display(),
            lock.display()
        );
        build_venv(&venv, &lock)?;
        fs::write(venv.join(VENV_STAMP), &wanted)?;
    }
    Ok(venv.join("bin/python"))
}

fn build_venv(venv: &Path, lock: &Path) -> Result<()> {
    // Built in place (a venv's scripts name its own path), from scratch.
    if venv.exists() {
        fs::remove_dir_all(venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    run(Command::new("python3").args(["-m", "venv"]).arg(venv)).context(
        "creating the references' Python environment (Debian: apt-get install python3-venv)",
    )?;
    run(Command::new(venv.join("bin/python"))
        .args(["-m", "pip", "install", "--quiet", "--no-deps"])
        .args(["--require-hashes", "--only-binary", ":all:", "-r"])
        .arg(lock))
    .with_context(|| format!("installing {} (hash-checked)", lock.display()))?;
    for libs in glob_site_packages(venv, "mlx_cpu.libs")? {
        setup::use_openblas(&libs)?;
    }
    Ok(())
}

/// `<venv>/lib/python3.*/site-packages/<name>` folders.
fn glob_site_packages(venv: &Path, name: &str) -> Result<Vec<PathBuf>> {
    let lib = venv.join("lib");
    let mut found = Vec::new();
    for entry in fs::read_dir(&lib).with_context(|| format!("reading {}", lib.display()))? {
        let path = entry?.path().join("site-packages").join(name);
        if path.is_dir() {
            found.push(path);
        }
    }
    Ok(found)
}

/// The packages every reference imports, with a clear error naming the
/// missing ones.
fn check_packages(python: &Path) -> Result<()> {
    let modules = [
        "torch",
        "transformers",
        "tokenizers",
        "numpy",
        "mlx.core",
        "mlx_lm",
        "mlx_whisper",
    ];
    let probe = format!(
        "import importlib.util as u\nmissing=[m for m in {modules:?} if u.find_spec(m.split('.')[0]) is None]\nprint(' '.join(missing))"
    );
    let output = Command::new(python)
        .args(["-c", &probe])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        output.status.success(),
        "{} failed: {}",
        python.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let missing = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    ensure!(
        missing.is_empty(),
        "{} lacks the Python packages {missing}: install {}/{LOCK}, or leave out --python to let set-up build the pinned environment",
        python.display(),
        SCRIPTS
    );
    Ok(())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    ensure!(status.success(), "{command:?} failed ({status})");
    Ok(())
}

/// One twin configuration that has references to run.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub benchmark: String,
    pub device: String,
    pub precision: String,
    pub preset: String,
}

/// The configurations of the run's ok twin rows whose benchmark has a
/// reference script.
pub fn targets(root: &Path, twins_csv: &Path) -> Result<Vec<Target>> {
    let found: BTreeSet<Target> = read_records(twins_csv)?
        .into_iter()
        .filter(|r| r.status == Status::Ok && matches!(r.framework.as_str(), "torch" | "mlx"))
        .map(|r| Target {
            benchmark: r.benchmark,
            device: r.device,
            precision: r.precision,
            preset: r.preset,
        })
        .filter(|t| script(root, &t.benchmark).is_file())
        .collect();
    Ok(found.into_iter().collect())
}

pub fn script(root: &Path, benchmark: &str) -> PathBuf {
    root.join(SCRIPTS)
        .join(format!("{}.py", benchmark.replace('-', "_")))
}

/// What the references of one run came to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub ran: usize,
    pub failed: Vec<String>,
}

/// Everything a reference process needs to know about the run.
pub struct RunContext<'a> {
    pub root: &'a Path,
    pub python: &'a Path,
    /// The twins' rows of this run (the references read their settings).
    pub twins_csv: &'a Path,
    pub run_id: &'a str,
    pub threads: usize,
    pub limit: Duration,
}

/// Runs every backend that runs on each target's device, one process each;
/// a reference that fails or hangs costs only itself.
pub fn run_all(context: &RunContext, targets: &[Target], interrupt: &Interrupt) -> Result<Outcome> {
    let results = context
        .twins_csv
        .parent()
        .context("the twins' CSV has no folder")?;
    let out = results.join(format!("reference-{}.csv", context.run_id));
    // Once for the run: every reference row names the same checkout.
    let commit = bench_core::env::checkout_commit(context.root);
    let mut outcome = Outcome::default();
    for target in targets {
        let script = script(context.root, &target.benchmark);
        // A script that cannot list its backends costs only its benchmark.
        let listed = match backends(context.python, &script, &target.device) {
            Ok(listed) => listed,
            Err(error) => {
                outcome
                    .failed
                    .push(format!("{}: {error:#}", target.benchmark));
                continue;
            }
        };
        for backend in listed {
            if interrupt.signal().is_some() {
                return Ok(outcome);
            }
            let label = format!(
                "{} {backend} {} {}",
                target.benchmark, target.device, target.precision
            );
            eprintln!("reference {label}");
            let mut command = Command::new(context.python);
            command
                .current_dir(context.root)
                .arg(&script)
                .arg(&backend)
                .arg(context.twins_csv)
                .args(["--precision", &target.precision])
                .args(["--preset", &target.preset])
                .args(["--device", &target.device])
                .arg("--csv")
                .arg(&out)
                .env("BENCH_RUN_ID", context.run_id)
                .env("BENCH_THREADS", context.threads.to_string())
                .env("BENCH_GIT_COMMIT", &commit)
                .env("MLX_VS_TORCH_ASSETS", context.root.join(".cache/assets"))
                .env("PYTHONUNBUFFERED", "1");
            // Its output shows as it comes.
            let show: cell_process::LineSink =
                std::sync::Arc::new(|line: &str| eprintln!("{line}"));
            let (end, _) = cell_process::run(command, context.limit, interrupt, show)?;
            outcome.ran += 1;
            match end {
                End::Exited(status) if status.success() => {}
                End::Exited(status) => outcome
                    .failed
                    .push(format!("{label}: {}", cell_process::describe(status))),
                End::TimedOut => outcome.failed.push(format!(
                    "{label}: timed out after {} s",
                    context.limit.as_secs()
                )),
                End::Interrupted(_) => return Ok(outcome),
            }
        }
    }
    eprintln!(
        "references: {} ran, {} failed; rows in {}",
        outcome.ran,
        outcome.failed.len(),
        out.display()
    );
    for failure in &outcome.failed {
        eprintln!("  failed: {failure}");
    }
    Ok(outcome)
}

/// The script's backends that run on `device` (`--backends-for`).
fn backends(python: &Path, script: &Path, device: &str) -> Result<Vec<String>> {
    let output = Command::new(python)
        .arg(script)
        .args(["--backends-for", device])
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !output.status.success() {
        bail!(
            "{} --backends-for {device} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bench_core::record::{CsvAppender, RecordHeader};
    use bench_core::{Cell, DeviceKind, Framework, MeasureSettings, Precision, Preset};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn twin_row(benchmark: &str, framework: Framework, status_ok: bool) -> bench_core::Record {
        let cell = Cell {
            framework,
            device: DeviceKind::Cpu,
            precision: Precision::Bf16,
            preset: Preset::Quick,
            threads: 2,
            measure: MeasureSettings::default(),
            seed: 0,
            options: Vec::new(),
            knobs: &[],
        };
        let header = RecordHeader::for_cell("r1", benchmark, &cell);
        let env = bench_core::env::Environment::default();
        let mut row = header.failed("it broke", &env);
        if status_ok {
            row.status = Status::Ok;
            row.reason.clear();
        }
        row
    }

    #[test]
    fn targets_are_the_ok_twin_configurations_with_a_script() {
        let dir = std::env::temp_dir().join(format!("refruns-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("r1.csv");
        let mut appender = CsvAppender::open(&csv).unwrap();
        for row in [
            twin_row("whisper", Framework::Torch, true),
            twin_row("whisper", Framework::Mlx, true),
            twin_row("bert", Framework::Torch, false),
            twin_row("transfer", Framework::Torch, true),
        ] {
            appender.append(&row).unwrap();
        }
        let found = targets(&root(), &csv).unwrap();
        // bert failed, transfer has no reference script: whisper only, once.
        assert_eq!(
            found,
            vec![Target {
                benchmark: "whisper".into(),
                device: "cpu".into(),
                precision: "bf16".into(),
                preset: "quick".into(),
            }]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_model_benchmark_has_a_reference_script() {
        for bench in ["tinyllama", "lm-train", "bert", "whisper"] {
            assert!(script(&root(), bench).is_file(), "{bench}");
        }
    }

    #[test]
    fn a_python_without_the_packages_is_named_with_what_it_lacks() {
        // python3 without site-packages (-S) has none of them.
        let dir = std::env::temp_dir().join(format!("refpython-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let python = dir.join("python");
        fs::write(&python, "#!/bin/sh\nexec python3 -S \"$@\"\n").unwrap();
        let executable = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(&python, executable).unwrap();
        let error = check_packages(&python).unwrap_err().to_string();
        fs::remove_dir_all(&dir).unwrap();
        assert!(error.contains("lacks the Python packages"), "{error}");
        assert!(error.contains("torch"), "{error}");
    }
}
