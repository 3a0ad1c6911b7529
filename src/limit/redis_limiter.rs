//! `RedisLimiter`: one rate limit shared by every process and machine that
//! sends to a workspace, kept in Redis.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::limit::clock::{Clock, SystemClock};
use crate::limit::limiter::{Limiter, Unlimited};
use crate::limit::rate_limit::RateLimit;
use crate::limit::redis_link::{self, RedisLink};
use crate::limit::token_bucket::TokenBucket;

/// How long the hash lives on after its last scheduled permit. Past that it
/// would hold nothing but a full bucket, which is what a missing hash means.
const LINGER: Duration = Duration::from_secs(60);

/// A rate limiter shared through Redis by every process, on every machine,
/// that sends to one workspace: together they never send faster than its limit.
///
/// Customer.io limits the workspace, not the process. Two batch jobs, or one
/// job on three machines, each with its own 80/s [`TokenBucket`], send
/// 160–240/s and get throttled. Give each of them a `RedisLimiter` with the
/// same Redis, workspace and [`ApiClass`] and they share one budget.
///
/// ```no_run
/// use cio_ratelimit::{ApiClass, Client, RateLimit, RedisLimiter, WhenUnreachable};
///
/// let track = RedisLimiter::builder(
///     "redis://:password@10.0.0.5:6379/0",
///     "site-id", // any name every process of the workspace agrees on
///     ApiClass::Track,
///     RateLimit::TRACK_API,
/// )
/// .when_unreachable(WhenUnreachable::FallBack { share: 0.25 }) // one of four processes
/// .build()?;
/// let client = Client::builder("site-id", "track-api-key")
///     .limiter(ApiClass::Track, track)
///     .build()?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// **Guarantee:** with Redis reachable, in any window of length T at most
/// `burst + rate × T` permits are granted, across all processes and threads
/// that share the key, and a steady stream of callers gets the full rate.
///
/// # How it works
///
/// The same generic cell rate algorithm as [`TokenBucket`], with its state in
/// one Redis hash per workspace and API class (key
/// `cio-ratelimit:{workspace}:{class}`, expiring a minute after its last
/// scheduled permit) and its time taken from the Redis server's clock, so
/// machines need not agree on the time. Each operation is one atomic Lua
/// script: a caller reserves the next free slot in one round trip and sleeps
/// in its own process until the slot is due; callers are served in the order
/// they reserved, whichever process they are in.
///
/// [`pause_for`](RedisLimiter::pause_for), which a client calls on a 429,
/// moves every slot not yet due, in every process, behind the pause, keeping
/// order and spacing; after it, permits resume at the steady rate with no
/// burst. A caller that slept checks with Redis before it goes, and sleeps
/// again if a pause moved its slot. So a waiting caller costs two round
/// trips, one granted at once costs one.
///
/// Every process sharing a key must use the same [`RateLimit`]. Slots are
/// whole microseconds, rounded up, so the rate is never exceeded. A Redis
/// server whose clock steps backwards holds every caller for the size of the
/// step. It needs Redis 5 or later, or Valkey, reached directly (not through
/// Redis Cluster's redirects). `rediss://` (TLS) is not built in; use a
/// tunnel or a private network.
///
/// # When Redis cannot be reached
///
/// Connecting and each command time out after 1 s
/// ([`timeout`](RedisLimiterBuilder::timeout)); then, as configured with
/// [`WhenUnreachable`], callers either wait for Redis, retrying with backoff
/// (the default: the budget is never overspent), or fall back to a local
/// bucket at a share of the rate until Redis answers again. The first failure
/// of an outage is logged with `log::warn!`, the recovery with `log::info!`;
/// the Redis password never appears in logs, errors or `Debug`. A pause that
/// cannot reach Redis still holds this process.
///
/// # Threads and cloning
///
/// `RedisLimiter` is `Send + Sync`. Clones share one pool of connections and
/// one fallback bucket: hand a clone to each thread. Separate processes share
/// the budget through Redis.
#[derive(Clone)]
pub struct RedisLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    link: RedisLink,
    key: String,
    limit: RateLimit,
    /// The arguments every script call starts with: interval, tolerance,
    /// linger, all in the script's units.
    params: [i64; 3],
    when_unreachable: WhenUnreachable,
    fallback: Option<TokenBucket>,
    /// Pauses, also kept here: one that could not reach Redis still holds
    /// this process.
    paused: Unlimited,
    clock: Arc<dyn Clock>,
}

