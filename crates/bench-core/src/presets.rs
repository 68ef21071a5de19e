//! A benchmark's presets as one table: for each [`Preset`], a row with the
//! sizes of the work and how to measure it. Everything else reads the row,
//! so a size is written once and the help cannot disagree with what runs:
//! - the cell's work starts from its preset's row (`--set` knobs override);
//! - the runner records the row's measurement settings;
//! - the knobs' defaults in `--help` are printed from it ([`KnobDefaults`]);
//! - the Criterion harness runs the Quick row;
//! - `--preset auto` picks a row per cell from the memory it needs
//!   ([`choose`]).

use std::fmt::Display;
use std::process::Command;

use anyhow::Result;

use crate::cell::Cell;
use crate::dims::{DeviceKind, Preset, PresetChoice};
use crate::knobs::Knob;
use crate::measure::MeasureSettings;

/// One preset's row of a benchmark's table.
#[derive(Clone, Debug, PartialEq)]
pub struct PresetRow<S> {
    /// The sizes of the work, before any knob.
    pub sizes: S,
    /// Warm-up, repetitions and time budget.
    pub measure: MeasureSettings,
    /// Accelerator memory the row's work needs in float32, roughly (GiB):
    /// what `--preset auto` weighs against the device's.
    pub needs_gib: f64,
}

/// A benchmark's table: its row for each preset.
pub type PresetTable<S> = fn(Preset) -> PresetRow<S>;

/// A knob's default as `--help` prints it: the Quick value, with the
/// Laptop and Paper values in brackets where they differ from it
/// ("4 (laptop: 6, paper: 12)", "4 (paper: 12)", or "128").
pub fn default_text(quick: impl Display, laptop: impl Display, paper: impl Display) -> String {
    let quick = quick.to_string();
    let others: Vec<String> = [("laptop", laptop.to_string()), ("paper", paper.to_string())]
        .into_iter()
        .filter(|(_, value)| *value != quick)
        .map(|(name, value)| format!("{name}: {value}"))
        .collect();
    if others.is_empty() {
        quick
    } else {
        format!("{quick} ({})", others.join(", "))
    }
}

/// The default of `preset` in a knob's default text, as [`default_text`]
/// writes it: "4 (laptop: 6, paper: 12)" gives 4, 6 or 12. Text in
/// brackets that names no preset is a remark ("0 (greedy)" gives 0); a
/// text without brackets is every preset's default.
pub fn preset_default(text: &str, preset: Preset) -> &str {
    let Some((value, inner)) = text
        .strip_suffix(')')
        .and_then(|rest| rest.rsplit_once(" ("))
    else {
        return text;
    };
    let mut found = value;
    for part in inner.split(", ") {
        match part.split_once(": ") {
            Some(("laptop", given)) if preset == Preset::Laptop => found = given,
            Some(("paper", given)) if preset == Preset::Paper => found = given,
            Some(("laptop" | "paper", _)) => {}
            // Not the presets' values: a remark on the one value.
            _ => return value,
        }
    }
    found
}

/// The presets' sizes side by side, which the knobs' defaults are read from.
pub struct KnobDefaults<S> {
    pub quick: S,
    pub laptop: S,
    pub paper: S,
}

impl<S> KnobDefaults<S> {
    /// The sizes of every row of `table`.
    pub fn of(table: PresetTable<S>) -> Self {
        Self {
            quick: table(Preset::Quick).sizes,
            laptop: table(Preset::Laptop).sizes,
            paper: table(Preset::Paper).sizes,
        }
    }

    /// The default text ([`default_text`]) of the knob that sets `field`.
    /// A [`Knob`] holds `&'static str`, so the text is leaked: build a
    /// benchmark's knobs once per process (a `LazyLock`).
    pub fn text<T: Display>(&self, field: impl Fn(&S) -> T) -> &'static str {
        default_text(field(&self.quick), field(&self.laptop), field(&self.paper)).leak()
    }
}

