//! PyTorch (libtorch through tch) adapter: everything framework-specific
//! but model-independent, so that a benchmark's `torch.rs` holds model code
//! only. Mirrors `fw-mlx`.

pub mod ceiling;
mod cuda;
mod runtime;
mod weights;

pub use ceiling::Scale;
pub use runtime::{configure_process, gpu_backend, version, TorchRuntime, HOOKS};
pub use weights::{from_host, load_safetensors, to_host_f32};
