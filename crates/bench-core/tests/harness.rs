//! The harness with a fake framework: the loop's counts and the runner's
//! handling of failing, panicking and unavailable cells.

use std::cell::Cell as Counter;
use std::time::Duration;

use anyhow::{bail, Result};
use bench_core::cli::{self, Benchmark, CellOutput, FrameworkHooks, RunnerArgs};
use bench_core::csv_export::CsvRow;
use bench_core::record::{csv_path, read_rows};
use bench_core::row::ROW_SCHEMA_VERSION;
use bench_core::{
    measure, CaseResult, Cell, DeviceKind, Framework, MeasureSettings, Runtime, Status, Unavailable,
};
use clap::Parser;

#[derive(Default)]
struct FakeRuntime {
    syncs: Counter<usize>,
}

impl Runtime for FakeRuntime {
    fn device(&self) -> DeviceKind {
        DeviceKind::Cpu
    }
    fn synchronize(&self) -> Result<()> {
        self.syncs.set(self.syncs.get() + 1);
        Ok(())
    }
    fn peak_memory_bytes(&self) -> Option<u64> {
        None
    }
    fn reset_peak_memory(&self) {}
    fn device_description(&self) -> String {
        "fake cpu".into()
    }
}

#[test]
fn warmup_is_untimed_and_every_timed_step_is_bracketed_by_syncs() {
    let runtime = FakeRuntime::default();
    let settings = MeasureSettings {
        warmup: 2,
        repetitions: 4,
        min_repetitions: 1,
        time_budget: Duration::from_secs(60),
    };
    let mut steps = 0;
    let samples = measure(&settings, &runtime, || {
        steps += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(samples.len(), 4);
    assert_eq!(steps, 6);
    // one sync after each warm-up step, two around each timed step
    assert_eq!(runtime.syncs.get(), 2 + 2 * 4);
}

#[test]
fn criterion_iterations_run_back_to_back_between_two_syncs() {
    let runtime = FakeRuntime::default();
    let mut calls = 0;
    bench_core::time_iterations(&runtime, 5, || calls += 1);
    assert_eq!(calls, 5);
    assert_eq!(runtime.syncs.get(), 2);
}

#[test]
fn time_budget_stops_after_min_repetitions() {
    let runtime = FakeRuntime::default();
    let settings = MeasureSettings {
        warmup: 0,
        repetitions: 100,
        min_repetitions: 3,
        time_budget: Duration::from_millis(1),
    };
    let samples = measure(&settings, &runtime, || {
        std::thread::sleep(Duration::from_millis(2));
        Ok(())
    })
    .unwrap();
    assert_eq!(samples.len(), 3);
    assert!(samples.iter().all(|&s| s >= 0.002));
}

#[test]
fn a_failing_step_is_an_error() {
    let runtime = FakeRuntime::default();
    let error = measure(&MeasureSettings::default(), &runtime, || {
        bail!("kernel failed")
    })
    .unwrap_err();
    assert!(error.to_string().contains("kernel failed"));
}

/// MLX fails, PyTorch panics, and the GPU is unavailable: each becomes a row.
struct Troubled;

impl Benchmark for Troubled {
    fn name(&self) -> &'static str {
        "troubled"
    }
    fn knobs(&self) -> &'static [bench_core::Knob] {
        &[]
    }
    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        match (cell.device, cell.framework) {
            (DeviceKind::Gpu, _) => bail!(Unavailable("no accelerator".into())),
            (_, Framework::Mlx) => Ok(CellOutput {
                device_name: "cpu".into(),
                cases: vec![CaseResult {
                    case: "step".into(),
                    samples: vec![0.5, 0.25, 1.0],
                    throughput: Some(bench_core::Throughput {
                        work_per_repetition: 10.0,
                        unit: "items/s".into(),
                    }),
                    peak_memory_bytes: Some(1024),
                    settings: bench_core::Settings::new().with("size", 3),
                }],
            }),
            (_, Framework::Torch) => panic!("twin exploded"),
        }
    }
}

fn hooks(framework: Framework) -> FrameworkHooks {
    FrameworkHooks {
        framework,
        version: || "1.0".into(),
        configure_process: |_, _, _| {},
    }
}

/// The runner's arguments for one framework's cell (several frameworks
/// would each run in a process of their own: this test binary).
fn one_framework(rows: &std::path::Path, framework: &str, extra: &[&str]) -> RunnerArgs {
    let mut argv = vec![
        "runner",
        "--rows",
        rows.to_str().unwrap(),
        "--framework",
        framework,
    ];
    argv.extend(extra);
    RunnerArgs::parse_from(argv)
}

