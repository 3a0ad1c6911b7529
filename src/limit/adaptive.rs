//! `AdaptiveLimiter`: a token bucket that finds the workspace's rate from its 429s.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limit::clock::{Clock, SystemClock, duration_nanos, nanos_since};
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::{RateLimit, check_rate};
use crate::limit::token_bucket::TokenBucket;

/// A rate limiter that lowers its rate when the server throttles and raises
/// it again while calls succeed, never above a ceiling nor below a floor.
///
/// Use it when several processes send to one workspace and nothing
/// coordinates them: each one backs off on its own 429s, and together they
/// settle under the server's limit. (When they can share a Redis, a
/// `RedisLimiter` gives them one exact budget instead; feature `redis`.)
///
/// It guesses: each 429 multiplies the rate by 0.7. The client's default,
/// [`SlidingWindow`](crate::SlidingWindow), measures instead: its rate
/// becomes what the server accepted, counted in the server's window. Keep
/// `AdaptiveLimiter` for a token bucket's `burst + rate × T` contract.
///
/// ```
/// use cio_ratelimit::{AdaptiveLimiter, ApiClass, Client, RateLimit};
///
/// // Start at 80/s; never go below 5/s.
/// let limiter = AdaptiveLimiter::new(RateLimit::TRACK_API, 5.0)?;
/// let client = Client::builder("site-id", "track-api-key")
///     .limiter(ApiClass::Track, limiter.clone())
///     .build()?;
/// assert_eq!(limiter.rate(), 80.0);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// # How it adapts
///
/// It is a [`TokenBucket`] whose rate follows CUBIC, the congestion control
/// of TCP, with a 429 standing in for a lost packet:
///
/// - [`pause_for`](AdaptiveLimiter::pause_for), which a client calls on every
///   429, pauses the bucket for the server's `Retry-After` and multiplies the
///   rate by 0.7 ([`decrease`](AdaptiveLimiterBuilder::decrease)). The 429s of
///   one overload arrive together, so after a decrease further 429s are
///   ignored for one second ([`decrease_interval`](AdaptiveLimiterBuilder::decrease_interval))
///   or until the pause ends, whichever is later.
/// - [`record_success`](AdaptiveLimiter::record_success), called after every
///   accepted call, moves the rate along a cubic curve of the time since the
///   last decrease: quickly at first, then slowly near the rate at which the
///   server last throttled, then faster again to probe above it. Climbing
///   back from 70 % of the ceiling to the ceiling takes 10 s
///   ([`recovery`](AdaptiveLimiterBuilder::recovery)).
///   A rate that was throttled below its previous peak remembers a peak a
///   little lower still (CUBIC's fast convergence), so processes that started
///   high give way to those that started low.
///
/// The rate only moves on these two calls: with no calls, it stays put.
/// Within a process its guarantee is the bucket's: at most `burst + rate × T`
/// permits in any window of length T, at the rate in force.
///
/// # Threads and cloning
///
/// `AdaptiveLimiter` is `Send + Sync`. Clones share one bucket and one rate:
/// hand a clone to each thread, or to each client of the same workspace.
#[derive(Clone)]
pub struct AdaptiveLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    bucket: TokenBucket,
    ceiling: RateLimit,
    clock: Arc<dyn Clock>,
    origin: Instant,
    curve: Curve,
    state: Mutex<State>,
}

/// The fixed parameters of the rate's curve.
#[derive(Debug, Clone, Copy)]
struct Curve {
    ceiling: f64,
    floor: f64,
    /// What a decrease multiplies the rate by (CUBIC's β).
    decrease: f64,
    /// CUBIC's C, in permits per second per second³: chosen so that climbing
    /// back from `decrease × ceiling` to the ceiling takes the recovery time.
    c: f64,
    decrease_interval: u64,
}

/// Where the rate is on its curve. Times are nanoseconds since `Shared::origin`.
#[derive(Debug, Clone, Copy)]
struct State {
    /// The rate the bucket runs at.
    rate: f64,
    /// The rate the curve climbs back to (CUBIC's W_max).
    peak: f64,
    /// Seconds from the last decrease until the curve is back at `peak` (CUBIC's K).
    k: f64,
    /// When the rate was last decreased; `None` before the first time.
    decreased_at: Option<u64>,
    /// 429s before this belong to the overload already counted.
    quiet_until: u64,
    decreases: u64,
}

