//! Time, injected: the real clock and a manual one for tests.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A source of time that can also wait.
///
/// Everything in this crate that waits or measures time does it through a
/// `Clock`, so that tests can use a [`ManualClock`] and run instantly and
/// deterministically. Programs use [`SystemClock`], the default everywhere.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;

    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// A shared clock is a clock: limiters built on one `Arc<dyn Clock>` see one time.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> Instant {
        (**self).now()
    }

    fn sleep(&self, duration: Duration) {
        (**self).sleep(duration)
    }
}

/// The real clock: [`Instant::now`] and [`thread::sleep`].
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        if !duration.is_zero() {
            thread::sleep(duration);
        }
    }
}

/// A clock that only moves when told to, for tests.
///
/// Clones share one time. [`advance`](ManualClock::advance) moves it forward;
/// [`sleep`](Clock::sleep) returns at once after advancing the time by the
/// requested duration, so code that waits runs instantly while still seeing
/// the time it waited for.
///
/// ```
/// use cio_ratelimit::limit::{Clock, ManualClock};
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let start = clock.now();
/// clock.sleep(Duration::from_secs(5)); // returns at once
/// assert_eq!(clock.now() - start, Duration::from_secs(5));
/// assert_eq!(clock.elapsed(), Duration::from_secs(5));
/// ```
#[derive(Clone, Debug)]
pub struct ManualClock {
    inner: Arc<ManualTime>,
}

#[derive(Debug)]
struct ManualTime {
    origin: Instant,
    elapsed_nanos: AtomicU64,
}

impl ManualClock {
    /// A manual clock that starts now and stands still until advanced.
    pub fn new() -> ManualClock {
        ManualClock {
            inner: Arc::new(ManualTime {
                origin: Instant::now(),
                elapsed_nanos: AtomicU64::new(0),
            }),
        }
    }

    /// Moves the time of this clock and all its clones forward by `duration`.
    pub fn advance(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        // fetch_update cannot fail with a closure that always returns Some.
        let _ = self
            .inner
            .elapsed_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(nanos))
            });
    }

    /// How far this clock has been advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.inner.elapsed_nanos.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> ManualClock {
        ManualClock::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.inner.origin + self.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

/// Nanoseconds from `origin` to `now`, saturating (0 before the origin).
pub(crate) fn nanos_since(origin: Instant, now: Instant) -> u64 {
    duration_nanos(now.saturating_duration_since(origin))
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn duration_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_time() {
        let a = ManualClock::new();
        let b = a.clone();
        let start = a.now();
        b.advance(Duration::from_millis(1500));
        assert_eq!(a.now() - start, Duration::from_millis(1500));
    }

    #[test]
    fn advance_saturates_instead_of_overflowing() {
        let clock = ManualClock::new();
        clock.advance(Duration::MAX);
        clock.advance(Duration::from_secs(1));
        assert_eq!(clock.elapsed(), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn system_clock_sleeps_at_least_the_duration() {
        let clock = SystemClock;
        let start = clock.now();
        clock.sleep(Duration::from_millis(5));
        assert!(clock.now() - start >= Duration::from_millis(5));
    }
}
