use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use bench_core::host::HostTensor;
use tch::{Kind, Tensor};

/// Every tensor of a safetensors file, as tch tensors on the CPU.
pub fn load_safetensors(path: &Path) -> Result<HashMap<String, Tensor>> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("loading safetensors weights from {}", path.display()))?;
    Ok(tensors.into_iter().collect())
}

/// A host tensor as a float32 CPU tensor of its shape.
pub fn from_host(tensor: &HostTensor) -> Tensor {
    let shape: Vec<i64> = tensor.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&tensor.data).reshape(shape)
}

/// Copies a tensor to the host as float32.
pub fn to_host_f32(tensor: &Tensor) -> Result<HostTensor> {
    let tensor = tensor
        .to_device(tch::Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let shape = tensor.size().iter().map(|&d| d as usize).collect();
    let data =
        Vec::<f32>::try_from(tensor.flatten(0, -1)).context("reading a tensor on the host")?;
    HostTensor::new(shape, data)
}
