//! The work, independent of framework: the case, how many ranks, the
//! message sizes per preset, `dp-train`'s batches, the knobs (lm-train's
//! too, for `dp-train`'s model), and what every rank's environment sets.

use std::sync::LazyLock;

use anyhow::{bail, Result};
use bench_core::{Cell, Kind, Knob, KnobDefaults, MeasureSettings, Precision, Preset, PresetRow};
use serde::{Deserialize, Serialize};

/// What a cell measures (`--set case=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Case {
    /// Each framework's all-reduce over message sizes.
    Allreduce,
    /// lm-train's step, data-parallel over the ranks.
    DpTrain,
}

pub const CASES: &[&str] = &["allreduce", "dp-train"];

impl std::str::FromStr for Case {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "allreduce" => Ok(Case::Allreduce),
            "dp-train" => Ok(Case::DpTrain),
            other => bail!("no case '{other}': expected one of {}", CASES.join(", ")),
        }
    }
}

/// Whose batch `batch_size` is in `dp-train` (`--set batch_per=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BatchPer {
    /// The global batch, shared out among the ranks (fixed work: the
    /// losses of N ranks follow one rank's).
    Global,
    /// Each rank's batch (the global batch grows with the ranks).
    Rank,
}

pub const BATCH_PER: &[&str] = &["global", "rank"];

impl std::str::FromStr for BatchPer {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> Result<Self> {
        match text {
            "global" => Ok(BatchPer::Global),
            "rank" => Ok(BatchPer::Rank),
            other => bail!("no batch_per '{other}': expected global or rank"),
        }
    }
}

/// What a preset sets, and the knobs override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sizes {
    pub case: Case,
    /// Ranks, one process each.
    pub world: usize,
    /// The smallest message, in bytes (nccl-tests' `-b`).
    pub min_bytes: usize,
    /// The largest message, in bytes (nccl-tests' `-e`).
    pub max_bytes: usize,
    /// Each message is this many times the one before (nccl-tests' `-f`).
    pub factor: usize,
    /// All-reduces back to back in one timed repetition (nccl-tests' `-n`):
    /// a repetition's time over this is one all-reduce's latency.
    pub ops: usize,
    /// `dp-train`'s gradient bucket in MiB for both frameworks; None: each
    /// framework's own default (DDP 25, `mlx.nn.average_gradients` 32).
    pub bucket_mb: Option<f64>,
    /// Whose batch lm-train's `batch_size` is in `dp-train`.
    pub batch_per: BatchPer,
}

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

/// The one table of sizes per preset (see [`bench_core::presets`]).
/// Every preset holds 16 MiB (the headline case).
pub fn presets(preset: Preset) -> PresetRow<Sizes> {
    match preset {
        // Seconds on a 2-core CPU, gloo and the ring over loopback.
        Preset::Quick => PresetRow {
            sizes: Sizes {
                case: Case::Allreduce,
                bucket_mb: None,
                batch_per: BatchPer::Global,
                world: 2,
                min_bytes: 4 * KIB,
                max_bytes: 16 * MIB,
                factor: 16,
                ops: 5,
            },
            measure: MeasureSettings::new(1, 10, 3, 2),
            needs_gib: 0.1,
        },
        Preset::Laptop => PresetRow {
            sizes: Sizes {
                case: Case::Allreduce,
                bucket_mb: None,
                batch_per: BatchPer::Global,
                world: 2,
                min_bytes: 4 * KIB,
                max_bytes: 256 * MIB,
                factor: 4,
                ops: 20,
            },
            measure: MeasureSettings::new(5, 20, 5, 20),
            // The message, the frameworks' copies of it, per GPU.
            needs_gib: 1.0,
        },
        // nccl-tests' range and iterations: 4 KiB to 1 GiB, 20 per timing.
        Preset::Paper => PresetRow {
            sizes: Sizes {
                case: Case::Allreduce,
                bucket_mb: None,
                batch_per: BatchPer::Global,
                world: 2,
                min_bytes: 4 * KIB,
                max_bytes: GIB,
                factor: 4,
                ops: 20,
            },
            measure: MeasureSettings::new(5, 20, 5, 30),
            needs_gib: 4.0,
        },
    }
}

