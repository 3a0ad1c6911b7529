//! `RedisLimiter`: the shared budget's handle, what it tells of itself,
//! and the [`Limiter`] it is.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::limit::clock::Clock;
use crate::limit::learning::{Law, RateChange};
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::RateLimit;
use crate::limit::token_bucket::TokenBucket;

use super::link::{RedisLink, Refusal};
use super::permits::{LET_GO, LetGo};
use super::settings::{Settings, settings_text};
use super::shared_learning::Following;
use super::when_unreachable::WhenUnreachable;

/// How long the budget's keys, and what was learned, live on after the
/// last grant that counts in them.
const LINGER: Duration = Duration::from_secs(60);

/// A rate limiter shared through Redis by every process, on every machine,
/// that sends to one workspace: together they never send faster than its limit.
///
/// Customer.io limits the workspace, not the process. Two batch jobs, or one
/// job on three machines, each with its own 80/s
/// [`TokenBucket`](crate::TokenBucket), send 160–240/s and get throttled.
/// Give each of them a `RedisLimiter` with the same Redis, workspace and
/// [`ApiClass`](crate::ApiClass) and they share one budget.
///
/// ```no_run
/// use cio_ratelimit::{ApiClass, Client, RateLimit};
/// use cio_ratelimit::limit::{RedisLimiter, WhenUnreachable};
///
/// let track = RedisLimiter::builder(RateLimit::TRACK_API)
///     .url("redis://:password@10.0.0.5:6379/0")
///     .workspace("site-id") // any name every process of the workspace agrees on
///     .class(ApiClass::Track)
///     .when_unreachable(WhenUnreachable::FallBack { share: 0.25 }) // one of four processes
///     .build()?;
/// let client = Client::builder("site-id", "track-api-key")
///     .limiter(ApiClass::Track, track)
///     .build()?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// **Guarantee:** with Redis reachable, at most N requests in any window W
/// reach the server, across all processes and threads that share the key,
/// exactly as [`SlidingWindow`](crate::SlidingWindow) promises in one
/// process: N is the rate times the window (default 1 s), so `--rate 90
/// --burst 30` never puts more than 90 into a second at the server, and a
/// rate equal to the workspace's limit runs at that limit without 429s.
///
/// - A 429 ([`throttled`](Limiter::throttled)) pauses every process
///   sharing the key and, unless
///   [`learning(false)`](super::RedisLimiterBuilder::learning), teaches all
///   of them the workspace's real limit, never above the
///   configured rate; [`rate_changes`](Limiter::rate_changes) shows what
///   this process saw.
/// - Every process sharing a key must use the same rate, burst and window:
///   one that differs is refused with [`Error::SharedSettingsMismatch`]
///   unless it [adopts](super::RedisLimiterBuilder::adopt_shared_settings)
///   theirs.
/// - A Redis that refuses the limiter (a wrong password, an untrusted
///   certificate) fails [`check`](RedisLimiter::check) with
///   [`Error::RedisRefused`] at once; one that cannot be reached is handled
///   as [`WhenUnreachable`] says. Every wait ends within 100 ms of the
///   [stop flag](super::RedisLimiterBuilder::stop_when).
/// - `rediss://` connects over TLS (rustls) and always checks the
///   certificate, against the system's roots or a
///   [private CA](super::RedisLimiterBuilder::trust_ca). It needs Redis 5 or
///   later, or Valkey, reached directly (not through Redis Cluster's
///   redirects).
///
/// The [guide](super::guide) says how it works: the keys, the Lua scripts,
/// the learning law shared by compare-and-set, leases on the settings, and
/// outages.
///
/// # Threads and cloning
///
/// `RedisLimiter` is `Send + Sync`. Clones share one pool of connections and
/// one fallback bucket: hand a clone to each thread. Separate processes share
/// the budget through Redis.
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisLimiter {
    pub(super) shared: Arc<Shared>,
}

pub(super) struct Shared {
    pub(super) link: RedisLink,
    pub(super) key: String,
    /// The limit and what the script is told of it; an adopted limit
    /// replaces the configured one.
    pub(super) schedule: RwLock<Schedule>,
    /// When to record the settings again, and another process's refused.
    pub(super) settings: Mutex<Settings>,
    /// Whether to take on another process's settings instead of refusing.
    pub(super) adopt: bool,
    pub(super) when_unreachable: WhenUnreachable,
    pub(super) fallback: Option<TokenBucket>,
    /// When the last pause ends, also kept here: one that could not reach
    /// Redis still holds this process.
    pub(super) paused_until: Mutex<Option<Instant>>,
    /// This process's name among the sharers of the settings.
    pub(super) sharer: String,
    /// Set to end every wait: see [`RedisLimiterBuilder::stop_when`].
    pub(super) stop: Option<Arc<AtomicBool>>,
    /// Whether to learn, and how long to hold a learned rate: what a law
    /// for adopted settings is built with.
    pub(super) learning: bool,
    pub(super) probe_after: Duration,
    /// What this process knows of the learning every process shares.
    pub(super) following: Mutex<Following>,
    /// Answers accepted since this process last told Redis.
    pub(super) accepted: AtomicU32,
    pub(super) clock: Arc<dyn Clock>,
    /// When the limiter was built: rate changes are timed from it.
    pub(super) origin: Instant,
}

