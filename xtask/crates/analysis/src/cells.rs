//! Every case's twin pairs, each at its knob values: the cells that the
//! scaling charts and a run's shareable report show. A row's knob values
//! are its knob identity (`Row::knobs`: those that differ from its preset's
//! defaults, see [`crate::identity`]), which [`twins::pairs`] keys by too.

use std::collections::BTreeMap;

use bench_core::Row;

use crate::twins::{self, Pair, Titles};

/// A row's knob values, by name.
pub type Knobs = BTreeMap<String, String>;

/// The row's knob values that differ from its preset's defaults.
pub fn knob_values(row: &Row) -> Knobs {
    row.knobs
        .iter()
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect()
}

/// The headline or any other case's pair at one set of knob values.
#[derive(Clone, Debug)]
pub struct CasePair<'a> {
    pub case: String,
    /// The preset alone (the pair's `preset` holds its knobs too).
    pub preset: String,
    pub knobs: Knobs,
    pub pair: Pair<'a>,
}

/// "quick, batch_size=4": a preset and knob values, as
/// `Row::configuration` labels a row.
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

/// Every measured case's pairs (as [`twins::pairs`] pairs a headline
/// case), one per set of knob values, in the order a reader expects.
pub fn case_pairs<'a>(rows: &[&'a Row], titles: &Titles) -> Vec<CasePair<'a>> {
    // benchmark -> case -> rows
    let mut grouped: BTreeMap<&str, BTreeMap<&str, Vec<&'a Row>>> = BTreeMap::new();
    for &row in rows.iter().filter(|r| r.is_twin()) {
        grouped
            .entry(&row.benchmark)
            .or_default()
            .entry(&row.case)
            .or_default()
            .push(row);
    }
    let mut out = Vec::new();
    for (benchmark, cases) in grouped {
        let title = titles
            .get(benchmark)
            .map_or(benchmark, |t| t.0.as_str())
            .to_owned();
        for (case, rows) in cases {
            // twins::pairs pairs the headline case: name this case so.
            let as_headline: Titles =
                [(benchmark.to_owned(), (title.clone(), case.to_owned()))].into();
            let mut pairs: Vec<CasePair> = twins::pairs(&rows, &as_headline)
                .into_iter()
                .filter_map(|pair| {
                    let row = pair.torch.as_deref().or(pair.mlx.as_deref())?;
                    Some(CasePair {
                        case: case.to_owned(),
                        preset: row.preset.to_string(),
                        knobs: knob_values(row),
                        pair,
                    })
                })
                .collect();
            // Stable: twins::pairs' order, but 8 before 32 at one knob.
            pairs.sort_by(|a, b| {
                let at = |c: &CasePair| {
                    let p = &c.pair;
                    (
                        p.machine.clone(),
                        c.preset.clone(),
                        p.precision.clone(),
                        p.mode,
                    )
                };
                at(a).cmp(&at(b)).then_with(|| in_order(&a.knobs, &b.knobs))
            });
            out.extend(pairs);
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
    use bench_core::settings::Pairs;

    use crate::results::tests::{row, set_settings};

    /// A twin row of the transfer benchmark at the non-default `knobs`
    /// (also in its settings, as the twin records them, after `settings`),
    /// with repetitions.
    pub fn knob_row(
        framework: &str,
        case: &str,
        median: f64,
        run: &str,
        (knobs, settings): (&str, &str),
    ) -> Row {
        let mut row = row(framework, case, median, run);
        let all = [settings, knobs].join(";");
        set_settings(&mut row, all.trim_matches(';'));
        row.knobs = Pairs::decode(knobs);
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
            knob_row("torch", "switch", 8.0, "r", ("n=128", "execution=eager")),
            knob_row("mlx", "switch", 2.0, "r", ("n=128", "execution=compiled")),
            knob_row("torch", "switch", 2.0, "r", ("n=64", "")),
            knob_row("mlx", "switch", 1.0, "r", ("n=64", "")),
            knob_row("torch", "copy", 3.0, "r", ("", "n=512")),
            knob_row("mlx", "copy", 1.0, "r", ("", "n=512")),
        ];
        let refs: Vec<&Row> = rows.iter().collect();
        let pairs = case_pairs(&refs, &titles());
        let found: Vec<(String, String, Option<f64>)> = pairs
            .iter()
            .map(|p| {
                let label = preset_label(&p.preset, &p.knobs);
                // As the tables label the pair.
                assert_eq!(label, p.pair.preset);
                (p.case.clone(), label, p.pair.speedup())
            })
            .collect();
        assert_eq!(
            found,
            [
                // The preset's own n: no knob.
                ("copy".into(), "quick".into(), Some(3.0)),
                // By value: 64 before 128.
                ("switch".into(), "quick, n=64".into(), Some(2.0)),
                ("switch".into(), "quick, n=128".into(), Some(4.0)),
            ]
        );
        // Not passes of one cell: each pair has its own rows.
        assert!(pairs.iter().all(|p| p.pair.passes.is_empty()));
    }
}
