//! The reserve/sleep protocol: a caller asks Redis for a permit, is told
//! how long to wait, sleeps in its own process and asks again; pauses,
//! outages, the fallback bucket and the stop flag on the way.

use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::limit::clock::Clock;

use super::limiter::RedisLimiter;
use super::settings::SETTINGS_REFRESH;
use super::shared_learning::{Seen, micros_to_nanos};
use super::when_unreachable::WhenUnreachable;

/// The longest a waiting caller sleeps without looking at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

/// How often a caller held only by grants whose answers have not come
/// looks again: an answer may free a permit sooner.
const ANSWER_POLL: Duration = Duration::from_millis(10);

thread_local! {
    /// The limiter (its [`id`](RedisLimiter::id)) that let this thread's
    /// last caller go without a permit, and why: its
    /// [`check`](RedisLimiter::check) fails even if Redis is back.
    pub(super) static LET_GO: Cell<(usize, LetGo)> = const { Cell::new((0, LetGo::Unreachable)) };
    /// The limiter whose permits this thread holds, and how many, until
    /// their answers are reported: an answer from a thread that holds none
    /// (its caller was let go) answers nobody's grant.
    static HELD: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

/// Why a caller was let go without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LetGo {
    /// Redis was away longer than [`WhenUnreachable::WaitAtMost`] allows.
    Unreachable,
    /// Redis refused the limiter: a setting to fix.
    Refused,
    /// The stop flag was set.
    Stopped,
}

/// What one try for a permit in Redis said.
enum Taken {
    Granted,
    /// Not yet: wait this long; `true` if an answer may free a permit sooner.
    Wait(Duration, bool),
}

impl RedisLimiter {
    /// Blocks until a permit is granted (by Redis, or by the fallback while
    /// Redis is away), or until the limiter gives up: see
    /// [`check`](RedisLimiter::check).
    pub fn acquire(&self) {
        self.take(None);
    }

    /// Takes a permit if one is available now, without blocking beyond one
    /// round trip to Redis. `false` while Redis is unreachable, unless
    /// falling back.
    pub fn try_acquire(&self) -> bool {
        self.take(Some(self.shared.clock.now()))
    }

