//! MLX twin. Each forward pass builds one lazy graph (all layers, the
//! cache writes and the output head) and evaluates it once; MLX's fused
//! `rms_norm`, `rope` and `scaled_dot_product_attention` (GQA without
//! repeating keys) do the Llama-specific work.

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;
use bench_core::Execution;
use fw_mlx::{from_host, to_host_f32, MlxRuntime};
use mlx_rs::fast::{self, ScaledDotProductAttentionMask};
use mlx_rs::ops::indexing::argmax_axis;
use mlx_rs::ops::indexing::{IndexOp, TryIndexMutOp};
use mlx_rs::transforms::{async_eval, eval};
use mlx_rs::{nn, Array, Dtype};
use model_hub::TensorSource;

use crate::config::LlamaConfig;
use crate::generate::{check_tokens, AttentionMask, CausalLm, Logits};
use crate::weights::{DecoderWeights, LlamaWeights};
use crate::workload::Workload;
use crate::LlamaTwin;

/// Llama for causal language modelling, with its key/value cache.
pub struct Llama {
    config: LlamaConfig,
    embed_tokens: Array,
    layers: Vec<DecoderLayer>,
    norm: Array,
    lm_head: Array,
    cache: KvCache,
    /// The row's `execution=` (MLX records CUDA graphs itself on CUDA).
    execution: &'static str,
}

struct DecoderLayer {
    input_layernorm: Array,
    q_proj: Array,
    k_proj: Array,
    v_proj: Array,
    o_proj: Array,
    post_attention_layernorm: Array,
    gate_proj: Array,
    up_proj: Array,
    down_proj: Array,
}

/// Keys and values of every layer, [1, kv_heads, capacity, head_dim],
/// allocated once; each step writes its slice in place (a slice update
/// whose source MLX donates) and attends over the valid prefix.
struct KvCache {
    keys: Vec<Array>,
    values: Vec<Array>,
    position: usize,
    capacity: usize,
}

