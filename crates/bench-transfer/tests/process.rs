//! A runner measures alike whoever starts it: run by hand without
//! `--framework`, and through `cargo xtask bench`, each framework's cell
//! runs in a process of its own, with OpenBLAS's core set by the runner
//! itself (neither start sets `OPENBLAS_CORETYPE` here); and both twins'
//! bandwidth is divided by one ceiling per device and run.

use std::path::{Path, PathBuf};
use std::process::Command;

use bench_core::record::read_rows;
use bench_core::{ceiling, openblas, Ceiling, DeviceKind, Framework, Row, Status};

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
    assert_isolated_with_the_core(&through_xtask(&bin, &dir), "through xtask");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The rows of a suite run (both twins, the quick sizes) of the prebuilt
/// runners in `bin`, with its results in `dir/results`.
fn through_xtask(bin: &Path, dir: &Path) -> Vec<Row> {
    let results = dir.join("results");
    run(Command::new(xtask())
        .args(["bench", "--prebuilt"])
        .arg(bin)
        .arg("--results")
        .arg(&results)
        .args(["--framework", "torch", "mlx"])
        .args(QUICK));
    let record = std::fs::read_dir(&results)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| path.extension().is_some_and(|e| e == "jsonl"))
        .expect("the run's record");
    read_rows(&record).unwrap()
}

/// The copy-ceiling probe of this build (built here when absent).
fn device_ceiling() -> PathBuf {
    let path = runner().with_file_name("device-ceiling");
    if !path.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "device-ceiling"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building device-ceiling");
    }
    path
}

/// The ok `ceiling-copy` rows of both frameworks, and the ceiling they
/// divide by: the same for both, each one's fraction its own bandwidth
/// over it.
fn assert_one_ceiling(rows: &[Row], how: &str) -> (f64, String) {
    let copies: Vec<&Row> = rows
        .iter()
        .filter(|r| r.case == "ceiling-copy" && r.status == Status::Ok)
        .collect();
    assert_eq!(copies.len(), 2, "{how}: {rows:#?}");
    let setting = |row: &Row, key: &str| {
        row.settings
            .get(key)
            .unwrap_or_else(|| panic!("{how}: no {key} in {row:#?}"))
            .to_owned()
    };
    for key in ["ceiling_gbps", "ceiling_probe", "ceiling_measured"] {
        assert_eq!(
            setting(copies[0], key),
            setting(copies[1], key),
            "{how}: both twins' {key}"
        );
    }
    let measured = setting(copies[0], "ceiling_measured");
    let ceiling: f64 = setting(copies[0], "ceiling_gbps").parse().unwrap();
    assert!(ceiling.is_finite() && ceiling > 0.0, "{how}: {ceiling}");
    for row in copies {
        let fraction: f64 = setting(row, "bandwidth_fraction").parse().unwrap();
        let own = row.throughput.expect("a copy row has GB/s") / ceiling;
        assert!(
            (fraction - own).abs() <= 6e-4 * own.max(1.0),
            "{how}: {} fraction {fraction}, its GB/s over the ceiling {own}",
            row.framework
        );
    }
    (ceiling, measured)
}

/// One ceiling per device and run: through the suite both twins divide by
/// the one `device-ceiling` measured before the cells; by hand, a runner
/// given a ceiling (as the suite gives it) divides both twins by it.
#[test]
fn both_twins_divide_by_one_ceiling_measured_once_for_the_run() {
    let dir = temp_dir("ceiling");
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(runner(), bin.join("bench-transfer")).unwrap();
    std::os::unix::fs::symlink(device_ceiling(), bin.join("device-ceiling")).unwrap();
    let rows = through_xtask(&bin, &dir);
    let (_, measured) = assert_one_ceiling(&rows, "through xtask");
    let run_id = &rows[0].run_id;
    let once = format!("once for run {run_id}, before its cells (");
    assert!(measured.starts_with(&once), "{measured}");

    let given = Ceiling::of_samples(DeviceKind::Cpu, &[1.0], 1234.5e9, "given".into()).unwrap();
    let by_hand = dir.join("by-hand.jsonl");
    run(Command::new(runner())
        .env(ceiling::VARIABLE, given.to_variable())
        .arg("--rows")
        .arg(&by_hand)
        .args(QUICK));
    let (ceiling, _) = assert_one_ceiling(&read_rows(&by_hand).unwrap(), "by hand");
    assert_eq!(ceiling, 1234.5);
    std::fs::remove_dir_all(&dir).unwrap();
}
