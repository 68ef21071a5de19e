//! A benchmark's presets as one table: for each [`Preset`], a row with the
//! sizes of the work and how to measure it. Everything else reads the row,
//! so a size is written once and the help cannot disagree with what runs:
//! - the cell's work starts from its preset's row (`--set` knobs override);
//! - the runner records the row's measurement settings;
//! - the knobs' defaults in `--help` are printed from it ([`KnobDefaults`]);
//! - the Criterion harness runs the Quick row.

use std::fmt::Display;

use anyhow::Result;

use crate::cell::Cell;
use crate::dims::Preset;
use crate::knobs::Knob;
use crate::measure::MeasureSettings;

/// One preset's row of a benchmark's table.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetRow<S> {
    /// The sizes of the work, before any knob.
    pub sizes: S,
    /// Warm-up, repetitions and time budget.
    pub measure: MeasureSettings,
}

/// A benchmark's table: its row for each preset.
pub type PresetTable<S> = fn(Preset) -> PresetRow<S>;

/// A knob's default as `--help` prints it: the Quick value, with the Paper
/// value in brackets where it differs ("4 (paper: 12)", or "128").
pub fn default_text(quick: impl Display, paper: impl Display) -> String {
    let (quick, paper) = (quick.to_string(), paper.to_string());
    if quick == paper {
        quick
    } else {
        format!("{quick} (paper: {paper})")
    }
}

/// Both presets' sizes side by side, which the knobs' defaults are read from.
pub struct KnobDefaults<S> {
    pub quick: S,
    pub paper: S,
}

impl<S> KnobDefaults<S> {
    /// The sizes of both rows of `table`.
    pub fn of(table: PresetTable<S>) -> Self {
        Self {
            quick: table(Preset::Quick).sizes,
            paper: table(Preset::Paper).sizes,
        }
    }

    /// The default text ([`default_text`]) of the knob that sets `field`.
    /// A [`Knob`] holds `&'static str`, so the text is leaked: build a
    /// benchmark's knobs once per process (a `LazyLock`).
    pub fn text<T: Display>(&self, field: impl Fn(&S) -> T) -> &'static str {
        default_text(field(&self.quick), field(&self.paper)).leak()
    }
}

/// For each benchmark's tests: its knobs, declared by `declare` from the
/// table, are the knobs that `declare` gives from the work a cell of each
/// preset runs with when no knob is set (`run` is the benchmark's own
/// reading of a cell). Then the table, the knobs' `--help` defaults and
/// the cells agree. Panics with the first mismatch.
pub fn assert_knobs_follow_the_cells<S>(
    knobs: &'static [Knob],
    declare: fn(&KnobDefaults<S>) -> Vec<Knob>,
    run: impl Fn(&Cell) -> Result<S>,
) {
    if let Err(mismatch) = knobs_follow_the_cells(knobs, declare, run) {
        panic!("{mismatch}");
    }
}

/// [`assert_knobs_follow_the_cells`]'s check, the mismatch as an error.
fn knobs_follow_the_cells<S>(
    knobs: &'static [Knob],
    declare: fn(&KnobDefaults<S>) -> Vec<Knob>,
    run: impl Fn(&Cell) -> Result<S>,
) -> Result<(), String> {
    let cell = |preset| Cell {
        preset,
        knobs,
        ..Cell::for_checks()
    };
    let ran = |preset| run(&cell(preset)).map_err(|e| format!("{preset} cell: {e:#}"));
    let from_cells = declare(&KnobDefaults {
        quick: ran(Preset::Quick)?,
        paper: ran(Preset::Paper)?,
    });
    for (declared, ran) in knobs.iter().zip(&from_cells) {
        if declared != ran {
            return Err(format!(
                "knob {}: --help says the default is {:?}, a cell runs {:?}",
                declared.name, declared.default, ran.default
            ));
        }
    }
    if knobs.len() != from_cells.len() {
        return Err(format!(
            "{} knobs declared, {} from the cells",
            knobs.len(),
            from_cells.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_names_the_paper_value_only_where_it_differs() {
        assert_eq!(default_text(4, 12), "4 (paper: 12)");
        assert_eq!(default_text(128, 128), "128");
        assert_eq!(default_text("auto", "auto"), "auto");
    }

    #[derive(Clone)]
    struct Sizes {
        layers: usize,
    }

    fn table(preset: Preset) -> PresetRow<Sizes> {
        let layers = match preset {
            Preset::Quick => 4,
            Preset::Paper => 12,
        };
        PresetRow {
            sizes: Sizes { layers },
            measure: MeasureSettings::default(),
        }
    }

    fn declare(defaults: &KnobDefaults<Sizes>) -> Vec<Knob> {
        let layers = defaults.text(|s| s.layers);
        vec![Knob::at_least("layers", 1, layers, "blocks")]
    }

    #[test]
    fn knobs_read_their_defaults_from_the_table_and_are_checked_against_the_cells() {
        let knobs: &'static [Knob] = declare(&KnobDefaults::of(table)).leak();
        assert_eq!(knobs[0].default, "4 (paper: 12)");
        let honest = |cell: &Cell| Ok(table(cell.preset).sizes);
        knobs_follow_the_cells(knobs, declare, honest).unwrap();
        let drifted = |cell: &Cell| {
            let mut sizes = table(cell.preset).sizes;
            sizes.layers += 1;
            Ok(sizes)
        };
        let error = knobs_follow_the_cells(knobs, declare, drifted).unwrap_err();
        assert!(error.contains("knob layers"), "{error}");
        assert!(error.contains("5 (paper: 13)"), "{error}");
    }
}
