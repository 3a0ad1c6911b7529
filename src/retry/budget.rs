//! The retry budget: retries of errors may add only a share to the request volume.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::limit::clock::Clock;

/// Buckets in the sliding window; the window slides in steps of window/BUCKETS.
const BUCKETS: usize = 10;

/// Counts requests and retries over a sliding window, and allows a retry only
/// while retries stay within `share` of the requests, plus a small allowance
/// (`min_retries` per window) so that a quiet program can still retry.
///
/// Without it, a struggling server sees every request repeated `max_retries`
/// times: a retry storm. Clones share one budget.
#[derive(Clone, Debug)]
pub(crate) struct RetryBudget {
    share: f64,
    min_retries: u32,
    bucket_width: Duration,
    clock: Arc<dyn Clock>,
    window: Arc<Mutex<Window>>,
}

#[derive(Debug)]
struct Window {
    origin: Instant,
    /// Absolute number of the newest bucket; `counts[n % BUCKETS]` holds it.
    newest: u64,
    counts: [Counts; BUCKETS],
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    requests: u64,
    retries: u64,
}

impl RetryBudget {
    /// `share` and `window` are validated by [`RetryPolicy`](crate::RetryPolicy)'s builder.
    pub(crate) fn new(
        share: f64,
        window: Duration,
        min_retries: u32,
        clock: Arc<dyn Clock>,
    ) -> RetryBudget {
        let origin = clock.now();
        RetryBudget {
            share,
            min_retries,
            bucket_width: (window / BUCKETS as u32).max(Duration::from_nanos(1)),
            clock,
            window: Arc::new(Mutex::new(Window {
                origin,
                newest: 0,
                counts: [Counts::default(); BUCKETS],
            })),
        }
    }

    /// Counts one new request (a first attempt).
    pub(crate) fn record_request(&self) {
        self.with_current(|counts| counts.requests += 1);
    }

    /// Spends one retry if the budget allows it.
    pub(crate) fn try_retry(&self) -> bool {
        let mut window = self.window.lock();
        self.slide(&mut window);
        let (requests, retries) = window
            .counts
            .iter()
            .fold((0, 0), |(req, ret), c| (req + c.requests, ret + c.retries));
        let allowed = self.share * requests as f64 + f64::from(self.min_retries);
        if (retries + 1) as f64 > allowed {
            return false;
        }
        let newest = window.newest;
        window.counts[newest as usize % BUCKETS].retries += 1;
        true
    }

    fn with_current(&self, update: impl FnOnce(&mut Counts)) {
        let mut window = self.window.lock();
        self.slide(&mut window);
        let newest = window.newest;
        update(&mut window.counts[newest as usize % BUCKETS]);
    }

    /// Moves the window to now, emptying buckets that fell out of it.
    fn slide(&self, window: &mut Window) {
        let elapsed = self.clock.now().saturating_duration_since(window.origin);
        let current =
            u64::try_from(elapsed.as_nanos() / self.bucket_width.as_nanos()).unwrap_or(u64::MAX);
        let stale = current.saturating_sub(window.newest).min(BUCKETS as u64);
        for step in 1..=stale {
            window.counts[(window.newest + step) as usize % BUCKETS] = Counts::default();
        }
        window.newest = window.newest.max(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::ManualClock;

    fn budget(clock: &ManualClock) -> RetryBudget {
        RetryBudget::new(0.2, Duration::from_secs(10), 0, Arc::new(clock.clone()))
    }

    #[test]
    fn retries_stay_within_the_share_of_requests() {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        for _ in 0..100 {
            budget.record_request();
        }
        let granted = (0..100).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 20);
    }

    #[test]
    fn the_allowance_lets_a_quiet_program_retry() {
        let clock = ManualClock::new();
        let budget = RetryBudget::new(0.2, Duration::from_secs(10), 3, Arc::new(clock.clone()));
        budget.record_request();
        let granted = (0..10).filter(|_| budget.try_retry()).count();
        assert_eq!(granted, 3, "0.2 × 1 request + 3 allowed, rounded down");
    }

    #[test]
    fn old_requests_and_retries_slide_out_of_the_window() {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        for _ in 0..50 {
            budget.record_request();
        }
        assert_eq!((0..50).filter(|_| budget.try_retry()).count(), 10);
        clock.advance(Duration::from_secs(11));
        assert!(
            !budget.try_retry(),
            "the requests that earned the retries are gone"
        );
        for _ in 0..10 {
            budget.record_request();
        }
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 2);
    }

    #[test]
    fn the_window_slides_bucket_by_bucket() {
        let clock = ManualClock::new();
        let budget = budget(&clock);
        for _ in 0..10 {
            budget.record_request(); // earns 2 retries, in the first bucket
        }
        clock.advance(Duration::from_millis(9_500));
        for _ in 0..10 {
            budget.record_request(); // 2 more, in the last bucket
        }
        assert_eq!((0..10).filter(|_| budget.try_retry()).count(), 4);
        clock.advance(Duration::from_millis(600)); // the first bucket leaves the window
        for _ in 0..5 {
            budget.record_request();
        }
        // 15 requests earn 3; 4 retries are still counted in the window.
        assert!(!budget.try_retry());
    }
}