impl Llama {
    /// Uploads every weight of `config` from `weights` at the runtime's
    /// precision and allocates a cache of `capacity` positions.
    pub fn new(
        runtime: &MlxRuntime,
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
        let weights =
            LlamaWeights::from_source(weights, config, |tensor| upload(&tensor, runtime.dtype()))?;
        let lm_head = weights
            .lm_head
            .unwrap_or_else(|| weights.embed_tokens.clone());
        let layers = weights.layers.into_iter().map(DecoderLayer::new).collect();
        let cache = KvCache::new(config, capacity, runtime.dtype())?;
        Ok(Self {
            config: config.clone(),
            embed_tokens: weights.embed_tokens,
            layers,
            norm: weights.norm,
            lm_head,
            cache,
            execution: runtime.execution_label(execution, false),
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

    /// The lazy graph of one forward pass of `ids` [1, count] at the
    /// cache's position: the cache writes and float32 logits [rows, vocab].
    /// Advances the position; evaluates nothing.
    fn forward_ids(&mut self, ids: &Array, logits: Logits) -> Result<Array> {
        let (position, count) = (self.cache.position, ids.dim(1) as usize);
        let mask = match AttentionMask::for_step(position, count) {
            AttentionMask::None => None,
            AttentionMask::Causal => Some(Mask::Causal),
            AttentionMask::Explicit(allowed) => Some(Mask::Explicit(Array::from_slice(
                &allowed,
                &[count as i32, (position + count) as i32],
            ))),
        };
        let mut x = self.embed_tokens.take_axis(ids, 0)?;
        let cache = &mut self.cache;
        for (i, layer) in self.layers.iter().enumerate() {
            let kv = (&mut cache.keys[i], &mut cache.values[i]);
            x = layer.forward(&x, kv, position, mask.as_ref(), &self.config)?;
        }
        if logits == Logits::Last {
            x = x.index((.., (count as i32 - 1).., ..));
        }
        let x = fast::rms_norm(&x, Some(&self.norm), self.config.rms_norm_eps as f32)?;
        let rows = x.dim(1);
        cache.position += count;
        Ok(x.matmul(self.lm_head.t())?
            .reshape(&[rows, self.config.vocab_size as i32])?
            .as_dtype(Dtype::Float32)?)
    }
}

impl CausalLm for Llama {
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<HostTensor> {
        check_tokens(tokens, self.config.vocab_size)?;
        self.check_room(tokens.len())?;
        let ids = Array::from_slice(tokens, &[1, tokens.len() as i32]);
        let out = self.forward_ids(&ids, logits)?;
        // One evaluation of the whole step, cache writes included.
        let cache = &self.cache;
        eval(
            std::iter::once(&out)
                .chain(&cache.keys)
                .chain(&cache.values),
        )?;
        to_host_f32(&out)
    }

    /// Each step's graph is queued with `async_eval` before the previous
    /// step's token is read, so that building step n+1 overlaps running
    /// step n (mlx-lm's `generate_step` does the same).
    fn decode_greedy(&mut self, first: u32, steps: usize) -> Result<Vec<u32>> {
        self.check_room(steps)?;
        let mut chosen = Vec::with_capacity(steps);
        let mut next = Array::from_slice(&[first], &[1, 1]);
        let mut pending: Option<Array> = None;
        for _ in 0..steps {
            let logits = self.forward_ids(&next, Logits::Last)?;
            next = argmax_axis(&logits, -1, true)?;
            async_eval([&next])?;
            if let Some(previous) = pending.replace(next.clone()) {
                chosen.push(previous.try_item_exact::<u32>()?);
            }
        }
        if let Some(last) = pending {
            chosen.push(last.try_item_exact::<u32>()?);
        }
        Ok(chosen)
    }

    fn execution(&self) -> &'static str {
        self.execution
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

/// The attention mask of a step, as MLX takes it.
enum Mask {
    Causal,
    Explicit(Array),
}

impl DecoderLayer {
    fn new(weights: DecoderWeights<Array>) -> Self {
        Self {
            input_layernorm: weights.input_layernorm,
            q_proj: weights.q_proj,
            k_proj: weights.k_proj,
            v_proj: weights.v_proj,
            o_proj: weights.o_proj,
            post_attention_layernorm: weights.post_attention_layernorm,
            gate_proj: weights.gate_proj,
            up_proj: weights.up_proj,
            down_proj: weights.down_proj,
        }
    }

    fn forward(
        &self,
        x: &Array,
        kv: (&mut Array, &mut Array),
        position: usize,
        mask: Option<&Mask>,
        config: &LlamaConfig,
    ) -> Result<Array> {
        let eps = config.rms_norm_eps as f32;
        let h = fast::rms_norm(x, Some(&self.input_layernorm), eps)?;
        let x = x.add(self.attention(&h, kv, position, mask, config)?)?;
        let h = fast::rms_norm(&x, Some(&self.post_attention_layernorm), eps)?;
        Ok(x.add(self.mlp(&h)?)?)
    }

    fn attention(
        &self,
        x: &Array,
        (keys, values): (&mut Array, &mut Array),
        position: usize,
        mask: Option<&Mask>,
        config: &LlamaConfig,
    ) -> Result<Array> {
        let count = x.dim(1);
        let head_dim = config.head_dim as i32;
        let heads = |projection: &Array, n: usize| -> Result<Array> {
            Ok(x.matmul(projection.t())?
                .reshape(&[1, count, n as i32, head_dim])?
                .transpose_axes(&[0, 2, 1, 3])?)
        };
        // HF Llama's rotate_half convention is MLX's non-traditional rope.
        let rope = |a: Array| {
            fast::rope(
                a,
                head_dim,
                false,
                config.rope_theta as f32,
                1.0,
                position as i32,
                None,
            )
        };
        let q = rope(heads(&self.q_proj, config.num_heads)?)?;
        let k = rope(heads(&self.k_proj, config.num_kv_heads)?)?;
        let v = heads(&self.v_proj, config.num_kv_heads)?;
        let (start, end) = (position as i32, position as i32 + count);
        keys.try_index_mut((.., .., start..end, ..), &k)?;
        values.try_index_mut((.., .., start..end, ..), &v)?;
        let keys = keys.index((.., .., ..end, ..));
        let values = values.index((.., .., ..end, ..));
        let scale = 1.0 / (config.head_dim as f32).sqrt();
        let mask = mask.map(|mask| match mask {
            Mask::Causal => ScaledDotProductAttentionMask::Causal,
            Mask::Explicit(allowed) => ScaledDotProductAttentionMask::Array(allowed),
        });
        let out = fast::scaled_dot_product_attention(q, keys, values, scale, mask, None)?;
        let out = out.transpose_axes(&[0, 2, 1, 3])?.reshape(&[
            1,
            count,
            (config.num_heads * config.head_dim) as i32,
        ])?;
        Ok(out.matmul(self.o_proj.t())?)
    }

    /// SwiGLU: down(silu(gate(x)) * up(x)).
    fn mlp(&self, x: &Array) -> Result<Array> {
        let gate = nn::silu(x.matmul(self.gate_proj.t())?)?;
        let up = x.matmul(self.up_proj.t())?;
        Ok(gate.multiply(up)?.matmul(self.down_proj.t())?)
    }
}

impl KvCache {
    fn new(config: &LlamaConfig, capacity: usize, dtype: Dtype) -> Result<Self> {
        let shape = [
            1,
            config.num_kv_heads as i32,
            capacity as i32,
            config.head_dim as i32,
        ];
        let zeros = || mlx_rs::ops::zeros_dtype(&shape, dtype);
        let keys = (0..config.num_layers)
            .map(|_| zeros())
            .collect::<Result<Vec<_>, _>>()?;
        let values = (0..config.num_layers)
            .map(|_| zeros())
            .collect::<Result<Vec<_>, _>>()?;
        eval(keys.iter().chain(&values))?;
        Ok(Self {
            keys,
            values,
            position: 0,
            capacity,
        })
    }
}

/// A host tensor as an MLX array of `dtype`, evaluated now so that the
/// float32 staging copy is freed before the next tensor arrives.
fn upload(tensor: &HostTensor, dtype: Dtype) -> Result<Array> {
    let array = from_host(tensor).as_dtype(dtype)?;
    array.eval()?;
    Ok(array)
}

impl LlamaTwin for Llama {
    type Runtime = MlxRuntime;

    fn build(runtime: &MlxRuntime, workload: &Workload, execution: Execution) -> Result<Self> {
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