/// What a [`RedisLimiter`] does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum WhenUnreachable {
    /// Grant nothing until Redis answers again: waiting callers try it every
    /// 50 ms at first, backing off to once a second. The shared budget is
    /// never overspent; the job stalls for as long as Redis is away. The
    /// default.
    Wait,
    /// Grant from a local [`TokenBucket`] at `share` of the rate and of the
    /// burst (at least 1) until Redis answers again; meanwhile one caller at
    /// a time tries Redis again, every 50 ms at first, backing off to once a
    /// second. Give each process its part of the workspace, e.g. 0.25 for one
    /// of four processes, so that together they stay under the limit. Redis
    /// does not know what was granted locally: in the moments around the
    /// switch back, a window may hold both.
    FallBack {
        /// This process's part of the rate, in (0, 1].
        share: f64,
    },
}

/// Builds a [`RedisLimiter`]; [`build`](RedisLimiterBuilder::build) checks
/// the settings without connecting.
pub struct RedisLimiterBuilder {
    url: String,
    workspace: String,
    class: ApiClass,
    limit: RateLimit,
    key_prefix: String,
    when_unreachable: WhenUnreachable,
    timeout: Duration,
    clock: Arc<dyn Clock>,
}

impl RedisLimiterBuilder {
    /// The first part of the Redis key; default `cio-ratelimit`. The key is
    /// `{prefix}:{workspace}:{class}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// What to do while Redis cannot be reached; default [`WhenUnreachable::Wait`].
    pub fn when_unreachable(mut self, when: WhenUnreachable) -> Self {
        self.when_unreachable = when;
        self
    }

    /// How long connecting to Redis, and each command, may take before Redis
    /// counts as unreachable; default 1 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The clock callers sleep on and local timeouts are measured with;
    /// default [`SystemClock`]. Slots are always timed by the Redis server.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings and builds the limiter. It connects when first used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a URL the Redis client
    /// cannot use (shown without its password), an empty workspace or key
    /// prefix, a zero timeout, or a fallback share outside (0, 1].
    pub fn build(self) -> Result<RedisLimiter> {
        let client = redis_link::open(&self.url).map_err(|shown| {
            Error::invalid(
                "redis_url",
                shown,
                "a redis:// or redis+unix:// URL, e.g. redis://:password@host:6379/0",
            )
        })?;
        if self.workspace.trim().is_empty() {
            return Err(Error::invalid(
                "workspace",
                "\"\"",
                "a name every process of the workspace uses, e.g. its site id",
            ));
        }
        if self.key_prefix.trim().is_empty() {
            return Err(Error::invalid("key_prefix", "\"\"", "a non-empty prefix"));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "0s", "more than zero"));
        }
        let (fallback, meanwhile) = match self.when_unreachable {
            WhenUnreachable::Wait => (None, "waiting for it"),
            WhenUnreachable::FallBack { share } => {
                if !(share > 0.0 && share <= 1.0) {
                    return Err(Error::invalid(
                        "share",
                        share,
                        "a part of the rate above 0 and at most 1",
                    ));
                }
                let burst = (f64::from(self.limit.burst()) * share).floor().max(1.0) as u32;
                let local = RateLimit::new(self.limit.per_second() * share, burst)?;
                let bucket = TokenBucket::from_limit_with_clock(local, self.clock.clone());
                (
                    Some(bucket),
                    "falling back to a local limit at a share of the rate",
                )
            }
        };
        let interval = micros_up(1e6 / self.limit.per_second());
        let tolerance = interval.saturating_mul(i64::from(self.limit.burst()) - 1);
        let linger = i64::try_from(LINGER.as_millis()).unwrap_or(i64::MAX);
        Ok(RedisLimiter {
            shared: Arc::new(Shared {
                link: RedisLink::new(
                    client,
                    include_str!("redis_limiter.lua"),
                    self.timeout,
                    meanwhile,
                    self.clock.clone(),
                ),
                key: format!(
                    "{}:{}:{}",
                    self.key_prefix,
                    self.workspace,
                    class_name(self.class)
                ),
                limit: self.limit,
                params: [interval, tolerance, linger],
                when_unreachable: self.when_unreachable,
                fallback,
                paused: Unlimited::with_clock(self.clock.clone()),
                clock: self.clock,
            }),
        })
    }
}