impl Curve {
    /// The rate `since` seconds after a decrease.
    fn rate(&self, state: &State, since: f64) -> f64 {
        let rate = self.c * (since - state.k).powi(3) + state.peak;
        rate.clamp(self.floor, self.ceiling)
    }

    /// The state after a 429 at `now`, or `None` if it is part of an overload
    /// already counted.
    fn decreased(&self, state: &State, now: u64, pause: u64) -> Option<State> {
        if now < state.quiet_until {
            return None;
        }
        let before = state.rate;
        // Fast convergence: throttled below the last peak, another process
        // probably needs room; aim a little lower this time.
        let peak = if before < state.peak {
            before * (1.0 + self.decrease) / 2.0
        } else {
            before
        };
        let rate = (before * self.decrease).max(self.floor);
        let peak = peak.max(rate);
        Some(State {
            rate,
            peak,
            k: ((peak - rate) / self.c).cbrt(),
            decreased_at: Some(now),
            quiet_until: now.saturating_add(self.decrease_interval.max(pause)),
            decreases: state.decreases + 1,
        })
    }

    /// The rate after a success at `now`: further along the curve, never lower.
    fn recovered(&self, state: &State, now: u64) -> f64 {
        match state.decreased_at {
            None => state.rate,
            Some(at) => {
                let since = Duration::from_nanos(now.saturating_sub(at)).as_secs_f64();
                self.rate(state, since).max(state.rate)
            }
        }
    }
}

/// Builds an [`AdaptiveLimiter`]; [`build`](AdaptiveLimiterBuilder::build)
/// checks the settings.
///
/// ```
/// use cio_ratelimit::{AdaptiveLimiter, RateLimit};
/// use std::time::Duration;
///
/// let limiter = AdaptiveLimiter::builder(RateLimit::new(400.0, 20)?)
///     .floor(10.0)
///     .decrease(0.5)
///     .recovery(Duration::from_secs(30))
///     .build()?;
/// assert_eq!(limiter.rate(), 400.0);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
pub struct AdaptiveLimiterBuilder {
    ceiling: RateLimit,
    floor: Option<f64>,
    decrease: f64,
    recovery: Duration,
    decrease_interval: Duration,
    clock: Arc<dyn Clock>,
}

impl AdaptiveLimiterBuilder {
    /// The lowest rate, in permits per second; default a twentieth of the
    /// ceiling's rate.
    pub fn floor(mut self, rate_per_sec: f64) -> Self {
        self.floor = Some(rate_per_sec);
        self
    }

    /// What a 429 multiplies the rate by; default 0.7. Must be above 0 and
    /// below 1.
    pub fn decrease(mut self, factor: f64) -> Self {
        self.decrease = factor;
        self
    }

    /// How long the rate takes to climb back to the ceiling after one
    /// decrease from it, while calls succeed; default 10 s. The curve scales
    /// with it: shorter recovers faster and probes the server harder.
    pub fn recovery(mut self, recovery: Duration) -> Self {
        self.recovery = recovery;
        self
    }

    /// After a decrease, 429s are ignored for this long (or until the pause
    /// ends, if later), so that one overload counts once; default 1 s.
    pub fn decrease_interval(mut self, interval: Duration) -> Self {
        self.decrease_interval = interval;
        self
    }

    /// The clock for the bucket and the curve; default [`SystemClock`]. Pass
    /// a [`ManualClock`](crate::ManualClock) to test code that uses it.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings and builds the limiter, at the ceiling's rate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a floor that is not a
    /// positive rate or is above the ceiling's rate, a decrease outside
    /// (0, 1), or a zero recovery.
    pub fn build(self) -> Result<AdaptiveLimiter> {
        let ceiling = self.ceiling.per_second();
        let floor = self.floor.unwrap_or(ceiling / 20.0);
        check_rate(floor).map_err(|_| {
            Error::invalid(
                "floor",
                floor,
                "a finite number of permits per second greater than 0",
            )
        })?;
        if floor > ceiling {
            return Err(Error::invalid(
                "floor",
                floor,
                "a rate no higher than the ceiling's",
            ));
        }
        if !(self.decrease > 0.0 && self.decrease < 1.0) {
            return Err(Error::invalid(
                "decrease",
                self.decrease,
                "a factor above 0 and below 1",
            ));
        }
        if self.recovery.is_zero() {
            return Err(Error::invalid("recovery", "0s", "more than zero"));
        }
        let recovery = self.recovery.as_secs_f64();
        let curve = Curve {
            ceiling,
            floor,
            decrease: self.decrease,
            c: ceiling * (1.0 - self.decrease) / recovery.powi(3),
            decrease_interval: duration_nanos(self.decrease_interval),
        };
        let origin = self.clock.now();
        Ok(AdaptiveLimiter {
            shared: Arc::new(Shared {
                bucket: TokenBucket::from_limit_with_clock(self.ceiling, self.clock.clone()),
                ceiling: self.ceiling,
                clock: self.clock,
                origin,
                curve,
                state: Mutex::new(State {
                    rate: ceiling,
                    peak: ceiling,
                    k: 0.0,
                    decreased_at: None,
                    quiet_until: 0,
                    decreases: 0,
                }),
            }),
        })
    }
}