    /// Blocks at most `timeout` for a permit. Returns `false`, having taken
    /// nothing, if none could be granted in time.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        let deadline = self.shared.clock.now().checked_add(timeout);
        // A timeout too long to represent is no timeout.
        self.take(deadline)
    }

    /// Grants nothing to anyone sharing the key, in any process, for
    /// `duration` from now; after it, permits resume paced, with no burst.
    /// A shorter pause never shortens a longer one.
    pub fn pause_for(&self, duration: Duration) {
        let shared = &self.shared;
        let until = shared.clock.now().checked_add(duration);
        {
            let mut paused = shared.paused_until.lock();
            *paused = match (*paused, until) {
                (_, None) => until,
                (Some(before), Some(until)) => Some(before.max(until)),
                (None, until) => until,
            };
        }
        if let Some(fallback) = &shared.fallback {
            fallback.pause_for(duration);
        }
        if shared.link.next_try().is_none() {
            let micros = micros_up(duration.as_secs_f64() * 1e6);
            // A failure is logged by the link; the local pause holds this process.
            let _ = self.run("pause", &[micros], |answer| {
                matches!(answer, [0] | [1]).then_some(())
            });
        }
    }

    /// Told once per permit, when its request got an answer (or failed
    /// without one): the request counts for one window from now, instead
    /// of until its answer. One round trip to Redis; nothing for a thread
    /// that holds no permit of this limiter, or while Redis is away (the
    /// grant then counts for the window and the margin after it).
    pub fn answered(&self) {
        let id = self.id();
        let held = HELD.with(|held| {
            let (holder, count) = held.get();
            let holds = holder == id && count > 0;
            if holds {
                held.set((id, count - 1));
            }
            holds
        });
        if !held || self.shared.link.is_down() {
            return;
        }
        // A failure is logged by the link; the grant leaves the log by itself.
        let _ = self.run("answer", &[], |answer| (answer == [1]).then_some(()));
    }

    fn stop_asked(&self) -> bool {
        self.shared
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    /// Sleeps `duration`, looking at the stop flag every [`STOP_POLL`].
    fn nap(&self, duration: Duration) {
        let clock = &self.shared.clock;
        if self.shared.stop.is_none() {
            clock.sleep(duration);
            return;
        }
        let mut left = duration;
        while !left.is_zero() && !self.stop_asked() {
            let slice = left.min(STOP_POLL);
            clock.sleep(slice);
            left = left.saturating_sub(slice);
        }
    }

    /// Lets this thread's caller go without a permit: its `check` fails.
    pub(super) fn let_go(&self, why: LetGo) -> bool {
        LET_GO.with(|let_go| let_go.set((self.id(), why)));
        false
    }

    /// One permit, waiting until `deadline` (`None`: as long as it takes).
    pub(super) fn take(&self, deadline: Option<Instant>) -> bool {
        LET_GO.with(|let_go| {
            if let_go.get().0 == self.id() {
                let_go.set((0, LetGo::Unreachable));
            }
        });
        let shared = &self.shared;
        let clock = &shared.clock;
        let left = |deadline: Instant| deadline.saturating_duration_since(clock.now());
        let late = |at: Instant| deadline.is_some_and(|deadline| at > deadline);
        loop {
            if self.stop_asked() {
                return self.let_go(LetGo::Stopped);
            }
            // A pause this process knows of holds it, whether or not Redis
            // could be told.
            let paused = *shared.paused_until.lock();
            if let Some(until) = paused.filter(|until| *until > clock.now()) {
                if late(until) {
                    return false;
                }
                // Woken now and then, so that the lease is renewed.
                self.nap(
                    until
                        .saturating_duration_since(clock.now())
                        .min(SETTINGS_REFRESH),
                );
                let _ = self.register(false);
                continue;
            }
            if let Some(next_try) = shared.link.next_try() {
                if let Some(fallback) = &shared.fallback {
                    return match deadline {
                        None => {
                            fallback.acquire();
                            true
                        }
                        Some(deadline) => fallback.acquire_timeout(left(deadline)),
                    };
                }
                // Wait for the next attempt, unless it comes too late.
                if late(next_try) {
                    return false;
                }
                let mut wake = next_try;
                if let WhenUnreachable::WaitAtMost(wait) = shared.when_unreachable {
                    let down = shared.link.down_for().unwrap_or_default();
                    if down >= wait {
                        return self.let_go(LetGo::Unreachable);
                    }
                    wake = wake.min(clock.now() + (wait - down));
                }
                self.nap(wake.saturating_duration_since(clock.now()));
                continue;
            }
            if self.register(false).is_err() {
                if shared.link.refusal().is_some() {
                    return self.let_go(LetGo::Refused);
                }
                continue;
            }
            if self.refusal().is_some() {
                return false;
            }
            let now = clock.now();
            match self.take_from_redis() {
                Ok(Taken::Granted) => {
                    let id = self.id();
                    HELD.with(|held| {
                        let (holder, count) = held.get();
                        let count = if holder == id { count } else { 0 };
                        held.set((id, count.saturating_add(1)));
                    });
                    return true;
                }
                Ok(Taken::Wait(wait, sooner)) => {
                    let at = now + wait;
                    let wake = if sooner {
                        // An answer may free a permit sooner: look again soon.
                        if deadline.is_some_and(|deadline| now >= deadline) {
                            return false;
                        }
                        let soon = at.min(now + ANSWER_POLL);
                        deadline.map_or(soon, |deadline| soon.min(deadline))
                    } else if late(at) {
                        return false;
                    } else {
                        at
                    };
                    self.nap(wake.saturating_duration_since(clock.now()));
                }
                Err(()) if shared.link.refusal().is_some() => {
                    return self.let_go(LetGo::Refused);
                }
                // Redis failed: an outage, which the loop waits out.
                Err(()) => {}
            }
        }
    }

    /// Asks Redis for a permit now: granted, or how long to wait.
    fn take_from_redis(&self) -> std::result::Result<Taken, ()> {
        let law = self.shared.schedule.read().law;
        let (taken, now, seen) = self.run_reporting("take", &[], |answer| {
            let (taken, now, seen) = match *answer {
                [1, now, ref seen @ ..] => (Taken::Granted, now, seen),
                [0, now, wait, sooner, ref seen @ ..] => {
                    let wait = Duration::from_micros(u64::try_from(wait).ok()?);
                    (Taken::Wait(wait, sooner == 1), now, seen)
                }
                _ => return None,
            };
            let seen = match seen {
                [] => None,
                seen => Some(Seen::read(seen, &law)?),
            };
            Some((taken, now, seen))
        })?;
        if let Some(seen) = seen {
            self.follow(seen);
            self.probe(micros_to_nanos(now));
        }
        Ok(taken)
    }
}

/// Microseconds, rounded up, at least 1: waits and intervals are never short.
fn micros_up(micros: f64) -> i64 {
    if micros >= i64::MAX as f64 {
        i64::MAX
    } else {
        (micros.ceil() as i64).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up() {
        assert_eq!(micros_up(12_500.0), 12_500);
        assert_eq!(micros_up(3_333.4), 3_334);
        assert_eq!(micros_up(0.0), 1);
        assert_eq!(micros_up(f64::INFINITY), i64::MAX);
    }
}
