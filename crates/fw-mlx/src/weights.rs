use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use mlx_rs::{Array, Dtype};

/// Every tensor of a safetensors file, as MLX arrays.
pub fn load_safetensors(path: &Path) -> Result<HashMap<String, Array>> {
    Array::load_safetensors(path)
        .with_context(|| format!("loading safetensors weights from {}", path.display()))
}

/// Copies an array to the host as float32 (evaluating it first).
pub fn to_host_f32(array: &Array) -> Result<HostTensor> {
    let array = array.as_dtype(Dtype::Float32)?;
    array.eval()?;
    let shape = array.shape().iter().map(|&d| d as usize).collect();
    let data = array
        .try_as_slice::<f32>()
        .context("reading an MLX array on the host")?
        .to_vec();
    HostTensor::new(shape, data)
}
