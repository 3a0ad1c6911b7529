//! `TokenBucket`: a blocking GCRA limiter that never overspends.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limit::clock::{Clock, SystemClock, duration_nanos, nanos_since};
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::{RateLimit, check_rate};

/// A thread-safe token bucket that blocks callers until their permit is due.
///
/// It grants permits at a steady `rate` per second, and up to `burst` at once
/// after a quiet spell. **Guarantee:** in any window of length T, at most
/// `burst + rate × T` permits are granted, however many threads call it; a
/// steady stream of callers gets the full rate.
///
/// ```
/// use cio_ratelimit::TokenBucket;
///
/// let bucket = TokenBucket::new(80.0, 10);
/// for _ in 0..10 {
///     assert!(bucket.try_acquire()); // the burst
/// }
/// assert!(!bucket.try_acquire()); // the 11th must wait 12.5 ms
/// bucket.acquire(); // ... so this sleeps about that long
/// ```
///
/// # How it works
///
/// It is the generic cell rate algorithm (virtual scheduling): a caller
/// reserves the next free slot under a `parking_lot` mutex and then sleeps
/// outside it until the slot is due. Slots are handed out in the order callers
/// arrive, and a caller never re-checks its way past others, so no thread can
/// sneak in while another sleeps.
///
/// [`pause_for`](TokenBucket::pause_for) moves every slot not yet due to the
/// end of the pause or later, in the same order and spacing; a sleeping caller
/// notices when it wakes and sleeps again. After a pause the bucket starts empty: permits resume at the
/// steady rate, not with a burst. [`set_rate`](TokenBucket::set_rate) rescales
/// waiting callers' slots to the new rate.
///
/// # Threads and cloning
///
/// `TokenBucket` is `Send + Sync`. Clones share one bucket: hand a clone to
/// each thread, or to each client that sends to the same workspace.
#[derive(Clone)]
pub struct TokenBucket {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    /// Time zero for all nanosecond times below.
    origin: Instant,
    burst: u32,
    state: Mutex<Schedule>,
    /// `tat` minus the tolerance: when a single permit is next free. Kept
    /// beside the mutex so that refusals, the common case under load, need no
    /// lock and scale across threads.
    next_free: AtomicU64,
    /// Bumped under the lock whenever slots already handed out move (a pause
    /// or a new rate), so a waking caller knows, without the lock, whether to
    /// look at its slot again.
    version: AtomicU64,
}

/// The GCRA state. Times are nanoseconds since `Shared::origin`.
#[derive(Debug)]
struct Schedule {
    /// Nanoseconds between permits (rounded up, so the rate is never exceeded).
    interval: u64,
    rate_per_sec: f64,
    /// Theoretical arrival time: when the bucket would next be empty.
    tat: u64,
    /// Permits reserved so far. A waiting caller's slot is found from its
    /// position in this count, so slots can be moved without tracking callers.
    issued: u64,
    /// `issued` when the last caller was granted without waiting: everything
    /// reserved since waits in one run of slots, back to back.
    run_start: u64,
    /// When slots were last moved by a pause or a new rate.
    changed_at: u64,
}

impl Shared {
    /// Changes the schedule under the lock, then republishes `next_free`.
    fn update<R>(&self, change: impl FnOnce(&mut Schedule) -> R) -> R {
        let mut schedule = self.state.lock();
        let result = change(&mut schedule);
        let next_free = schedule.tat.saturating_sub(schedule.tolerance(self.burst));
        self.next_free.store(next_free, Ordering::Release);
        result
    }

    /// Tells waiting callers that their slots have moved.
    fn mark_changed(&self, schedule: &mut Schedule, now: u64) {
        schedule.changed_at = now;
        self.version.fetch_add(1, Ordering::AcqRel);
    }
}

/// A reservation that still has to wait for its slot.
struct Reservation {
    slot: u64,
    /// `Schedule::issued` right after this reservation was made.
    last: u64,
    n: u64,
    version: u64,
}

/// A refusal from [`TokenBucket::acquire_now`]: no permit now, and how long until one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUntil {
    wait: Duration,
}

