//! PyTorch twin: Whisper's encoder and decoder on tch (libtorch), under
//! `no_grad`; attention through the fused `scaled_dot_product_attention`.
//! The fallible (`f_`) calls turn libtorch errors into `Result`s, as MLX's
//! calls do, instead of panics.

use anyhow::{ensure, Context, Result};
use bench_core::host::HostTensor;
use fw_torch::{from_host, to_host_f32, TorchRuntime};
use tch::{Device, Kind, Tensor};

use crate::config::ModelDims;
use crate::modules::{Attention, LayerNorm, Linear, ResidualBlock, Upload};
use crate::pipeline::{DecoderSession, WhisperTwin};
use crate::text::SuppressMasks;
use crate::weights::WhisperWeights;

/// Whisper's LayerNorm epsilon (PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;

/// Uploads the weights at the runtime's precision (untimed set-up).
struct Loader {
    kind: Kind,
    device: Device,
}

impl Upload for Loader {
    type Tensor = Tensor;

    fn tensor(&mut self, tensor: &HostTensor) -> Result<Tensor> {
        Ok(from_host(tensor)
            .f_to_kind(self.kind)?
            .f_to_device(self.device)?)
    }

    /// A conv1d weight in PyTorch's layout: (out, in, kernel), as stored.
    fn conv_weight(&mut self, weight: &HostTensor) -> Result<Tensor> {
        self.tensor(weight)
    }
}

impl Linear<Tensor> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.f_linear(&self.weight, self.bias.as_ref())?)
    }
}

impl LayerNorm<Tensor> {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let width = self.weight.size()[0];
        Ok(x.f_layer_norm(
            [width],
            Some(&self.weight),
            Some(&self.bias),
            LAYER_NORM_EPS,
            true,
        )?)
    }
}

/// Keys and values split into heads: (batch, heads, positions, head width).
type KeyValue = (Tensor, Tensor);

impl Attention<Tensor> {
    fn keys_values(&self, x: &Tensor) -> Result<KeyValue> {
        Ok((
            self.split_heads(&self.key.forward(x)?)?,
            self.split_heads(&self.value.forward(x)?)?,
        ))
    }

    /// softmax(q k^T / sqrt(d) [+ causal mask]) v, through the fused kernel.
    fn attend(&self, x: &Tensor, (keys, values): &KeyValue, causal: bool) -> Result<Tensor> {
        let queries = self.split_heads(&self.query.forward(x)?)?;
        let head_width = queries.size()[3];
        let scale = 1.0 / (head_width as f64).sqrt();
        let attended = Tensor::f_scaled_dot_product_attention(
            &queries,
            keys,
            values,
            None::<Tensor>,
            0.0,
            causal,
            Some(scale),
            false,
        )?;
        self.out.forward(&self.merge_heads(&attended)?)
    }

    fn split_heads(&self, x: &Tensor) -> Result<Tensor> {
        let (batch, positions, width) = x.size3()?;
        let n_head = self.n_head as i64;
        Ok(x.f_reshape([batch, positions, n_head, width / n_head])?
            .f_transpose(1, 2)?)
    }

    fn merge_heads(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let (batch, positions) = (size[0], size[2]);
        Ok(x.f_transpose(1, 2)?.f_reshape([batch, positions, -1])?)
    }
}

impl ResidualBlock<Tensor> {
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let normed = self.attn_ln.forward(x)?;
        let keys_values = self.attn.keys_values(&normed)?;
        let x = x.f_add(&self.attn.attend(&normed, &keys_values, false)?)?;
        Ok(x.f_add(&self.mlp(&x)?)?)
    }

    /// One decoding step: appends this step's keys/values to `cache`.
    fn decode(&self, x: &Tensor, cache: &mut Option<KeyValue>, cross: &KeyValue) -> Result<Tensor> {
        let normed = self.attn_ln.forward(x)?;
        let (keys, values) = self.attn.keys_values(&normed)?;
        let causal = cache.is_none() && x.size()[1] > 1;
        let keys_values = match cache.take() {
            Some((old_keys, old_values)) => (
                Tensor::f_cat(&[old_keys, keys], 2)?,
                Tensor::f_cat(&[old_values, values], 2)?,
            ),
            None => (keys, values),
        };
        let x = x.f_add(&self.attn.attend(&normed, &keys_values, causal)?)?;
        *cache = Some(keys_values);
        let (cross_ln, cross_attn) = self
            .cross_attn
            .as_ref()
            .context("an encoder block has no cross-attention")?;
        let x = x.f_add(&cross_attn.attend(&cross_ln.forward(&x)?, cross, false)?)?;
        Ok(x.f_add(&self.mlp(&x)?)?)
    }

    fn mlp(&self, x: &Tensor) -> Result<Tensor> {
        let hidden = self
            .mlp1
            .forward(&self.mlp_ln.forward(x)?)?
            .f_gelu("none")?;
        self.mlp2.forward(&hidden)
    }
}

