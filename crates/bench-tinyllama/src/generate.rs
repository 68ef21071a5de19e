//! What both twins share around the model: the interface the generation
//! loop drives, the loop itself (so that the timed work is the same code
//! for both), and the attention mask rule.

use std::time::Instant;

use anyhow::{ensure, Result};
use bench_core::host::HostTensor;
use bench_core::Runtime;

use crate::sampler::Sampler;

/// Which positions' logits a forward pass returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// Every position of the input (tests compare them all).
    All,
    /// The last position only: all that generation needs, so the output
    /// head runs on one row (as llama.cpp does).
    Last,
}

/// A decoder-only language model with a key/value cache.
pub trait CausalLm {
    /// Runs `tokens` at the cache's current position, appends their keys
    /// and values to the cache, and returns logits as float32 on the host,
    /// shape [rows, vocab].
    fn forward(&mut self, tokens: &[u32], logits: Logits) -> Result<HostTensor>;
    /// Greedy decoding: `steps` single-token passes after `first`, each
    /// token the argmax of the previous pass's logits, chosen on the device
    /// and fed straight back as the next input: the next step never waits
    /// for the host to send a token. When the host reads the tokens is the
    /// twin's: PyTorch once after the last step, MLX each token one step
    /// late (as mlx-lm's `generate_step`). Returns the `steps` tokens.
    fn decode_greedy(&mut self, first: u32, steps: usize) -> Result<Vec<u32>>;
    /// How the twin ran, for the row's `execution=`.
    fn execution(&self) -> &'static str;
    /// Forgets the cache past `position` tokens; its buffers stay allocated.
    fn truncate(&mut self, position: usize);
    /// Empties the cache.
    fn reset(&mut self) {
        self.truncate(0);
    }
    /// Tokens in the cache.
    fn position(&self) -> usize;
    /// Tokens the preallocated cache holds.
    fn capacity(&self) -> usize;
}

/// Checks host token ids before a forward pass: at least one, each inside
/// the vocabulary (an id outside it would read past the embedding table).
pub fn check_tokens(tokens: &[u32], vocab_size: usize) -> Result<()> {
    ensure!(!tokens.is_empty(), "no tokens to run");
    if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= vocab_size) {
        anyhow::bail!("token id {bad} is outside the vocabulary ({vocab_size})");
    }
    Ok(())
}

/// How attention is masked for `tokens` new queries after `position`
/// cached tokens. Query i (absolute position + i) sees keys 0..=position+i.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttentionMask {
    /// One query sees every cached key.
    None,
    /// A square causal mask (prompt processing from an empty cache): the
    /// frameworks' own causal path.
    Causal,
    /// Several queries after cached tokens: an explicit boolean mask,
    /// [tokens, position + tokens], true where attention is allowed
    /// (the frameworks align a non-square "causal" differently).
    Explicit(Vec<bool>),
}

impl AttentionMask {
    pub fn for_step(position: usize, tokens: usize) -> Self {
        match (position, tokens) {
            (_, 1) => Self::None,
            (0, _) => Self::Causal,
            _ => {
                let keys = position + tokens;
                Self::Explicit(
                    (0..tokens)
                        .flat_map(|query| (0..keys).map(move |key| key <= position + query))
                        .collect(),
                )
            }
        }
    }
}

/// Rotary embedding frequencies, theta^(-2i/d) for i < d/2, as
/// Hugging Face's Llama computes them (float32).
pub fn rope_inverse_frequencies(head_dim: usize, theta: f64) -> Vec<f32> {
    (0..head_dim / 2)
        .map(|i| 1.0 / (theta as f32).powf((2 * i) as f32 / head_dim as f32))
        .collect()
}

/// Seconds of one generation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GenerationTimes {
    /// The prompt's forward pass, up to its last logits on the host.
    pub prefill_s: f64,
    /// Prefill plus choosing the first token: time to first token.
    pub first_token_s: f64,
    /// The generation steps after the first token.
    pub decode_s: f64,
}

/// One generation as llama-bench and mlx_lm.benchmark measure it: the
/// prompt in one forward pass, the first token sampled from its last
/// logits, then `steps` single-token forward passes, end-of-sequence
/// ignored. Greedy decoding stays on the device (see
/// [`CausalLm::decode_greedy`]); sampling reads each step's logits. Returns the `steps + 1` tokens chosen and the times.
pub fn generate(
    model: &mut dyn CausalLm,
    runtime: &dyn Runtime,
    prompt: &[u32],
    steps: usize,
    sampler: &mut Sampler,
) -> Result<(Vec<u32>, GenerationTimes)> {
    ensure!(!prompt.is_empty(), "the prompt is empty");
    ensure!(
        prompt.len() + steps <= model.capacity(),
        "{} prompt + {steps} generated tokens exceed the cache's {} positions",
        prompt.len(),
        model.capacity()
    );
    model.reset();
    let mut tokens = Vec::with_capacity(steps + 1);
    let start = Instant::now();
    let logits = model.forward(prompt, Logits::Last)?;
    runtime.synchronize()?;
    let prefill_s = start.elapsed().as_secs_f64();
    let first = sampler.sample(&logits.data);
    tokens.push(first);
    let first_token_s = start.elapsed().as_secs_f64();
    if sampler.is_greedy() {
        tokens.extend(model.decode_greedy(first, steps)?);
    } else {
        // Sampling is on the host, so that both twins draw alike.
        for _ in 0..steps {
            let last = *tokens.last().expect("at least the first token");
            let logits = model.forward(&[last], Logits::Last)?;
            tokens.push(sampler.sample(&logits.data));
        }
    }
    runtime.synchronize()?;
    let decode_s = start.elapsed().as_secs_f64() - first_token_s;
    Ok((
        tokens,
        GenerationTimes {
            prefill_s,
            first_token_s,
            decode_s,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_the_position() {
        assert_eq!(AttentionMask::for_step(5, 1), AttentionMask::None);
        assert_eq!(AttentionMask::for_step(0, 4), AttentionMask::Causal);
        let AttentionMask::Explicit(mask) = AttentionMask::for_step(2, 2) else {
            panic!("chunk after cached tokens needs an explicit mask");
        };
        #[rustfmt::skip]
        assert_eq!(mask, [
            true, true, true, false,
            true, true, true, true,
        ]);
    }
}