impl NotUntil {
    /// How long until a permit would be granted, if nobody else takes it first.
    pub fn wait_time(&self) -> Duration {
        self.wait
    }
}

impl fmt::Display for NotUntil {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no permit for another {:?}", self.wait)
    }
}

impl std::error::Error for NotUntil {}

impl Schedule {
    /// GCRA's tolerance: how far ahead of the steady schedule a burst may go.
    fn tolerance(&self, burst: u32) -> u64 {
        self.interval.saturating_mul(u64::from(burst) - 1)
    }

    /// The earliest time `n` permits conform.
    fn earliest(&self, n: u64, burst: u32, now: u64) -> u64 {
        let conform = self
            .tat
            .saturating_add((n - 1).saturating_mul(self.interval))
            .saturating_sub(self.tolerance(burst));
        conform.max(now)
    }

    /// Takes `n` permits at `slot` (which must be `earliest(..)` or later).
    fn reserve(&mut self, n: u64, slot: u64, now: u64) -> u64 {
        self.tat = self
            .tat
            .max(slot)
            .saturating_add(n.saturating_mul(self.interval));
        self.issued += n;
        if slot <= now {
            self.run_start = self.issued;
        }
        self.issued
    }

    /// The first slot not yet due: the earliest waiter's, or the next free one.
    fn first_pending(&self, burst: u32, now: u64) -> u64 {
        let free = self.tat.saturating_sub(self.tolerance(burst));
        let run_first =
            free.saturating_sub((self.issued - self.run_start).saturating_mul(self.interval));
        if run_first > now {
            run_first
        } else if free > now {
            // Part of the run is already due; the rest is one interval apart.
            now + (free - now - 1) % self.interval + 1
        } else {
            now
        }
    }

    /// Where a waiting reservation's slot is now. Waiting reservations sit
    /// back to back, one interval apart, ending one interval before `tat`
    /// minus the tolerance; that stays true when a pause shifts `tat` or a new
    /// rate rescales it.
    fn slot_of(&self, last: u64, burst: u32) -> u64 {
        let behind = (self.issued - last + 1).saturating_mul(self.interval);
        self.tat
            .saturating_sub(self.tolerance(burst).saturating_add(behind))
    }
}

impl TokenBucket {
    /// A bucket granting `rate_per_sec` permits per second, up to `burst` at once.
    ///
    /// # Panics
    ///
    /// If `rate_per_sec` is not finite or not positive, or `burst` is 0. Use
    /// [`try_new`](TokenBucket::try_new) for values read from configuration.
    pub fn new(rate_per_sec: f64, burst: u32) -> TokenBucket {
        match TokenBucket::try_new(rate_per_sec, burst) {
            Ok(bucket) => bucket,
            Err(err) => panic!("TokenBucket::new: {err}"),
        }
    }

    /// Like [`new`](TokenBucket::new), but returns an error instead of panicking.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `rate_per_sec` is not finite or not
    /// positive, or `burst` is 0.
    pub fn try_new(rate_per_sec: f64, burst: u32) -> Result<TokenBucket> {
        RateLimit::new(rate_per_sec, burst).map(TokenBucket::from_limit)
    }

    /// A bucket for one of the [`RateLimit`] presets, or any validated
    /// limit: the [`RateLimit`] form of [`new`](TokenBucket::new), which
    /// keeps its `(rate, burst)` arguments.
    pub fn from_limit(limit: RateLimit) -> TokenBucket {
        TokenBucket::with_clock(limit, SystemClock)
    }

    /// [`from_limit`](TokenBucket::from_limit) on the given clock: pass a
    /// [`ManualClock`](crate::limit::ManualClock) to test code that uses it
    /// instantly.
    pub fn with_clock(limit: RateLimit, clock: impl Clock + 'static) -> TokenBucket {
        let origin = clock.now();
        TokenBucket {
            shared: Arc::new(Shared {
                clock: Arc::new(clock),
                origin,
                burst: limit.burst(),
                state: Mutex::new(Schedule {
                    interval: interval_nanos(limit.per_second()),
                    rate_per_sec: limit.per_second(),
                    tat: 0,
                    issued: 0,
                    run_start: 0,
                    changed_at: 0,
                }),
                next_free: AtomicU64::new(0),
                version: AtomicU64::new(0),
            }),
        }
    }

