//! The measurement harness shared by every benchmark. It knows no framework:
//! the frameworks reach it through the [`runtime::Runtime`] trait that the
//! adapter crates (`fw-mlx`, `fw-torch`) implement.

pub mod append;
pub mod assets;
pub mod cell;
pub mod cli;
pub mod env;
pub mod error;
pub mod host;
pub mod knobs;
pub mod measure;
pub mod optim;
pub mod presets;
pub mod record;
pub mod rng;
pub mod runtime;
pub mod settings;
pub mod stats;

pub use cell::{Cell, DeviceKind, Execution, Framework, Precision, Preset};
pub use error::Unavailable;
pub use knobs::{Kind, Knob};
pub use measure::{measure, measure_case, time_iterations, MeasureSettings};
pub use optim::AdamWHyper;
pub use presets::{KnobDefaults, PresetRow};
pub use record::{CaseResult, Record, Throughput};
pub use runtime::Runtime;
pub use settings::Settings;
pub use stats::Summary;