/// What `--preset auto` may fill of a device's memory: the rest is the
/// frameworks' own, the other process's, the system's.
pub const AUTO_MEMORY_SHARE: f64 = 0.75;

/// The preset of a cell, and why: the one asked, or for `auto` the quick
/// sizes on the CPU (its preset for a 2-core machine) and on an
/// accelerator the largest row whose need (`needs_gib`) fits
/// [`AUTO_MEMORY_SHARE`] of its memory (`memory`: GiB and what it is).
pub fn choose(
    choice: PresetChoice,
    device: DeviceKind,
    memory: Option<(f64, &str)>,
    needs_gib: impl Fn(Preset) -> f64,
) -> (Preset, String) {
    let fixed = |preset| (preset, "asked".to_owned());
    match (choice, device, memory) {
        (PresetChoice::Quick, ..) => fixed(Preset::Quick),
        (PresetChoice::Laptop, ..) => fixed(Preset::Laptop),
        (PresetChoice::Paper, ..) => fixed(Preset::Paper),
        (PresetChoice::Auto, DeviceKind::Cpu, _) => (
            Preset::Quick,
            "auto: the CPU runs the quick sizes".to_owned(),
        ),
        (PresetChoice::Auto, DeviceKind::Gpu, None) => (
            Preset::Quick,
            "auto: the accelerator's memory is unknown".to_owned(),
        ),
        (PresetChoice::Auto, DeviceKind::Gpu, Some((gib, what))) => {
            let room = gib * AUTO_MEMORY_SHARE;
            let preset = [Preset::Paper, Preset::Laptop]
                .into_iter()
                .find(|&preset| needs_gib(preset) <= room)
                .unwrap_or(Preset::Quick);
            let reason = format!(
                "auto: {gib:.0} GiB of {what}; paper needs about {:.0}, laptop {:.0}",
                needs_gib(Preset::Paper),
                needs_gib(Preset::Laptop)
            );
            (preset, reason)
        }
    }
}

/// The memory of `device`, in GiB, and what it is: the accelerator's own
/// (NVIDIA's first GPU), or a Mac's unified memory (which its GPU uses);
/// the machine's RAM for the CPU. None where it cannot be read.
pub fn device_memory(device: DeviceKind) -> Option<(f64, &'static str)> {
    let ram = || {
        let mut system = sysinfo::System::new();
        system.refresh_memory();
        system.total_memory() as f64 / (1u64 << 30) as f64
    };
    match device {
        DeviceKind::Cpu => Some((ram(), "RAM")),
        DeviceKind::Gpu if cfg!(target_os = "macos") => Some((ram(), "unified memory")),
        DeviceKind::Gpu => nvidia_memory_gib().map(|gib| (gib, "GPU memory")),
    }
}

