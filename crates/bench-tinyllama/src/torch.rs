//! PyTorch twin, under `no_grad`; libtorch's `rms_norm` and fused
//! `scaled_dot_product_attention` do the Llama-specific work. The prompt
//! runs eagerly. Greedy decoding runs one single-token step whose every
//! input is a device tensor (token, position, cache), so that on CUDA it is
//! captured once as a CUDA graph and replayed per token, argmax included,
//! as gpt-fast and `torch.compile(mode="reduce-overhead")` decode; in eager
//! mode, or off CUDA, the same step runs op by op.
//!
//! Grouped-query attention: a decode step has one query position, so the
//! query heads that share a key/value head become queries of that head and
//! attention runs without repeating keys, in every dtype: fused SDPA in
//! 16-bit floats, three launches in float32 (`float32_step_attention`).
//! The decode step's SDPA takes an explicit mask (see
//! `DecoderLayer::attention_step`), which rules out libtorch's flash
//! kernel. The prompt's SDPA takes `enable_gqa` and, from an empty cache,
//! `is_causal` without a mask, so in 16-bit floats libtorch may choose
//! flash there; in float32 it has no flash kernel and its math kernel
//! repeats the keys (the table of how each twin runs, in `docs/METHOD.md`,
//! says so).

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_torch::{from_host, to_host_f32, GraphedStep, TorchRuntime};
use model_hub::TensorSource;
use tch::{Device, Kind, Tensor};

use crate::config::LlamaConfig;
use crate::generate::{check_tokens, rope_inverse_frequencies, AttentionMask, CausalLm, Logits};
use crate::weights::{DecoderWeights, LlamaWeights};
use crate::workload::Workload;
use crate::LlamaTwin;

/// Llama for causal language modelling, with its key/value cache.
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    lm_head: Tensor,
    cache: KvCache,
    /// cos and sin (its first half negated) of every cache position's
    /// rotary angles in the model's dtype, [capacity, head_dim], cast once
    /// (as Hugging Face's Llama applies them).
    rope: (Tensor, Tensor),
    decode: DecodeState,
    /// The decode step's CUDA graph (best mode on CUDA); None: eager.
    step_graph: Option<GraphedStep<()>>,
    device: Device,
}

/// Greedy decoding's device state, read and written in place by the
/// decode step (and so by its CUDA graph).
struct DecodeState {
    /// The token being fed, [1, 1] int64.
    token: Tensor,
    /// Its position, [1] int64.
    position: Tensor,
    /// chosen[p]: the token chosen after position p, [capacity] int64.
    chosen: Tensor,
    /// 0..capacity, int64: the keys a query at `position` may see are
    /// those at key_positions <= position.
    key_positions: Tensor,
}

/// The checkpoint's q/k/v and gate/up projections are concatenated once at
/// load (as gpt-fast's `wqkv`): one matmul launch instead of three and of
/// two, the same products.
struct DecoderLayer {
    input_layernorm: Tensor,
    /// q_proj, k_proj and v_proj stacked: [(heads + 2 kv_heads) head_dim, hidden].
    qkv_proj: Tensor,
    o_proj: Tensor,
    post_attention_layernorm: Tensor,
    /// gate_proj and up_proj stacked: [2 intermediate, hidden].
    gate_up_proj: Tensor,
    down_proj: Tensor,
}

/// Keys and values of every layer, [1, kv_heads, capacity, head_dim],
/// allocated once; each step copies its slice in place (`narrow().copy_()`)
/// and attends over the valid prefix.
struct KvCache {
    keys: Vec<Tensor>,
    values: Vec<Tensor>,
    position: usize,
    capacity: usize,
}

