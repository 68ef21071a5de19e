//! The model's modules as both twins hold them, built from
//! [`WhisperWeights`](crate::weights::WhisperWeights) by one builder: the
//! twins' modules differ only in their tensor type and in how a host
//! tensor is uploaded ([`Upload`]). Their forward passes are the twins'
//! own (`mlx.rs`, `torch.rs`).

use anyhow::Result;
use bench_core::host::HostTensor;

use crate::weights::{AttentionWeights, BlockWeights, LayerNormWeights, LinearWeights};

/// x W^T + b.
pub struct Linear<T> {
    pub weight: T,
    pub bias: Option<T>,
}

pub struct LayerNorm<T> {
    pub weight: T,
    pub bias: T,
}

/// Multi-head attention: four projections over `n_head` heads.
pub struct Attention<T> {
    pub query: Linear<T>,
    pub key: Linear<T>,
    pub value: Linear<T>,
    pub out: Linear<T>,
    pub n_head: usize,
}

/// A pre-LayerNorm transformer block; decoder blocks add cross-attention.
pub struct ResidualBlock<T> {
    pub attn_ln: LayerNorm<T>,
    pub attn: Attention<T>,
    pub cross_attn: Option<(LayerNorm<T>, Attention<T>)>,
    pub mlp_ln: LayerNorm<T>,
    pub mlp1: Linear<T>,
    pub mlp2: Linear<T>,
}

/// How a twin puts host weights on its device at its precision (untimed
/// set-up); the modules are built from these two alone.
pub trait Upload {
    type Tensor;

    fn tensor(&mut self, tensor: &HostTensor) -> Result<Self::Tensor>;

    /// A conv1d weight, stored as (out, in, kernel), in the framework's
    /// layout.
    fn conv_weight(&mut self, weight: &HostTensor) -> Result<Self::Tensor>;

    fn linear(&mut self, weights: &LinearWeights) -> Result<Linear<Self::Tensor>> {
        Ok(Linear {
            weight: self.tensor(&weights.weight)?,
            bias: weights
                .bias
                .as_ref()
                .map(|bias| self.tensor(bias))
                .transpose()?,
        })
    }

    fn layer_norm(&mut self, weights: &LayerNormWeights) -> Result<LayerNorm<Self::Tensor>> {
        Ok(LayerNorm {
            weight: self.tensor(&weights.weight)?,
            bias: self.tensor(&weights.bias)?,
        })
    }

    fn attention(
        &mut self,
        weights: &AttentionWeights,
        n_head: usize,
    ) -> Result<Attention<Self::Tensor>> {
        let AttentionWeights {
            query,
            key,
            value,
            out,
        } = weights;
        Ok(Attention {
            query: self.linear(query)?,
            key: self.linear(key)?,
            value: self.linear(value)?,
            out: self.linear(out)?,
            n_head,
        })
    }

    fn block(
        &mut self,
        weights: &BlockWeights,
        n_head: usize,
    ) -> Result<ResidualBlock<Self::Tensor>> {
        Ok(ResidualBlock {
            attn_ln: self.layer_norm(&weights.attn_ln)?,
            attn: self.attention(&weights.attn, n_head)?,
            cross_attn: weights
                .cross_attn
                .as_ref()
                .map(|(ln, attn)| -> Result<_> {
                    Ok((self.layer_norm(ln)?, self.attention(attn, n_head)?))
                })
                .transpose()?,
            mlp_ln: self.layer_norm(&weights.mlp_ln)?,
            mlp1: self.linear(&weights.mlp1)?,
            mlp2: self.linear(&weights.mlp2)?,
        })
    }

    fn blocks(
        &mut self,
        weights: &[BlockWeights],
        n_head: usize,
    ) -> Result<Vec<ResidualBlock<Self::Tensor>>> {
        weights
            .iter()
            .map(|block| self.block(block, n_head))
            .collect()
    }
}