impl fmt::Debug for AdaptiveLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveLimiterBuilder")
            .field("ceiling", &self.ceiling)
            .field("floor", &self.floor)
            .field("decrease", &self.decrease)
            .field("recovery", &self.recovery)
            .field("decrease_interval", &self.decrease_interval)
            .finish_non_exhaustive()
    }
}

impl AdaptiveLimiter {
    /// A limiter that starts at `ceiling` (its rate and burst), never goes
    /// above it, and never below `floor_rate` permits per second.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `floor_rate` is not a positive rate or is
    /// above the ceiling's rate.
    pub fn new(ceiling: RateLimit, floor_rate: f64) -> Result<AdaptiveLimiter> {
        AdaptiveLimiter::builder(ceiling).floor(floor_rate).build()
    }

    /// [`new`](AdaptiveLimiter::new) on the given clock: pass a
    /// [`ManualClock`](crate::ManualClock) to test code that uses it.
    ///
    /// # Errors
    ///
    /// As [`new`](AdaptiveLimiter::new).
    pub fn with_clock(
        ceiling: RateLimit,
        floor_rate: f64,
        clock: impl Clock + 'static,
    ) -> Result<AdaptiveLimiter> {
        AdaptiveLimiter::builder(ceiling)
            .floor(floor_rate)
            .clock(clock)
            .build()
    }

    /// Starts building a limiter with `ceiling` as its highest rate and its burst.
    pub fn builder(ceiling: RateLimit) -> AdaptiveLimiterBuilder {
        AdaptiveLimiterBuilder {
            ceiling,
            floor: None,
            decrease: 0.7,
            recovery: Duration::from_secs(10),
            decrease_interval: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }

    /// The rate in force, in permits per second.
    pub fn rate(&self) -> f64 {
        self.shared.state.lock().rate
    }

    /// The highest rate and the burst.
    pub fn ceiling(&self) -> RateLimit {
        self.shared.ceiling
    }

    /// The lowest rate, in permits per second.
    pub fn floor(&self) -> f64 {
        self.shared.curve.floor
    }

    /// How many times a 429 has lowered the rate.
    pub fn decreases(&self) -> u64 {
        self.shared.state.lock().decreases
    }

    /// Blocks until a permit is granted.
    pub fn acquire(&self) {
        self.shared.bucket.acquire();
    }

    /// Takes a permit if one is available now, without blocking.
    pub fn try_acquire(&self) -> bool {
        self.shared.bucket.try_acquire()
    }

    /// Blocks at most `timeout` for a permit; returns `false`, having taken
    /// nothing, if none could be granted in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.shared.bucket.acquire_timeout(timeout)
    }

    /// The server throttled: grants nothing to anyone for `duration`, and
    /// lowers the rate unless this 429 belongs to an overload already counted.
    pub fn pause_for(&self, duration: Duration) {
        let now = self.now();
        let mut state = self.shared.state.lock();
        if let Some(next) = self
            .shared
            .curve
            .decreased(&state, now, duration_nanos(duration))
        {
            log::info!(
                "adaptive rate: throttled, {:.1}/s -> {:.1}/s",
                state.rate,
                next.rate
            );
            *state = next;
            self.shared.bucket.set_rate(next.rate);
        }
        drop(state);
        self.shared.bucket.pause_for(duration);
    }

    /// A call succeeded: moves the rate along its recovery curve.
    pub fn record_success(&self) {
        let now = self.now();
        let mut state = self.shared.state.lock();
        let rate = self.shared.curve.recovered(&state, now);
        // Small steps are saved up: each change of rate wakes the bucket's waiters.
        if rate - state.rate >= state.rate * 0.005
            || (rate == self.shared.curve.ceiling && state.rate < rate)
        {
            state.rate = rate;
            self.shared.bucket.set_rate(rate);
        }
    }

