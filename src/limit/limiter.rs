//! The `Limiter` trait every rate limiter in this crate implements, and `Unlimited`.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::limit::clock::{Clock, SystemClock, duration_nanos, nanos_since};
use crate::limit::learning::RateChange;

/// A blocking rate limiter: hands out permits, one per request.
///
/// Everything in this crate that sends takes any `Limiter`: a
/// [`TokenBucket`](crate::TokenBucket) in one process, or a limiter shared
/// between processes. A limiter is shared by reference or through an `Arc`
/// between threads, so implementations must be `Send + Sync`.
pub trait Limiter: Send + Sync + fmt::Debug {
    /// Blocks until a permit is granted.
    fn acquire(&self);

    /// Takes a permit if one is available now, without blocking.
    fn try_acquire(&self) -> bool;

    /// Blocks at most `timeout` for a permit. Returns `false`, having taken
    /// nothing, if none could be granted in time.
    fn acquire_timeout(&self, timeout: Duration) -> bool;

    /// Grants nothing to anyone for `duration` from now. Called when the
    /// server answers 429: the whole workspace is throttled, not one caller.
    fn pause_for(&self, duration: Duration);

    /// Told once per permit, when the request it was taken for got an
    /// answer of any kind, or failed without one (a timeout, a reset). The
    /// request reached the server before then, if at all, so a limiter that
    /// counts requests where the server does can count it at this time at
    /// the latest: [`SlidingWindow`](crate::SlidingWindow) does. The
    /// default does nothing. The retry loop calls it after every attempt.
    fn answered(&self) {}

    /// Told after each call the server accepted. A limiter that learns the
    /// server's limit counts it here; the default does nothing.
    fn record_success(&self) {}

    /// Whether a permit from [`acquire`](Limiter::acquire) may be used:
    /// `Err` when the limiter has given up granting permits, e.g. a
    /// `RedisLimiter` that could not reach Redis for longer than it may
    /// wait, or whose settings another process refused. The client checks
    /// it after every `acquire` and fails the attempt with this error
    /// instead of sending. The default is always `Ok`.
    ///
    /// # Errors
    ///
    /// Why no permit may be used now.
    fn check(&self) -> Result<()> {
        Ok(())
    }

    /// Told when the server answered 429 and asked for a pause of `pause`:
    /// pauses every caller (the default does only that, through
    /// [`pause_for`](Limiter::pause_for)), and a limiter that learns sets its
    /// rate from what the server accepted. The retry loop calls this, never
    /// for 5xx, timeouts or resets.
    fn throttled(&self, pause: Duration) {
        self.pause_for(pause);
    }

    /// The rate in force, in permits per second, for limiters that have one
    /// (`None` by default).
    fn rate(&self) -> Option<f64> {
        None
    }

    /// How the rate has changed, oldest first (the last 64 changes): empty
    /// for limiters that do not learn.
    fn rate_changes(&self) -> Vec<RateChange> {
        Vec::new()
    }
}

impl<L: Limiter + ?Sized> Limiter for Arc<L> {
    fn acquire(&self) {
        (**self).acquire()
    }
    fn try_acquire(&self) -> bool {
        (**self).try_acquire()
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        (**self).acquire_timeout(timeout)
    }
    fn pause_for(&self, duration: Duration) {
        (**self).pause_for(duration)
    }
    fn answered(&self) {
        (**self).answered()
    }
    fn record_success(&self) {
        (**self).record_success()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn throttled(&self, pause: Duration) {
        (**self).throttled(pause)
    }
    fn rate(&self) -> Option<f64> {
        (**self).rate()
    }
    fn rate_changes(&self) -> Vec<RateChange> {
        (**self).rate_changes()
    }
}

impl<L: Limiter + ?Sized> Limiter for &L {
    fn acquire(&self) {
        (**self).acquire()
    }
    fn try_acquire(&self) -> bool {
        (**self).try_acquire()
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        (**self).acquire_timeout(timeout)
    }
    fn pause_for(&self, duration: Duration) {
        (**self).pause_for(duration)
    }
    fn answered(&self) {
        (**self).answered()
    }
    fn record_success(&self) {
        (**self).record_success()
    }
    fn check(&self) -> Result<()> {
        (**self).check()
    }
    fn throttled(&self, pause: Duration) {
        (**self).throttled(pause)
    }
    fn rate(&self) -> Option<f64> {
        (**self).rate()
    }
    fn rate_changes(&self) -> Vec<RateChange> {
        (**self).rate_changes()
    }
}

/// A limiter with no rate: every permit is granted at once, except during a
/// pause. A server's 429 still stops everyone who shares it.
///
/// For benchmarks, tests, and servers that limit nothing. Clones share one pause.
///
/// ```
/// use cio_ratelimit::Limiter;
/// use cio_ratelimit::limit::Unlimited;
///
/// let limiter = Unlimited::new();
/// assert!((0..10_000).all(|_| limiter.try_acquire()));
/// ```
#[derive(Clone)]
pub struct Unlimited {
    clock: Arc<dyn Clock>,
    origin: Instant,
    paused_until_nanos: Arc<AtomicU64>,
}

impl Unlimited {
    /// An unlimited limiter on the real clock.
    pub fn new() -> Unlimited {
        Unlimited::with_clock(SystemClock)
    }

