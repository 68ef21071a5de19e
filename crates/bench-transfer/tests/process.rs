//! A runner measures alike whoever starts it: run by hand without
//! `--framework`, and through `cargo xtask bench`, each framework's cell
//! runs in a process of its own, with OpenBLAS's core set by the runner
//! itself (neither start sets `OPENBLAS_CORETYPE` here).

use std::path::{Path, PathBuf};
use std::process::Command;

use bench_core::record::read_rows;
use bench_core::{openblas, Framework, Row, Status};

/// Small sizes, one repetition: the test is of processes, not speed.
const QUICK: &[&str] = &[
    "--device",
    "cpu",
    "--threads",
    "1",
    "--warmup",
    "0",
    "--repetitions",
    "1",
    "--set",
    "n=32",
    "--set",
    "iterations=1",
];

fn runner() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bench-transfer"))
}

/// The xtask binary of this build (built beside the runner by the
/// workspace's tests; built here when this crate's tests run alone).
fn xtask() -> PathBuf {
    let path = runner().with_file_name("xtask");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "xtask"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building xtask");
    }
    path
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("process-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Each framework measured, in a process of its own (not ours, not the
/// other's), with this CPU's OpenBLAS core.
fn assert_isolated_with_the_core(rows: &[Row], how: &str) {
    let pid_of = |framework| {
        let row = rows
            .iter()
            .find(|r| r.framework == framework && r.status == Status::Ok)
            .unwrap_or_else(|| panic!("{how}: no ok {framework} row in {rows:#?}"));
        row.environment.pid.expect("the row names its process")
    };
    let (mlx, torch) = (pid_of(Framework::Mlx), pid_of(Framework::Torch));
    assert_ne!(mlx, torch, "{how}: both frameworks in one process");
    assert!(![mlx, torch].contains(&std::process::id()), "{how}");
    let core = openblas::core_for_this_cpu().unwrap_or_default();
    for row in rows {
        assert_eq!(row.environment.openblas_core, core, "{how}: {row:#?}");
    }
}

/// Runs `command` without `OPENBLAS_CORETYPE`, which must succeed.
fn run(command: &mut Command) {
    let output = command.env_remove(openblas::VARIABLE).output().unwrap();
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{command:?}: {said}");
}

#[test]
fn by_hand_and_through_xtask_each_framework_has_its_process_and_the_blas_core() {
    let dir = temp_dir("isolation");
    let by_hand = dir.join("by-hand.jsonl");
    run(Command::new(runner())
        .arg("--rows")
        .arg(&by_hand)
        .args(QUICK));
    assert_isolated_with_the_core(&read_rows(&by_hand).unwrap(), "by hand");

    // The suite runs prebuilt runners from a folder of bench-* binaries.
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(runner(), bin.join("bench-transfer")).unwrap();
    let results = dir.join("results");
    run(Command::new(xtask())
        .args(["bench", "--prebuilt"])
        .arg(&bin)
        .arg("--results")
        .arg(&results)
        .args(["--framework", "torch", "mlx"])
        .args(QUICK));
    let record = std::fs::read_dir(&results)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .expect("the run's record");
    assert_isolated_with_the_core(&read_rows(&record).unwrap(), "through xtask");
    std::fs::remove_dir_all(&dir).unwrap();
}