/// The `--set` knobs: the only keys a cell reads; this benchmark's own
/// (defaults read from [`presets`]: [`OWN_KNOBS`] of them), then
/// lm-train's, which set `dp-train`'s model and training.
pub static KNOBS: LazyLock<Vec<Knob>> = LazyLock::new(|| {
    let mut all = knobs(&KnobDefaults::of(presets));
    all.extend(bench_lm_train::workload::KNOBS.iter().copied());
    all
});

/// How many of [`KNOBS`] are this benchmark's own.
pub fn own_knobs() -> usize {
    knobs(&KnobDefaults::of(presets)).len()
}

/// The most ranks a cell starts.
pub const MAX_WORLD: i64 = 64;
/// The largest message (16 GiB).
const MAX_BYTES: i64 = 1 << 34;

/// The knobs, with the defaults that the presets' sizes give.
pub fn knobs(defaults: &KnobDefaults<Sizes>) -> Vec<Knob> {
    vec![
        Knob::new(
            "case",
            Kind::Choice(CASES),
            "allreduce",
            "allreduce: each framework's all-reduce over message sizes; \
             dp-train: lm-train's step, data-parallel",
        ),
        Knob::int(
            "world",
            1,
            MAX_WORLD,
            defaults.text(|s| s.world),
            "ranks, one process each (on a GPU, one GPU each); allreduce needs 2 or more",
        ),
        Knob::int(
            "min_bytes",
            4,
            MAX_BYTES,
            defaults.text(|s| s.min_bytes),
            "smallest all-reduce message, bytes",
        ),
        Knob::int(
            "max_bytes",
            4,
            MAX_BYTES,
            defaults.text(|s| s.max_bytes),
            "largest all-reduce message, bytes",
        ),
        Knob::int(
            "factor",
            2,
            1024,
            defaults.text(|s| s.factor),
            "each message size is this many times the one before",
        ),
        Knob::int(
            "ops",
            1,
            10_000,
            defaults.text(|s| s.ops),
            "all-reduces back to back per timed repetition",
        ),
        Knob::new(
            "bucket_mb",
            Kind::Float {
                min: 0.0,
                max: 4096.0,
            },
            "each framework's own: DDP 25, MLX 32",
            "dp-train: gradient bucket (DDP) and all-reduce group (MLX), MiB",
        ),
        Knob::new(
            "batch_per",
            Kind::Choice(BATCH_PER),
            "global",
            "dp-train: lm-train's batch_size is the global batch (shared out) or each rank's",
        ),
    ]
}

impl Sizes {
    /// The preset's sizes, the knobs over them.
    pub fn for_cell(cell: &Cell) -> Result<Self> {
        let mut sizes = presets(cell.preset).sizes;
        cell.set_option("case", &mut sizes.case)?;
        cell.set_option("world", &mut sizes.world)?;
        cell.set_option("min_bytes", &mut sizes.min_bytes)?;
        cell.set_option("max_bytes", &mut sizes.max_bytes)?;
        cell.set_option("factor", &mut sizes.factor)?;
        cell.set_option("ops", &mut sizes.ops)?;
        sizes.bucket_mb = cell.option("bucket_mb")?;
        cell.set_option("batch_per", &mut sizes.batch_per)?;
        if sizes.case == Case::Allreduce && sizes.world < 2 {
            bail!(
                "--set world={}: the allreduce case needs 2 ranks or more",
                sizes.world
            );
        }
        if sizes.min_bytes > sizes.max_bytes {
            bail!(
                "--set min_bytes={} is above max_bytes={}",
                sizes.min_bytes,
                sizes.max_bytes
            );
        }
        Ok(sizes)
    }

    /// The message sizes in bytes: min_bytes, then times factor while
    /// within max_bytes.
    pub fn messages(&self) -> Vec<usize> {
        let mut sizes = vec![self.min_bytes];
        while let Some(next) = sizes.last().and_then(|last| last.checked_mul(self.factor)) {
            if next > self.max_bytes {
                break;
            }
            sizes.push(next);
        }
        sizes
    }
}

/// One message of a cell: its bytes, and the elements of the cell's
/// precision that hold them (a size that is not a whole number of
/// elements is rounded down; the row records what was sent).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub elements: usize,
    pub bytes: usize,
}

impl Message {
    pub fn new(bytes: usize, precision: Precision) -> Self {
        let size = precision.element_bytes();
        let elements = (bytes / size).max(1);
        Self {
            elements,
            bytes: elements * size,
        }
    }

    /// The row's case: `allreduce-4KiB`, `allreduce-1GiB`, `allreduce-6B`.
    pub fn case(&self) -> String {
        format!("allreduce-{}", human_bytes(self.bytes))
    }
}

