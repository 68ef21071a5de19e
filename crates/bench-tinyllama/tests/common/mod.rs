//! A tiny Llama for tests (same code paths as TinyLlama, a few thousand
//! times smaller) and a float64 reference forward pass written out loop by
//! loop, independent of both frameworks.

// Each test file uses a part of this module.
#![allow(dead_code)]

use bench_core::host::HostTensor;
use bench_tinyllama::config::LlamaConfig;
use bench_tinyllama::weights::{LlamaWeights, RandomWeights};
use model_hub::TensorSource;

/// 2 layers, hidden 64, 4 query heads sharing 2 key/value heads (GQA),
/// head_dim 16; parsed from JSON like any Hub config.
pub fn tiny_config() -> LlamaConfig {
    LlamaConfig::from_json(
        r#"{
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 172,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 1000,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "max_position_embeddings": 64
        }"#,
        "tiny test config",
    )
    .unwrap()
}

/// Weights large enough (std 0.15 instead of 0.02) that attention, RoPE
/// and the MLP all move the logits by much more than the tolerances: a
/// wrong convention anywhere fails the reference comparison.
pub fn tiny_weights() -> RandomWeights {
    RandomWeights {
        seed: 11,
        std: 0.15,
    }
}

/// Some token ids inside the tiny vocabulary.
pub fn tokens(count: usize) -> Vec<u32> {
    (0..count as u32).map(|i| (i * 389 + 17) % 1000).collect()
}

/// Logits of every position, [tokens, vocab], computed in float64.
pub fn reference_logits(
    config: &LlamaConfig,
    weights: &dyn TensorSource,
    tokens: &[u32],
) -> HostTensor {
    let w = LlamaWeights::from_source(weights, config, |t| {
        Ok(t.data.iter().map(|&v| v as f64).collect::<Vec<f64>>())
    })
    .unwrap();
    let (h, d) = (config.hidden_size, config.head_dim);
    let (heads, kv_heads) = (config.num_heads, config.num_kv_heads);
    let eps = config.rms_norm_eps;
    let mut x: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&t| w.embed_tokens[t as usize * h..][..h].to_vec())
        .collect();
    for p in &w.layers {
        let normed: Vec<Vec<f64>> = x
            .iter()
            .map(|r| rms_norm(r, &p.input_layernorm, eps))
            .collect();
        let q: Vec<Vec<f64>> = normed.iter().map(|r| linear(r, &p.q_proj)).collect();
        let k: Vec<Vec<f64>> = normed.iter().map(|r| linear(r, &p.k_proj)).collect();
        let v: Vec<Vec<f64>> = normed.iter().map(|r| linear(r, &p.v_proj)).collect();
        let q: Vec<Vec<f64>> = q
            .iter()
            .enumerate()
            .map(|(pos, r)| rope(r, pos, d, config.rope_theta))
            .collect();
        let k: Vec<Vec<f64>> = k
            .iter()
            .enumerate()
            .map(|(pos, r)| rope(r, pos, d, config.rope_theta))
            .collect();
        for t in 0..tokens.len() {
            let mut attended = vec![0.0; heads * d];
            for head in 0..heads {
                // Query heads are grouped: consecutive heads share a KV head.
                let kv = head / (heads / kv_heads);
                let query = &q[t][head * d..][..d];
                let scores: Vec<f64> = (0..=t)
                    .map(|j| {
                        let key = &k[j][kv * d..][..d];
                        dot(query, key) / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::MIN, f64::max);
                let exps: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let total: f64 = exps.iter().sum();
                for (j, e) in exps.iter().enumerate() {
                    for i in 0..d {
                        attended[head * d + i] += e / total * v[j][kv * d + i];
                    }
                }
            }
            add(&mut x[t], &linear(&attended, &p.o_proj));
            let normed = rms_norm(&x[t], &p.post_attention_layernorm, eps);
            let gate = linear(&normed, &p.gate_proj);
            let up = linear(&normed, &p.up_proj);
            let hidden: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            add(&mut x[t], &linear(&hidden, &p.down_proj));
        }
    }
    let head = w.lm_head.as_ref().unwrap_or(&w.embed_tokens);
    let data = x
        .iter()
        .flat_map(|r| linear(&rms_norm(r, &w.norm, eps), head))
        .map(|v| v as f32)
        .collect();
    HostTensor::new(vec![tokens.len(), config.vocab_size], data).unwrap()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn add(x: &mut [f64], y: &[f64]) {
    x.iter_mut().zip(y).for_each(|(a, b)| *a += b);
}

/// x @ W^T for W stored [out, in], as Hugging Face stores projections.
fn linear(x: &[f64], weight: &[f64]) -> Vec<f64> {
    weight.chunks(x.len()).map(|row| dot(x, row)).collect()
}

fn rms_norm(x: &[f64], weight: &[f64], eps: f64) -> Vec<f64> {
    let scale = 1.0 / (dot(x, x) / x.len() as f64 + eps).sqrt();
    x.iter().zip(weight).map(|(v, w)| v * scale * w).collect()
}

/// Hugging Face Llama's RoPE: each head's first half pairs with its
/// second half (rotate_half), not adjacent elements.
fn rope(x: &[f64], position: usize, d: usize, theta: f64) -> Vec<f64> {
    let mut out = x.to_vec();
    for head in x.chunks(d).enumerate() {
        let (index, values) = head;
        for i in 0..d / 2 {
            let angle = position as f64 * theta.powf(-((2 * i) as f64) / d as f64);
            let (sin, cos) = angle.sin_cos();
            let (a, b) = (values[i], values[i + d / 2]);
            out[index * d + i] = a * cos - b * sin;
            out[index * d + i + d / 2] = b * cos + a * sin;
        }
    }
    out
}

/// Rows `range` of a [rows, columns] tensor.
pub fn rows(tensor: &HostTensor, range: std::ops::Range<usize>) -> HostTensor {
    let columns = tensor.shape[1];
    HostTensor::new(
        vec![range.len(), columns],
        tensor.data[range.start * columns..range.end * columns].to_vec(),
    )
    .unwrap()
}

/// Stacks [1, columns] (or [n, columns]) tensors into one.
pub fn stack(parts: &[HostTensor]) -> HostTensor {
    let columns = parts[0].shape[1];
    let data: Vec<f32> = parts.iter().flat_map(|p| p.data.iter().copied()).collect();
    HostTensor::new(vec![data.len() / columns, columns], data).unwrap()
}
