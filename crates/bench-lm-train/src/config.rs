//! The architecture, framework-free: mlx-examples' `TransformerLM` sized
//! by the preset and knobs (this benchmark trains from scratch, so no
//! config.json), its LayerNorm epsilon and the position table both twins
//! add.

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;

/// The model: mlx-examples' `TransformerLM` (pre-norm encoder blocks with a
/// causal mask, sinusoidal positions, untied output projection).
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub vocab_size: usize,
    pub layers: usize,
    pub dim: usize,
    pub heads: usize,
    /// Width of each block's feed-forward layer.
    pub ffn_dim: usize,
    /// Tokens per sequence.
    pub context: usize,
    /// Dropout after attention and after the feed-forward activation, as
    /// MLX's `TransformerEncoderLayer`; 0 disables it on both twins.
    pub dropout: f32,
}

impl ModelConfig {
    pub fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    pub fn validate(&self) -> Result<()> {
        ensure!(self.layers >= 1, "layers must be at least 1");
        ensure!(self.heads >= 1, "heads must be at least 1");
        ensure!(
            self.dim.is_multiple_of(self.heads),
            "dim ({}) must be a multiple of heads ({})",
            self.dim,
            self.heads
        );
        // The sinusoidal table has dim/2 frequencies spread over dim/2 - 1 steps.
        ensure!(
            self.dim >= 4 && self.dim.is_multiple_of(2),
            "dim ({}) must be even and at least 4",
            self.dim
        );
        ensure!(self.ffn_dim >= 1, "ffn must be at least 1");
        ensure!(self.context >= 1, "context must be at least 1");
        ensure!(
            self.vocab_size >= 2,
            "vocabulary must have 2 tokens or more"
        );
        ensure!(
            (0.0..1.0).contains(&self.dropout),
            "dropout ({}) must be in [0, 1)",
            self.dropout
        );
        Ok(())
    }

    /// Trainable parameters, for the record: what `LmWeights::load` asks
    /// for (a test holds the two together).
    pub fn parameter_count(&self) -> usize {
        let (v, d, f) = (self.vocab_size, self.dim, self.ffn_dim);
        let norm = 2 * d;
        let block = 2 * norm + 4 * d * d + (f * d + f) + (d * f + d);
        v * d + self.layers * block + norm + (v * d + v)
    }
}

/// LayerNorm epsilon of both twins (MLX's and PyTorch's default).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The position table [context, dim] that both twins add to the token
/// embeddings: MLX's `nn.SinusoidalPositionalEncoding(dim)` at positions
/// 0..context (sines then cosines, frequencies from 1e-4 to 1 spaced
/// geometrically, scale sqrt(2 / dim)). Computed once here, in float64, so
/// the twins share one table instead of two implementations of it.
pub fn sinusoidal_positions(context: usize, dim: usize) -> HostTensor {
    let half = dim / 2;
    let (min_freq, max_freq) = (1e-4f64.ln(), 1f64.ln());
    let sigmas: Vec<f64> = (0..half)
        .map(|i| {
            let one_zero = 1.0 - i as f64 / (half - 1) as f64;
            (one_zero * (max_freq - min_freq) + min_freq).exp()
        })
        .collect();
    let scale = (2.0 / dim as f64).sqrt();
    let mut data = Vec::with_capacity(context * dim);
    for position in 0..context {
        let angles = sigmas.iter().map(|sigma| position as f64 * sigma);
        data.extend(angles.clone().map(|a| (a.sin() * scale) as f32));
        data.extend(angles.map(|a| (a.cos() * scale) as f32));
    }
    HostTensor {
        shape: vec![context, dim],
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_mlx_sinusoidal_encoding() {
        let table = sinusoidal_positions(3, 8);
        let scale = (2.0f32 / 8.0).sqrt();
        // position 0: sin = 0, cos = 1 (times the scale)
        assert_eq!(&table.data[0..4], &[0.0; 4]);
        assert!(table.data[4..8].iter().all(|&c| (c - scale).abs() < 1e-7));
        // position 1, first frequency 1 and last 1e-4
        assert!((table.data[8] - 1f32.sin() * scale).abs() < 1e-7);
        assert!((table.data[11] - 1e-4f32.sin() * scale).abs() < 1e-7);
        assert!((table.data[12] - 1f32.cos() * scale).abs() < 1e-7);
    }
}