/// The first NVIDIA GPU's memory, from `nvidia-smi` (MiB).
fn nvidia_memory_gib() -> Option<f64> {
    let output = Command::new("nvidia-smi")
        .args(["--query-gpu=memory.total", "--format=csv,noheader,nounits"])
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mib: f64 = text.lines().next()?.trim().parse().ok()?;
    Some(mib / 1024.0)
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
        laptop: ran(Preset::Laptop)?,
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
    fn a_default_names_the_other_presets_values_only_where_they_differ() {
        assert_eq!(default_text(4, 6, 12), "4 (laptop: 6, paper: 12)");
        assert_eq!(default_text(4, 12, 12), "4 (laptop: 12, paper: 12)");
        assert_eq!(default_text(4, 4, 12), "4 (paper: 12)");
        assert_eq!(default_text(128, 128, 128), "128");
        assert_eq!(default_text("auto", "auto", "auto"), "auto");
    }

    #[test]
    fn each_presets_default_reads_back_from_the_text() {
        for (quick, laptop, paper) in [(4, 6, 12), (4, 4, 12), (4, 12, 12), (128, 128, 128)] {
            let text = default_text(quick, laptop, paper);
            let read = |preset| preset_default(&text, preset).to_owned();
            assert_eq!(read(Preset::Quick), quick.to_string(), "{text}");
            assert_eq!(read(Preset::Laptop), laptop.to_string(), "{text}");
            assert_eq!(read(Preset::Paper), paper.to_string(), "{text}");
        }
        assert_eq!(preset_default("0 (greedy)", Preset::Paper), "0");
        assert_eq!(
            preset_default("the jfk asset's jfk.wav", Preset::Quick),
            "the jfk asset's jfk.wav"
        );
        assert_eq!(preset_default("TinyLlama's", Preset::Laptop), "TinyLlama's");
    }

    /// lm-train's needs: paper about 30 GiB, laptop about 3.
    fn needs(preset: Preset) -> f64 {
        match preset {
            Preset::Quick => 0.5,
            Preset::Laptop => 3.0,
            Preset::Paper => 30.0,
        }
    }

    #[test]
    fn auto_runs_quick_on_the_cpu_and_the_largest_preset_that_fits_the_accelerator() {
        let auto = |device, memory| choose(PresetChoice::Auto, device, memory, needs);
        assert_eq!(auto(DeviceKind::Cpu, Some((512.0, "RAM"))).0, Preset::Quick);
        // An 80 GB GPU, a 16 GB and an 8 GB Mac, a 2 GB device.
        let gpu = |gib| auto(DeviceKind::Gpu, Some((gib, "memory"))).0;
        assert_eq!(gpu(80.0), Preset::Paper);
        assert_eq!(gpu(16.0), Preset::Laptop);
        assert_eq!(gpu(8.0), Preset::Laptop);
        assert_eq!(gpu(2.0), Preset::Quick);
        let (preset, why) = auto(DeviceKind::Gpu, Some((16.0, "unified memory")));
        assert_eq!(preset, Preset::Laptop);
        assert_eq!(
            why,
            "auto: 16 GiB of unified memory; paper needs about 30, laptop 3"
        );
        assert_eq!(auto(DeviceKind::Gpu, None).0, Preset::Quick);
        // A preset asked is kept, whatever the memory.
        let asked = choose(
            PresetChoice::Paper,
            DeviceKind::Gpu,
            Some((2.0, "x")),
            needs,
        );
        assert_eq!(asked, (Preset::Paper, "asked".to_owned()));
    }

    #[derive(Clone)]
    struct Sizes {
        layers: usize,
    }

    fn table(preset: Preset) -> PresetRow<Sizes> {
        let layers = match preset {
            Preset::Quick => 4,
            Preset::Laptop => 6,
            Preset::Paper => 12,
        };
        PresetRow {
            sizes: Sizes { layers },
            measure: MeasureSettings::default(),
            needs_gib: needs(preset),
        }
    }

    fn declare(defaults: &KnobDefaults<Sizes>) -> Vec<Knob> {
        let layers = defaults.text(|s| s.layers);
        vec![Knob::at_least("layers", 1, layers, "blocks")]
    }

    #[test]
    fn knobs_read_their_defaults_from_the_table_and_are_checked_against_the_cells() {
        let knobs: &'static [Knob] = declare(&KnobDefaults::of(table)).leak();
        assert_eq!(knobs[0].default, "4 (laptop: 6, paper: 12)");
        let honest = |cell: &Cell| Ok(table(cell.preset).sizes);
        knobs_follow_the_cells(knobs, declare, honest).unwrap();
        let drifted = |cell: &Cell| {
            let mut sizes = table(cell.preset).sizes;
            sizes.layers += 1;
            Ok(sizes)
        };
        let error = knobs_follow_the_cells(knobs, declare, drifted).unwrap_err();
        assert!(error.contains("knob layers"), "{error}");
        assert!(error.contains("5 (laptop: 7, paper: 13)"), "{error}");
    }
}