    /// The steady rate, in permits per second ([`Limiter::rate`] says the
    /// same as an `Option`, as limiters without a rate need).
    pub fn rate_per_sec(&self) -> f64 {
        self.shared.state.lock().rate_per_sec
    }

    /// The most permits an idle bucket grants at once.
    pub fn burst(&self) -> u32 {
        self.shared.burst
    }

    /// Blocks until a permit is granted.
    pub fn acquire(&self) {
        self.acquire_permits(1);
    }

    /// Blocks until `n` permits are granted together (`n = 0` returns at once).
    ///
    /// # Errors
    ///
    /// [`Error::BurstExceeded`], at once and taking nothing, if `n` is larger
    /// than the burst: the bucket could never grant that many together.
    pub fn acquire_n(&self, n: u32) -> Result<()> {
        if n > self.shared.burst {
            return Err(Error::BurstExceeded {
                requested: n,
                burst: self.shared.burst,
            });
        }
        if n > 0 {
            self.acquire_permits(u64::from(n));
        }
        Ok(())
    }

    /// Takes a permit if one is available now, without blocking.
    pub fn try_acquire(&self) -> bool {
        self.acquire_now().is_ok()
    }

    /// Takes a permit if one is available now; otherwise says how long until
    /// one would be, and takes nothing. [`try_acquire`](TokenBucket::try_acquire)
    /// is this without the wait.
    pub fn acquire_now(&self) -> Result<(), NotUntil> {
        let now = self.now();
        let refuse = |slot: u64| NotUntil {
            wait: Duration::from_nanos(slot - now),
        };
        let next_free = self.shared.next_free.load(Ordering::Acquire);
        if next_free > now {
            return Err(refuse(next_free));
        }
        self.shared.update(|schedule| {
            let slot = schedule.earliest(1, self.shared.burst, now);
            if slot > now {
                return Err(refuse(slot));
            }
            schedule.reserve(1, slot, now);
            Ok(())
        })
    }