pub struct Whisper {
    dims: ModelDims,
    kind: Kind,
    device: Device,
    conv1_weight: Tensor,
    conv1_bias: Tensor,
    conv2_weight: Tensor,
    conv2_bias: Tensor,
    audio_positions: Tensor,
    encoder_blocks: Vec<ResidualBlock<Tensor>>,
    ln_post: LayerNorm<Tensor>,
    token_embedding: Tensor,
    text_positions: Tensor,
    decoder_blocks: Vec<ResidualBlock<Tensor>>,
    decoder_ln: LayerNorm<Tensor>,
    mask_first: Tensor,
    mask_rest: Tensor,
}

impl Whisper {
    /// Uploads the weights at the runtime's precision (untimed set-up).
    pub fn new(
        runtime: &TorchRuntime,
        weights: &WhisperWeights,
        dims: &ModelDims,
        masks: &SuppressMasks,
    ) -> Result<Self> {
        let device = runtime.tch_device();
        let mut loader = Loader {
            kind: runtime.kind(),
            device,
        };
        let (encoder, decoder) = (&weights.encoder, &weights.decoder);
        let model = Self {
            dims: dims.clone(),
            kind: runtime.kind(),
            device,
            conv1_weight: loader.conv_weight(&encoder.conv1.weight)?,
            conv1_bias: loader.tensor(&encoder.conv1.bias)?,
            conv2_weight: loader.conv_weight(&encoder.conv2.weight)?,
            conv2_bias: loader.tensor(&encoder.conv2.bias)?,
            audio_positions: loader.tensor(&encoder.positions)?,
            encoder_blocks: loader.blocks(&encoder.blocks, dims.n_audio_head)?,
            ln_post: loader.layer_norm(&encoder.ln_post)?,
            token_embedding: loader.tensor(&decoder.token_embedding)?,
            text_positions: loader.tensor(&decoder.positions)?,
            decoder_blocks: loader.blocks(&decoder.blocks, dims.n_text_head)?,
            decoder_ln: loader.layer_norm(&decoder.ln)?,
            mask_first: Tensor::f_from_slice(&masks.first)?.f_to_device(device)?,
            mask_rest: Tensor::f_from_slice(&masks.rest)?.f_to_device(device)?,
        };
        Ok(model)
    }

    /// Two GELU convolutions (the second halves the frames), positions,
    /// the blocks, the final LayerNorm: (1, n_audio_ctx, n_audio_state).
    fn encoder(&self, mel: &Tensor) -> Result<Tensor> {
        // PyTorch convolves channels-first: (batch, mels, frames).
        let x = mel
            .f_conv1d(&self.conv1_weight, Some(&self.conv1_bias), [1], [1], [1], 1)?
            .f_gelu("none")?;
        let x = x
            .f_conv1d(&self.conv2_weight, Some(&self.conv2_bias), [2], [1], [1], 1)?
            .f_gelu("none")?;
        let mut x = x.f_transpose(1, 2)?.f_add(&self.audio_positions)?;
        for block in &self.encoder_blocks {
            x = block.encode(&x)?;
        }
        self.ln_post.forward(&x)
    }

    /// Token and position embeddings, the blocks, the final LayerNorm, and
    /// the last position's logits through the tied embedding, in float32.
    /// `ids`: (1, count) token ids on the device.
    fn decoder(&self, ids: &Tensor, session: &mut Session<'_>) -> Result<Tensor> {
        let offset = session.offset;
        let count = ids.size()[1] as usize;
        ensure!(
            offset + count <= self.dims.n_text_ctx,
            "decoding past the text context: {} positions of {}",
            offset + count,
            self.dims.n_text_ctx
        );
        let positions = self
            .text_positions
            .f_narrow(0, offset as i64, count as i64)?;
        let mut x =
            Tensor::f_embedding(&self.token_embedding, ids, -1, false, false)?.f_add(&positions)?;
        for ((block, cache), cross) in self
            .decoder_blocks
            .iter()
            .zip(&mut session.cache)
            .zip(&session.cross.0)
        {
            x = block.decode(&x, cache, cross)?;
        }
        let last = self
            .decoder_ln
            .forward(&x)?
            .f_select(0, 0)?
            .f_select(0, count as i64 - 1)?;
        Ok(self
            .token_embedding
            .f_matmul(&last)?
            .f_to_kind(Kind::Float)?)
    }
}