impl Llama {
    /// Uploads every weight of `config` from `weights` at the runtime's
    /// precision and allocates a cache of `capacity` positions.
    pub fn new(
        runtime: &TorchRuntime,
        config: &LlamaConfig,
        weights: &dyn TensorSource,
        capacity: usize,
        execution: Execution,
    ) -> Result<Self> {
        ensure!(
            capacity <= config.max_position_embeddings,
            "a cache of {capacity} positions exceeds max_position_embeddings ({})",
            config.max_position_embeddings
        );
        let device = runtime.tch_device();
        let weights = LlamaWeights::from_source(weights, config, |tensor| {
            Ok(upload(&tensor, runtime.kind(), device))
        })?;
        let lm_head = weights
            .lm_head
            .unwrap_or_else(|| weights.embed_tokens.shallow_clone());
        let layers = weights.layers.into_iter().map(DecoderLayer::new).collect();
        let cache = KvCache::new(config, capacity, runtime.kind(), device);
        let rope = rope_tables(config, capacity, runtime.kind(), device);
        let int64 = (Kind::Int64, device);
        let decode = DecodeState {
            token: Tensor::zeros([1, 1], int64),
            position: Tensor::zeros([1], int64),
            chosen: Tensor::zeros([capacity as i64], int64),
            key_positions: Tensor::arange(capacity as i64, int64),
        };
        // One eager step first: cuBLAS and the kernels' choices start
        // outside the capture.
        let step_graph = (execution == Execution::Best
            && fw_torch::cuda_graphs_available(device).is_ok())
        .then(|| GraphedStep::new(device, 1));
        Ok(Self {
            config: config.clone(),
            embed_tokens: weights.embed_tokens,
            layers,
            norm: weights.norm,
            lm_head,
            cache,
            rope,
            decode,
            step_graph,
            device,
        })
    }
}

impl Llama {
    /// Checks that `count` more tokens fit in the cache.
    fn check_room(&self, count: usize) -> Result<()> {
        let position = self.cache.position;
        ensure!(
            position + count <= self.cache.capacity,
            "{count} tokens after {position} overflow the cache's {} positions",
            self.cache.capacity
        );
        Ok(())
    }

    /// One forward pass of `ids` [1, count] at the cache's position: the
    /// cache writes and float32 logits [rows, vocab], queued on the device.
    /// Advances the position; waits for nothing.
    fn forward_ids(&mut self, ids: &Tensor, logits: Logits) -> Tensor {
        let (position, count) = (self.cache.position, ids.size()[1] as usize);
        let mask = match AttentionMask::for_step(position, count) {
            AttentionMask::None => None,
            AttentionMask::Causal => Some(Mask::Causal),
            AttentionMask::Explicit(allowed) => Some(Mask::Explicit(
                Tensor::from_slice(&allowed)
                    .view([count as i64, (position + count) as i64])
                    .to_device(self.device),
            )),
        };
        let rope = (
            self.rope.0.narrow(0, position as i64, count as i64),
            self.rope.1.narrow(0, position as i64, count as i64),
        );
        let mut x = Tensor::embedding(&self.embed_tokens, ids, -1, false, false);
        let cache = &mut self.cache;
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = (&mut cache.keys[i], &mut cache.values[i]);
            x = layer.forward(&x, kv, position, mask.as_ref(), &rope, &self.config);
        }
        if logits == Logits::Last {
            x = x.narrow(1, count as i64 - 1, 1);
        }
        let x = x.rms_norm(
            [self.config.hidden_size as i64],
            Some(&self.norm),
            self.config.rms_norm_eps,
        );
        let rows = x.size()[1];
        cache.position += count;
        x.linear(&self.lm_head, None::<Tensor>)
            .view([rows, self.config.vocab_size as i64])
            .to_kind(Kind::Float)
    }

    /// One greedy decode step from the device state alone: feeds
    /// `decode.token` at `decode.position`, writes the cache there, stores
    /// the argmax in `chosen` and as the next token, advances the position.
    /// Nothing is read back, so a CUDA graph can record it.
    fn decode_step(&mut self) {
        let state = &mut self.decode;
        let capacity = self.cache.capacity as i64;
        // Additive, in the model's dtype, built once per step: SDPA takes it
        // as is in every layer.
        let hidden = state.key_positions.gt_tensor(&state.position);
        let mask = Tensor::zeros([capacity], (self.rope.0.kind(), self.device))
            .masked_fill(&hidden, f64::NEG_INFINITY)
            .view([1, 1, 1, capacity]);
        let rope = (
            self.rope.0.index_select(0, &state.position),
            self.rope.1.index_select(0, &state.position),
        );
        let mut x = Tensor::embedding(&self.embed_tokens, &state.token, -1, false, false);
        let cache = &mut self.cache;
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = (&mut cache.keys[i], &mut cache.values[i]);
            x = layer.decode(&x, kv, &state.position, &mask, &rope, &self.config);
        }
        let x = x.rms_norm(
            [self.config.hidden_size as i64],
            Some(&self.norm),
            self.config.rms_norm_eps,
        );
        let next = x
            .linear(&self.lm_head, None::<Tensor>)
            .view([1, self.config.vocab_size as i64])
            .to_kind(Kind::Float)
            .argmax(-1, true);
        let _ = state
            .chosen
            .index_copy_(0, &state.position, &next.view([1]));
        state.token.copy_(&next);
        let _ = state.position.g_add_scalar_(1);
    }
}

