//! How sure a figure is: a bootstrapped 95% interval for the ratio of two
//! medians, whether it names a winner, and the noise flag of one cell.
//!
//! The interval is pass-aware (a hierarchical bootstrap). A cell measured in
//! several passes (runs) drifts between them more than its repetitions
//! spread within one, so resampling the pooled repetitions as if they were
//! independent gives an interval too narrow to hold the passes' own ratios.
//! Each draw here resamples the passes with replacement, then the
//! repetitions within each drawn pass, and takes the ratio of the two pooled
//! medians (the same estimator as the figure itself). With one pass there is
//! no drift to resample: the interval is of repetitions only and says so
//! ([`Interval::repetitions_only`]).

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

/// Fewer repetitions than this (over all passes of a side) give no
/// interval: a bootstrap of one or two values says nothing about their
/// spread.
pub const MIN_SAMPLES: usize = 3;

/// A 95% interval, and how many passes it resampled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
    /// Passes behind the side with fewest: 1 means repetitions only.
    pub passes: usize,
}

impl Interval {
    pub fn contains(&self, value: f64) -> bool {
        self.low <= value && value <= self.high
    }

    /// Whether one side had a single pass, so that the interval holds the
    /// spread of repetitions but not the drift between passes: narrower
    /// than another pass would show.
    pub fn repetitions_only(&self) -> bool {
        self.passes < 2
    }
}

/// The repetitions of one side of a ratio in one pass (one run).
pub type Pass<'a> = &'a [f64];

/// 95% interval of median(numerator) / median(denominator) where each pass
/// measured both sides (the twins of one run): a draw resamples the passes
/// once for both, since drift between passes moves both sides together.
/// Widened, where it falls short, to hold each pass's own ratio (see
/// [`hold_the_passes`]). None without passes, or with a pass or side too
/// short to resample.
pub fn paired_ratio_interval(passes: &[(Pass, Pass)]) -> Option<Interval> {
    let numerator: Vec<Pass> = passes.iter().map(|p| p.0).collect();
    let denominator: Vec<Pass> = passes.iter().map(|p| p.1).collect();
    let interval = bootstrap(&numerator, &denominator, Pairing::Paired)?;
    Some(hold_the_passes(interval, passes))
}

/// The interval, stretched to hold each pass's own ratio of medians where
/// there are several. A percentile bootstrap of few passes cannot reach
/// its extreme passes: the draws beyond them repeat one pass every time
/// (with three passes, 1 in 27, barely over the 2.5% tail), so the bound
/// lands just inside a ratio that the run itself measured. An interval
/// that excludes a measured pass would claim more than the run shows.
fn hold_the_passes(mut interval: Interval, passes: &[(Pass, Pass)]) -> Interval {
    if passes.len() < 2 {
        return interval;
    }
    let median = |values: Pass| {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        quantile(&sorted, 0.5)
    };
    for (top, bottom) in passes {
        let bottom = median(bottom);
        if bottom > 0.0 {
            let ratio = median(top) / bottom;
            interval.low = interval.low.min(ratio);
            interval.high = interval.high.max(ratio);
        }
    }
    interval
}

/// 95% interval of median(numerator) / median(denominator) where each side
/// was measured in passes of its own (two runs compared; a twin and its
/// reference, separate processes): each side's passes are resampled on
/// their own. None without passes, or with a pass or side too short.
pub fn ratio_interval(numerator: &[Pass], denominator: &[Pass]) -> Option<Interval> {
    bootstrap(numerator, denominator, Pairing::Independent)
}

#[derive(Clone, Copy, PartialEq)]
enum Pairing {
    /// Pass i of the numerator and pass i of the denominator are one run.
    Paired,
    Independent,
}

fn bootstrap(numerator: &[Pass], denominator: &[Pass], pairing: Pairing) -> Option<Interval> {
    if !resamplable(numerator) || !resamplable(denominator) {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut ratios = Vec::with_capacity(RESAMPLES);
    let (mut picks, mut scratch) = (Vec::new(), Vec::new());
    for _ in 0..RESAMPLES {
        draw_passes(numerator.len(), &mut rng, &mut picks);
        let top = resampled_median(numerator, &picks, &mut rng, &mut scratch);
        if pairing == Pairing::Independent {
            draw_passes(denominator.len(), &mut rng, &mut picks);
        }
        let bottom = resampled_median(denominator, &picks, &mut rng, &mut scratch);
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
        passes: numerator.len().min(denominator.len()),
    })
}

/// Some passes, none empty, with `MIN_SAMPLES` repetitions among them.
fn resamplable(passes: &[Pass]) -> bool {
    !passes.is_empty()
        && passes.iter().all(|p| !p.is_empty())
        && passes.iter().map(|p| p.len()).sum::<usize>() >= MIN_SAMPLES
}

/// `count` pass indices drawn with replacement. One pass draws nothing
/// from `rng`, so a one-pass interval is the repetitions-only bootstrap of
/// old, number for number.
fn draw_passes(count: usize, rng: &mut ChaCha8Rng, picks: &mut Vec<usize>) {
    picks.clear();
    if count == 1 {
        picks.push(0);
    } else {
        picks.extend((0..count).map(|_| rng.gen_range(0..count)));
    }
}

/// The median of the drawn passes' repetitions, each pass's resampled with
/// replacement (as many as it has).
fn resampled_median(
    passes: &[Pass],
    picks: &[usize],
    rng: &mut ChaCha8Rng,
    scratch: &mut Vec<f64>,
) -> f64 {
    scratch.clear();
    for &pick in picks {
        let values = passes[pick];
        scratch.extend((0..values.len()).map(|_| values[rng.gen_range(0..values.len())]));
    }
    scratch.sort_by(f64::total_cmp);
    quantile(scratch, 0.5)
}

