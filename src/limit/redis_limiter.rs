//! `RedisLimiter`: one rate limit shared by every process and machine that
//! sends to a workspace, kept in Redis.

use std::cell::Cell;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::limit::clock::{Clock, SystemClock, duration_nanos};
use crate::limit::learning::{Changes, Course, Law, RateChange, Throttle};
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::RateLimit;
use crate::limit::redis_link::{self, RedisLink, Refusal, Refused};
use crate::limit::token_bucket::TokenBucket;

/// How long the budget's keys, and what was learned, live on after the
/// last grant that counts in them.
const LINGER: Duration = Duration::from_secs(60);
/// How often a process renews its lease on the shared settings while it
/// uses the key.
const SETTINGS_REFRESH: Duration = Duration::from_secs(10);
/// How long a lease on the shared settings lasts unless renewed: how long
/// they outlive a process that died without giving its lease back.
const LEASE: Duration = Duration::from_secs(30);
/// The longest a waiting caller sleeps without looking at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How often a caller held only by grants whose answers have not come
/// looks again: an answer may free a permit sooner.
const ANSWER_POLL: Duration = Duration::from_millis(10);

/// A rate limiter shared through Redis by every process, on every machine,
/// that sends to one workspace: together they never send faster than its limit.
///
/// Customer.io limits the workspace, not the process. Two batch jobs, or one
/// job on three machines, each with its own 80/s [`TokenBucket`], send
/// 160–240/s and get throttled. Give each of them a `RedisLimiter` with the
/// same Redis, workspace and [`ApiClass`] and they share one budget.
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
/// rate equal to the workspace's limit runs at that limit without 429s. The
/// rate is the configured one until the server's 429s teach the processes
/// a lower one (see [Learning](#learning-the-real-limit-together)).
///
/// # How it works
///
/// The same log as [`SlidingWindow`](crate::SlidingWindow)'s, kept in Redis
/// (keys `cio-ratelimit:{workspace}:{class}`, `…:open` and `…:answered`) and
/// timed by the Redis server's clock, so machines need not agree on the
/// time: a request counts from its grant until its answer comes
/// ([`answered`](Limiter::answered), which a `Client` reports after every
/// attempt) and for one window more; a grant whose answer never comes (a
/// process killed mid-request) counts for the window and a margin of 2 %
/// of it after the grant. A permit is granted while fewer than N are
/// counted, paced N per window with bursts of up to the limit's burst.
/// Each operation is one atomic Lua script and one round trip; a caller
/// that cannot be granted now is told how long to wait, sleeps in its own
/// process and asks again. Reporting an answer is one more round trip.
///
/// [`pause_for`](RedisLimiter::pause_for), which a client calls on a 429,
/// grants nothing to anyone sharing the key, in any process, until the
/// pause ends; then permits resume paced, with no burst.
///
/// Every process sharing a key must use the same [`RateLimit`] and window.
/// It needs Redis 5 or later, or Valkey, reached directly (not through
/// Redis Cluster's redirects).
///
/// # TLS
///
/// A `rediss://` URL connects over TLS (rustls), as managed Redis services
/// (ElastiCache in transit, Upstash, Redis Cloud, Azure Cache) require, and
/// checks the server's certificate against the system's root certificates,
/// or against a private CA given to [`trust_ca`](RedisLimiterBuilder::trust_ca).
/// Certificate checks cannot be turned off.
///
/// # Learning the real limit, together
///
/// As [`SlidingWindow`](crate::SlidingWindow) does in one process, and with
/// the same law, the processes sharing a key learn the workspace's real
/// limit from its 429s, once for all of them (turn it off with
/// [`learning(false)`](RedisLimiterBuilder::learning)):
///
/// - Each process tells Redis what the server accepted
///   ([`record_success`](Limiter::record_success)) with its next request
///   for a permit, so Redis knows the shared delivery, counted by its clock
///   in buckets of a hundredth of the [window](RedisLimiterBuilder::window).
/// - On a 429 ([`throttled`](Limiter::throttled)) the rate becomes what the
///   server accepted from all of them in the trailing window, less 4 %
///   headroom, when that is at least half the rate; otherwise, or in the
///   first window of the process that met it, it is lowered at most to 0.7
///   × the rate. Never below a twentieth of the configured rate. The learned
///   rate lives in Redis beside the budget (key `{key}:rate`) and is
///   written compare-and-set: 429s that several processes meet in one
///   overload count once. Below the configured rate permits are spaced
///   evenly, with no burst.
/// - Every process reads the learned rate with each permit it takes, in the
///   same round trip, so the others follow at once, without 429s of their
///   own.
/// - After 8 s ([`probe_after`](RedisLimiterBuilder::probe_after); twice
///   that after a probe met a 429) without a 429 one process raises it by
///   1, 2, 4, ... per window (each step at most a twentieth of the
///   configured rate) for all, up to the configured rate and never above it.
///
/// Each process shows the changes it saw in
/// [`rate_changes`](Limiter::rate_changes). A process that does not learn
/// keeps its configured rate whatever the others learned. What was learned
/// expires a minute after the last grant.
///
/// # Shared settings
///
/// Every process records the rate, burst and window it uses beside the
/// shared state (key `{key}:settings`, e.g. `rate=80/s burst=10 window=1s`;
/// `rate=80/s burst=10`, as earlier releases recorded it, means a window of
/// 1 s) and holds a lease on them (key `{key}:sharers`), renewed every 10 s
/// while it sends. The settings live as long as the last lease: the last
/// limiter of a process gives its lease back when it is dropped, so once
/// every sharer has stopped, a new rate is accepted at once; a process that
/// died holds its lease for 30 s more. The learned rate is not a setting:
/// processes with the same settings share it. A process whose settings
/// differ from those leased is refused: [`connect`](RedisLimiter::connect)
/// and [`check`](RedisLimiter::check) return
/// [`Error::SharedSettingsMismatch`] naming both, and it grants nothing,
/// unless it was built to
/// [`adopt_shared_settings`](RedisLimiterBuilder::adopt_shared_settings).
///
/// # When Redis refuses, or cannot be reached
///
/// A Redis that answers but refuses the limiter (a wrong password,
/// `NOAUTH`, a database it does not have, a certificate that is not
/// trusted, something that does not speak Redis, a key that holds
/// something else) is a setting to fix, not an outage: the limiter lets
/// its callers go at once without a permit, whatever [`WhenUnreachable`]
/// says, and [`connect`](RedisLimiter::connect) and
/// [`check`](RedisLimiter::check) fail with [`Error::RedisRefused`], naming
/// the setting (`redis_url` or `trust_ca`). A `Client` then fails its
/// requests without sending them, as it does for any error that trying
/// again will not fix.
///
/// A Redis that cannot be connected to, or whose connection is lost,
/// is away. Connecting and each command time out after 1 s
/// ([`timeout`](RedisLimiterBuilder::timeout)); then, as configured with
/// [`WhenUnreachable`], callers either wait for Redis, retrying with backoff
/// (the default: the budget is never overspent), wait at most a set time and
/// then fail their requests without sending them (for jobs that must end),
/// or fall back to a local bucket at a share of the rate until Redis answers
/// again. The first failure
/// of an outage is logged with `log::warn!`, the recovery with `log::info!`;
/// the Redis password never appears in logs, errors or `Debug`. A pause that
/// cannot reach Redis still holds this process.
///
/// Every wait (for Redis, a pause or a permit) ends within 100 ms once the
/// flag given to [`stop_when`](RedisLimiterBuilder::stop_when) is set: the
/// caller goes without a permit and [`check`](RedisLimiter::check) fails
/// with [`Error::Stopped`].
///
/// # Threads and cloning
///
/// `RedisLimiter` is `Send + Sync`. Clones share one pool of connections and
/// one fallback bucket: hand a clone to each thread. Separate processes share
/// the budget through Redis.
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisLimiter {
    shared: Arc<Shared>,
}

