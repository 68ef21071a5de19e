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
