//! PyTorch (libtorch through tch) adapter: everything framework-specific
//! but model-independent, so that a benchmark's `torch.rs` holds model code
//! only. Mirrors `fw-mlx`.
//!
//! Where tch stops short of PyTorch users' fast path, a small C++ shim over
//! libtorch fills in (`shim/`, built by `build.rs`): fused AdamW (`optim`)
//! and CUDA graph capture and replay (`graph`, opened at run time only on
//! CUDA, so the CPU-only libtorch builds and runs without it), and c10d's
//! process groups and all-reduce (`distributed`: gloo on the CPU, NCCL in
//! the CUDA part).

pub mod ceiling;
mod cuda;
pub mod distributed;
pub mod graph;
pub mod optim;
mod runtime;
mod shim;
mod weights;

pub use ceiling::Scale;
pub use graph::{cuda_graphs_available, CudaGraph, GraphedStep};
pub use optim::{AdamW, AdamWHyper, AdamWKind, FusedAdamW};
pub use runtime::{configure_process, gpu_backend, libtorch_dir, version, TorchRuntime, HOOKS};
pub use weights::{from_host, load_safetensors, to_host_f32};