struct Shared {
    link: RedisLink,
    key: String,
    /// The limit and what the script is told of it; an adopted limit
    /// replaces the configured one.
    schedule: RwLock<Schedule>,
    /// When to record the settings again, and another process's refused.
    settings: Mutex<Settings>,
    /// Whether to take on another process's settings instead of refusing.
    adopt: bool,
    when_unreachable: WhenUnreachable,
    fallback: Option<TokenBucket>,
    /// When the last pause ends, also kept here: one that could not reach
    /// Redis still holds this process.
    paused_until: Mutex<Option<Instant>>,
    /// This process's name among the sharers of the settings.
    sharer: String,
    /// Set to end every wait: see [`RedisLimiterBuilder::stop_when`].
    stop: Option<Arc<AtomicBool>>,
    /// Whether to learn, and how long to hold a learned rate: what a law
    /// for adopted settings is built with.
    learning: bool,
    probe_after: Duration,
    /// What this process knows of the learning every process shares.
    following: Mutex<Following>,
    /// Answers accepted since this process last told Redis.
    accepted: AtomicU32,
    clock: Arc<dyn Clock>,
    /// When the limiter was built: rate changes are timed from it.
    origin: Instant,
}

#[derive(Clone, Copy)]
struct Schedule {
    limit: RateLimit,
    /// The learning law, its window and ceiling (the limit per window).
    law: Law,
    /// The arguments every script call starts with: the window, the
    /// ceiling, the burst, the margin, the linger, and whether to follow
    /// the learned limit, all in the script's units.
    params: [i64; 6],
}