#[derive(Clone, Copy)]
pub(super) struct Schedule {
    pub(super) limit: RateLimit,
    /// The learning law, its window and ceiling (the limit per window).
    pub(super) law: Law,
    /// The arguments every script call starts with: the window, the
    /// ceiling, the burst, the margin, the linger, and whether to follow
    /// the learned limit, all in the script's units.
    pub(super) params: [i64; 6],
}

impl Schedule {
    pub(super) fn new(limit: RateLimit, law: Law) -> Schedule {
        let window = i64::try_from(law.window / 1_000).unwrap_or(i64::MAX);
        // SlidingWindow's default: 2 % of the window, at least 1 ms.
        let margin = (window / 50).max(1_000);
        let linger = i64::try_from(LINGER.as_millis()).unwrap_or(i64::MAX);
        Schedule {
            limit,
            law,
            params: [
                window,
                i64::from(law.ceiling),
                i64::from(limit.burst()),
                margin,
                linger,
                i64::from(law.learning),
            ],
        }
    }
}

impl RedisLimiter {
    /// The Redis key holding the shared state.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The shared limit: the configured one, or the one adopted from
    /// another process (see
    /// [`adopt_shared_settings`](super::RedisLimiterBuilder::adopt_shared_settings)).
    pub fn limit(&self) -> RateLimit {
        self.shared.schedule.read().limit
    }

    /// The settings every process sharing the key must agree on, as
    /// recorded beside the shared state: `rate=80/s burst=10 window=1s`.
    pub fn settings(&self) -> String {
        let schedule = *self.shared.schedule.read();
        settings_text(schedule.limit, &schedule.law)
    }

    /// Whether 429s teach every process sharing the key the workspace's limit.
    pub fn is_learning(&self) -> bool {
        self.shared.learning
    }

    /// The rate in force, in permits per second: the shared learned rate
    /// when learning (as last seen in Redis), else the limit's
    /// ([`Limiter::rate`](crate::Limiter::rate) says the same as an `Option`).
    pub fn rate_per_sec(&self) -> f64 {
        let schedule = *self.shared.schedule.read();
        let limit = self.shared.following.lock().course.limit;
        if !schedule.law.learning || limit >= schedule.law.ceiling {
            schedule.limit.per_second()
        } else {
            schedule.law.per_second(limit)
        }
    }

    /// How the shared rate has changed since this limiter was built, as
    /// this process saw it, oldest first (the last 64 changes). A change
    /// another process made is seen with the next permit.
    pub fn rate_changes(&self) -> Vec<RateChange> {
        self.shared.following.lock().changes.to_vec()
    }