impl fmt::Debug for RedisLimiterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisLimiterBuilder")
            .field("url", &redis_link::redact(&self.url))
            .field("workspace", &self.workspace)
            .field("class", &self.class)
            .field("limit", &self.limit)
            .field("key_prefix", &self.key_prefix)
            .field("when_unreachable", &self.when_unreachable)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The class's part of the key: stable, whatever `ApiClass`'s `Debug` says.
fn class_name(class: ApiClass) -> &'static str {
    match class {
        ApiClass::Track => "track",
        ApiClass::Transactional => "transactional",
        ApiClass::App => "app",
        ApiClass::Broadcast => "broadcast",
        ApiClass::Pipelines => "pipelines",
    }
}

/// What a round of the script's reserve-sleep-check said.
enum Taken {
    Granted,
    /// Not in time: nothing taken (or the permit given back, or wasted if
    /// someone reserved after it while a pause moved it past the deadline).
    Refused,
    /// The reservation is gone with Redis's data; reserve again.
    Lost,
}

/// What the script said to a caller that woke up.
enum Checked {
    Go,
    /// Not yet: sleep this many microseconds, for this slot, at this version.
    Sleep(i64, i64, i64),
    /// A pause pushed the slot past the deadline.
    Late,
    Lost,
}

impl RedisLimiter {
    /// Starts building a limiter for `class` of `workspace`, at `limit`,
    /// kept in the Redis at `redis_url` (`redis://[:password@]host[:port][/db]`
    /// or `redis+unix:///path`).
    pub fn builder(
        redis_url: impl Into<String>,
        workspace: impl Into<String>,
        class: ApiClass,
        limit: RateLimit,
    ) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            url: redis_url.into(),
            workspace: workspace.into(),
            class,
            limit,
            key_prefix: "cio-ratelimit".to_owned(),
            when_unreachable: WhenUnreachable::Wait,
            timeout: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
        }
    }

    /// The Redis key holding the shared state.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The shared limit.
    pub fn limit(&self) -> RateLimit {
        self.shared.limit
    }

    /// Whether Redis was unreachable at the last attempt.
    pub fn is_unreachable(&self) -> bool {
        self.shared.link.is_down()
    }

    /// Blocks until a permit is granted (by Redis, or by the fallback while
    /// Redis is away).
    pub fn acquire(&self) {
        self.take(None);
    }

    /// Takes a permit if one is available now, without blocking beyond one
    /// round trip to Redis. `false` while Redis is unreachable, unless
    /// falling back.
    pub fn try_acquire(&self) -> bool {
        self.take(Some(self.shared.clock.now()))
    }

    /// Blocks at most `timeout` for a permit. Returns `false` if none could
    /// be granted in time; then it takes nothing, unless a pause began while
    /// it waited and someone reserved after it.
    pub fn acquire_timeout(&self, timeout: Duration) -> bool {
        let deadline = self.shared.clock.now().checked_add(timeout);
        // A timeout too long to represent is no timeout.
        self.take(deadline)
    }

    /// Grants nothing to anyone sharing the key, in any process, for
    /// `duration` from now. Waiting callers keep their order and spacing and
    /// are moved to the end of the pause or later. A shorter pause never
    /// shortens a longer one.
    pub fn pause_for(&self, duration: Duration) {
        let shared = &self.shared;
        shared.paused.pause_for(duration);
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

    fn run<T>(
        &self,
        op: &str,
        args: &[i64],
        read: impl FnOnce(&[i64]) -> Option<T>,
    ) -> std::result::Result<T, ()> {
        let shared = &self.shared;
        let all: Vec<i64> = shared.params.iter().chain(args).copied().collect();
        shared.link.run(&shared.key, op, &all, read)
    }

    /// One permit, waiting until `deadline` (`None`: as long as it takes).
    fn take(&self, deadline: Option<Instant>) -> bool {
        let shared = &self.shared;
        let clock = &shared.clock;
        let left = |deadline: Instant| deadline.saturating_duration_since(clock.now());
        let waited = match deadline {
            None => {
                shared.paused.acquire();
                true
            }
            Some(deadline) => shared.paused.acquire_timeout(left(deadline)),
        };
        if !waited {
            return false;
        }
        loop {
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
                if deadline.is_some_and(|deadline| next_try > deadline) {
                    return false;
                }
                clock.sleep(next_try.saturating_duration_since(clock.now()));
                continue;
            }
            match self.take_from_redis(deadline) {
                Ok(Taken::Granted) => return true,
                Ok(Taken::Refused) => return false,
                // Redis lost the reservation, or failed: start again.
                Ok(Taken::Lost) | Err(()) => continue,
            }
        }
    }

    /// Reserves a slot in Redis, sleeps until it is due, and checks before
    /// going that no pause has moved it.
    fn take_from_redis(&self, deadline: Option<Instant>) -> std::result::Result<Taken, ()> {
        let clock = &self.shared.clock;
        let max_wait = deadline.map_or(-1, |deadline| {
            micros_down(deadline.saturating_duration_since(clock.now()))
        });
        let reserved = self.run("reserve", &[max_wait], |answer| match *answer {
            [1, wait, slot, last, version, epoch] => Some(Some((wait, slot, last, version, epoch))),
            [0, _] => Some(None),
            _ => None,
        })?;
        let Some((wait, slot, last, version, epoch)) = reserved else {
            return Ok(Taken::Refused);
        };
        // The deadline in the server's time: its clock and ours tick alike.
        let server_deadline = if max_wait < 0 {
            -1
        } else {
            slot - wait + max_wait
        };
        let (mut wait, mut slot, mut version) = (wait, slot, version);
        while wait > 0 {
            clock.sleep(Duration::from_micros(wait.unsigned_abs()));
            let checked = self.run(
                "check",
                &[slot, last, version, epoch, server_deadline],
                |answer| match *answer {
                    [1] => Some(Checked::Go),
                    [0, again, moved, seen] => Some(Checked::Sleep(again, moved, seen)),
                    [2] => Some(Checked::Late),
                    [3] => Some(Checked::Lost),
                    _ => None,
                },
            )?;
            match checked {
                Checked::Go => return Ok(Taken::Granted),
                Checked::Sleep(again, moved, seen) => (wait, slot, version) = (again, moved, seen),
                Checked::Late => return Ok(Taken::Refused),
                Checked::Lost => return Ok(Taken::Lost),
            }
        }
        Ok(Taken::Granted)
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

/// Whole microseconds, rounded down: a deadline is never overshot.
fn micros_down(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

impl Limiter for RedisLimiter {
    fn acquire(&self) {
        RedisLimiter::acquire(self)
    }
    fn try_acquire(&self) -> bool {
        RedisLimiter::try_acquire(self)
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        RedisLimiter::acquire_timeout(self, timeout)
    }
    fn pause_for(&self, duration: Duration) {
        RedisLimiter::pause_for(self, duration)
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("RedisLimiter")
            .field("url", &shared.link.shown())
            .field("key", &shared.key)
            .field("rate_per_sec", &shared.limit.per_second())
            .field("burst", &shared.limit.burst())
            .field("when_unreachable", &shared.when_unreachable)
            .field("unreachable", &shared.link.is_down())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_and_deadlines_round_down() {
        assert_eq!(micros_up(12_500.0), 12_500);
        assert_eq!(micros_up(3_333.4), 3_334);
        assert_eq!(micros_up(0.0), 1);
        assert_eq!(micros_up(f64::INFINITY), i64::MAX);
        assert_eq!(micros_down(Duration::from_nanos(1_999)), 1);
        assert_eq!(micros_down(Duration::MAX), i64::MAX);
    }

    #[test]
    fn keys_name_the_class_in_lower_case() {
        let names: Vec<&str> = ApiClass::ALL.iter().map(|c| class_name(*c)).collect();
        assert_eq!(
            names,
            ["track", "transactional", "app", "broadcast", "pipelines"]
        );
    }
}
