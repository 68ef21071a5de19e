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

/// A host tensor as a float32 array of its shape (lazy: MLX copies the
/// data when the array is first evaluated).
pub fn from_host(tensor: &HostTensor) -> Array {
    let shape: Vec<i32> = tensor.shape.iter().map(|&d| d as i32).collect();
    Array::from_slice(&tensor.data, &shape)
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
