//! Every case's twin pairs, kept apart by the rows' knob values: the
//! cells that the scaling charts and a run's shareable report show.
//!
//! [`knob_values`] is the one place that says which of a row's settings
//! are knobs. Until the knob identity of issue #27 (part 1) lands in
//! `twins`, it reads the settings that the benchmarks declare as knobs.

use std::collections::{BTreeMap, BTreeSet};

use bench_core::Row;

use crate::results::machine;
use crate::twins::{self, Pair, Titles};

/// A row's knob values, by name.
pub type Knobs = BTreeMap<String, String>;

/// The settings named like a benchmark's `--set` knob (each runner's
/// `--list-knobs`), and `threads`.
const KNOB_NAMES: &[&str] = &[
    "audio",
    "batch_size",
    "config",
    "context",
    "dim",
    "dropout",
    "eval_batches",
    "eval_every",
    "ffn",
    "gen_tokens",
    "heads",
    "hub_repo",
    "iterations",
    "language",
    "layers",
    "learning_rate",
    "lr",
    "max_epochs",
    "model",
    "n",
    "prompt",
    "prompt_tokens",
    "sample_seed",
    "seq_len",
    "source",
    "target",
    "target_accuracy",
    "temperature",
    "test_emails",
    "text_files",
    "threads",
    "time_to_accuracy",
    "top_p",
    "train_emails",
    "warmup_steps",
    "weight_decay",
    "weights",
];

/// The row's knob values: what tells two of its benchmark's cells apart.
pub fn knob_values(row: &Row) -> Knobs {
    KNOB_NAMES
        .iter()
        .filter_map(|&name| Some((name.to_owned(), row.setting(name)?.to_owned())))
        .collect()
}

/// The headline or any other case's pair at one set of knob values.
#[derive(Clone, Debug)]
pub struct CasePair<'a> {
    pub case: String,
    /// The knob values that differ between the given rows of this case;
    /// those that all share say nothing and are left out.
    pub knobs: Knobs,
    pub pair: Pair<'a>,
}

impl CasePair<'_> {
    /// The preset and the knobs, as a row's label says them
    /// ("quick, batch_size=4").
    pub fn label(&self) -> String {
        preset_label(&self.pair.preset, &self.knobs)
    }
}

/// "quick, batch_size=4": a preset and knob values.
pub fn preset_label(preset: &str, knobs: &Knobs) -> String {
    match knob_label(knobs) {
        knobs if knobs.is_empty() => preset.to_owned(),
        knobs => format!("{preset}, {knobs}"),
    }
}

/// "batch_size=4, seq_len=64".
pub fn knob_label(knobs: &Knobs) -> String {
    knobs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where knobs are compared: machine, benchmark, preset, precision and
/// mode; then the case.
type Place = (String, String, String, String, String);

/// Knob names by place and case.
pub type Distinguishing = BTreeMap<(Place, String), BTreeSet<String>>;

fn place(row: &Row) -> Place {
    (
        machine(row),
        row.benchmark.clone(),
        row.preset.to_string(),
        row.precision.to_string(),
        row.execution.to_string(),
    )
}

/// The knobs that tell some of the rows' cells apart, by configuration
/// (machine, benchmark, preset, precision, mode) and case: a knob that
/// every row there has at one value says nothing (a setting named like a
/// knob may follow the precision; a case may record knobs that another of
/// its benchmark does not).
pub fn distinguishing(rows: &[&Row]) -> Distinguishing {
    let mut seen: BTreeMap<(Place, String), Vec<Knobs>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.is_twin()) {
        seen.entry((place(row), row.case.clone()))
            .or_default()
            .push(knob_values(row));
    }
    seen.into_iter()
        .map(|(at, all)| {
            let keys: BTreeSet<&String> = all.iter().flat_map(|k| k.keys()).collect();
            let differ = keys
                .into_iter()
                .filter(|key| {
                    let values: BTreeSet<Option<&String>> =
                        all.iter().map(|k| k.get(*key)).collect();
                    values.len() > 1
                })
                .cloned()
                .collect();
            (at, differ)
        })
        .collect()
}

/// The row's values of the knobs that tell its case's cells apart; for a
/// cell that measured nothing (case "-"), those of any case of its
/// configuration, so that a failure in a sweep says where it failed.
pub fn shown_knobs(row: &Row, distinguishing: &Distinguishing) -> Knobs {
    let at = place(row);
    let keys: BTreeSet<&String> = distinguishing
        .iter()
        .filter(|((place, case), _)| *place == at && (*case == row.case || row.case == "-"))
        .flat_map(|(_, keys)| keys)
        .collect();
    knob_values(row)
        .into_iter()
        .filter(|(key, _)| keys.contains(key))
        .collect()
}

