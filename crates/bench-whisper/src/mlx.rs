//! MLX twin: Whisper's encoder and decoder on mlx-rs. The graph is lazy;
//! each decoding step is evaluated once, when its next token is read.

use anyhow::{ensure, Context, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::{from_host, to_host_f32, MlxRuntime};
use mlx_rs::fast::{layer_norm, scaled_dot_product_attention, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::{argmax, IndexOp};
use mlx_rs::ops::{addmm, concatenate, conv1d};
use mlx_rs::transforms::{async_eval, eval};
use mlx_rs::{Array, Dtype};

use crate::config::ModelDims;
use crate::modules::{Attention, LayerNorm, Linear, ResidualBlock, Upload};
use crate::pipeline::{DecoderSession, WhisperTwin};
use crate::text::SuppressMasks;
use crate::weights::WhisperWeights;

/// Whisper's LayerNorm epsilon (PyTorch's default).
const LAYER_NORM_EPS: f32 = 1e-5;

/// Uploads the weights at the runtime's precision (untimed set-up).
struct Loader {
    dtype: Dtype,
    /// Every uploaded array, evaluated together at the end of loading.
    uploaded: Vec<Array>,
}

impl Upload for Loader {
    type Tensor = Array;

    fn tensor(&mut self, tensor: &HostTensor) -> Result<Array> {
        let array = from_host(tensor).as_dtype(self.dtype)?;
        self.uploaded.push(array.clone());
        Ok(array)
    }

    /// A conv1d weight in MLX's layout: (out, kernel, in), from (out, in, kernel).
    fn conv_weight(&mut self, weight: &HostTensor) -> Result<Array> {
        let weight = from_host(weight).swap_axes(1, 2)?.as_dtype(self.dtype)?;
        self.uploaded.push(weight.clone());
        Ok(weight)
    }
}

impl Linear<Array> {
    fn forward(&self, x: &Array) -> Result<Array> {
        Ok(match &self.bias {
            Some(bias) => addmm(bias, x, self.weight.t(), None, None)?,
            None => x.matmul(self.weight.t())?,
        })
    }
}

impl LayerNorm<Array> {
    fn forward(&self, x: &Array) -> Result<Array> {
        Ok(layer_norm(x, &self.weight, &self.bias, LAYER_NORM_EPS)?)
    }
}

/// Keys and values split into heads: (batch, heads, positions, head width).
type KeyValue = (Array, Array);

impl Attention<Array> {
    fn keys_values(&self, x: &Array) -> Result<KeyValue> {
        Ok((
            self.split_heads(&self.key.forward(x)?)?,
            self.split_heads(&self.value.forward(x)?)?,
        ))
    }

    /// softmax(q k^T / sqrt(d) [+ causal mask]) v, through the fused kernel.
    fn attend(&self, x: &Array, (keys, values): &KeyValue, causal: bool) -> Result<Array> {
        let queries = self.split_heads(&self.query.forward(x)?)?;
        let head_width = queries.shape()[3];
        let scale = 1.0 / (head_width as f32).sqrt();
        let mask = causal.then_some(ScaledDotProductAttentionMask::Causal);
        let attended = scaled_dot_product_attention(&queries, keys, values, scale, mask, None)?;
        self.out.forward(&self.merge_heads(&attended)?)
    }

    fn split_heads(&self, x: &Array) -> Result<Array> {
        let shape = x.shape();
        let (batch, positions, width) = (shape[0], shape[1], shape[2]);
        let n_head = self.n_head as i32;
        Ok(x.reshape(&[batch, positions, n_head, width / n_head])?
            .transpose_axes(&[0, 2, 1, 3])?)
    }

    fn merge_heads(&self, x: &Array) -> Result<Array> {
        let shape = x.shape();
        let (batch, positions) = (shape[0], shape[2]);
        Ok(x.transpose_axes(&[0, 2, 1, 3])?
            .reshape(&[batch, positions, -1])?)
    }
}

impl ResidualBlock<Array> {
    fn encode(&self, x: &Array) -> Result<Array> {
        let normed = self.attn_ln.forward(x)?;
        let keys_values = self.attn.keys_values(&normed)?;
        let x = x.add(self.attn.attend(&normed, &keys_values, false)?)?;
        x.add(self.mlp(&x)?).map_err(Into::into)
    }

    /// One decoding step: appends this step's keys/values to `cache`.
    fn decode(&self, x: &Array, cache: &mut Option<KeyValue>, cross: &KeyValue) -> Result<Array> {
        let normed = self.attn_ln.forward(x)?;
        let (keys, values) = self.attn.keys_values(&normed)?;
        let causal = cache.is_none() && x.shape()[1] > 1;
        let keys_values = match cache.take() {
            Some((old_keys, old_values)) => (
                concatenate(&[old_keys, keys], 2)?,
                concatenate(&[old_values, values], 2)?,
            ),
            None => (keys, values),
        };
        let x = x.add(self.attn.attend(&normed, &keys_values, causal)?)?;
        *cache = Some(keys_values);
        let (cross_ln, cross_attn) = self
            .cross_attn
            .as_ref()
            .context("an encoder block has no cross-attention")?;
        let x = x.add(cross_attn.attend(&cross_ln.forward(&x)?, cross, false)?)?;
        x.add(self.mlp(&x)?).map_err(Into::into)
    }

    fn mlp(&self, x: &Array) -> Result<Array> {
        let hidden = mlx_rs::nn::gelu(self.mlp1.forward(&self.mlp_ln.forward(x)?)?)?;
        self.mlp2.forward(&hidden)
    }
}

pub struct Whisper {
    dims: ModelDims,
    dtype: Dtype,
    conv1_weight: Array,
    conv1_bias: Array,
    conv2_weight: Array,
    conv2_bias: Array,
    audio_positions: Array,
    encoder_blocks: Vec<ResidualBlock<Array>>,
    ln_post: LayerNorm<Array>,
    token_embedding: Array,
    text_positions: Array,
    decoder_blocks: Vec<ResidualBlock<Array>>,
    decoder_ln: LayerNorm<Array>,
    mask_first: Array,
    mask_rest: Array,
    /// The row's `execution=` (MLX records CUDA graphs itself on CUDA).
    execution: &'static str,
}

impl Whisper {
    /// Uploads the weights at the runtime's precision (untimed set-up).
    /// Both modes decode alike (nothing is compiled); on CUDA, best mode
    /// is MLX's own graphs.
    pub fn new(
        runtime: &MlxRuntime,
        weights: &WhisperWeights,
        dims: &ModelDims,
        masks: &SuppressMasks,
        execution: Execution,
    ) -> Result<Self> {
        let mut loader = Loader {
            dtype: runtime.dtype(),
            uploaded: Vec::new(),
        };
        let (encoder, decoder) = (&weights.encoder, &weights.decoder);
        let model = Self {
            dims: dims.clone(),
            dtype: runtime.dtype(),
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
            mask_first: Array::from_slice(&masks.first, &[masks.first.len() as i32]),
            mask_rest: Array::from_slice(&masks.rest, &[masks.rest.len() as i32]),
            execution: runtime.execution_label(execution, false),
        };
        eval(
            loader
                .uploaded
                .iter()
                .chain([&model.mask_first, &model.mask_rest]),
        )?;
        Ok(model)
    }

    /// Two GELU convolutions (the second halves the frames), positions,
    /// the blocks, the final LayerNorm: (1, n_audio_ctx, n_audio_state).
    fn encoder(&self, mel: &Array) -> Result<Array> {
        // MLX convolves channels-last: (batch, frames, mels).
        let x = mel.swap_axes(1, 2)?;
        let x =
            mlx_rs::nn::gelu(conv1d(&x, &self.conv1_weight, 1, 1, 1, 1)?.add(&self.conv1_bias)?)?;
        let x =
            mlx_rs::nn::gelu(conv1d(&x, &self.conv2_weight, 2, 1, 1, 1)?.add(&self.conv2_bias)?)?;
        let mut x = x.add(&self.audio_positions)?;
        for block in &self.encoder_blocks {
            x = block.encode(&x)?;
        }
        self.ln_post.forward(&x)
    }

    /// Token and position embeddings, the blocks, the final LayerNorm, and
    /// the last position's logits through the tied embedding, in float32.
    /// `ids`: (1, count) token ids.
    fn decoder(&self, ids: &Array, session: &mut Session<'_>) -> Result<Array> {
        let offset = session.offset;
        let count = ids.shape()[1] as usize;
        ensure!(
            offset + count <= self.dims.n_text_ctx,
            "decoding past the text context: {} positions of {}",
            offset + count,
            self.dims.n_text_ctx
        );
        let positions = self
            .text_positions
            .index(offset as i32..(offset + count) as i32);
        let mut x = self.token_embedding.take_axis(ids, 0)?.add(&positions)?;
        for ((block, cache), cross) in self
            .decoder_blocks
            .iter()
            .zip(&mut session.cache)
            .zip(&session.cross.0)
        {
            x = block.decode(&x, cache, cross)?;
        }
        let last = self.decoder_ln.forward(&x)?.index((0, count as i32 - 1));
        Ok(self
            .token_embedding
            .matmul(&last)?
            .as_dtype(Dtype::Float32)?)
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
    /// Host token ids as a (1, count) array.
    fn token_ids(&self, tokens: &[u32]) -> Result<Array> {
        Ok(Array::from_slice(tokens, &[1, tokens.len() as i32]))
    }

    fn forward(&mut self, ids: &Array) -> Result<Array> {
        let count = ids.shape()[1] as usize;
        ensure!(
            self.offset == 0 || count == 1,
            "after the prompt, the decoder takes one token per step (got {count})"
        );
        let model = self.model;
        let logits = model.decoder(ids, self)?;
        self.offset += count;
        Ok(logits)
    }

    /// The greedy token after `ids` (arg-max after the suppression mask),
    /// queued with `async_eval` together with the caches it updates: the
    /// device runs it while the host builds the next step.
    fn sample(&mut self, ids: &Array, first: bool) -> Result<Array> {
        let mask = if first {
            &self.model.mask_first
        } else {
            &self.model.mask_rest
        };
        let token = argmax(self.forward(ids)?.add(mask)?, None)?;
        async_eval(
            std::iter::once(&token).chain(self.cache.iter().flatten().flat_map(|(k, v)| [k, v])),
        )?;
        Ok(token)
    }
}

impl DecoderSession for Session<'_> {
    type Pending = Array;

    fn logits(&mut self, tokens: &[u32]) -> Result<HostTensor> {
        let ids = self.token_ids(tokens)?;
        to_host_f32(&self.forward(&ids)?)
    }

    fn start(&mut self, prompt: &[u32]) -> Result<Array> {
        let ids = self.token_ids(prompt)?;
        self.sample(&ids, true)
    }

    fn follow(&mut self, previous: &Array) -> Result<Array> {
        self.sample(&previous.reshape(&[1, 1])?, false)
    }

    fn read(&mut self, token: &Array) -> Result<u32> {
        // Waits for the token's step, queued by `sample`.
        Ok(token.try_item_cast::<u32>()?)
    }
}

impl WhisperTwin for Whisper {
    type Features = Array;
    type CrossKv = CrossKv;
    type Session<'a> = Session<'a>;

    fn encode(&self, mel: &HostTensor) -> Result<Array> {
        let expected = [self.dims.n_mels, self.dims.input_frames()];
        ensure!(
            mel.shape == expected,
            "log-mel input has shape {:?}, the encoder takes {expected:?}",
            mel.shape
        );
        let mel = from_host(mel).expand_dims(0)?.as_dtype(self.dtype)?;
        // Left lazy: `cross_kv` evaluates the encoder with the keys and
        // values it feeds, so each window is evaluated once.
        self.encoder(&mel)
    }

    fn features_to_host(&self, features: &Array) -> Result<HostTensor> {
        to_host_f32(features)
    }

    fn cross_kv(&self, features: &Array) -> Result<CrossKv> {
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
        eval(keys_values.iter().flat_map(|(k, v)| [k, v]))?;
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

    fn execution(&self) -> &'static str {
        self.execution
    }
}