    /// Blocks at most `timeout` for a permit. Returns `false` if it cannot be
    /// granted in time; then it takes nothing and returns at once, unless a
    /// pause began while it waited.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        let now = self.now();
        let deadline = now.saturating_add(duration_nanos(timeout));
        if self.shared.next_free.load(Ordering::Acquire) > deadline {
            return false;
        }
        let reservation = self.shared.update(|schedule| {
            let slot = schedule.earliest(1, self.shared.burst, now);
            if slot > deadline {
                return None;
            }
            let last = schedule.reserve(1, slot, now);
            Some(Reservation {
                slot,
                last,
                n: 1,
                version: self.shared.version.load(Ordering::Acquire),
            })
        });
        match reservation {
            None => false,
            Some(reservation) if reservation.slot <= now => true,
            Some(reservation) => self.wait_for(reservation, Some(deadline)),
        }
    }

    /// Grants nothing to anyone for `duration` from now.
    ///
    /// Callers already waiting keep their order and spacing and are moved to
    /// the end of the pause or later; after it, permits resume at the steady
    /// rate with no burst. A shorter pause never shortens a longer one already
    /// in force.
    pub fn pause_for(&self, duration: Duration) {
        let now = self.now();
        let until = now.saturating_add(duration_nanos(duration));
        self.shared.update(|schedule| {
            let tolerance = schedule.tolerance(self.shared.burst);
            // Every pending slot moves by the same amount, keeping order and
            // spacing; the bucket is left empty so nothing bursts out at `until`.
            let shift = until.saturating_sub(schedule.first_pending(self.shared.burst, now));
            let tat = schedule
                .tat
                .saturating_add(shift)
                .max(until.saturating_add(tolerance));
            if tat != schedule.tat {
                schedule.tat = tat;
                self.shared.mark_changed(schedule, now);
            }
        });
    }

    /// Changes the steady rate from now on. Callers already waiting have the
    /// rest of their wait rescaled to the new rate.
    ///
    /// # Panics
    ///
    /// If `rate_per_sec` is not finite or not positive; see
    /// [`try_set_rate`](TokenBucket::try_set_rate).
    pub fn set_rate(&self, rate_per_sec: f64) {
        if let Err(err) = self.try_set_rate(rate_per_sec) {
            panic!("TokenBucket::set_rate: {err}");
        }
    }

    /// Like [`set_rate`](TokenBucket::set_rate), but returns an error instead
    /// of panicking.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `rate_per_sec` is not finite or not positive.
    pub fn try_set_rate(&self, rate_per_sec: f64) -> Result<()> {
        check_rate(rate_per_sec)?;
        let interval = interval_nanos(rate_per_sec);
        let now = self.now();
        self.shared.update(|schedule| {
            if schedule.tat > now {
                let ahead = u128::from(schedule.tat - now) * u128::from(interval)
                    / u128::from(schedule.interval);
                schedule.tat = now.saturating_add(u64::try_from(ahead).unwrap_or(u64::MAX));
            }
            schedule.interval = interval;
            schedule.rate_per_sec = rate_per_sec;
            self.shared.mark_changed(schedule, now);
        });
        Ok(())
    }

    fn now(&self) -> u64 {
        nanos_since(self.shared.origin, self.shared.clock.now())
    }

    fn acquire_permits(&self, n: u64) {
        let now = self.now();
        let reservation = self.shared.update(|schedule| {
            let slot = schedule.earliest(n, self.shared.burst, now);
            let last = schedule.reserve(n, slot, now);
            Reservation {
                slot,
                last,
                n,
                version: self.shared.version.load(Ordering::Acquire),
            }
        });
        if reservation.slot > now {
            self.wait_for(reservation, None);
        }
    }

    /// Sleeps until the reservation's slot, following it if a pause or a new
    /// rate moves it. With a deadline, gives the permits back (when nobody has
    /// reserved after them) and returns `false` once the slot moves past it.
    fn wait_for(&self, mut reservation: Reservation, deadline: Option<u64>) -> bool {
        loop {
            let now = self.now();
            if reservation.slot > now {
                self.shared
                    .clock
                    .sleep(Duration::from_nanos(reservation.slot - now));
            }
            if self.shared.version.load(Ordering::Acquire) == reservation.version {
                return true;
            }
            let granted = self.shared.update(|schedule| {
                if reservation.slot <= schedule.changed_at {
                    // Due before the slots moved: granted then, just woken late.
                    return Some(true);
                }
                reservation.version = self.shared.version.load(Ordering::Acquire);
                reservation.slot = schedule.slot_of(reservation.last, self.shared.burst);
                if deadline.is_some_and(|deadline| reservation.slot > deadline) {
                    if schedule.issued == reservation.last {
                        schedule.issued -= reservation.n;
                        schedule.tat = schedule
                            .tat
                            .saturating_sub(reservation.n.saturating_mul(schedule.interval));
                    }
                    return Some(false);
                }
                None
            });
            if let Some(granted) = granted {
                return granted;
            }
        }
    }
}

/// Nanoseconds between permits, rounded up so the bucket never runs fast.
fn interval_nanos(rate_per_sec: f64) -> u64 {
    let nanos = (1e9 / rate_per_sec).ceil();
    if nanos >= u64::MAX as f64 {
        u64::MAX
    } else {
        (nanos as u64).max(1)
    }
}

impl Limiter for TokenBucket {
    fn acquire(&self) {
        TokenBucket::acquire(self)
    }
    fn try_acquire(&self) -> bool {
        TokenBucket::try_acquire(self)
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        TokenBucket::acquire_timeout(self, timeout)
    }
    fn pause_for(&self, duration: Duration) {
        TokenBucket::pause_for(self, duration)
    }
    fn rate(&self) -> Option<f64> {
        Some(TokenBucket::rate_per_sec(self))
    }
}

impl fmt::Debug for TokenBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBucket")
            .field("rate_per_sec", &self.rate_per_sec())
            .field("burst", &self.shared.burst)
            .finish_non_exhaustive()
    }
}