impl Schedule {
    fn new(limit: RateLimit, law: Law) -> Schedule {
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

/// The shared learning, as this process last saw it in Redis.
struct Following {
    /// Bumped by every write in Redis; 0 before the first.
    generation: i64,
    course: Course,
    changes: Changes,
}

/// The shared learning as the script answers it.
#[derive(Clone, Copy)]
struct Seen {
    generation: i64,
    course: Course,
    /// What the server had accepted at the 429 that set the course; `None`
    /// after a probe.
    measured: Option<u32>,
}

impl Seen {
    /// Reads the script's `{generation, limit, quiet, since, peak, hold,
    /// measured}`, or `{0}`: nothing learned yet.
    fn read(answer: &[i64], law: &Law) -> Option<Seen> {
        let nanos = |value: i64| u64::try_from(value).ok();
        let permits = |value: i64| u32::try_from(value).ok();
        let rate = |value: i64| Some(permits(value)?.clamp(law.floor, law.ceiling));
        match *answer {
            [0] => Some(Seen {
                generation: 0,
                course: Course::new(law),
                measured: None,
            }),
            [generation, limit, quiet, since, peak, hold, measured] => Some(Seen {
                generation,
                course: Course {
                    limit: rate(limit)?,
                    quiet_until: nanos(quiet)?,
                    since: nanos(since)?,
                    peak: rate(peak)?,
                    hold: nanos(hold)?,
                },
                measured: permits(measured),
            }),
            _ => None,
        }
    }

    /// The arguments of the script's `learn`: the generation it was computed
    /// from, then the course.
    fn args(&self) -> [i64; 7] {
        let signed = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        let course = &self.course;
        [
            self.generation,
            i64::from(course.limit),
            signed(course.quiet_until),
            signed(course.since),
            i64::from(course.peak),
            signed(course.hold),
            self.measured.map_or(-1, i64::from),
        ]
    }
}

struct Settings {
    /// When this process records its settings again; `None`: before its
    /// first contact with Redis.
    next: Option<Instant>,
    /// The other settings recorded at the key, when they were refused.
    refused: Option<String>,
}

/// The settings as recorded in Redis, e.g. `rate=80/s burst=10 window=1s`:
/// exact, so that equal settings compare equal, and readable in `redis-cli`.
fn settings_text(limit: RateLimit, law: &Law) -> String {
    format!(
        "rate={}/s burst={} window={}s",
        limit.per_second(),
        limit.burst(),
        Duration::from_nanos(law.window).as_secs_f64()
    )
}

/// Reads [`settings_text`] back: the limit, and the window if it says one
/// (text recorded before the window was, `rate=80/s burst=10`, does not).
fn parse_settings(text: &str) -> Option<(RateLimit, Option<Duration>)> {
    let (rate, rest) = text.strip_prefix("rate=")?.split_once("/s burst=")?;
    let (burst, window) = match rest.split_once(" window=") {
        Some((burst, window)) => {
            let seconds: f64 = window.strip_suffix('s')?.parse().ok()?;
            (burst, Some(Duration::try_from_secs_f64(seconds).ok()?))
        }
        None => (rest, None),
    };
    let limit = RateLimit::new(rate.parse().ok()?, burst.parse().ok()?).ok()?;
    Some((limit, window))
}

/// What a [`RedisLimiter`] does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub enum WhenUnreachable {
    /// Grant nothing until Redis answers again: waiting callers try it every
    /// 50 ms at first, backing off to once a second. The shared budget is
    /// never overspent; the job stalls for as long as Redis is away (or
    /// until its [stop flag](RedisLimiterBuilder::stop_when) is set). The
    /// default. A Redis that refuses the limiter is not waited for, in any
    /// mode: see [`Error::RedisRefused`].
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
    /// Like [`Wait`](WhenUnreachable::Wait), but only this long from the
    /// first failure: past it, every caller is let go at once without a
    /// permit and [`Limiter::check`] fails with
    /// [`Error::RedisUnreachable`], so a `Client` fails its requests, as
    /// transient errors, without sending them, until Redis answers again.
    /// For jobs that must end (and be resumed) rather than hang through a
    /// long outage. Code that takes permits itself must call `check` after
    /// `acquire`, on the same thread, as the client does, or it would send
    /// without a permit; `check` fails for a caller let go even if Redis
    /// came back since.
    WaitAtMost(Duration),
}

/// Builds a [`RedisLimiter`]; [`build`](RedisLimiterBuilder::build) checks
/// the settings without connecting.
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub struct RedisLimiterBuilder {
    url: String,
    workspace: String,
    class: ApiClass,
    limit: RateLimit,
    key_prefix: String,
    when_unreachable: WhenUnreachable,
    timeout: Duration,
    clock: Arc<dyn Clock>,
    ca: Option<Vec<u8>>,
    adopt: bool,
    window: Option<Duration>,
    learning: bool,
    probe_after: Duration,
    stop: Option<Arc<AtomicBool>>,
}

impl RedisLimiterBuilder {
    /// Ends every wait of the limiter's callers, within 100 ms, once `stop`
    /// is set: for Redis to come back, for a pause to end, or for a permit.
    /// A caller let go that way has no permit, and
    /// [`check`](RedisLimiter::check) fails with [`Error::Stopped`]. For a
    /// program that stops cleanly on a signal: give it the flag the signal
    /// handler sets (an import's
    /// [`stop_when`](crate::import::ImporterBuilder::stop_when) flag).
    pub fn stop_when(mut self, stop: Arc<AtomicBool>) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The server's window, over which what it accepted is counted and a
    /// learned limit is set; default 1 s, or `1 / rate` for rates below 1
    /// per second. Part of the settings every process sharing the key must
    /// agree on.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// Whether 429s teach every process sharing the key the workspace's
    /// real limit; default `true`. Off, this process keeps its configured
    /// rate (the ceiling of those that learn) and a 429 only pauses.
    pub fn learning(mut self, learning: bool) -> Self {
        self.learning = learning;
        self
    }