    fn now(&self) -> u64 {
        nanos_since(self.shared.origin, self.shared.clock.now())
    }
}

impl Limiter for AdaptiveLimiter {
    fn acquire(&self) {
        AdaptiveLimiter::acquire(self)
    }
    fn try_acquire(&self) -> bool {
        AdaptiveLimiter::try_acquire(self)
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        AdaptiveLimiter::acquire_timeout(self, timeout)
    }
    fn pause_for(&self, duration: Duration) {
        AdaptiveLimiter::pause_for(self, duration)
    }
    fn record_success(&self) {
        AdaptiveLimiter::record_success(self)
    }
    fn rate(&self) -> Option<f64> {
        Some(AdaptiveLimiter::rate(self))
    }
}

impl fmt::Debug for AdaptiveLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = *self.shared.state.lock();
        f.debug_struct("AdaptiveLimiter")
            .field("rate_per_sec", &state.rate)
            .field("ceiling", &self.shared.curve.ceiling)
            .field("floor", &self.shared.curve.floor)
            .field("burst", &self.shared.bucket.burst())
            .field("decreases", &state.decreases)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn curve() -> Curve {
        Curve {
            ceiling: 80.0,
            floor: 4.0,
            decrease: 0.7,
            c: 80.0 * 0.3 / 1000.0, // recovery 10 s
            decrease_interval: SECOND,
        }
    }

    fn at_ceiling() -> State {
        State {
            rate: 80.0,
            peak: 80.0,
            k: 0.0,
            decreased_at: None,
            quiet_until: 0,
            decreases: 0,
        }
    }

    #[test]
    fn a_decrease_from_the_peak_recovers_to_it_in_k_seconds() {
        let curve = curve();
        let state = curve.decreased(&at_ceiling(), 0, 0).unwrap();
        assert!((state.rate - 56.0).abs() < 1e-9);
        assert!((state.k - 10.0).abs() < 1e-9, "{}", state.k);
        assert!((curve.rate(&state, 0.0) - 56.0).abs() < 1e-9);
        assert!((curve.rate(&state, 10.0) - 80.0).abs() < 1e-9);
    }

    #[test]
    fn the_curve_is_concave_before_the_peak_and_convex_after() {
        let curve = curve();
        let mut state = curve.decreased(&at_ceiling(), 0, 0).unwrap();
        state.peak = 60.0; // a peak below the ceiling, so the convex part shows
        state.k = ((60.0 - 56.0) / curve.c).cbrt();
        let step = |t: f64| curve.rate(&state, t + 0.5) - curve.rate(&state, t);
        assert!(step(0.0) > step(state.k - 1.0), "slows down near the peak");
        assert!(
            step(state.k + 1.0) > step(state.k),
            "then speeds up past it"
        );
        assert!(
            curve.rate(&state, 1e6) == 80.0,
            "but never past the ceiling"
        );
    }

    #[test]
    fn fast_convergence_lowers_the_peak_when_throttled_below_it() {
        let curve = curve();
        let first = curve.decreased(&at_ceiling(), 0, 0).unwrap();
        let second = curve.decreased(&first, 2 * SECOND, 0).unwrap();
        assert!((second.peak - 56.0 * 1.7 / 2.0).abs() < 1e-9);
        assert!((second.rate - 56.0 * 0.7).abs() < 1e-9);
    }

    #[test]
    fn a_429_within_the_quiet_time_or_the_pause_is_not_counted_again() {
        let curve = curve();
        let state = curve.decreased(&at_ceiling(), 0, 3 * SECOND).unwrap();
        assert!(curve.decreased(&state, 2 * SECOND, 0).is_none());
        assert!(curve.decreased(&state, 3 * SECOND, 0).is_some());
        let state = curve.decreased(&at_ceiling(), 0, 0).unwrap();
        assert!(curve.decreased(&state, SECOND - 1, 0).is_none());
        assert!(curve.decreased(&state, SECOND, 0).is_some());
    }

    #[test]
    fn recovery_never_lowers_the_rate_nor_moves_before_a_decrease() {
        let curve = curve();
        assert_eq!(curve.recovered(&at_ceiling(), 5 * SECOND), 80.0);
        let mut state = curve.decreased(&at_ceiling(), 0, 0).unwrap();
        state.rate = 70.0; // above the curve at 1 s
        assert_eq!(curve.recovered(&state, SECOND), 70.0);
    }
}
