//! A cell's identity past its dimensions: the knob values that differ from
//! its preset's defaults (`Row::knobs`, which the runner records). Every
//! table, chart and comparison keys a configuration by
//! [`bench_core::Row::configuration`], the preset with those knobs
//! ("paper, iterations=5, n=2048"), so that rows of other sizes are never
//! pooled as passes nor compared as one cell.
//!
//! Rows written before the runner recorded the knobs get them here, from
//! their settings: the sizes that the twins record under their knob's name,
//! against the presets of those runs ([`LEGACY`]). Other knobs of such rows
//! (a learning rate, a model) and `--threads` cannot be told from their
//! settings and stay unknown.

use std::collections::BTreeMap;

use bench_core::settings::Pairs;
use bench_core::{Preset, Row};

/// A size a twin records under its knob's name: benchmark, knob, its
/// quick, laptop and paper defaults in the runs before knobs were
/// recorded, and the cases whose own setting of that name is another size
/// (transfer's matmul ceiling records its own `n`).
struct LegacyKnob {
    benchmark: &'static str,
    knob: &'static str,
    defaults: [&'static str; 3],
    not_in: &'static [&'static str],
}

const fn knob(
    benchmark: &'static str,
    knob: &'static str,
    defaults: [&'static str; 3],
) -> LegacyKnob {
    LegacyKnob {
        benchmark,
        knob,
        defaults,
        not_in: &[],
    }
}

/// The presets' sizes of the runs written before the knobs were recorded.
const LEGACY: &[LegacyKnob] = &[
    LegacyKnob {
        not_in: &["ceiling-matmul"],
        ..knob("transfer", "n", ["512", "4096", "10000"])
    },
    knob("transfer", "iterations", ["4", "20", "50"]),
    knob("bert", "seq_len", ["128", "128", "128"]),
    knob("bert", "batch_size", ["16", "8", "8"]),
    knob("tinyllama", "prompt_tokens", ["128", "512", "512"]),
    knob("tinyllama", "gen_tokens", ["32", "128", "128"]),
    knob("lm-train", "layers", ["4", "6", "12"]),
    knob("lm-train", "dim", ["256", "512", "1024"]),
    knob("lm-train", "heads", ["4", "8", "16"]),
    knob("lm-train", "context", ["128", "512", "1024"]),
    knob("lm-train", "batch_size", ["4", "8", "32"]),
];

impl LegacyKnob {
    fn default(&self, preset: Preset) -> &'static str {
        match preset {
            Preset::Quick => self.defaults[0],
            Preset::Laptop => self.defaults[1],
            Preset::Paper => self.defaults[2],
        }
    }
}

/// The rows of one cell: one process's rows share these.
type CellKey = (String, String, String, String, String, String, String);

fn cell_key(row: &Row) -> CellKey {
    (
        row.run_id.clone(),
        row.benchmark.clone(),
        row.framework_label(),
        row.device.to_string(),
        row.precision.to_string(),
        row.preset.to_string(),
        row.execution.to_string(),
    )
}

/// Sets the knobs of rows that did not record them, cell by cell: each
/// size of [`LEGACY`] that the cell's rows record at another value than
/// their preset's default. Every row of a cell gets the same knobs.
pub fn derive_unrecorded(rows: &mut [&mut Row]) {
    let mut cells: BTreeMap<CellKey, BTreeMap<&str, String>> = BTreeMap::new();
    for row in rows.iter() {
        let knobs = cells.entry(cell_key(row)).or_default();
        for legacy in LEGACY.iter().filter(|l| l.benchmark == row.benchmark) {
            if legacy.not_in.contains(&row.case.as_str()) || knobs.contains_key(legacy.knob) {
                continue;
            }
            if let Some(value) = row.setting(legacy.knob) {
                if !same(value, legacy.default(row.preset)) {
                    knobs.insert(legacy.knob, value.to_owned());
                }
            }
        }
    }
    for row in rows.iter_mut() {
        if let Some(knobs) = cells.get(&cell_key(row)) {
            row.knobs = knobs.iter().collect::<Pairs>();
        }
    }
}

/// Two values of a knob: equal as numbers where both are.
fn same(a: &str, b: &str) -> bool {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{row, set_settings};

    #[test]
    fn old_rows_get_the_sizes_that_differ_from_their_presets_cell_by_cell() {
        // The committed H200 transfer cells: paper, run at n=2048 and 5
        // iterations; the matmul ceiling records its own n.
        let paper = |case: &str, settings: &str, run: &str| {
            let mut r = row("torch", case, 1.0, run);
            r.preset = Preset::Paper;
            set_settings(&mut r, settings);
            r
        };
        let mut rows = vec![
            paper("switch", "iterations=5;n=2048;threads=16", "g1"),
            paper("ceiling-matmul", "iterations=5;n=8192", "g1"),
            paper("ceiling-copy", "iterations=5;n=2048", "g1"),
            // Another run, at the paper's own sizes.
            paper("switch", "iterations=50;n=10000", "g2"),
            paper("ceiling-matmul", "n=8192", "g2"),
        ];
        // A quick CPU run at its defaults: its matmul ceiling's n=1024 is
        // not a knob.
        let mut quick = row("torch", "ceiling-matmul", 1.0, "q");
        set_settings(&mut quick, "n=1024");
        rows.push(quick);
        let mut refs: Vec<&mut Row> = rows.iter_mut().collect();
        derive_unrecorded(&mut refs);
        let labels: Vec<String> = rows.iter().map(Row::configuration).collect();
        assert_eq!(
            labels,
            [
                "paper, iterations=5, n=2048",
                "paper, iterations=5, n=2048",
                "paper, iterations=5, n=2048",
                "paper",
                "paper",
                "quick",
            ]
        );
    }

    #[test]
    fn sizes_equal_as_numbers_are_the_default() {
        assert!(same("0.00005", "5e-5"));
        assert!(same("128", "128"));
        assert!(!same("2048", "10000"));
        assert!(same("all", "all"));
    }
}

/// Two runs that differ in one knob only stay apart in every table, chart
/// and comparison.
#[cfg(test)]
mod apart {
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

    const DEFAULT_LINE: &str = "| CPU/GPU switch (quick) | - | f32 | best (-; -) | 2.000 (IQR 1%) | 1.000 (IQR 1%) | 2.00x [";
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
}
