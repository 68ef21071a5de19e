//! How sure a figure is: a bootstrapped 95% interval for the ratio of two
//! medians, and the noise flag of one cell.

use bench_core::stats::quantile;
use bench_core::Row;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A cell whose interquartile range exceeds this fraction of its median is
/// flagged "noisy": its median may move that much between runs.
pub const NOISY_IQR_FRACTION: f64 = 0.10;

/// Resamples per interval: enough for stable 2.5% / 97.5% quantiles.
const RESAMPLES: usize = 2000;

/// Fixed, so that a report regenerated from the same files is the same.
/// ChaCha8 (not `StdRng`) gives the same stream in every rand version.
const SEED: u64 = 0x5eed_2026;

/// Fewer repetitions than this give no interval: a bootstrap of one or two
/// values says nothing about their spread.
pub const MIN_SAMPLES: usize = 3;

/// A 95% interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }
}

/// 95% percentile-bootstrap interval of median(numerator) /
/// median(denominator), each side resampled with replacement on its own
/// (the two come from separate processes). None with too few samples.
pub fn ratio_interval(numerator: &[f64], denominator: &[f64]) -> Option<Interval> {
    if numerator.len() < MIN_SAMPLES || denominator.len() < MIN_SAMPLES {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    let mut scratch = Vec::new();
    for _ in 0..RESAMPLES {
        let top = resampled_median(numerator, &mut rng, &mut scratch);
        let bottom = resampled_median(denominator, &mut rng, &mut scratch);
        if bottom > 0.0 {
            ratios.push(top / bottom);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some(Interval {
        low: quantile(&ratios, 0.025),
        high: quantile(&ratios, 0.975),
    })
}

fn resampled_median(values: &[f64], rng: &mut ChaCha8Rng, scratch: &mut Vec<f64>) -> f64 {
    scratch.clear();
    scratch.extend((0..values.len()).map(|_| values[rng.gen_range(0..values.len())]));
    scratch.sort_by(f64::total_cmp);
    quantile(scratch, 0.5)
}

/// IQR / median of a measured row.
pub fn relative_iqr(row: &Row) -> Option<f64> {
    let summary = row.summary.as_ref()?;
    (summary.median > 0.0).then(|| summary.iqr / summary.median)
}

pub fn is_noisy(row: &Row) -> bool {
    relative_iqr(row).is_some_and(|r| r > NOISY_IQR_FRACTION)
}

/// "noisy (PyTorch IQR 13%, MLX IQR 21%)" for the noisy ones among named
/// rows; empty when none is.
pub fn noise_note(rows: &[(&str, Option<&Row>)]) -> String {
    let noisy: Vec<String> = rows
        .iter()
        .filter_map(|(name, row)| {
            let row = (*row)?;
            let iqr = relative_iqr(row)? * 100.0;
            is_noisy(row).then(|| format!("{name} IQR {iqr:.0}%").trim_start().to_owned())
        })
        .collect();
    if noisy.is_empty() {
        String::new()
    } else {
        format!("noisy ({})", noisy.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::tests::{row, set_iqr};

    #[test]
    fn interval_brackets_the_ratio_and_is_reproducible() {
        let slow = [2.0, 2.1, 1.9, 2.05, 1.95];
        let fast = [1.0, 1.02, 0.98, 1.01, 0.99];
        let interval = ratio_interval(&slow, &fast).unwrap();
        assert!(interval.contains(2.0), "{interval:?}");
        assert!(interval.low > 1.7 && interval.high < 2.3, "{interval:?}");
        assert_eq!(ratio_interval(&slow, &fast), Some(interval));
        // Overlapping spreads give an interval that holds 1.
        let a = [1.0, 1.5, 0.7, 1.2, 0.9];
        let b = [1.1, 0.8, 1.4, 1.0, 0.95];
        assert!(ratio_interval(&a, &b).unwrap().contains(1.0));
        assert_eq!(ratio_interval(&[1.0, 2.0], &fast), None);
    }

    #[test]
    fn noise_is_an_iqr_above_a_tenth_of_the_median() {
        let mut row = row("torch", "switch", 2.0, "r");
        set_iqr(&mut row, 0.2);
        assert!(!is_noisy(&row));
        assert_eq!(noise_note(&[("PyTorch", Some(&row))]), "");
        set_iqr(&mut row, 0.5);
        assert!(is_noisy(&row));
        assert_eq!(
            noise_note(&[("PyTorch", Some(&row)), ("MLX", None)]),
            "noisy (PyTorch IQR 25%)"
        );
    }
}