/// 4096 -> "4KiB", 3 << 30 -> "3GiB", 6 -> "6B": the largest binary unit
/// that divides the size.
pub fn human_bytes(bytes: usize) -> String {
    for (unit, size) in [("GiB", GIB), ("MiB", MIB), ("KiB", KIB)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{}{unit}", bytes / size);
        }
    }
    format!("{bytes}B")
}

/// nccl-tests' bus bandwidth factor for all-reduce, 2(n-1)/n: what each
/// rank's links carry per byte of the message in a ring, so that busbw
/// compares with the hardware's link bandwidth whatever the world size.
pub fn busbw_factor(world: usize) -> f64 {
    2.0 * (world as f64 - 1.0) / world as f64
}

/// Every rank's environment sets these, always, and the row records them:
/// NVLink multicast (NVLS) can take a shared host's GPUs out of service
/// for a day or more, so nothing of ours may turn it on.
pub const NO_MULTICAST: [(&str, &str); 3] = [
    ("NCCL_NVLS_ENABLE", "0"),
    ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
    ("NVSHMEM_DISABLE_NVLS", "1"),
];

#[cfg(test)]
mod tests {
    use bench_core::presets::assert_knobs_follow_the_cells;

    use super::*;

    /// `--help`'s defaults are the preset table's, and a cell of each
    /// preset runs them.
    #[test]
    fn knob_defaults_are_the_presets_that_cells_run() {
        assert_knobs_follow_the_cells(&KNOBS[..own_knobs()], knobs, Sizes::for_cell);
    }

    #[test]
    fn dp_train_takes_lm_trains_knobs_and_allreduce_needs_two_ranks() {
        let names: Vec<&str> = KNOBS.iter().map(|k| k.name).collect();
        assert!(names.contains(&"layers") && names.contains(&"batch_size"));
        let cell = |options: &[(&str, &str)]| Cell {
            options: options
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            knobs: &KNOBS,
            ..Cell::for_checks()
        };
        let error = Sizes::for_cell(&cell(&[("world", "1")])).unwrap_err();
        assert!(
            error.to_string().contains("allreduce case needs 2 ranks"),
            "{error}"
        );
        let dp = Sizes::for_cell(&cell(&[("world", "1"), ("case", "dp-train")])).unwrap();
        assert_eq!((dp.case, dp.world, dp.bucket_mb), (Case::DpTrain, 1, None));
    }

    #[test]
    fn messages_run_from_min_to_max_by_factor_and_every_preset_has_the_headline() {
        let paper = presets(Preset::Paper).sizes.messages();
        assert_eq!(paper.first(), Some(&(4 * KIB)));
        assert_eq!(paper.last(), Some(&GIB));
        assert_eq!(paper.len(), 10);
        for preset in [Preset::Quick, Preset::Laptop, Preset::Paper] {
            assert!(presets(preset).sizes.messages().contains(&(16 * MIB)));
        }
        let odd = Sizes {
            min_bytes: 100,
            max_bytes: 1000,
            factor: 3,
            ..presets(Preset::Quick).sizes
        };
        assert_eq!(odd.messages(), [100, 300, 900]);
    }

    #[test]
    fn a_message_is_whole_elements_and_its_case_names_its_size() {
        let m = Message::new(4 * KIB, Precision::Bf16);
        assert_eq!((m.elements, m.bytes), (2048, 4096));
        assert_eq!(m.case(), "allreduce-4KiB");
        assert_eq!(Message::new(6, Precision::F32).bytes, 4);
        assert_eq!(Message::new(2, Precision::F32).bytes, 4);
        assert_eq!(human_bytes(GIB), "1GiB");
        assert_eq!(human_bytes(3 * MIB / 2), "1536KiB");
        assert_eq!(busbw_factor(2), 1.0);
        assert_eq!(busbw_factor(8), 1.75);
    }

    #[test]
    fn min_above_max_is_refused_naming_both() {
        let cell = Cell {
            options: vec![
                ("min_bytes".into(), "8192".into()),
                ("max_bytes".into(), "4096".into()),
            ],
            knobs: &KNOBS,
            ..Cell::for_checks()
        };
        let error = Sizes::for_cell(&cell).unwrap_err().to_string();
        assert!(
            error.contains("min_bytes=8192 is above max_bytes=4096"),
            "{error}"
        );
    }
}
