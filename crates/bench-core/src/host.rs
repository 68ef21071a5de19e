//! Framework-neutral host tensors: the common ground for parity tests and
//! for inputs that both twins must share.

use anyhow::{ensure, Result};

use crate::rng::SplitMix64;

/// A dense float32 tensor in row-major order.
#[derive(Clone, Debug, PartialEq)]
pub struct HostTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl HostTensor {
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let expected: usize = shape.iter().product();
        ensure!(
            expected == data.len(),
            "shape {shape:?} needs {expected} values, got {}",
            data.len()
        );
        Ok(Self { shape, data })
    }

    /// Uniform values in [0, 1) from a seeded generator, identical on every
    /// platform (SplitMix64), so both twins start from the same numbers.
    pub fn uniform(shape: Vec<usize>, seed: u64) -> Self {
        let len = shape.iter().product();
        let mut rng = SplitMix64::new(seed);
        // The top 24 bits give every float32 in [0, 1) with 2^-24 spacing.
        let data = (0..len)
            .map(|_| (rng.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .collect();
        Self { shape, data }
    }

    /// Largest |a - b| over all elements.
    pub fn max_abs_diff(&self, other: &HostTensor) -> Result<f32> {
        ensure!(
            self.shape == other.shape,
            "shapes differ: {:?} vs {:?}",
            self.shape,
            other.shape
        );
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max))
    }

    /// numpy-style allclose: |a - b| <= atol + rtol * |b| for every element.
    pub fn all_close(&self, other: &HostTensor, rtol: f32, atol: f32) -> Result<bool> {
        ensure!(
            self.shape == other.shape,
            "shapes differ: {:?} vs {:?}",
            self.shape,
            other.shape
        );
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .all(|(a, b)| (a - b).abs() <= atol + rtol * b.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_seeded_and_in_range() {
        let a = HostTensor::uniform(vec![4, 8], 7);
        assert_eq!(a, HostTensor::uniform(vec![4, 8], 7));
        assert_ne!(a, HostTensor::uniform(vec![4, 8], 8));
        assert!(a.data.iter().all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn comparisons_check_shapes_and_values() {
        let a = HostTensor::new(vec![2], vec![1.0, 2.0]).unwrap();
        let b = HostTensor::new(vec![2], vec![1.0, 2.001]).unwrap();
        assert!((a.max_abs_diff(&b).unwrap() - 0.001).abs() < 1e-6);
        assert!(a.all_close(&b, 1e-3, 0.0).unwrap());
        assert!(!a.all_close(&b, 1e-5, 0.0).unwrap());
        let c = HostTensor::new(vec![1, 2], vec![1.0, 2.0]).unwrap();
        assert!(a.max_abs_diff(&c).is_err());
        assert!(HostTensor::new(vec![3], vec![1.0]).is_err());
    }
}
