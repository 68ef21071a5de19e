//! Each framework at its fastest: per configuration that has Python
//! references, the fastest path measured of each framework (its twin or
//! one of its references, `xtask/scripts/references/`) and MLX's speed-up
//! between the two. Where a framework's own Python path beats its twin,
//! the twins' table understates that framework; this table is what a claim
//! of "MLX (or PyTorch) is faster here" may rest on (issue #25).

use std::fmt::Write as _;

use bench_core::Framework;

use crate::references::{comparisons, passes, Figure, Side};
use crate::twins::ratio_cell;
use crate::uncertainty::{ratio_interval, undecided, NO_CLEAR_WINNER};

/// A framework's fastest measured path: its figure and what it is.
struct Fastest<'a, 'b> {
    figure: &'b Figure<'a>,
    path: String,
}

/// The faster of the twin (its runs in the fastest reference's sessions)
/// and the fastest reference.
fn fastest<'a, 'b>(side: &'b Side<'a>) -> Option<Fastest<'a, 'b>> {
    let reference = side.references.first();
    let twin = reference.map_or(side.twin.as_ref(), |v| v.twin.as_ref());
    let as_reference = reference.map(|v| Fastest {
        figure: &v.reference,
        path: v.label(),
    });
    let as_twin = twin.map(|figure| Fastest {
        figure,
        path: "twin".into(),
    });
    match (as_twin, as_reference) {
        (Some(t), Some(r)) if r.figure.summary.median > t.figure.summary.median => Some(r),
        (Some(t), _) => Some(t),
        (None, r) => r,
    }
}

/// The table (markdown, with its introduction); empty where no
/// configuration has references.
pub fn table(rows: &[bench_core::Row]) -> String {
    let groups = comparisons(rows);
    let mut lines = String::new();
    for ((machine, benchmark, preset, precision), sides) in &groups {
        let side = |framework| sides.get(&framework).and_then(fastest);
        let (Some(torch), Some(mlx)) = (side(Framework::Torch), side(Framework::Mlx)) else {
            continue;
        };
        let ratio = mlx.figure.summary.median / torch.figure.summary.median;
        let (mlx_speeds, torch_speeds) = (mlx.figure.sample_speeds(), torch.figure.sample_speeds());
        let interval = ratio_interval(&passes(&mlx_speeds), &passes(&torch_speeds));
        let mut cell = ratio_cell(Some(ratio), interval);
        if undecided(interval, &[]) {
            let _ = write!(cell, "; {NO_CLEAR_WINNER}");
        }
        let _ = writeln!(
            lines,
            "| {machine} | {benchmark} | {preset} | {precision} | {} ({}) | {} ({}) | {cell} |",
            torch.figure.describe(),
            torch.path,
            mlx.figure.describe(),
            mlx.path,
        );
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("{INTRO}{HEADER}{lines}")
}

const INTRO: &str = "\n### Each framework at its fastest\n\nWhere a framework's own Python path (`xtask/scripts/references/`) is faster than its twin, the twins' table understates that framework. Here each side is the fastest path measured of its framework in the same device session, twin or reference (a reference whose row does not record that its mode ran says so); headline case; MLX speed-up = MLX's fastest / PyTorch's fastest in throughput, 95% interval:\n\n";

const HEADER: &str = "| Device | Benchmark | Preset, knobs | Precision | fastest PyTorch path | fastest MLX path | MLX speed-up [95% CI] |\n|---|---|---|---|---|---|---|\n";

#[cfg(test)]
mod tests {
    use bench_core::row::Implementation;
    use bench_core::Row;

    use super::*;
    use crate::results::tests::{row, set_median, set_settings};

    /// A headline TinyLlama row: `framework`'s twin, or with `path` its
    /// Python reference, at `speed` tokens/s over three repetitions.
    fn generate(framework: &str, path: Option<&str>, speed: f64) -> Row {
        let mut r = row(framework, "generate", 128.0 / speed, "r");
        r.benchmark = "tinyllama".into();
        r.throughput = Some(speed);
        r.throughput_unit = "tokens/s".into();
        set_median(&mut r, 128.0 / speed);
        r.samples_s = [0.99, 1.0, 1.01]
            .iter()
            .map(|f| f * 128.0 / speed)
            .collect();
        if let Some(path) = path {
            r.implementation = Implementation::Python;
            set_settings(&mut r, &format!("reference_path={path};mode_check=ok"));
        }
        r
    }

    #[test]
    fn each_side_is_its_frameworks_fastest_path_twin_or_reference() {
        let rows = [
            generate("torch", None, 550.0),
            generate("torch", Some("gpt-fast"), 700.0),
            generate("mlx", None, 350.0),
            generate("mlx", Some("mlx-lm"), 340.0),
        ];
        let table = table(&rows);
        // PyTorch's reference beats its twin; MLX's twin beats mlx-lm.
        assert!(
            table.contains("| 700.0 tokens/s (gpt-fast) | 350.0 tokens/s (twin) | 0.50x ["),
            "{table}"
        );
        // The twins alone would have said 350 / 550.
        assert!(!table.contains("0.64x"), "{table}");
    }

    #[test]
    fn a_side_without_references_is_its_twin_and_no_references_no_table() {
        let rows = [
            generate("torch", None, 550.0),
            generate("torch", Some("gpt-fast"), 700.0),
            generate("mlx", None, 350.0),
        ];
        let text = table(&rows);
        assert!(
            text.contains("| 700.0 tokens/s (gpt-fast) | 350.0 tokens/s (twin) |"),
            "{text}"
        );
        // Twins alone: nothing to add to the twins' table.
        let rows = [generate("torch", None, 550.0), generate("mlx", None, 350.0)];
        assert_eq!(table(&rows), "");
    }
}
