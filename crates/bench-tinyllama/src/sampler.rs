//! Next-token choice on the host, shared by both twins: given the same
//! logits and seed, both pick the same tokens.

use anyhow::{ensure, Result};
use bench_core::rng::SplitMix64;

/// Greedy (temperature 0) or temperature + nucleus (top-p) sampling.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingConfig {
    /// 0 means greedy (argmax).
    pub temperature: f32,
    /// Keep the smallest set of tokens whose probability reaches top_p.
    pub top_p: f32,
    pub seed: u64,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        Self {
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
        }
    }
}

impl SamplingConfig {
    pub fn validate(&self) -> Result<()> {
        ensure!(
            self.temperature >= 0.0 && self.temperature.is_finite(),
            "temperature must be 0 (greedy) or positive, got {}",
            self.temperature
        );
        ensure!(
            self.top_p > 0.0 && self.top_p <= 1.0,
            "top_p must be in (0, 1], got {}",
            self.top_p
        );
        Ok(())
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// For the result row.
    pub fn describe(&self) -> String {
        if self.is_greedy() {
            "greedy (argmax on the device)".to_owned()
        } else {
            format!(
                "temperature {} top_p {} seed {}",
                self.temperature, self.top_p, self.seed
            )
        }
    }
}

/// A sampler with its own seeded random stream (SplitMix64).
#[derive(Clone, Debug)]
pub struct Sampler {
    config: SamplingConfig,
    rng: SplitMix64,
}

impl Sampler {
    pub fn new(config: SamplingConfig) -> Self {
        let rng = SplitMix64::new(config.seed);
        Self { config, rng }
    }

    pub fn is_greedy(&self) -> bool {
        self.config.is_greedy()
    }

    /// The next token given one position's logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        if self.config.is_greedy() {
            return argmax(logits);
        }
        // Softmax of logits / T in f64, over tokens sorted by probability.
        let inverse_t = 1.0 / self.config.temperature as f64;
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut candidates: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(id, &logit)| (id as u32, ((logit as f64 - max) * inverse_t).exp()))
            .collect();
        // Ties broken by id so that the order is total and reproducible.
        candidates.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f64 = candidates.iter().map(|c| c.1).sum();
        let mut kept = 0.0;
        let mut nucleus = 0;
        for (_, weight) in &candidates {
            kept += weight;
            nucleus += 1;
            if kept >= self.config.top_p as f64 * total {
                break;
            }
        }
        let target = self.rng.next_f64() * kept;
        let mut cumulative = 0.0;
        for &(id, weight) in &candidates[..nucleus] {
            cumulative += weight;
            if target < cumulative {
                return id;
            }
        }
        candidates[nucleus - 1].0
    }
}

/// The index of the largest logit; the lowest index among equals.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (index, &value) in logits.iter().enumerate() {
        if value > logits[best] {
            best = index;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greedy_takes_the_first_maximum() {
        let mut sampler = Sampler::new(SamplingConfig::default());
        assert_eq!(sampler.sample(&[0.1, 3.0, -1.0, 3.0]), 1);
    }

    #[test]
    fn top_p_keeps_only_the_nucleus_and_is_seeded() {
        // probabilities ~ 0.665, 0.245, 0.090 at T = 1
        let logits = [2.0, 1.0, 0.0];
        let config = SamplingConfig {
            temperature: 1.0,
            top_p: 0.8,
            seed: 9,
        };
        let mut sampler = Sampler::new(config.clone());
        let draws: Vec<u32> = (0..400).map(|_| sampler.sample(&logits)).collect();
        assert!(
            draws.iter().all(|&id| id < 2),
            "token 2 is outside top_p 0.8"
        );
        let ones = draws.iter().filter(|&&id| id == 1).count();
        // 0.245 / 0.91 = 27% of the nucleus
        assert!((60..160).contains(&ones), "{ones} of 400");
        let mut again = Sampler::new(config);
        let repeat: Vec<u32> = (0..400).map(|_| again.sample(&logits)).collect();
        assert_eq!(draws, repeat);
        assert!(SamplingConfig {
            top_p: 0.0,
            ..SamplingConfig::default()
        }
        .validate()
        .is_err());
    }
}