    /// How long a learned rate holds without a 429 before the processes
    /// probe above it; default 8 s (twice that after a probe met a 429).
    pub fn probe_after(mut self, hold: Duration) -> Self {
        self.probe_after = hold;
        self
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM
    /// certificates), and only them, for a `rediss://` URL: for a Redis
    /// whose certificate a private CA signed, as managed services often do.
    /// Without it, `rediss://` trusts the system's root certificates.
    ///
    /// ```no_run
    /// use cio_ratelimit::{ApiClass, RateLimit};
    /// use cio_ratelimit::limit::RedisLimiter;
    ///
    /// let ca = std::fs::read("/etc/ssl/private-redis-ca.pem")?;
    /// let limiter = RedisLimiter::builder(RateLimit::TRACK_API)
    ///     .url("rediss://:password@redis.internal:6380/0")
    ///     .workspace("site-id")
    ///     .class(ApiClass::Track)
    ///     .trust_ca(ca)
    ///     .build()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn trust_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca = Some(pem.into());
        self
    }

    /// The Redis to keep the budget in: `redis://[:password@]host[:port][/db]`,
    /// `rediss://…` for TLS, or `redis+unix:///path`. Required.
    pub fn url(mut self, redis_url: impl Into<String>) -> Self {
        self.url = redis_url.into();
        self
    }

