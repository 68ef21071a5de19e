//! MLX twin. Unified memory: no copies; each half of an iteration is placed
//! on a stream (accelerator, then CPU), and the iteration's graph is
//! evaluated once.

use anyhow::Result;
use bench_core::host::HostTensor;
use bench_core::{DeviceKind, Runtime};
use fw_mlx::{from_host, to_host_f32, MlxRuntime};
use mlx_rs::{transforms::eval, with_stream, Array, Stream};

use crate::{Kernel, Switching, TransferTwin};

/// The switch loop's state: three matrices that live between iterations.
pub struct Switch {
    matrices: [Array; 3],
    /// None when the benchmark runs CPU-only.
    accelerator: Option<Stream>,
    cpu: Stream,
}

impl Switch {
    /// Uploads the inputs at the runtime's precision (untimed set-up).
    pub fn new(runtime: &MlxRuntime, inputs: &[HostTensor; 3]) -> Result<Self> {
        let cpu = runtime.cpu_stream();
        let matrices = with_stream(&cpu, || {
            collect_three(
                inputs
                    .each_ref()
                    .map(|input| Ok(from_host(input).as_dtype(runtime.dtype())?)),
            )
        })?;
        eval(matrices.iter())?;
        let accelerator = (runtime.device() == DeviceKind::Gpu).then(|| runtime.stream());
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
        let first_stream = self.accelerator.as_ref().unwrap_or(&self.cpu);
        let first = with_stream(first_stream, || products(&self.matrices))?;
        self.matrices = with_stream(&self.cpu, || products(&first))?;
        eval(self.matrices.iter())?;
        Ok(())
    }
}

/// r1 = norm(a @ b), r2 = norm(b @ c), r3 = norm(c @ a).
fn products([a, b, c]: &[Array; 3]) -> Result<[Array; 3]> {
    Ok([
        normalized_product(a, b)?,
        normalized_product(b, c)?,
        normalized_product(c, a)?,
    ])
}

/// x @ y with each column divided by its maximum.
fn normalized_product(x: &Array, y: &Array) -> Result<Array> {
    let product = x.matmul(y)?;
    let column_max = product.max_axis(0, false)?;
    Ok(product.divide(&column_max)?)
}

/// The matmul ceiling: one N x N @ N x N product.
pub struct Matmul {
    a: Array,
    b: Array,
}

impl Matmul {
    pub fn new(runtime: &MlxRuntime, size: usize, seed: u64) -> Result<Self> {
        let shape = vec![size, size];
        let [a, b] = [0, 1].map(|i| {
            from_host(&HostTensor::uniform(shape.clone(), seed + i)).as_dtype(runtime.dtype())
        });
        let (a, b) = (a?, b?);
        eval([&a, &b])?;
        Ok(Self { a, b })
    }
}

impl Kernel for Matmul {
    fn run(&self) -> Result<()> {
        self.a.matmul(&self.b)?.eval()?;
        Ok(())
    }
}

/// The bandwidth ceiling (y = 2x), shared with the other benchmarks.
pub use fw_mlx::Scale;

fn collect_three<T>(items: [Result<T>; 3]) -> Result<[T; 3]> {
    let [a, b, c] = items;
    Ok([a?, b?, c?])
}

/// The MLX twin (see [`TransferTwin`]).
pub struct Twin;

impl TransferTwin for Twin {
    type Runtime = MlxRuntime;
    type Switch = Switch;
    type Matmul = Matmul;
    type Copy = Scale;

    fn switch(runtime: &MlxRuntime, inputs: &[HostTensor; 3]) -> Result<Switch> {
        Switch::new(runtime, inputs)
    }

    fn matmul(runtime: &MlxRuntime, size: usize, seed: u64) -> Result<Matmul> {
        Matmul::new(runtime, size, seed)
    }

    fn copy(runtime: &MlxRuntime, elements: usize) -> Result<(f64, Scale)> {
        let scale = Scale::new(runtime, elements)?;
        Ok((scale.bytes(), scale))
    }
}

impl Kernel for Scale {
    fn run(&self) -> Result<()> {
        Scale::run(self)
    }
}
