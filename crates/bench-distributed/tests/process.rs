//! The runner on the CPU, as `cargo xtask bench` starts it: two ranks of
//! each framework (MLX's ring over loopback, PyTorch's gloo through a
//! FileStore), every rank checking the sum before timing; and a rank that
//! dies fails the cell, with no rank left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bench_core::record::read_rows;
use bench_core::{Framework, Row, Status};

/// Two small messages, two repetitions: the test is of ranks, not speed.
const SMALL: &[&str] = &[
    "--device",
    "cpu",
    "--threads",
    "2",
    "--warmup",
    "1",
    "--repetitions",
    "2",
    "--min-repetitions",
    "2",
    "--set",
    "min_bytes=4096",
    "--set",
    "max_bytes=65536",
    "--set",
    "factor=16",
    "--set",
    "ops=2",
];

fn runner() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_bench-distributed"))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("distributed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the runner for both frameworks at `precision`, with `envs`;
/// returns its output and rows.
fn run(name: &str, precision: &str, envs: &[(&str, &str)]) -> (Output, Vec<Row>) {
    let dir = temp_dir(name);
    let rows = dir.join("rows.jsonl");
    let output = Command::new(runner())
        .args(SMALL)
        .args(["--framework", "mlx", "torch", "--precision", precision])
        .arg("--rows")
        .arg(&rows)
        .envs(envs.iter().copied())
        .output()
        .unwrap();
    let read = read_rows(&rows).unwrap_or_default();
    std::fs::remove_dir_all(&dir).unwrap();
    (output, read)
}

fn setting<'a>(row: &'a Row, key: &str) -> &'a str {
    row.settings
        .get(key)
        .unwrap_or_else(|| panic!("{key} missing from {row:#?}"))
}

fn number(row: &Row, key: &str) -> f64 {
    setting(row, key).parse().unwrap()
}

fn check_rows(rows: &[Row], precision: &str, dtype: &str, output: &Output) {
    let said = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        rows.len(),
        4,
        "two sizes x two frameworks: {rows:#?}\n{said}"
    );
    for row in rows {
        assert_eq!(row.status, Status::Ok, "{row:#?}\n{said}");
        assert_eq!(row.precision.to_string(), precision);
        assert!(["allreduce-4KiB", "allreduce-64KiB"].contains(&row.case.as_str()));
        let backend = match row.framework {
            Framework::Mlx => "ring",
            Framework::Torch => "gloo",
        };
        assert_eq!(setting(row, "backend"), backend);
        assert_eq!(setting(row, "world"), "2");
        assert_eq!(setting(row, "dtype"), dtype);
        assert_eq!(setting(row, "NCCL_NVLS_ENABLE"), "0");
        assert_eq!(setting(row, "TORCH_SYMM_MEM_DISABLE_MULTICAST"), "1");
        assert_eq!(setting(row, "NVSHMEM_DISABLE_NVLS"), "1");
        assert_eq!(setting(row, "rank_medians_s").split(' ').count(), 2);
        assert_eq!(row.samples_s.len(), 2);
        // nccl-tests' definitions: at n = 2, busbw = algbw x 1.
        let median = row.summary.as_ref().unwrap().median;
        let bytes = number(row, "bytes");
        let latency = number(row, "latency_us") / 1e6;
        assert!((latency - median / 2.0).abs() < 1e-9 * median.max(1.0));
        let algbw = number(row, "algbw_gbs");
        assert!((algbw - bytes / latency / 1e9).abs() < 1e-6 * algbw);
        assert_eq!(number(row, "busbw_gbs"), algbw);
        assert!((row.throughput.unwrap() - algbw).abs() < 1e-6 * algbw);
    }
}

#[test]
fn both_twins_sum_over_two_ranks_in_f32_and_bf16() {
    let (output, rows) = run("f32", "f32", &[]);
    assert!(output.status.success(), "{output:?}");
    check_rows(&rows, "f32", "float32", &output);
    let (output, rows) = run("bf16", "bf16", &[]);
    assert!(output.status.success(), "{output:?}");
    check_rows(&rows, "bf16", "bfloat16", &output);
    // bf16 sends half the bytes' elements twice over: 4 KiB is 2048 of them.
    let small = rows.iter().find(|r| r.case == "allreduce-4KiB").unwrap();
    assert_eq!(setting(small, "elements"), "2048");
}

/// Processes whose environment holds `mark`: this test's ranks.
#[cfg(target_os = "linux")]
fn processes_marked(mark: &str) -> Vec<u32> {
    let needle = format!("DISTRIBUTED_TEST_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ")).is_ok_and(|environ| {
                environ
                    .split(|&b| b == 0)
                    .any(|var| var == needle.as_bytes())
            })
        })
        .collect()
}

#[cfg(target_os = "linux")]
#[test]
fn a_rank_that_dies_fails_the_cell_and_leaves_no_rank_behind() {
    let mark = format!("dies-{}", std::process::id());
    let (output, rows) = run(
        "dies",
        "f32",
        &[
            ("BENCH_DISTRIBUTED_FAIL_RANK", "1"),
            ("DISTRIBUTED_TEST_MARK", &mark),
        ],
    );
    assert!(!output.status.success(), "the runner says a cell failed");
    assert_eq!(rows.len(), 2, "one failed row per framework: {rows:#?}");
    for row in &rows {
        assert_eq!(row.status, Status::Failed);
        assert!(
            row.reason.contains("rank 1 died (exit status: 101)")
                && row.reason.contains("dying on purpose"),
            "{}",
            row.reason
        );
    }
    assert_eq!(
        processes_marked(&mark),
        Vec::<u32>::new(),
        "ranks left behind"
    );
}
