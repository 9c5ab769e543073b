//! Small statistics helpers.

use serde::Serialize;

/// The nearest-rank percentile `p` (0–100) of `values`; `None` when empty. NaNs are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    Some(sorted[index])
}

/// Median and 99th percentile of a set of measurements.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many measurements.
    pub samples: usize,
    /// The median; `null` without measurements.
    pub p50: Option<f64>,
    /// The 99th percentile; `null` without measurements.
    pub p99: Option<f64>,
}

impl Percentiles {
    /// Summarise `values`.
    pub fn of(values: &[f64]) -> Self {
        Self {
            samples: values.len(),
            p50: percentile(values, 50.0),
            p99: percentile(values, 99.0),
        }
    }
}

/// The growth of a cumulative counter between consecutive readings. A reading lower than the
/// previous one means the source restarted from zero, so it counts in full.
pub fn counter_delta(previous: Option<u64>, current: u64) -> u64 {
    match previous {
        Some(prev) if current >= prev => current - prev,
        _ => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&v, 100.0), Some(100.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[3.0, f64::NAN, 1.0, 2.0], 50.0), Some(2.0));
    }

    #[test]
    fn counter_restarts_count_in_full() {
        assert_eq!(counter_delta(None, 5), 5);
        assert_eq!(counter_delta(Some(5), 9), 4);
        assert_eq!(counter_delta(Some(9), 3), 3);
    }
}
