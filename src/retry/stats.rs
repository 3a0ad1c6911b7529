//! `RetryStats`: what the retry loop did, counted per call and summed by the caller.

use std::cell::Cell;

/// What the retry loop did: attempts sent, retries, 429s, calls given up.
///
/// Counted per call: [`RetryStats::during`] returns what the calls made
/// inside it did, and nothing of what other threads (or other imports
/// sharing the same [`Client`](crate::Client)) did meanwhile. Sum the stats of
/// the calls you made to get yours. [`RetryPolicy::stats`](crate::RetryPolicy::stats)
/// is the total over every call of a policy and its clones.
///
/// ```
/// use cio_ratelimit::RetryPolicy;
/// use cio_ratelimit::retry::{Call, Failure, RetryStats};
/// use cio_ratelimit::limit::{ManualClock, Unlimited};
///
/// let clock = ManualClock::new();
/// let policy = RetryPolicy::builder().clock(clock).build()?;
/// let mut answers = vec![Ok(()), Err(Failure::Status { status: 503, retry_after: None })];
/// let (result, stats) =
///     RetryStats::during(|| policy.run(&Unlimited::new(), Call::safe("identify"), || answers.pop().unwrap()));
/// assert_eq!(result, Ok(()));
/// assert_eq!((stats.requests, stats.retries, stats.throttled), (2, 1, 0));
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetryStats {
    /// Attempts sent, first attempts and retries alike: one per request.
    pub requests: u64,
    /// Retries after transient failures (5xx, timeouts, resets).
    pub retries: u64,
    /// 429 answers: each paused the limiter.
    pub throttled: u64,
    /// Calls that failed in the end, for any reason.
    pub gave_up: u64,
}

thread_local! {
    /// The stats of the innermost [`RetryStats::during`] running on this thread.
    static SCOPE: Cell<Option<RetryStats>> = const { Cell::new(None) };
}

impl RetryStats {
    /// Runs `work` and returns, beside its result, what the retry loop did
    /// in the calls `work` made on this thread. Scopes nest: an outer one
    /// counts what inner ones counted.
    pub fn during<T>(work: impl FnOnce() -> T) -> (T, RetryStats) {
        /// Restores the outer scope even if `work` panics.
        struct Restore(Option<RetryStats>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let inner = SCOPE.take().unwrap_or_default();
                SCOPE.set(self.0.map(|outer| outer + inner));
            }
        }
        let restore = Restore(SCOPE.replace(Some(RetryStats::default())));
        let value = work();
        let stats = SCOPE.get().unwrap_or_default();
        drop(restore);
        (value, stats)
    }

    /// Adds `change` to the scope running on this thread, if any.
    pub(crate) fn record(change: RetryStats) {
        SCOPE.with(|scope| {
            if let Some(stats) = scope.get() {
                scope.set(Some(stats + change));
            }
        });
    }
}

impl std::ops::Add for RetryStats {
    type Output = RetryStats;

    fn add(self, other: RetryStats) -> RetryStats {
        RetryStats {
            requests: self.requests + other.requests,
            retries: self.retries + other.retries,
            throttled: self.throttled + other.throttled,
            gave_up: self.gave_up + other.gave_up,
        }
    }
}

impl std::ops::AddAssign for RetryStats {
    fn add_assign(&mut self, other: RetryStats) {
        *self = *self + other;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_RETRY: RetryStats = RetryStats {
        requests: 2,
        retries: 1,
        throttled: 0,
        gave_up: 0,
    };

    #[test]
    fn scopes_count_their_own_thread_and_nest() {
        RetryStats::record(ONE_RETRY); // outside any scope: counted nowhere
        let ((_, inner), outer) = RetryStats::during(|| {
            RetryStats::record(ONE_RETRY);
            let inner = RetryStats::during(|| RetryStats::record(ONE_RETRY));
            std::thread::spawn(|| RetryStats::record(ONE_RETRY))
                .join()
                .unwrap();
            inner
        });
        assert_eq!(inner, ONE_RETRY);
        assert_eq!(outer, ONE_RETRY + ONE_RETRY);
        assert_eq!(SCOPE.get(), None);
    }

    #[test]
    fn a_panicking_scope_leaves_the_outer_one_intact() {
        let (_, outer) = RetryStats::during(|| {
            let _ = std::panic::catch_unwind(|| {
                RetryStats::during(|| {
                    RetryStats::record(ONE_RETRY);
                    panic!("boom")
                })
            });
        });
        assert_eq!(outer, ONE_RETRY);
    }
}