impl CausalLm for Llama {
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<HostTensor> {
        let _no_grad = tch::no_grad_guard();
        check_tokens(tokens, self.config.vocab_size)?;
        self.check_room(tokens.len())?;
        let ids: Vec<i64> = tokens.iter().map(|&t| i64::from(t)).collect();
        let ids = Tensor::from_slice(&ids)
            .view([1, tokens.len() as i64])
            .to_device(self.device);
        let out = self.forward_ids(&ids, logits);
        to_host_f32(&out)
    }

    /// Each step's token stays on the device as the next step's input (a
    /// replay of the step's CUDA graph, or the step's ops in eager mode), so
    /// that the host queues step n+1 while the device runs step n; the
    /// tokens come back in one copy at the end.
    fn decode_greedy(&mut self, first: u32, steps: usize) -> Result<Vec<u32>> {
        let _no_grad = tch::no_grad_guard();
        check_tokens(&[first], self.config.vocab_size)?;
        self.check_room(steps)?;
        if steps == 0 {
            return Ok(Vec::new());
        }
        let start = self.cache.position as i64;
        let _ = self.decode.token.fill_(i64::from(first));
        let _ = self.decode.position.fill_(start);
        let mut graph = self.step_graph.take();
        let mut outcome = Ok(());
        for _ in 0..steps {
            outcome = match &mut graph {
                Some(graph) => graph
                    .run(|| {
                        self.decode_step();
                        Ok(())
                    })
                    .map(drop),
                None => {
                    self.decode_step();
                    Ok(())
                }
            };
            if outcome.is_err() {
                break;
            }
        }
        self.step_graph = graph;
        outcome?;
        self.cache.position += steps;
        let ids = self.decode.chosen.narrow(0, start, steps as i64);
        let ids = Vec::<i64>::try_from(ids.to_device(Device::Cpu))?;
        Ok(ids.into_iter().map(|id| id as u32).collect())
    }

    fn execution(&self) -> &'static str {
        match &self.step_graph {
            Some(_) => "cuda-graph decode step, eager prompt",
            None => "eager",
        }
    }

    fn truncate(&mut self, position: usize) {
        self.cache.position = self.cache.position.min(position);
    }

    fn position(&self) -> usize {
        self.cache.position
    }

    fn capacity(&self) -> usize {
        self.cache.capacity
    }
}

/// The attention mask of a step, as libtorch takes it.
enum Mask {
    Causal,
    Explicit(Tensor),
}

impl DecoderLayer {
    fn new(weights: DecoderWeights<Tensor>) -> Self {
        Self {
            input_layernorm: weights.input_layernorm,
            qkv_proj: Tensor::cat(&[weights.q_proj, weights.k_proj, weights.v_proj], 0),
            o_proj: weights.o_proj,
            post_attention_layernorm: weights.post_attention_layernorm,
            gate_up_proj: Tensor::cat(&[weights.gate_proj, weights.up_proj], 0),
            down_proj: weights.down_proj,
        }
    }