    /// An unlimited limiter on the given clock.
    pub fn with_clock(clock: impl Clock + 'static) -> Unlimited {
        let origin = clock.now();
        Unlimited {
            clock: Arc::new(clock),
            origin,
            paused_until_nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    fn nanos_now(&self) -> u64 {
        nanos_since(self.origin, self.clock.now())
    }

    /// Sleeps until no pause is left. A pause may be extended while we
    /// sleep: look again after waking.
    #[cold]
    fn wait_out_pause(&self) {
        loop {
            let left = self.pause_left();
            if left.is_zero() {
                return;
            }
            self.clock.sleep(left);
        }
    }

    fn pause_left(&self) -> Duration {
        let until = self.paused_until_nanos.load(Ordering::Acquire);
        if until == 0 {
            return Duration::ZERO; // never paused: no need to read the clock
        }
        Duration::from_nanos(until.saturating_sub(self.nanos_now()))
    }
}

impl Default for Unlimited {
    fn default() -> Unlimited {
        Unlimited::new()
    }
}

impl fmt::Debug for Unlimited {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Unlimited")
            .field("paused_for", &self.pause_left())
            .finish()
    }
}

impl Limiter for Unlimited {
    fn acquire(&self) {
        // The common case, kept to one load: never paused.
        if self.paused_until_nanos.load(Ordering::Acquire) != 0 {
            self.wait_out_pause();
        }
    }

    fn try_acquire(&self) -> bool {
        self.pause_left().is_zero()
    }

    fn acquire_timeout(&self, timeout: Duration) -> bool {
        let deadline = self.nanos_now().saturating_add(duration_nanos(timeout));
        loop {
            let left = self.pause_left();
            if left.is_zero() {
                return true;
            }
            if self.nanos_now().saturating_add(duration_nanos(left)) > deadline {
                return false;
            }
            self.clock.sleep(left);
        }
    }

    fn pause_for(&self, duration: Duration) {
        let until = self.nanos_now().saturating_add(duration_nanos(duration));
        self.paused_until_nanos.fetch_max(until, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::ManualClock;

    #[test]
    fn unlimited_grants_everything_but_honours_a_pause() {
        let clock = ManualClock::new();
        let limiter = Unlimited::with_clock(clock.clone());
        assert!(limiter.try_acquire());
        limiter.pause_for(Duration::from_secs(2));
        assert!(!limiter.try_acquire());
        assert!(!limiter.acquire_timeout(Duration::from_secs(1)));
        assert_eq!(
            clock.elapsed(),
            Duration::ZERO,
            "a refused timeout waits for nothing"
        );
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
        assert!(limiter.try_acquire());
    }

    #[test]
    fn a_shorter_pause_never_shortens_a_longer_one() {
        let clock = ManualClock::new();
        let limiter = Unlimited::with_clock(clock.clone());
        limiter.pause_for(Duration::from_secs(5));
        limiter.clone().pause_for(Duration::from_secs(1));
        assert!(limiter.acquire_timeout(Duration::from_secs(5)));
        assert_eq!(clock.elapsed(), Duration::from_secs(5));
    }
}
