//! The runner on the CPU, as `cargo xtask bench` starts it: two ranks of
//! each framework (MLX's ring over loopback, PyTorch's gloo through a
//! FileStore), every rank checking the sum before timing; `dp-train` at two
//! ranks following one rank's losses with every rank ending alike; and a
//! rank that dies fails the cell, with no rank left behind.

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

/// `dp-train` on a tiny lm-train model: one warm-up step and two timed.
const TINY_DP: &[&str] = &[
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
    "case=dp-train",
    "--set",
    "layers=2",
    "--set",
    "dim=64",
    "--set",
    "heads=2",
    "--set",
    "ffn=128",
    "--set",
    "context=32",
    "--set",
    "batch_size=4",
    "--set",
    "text_files=1",
];

/// Runs the runner for both frameworks at `precision`, with `envs`;
/// returns its output and rows.
fn run(name: &str, precision: &str, envs: &[(&str, &str)]) -> (Output, Vec<Row>) {
    run_with(name, SMALL, precision, envs)
}

fn run_with(
    name: &str,
    args: &[&str],
    precision: &str,
    envs: &[(&str, &str)],
) -> (Output, Vec<Row>) {
    let dir = temp_dir(name);
    let rows = dir.join("rows.jsonl");
    let output = Command::new(runner())
        .args(args)
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

fn losses(row: &Row) -> Vec<f64> {
    setting(row, "losses")
        .split(' ')
        .map(|loss| loss.parse().unwrap())
        .collect()
}

/// At a fixed global batch of 4, two ranks of 2 rows each take one rank's
/// steps: the same losses (float32 sums in another order: within 1e-5
/// relative), and both ranks end with the same parameters.
#[test]
fn dp_train_at_two_ranks_follows_one_rank_and_every_rank_ends_alike() {
    let one = ["--set", "world=1"];
    let two = ["--set", "world=2"];
    let (output, one_rank) = run_with("dp1", &[TINY_DP, &one].concat(), "f32", &[]);
    assert!(output.status.success(), "{output:?}");
    let (output, two_ranks) = run_with("dp2", &[TINY_DP, &two].concat(), "f32", &[]);
    assert!(output.status.success(), "{output:?}");
    for framework in [Framework::Mlx, Framework::Torch] {
        let of = |rows: &[Row]| {
            rows.iter()
                .find(|r| r.framework == framework && r.case == "dp-train")
                .unwrap_or_else(|| panic!("no {framework} dp-train row: {rows:#?}"))
                .clone()
        };
        let (single, pair) = (of(&one_rank), of(&two_ranks));
        for row in [&single, &pair] {
            assert_eq!(row.status, Status::Ok, "{row:#?}");
            assert_eq!(setting(row, "global_batch"), "4");
            assert_eq!(losses(row).len(), 3, "every step's loss: {row:#?}");
            assert!(row.throughput.unwrap() > 0.0);
        }
        assert_eq!(setting(&pair, "rank_batch"), "2");
        assert_eq!(setting(&pair, "world"), "2");
        assert_eq!(setting(&pair, "checksums").split(' ').count(), 2);
        assert_eq!(number(&pair, "checksum_spread"), 0.0, "{pair:#?}");
        for (a, b) in losses(&single).iter().zip(losses(&pair)) {
            assert!((a - b).abs() <= 1e-5 * a.abs(), "{framework}: {a} vs {b}");
        }
        // The updates moved the model: the losses are not all one value.
        let l = losses(&pair);
        assert!(l.iter().any(|x| (x - l[0]).abs() > 1e-4), "{l:?}");
    }
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
