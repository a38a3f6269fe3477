//! The statistics behind verdicts: how much a deterministic count may move before its change
//! is news ([`noise_band`]), whether wall times measured side by side in one job differ
//! ([`paired_test`]), and where a target branch's history of one metric shifted level for good
//! ([`change_points`]).
//!
//! Pure: it never does I/O, never reads a clock, never draws random numbers (every method
//! here is exact or deterministic, so the same input always gives the same answer), and never
//! panics on measured values: bad input is a typed error or an explicit "not enough history".
//! `compare` decides verdicts with it; `baselines/README.md` explains each rule in words.

use serde::{Deserialize, Serialize};

/// The factor that turns a median absolute deviation into an estimate of the standard
/// deviation when the bulk of the data is normal (1 / Φ⁻¹(3/4)). The MAD ignores up to half of
/// the values, so one wild record or round cannot widen a band or hide a change.
pub const MAD_TO_STANDARD_DEVIATION: f64 = 1.4826;

/// The median of `values` (the mean of the two middle ones for an even count), `None` when
/// there are none. Sorts `values` in place.
fn median_in_place(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    })
}

fn median(values: &[f64]) -> Option<f64> {
    median_in_place(&mut values.to_vec())
}

/// The median absolute deviation of `values` from `center`, scaled to a standard deviation.
fn scaled_mad(values: &[f64], center: f64) -> f64 {
    let mut deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
    median_in_place(&mut deviations).unwrap_or(0.0) * MAD_TO_STANDARD_DEVIATION
}

/// Relative change in percent from `before` to `after`; a change from 0 is infinite (0 when it
/// stays 0), as in `compare::relative_change_pct`.
fn percent_change(before: f64, after: f64) -> f64 {
    if before == 0.0 {
        if after == 0.0 {
            0.0
        } else {
            f64::INFINITY * after.signum()
        }
    } else {
        (after - before) / before.abs() * 100.0
    }
}

// ------------------------------------------------------------------------------------------
// Noise band of a deterministic count
// ------------------------------------------------------------------------------------------

/// The fewest relative step changes a band may rest on. With fewer, the median and MAD of the
/// steps say too little, and the configured threshold alone decides.
pub const MIN_BAND_SAMPLES: usize = 5;

/// How many robust standard deviations wide a band is (each side). Three would keep 99.7% of
/// A/A changes inside if the spread were known; the fourth pays for estimating the spread from
/// a short history (the MAD of 20 to 30 steps is itself uncertain by about ±20%). Simulated
/// A/A counts with 20 to 30 records of history stay under 0.5% false alarms with four, and
/// exceed 1% with three.
pub const BAND_WIDTH_IN_STANDARD_DEVIATIONS: f64 = 4.0;

/// Counts whose relative change differs from the tolerance by less than this many percentage
/// points are taken to be exactly at the tolerance. `(head - base) / base * 100` rounds, and a
/// count that moved exactly by the threshold must not become a regression by rounding.
pub const BOUNDARY_SLACK_PCT: f64 = 1e-9;

/// What a noise band rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BandBasis {
    /// At least [`MIN_BAND_SAMPLES`] step changes of the target branch's history.
    History,
    /// Fewer step changes than [`MIN_BAND_SAMPLES`]: the band is 0 and the configured
    /// threshold alone decides.
    NotEnoughHistory,
}

/// How much a deterministic count moves from one record of the target branch to the next
/// without anyone meaning it to (e.g. instruction counts that shift with code layout).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NoiseBand {
    /// Half-width of the band, in percent: a change within ±`pct` is ordinary for this metric.
    pub pct: f64,
    /// How many relative step changes the band rests on (one fewer than the usable records).
    pub samples: usize,
    pub basis: BandBasis,
}

/// A deterministic count's change judged against its threshold and noise band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountVerdict {
    /// Grew by more than the tolerance.
    Regression,
    /// Shrank by more than the tolerance.
    Improvement,
    /// Within the tolerance, boundaries included.
    Unchanged,
}

impl NoiseBand {
    /// The change a count may make either way before it is news: the larger of the configured
    /// threshold and this band.
    pub fn tolerance_pct(&self, threshold_pct: f64) -> f64 {
        threshold_pct.max(self.pct)
    }

    /// Judges a relative change (percent, `(head - base) / base * 100`): a regression only when
    /// it *exceeds* the tolerance, an improvement only when it falls below minus the tolerance;
    /// a change exactly at the tolerance (within [`BOUNDARY_SLACK_PCT`]) is unchanged.
    pub fn judge(&self, change_pct: f64, threshold_pct: f64) -> CountVerdict {
        let tolerance = self.tolerance_pct(threshold_pct) + BOUNDARY_SLACK_PCT;
        if change_pct > tolerance {
            CountVerdict::Regression
        } else if change_pct < -tolerance {
            CountVerdict::Improvement
        } else {
            CountVerdict::Unchanged
        }
    }
}