    /// Told after each call the server accepted: counted in Redis with
    /// this process's next request for a permit, so that every process
    /// learns from what the server accepted from all of them.
    pub fn record_success(&self) {
        self.shared.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// Told when the server answered 429 and asked for a pause of `pause`:
    /// pauses every process sharing the key (see
    /// [`pause_for`](RedisLimiter::pause_for)) and, when learning, sets the
    /// shared rate from what the server accepted from all of them in the
    /// trailing window, unless another process already counted this
    /// overload.
    pub fn throttled(&self, pause: Duration) {
        self.pause_for(pause);
        if self.shared.learning && !self.shared.link.is_down() {
            // A failure is logged by the link; the pause holds everyone.
            let _ = self.learn_from_429(pause);
        }
    }

    /// Contacts Redis now, instead of when first used: records this
    /// process's settings beside the shared state, or adopts or refuses
    /// another process's. Call it before sending, so that a mismatch stops
    /// a program before its first request.
    ///
    /// # Errors
    ///
    /// [`Error::SharedSettingsMismatch`] when another process shares the key
    /// with a different rate or burst (unless adopting);
    /// [`Error::RedisRefused`] when Redis refuses the limiter (a wrong
    /// password or database, a certificate not trusted: a setting to fix);
    /// [`Error::RedisUnreachable`] when Redis cannot be reached now (the
    /// limiter still works as configured with [`WhenUnreachable`]).
    pub fn connect(&self) -> Result<()> {
        if self.shared.link.next_try().is_some() || self.register(true).is_err() {
            if let Some(refusal) = self.shared.link.refusal() {
                return Err(self.refused(refusal));
            }
            let waited = self.shared.link.down_for().unwrap_or_default();
            return Err(self.unreachable(waited));
        }
        self.refusal().map_or(Ok(()), Err)
    }

    pub(super) fn refused(&self, refusal: Refusal) -> Error {
        Error::RedisRefused {
            url: self.shared.link.shown().to_owned(),
            setting: refusal.setting,
            reason: refusal.reason,
        }
    }

    pub(super) fn unreachable(&self, waited: Duration) -> Error {
        Error::RedisUnreachable {
            url: self.shared.link.shown().to_owned(),
            waited,
        }
    }

    /// How long Redis has been unreachable, while an outage goes on.
    pub fn unreachable_for(&self) -> Option<Duration> {
        self.shared.link.down_for()
    }

    /// Whether permits may be used: see [`Limiter::check`](crate::Limiter::check).
    ///
    /// # Errors
    ///
    /// [`Error::SharedSettingsMismatch`] when another process's settings
    /// were refused; [`Error::RedisRefused`] when Redis refuses the
    /// limiter; [`Error::RedisUnreachable`] when Redis has been away longer
    /// than [`WhenUnreachable::WaitAtMost`] allows; [`Error::Stopped`] when
    /// this thread's caller was let go because the stop flag was set.
    pub fn check(&self) -> Result<()> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        if let Some(refusal) = self.shared.link.refusal() {
            return Err(self.refused(refusal));
        }
        if let Some(waited) = self.waited_too_long() {
            return Err(self.unreachable(waited));
        }
        // Redis may have come back since this thread was let go: its
        // caller still has no permit.
        let (id, why) = LET_GO.with(Cell::get);
        if id == self.id() {
            LET_GO.with(|let_go| let_go.set((0, LetGo::Unreachable)));
            return Err(match (why, self.shared.when_unreachable) {
                (LetGo::Stopped, _) => Error::Stopped,
                (LetGo::Unreachable, WhenUnreachable::WaitAtMost(waited)) => {
                    self.unreachable(waited)
                }
                (LetGo::Unreachable | LetGo::Refused, _) => Error::RedisRefused {
                    url: self.shared.link.shown().to_owned(),
                    setting: "redis_url",
                    reason: "refused earlier; no permit was granted".to_owned(),
                },
            });
        }
        Ok(())
    }

    /// This limiter, and its clones, among others on a thread.
    pub(super) fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// How long Redis has been away, when that is longer than the limiter may wait.
    fn waited_too_long(&self) -> Option<Duration> {
        let WhenUnreachable::WaitAtMost(wait) = self.shared.when_unreachable else {
            return None;
        };
        self.shared.link.down_for().filter(|down| *down >= wait)
    }

    /// Whether Redis was unreachable at the last attempt.
    pub fn is_unreachable(&self) -> bool {
        self.shared.link.is_down()
    }

    pub(super) fn run<T>(
        &self,
        op: &str,
        args: &[i64],
        read: impl FnOnce(&[i64]) -> Option<T>,
    ) -> std::result::Result<T, ()> {
        let shared = &self.shared;
        let params = shared.schedule.read().params;
        let all: Vec<i64> = params.iter().chain(args).copied().collect();
        shared.link.run(&shared.key, op, &all, read)
    }

    /// [`run`](RedisLimiter::run), telling Redis, after `args`, of the
    /// answers accepted since this process last did.
    pub(super) fn run_reporting<T>(
        &self,
        op: &str,
        args: &[i64],
        read: impl FnOnce(&[i64]) -> Option<T>,
    ) -> std::result::Result<T, ()> {
        let accepted = &self.shared.accepted;
        let reported = accepted.swap(0, Ordering::Relaxed);
        let all: Vec<i64> = args.iter().copied().chain([i64::from(reported)]).collect();
        let answer = self.run(op, &all, read);
        if answer.is_err() {
            // Told with the next call instead.
            accepted.fetch_add(reported, Ordering::Relaxed);
        }
        answer
    }
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
    fn check(&self) -> Result<()> {
        RedisLimiter::check(self)
    }
    fn answered(&self) {
        RedisLimiter::answered(self)
    }
    fn record_success(&self) {
        RedisLimiter::record_success(self)
    }
    fn throttled(&self, pause: Duration) {
        RedisLimiter::throttled(self, pause)
    }
    fn rate(&self) -> Option<f64> {
        Some(RedisLimiter::rate_per_sec(self))
    }
    fn rate_changes(&self) -> Vec<RateChange> {
        RedisLimiter::rate_changes(self)
    }
}

impl fmt::Debug for RedisLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shared = &self.shared;
        f.debug_struct("RedisLimiter")
            .field("url", &shared.link.shown())
            .field("key", &shared.key)
            .field("rate_per_sec", &self.limit().per_second())
            .field("burst", &self.limit().burst())
            .field("learning", &shared.learning)
            .field("rate_in_force", &self.rate_per_sec())
            .field("when_unreachable", &shared.when_unreachable)
            .field("unreachable", &shared.link.is_down())
            .finish_non_exhaustive()
    }
}
