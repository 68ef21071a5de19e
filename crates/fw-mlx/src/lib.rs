//! MLX adapter: everything framework-specific but model-independent, so that
//! a benchmark's `mlx.rs` holds model code only. Mirrors `fw-torch`.

pub mod blas;
pub mod ceiling;
pub mod distributed;
pub mod optim;
mod runtime;
mod train;
mod weights;

pub use ceiling::Scale;
pub use optim::{project_model, AdamWHyper, BiasCorrectedAdamW, StepScalars};
pub use runtime::{configure_process, gpu_backend, version, MlxRuntime, HOOKS};
pub use train::{optimizer_label, project_training, CompiledTraining, TrainingStep};
pub use weights::{from_host, load_safetensors, to_host_f32};
