//! PyTorch twin. Eager execution under `no_grad`; libtorch's `rms_norm`
//! and fused `scaled_dot_product_attention` (GQA through `enable_gqa`,
//! without repeating keys) do the Llama-specific work.

use std::collections::HashMap;

use anyhow::{ensure, Context, Result};
use bench_core::host::HostTensor;
use fw_torch::{from_host, to_host_f32, TorchRuntime};
use tch::{Device, Kind, Tensor};

use crate::config::LlamaConfig;
use crate::generate::{check_tokens, rope_inverse_frequencies, AttentionMask, CausalLm, Logits};
use crate::weights::WeightSource;

/// Llama for causal language modelling, with its key/value cache.
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Tensor,
    layers: Vec<DecoderLayer>,
    norm: Tensor,
    lm_head: Tensor,
    cache: KvCache,
    /// cos and sin of every cache position's rotary angles, float32,
    /// [capacity, head_dim] (MLX's fused rope computes them on the fly,
    /// in float32 too).
    rope: (Tensor, Tensor),
    device: Device,
}

struct DecoderLayer {
    input_layernorm: Tensor,
    q_proj: Tensor,
    k_proj: Tensor,
    v_proj: Tensor,
    o_proj: Tensor,
    post_attention_layernorm: Tensor,
    gate_proj: Tensor,
    up_proj: Tensor,
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
        weights: &dyn WeightSource,
        capacity: usize,
    ) -> Result<Self> {
        ensure!(
            capacity <= config.max_position_embeddings,
            "a cache of {capacity} positions exceeds max_position_embeddings ({})",
            config.max_position_embeddings
        );
        let device = runtime.tch_device();
        let mut tensors = HashMap::new();
        for spec in config.tensor_specs() {
            let tensor = upload(&weights.load(&spec)?, runtime.kind(), device);
            tensors.insert(spec.name, tensor);
        }
        let mut take = |name: String| {
            tensors
                .remove(&name)
                .with_context(|| format!("weight {name} was not loaded"))
        };
        let embed_tokens = take("model.embed_tokens.weight".into())?;
        let layers = (0..config.num_layers)
            .map(|i| {
                let p = format!("model.layers.{i}");
                Ok(DecoderLayer {
                    input_layernorm: take(format!("{p}.input_layernorm.weight"))?,
                    q_proj: take(format!("{p}.self_attn.q_proj.weight"))?,
                    k_proj: take(format!("{p}.self_attn.k_proj.weight"))?,
                    v_proj: take(format!("{p}.self_attn.v_proj.weight"))?,
                    o_proj: take(format!("{p}.self_attn.o_proj.weight"))?,
                    post_attention_layernorm: take(format!("{p}.post_attention_layernorm.weight"))?,
                    gate_proj: take(format!("{p}.mlp.gate_proj.weight"))?,
                    up_proj: take(format!("{p}.mlp.up_proj.weight"))?,
                    down_proj: take(format!("{p}.mlp.down_proj.weight"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let norm = take("model.norm.weight".into())?;
        let lm_head = if config.tie_word_embeddings {
            embed_tokens.shallow_clone()
        } else {
            take("lm_head.weight".into())?
        };
        let cache = KvCache::new(config, capacity, runtime.kind(), device);
        let rope = rope_tables(config, capacity, device);
        Ok(Self {
            config: config.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            cache,
            rope,
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

    /// Each step's token stays on the device as the next step's input, so
    /// that the host queues step n+1 while the device runs step n; the
    /// tokens come back in one copy at the end.
    fn decode_greedy(&mut self, first: u32, steps: usize) -> Result<Vec<u32>> {
        let _no_grad = tch::no_grad_guard();
        self.check_room(steps)?;
        let mut chosen = Vec::with_capacity(steps);
        let mut next = Tensor::from_slice(&[i64::from(first)])
            .view([1, 1])
            .to_device(self.device);
        for _ in 0..steps {
            let logits = self.forward_ids(&next, Logits::Last);
            next = logits.argmax(-1, true);
            chosen.push(next.shallow_clone());
        }
        if chosen.is_empty() {
            return Ok(Vec::new());
        }
        let ids = Vec::<i64>::try_from(Tensor::cat(&chosen, 0).view([-1]).to_device(Device::Cpu))?;
        Ok(ids.into_iter().map(|id| id as u32).collect())
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

    fn attention(
        &self,
        x: &Tensor,
        (keys, values): (&mut Tensor, &mut Tensor),
        position: usize,
        mask: Option<&Mask>,
        (cos, sin): &(Tensor, Tensor),
        config: &LlamaConfig,
    ) -> Tensor {
        let count = x.size()[1];
        let head_dim = config.head_dim as i64;
        let heads = |projection: &Tensor, n: usize| {
            x.linear(projection, None::<Tensor>)
                .view([1, count, n as i64, head_dim])
                .transpose(1, 2)
        };
        // HF Llama's rotate_half, in float32 as MLX's fused rope computes it.
        let rope = |a: Tensor| {
            let kind = a.kind();
            let a = a.to_kind(Kind::Float);
            let halves = a.chunk(2, -1);
            let rotated = Tensor::cat(&[-&halves[1], halves[0].shallow_clone()], -1);
            (a * cos + rotated * sin).to_kind(kind)
        };
        let q = rope(heads(&self.q_proj, config.num_heads));
        let k = rope(heads(&self.k_proj, config.num_kv_heads));
        let v = heads(&self.v_proj, config.num_kv_heads);
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
        let gate = x.linear(&self.gate_proj, None::<Tensor>).silu();
        let up = x.linear(&self.up_proj, None::<Tensor>);
        (gate * up).linear(&self.down_proj, None::<Tensor>)
    }
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
/// halves that rotate_half pairs), float32, [capacity, head_dim].
fn rope_tables(config: &LlamaConfig, capacity: usize, device: Device) -> (Tensor, Tensor) {
    let frequencies = rope_inverse_frequencies(config.head_dim, config.rope_theta);
    let frequencies = Tensor::from_slice(&frequencies).to_device(device);
    let positions = Tensor::arange(capacity as i64, (Kind::Float, device));
    let angles = positions.outer(&frequencies);
    let angles = Tensor::cat(&[&angles, &angles], -1);
    (angles.cos(), angles.sin())
}

/// A host tensor on `device` as `kind`.
fn upload(tensor: &HostTensor, kind: Kind, device: Device) -> Tensor {
    from_host(tensor).to_device(device).to_kind(kind)
}

/// The bandwidth ceiling (y = 2x), shared with the other benchmarks.
pub use fw_torch::Scale;
