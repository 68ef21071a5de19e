//! Two runs that differ in one knob only stay apart in every table,
//! chart and comparison (`identity`): tests across the modules.
use std::fs;
use std::path::Path;

use bench_core::settings::Pairs;
use bench_core::Row;

use crate::results::tests::{row, set_settings, temp_dir, write_run};
use crate::twins::{self, Titles};
use crate::{charts, compare, report};

fn titles() -> Titles {
    [(
        "transfer".to_owned(),
        ("CPU/GPU switch".to_owned(), "switch".to_owned()),
    )]
    .into()
}

/// Both twins of one quick run at `n`, PyTorch taking `torch` seconds,
/// MLX one; `n` in the settings as the twin records it, and in the
/// knobs where it is not quick's 512.
fn run(id: &str, torch: f64, n: usize) -> Vec<Row> {
    [("torch", torch), ("mlx", 1.0)]
        .into_iter()
        .map(|(framework, median)| {
            let mut r = row(framework, "switch", median, id);
            r.samples_s = [0.99, 1.0, 1.01].map(|f| f * median).to_vec();
            set_settings(&mut r, &format!("threads=2;n={n};iterations=4"));
            if n != 512 {
                r.knobs = Pairs::decode(&format!("n={n}"));
            }
            r
        })
        .collect()
}

/// A run at the quick sizes, and one of the same commit and machine at
/// n=2048: without the knob in the key they would pool as two passes.
fn two_runs() -> (Vec<Row>, Vec<Row>) {
    (run("r1", 2.0, 512), run("r22", 3.0, 2048))
}

const DEFAULT_LINE: &str =
    "| CPU/GPU switch (quick) | - | f32 | best (-; -) | 2.000 (IQR 1%) | 1.000 (IQR 1%) | 2.00x [";
const SIZED_LINE: &str = "| CPU/GPU switch (quick, n=2048) | - | f32 | best (-; -) | 3.000 (IQR 1%) | 1.000 (IQR 1%) | 3.00x [";

#[test]
fn the_speedup_table_keeps_them_apart() {
    let (a, b) = two_runs();
    let rows: Vec<Row> = a.into_iter().chain(b).collect();
    let refs: Vec<&Row> = rows.iter().collect();
    let pairs = twins::pairs(&refs, &titles());
    let labels: Vec<&str> = pairs.iter().map(|p| p.preset.as_str()).collect();
    assert_eq!(labels, ["quick", "quick, n=2048"]);
    assert!(pairs.iter().all(|p| p.passes.is_empty()));
    let history = twins::history(&rows, &["transfer".to_owned()]);
    let table = twins::speedup_table(&twins::headline(&history), &titles());
    assert!(table.contains(DEFAULT_LINE), "{table}");
    assert!(table.contains(SIZED_LINE), "{table}");
    assert!(!table.contains("; passes"), "{table}");
}

#[test]
fn compare_finds_no_common_cell() {
    let (a, b) = two_runs();
    let result = compare::compare(&a, &b, Some(5.0));
    let text = &result.text;
    assert_eq!(result.regressions, 0, "{text}");
    assert!(
        text.contains("0 faster, 0 slower, 0 within noise; 4 cell(s) in one run only"),
        "{text}"
    );
    assert!(
        text.contains("transfer switch torch cpu f32 (quick, n=2048) best only in B"),
        "{text}"
    );
    // A run against itself: each cell with its own.
    let both: Vec<Row> = a.iter().chain(&b).cloned().collect();
    let same = compare::compare(&both, &both, None).text;
    assert!(
        same.contains("| switch | torch | cpu | f32 | quick | best | 2.000 | 2.000 |"),
        "{same}"
    );
    assert!(
        same.contains("| switch | torch | cpu | f32 | quick, n=2048 | best | 3.000 | 3.000 |"),
        "{same}"
    );
}

#[test]
fn the_chart_draws_a_column_for_each() {
    let (a, b) = two_runs();
    let rows: Vec<Row> = a.into_iter().chain(b).collect();
    let refs: Vec<&Row> = rows.iter().collect();
    let pairs = twins::pairs(&refs, &titles());
    let dir = temp_dir("apart-charts");
    let written = charts::write(&dir, &pairs, &Default::default(), &titles()).unwrap();
    let svg = fs::read_to_string(&written[0].1).unwrap();
    for label in [
        "CPU: EPYC (2 cores) f32 best (quick)\n",
        "CPU: EPYC (2 cores) f32 best (quick, n=2048)\n",
    ] {
        assert!(svg.contains(label), "{label} missing");
    }
    fs::remove_dir_all(&dir).unwrap();
}

/// A workspace with the transfer benchmark and a README, for `report`.
fn workspace(name: &str) -> std::path::PathBuf {
    let root = temp_dir(name);
    let manifest = "[package]\nname = \"bench-transfer\"\n[package.metadata.suite]\nbenchmark = \"transfer\"\ntitle = \"CPU/GPU switch\"\nheadline = \"switch\"\n";
    fs::create_dir_all(root.join("crates/bench-transfer")).unwrap();
    fs::write(root.join("crates/bench-transfer/Cargo.toml"), manifest).unwrap();
    let readme = format!("# x\n{}\nold\n{}\n", report::BEGIN, report::END);
    fs::write(root.join("README.md"), readme).unwrap();
    root
}

/// Drops the `knobs` of every line of a JSONL record, as rows written
/// before it were.
fn forget_knobs(jsonl: &Path) {
    let text = fs::read_to_string(jsonl).unwrap();
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
            value.as_object_mut().unwrap().remove("knobs");
            value.to_string()
        })
        .collect();
    fs::write(jsonl, lines.join("\n") + "\n").unwrap();
}

#[test]
fn the_report_and_the_readme_keep_them_apart_old_rows_too() {
    let root = workspace("apart-report");
    let raw = root.join("reports/raw");
    let (a, b) = two_runs();
    write_run(&raw.join("r1.csv"), &a);
    write_run(&raw.join("r22.csv"), &b);
    // The sized run as written before rows recorded their knobs: its
    // settings still tell (n=2048 is not quick's 512).
    forget_knobs(&raw.join("r22.jsonl"));
    report::generate(&root, true).unwrap();
    let page = fs::read_to_string(root.join("reports/RESULTS.md")).unwrap();
    let readme = fs::read_to_string(root.join("README.md")).unwrap();
    for text in [&page, &readme] {
        assert!(text.contains(DEFAULT_LINE), "{text}");
        assert!(text.contains(SIZED_LINE), "{text}");
        assert!(!text.contains("; passes"), "{text}");
    }
    // Every case: a line per cell, labelled.
    assert!(
        page.contains("| transfer | switch | quick, n=2048 | f32 | torch |"),
        "{page}"
    );
    assert!(
        page.contains("| transfer | switch | quick | f32 | torch |"),
        "{page}"
    );
    let svg = fs::read_to_string(root.join("reports/charts/transfer.svg")).unwrap();
    assert!(
        svg.contains("(quick, n=2048)\n"),
        "chart lacks the sized column"
    );
    assert!(svg.contains("(quick)\n"), "chart lacks the default column");
    fs::remove_dir_all(&root).unwrap();
}