/// The cross-attention keys and values of every decoder layer.
pub struct CrossKv(Vec<KeyValue>);

/// One window's decoder: its cache and the position it has reached.
pub struct Session<'a> {
    model: &'a Whisper,
    cross: &'a CrossKv,
    cache: Vec<Option<KeyValue>>,
    offset: usize,
}

impl Session<'_> {
    /// Host token ids as a (1, count) device tensor.
    fn token_ids(&self, tokens: &[u32]) -> Result<Tensor> {
        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        Ok(Tensor::f_from_slice(&ids)?
            .f_reshape([1, tokens.len() as i64])?
            .f_to_device(self.model.device)?)
    }

    fn forward(&mut self, ids: &Tensor) -> Result<Tensor> {
        let count = ids.size()[1] as usize;
        ensure!(
            self.offset == 0 || count == 1,
            "after the prompt, the decoder takes one token per step (got {count})"
        );
        let _no_grad = tch::no_grad_guard();
        let model = self.model;
        let logits = model.decoder(ids, self)?;
        self.offset += count;
        Ok(logits)
    }

    /// The greedy token after `ids` (arg-max after the suppression mask),
    /// left on the device: CUDA runs it while the host goes on.
    fn sample(&mut self, ids: &Tensor, first: bool) -> Result<Tensor> {
        let mask = if first {
            &self.model.mask_first
        } else {
            &self.model.mask_rest
        };
        Ok(self.forward(ids)?.f_add(mask)?.f_argmax(None, false)?)
    }
}

impl DecoderSession for Session<'_> {
    type Pending = Tensor;

    fn logits(&mut self, tokens: &[u32]) -> Result<HostTensor> {
        let ids = self.token_ids(tokens)?;
        to_host_f32(&self.forward(&ids)?)
    }

    fn start(&mut self, prompt: &[u32]) -> Result<Tensor> {
        let ids = self.token_ids(prompt)?;
        self.sample(&ids, true)
    }

    fn follow(&mut self, previous: &Tensor) -> Result<Tensor> {
        self.sample(&previous.f_reshape([1, 1])?, false)
    }

    fn read(&mut self, token: &Tensor) -> Result<u32> {
        // Reading the id back waits for the step's work. On CUDA it waits
        // for that step alone, while the next one, queued first, runs on.
        // On MPS a copy to the host commits the stream and waits for all
        // of it, the step queued ahead included: there the loop runs as a
        // synchronous one (no overlap of host and device), and, as on CUDA
        // and MLX, computes one step past the end of text per window.
        Ok(token.f_int64_value(&[])? as u32)
    }
}

impl WhisperTwin for Whisper {
    type Features = Tensor;
    type CrossKv = CrossKv;
    type Session<'a> = Session<'a>;

    fn encode(&self, mel: &HostTensor) -> Result<Tensor> {
        let expected = [self.dims.n_mels, self.dims.input_frames()];
        ensure!(
            mel.shape == expected,
            "log-mel input has shape {:?}, the encoder takes {expected:?}",
            mel.shape
        );
        let _no_grad = tch::no_grad_guard();
        let mel = from_host(mel)
            .f_unsqueeze(0)?
            .f_to_kind(self.kind)?
            .f_to_device(self.device)?;
        self.encoder(&mel)
    }

    fn features_to_host(&self, features: &Tensor) -> Result<HostTensor> {
        to_host_f32(features)
    }

    fn cross_kv(&self, features: &Tensor) -> Result<CrossKv> {
        let _no_grad = tch::no_grad_guard();
        let keys_values = self
            .decoder_blocks
            .iter()
            .map(|block| {
                let (_, cross_attn) = block
                    .cross_attn
                    .as_ref()
                    .context("a decoder block without cross-attention")?;
                cross_attn.keys_values(features)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(CrossKv(keys_values))
    }

    fn session<'a>(&'a self, cross: &'a CrossKv) -> Session<'a> {
        Session {
            model: self,
            cross,
            cache: (0..self.dims.n_text_layer).map(|_| None).collect(),
            offset: 0,
        }
    }
}