    fn forward(
        &self,
        x: &Tensor,
        kv: (&mut Tensor, &mut Tensor),
        position: usize,
        mask: Option<&Mask>,
        rope: &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> Tensor {
        let (hidden, eps) = ([config.hidden_size as i64], config.rms_norm_eps);
        let h = x.rms_norm(hidden, Some(&self.input_layernorm), eps);
        let x = x + self.attention(&h, kv, position, mask, rope, config);
        let h = x.rms_norm(hidden, Some(&self.post_attention_layernorm), eps);
        &x + self.mlp(&h)
    }

    /// The single-token layer of a decode step (see [`Llama::decode_step`]).
    fn decode(
        &self,
        x: &Tensor,
        kv: (&mut Tensor, &mut Tensor),
        position: &Tensor,
        mask: &Tensor,
        rope: &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> Tensor {
        let (hidden, eps) = ([config.hidden_size as i64], config.rms_norm_eps);
        let h = x.rms_norm(hidden, Some(&self.input_layernorm), eps);
        let x = x + self.attention_step(&h, kv, position, mask, rope, config);
        let h = x.rms_norm(hidden, Some(&self.post_attention_layernorm), eps);
        &x + self.mlp(&h)
    }

    /// Queries, keys and values of `x` [1, count, hidden], queries and keys
    /// rotated: [1, heads, count, head_dim]. One matmul for all three, one
    /// rotation for queries and keys together.
    fn project(
        &self,
        x: &Tensor,
        (cos, sin): &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> (Tensor, Tensor, Tensor) {
        let count = x.size()[1];
        let head_dim = config.head_dim as i64;
        let (heads, kv_heads) = (config.num_heads as i64, config.num_kv_heads as i64);
        let qkv = x.linear(&self.qkv_proj, None::<Tensor>);
        let qk = qkv.narrow(2, 0, (heads + kv_heads) * head_dim).view([
            1,
            count,
            heads + kv_heads,
            head_dim,
        ]);
        // HF Llama's rotate_half in the model's dtype: x cos + [x2, x1] sin',
        // with sin' = [-sin, sin] from the table.
        let halves = qk.chunk(2, -1);
        let swapped = Tensor::cat(&[&halves[1], &halves[0]], -1);
        let (cos, sin) = (cos.unsqueeze(1), sin.unsqueeze(1));
        let rotated = (&qk * &cos).addcmul(&swapped, &sin);
        let q = rotated.narrow(2, 0, heads).transpose(1, 2);
        let k = rotated.narrow(2, heads, kv_heads).transpose(1, 2);
        let v = qkv
            .narrow(2, (heads + kv_heads) * head_dim, kv_heads * head_dim)
            .view([1, count, kv_heads, head_dim])
            .transpose(1, 2);
        (q, k, v)
    }

    /// A decode step's attention: the cache written at the device-side
    /// `position`, every cache slot attended under `mask`; the query heads
    /// of one key/value head are that head's queries (no repeated keys).
    ///
    /// Why a mask, though it rules out libtorch's flash kernel (which
    /// takes none): the step is captured once as a CUDA graph, so its
    /// shapes are fixed, and it attends over every slot of the
    /// preallocated cache, the slots past `position` still zeros, which
    /// only a mask hides. Attending over the valid prefix alone would
    /// change a shape every token; `is_causal` does not fit either (for
    /// queries fewer than keys PyTorch aligns the causal mask top-left,
    /// which would hide every key but the first). So in 16-bit floats
    /// libtorch picks among its kernels that take a mask: the
    /// memory-efficient one, or cuDNN's where libtorch puts cuDNN first
    /// (its CUDA 13 build on Hopper with a cuDNN newer than 9.15).
    /// `xtask/scripts/probes/tinyllama_decode_sdpa_kernel.py` prints which
    /// kernel runs these shapes and its time against flash over the valid
    /// prefix alone. On an H100 (torch 2.11 cu130, 2026-12-07) it found
    /// cuDNN's (`cudnn_generated_fort_native_sdpa_sm90_flash_fprop_wgmma_f16_*`,
    /// bf16 and f16 alike): 0.30 ms for one step's 22 layers replayed as a
    /// graph, against 0.20 ms for flash over the valid prefix, so the
    /// mask costs about 0.1 ms of a bf16 token's 1.8 ms.
    fn attention_step(
        &self,
        x: &Tensor,
        (keys, values): (&mut Tensor, &mut Tensor),
        position: &Tensor,
        mask: &Tensor,
        rope: &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> Tensor {
        let (q, k, v) = self.project(x, rope, config);
        let _ = keys.index_copy_(2, position, &k);
        let _ = values.index_copy_(2, position, &v);
        let (kv_heads, head_dim) = (config.num_kv_heads as i64, config.head_dim as i64);
        let group = (config.num_heads / config.num_kv_heads) as i64;
        let q = q.reshape([1, kv_heads, group, head_dim]);
        let scale = 1.0 / (config.head_dim as f64).sqrt();
        let out = if q.kind() == Kind::Float {
            float32_step_attention(&q, keys, values, mask, scale)
        } else {
            Tensor::scaled_dot_product_attention(
                &q,
                &*keys,
                &*values,
                Some(mask),
                0.0,
                false,
                scale,
                false,
            )
        };
        out.reshape([1, 1, (config.num_heads * config.head_dim) as i64])
            .linear(&self.o_proj, None::<Tensor>)
    }

    fn attention(
        &self,
        x: &Tensor,
        (keys, values): (&mut Tensor, &mut Tensor),
        position: usize,
        mask: Option<&Mask>,
        rope: &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> Tensor {
        let count = x.size()[1];
        let (q, k, v) = self.project(x, rope, config);
        let (start, end) = (position as i64, position as i64 + count);
        keys.narrow(2, start, count).copy_(&k);
        values.narrow(2, start, count).copy_(&v);
        let keys = keys.narrow(2, 0, end);
        let values = values.narrow(2, 0, end);
        let scale = 1.0 / (config.head_dim as f64).sqrt();
        let (explicit, causal) = match mask {
            None => (None, false),
            Some(Mask::Causal) => (None, true),
            Some(Mask::Explicit(allowed)) => (Some(allowed), false),
        };
        let out = Tensor::scaled_dot_product_attention(
            &q, &keys, &values, explicit, 0.0, causal, scale, true,
        );
        out.transpose(1, 2)
            .reshape([1, count, (config.num_heads * config.head_dim) as i64])
            .linear(&self.o_proj, None::<Tensor>)
    }

    /// SwiGLU: down(silu(gate(x)) * up(x)).
    fn mlp(&self, x: &Tensor) -> Tensor {
        let gate_up = x.linear(&self.gate_up_proj, None::<Tensor>);
        let halves = gate_up.chunk(2, -1);
        let (gate, up) = (halves[0].silu(), &halves[1]);
        (gate * up).linear(&self.down_proj, None::<Tensor>)
    }
}

/// A float32 decode step's attention in three launches, as transformers'
/// eager attention computes it: scores = mask + scale q k^T (one batched
/// matmul, the mask its addend), their softmax, the weighted values.
/// q [1, kv_heads, group, head_dim]; keys and values [1, kv_heads,
/// capacity, head_dim]; out [kv_heads, group, head_dim].
///
/// Why not fused SDPA here: libtorch has no float32 flash kernel, and its
/// memory-efficient kernel gives a single-query step one thread block per
/// key/value head (4 for TinyLlama). On an H200 that kernel took 1.74 ms
/// of the 3.57 ms float32 step; with this composition the step took 2.68
/// instead of 3.71 ms (xtask/scripts/probes/tinyllama_decode_attention.py).
/// The 16-bit kinds keep SDPA: there its fused kernel (not flash: the mask
/// rules flash out, see `DecoderLayer::attention_step`) was within 3% of
/// this composition (557.8 vs 573.2 tokens/s in bf16, same probe).
fn float32_step_attention(
    q: &Tensor,
    keys: &Tensor,
    values: &Tensor,
    mask: &Tensor,
    scale: f64,
) -> Tensor {
    let (query_shape, capacity) = (q.size(), keys.size()[2]);
    let (kv_heads, group, head_dim) = (query_shape[1], query_shape[2], query_shape[3]);
    let keys = keys.view([kv_heads, capacity, head_dim]);
    let scores = mask.view([1, 1, capacity]).baddbmm(
        &q.reshape([kv_heads, group, head_dim]),
        &keys.transpose(1, 2),
        1.0,
        scale,
    );
    scores
        .softmax(-1, Kind::Float)
        .bmm(&values.view([kv_heads, capacity, head_dim]))
}

impl KvCache {
    fn new(config: &LlamaConfig, capacity: usize, kind: Kind, device: Device) -> Self {
        let shape = [
            1,
            config.num_kv_heads as i64,
            capacity as i64,
            config.head_dim as i64,
        ];
        let zeros = || Tensor::zeros(shape, (kind, device));
        Self {
            keys: (0..config.num_layers).map(|_| zeros()).collect(),
            values: (0..config.num_layers).map(|_| zeros()).collect(),
            position: 0,
            capacity,
        }
    }
}

/// cos and sin of position * frequency, each frequency twice over (the
/// halves that rotate_half pairs), computed in float32 and cast once to
/// `kind`, [capacity, head_dim]; the sin table's first half negated.
fn rope_tables(
    config: &LlamaConfig,
    capacity: usize,
    kind: Kind,
    device: Device,
) -> (Tensor, Tensor) {
    let frequencies = rope_inverse_frequencies(config.head_dim, config.rope_theta);
    let frequencies = Tensor::from_slice(&frequencies).to_device(device);
    let positions = Tensor::arange(capacity as i64, (Kind::Float, device));
    let angles = positions.outer(&frequencies);
    let angles = Tensor::cat(&[&angles, &angles], -1);
    // sin with the first half negated: rotate_half's sign, folded in.
    let sin = angles.sin();
    let half = (config.head_dim / 2) as i64;
    let sin = Tensor::cat(&[-sin.narrow(1, 0, half), sin.narrow(1, half, half)], 1);
    (angles.cos().to_kind(kind), sin.to_kind(kind))
}

/// A host tensor on `device` as `kind`.
fn upload(tensor: &HostTensor, kind: Kind, device: Device) -> Tensor {
    from_host(tensor).to_device(device).to_kind(kind)
}

impl LlamaTwin for Llama {
    type Runtime = TorchRuntime;

    fn build(runtime: &TorchRuntime, workload: &Workload, execution: Execution) -> Result<Self> {
        let cache = workload.generation.cache_positions();
        Self::new(
            runtime,
            &workload.config,
            workload.weights.as_ref(),
            cache,
            execution,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The float32 composition computes what fused SDPA does, masked
    /// positions included.
    #[test]
    fn float32_step_attention_equals_sdpa() {
        tch::manual_seed(7);
        let (kv_heads, group, capacity, head_dim) = (4, 8, 40, 16);
        let options = (Kind::Float, Device::Cpu);
        let q = Tensor::randn([1, kv_heads, group, head_dim], options);
        let keys = Tensor::randn([1, kv_heads, capacity, head_dim], options);
        let values = Tensor::randn([1, kv_heads, capacity, head_dim], options);
        // Positions after 25 are not yet written: hidden.
        let hidden = Tensor::arange(capacity, (Kind::Int64, Device::Cpu)).gt(25);
        let mask = Tensor::zeros([capacity], options)
            .masked_fill(&hidden, f64::NEG_INFINITY)
            .view([1, 1, 1, capacity]);
        let scale = 1.0 / (head_dim as f64).sqrt();
        let fused = Tensor::scaled_dot_product_attention(
            &q,
            &keys,
            &values,
            Some(&mask),
            0.0,
            false,
            scale,
            false,
        )
        .view([kv_heads, group, head_dim]);
        let composed = float32_step_attention(&q, &keys, &values, &mask, scale);
        assert_eq!(composed.size(), fused.size());
        let gap = (&composed - &fused).abs().max().double_value(&[]);
        assert!(gap < 1e-5, "largest difference {gap}");
        // The hidden positions get no weight: changing them changes nothing.
        let _ = values.narrow(2, 26, capacity - 26).fill_(1e6);
        let again = float32_step_attention(&q, &keys, &values, &mask, scale);
        let moved = (&again - &composed).abs().max().double_value(&[]);
        assert!(moved == 0.0, "hidden positions moved the output by {moved}");
    }
}
