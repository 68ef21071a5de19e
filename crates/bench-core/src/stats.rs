//! Summary statistics of a set of timings.

use anyhow::{ensure, Result};
use serde::{Deserialize, Serialize};

/// The figures reported per cell; the median is the headline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for one sample.
    pub std_dev: f64,
    /// Interquartile range, Q3 - Q1, with linear interpolation between ranks.
    pub iqr: f64,
}

impl Summary {
    pub fn of(samples: &[f64]) -> Result<Self> {
        ensure!(!samples.is_empty(), "no samples to summarise");
        ensure!(
            samples.iter().all(|s| s.is_finite()),
            "samples contain a non-finite value"
        );
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let variance = if n > 1 {
            sorted.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        Ok(Self {
            n,
            median: quantile(&sorted, 0.5),
            min: sorted[0],
            max: sorted[n - 1],
            mean,
            std_dev: variance.sqrt(),
            iqr: quantile(&sorted, 0.75) - quantile(&sorted, 0.25),
        })
    }
}

/// The q-quantile of sorted data, interpolating linearly between ranks
/// (the "type 7" definition used by numpy and R by default).
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    let position = q * (sorted.len() - 1) as f64;
    let lower = position.floor() as usize;
    let upper = position.ceil() as usize;
    let weight = position - lower as f64;
    sorted[lower] * (1.0 - weight) + sorted[upper] * weight
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_count_median_is_middle_value() {
        let s = Summary::of(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!(s.median, 3.0);
        assert_eq!((s.min, s.max), (1.0, 5.0));
        assert_eq!(s.mean, 3.0);
        assert!((s.std_dev - 2.0).abs() < 1e-12);
    }

    #[test]
    fn even_count_median_interpolates() {
        let s = Summary::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        // numpy.percentile([1,2,3,4], [25, 75]) == [1.75, 3.25]
        assert!((s.iqr - 1.5).abs() < 1e-12);
    }

    #[test]
    fn single_sample_has_zero_spread() {
        let s = Summary::of(&[0.25]).unwrap();
        assert_eq!((s.median, s.std_dev, s.iqr), (0.25, 0.0, 0.0));
    }

    #[test]
    fn empty_and_non_finite_are_errors() {
        assert!(Summary::of(&[]).is_err());
        assert!(Summary::of(&[1.0, f64::NAN]).is_err());
    }
}
