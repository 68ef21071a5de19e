//! The device's memory-bandwidth ceiling through MLX, shared by the
//! benchmarks that report it (bench-transfer, bench-tinyllama).

use anyhow::Result;
use mlx_rs::Array;

use crate::MlxRuntime;

/// y = 2x over a large buffer (STREAM's "scale"): bytes read plus bytes
/// written per pass, in the runtime's dtype.
pub struct Scale {
    x: Array,
    /// 2 in x's dtype, made once so that a timed pass is the multiply only.
    two: Array,
}

impl Scale {
    pub fn new(runtime: &MlxRuntime, elements: usize) -> Result<Self> {
        let x = mlx_rs::ops::ones::<f32>(&[elements as i32])?.as_dtype(runtime.dtype())?;
        let two = Array::from_f32(2.0).as_dtype(runtime.dtype())?;
        mlx_rs::transforms::eval([&x, &two])?;
        Ok(Self { x, two })
    }

    /// Bytes read plus bytes written by one pass.
    pub fn bytes(&self) -> f64 {
        2.0 * self.x.nbytes() as f64
    }

    /// One pass, evaluated.
    pub fn run(&self) -> Result<()> {
        self.x.multiply(&self.two)?.eval()?;
        Ok(())
    }
}
