//! PyTorch twin. Separate memories: each iteration copies the matrices to
//! the accelerator, computes there, copies the results back and computes
//! on the CPU, under `no_grad`.

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::{DeviceKind, Runtime};
use fw_torch::{from_host, to_host_f32, TorchRuntime};
use tch::{Device, Tensor};

use crate::{Kernel, Switching, TransferTwin};

/// The switch loop's state: three matrices that live between iterations.
pub struct Switch {
    matrices: [Tensor; 3],
    /// None when the benchmark runs CPU-only.
    accelerator: Option<Device>,
    cpu: Device,
}

impl Switch {
    /// Uploads the inputs at the runtime's precision (untimed set-up).
    pub fn new(runtime: &TorchRuntime, inputs: &[HostTensor; 3]) -> Result<Self> {
        let cpu = Device::Cpu;
        let matrices = inputs
            .each_ref()
            .map(|input| from_host(input).to_kind(runtime.kind()).to_device(cpu));
        let accelerator = (runtime.device() == DeviceKind::Gpu).then(|| runtime.tch_device());
        Ok(Self {
            matrices,
            accelerator,
            cpu,
        })
    }

    /// The current matrices, on the host as float32.
    pub fn matrices(&self) -> Result<[HostTensor; 3]> {
        collect_three(self.matrices.each_ref().map(to_host_f32))
    }
}

impl Switching for Switch {
    fn iterate(&mut self) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let first = match self.accelerator {
            Some(device) => products(&self.matrices.each_ref().map(|m| m.to_device(device))),
            None => products(&self.matrices),
        };
        self.matrices = products(&first.map(|m| m.to_device(self.cpu)));
        Ok(())
    }
}

/// r1 = norm(a @ b), r2 = norm(b @ c), r3 = norm(c @ a).
fn products([a, b, c]: &[Tensor; 3]) -> [Tensor; 3] {
    [
        normalized_product(a, b),
        normalized_product(b, c),
        normalized_product(c, a),
    ]
}

/// x @ y with each column divided by its maximum (`amax`: values only, as
/// MLX's `max`, where `max(dim)` would also compute indices).
fn normalized_product(x: &Tensor, y: &Tensor) -> Tensor {
    let product = x.matmul(y);
    let column_max = product.amax([0].as_slice(), false);
    product / column_max
}

/// The matmul ceiling: one N x N @ N x N product.
pub struct Matmul {
    a: Tensor,
    b: Tensor,
}

impl Matmul {
    pub fn new(runtime: &TorchRuntime, size: usize, seed: u64) -> Result<Self> {
        let shape = vec![size, size];
        let [a, b] = [0, 1].map(|i| {
            from_host(&HostTensor::uniform(shape.clone(), seed + i))
                .to_kind(runtime.kind())
                .to_device(runtime.tch_device())
        });
        Ok(Self { a, b })
    }
}

impl Kernel for Matmul {
    fn run(&self) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let _ = self.a.matmul(&self.b);
        Ok(())
    }
}

/// The bandwidth ceiling (y = 2x), shared with the other benchmarks.
pub use fw_torch::Scale;

fn collect_three<T>(items: [Result<T>; 3]) -> Result<[T; 3]> {
    let [a, b, c] = items;
    Ok([a?, b?, c?])
}

/// The PyTorch twin (see [`TransferTwin`]).
pub struct Twin;

impl TransferTwin for Twin {
    type Runtime = TorchRuntime;
    type Switch = Switch;
    type Matmul = Matmul;
    type Copy = Scale;

    fn switch(runtime: &TorchRuntime, inputs: &[HostTensor; 3]) -> Result<Switch> {
        Switch::new(runtime, inputs)
    }

    fn matmul(runtime: &TorchRuntime, size: usize, seed: u64) -> Result<Matmul> {
        Matmul::new(runtime, size, seed)
    }

    fn copy(runtime: &TorchRuntime, elements: usize) -> Result<(f64, Scale)> {
        let scale = Scale::new(runtime, elements)?;
        Ok((scale.bytes(), scale))
    }
}

impl Kernel for Scale {
    fn run(&self) -> Result<()> {
        Scale::run(self)
    }
}
