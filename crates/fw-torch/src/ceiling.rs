//! The device's memory-bandwidth ceiling through libtorch, shared by the
//! benchmarks that report it (bench-transfer, bench-tinyllama).

use anyhow::Result;
use tch::Tensor;

use crate::TorchRuntime;

/// y = 2x over a large buffer (STREAM's "scale"): bytes read plus bytes
/// written per pass, in the runtime's dtype.
pub struct Scale {
    x: Tensor,
}

impl Scale {
    pub fn new(runtime: &TorchRuntime, elements: usize) -> Result<Self> {
        let x = Tensor::ones([elements as i64], (runtime.kind(), runtime.tch_device()));
        Ok(Self { x })
    }

    /// Bytes read plus bytes written by one pass.
    pub fn bytes(&self) -> f64 {
        2.0 * (self.x.numel() * self.x.kind().elt_size_in_bytes()) as f64
    }

    /// One pass, queued (the harness synchronises before reading a clock).
    pub fn run(&self) -> Result<()> {
        let _no_grad = tch::no_grad_guard();
        let _ = &self.x * 2.0;
        Ok(())
    }
}