    /// The name every process sending to the workspace agrees on, e.g. its
    /// site id; part of the key. Required.
    pub fn workspace(mut self, workspace: impl Into<String>) -> Self {
        self.workspace = workspace.into();
        self
    }

    /// The API class whose budget this is; default [`ApiClass::Track`].
    pub fn class(mut self, class: ApiClass) -> Self {
        self.class = class;
        self
    }

    /// The first part of the Redis key; default `cio-ratelimit`. The key is
    /// `{prefix}:{workspace}:{class}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// Whether this process takes on the settings (rate, burst and window) another
    /// process recorded beside the shared state when they differ from its
    /// own; default `false`: it refuses to share the key, and
    /// [`connect`](RedisLimiter::connect) (or, when first used,
    /// [`Limiter::check`]) fails with [`Error::SharedSettingsMismatch`]
    /// naming both. An adopted limit is logged and shown by
    /// [`limit`](RedisLimiter::limit); the fallback keeps its share of the
    /// configured one.
    pub fn adopt_shared_settings(mut self, adopt: bool) -> Self {
        self.adopt = adopt;
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
    /// default [`SystemClock`]. The log is always timed by the Redis server.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings and builds the limiter. It connects when first used.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a URL the Redis client
    /// cannot use (shown without its password), a `rediss://` URL with
    /// `#insecure`, a CA to trust without `rediss://` or with no PEM
    /// certificate in it, an empty workspace or key prefix, a zero timeout,
    /// a fallback share outside (0, 1], a window too short for one permit
    /// at the rate (zero, or under `1 / rate`), or a zero `probe_after`.
    pub fn build(self) -> Result<RedisLimiter> {
        let law = Law::new(
            self.limit,
            self.window,
            None,
            self.probe_after,
            self.learning,
        )?;
        let client = redis_link::open(&self.url, self.ca.as_deref()).map_err(|refused| {
            match refused {
                Refused::Url(shown) => Error::invalid(
                    "redis_url",
                    shown,
                    "a redis://, rediss:// or redis+unix:// URL, e.g. rediss://:password@host:6380/0",
                ),
                Refused::Insecure(shown) => Error::invalid(
                    "redis_url",
                    shown,
                    "a rediss:// URL that checks the server's certificate (no #insecure)",
                ),
                Refused::CaWithoutTls(shown) => Error::invalid(
                    "redis_url",
                    shown,
                    "a rediss:// URL: a CA to trust needs TLS",
                ),
                Refused::Ca(reason) => Error::invalid(
                    "trust_ca",
                    reason,
                    "PEM certificates (-----BEGIN CERTIFICATE-----)",
                ),
            }
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
            WhenUnreachable::WaitAtMost(_) => (None, "waiting for it, up to a set time"),
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
                schedule: RwLock::new(Schedule::new(self.limit, law)),
                settings: Mutex::new(Settings {
                    next: None,
                    refused: None,
                }),
                adopt: self.adopt,
                when_unreachable: self.when_unreachable,
                fallback,
                paused_until: Mutex::new(None),
                sharer: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
                stop: self.stop,
                learning: self.learning,
                probe_after: self.probe_after,
                following: Mutex::new(Following {
                    generation: 0,
                    course: Course::new(&law),
                    changes: Changes::default(),
                }),
                accepted: AtomicU32::new(0),
                origin: self.clock.now(),
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
            .field("trust_ca", &self.ca.is_some())
            .field("adopt_shared_settings", &self.adopt)
            .field("window", &self.window)
            .field("learning", &self.learning)
            .field("probe_after", &self.probe_after)
            .field("stop_when", &self.stop.is_some())
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

thread_local! {
    /// The limiter (its [`id`](RedisLimiter::id)) that let this thread's
    /// last caller go without a permit, and why: its
    /// [`check`](RedisLimiter::check) fails even if Redis is back.
    static LET_GO: Cell<(usize, LetGo)> = const { Cell::new((0, LetGo::Unreachable)) };
    /// The limiter whose permits this thread holds, and how many, until
    /// their answers are reported: an answer from a thread that holds none
    /// (its caller was let go) answers nobody's grant.
    static HELD: Cell<(usize, u32)> = const { Cell::new((0, 0)) };
}

/// Why a caller was let go without a permit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LetGo {
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
    /// Starts building a limiter at `limit`; give it the Redis
    /// ([`url`](RedisLimiterBuilder::url)) and the
    /// [`workspace`](RedisLimiterBuilder::workspace), and optionally the
    /// [`class`](RedisLimiterBuilder::class).
    pub fn builder(limit: RateLimit) -> RedisLimiterBuilder {
        RedisLimiterBuilder {
            url: String::new(),
            workspace: String::new(),
            class: ApiClass::Track,
            limit,
            key_prefix: "cio-ratelimit".to_owned(),
            when_unreachable: WhenUnreachable::Wait,
            timeout: Duration::from_secs(1),
            clock: Arc::new(SystemClock),
            ca: None,
            adopt: false,
            window: None,
            learning: true,
            probe_after: Duration::from_secs(8),
            stop: None,
        }
    }

    /// The Redis key holding the shared state.
    pub fn key(&self) -> &str {
        &self.shared.key
    }

    /// The shared limit: the configured one, or the one adopted from
    /// another process (see
    /// [`adopt_shared_settings`](RedisLimiterBuilder::adopt_shared_settings)).
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
    /// when learning (as last seen in Redis), else the limit's.
    pub fn rate(&self) -> f64 {
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

    /// Runs the law on the shared course and stores what it changed,
    /// compare-and-set: when another process changed it first, the law
    /// runs again on theirs, where this 429 is usually already counted.
    fn learn_from_429(&self, pause: Duration) -> std::result::Result<(), ()> {
        let law = self.shared.schedule.read().law;
        let (now, measured, mut seen) =
            self.run_reporting("measure", &[], |answer| match *answer {
                [now, measured, ref seen @ ..] => Some((
                    micros_to_nanos(now),
                    u32::try_from(measured).ok()?,
                    Seen::read(seen, &law)?,
                )),
                _ => None,
            })?;
        let pause = duration_nanos(pause);
        // Each round either stores, or sees another process's newer course.
        for _ in 0..4 {
            self.follow(seen);
            let mut course = seen.course;
            // The shared delivery is a measurement once this process has
            // been counting for a window.
            let young = self
                .shared
                .clock
                .now()
                .saturating_duration_since(self.shared.origin)
                < Duration::from_nanos(law.window);
            let throttle = course.throttled(&law, now, pause, measured, young);
            if throttle == Throttle::Counted {
                return Ok(());
            }
            match self.store(seen.generation, course, Some(measured))? {
                None => return Ok(()),
                Some(theirs) => seen = theirs,
            }
        }
        Ok(())
    }

    /// Probes above the shared limit if it is time: one process raises it
    /// for all, the others see it raised.
    fn probe(&self, now: u64) {
        let law = self.shared.schedule.read().law;
        let (generation, mut course) = {
            let following = self.shared.following.lock();
            (following.generation, following.course)
        };
        if course.probe(&law, now) {
            // A failure is logged by the link; the next permit probes again.
            let _ = self.store(generation, course, None);
        }
    }

    /// Stores `course`, computed from `generation`, if nobody changed it since:
    /// `None` when stored, or the course another process stored.
    fn store(
        &self,
        generation: i64,
        course: Course,
        measured: Option<u32>,
    ) -> std::result::Result<Option<Seen>, ()> {
        let law = self.shared.schedule.read().law;
        let ours = Seen {
            generation,
            course,
            measured,
        };
        let stored = self.run("learn", &ours.args(), |answer| match *answer {
            [1, generation] => Some(Ok(generation)),
            [0, ref seen @ ..] => Some(Err(Seen::read(seen, &law)?)),
            _ => None,
        })?;
        match stored {
            Ok(generation) => {
                self.follow(Seen { generation, ..ours });
                Ok(None)
            }
            Err(theirs) => {
                self.follow(theirs);
                Ok(Some(theirs))
            }
        }
    }

    /// Takes on the shared course, telling the user when it changed the rate.
    fn follow(&self, seen: Seen) {
        let law = self.shared.schedule.read().law;
        let mut following = self.shared.following.lock();
        if seen.generation == following.generation {
            return;
        }
        let from = following.course.limit;
        (following.generation, following.course) = (seen.generation, seen.course);
        if seen.course.limit != from {
            let at = self
                .shared
                .clock
                .now()
                .saturating_duration_since(self.shared.origin);
            following.changes.push(RateChange {
                at,
                from: law.per_second(from),
                to: law.per_second(seen.course.limit),
                throttled_at: seen
                    .measured
                    .filter(|_| seen.course.limit < from)
                    .map(|measured| law.per_second(measured)),
            });
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

    fn refused(&self, refusal: Refusal) -> Error {
        Error::RedisRefused {
            url: self.shared.link.shown().to_owned(),
            setting: refusal.setting,
            reason: refusal.reason,
        }
    }

    fn unreachable(&self, waited: Duration) -> Error {
        Error::RedisUnreachable {
            url: self.shared.link.shown().to_owned(),
            waited,
        }
    }

    /// How long Redis has been unreachable, while an outage goes on.
    pub fn unreachable_for(&self) -> Option<Duration> {
        self.shared.link.down_for()
    }

    /// Records this process's settings when due (or `now`), adopting or
    /// refusing others'. `Err` if Redis failed (already logged).
    fn register(&self, now: bool) -> std::result::Result<(), ()> {
        let shared = &self.shared;
        let due = shared.clock.now();
        if !now && shared.settings.lock().next.is_some_and(|next| due < next) {
            return Ok(());
        }
        let schedule = *shared.schedule.read();
        let ours = settings_text(schedule.limit, &schedule.law);
        let (key, sharers) = settings_keys(&shared.key);
        let recorded = shared
            .link
            .register(&key, &sharers, &shared.sharer, &ours, LEASE)?;
        let mut settings = shared.settings.lock();
        settings.next = Some(due + SETTINGS_REFRESH);
        settings.refused = None;
        if recorded == ours {
            return Ok(());
        }
        let theirs = parse_settings(&recorded).and_then(|(limit, window)| {
            let law = Law::new(limit, window, None, shared.probe_after, shared.learning);
            Some((limit, law.ok()?))
        });
        match theirs {
            // The same settings, as a process recorded them before the
            // window was part of the text.
            Some((limit, law)) if limit == schedule.limit && law.window == schedule.law.window => {}
            Some((limit, law)) if shared.adopt => {
                log::warn!(
                    "Redis key {} is shared at {recorded}; adopting it instead of {ours}",
                    shared.key
                );
                *shared.schedule.write() = Schedule::new(limit, law);
                let mut following = shared.following.lock();
                (following.generation, following.course) = (0, Course::new(&law));
                // Record them as ours at once, keeping them alive.
                settings.next = None;
            }
            _ => settings.refused = Some(recorded),
        }
        Ok(())
    }

    /// The error a refused process fails with.
    fn refusal(&self) -> Option<Error> {
        let shared = &self.shared;
        let refused = shared.settings.lock().refused.clone()?;
        Some(Error::SharedSettingsMismatch {
            key: shared.key.clone(),
            shared: refused,
            ours: self.settings(),
        })
    }

    /// Whether permits may be used: see [`Limiter::check`].
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
    fn id(&self) -> usize {
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

    fn run<T>(
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
    fn run_reporting<T>(
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
    fn let_go(&self, why: LetGo) -> bool {
        LET_GO.with(|let_go| let_go.set((self.id(), why)));
        false
    }

    /// One permit, waiting until `deadline` (`None`: as long as it takes).
    fn take(&self, deadline: Option<Instant>) -> bool {
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

/// The keys of the settings and of the leases on them, beside `key`.
fn settings_keys(key: &str) -> (String, String) {
    (format!("{key}:settings"), format!("{key}:sharers"))
}

impl Drop for Shared {
    /// The last clone gives the lease on the shared settings back: once
    /// every sharer has, another rate may use the key at once.
    fn drop(&mut self) {
        let settings = self.settings.get_mut();
        if settings.next.is_none() || settings.refused.is_some() || self.link.is_down() {
            return;
        }
        let (key, sharers) = settings_keys(&self.key);
        self.link.release(&key, &sharers, &self.sharer);
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

/// Microseconds of the Redis server's clock as the law's nanoseconds.
fn micros_to_nanos(micros: i64) -> u64 {
    u64::try_from(micros).unwrap_or(0).saturating_mul(1_000)
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
        Some(RedisLimiter::rate(self))
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
            .field("rate_in_force", &self.rate())
            .field("when_unreachable", &shared.when_unreachable)
            .field("unreachable", &shared.link.is_down())
            .finish_non_exhaustive()
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

    fn law(limit: RateLimit) -> Law {
        Law::new(limit, None, None, Duration::from_secs(20), true).unwrap()
    }

    #[test]
    fn settings_read_back_with_or_without_the_window() {
        let limit = RateLimit::new(80.0, 10).unwrap();
        let text = settings_text(limit, &law(limit));
        assert_eq!(text, "rate=80/s burst=10 window=1s");
        assert_eq!(
            parse_settings(&text),
            Some((limit, Some(Duration::from_secs(1))))
        );
        assert_eq!(parse_settings("rate=80/s burst=10"), Some((limit, None)));
        let slow = RateLimit::new(0.4, 1).unwrap();
        let text = settings_text(slow, &law(slow));
        assert_eq!(text, "rate=0.4/s burst=1 window=2.5s");
        assert_eq!(
            parse_settings(&text),
            Some((slow, Some(Duration::from_millis(2_500))))
        );
        for garbage in [
            "",
            "rate=80/s",
            "rate=x/s burst=10",
            "rate=80/s burst=10 window=1",
            "rate=80/s burst=10 window=-1s",
            "rate=80/s burst=0",
        ] {
            assert_eq!(parse_settings(garbage), None, "{garbage:?}");
        }
    }

    #[test]
    fn a_shared_course_reads_back_as_written_and_garbage_is_refused() {
        let law = law(RateLimit::new(80.0, 10).unwrap());
        let seen = Seen {
            generation: 3,
            course: Course {
                limit: 38,
                quiet_until: 1_700_000_000_000_000_000,
                since: 1_700_000_001_000_000_000,
                peak: 38,
                hold: 12_000_000_000,
            },
            measured: Some(40),
        };
        let args = seen.args();
        let read = Seen::read(&args, &law).unwrap();
        assert_eq!(
            (read.generation, read.course, read.measured),
            (3, seen.course, Some(40))
        );
        let nothing = Seen::read(&[0], &law).unwrap();
        assert_eq!((nothing.generation, nothing.course), (0, Course::new(&law)));
        let mut above = args;
        above[1] = 500;
        assert_eq!(
            Seen::read(&above, &law).unwrap().course.limit,
            80,
            "never above the ceiling"
        );
        assert!(Seen::read(&[1, 2, 3], &law).is_none());
        assert!(Seen::read(&[1, 2, 3, 4, 5, 6, 7, 8], &law).is_none());
        let mut negative = args;
        negative[2] = -5;
        assert!(Seen::read(&negative, &law).is_none());
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