/// The noise band of one deterministic metric, from its values in consecutive records of the
/// target branch (oldest first).
///
/// The band is built from the *relative step changes* between consecutive records, not from
/// each record's deviation from the history's median, for two reasons. A step is exactly the
/// quantity the gate judges (one record against the next), so its spread needs no conversion.
/// And steps are not fooled by the history's own level shifts: a deliberate change in the
/// middle of the history is one large step, which the median and MAD ignore, whereas it would
/// split deviations from a single median into two clusters and widen the band for good.
///
/// The band is `|median step| + 4 × 1.4826 × MAD(steps)` in percent: the widest change that is
/// still within four robust standard deviations of the typical step (see
/// [`BAND_WIDTH_IN_STANDARD_DEVIATIONS`] for why four). Median and MAD, not mean
/// and standard deviation, so that a few large steps (real changes that landed) do not widen
/// it. A count that mostly does not move has a MAD of 0 and so a band of 0, whatever its rare
/// jumps: the configured threshold then decides.
///
/// Steps from a record of 0 (infinite relative change) and steps touching a non-finite value
/// are skipped. With fewer than [`MIN_BAND_SAMPLES`] usable steps the band is 0 and says
/// [`BandBasis::NotEnoughHistory`].
pub fn noise_band(history: &[f64]) -> NoiseBand {
    let steps: Vec<f64> = history
        .windows(2)
        .filter(|pair| pair[0].is_finite() && pair[1].is_finite())
        .map(|pair| percent_change(pair[0], pair[1]))
        .filter(|step| step.is_finite())
        .collect();
    let samples = steps.len();
    let Some(center) = median(&steps).filter(|_| samples >= MIN_BAND_SAMPLES) else {
        return NoiseBand {
            pct: 0.0,
            samples,
            basis: BandBasis::NotEnoughHistory,
        };
    };
    let spread = scaled_mad(&steps, center);
    NoiseBand {
        pct: center.abs() + BAND_WIDTH_IN_STANDARD_DEVIATIONS * spread,
        samples,
        basis: BandBasis::History,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// A standard normal deviate (Box–Muller), so the tests need no distribution crate.
    fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
        let uniform_open: f64 = 1.0 - rng.random::<f64>();
        let angle: f64 = rng.random::<f64>() * std::f64::consts::TAU;
        (-2.0 * uniform_open.ln()).sqrt() * angle.cos()
    }

    // --- noise band ---

    #[test]
    fn constant_history_has_a_band_of_zero() {
        let band = noise_band(&[1000.0; 20]);
        assert_eq!(
            band,
            NoiseBand {
                pct: 0.0,
                samples: 19,
                basis: BandBasis::History
            }
        );
    }

    #[test]
    fn short_history_says_not_enough_history() {
        for history in [&[][..], &[5.0], &[5.0, 6.0, 7.0, 8.0, 9.0]] {
            let band = noise_band(history);
            assert_eq!(band.basis, BandBasis::NotEnoughHistory, "{history:?}");
            assert_eq!(band.pct, 0.0);
        }
        // Six records give five steps: just enough.
        let band = noise_band(&[100.0, 101.0, 100.0, 101.0, 100.0, 101.0]);
        assert_eq!(band.samples, MIN_BAND_SAMPLES);
        assert_eq!(band.basis, BandBasis::History);
    }

    #[test]
    fn steps_from_zero_and_non_finite_values_are_skipped() {
        let band = noise_band(&[0.0, 10.0, f64::NAN, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0]);
        // 0 -> 10 is infinite, 10 -> NaN and NaN -> 10 are unusable: five steps of 0 remain.
        assert_eq!(band.samples, 5);
        assert_eq!(band.pct, 0.0);
    }

    #[test]
    fn band_is_robust_to_a_deliberate_level_shift_and_a_wild_record() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let quiet = jittery_history(&mut rng, 40, 1e6, 0.2);
        let quiet_band = noise_band(&quiet);
        // The same history with a deliberate 10% increase half way and one wild record.
        let mut eventful = quiet.clone();
        for value in &mut eventful[20..] {
            *value *= 1.10;
        }
        eventful[7] *= 1.5;
        let eventful_band = noise_band(&eventful);
        // Steps of a 0.2% jitter spread by about 0.28%, so the band is near 4 × 0.28% ≈ 1.1%.
        assert!(
            quiet_band.pct > 0.7 && quiet_band.pct < 1.6,
            "{quiet_band:?}"
        );
        assert!(
            (eventful_band.pct - quiet_band.pct).abs() < 0.25 * quiet_band.pct,
            "three large steps barely move the band: {quiet_band:?} -> {eventful_band:?}"
        );
        // The mean and standard deviation of the same steps would be dragged far out.
        let steps: Vec<f64> = eventful
            .windows(2)
            .map(|pair| percent_change(pair[0], pair[1]))
            .collect();
        let mean = steps.iter().sum::<f64>() / steps.len() as f64;
        let variance =
            steps.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (steps.len() - 1) as f64;
        let naive_band = mean.abs() + BAND_WIDTH_IN_STANDARD_DEVIATIONS * variance.sqrt();
        assert!(
            naive_band > 10.0 * eventful_band.pct,
            "naive band {naive_band}%"
        );
    }

    #[test]
    fn count_boundaries_are_data_driven() {
        let no_band = NoiseBand {
            pct: 0.0,
            samples: 20,
            basis: BandBasis::History,
        };
        let wide_band = NoiseBand {
            pct: 2.5,
            ..no_band
        };
        let cases = [
            // (band, threshold %, base, head, expected)
            (no_band, 1.0, 1000.0, 1010.0, CountVerdict::Unchanged), // exactly 1%: not beyond
            (no_band, 1.0, 1000.0, 1010.001, CountVerdict::Regression), // 1.0001%
            (no_band, 1.0, 1000.0, 990.0, CountVerdict::Unchanged),  // exactly -1%
            (no_band, 1.0, 1000.0, 989.999, CountVerdict::Improvement),
            (no_band, 1.1, 1000.0, 1011.0, CountVerdict::Unchanged), // 1.1% rounds either way
            (no_band, 0.7, 3000.0, 3021.0, CountVerdict::Unchanged), // 0.7%
            (no_band, 2.3, 7000.0, 7161.0, CountVerdict::Unchanged), // 2.3%
            (no_band, 0.0, 50.0, 50.0, CountVerdict::Unchanged),
            (no_band, 0.0, 50.0, 51.0, CountVerdict::Regression), // any growth at 0%
            (no_band, 0.0, 0.0, 1.0, CountVerdict::Regression),   // growth from zero
            (wide_band, 1.0, 1000.0, 1025.0, CountVerdict::Unchanged), // the band wins: 2.5%
            (wide_band, 1.0, 1000.0, 1026.0, CountVerdict::Regression),
            (wide_band, 3.0, 1000.0, 1026.0, CountVerdict::Unchanged), // the threshold wins
        ];
        for (band, threshold, base, head, expected) in cases {
            let change = percent_change(base, head);
            assert_eq!(
                band.judge(change, threshold),
                expected,
                "band {}%, threshold {threshold}%: {base} -> {head} ({change}%)",
                band.pct
            );
        }
    }

    /// An instruction-count history of `records` values that jitter by `jitter_pct` (normal,
    /// relative) around `level`.
    fn jittery_history(
        rng: &mut ChaCha8Rng,
        records: usize,
        level: f64,
        jitter_pct: f64,
    ) -> Vec<f64> {
        (0..records)
            .map(|_| (level * (1.0 + jitter_pct / 100.0 * standard_normal(rng))).round())
            .collect()
    }

    #[test]
    fn identical_counts_never_alarm_whatever_the_band() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut alarms = 0;
        for _ in 0..1000 {
            let level = rng.random_range(10.0..1e7_f64).round();
            let jitter = rng.random_range(0.0..2.0);
            let band = noise_band(&jittery_history(&mut rng, 30, level, jitter));
            let threshold = [0.0, 1.0][rng.random_range(0..2)];
            if band.judge(percent_change(level, level), threshold) != CountVerdict::Unchanged {
                alarms += 1;
            }
        }
        assert_eq!(alarms, 0);
    }

    #[test]
    fn a_band_from_history_keeps_jittery_counts_quiet() {
        // A/A: base and head are two more records of the same jittery count. A fixed 1%
        // threshold alone would alarm on a large share of them; the band must keep false
        // alarms at or below 1%.
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let comparisons = 1000;
        let (mut alarms_with_band, mut alarms_threshold_only) = (0, 0);
        let no_band = NoiseBand {
            pct: 0.0,
            samples: 0,
            basis: BandBasis::NotEnoughHistory,
        };
        for _ in 0..comparisons {
            let jitter = rng.random_range(0.3..1.5);
            let history = jittery_history(&mut rng, 32, 1e6, jitter);
            let (past, next) = history.split_at(30);
            let band = noise_band(past);
            let change = percent_change(next[0], next[1]);
            if band.judge(change, 1.0) != CountVerdict::Unchanged {
                alarms_with_band += 1;
            }
            if no_band.judge(change, 1.0) != CountVerdict::Unchanged {
                alarms_threshold_only += 1;
            }
        }
        let rate = f64::from(alarms_with_band) / f64::from(comparisons);
        let rate_threshold_only = f64::from(alarms_threshold_only) / f64::from(comparisons);
        eprintln!(
            "jittery A/A counts: false alarms {:.1}% with the band, {:.1}% with the 1% threshold \
             alone",
            rate * 100.0,
            rate_threshold_only * 100.0
        );
        assert!(rate <= 0.01, "false alarm rate {rate}");
    }
}
