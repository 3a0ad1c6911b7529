//! What a dispatcher has done: counts and latency percentiles.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A snapshot of a [`Dispatcher`](crate::Dispatcher)'s health.
///
/// Its `Display` is the one-line health summary the dispatcher can log
/// periodically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatcherStats {
    /// Jobs waiting in the queue.
    pub queued: usize,
    /// Jobs running now.
    pub in_flight: usize,
    /// Jobs accepted so far.
    pub submitted: u64,
    /// Jobs finished without failure.
    pub done: u64,
    /// Jobs finished with a failure (an `Err` result, or a panic).
    pub failed: u64,
    /// Jobs that panicked (also counted in `failed`).
    pub panicked: u64,
    /// Jobs handed back unrun by a shutdown.
    pub abandoned: u64,
    /// Median time from submit to finish.
    pub latency_p50: Duration,
    /// 90th percentile time from submit to finish.
    pub latency_p90: Duration,
    /// 99th percentile time from submit to finish.
    pub latency_p99: Duration,
}

impl fmt::Display for DispatcherStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queued {} in flight {} done {} failed {} latency p50 {:?} p90 {:?} p99 {:?}",
            self.queued,
            self.in_flight,
            self.done,
            self.failed,
            self.latency_p50,
            self.latency_p90,
            self.latency_p99
        )
    }
}

/// Buckets per doubling of the latency: quarter octaves, about 19 % apart.
const PER_OCTAVE: f64 = 4.0;
const BUCKETS: usize = 160;

/// A lock-free histogram of latencies in microseconds, log-bucketed.
#[derive(Debug)]
pub(crate) struct LatencyHistogram {
    buckets: Box<[AtomicU64]>,
}

impl LatencyHistogram {
    pub(crate) fn new() -> LatencyHistogram {
        LatencyHistogram {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub(crate) fn record(&self, latency: Duration) {
        let micros = latency.as_micros() as f64;
        let bucket = if micros < 1.0 {
            0
        } else {
            ((micros.log2() * PER_OCTAVE) as usize + 1).min(BUCKETS - 1)
        };
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// The latency below which `quantile` (0.0–1.0) of the recorded ones
    /// fall, as the upper edge of its bucket: never an underestimate.
    #[cfg(test)]
    pub(crate) fn quantile(&self, quantile: f64) -> Duration {
        LatencyHistogram::quantile_of(&[self], quantile)
    }

    /// [`quantile`](LatencyHistogram::quantile) over several histograms added up.
    pub(crate) fn quantile_of(histograms: &[&LatencyHistogram], quantile: f64) -> Duration {
        let counts: Vec<u64> = (0..BUCKETS)
            .map(|bucket| {
                histograms
                    .iter()
                    .map(|h| h.buckets[bucket].load(Ordering::Relaxed))
                    .sum()
            })
            .collect();
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let target = ((quantile * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in counts.iter().enumerate() {
            seen += count;
            if seen >= target {
                return Duration::from_micros(2f64.powf(bucket as f64 / PER_OCTAVE).ceil() as u64);
            }
        }
        Duration::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_bound_the_recorded_latencies_within_a_bucket() {
        let histogram = LatencyHistogram::new();
        for ms in 1..=100 {
            histogram.record(Duration::from_millis(ms));
        }
        let p50 = histogram.quantile(0.5);
        assert!(
            p50 >= Duration::from_millis(50) && p50 <= Duration::from_millis(60),
            "{p50:?}"
        );
        let p99 = histogram.quantile(0.99);
        assert!(
            p99 >= Duration::from_millis(99) && p99 <= Duration::from_millis(120),
            "{p99:?}"
        );
        assert_eq!(LatencyHistogram::new().quantile(0.5), Duration::ZERO);
    }

    #[test]
    fn extreme_latencies_land_in_the_end_buckets() {
        let histogram = LatencyHistogram::new();
        histogram.record(Duration::ZERO);
        histogram.record(Duration::from_secs(86_400 * 365));
        assert_eq!(histogram.quantile(0.5), Duration::from_micros(1));
        assert!(histogram.quantile(1.0) >= Duration::from_secs(3_600));
    }
}