/// Whether a ratio leaves open which side is faster: its interval holds 1,
/// or its passes' own ratios lie on both sides of 1. The tables then say
/// so instead of naming a winner.
pub fn undecided(interval: Option<Interval>, passes: &[f64]) -> bool {
    let straddle = passes.iter().any(|p| *p <= 1.0) && passes.iter().any(|p| *p >= 1.0);
    interval.is_some_and(|i| i.contains(1.0)) || straddle
}

/// The tables' words for an undecided ratio.
pub const NO_CLEAR_WINNER: &str = "no clear winner";

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
        let interval = ratio_interval(&[&slow], &[&fast]).unwrap();
        assert!(interval.contains(2.0), "{interval:?}");
        assert!(interval.low > 1.7 && interval.high < 2.3, "{interval:?}");
        assert_eq!(ratio_interval(&[&slow], &[&fast]), Some(interval));
        // Overlapping spreads give an interval that holds 1.
        let a = [1.0, 1.5, 0.7, 1.2, 0.9];
        let b = [1.1, 0.8, 1.4, 1.0, 0.95];
        assert!(ratio_interval(&[&a], &[&b]).unwrap().contains(1.0));
        assert_eq!(ratio_interval(&[&[1.0, 2.0]], &[&fast]), None);
        assert_eq!(ratio_interval(&[], &[&fast]), None);
        assert_eq!(ratio_interval(&[&slow, &[]], &[&fast]), None);
    }

    /// `count` repetitions around `median`, spread evenly over +-`spread`
    /// of it (a pass of a cell).
    fn pass(median: f64, spread: f64, count: usize) -> Vec<f64> {
        (0..count)
            .map(|i| median * (1.0 + spread * (2.0 * i as f64 / (count - 1) as f64 - 1.0)))
            .collect()
    }

    #[test]
    fn drift_between_passes_widens_the_interval_to_hold_each_pass() {
        // BERT f32 of the 2026-11-29 campaign: PyTorch steady, MLX drifting
        // from pass to pass (speed-ups 0.52, 0.32 and 0.28).
        let torch: Vec<Vec<f64>> = (0..3).map(|_| pass(4.3, 0.02, 20)).collect();
        let mlx: Vec<Vec<f64>> = [0.52, 0.32, 0.28]
            .iter()
            .map(|ratio| pass(4.3 / ratio, 0.15, 20))
            .collect();
        let passes: Vec<(Pass, Pass)> = torch
            .iter()
            .zip(&mlx)
            .map(|(t, m)| (t.as_slice(), m.as_slice()))
            .collect();
        let aware = paired_ratio_interval(&passes).unwrap();
        // The old way: every repetition pooled, as if from one pass.
        let pooled = ratio_interval(&[&torch.concat()], &[&mlx.concat()]).unwrap();
        assert!(!pooled.contains(0.52), "{pooled:?}");
        for ratio in [0.52, 0.32, 0.28] {
            assert!(aware.contains(ratio), "{ratio} not in {aware:?}");
        }
        // The bootstrap itself, before the passes stretch it, spans most of
        // the drift: from pass 3's ratio to near pass 1's.
        let numerator: Vec<Pass> = passes.iter().map(|p| p.0).collect();
        let denominator: Vec<Pass> = passes.iter().map(|p| p.1).collect();
        let bootstrapped = bootstrap(&numerator, &denominator, Pairing::Paired).unwrap();
        assert!(
            bootstrapped.contains(0.29) && bootstrapped.contains(0.5),
            "{bootstrapped:?}"
        );
        assert_eq!(aware.passes, 3);
        assert!(!aware.repetitions_only() && pooled.repetitions_only());
        assert_eq!(paired_ratio_interval(&passes), Some(aware));
        // Resampled side by side (two runs compared), the passes widen the
        // interval as much, short of the stretch: unpaired passes have no
        // ratio of their own.
        let independent = ratio_interval(&numerator, &denominator).unwrap();
        assert_eq!(independent.passes, 3);
        assert!(
            independent.contains(0.29) && independent.contains(0.5),
            "{independent:?}"
        );
    }

    #[test]
    fn one_pass_is_repetitions_only_and_as_before() {
        let torch = pass(2.0, 0.05, 9);
        let mlx = pass(1.0, 0.05, 9);
        let paired = paired_ratio_interval(&[(&torch, &mlx)]).unwrap();
        assert!(
            paired.repetitions_only() && paired.contains(2.0),
            "{paired:?}"
        );
        // Paired or not, one pass resamples repetitions alone, alike.
        assert_eq!(ratio_interval(&[&torch], &[&mlx]), Some(paired));
        assert_eq!(paired_ratio_interval(&[]), None);
    }

    #[test]
    fn a_ratio_is_undecided_where_its_interval_or_passes_straddle_one() {
        let interval = |low, high| {
            Some(Interval {
                low,
                high,
                passes: 3,
            })
        };
        assert!(undecided(interval(0.9, 1.2), &[]));
        assert!(!undecided(interval(1.1, 1.2), &[1.12, 1.15]));
        // Passes on both sides of 1 leave it open even where the interval
        // (of repetitions only, say) does not.
        assert!(undecided(interval(1.1, 1.2), &[1.2, 0.9, 1.1]));
        assert!(undecided(None, &[1.2, 0.9]));
        assert!(!undecided(None, &[]));
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
