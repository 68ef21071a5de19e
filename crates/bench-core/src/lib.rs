//! The measurement harness shared by every benchmark. It knows no framework:
//! the frameworks reach it through the [`runtime::Runtime`] trait that the
//! adapter crates (`fw-mlx`, `fw-torch`) implement.
//!
//! Modules depend one way, from the runner down: `cli` (the runner's command
//! line) and `process` (one framework per process) use `protocol` (what a
//! runner tells its starter), `record` (a run's rows on disk) and `row`
//! (the result row; its CSV export in `csv_export`), which use `cell`,
//! `measure`, `env`, `memory`, `settings`, `stats` and `dims` (the typed dimensions
//! of a cell).

pub mod append;
pub mod assets;
pub mod ceiling;
pub mod cell;
pub mod cli;
pub mod csv_export;
pub mod dims;
pub mod env;
pub mod error;
pub mod host;
pub mod knob_tests;
pub mod knobs;
pub mod mac;
pub mod measure;
pub mod memory;
pub mod openblas;
pub mod optim;
pub mod presets;
pub mod process;
pub mod protocol;
pub mod record;
pub mod rng;
pub mod row;
pub mod runtime;
pub mod settings;
pub mod stats;
pub mod sweep;

pub use ceiling::Ceiling;
pub use cell::Cell;
pub use dims::{DeviceKind, Execution, Framework, Precision, Preset, PresetChoice};
pub use error::Unavailable;
pub use knobs::{Kind, Knob};
pub use measure::{
    measure, measure_case, time_iterations, CaseResult, MeasureSettings, Throughput,
};
pub use optim::AdamWHyper;
pub use presets::{KnobDefaults, PresetRow};
pub use row::{Row, Status};
pub use runtime::Runtime;
pub use settings::Settings;
pub use stats::Summary;
