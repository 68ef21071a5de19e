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
use bench_core::{DeviceKind, Precision, Preset, Row, Status};

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
    pub device: DeviceKind,
    pub precision: Precision,
    pub preset: Preset,
}

/// The configurations of the run's ok twin rows whose benchmark has a
/// reference script.
pub fn targets(root: &Path, rows: &[Row]) -> Vec<Target> {
    let found: BTreeSet<Target> = rows
        .iter()
        .filter(|r| r.status == Status::Ok && r.is_twin())
        .map(|r| Target {
            benchmark: r.benchmark.clone(),
            device: r.device,
            precision: r.precision,
            preset: r.preset,
        })
        .filter(|t| script(root, &t.benchmark).is_file())
        .collect();
    found.into_iter().collect()
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
        let listed = match backends(context.python, &script, &target.device.to_string()) {
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
                .args(["--precision", &target.precision.to_string()])
                .args(["--preset", &target.preset.to_string()])
                .args(["--device", &target.device.to_string()])
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
    use bench_core::env::Environment;
    use bench_core::{Cell, Framework};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf()
    }

    fn twin_row(benchmark: &str, framework: Framework, status: Status) -> Row {
        let cell = Cell {
            framework,
            precision: Precision::Bf16,
            ..Cell::for_checks()
        };
        Row::start("r1", benchmark, &cell, "1", &Environment::default()).ended(status, "")
    }

    #[test]
    fn targets_are_the_ok_twin_configurations_with_a_script() {
        let rows = [
            twin_row("whisper", Framework::Torch, Status::Ok),
            twin_row("whisper", Framework::Mlx, Status::Ok),
            twin_row("bert", Framework::Torch, Status::Failed),
            twin_row("transfer", Framework::Torch, Status::Ok),
        ];
        // bert failed, transfer has no reference script: whisper only, once.
        assert_eq!(
            targets(&root(), &rows),
            vec![Target {
                benchmark: "whisper".into(),
                device: DeviceKind::Cpu,
                precision: Precision::Bf16,
                preset: Preset::Quick,
            }]
        );
    }

    /// The Python references write the suite's row (schema 2) and its CSV
    /// export by hand: the Rust types must read both.
    #[test]
    fn rows_the_python_references_write_read_as_rows() {
        let dir = std::env::temp_dir().join(format!("refrows-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let csv = dir.join("reference-r1.csv");
        let program = format!(
            "import common\n\
             common.write_rows({csv:?}, benchmark='bert', framework='torch-python', device='cpu', \
               precision='bf16', preset='quick', reference='hf-eager', packages=[], \
               cases=[('step', [0.25, 0.5, 1.0], 8, 'samples/s')], settings={{'seed': 0, 'note': 'a;b'}}, \
               device_name='cpu')\n\
             common.failed_row({csv:?}, benchmark='bert', framework='mlx-python', device='cpu', \
               precision='bf16', preset='quick', reference='mlx', reason='no mlx')\n"
        );
        let status = Command::new("python3")
            .current_dir(root().join(SCRIPTS))
            .args(["-c", &program])
            .status()
            .unwrap();
        assert!(status.success());
        let rows = bench_core::record::read_rows(&csv.with_extension("jsonl")).unwrap();
        assert_eq!(rows.len(), 2);
        let ok = &rows[0];
        assert_eq!((ok.framework, ok.is_twin()), (Framework::Torch, false));
        assert_eq!(ok.samples_s, [0.25, 0.5, 1.0]);
        assert_eq!(ok.median_s(), Some(0.5));
        assert_eq!(ok.throughput, Some(16.0));
        assert_eq!(ok.setting("note"), Some("a,b"));
        assert_eq!(ok.setting("reference_path"), Some("hf-eager"));
        assert_eq!(rows[1].status, Status::Failed);
        assert_eq!(rows[1].framework_label(), "mlx-python");
        // The CSV beside is the export of the same rows.
        let mut reader = csv::Reader::from_path(&csv).unwrap();
        for (line, row) in reader
            .deserialize::<bench_core::csv_export::CsvRow>()
            .zip(&rows)
        {
            let mut back = line.unwrap().into_row().unwrap();
            back.samples_s = row.samples_s.clone();
            assert_eq!(&back, row);
        }
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
