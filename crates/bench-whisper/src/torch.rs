//! PyTorch twin: Whisper's encoder and decoder on tch (libtorch), under
//! `no_grad`; attention through the fused `scaled_dot_product_attention`.
//! The fallible (`f_`) calls turn libtorch errors into `Result`s, as MLX's
//! calls do, instead of panics.
//!
//! Decoding, by mode. Eager: the self-attention cache grows by
//! concatenation, op by op. Best: a static decoder ([`StaticDecoder`]), as
//! gpt-fast decodes Llama and as our `static-decoder` reference decodes
//! Whisper: caches of the whole text context allocated once, and a
//! single-token step whose every input is a device tensor, so that on CUDA
//! it is captured once as a CUDA graph and replayed per token, argmax
//! included; off CUDA the same step runs op by op. The prompt and the
//! encoder run eagerly in both modes.

use std::cell::{Cell, RefCell};

use anyhow::{anyhow, ensure, Context, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_torch::{from_host, to_host_f32, GraphedStep, TorchRuntime};
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
    fn attend(&self, x: &Tensor, keys_values: &KeyValue, causal: bool) -> Result<Tensor> {
        self.attend_masked(x, keys_values, causal, None)
    }

    /// As [`Attention::attend`], with an additive `mask` over the keys.
    fn attend_masked(
        &self,
        x: &Tensor,
        (keys, values): &KeyValue,
        causal: bool,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let queries = self.split_heads(&self.query.forward(x)?)?;
        let head_width = queries.size()[3];
        let scale = 1.0 / (head_width as f64).sqrt();
        let attended = Tensor::f_scaled_dot_product_attention(
            &queries,
            keys,
            values,
            mask,
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
        self.cross_and_mlp(&x, cross)
    }

    /// The static decoder's step at a host-known `offset` (the prompt, or
    /// a step outside the graph): writes this step's keys/values into the
    /// whole-context `cache` and attends over its filled prefix.
    fn decode_at(
        &self,
        x: &Tensor,
        (keys, values): &KeyValue,
        offset: usize,
        cross: &KeyValue,
    ) -> Result<Tensor> {
        let normed = self.attn_ln.forward(x)?;
        let (new_keys, new_values) = self.attn.keys_values(&normed)?;
        let count = x.size()[1];
        let (start, end) = (offset as i64, offset as i64 + count);
        keys.f_narrow(2, start, count)?.f_copy_(&new_keys)?;
        values.f_narrow(2, start, count)?.f_copy_(&new_values)?;
        let prefix = (keys.f_narrow(2, 0, end)?, values.f_narrow(2, 0, end)?);
        let causal = offset == 0 && count > 1;
        let x = x.f_add(&self.attn.attend(&normed, &prefix, causal)?)?;
        self.cross_and_mlp(&x, cross)
    }

    /// The graphed step's layer: one token at the device-side `position`,
    /// its keys/values written there, every slot of `cache` attended under
    /// the additive `mask` (the slots past `position` hidden). The shapes
    /// never change, so a CUDA graph can hold it. The mask rules out
    /// libtorch's flash kernel (see TinyLlama's `attention_step`: about
    /// 0.1 ms of a step there); Whisper's decoder is small beside it.
    fn decode_step(
        &self,
        x: &Tensor,
        (keys, values): &KeyValue,
        position: &Tensor,
        mask: &Tensor,
        cross: &KeyValue,
    ) -> Result<Tensor> {
        let normed = self.attn_ln.forward(x)?;
        let (new_keys, new_values) = self.attn.keys_values(&normed)?;
        let _ = keys.shallow_clone().f_index_copy_(2, position, &new_keys)?;
        let _ = values
            .shallow_clone()
            .f_index_copy_(2, position, &new_values)?;
        let whole = (keys.shallow_clone(), values.shallow_clone());
        let attended = self
            .attn
            .attend_masked(&normed, &whole, false, Some(mask))?;
        self.cross_and_mlp(&x.f_add(&attended)?, cross)
    }

    /// Cross-attention to the audio, then the MLP, each a residual.
    fn cross_and_mlp(&self, x: &Tensor, cross: &KeyValue) -> Result<Tensor> {
        let (cross_ln, cross_attn) = self
            .cross_attn
            .as_ref()
            .context("an encoder block has no cross-attention")?;
        let x = x.f_add(&cross_attn.attend(&cross_ln.forward(x)?, cross, false)?)?;
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
    /// Best mode: the static decoder; None: eager (a growing cache).
    /// Shared by the sessions, which run one at a time.
    static_decoder: Option<RefCell<StaticDecoder>>,
    /// Sessions made so far: each one's id.
    sessions: Cell<u64>,
}

/// The best mode's decoder state on the device: self-attention caches of
/// the whole text context, allocated once; the window's cross-attention
/// keys/values copied into fixed buffers; the step's token and position;
/// and the step's CUDA graph where CUDA graphs run.
struct StaticDecoder {
    /// Per layer, [1, heads, n_text_ctx, head width].
    cache: Vec<KeyValue>,
    /// Per layer, [1, heads, n_audio_ctx, head width].
    cross: Vec<KeyValue>,
    /// The token being fed, [1, 1] int64.
    token: Tensor,
    /// Its position, [1] int64.
    position: Tensor,
    /// chosen[p]: the token chosen after position p, [n_text_ctx] int64.
    chosen: Tensor,
    /// 0..n_text_ctx, int64: the slots past `position` are masked.
    key_positions: Tensor,
    /// Best mode on CUDA; None: the step runs op by op.
    graph: Option<GraphedStep<()>>,
    /// The session whose prompt filled the caches last: only it may go on.
    owner: Option<u64>,
}

impl StaticDecoder {
    fn new(dims: &ModelDims, kind: Kind, device: Device) -> Result<Self> {
        let head_width = (dims.n_text_state / dims.n_text_head) as i64;
        let buffers = |positions: usize| -> Result<Vec<KeyValue>> {
            let shape = [1, dims.n_text_head as i64, positions as i64, head_width];
            (0..dims.n_text_layer)
                .map(|_| {
                    Ok((
                        Tensor::f_zeros(shape, (kind, device))?,
                        Tensor::f_zeros(shape, (kind, device))?,
                    ))
                })
                .collect()
        };
        let int64 = (Kind::Int64, device);
        let context = dims.n_text_ctx as i64;
        // One eager step first: cuBLAS and the kernels' choices start
        // outside the capture.
        let graph = fw_torch::cuda_graphs_available(device)
            .is_ok()
            .then(|| GraphedStep::new(device, 1));
        Ok(Self {
            cache: buffers(dims.n_text_ctx)?,
            cross: buffers(dims.n_audio_ctx)?,
            token: Tensor::f_zeros([1, 1], int64)?,
            position: Tensor::f_zeros([1], int64)?,
            chosen: Tensor::f_zeros([context], int64)?,
            key_positions: Tensor::f_arange(context, int64)?,
            graph,
            owner: None,
        })
    }
}

impl Whisper {
    /// Uploads the weights at the runtime's precision (untimed set-up);
    /// best mode allocates the static decoder.
    pub fn new(
        runtime: &TorchRuntime,
        weights: &WhisperWeights,
        dims: &ModelDims,
        masks: &SuppressMasks,
        execution: Execution,
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
            static_decoder: match execution {
                Execution::Best => Some(RefCell::new(StaticDecoder::new(
                    dims,
                    runtime.kind(),
                    device,
                )?)),
                Execution::Eager => None,
            },
            sessions: Cell::new(0),
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
        match &self.static_decoder {
            None => {
                for ((block, cache), cross) in self
                    .decoder_blocks
                    .iter()
                    .zip(&mut session.cache)
                    .zip(&session.cross.0)
                {
                    x = block.decode(&x, cache, cross)?;
                }
            }
            Some(decoder) => {
                let decoder = session.claim(decoder)?;
                for ((block, cache), cross) in self
                    .decoder_blocks
                    .iter()
                    .zip(&decoder.cache)
                    .zip(&session.cross.0)
                {
                    x = block.decode_at(&x, cache, offset, cross)?;
                }
            }
        }
        self.logits(&x)
    }

    /// The last position's logits through the tied embedding, in float32.
    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let count = x.size()[1];
        let last = self
            .decoder_ln
            .forward(x)?
            .f_select(0, 0)?
            .f_select(0, count - 1)?;
        Ok(self
            .token_embedding
            .f_matmul(&last)?
            .f_to_kind(Kind::Float)?)
    }

    /// One greedy step of the static decoder from its device state alone:
    /// feeds `token` at `position`, writes the caches there, stores the
    /// arg-max (after the suppression mask of every step but the first) in
    /// `chosen` and as the next token, advances the position. Nothing is
    /// read back, so a CUDA graph can record it.
    fn decode_step(&self, state: &StaticDecoder) -> Result<()> {
        let context = self.dims.n_text_ctx as i64;
        // Additive, in the model's dtype, built once per step for every layer.
        let hidden = state.key_positions.f_gt_tensor(&state.position)?;
        let mask = Tensor::f_zeros([context], (self.kind, self.device))?
            .f_masked_fill(&hidden, f64::NEG_INFINITY)?
            .f_view([1, 1, 1, context])?;
        let positions = self.text_positions.f_index_select(0, &state.position)?;
        let mut x = Tensor::f_embedding(&self.token_embedding, &state.token, -1, false, false)?
            .f_add(&positions)?;
        for ((block, cache), cross) in self
            .decoder_blocks
            .iter()
            .zip(&state.cache)
            .zip(&state.cross)
        {
            x = block.decode_step(&x, cache, &state.position, &mask, cross)?;
        }
        let next = self
            .logits(&x)?
            .f_add(&self.mask_rest)?
            .f_argmax(None, false)?;
        let _ =
            state
                .chosen
                .shallow_clone()
                .f_index_copy_(0, &state.position, &next.f_view([1])?)?;
        state.token.shallow_clone().f_copy_(&next.f_view([1, 1])?)?;
        let _ = state.position.shallow_clone().f_add_scalar_(1)?;
        Ok(())
    }
}

/// The cross-attention keys and values of every decoder layer.
pub struct CrossKv(Vec<KeyValue>);

/// One window's decoder: its cache and the position it has reached.
pub struct Session<'a> {
    model: &'a Whisper,
    cross: &'a CrossKv,
    /// Eager mode's growing cache (best mode's is the static decoder's).
    cache: Vec<Option<KeyValue>>,
    offset: usize,
    /// This session's id, to tell whether the static decoder is its own.
    id: u64,
    /// Whether the static decoder's cross-attention buffers hold this
    /// session's window.
    cross_loaded: bool,
    /// The address of the choice this session's last step returned: fed
    /// that, the next step finds the token in the decoder's state already.
    last_choice: Option<usize>,
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
        self.last_choice = None;
        Ok(logits)
    }

    /// The static decoder for this session: its prompt (offset 0) makes
    /// the decoder its own; any later call must find it still its own
    /// (another session's prompt would have overwritten its caches).
    fn claim<'d>(
        &mut self,
        decoder: &'d RefCell<StaticDecoder>,
    ) -> Result<std::cell::RefMut<'d, StaticDecoder>> {
        // Borrowed for one call: no borrow outlives one.
        let mut decoder = decoder
            .try_borrow_mut()
            .map_err(|_| anyhow!("the static decoder is borrowed elsewhere"))?;
        if self.offset == 0 {
            decoder.owner = Some(self.id);
            self.cross_loaded = false;
        }
        ensure!(
            decoder.owner == Some(self.id),
            "the static decoder serves one session at a time, each from its prompt: \
             a later session has replaced this one's caches"
        );
        Ok(decoder)
    }

    /// One step of the static decoder: its CUDA graph's replay where one
    /// is captured, else its ops. The session's first step loads its
    /// window's cross-attention keys/values into the decoder (a device
    /// copy, timed with decoding); a step fed anything but the choice of
    /// the step before loads the token and its position. Returns the
    /// step's choice, left on the device.
    fn step(&mut self, decoder: &RefCell<StaticDecoder>, previous: &Tensor) -> Result<Tensor> {
        ensure!(
            self.offset < self.model.dims.n_text_ctx,
            "decoding past the text context: {} positions of {}",
            self.offset + 1,
            self.model.dims.n_text_ctx
        );
        let _no_grad = tch::no_grad_guard();
        let mut decoder = self.claim(decoder)?;
        if !self.cross_loaded {
            for ((keys, values), (window_keys, window_values)) in
                decoder.cross.iter().zip(&self.cross.0)
            {
                keys.shallow_clone().f_copy_(window_keys)?;
                values.shallow_clone().f_copy_(window_values)?;
            }
            self.cross_loaded = true;
        }
        if self.last_choice != Some(previous.data_ptr() as usize) {
            decoder
                .token
                .shallow_clone()
                .f_copy_(&previous.f_reshape([1, 1])?)?;
            let _ = decoder
                .position
                .shallow_clone()
                .f_fill_(self.offset as i64)?;
        }
        let model = self.model;
        let mut graph = decoder.graph.take();
        let outcome = match &mut graph {
            Some(graph) => graph.run(|| model.decode_step(&decoder)).map(drop),
            None => model.decode_step(&decoder),
        };
        decoder.graph = graph;
        outcome?;
        let chosen = decoder.chosen.f_select(0, self.offset as i64)?;
        self.offset += 1;
        self.last_choice = Some(chosen.data_ptr() as usize);
        Ok(chosen)
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
        match &self.model.static_decoder {
            Some(decoder) => self.step(decoder, previous),
            None => self.sample(&previous.f_reshape([1, 1])?, false),
        }
    }

    fn read(&mut self, token: &Tensor) -> Result<u32> {
        // Reading the id back synchronises the stream (CUDA and MPS alike):
        // it waits for this step and for the one queued after it, so the
        // host queued step n + 1 while the device ran step n, and the
        // device idles while the host reads and queues step n + 2 (one
        // graph replay in best mode on CUDA). As on MLX, one step past the
        // end of text is computed per window.
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
        let id = self.sessions.get() + 1;
        self.sessions.set(id);
        Session {
            model: self,
            cross,
            cache: (0..self.dims.n_text_layer).map(|_| None).collect(),
            offset: 0,
            id,
            cross_loaded: false,
            last_choice: None,
        }
    }

    fn execution(&self) -> &'static str {
        let Some(decoder) = &self.static_decoder else {
            return "eager";
        };
        let graphed = decoder
            .try_borrow()
            .is_ok_and(|decoder| decoder.graph.as_ref().is_some_and(GraphedStep::is_captured));
        if graphed {
            "cuda-graph decode step, eager prompt and encoder"
        } else {
            "static-cache decode step, op by op"
        }
    }
}