#[test]
fn runner_records_every_cell_and_goes_on_after_failures() {
    let dir = std::env::temp_dir().join(format!("harness-{}", std::process::id()));
    let path = dir.join("out.jsonl");
    let _ = std::fs::remove_dir_all(&dir);
    let frameworks = [hooks(Framework::Mlx), hooks(Framework::Torch)];
    let cpu = ["--threads", "1", "--run-id", "t"];
    let mlx = one_framework(&path, "mlx", &cpu);
    assert_eq!(cli::run("0.1.0", &Troubled, &frameworks, &mlx).unwrap(), 0);
    let torch = one_framework(&path, "torch", &cpu);
    assert_eq!(
        cli::run("0.1.0", &Troubled, &frameworks, &torch).unwrap(),
        1
    );
    let gpu = one_framework(&path, "mlx", &["--device", "gpu"]);
    assert_eq!(cli::run("0.1.0", &Troubled, &frameworks, &gpu).unwrap(), 0);

    let rows = read_rows(&path).unwrap();
    assert_eq!(rows.len(), 3, "{rows:#?}");
    let mlx = &rows[0];
    assert_eq!(
        (mlx.framework, mlx.status, mlx.case.as_str()),
        (Framework::Mlx, Status::Ok, "step")
    );
    assert_eq!(mlx.schema_version, ROW_SCHEMA_VERSION);
    assert_eq!(mlx.samples_s, vec![0.5, 0.25, 1.0]);
    assert_eq!(mlx.median_s(), Some(0.5));
    assert_eq!(mlx.throughput, Some(20.0));
    assert_eq!(mlx.peak_memory_bytes, Some(1024));
    assert_eq!(
        (mlx.setting("threads"), mlx.setting("size")),
        (Some("1"), Some("3"))
    );
    assert_eq!(mlx.environment.mlx_version, "1.0");
    assert_eq!(mlx.environment.pid, Some(std::process::id()));
    let torch = &rows[1];
    assert_eq!(torch.status, Status::Failed);
    assert!(torch.reason.contains("twin exploded"), "{}", torch.reason);
    assert!(torch.samples_s.is_empty());
    let gpu = &rows[2];
    assert_eq!(
        (gpu.status, gpu.reason.as_str()),
        (Status::Skipped, "no accelerator")
    );

    // The CSV beside it is an export of the same rows.
    let mut reader = csv::Reader::from_path(csv_path(&path)).unwrap();
    let lines: Vec<CsvRow> = reader.deserialize().map(Result::unwrap).collect();
    assert_eq!(lines.len(), rows.len());
    assert_eq!(lines[0], CsvRow::from(&rows[0]));
    assert_eq!(lines[0].median_s, Some(0.5));
    assert_eq!(lines[1].framework, "torch");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Both twins run out of GPU memory: libtorch's error arrives as an
/// `unwrap` panic, MLX's as an error.
struct Hungry;

impl Benchmark for Hungry {
    fn name(&self) -> &'static str {
        "hungry"
    }
    fn knobs(&self) -> &'static [bench_core::Knob] {
        &[]
    }
    fn run(&self, cell: &Cell) -> Result<CellOutput> {
        match cell.framework {
            // As tch's error reaches a twin that unwraps it.
            Framework::Torch => panic!(
                "called `Result::unwrap()` on an `Err` value: Torch(\"CUDA out of memory. \
                 Tried to allocate 64.00 GiB. GPU 0 has a total capacity of 139.81 GiB of \
                 which 2.19 GiB is free.\\nException raised from malloc\")"
            ),
            Framework::Mlx => {
                bail!("step: [metal::malloc] Attempting to allocate 96905199616 bytes which is greater than the maximum allowed buffer size")
            }
        }
    }
}

#[test]
fn out_of_memory_is_a_failed_row_naming_it_and_the_sizes() {
    let dir = std::env::temp_dir().join(format!("harness-oom-{}", std::process::id()));
    let path = dir.join("out.jsonl");
    let _ = std::fs::remove_dir_all(&dir);
    let frameworks = [hooks(Framework::Torch), hooks(Framework::Mlx)];
    for framework in ["torch", "mlx"] {
        let sizes = ["--preset", "paper", "--set", "batch_size=1024"];
        let args = one_framework(&path, framework, &sizes);
        assert_eq!(cli::run("0.1.0", &Hungry, &frameworks, &args).unwrap(), 1);
    }
    let rows = read_rows(&path).unwrap();
    assert_eq!(rows.len(), 2);
    for (row, detail) in rows.iter().zip([
        "CUDA out of memory. Tried to allocate 64.00 GiB.",
        "[metal::malloc] Attempting to allocate 96905199616 bytes",
    ]) {
        assert_eq!(row.status, Status::Failed);
        assert!(
            row.reason
                .starts_with("out of memory (preset=paper; batch_size=1024): ")
                && row.reason.contains(detail),
            "{}",
            row.reason
        );
        assert!(
            !row.reason.contains("unwrap") && !row.reason.contains("panicked"),
            "{}",
            row.reason
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_full_disk_fails_the_runner_naming_the_file() {
    let frameworks = [hooks(Framework::Mlx)];
    let args = RunnerArgs::parse_from(["runner", "--rows", "/dev/full", "--threads", "1"]);
    let error = cli::run("0.1.0", &Troubled, &frameworks, &args).unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("/dev/full") && text.contains("No space left on device"),
        "{text}"
    );
}