/// Every measured case's pairs (as [`twins::pairs`] pairs a headline
/// case), one per set of knob values: rows whose knobs differ are never
/// pooled.
pub fn case_pairs<'a>(rows: &[&'a Row], titles: &Titles) -> Vec<CasePair<'a>> {
    let distinguishing = distinguishing(rows);
    // benchmark -> case -> knobs -> rows
    let mut grouped: BTreeMap<&str, BTreeMap<&str, BTreeMap<Knobs, Vec<&'a Row>>>> =
        BTreeMap::new();
    for &row in rows.iter().filter(|r| r.is_twin()) {
        grouped
            .entry(&row.benchmark)
            .or_default()
            .entry(&row.case)
            .or_default()
            .entry(shown_knobs(row, &distinguishing))
            .or_default()
            .push(row);
    }
    let mut out = Vec::new();
    for (benchmark, cases) in grouped {
        let title = titles
            .get(benchmark)
            .map_or(benchmark, |t| t.0.as_str())
            .to_owned();
        for (case, by_knobs) in cases {
            // twins::pairs pairs the headline case: name this case so.
            let as_headline: Titles =
                [(benchmark.to_owned(), (title.clone(), case.to_owned()))].into();
            let mut by_knobs: Vec<(Knobs, Vec<&Row>)> = by_knobs.into_iter().collect();
            by_knobs.sort_by(|a, b| in_order(&a.0, &b.0));
            for (knobs, rows) in by_knobs {
                out.extend(
                    twins::pairs(&rows, &as_headline)
                        .into_iter()
                        .map(|pair| CasePair {
                            case: case.to_owned(),
                            knobs: knobs.clone(),
                            pair,
                        }),
                );
            }
        }
    }
    out
}

/// Knob values in the order a reader expects: numbers by value (8 before
/// 32), other values by name.
fn in_order(a: &Knobs, b: &Knobs) -> std::cmp::Ordering {
    let key = |knobs: &Knobs| -> Vec<(String, Option<f64>, String)> {
        knobs
            .iter()
            .map(|(k, v)| (k.clone(), v.parse().ok(), v.clone()))
            .collect()
    };
    key(a)
        .partial_cmp(&key(b))
        .unwrap_or(std::cmp::Ordering::Equal)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::results::tests::{row, set_settings};

    /// A twin row of the transfer benchmark at `settings`, with samples.
    pub fn knob_row(framework: &str, case: &str, median: f64, run: &str, settings: &str) -> Row {
        let mut row = row(framework, case, median, run);
        set_settings(&mut row, settings);
        row.samples_s = vec![median * 0.98, median, median * 1.02];
        row
    }

    pub fn titles() -> Titles {
        [(
            "transfer".to_owned(),
            ("CPU/GPU switch".to_owned(), "switch".to_owned()),
        )]
        .into()
    }

    #[test]
    fn rows_of_one_run_that_differ_in_a_knob_are_separate_pairs() {
        let rows = [
            knob_row(
                "torch",
                "switch",
                2.0,
                "r",
                "threads=2;n=64;execution=eager",
            ),
            knob_row(
                "mlx",
                "switch",
                1.0,
                "r",
                "threads=2;n=64;execution=compiled",
            ),
            knob_row("torch", "switch", 8.0, "r", "threads=2;n=128"),
            knob_row("mlx", "switch", 2.0, "r", "threads=2;n=128"),
            knob_row("torch", "copy", 3.0, "r", "threads=2;n=128"),
            knob_row("mlx", "copy", 1.0, "r", "threads=2;n=128"),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let pairs = case_pairs(&refs, &titles());
        let found: Vec<(String, String, Option<f64>)> = pairs
            .iter()
            .map(|p| (p.case.clone(), p.label(), p.pair.speedup()))
            .collect();
        assert_eq!(
            found,
            [
                // The copy case ran at one n: nothing to tell apart.
                ("copy".into(), "quick".into(), Some(3.0)),
                // By value: 64 before 128.
                ("switch".into(), "quick, n=64".into(), Some(2.0)),
                ("switch".into(), "quick, n=128".into(), Some(4.0)),
            ]
        );
        // Not passes of one cell: each pair has its own run's rows.
        assert!(pairs.iter().all(|p| p.pair.passes.is_empty()));
    }

    #[test]
    fn knob_values_are_the_declared_knobs_only() {
        let row = knob_row(
            "mlx",
            "switch",
            1.0,
            "r",
            "threads=2;n=64;last_loss=3.2;seed=0",
        );
        let knobs = knob_values(&row);
        assert_eq!(knob_label(&knobs), "n=64, threads=2");
    }
}
