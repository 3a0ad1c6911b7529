//! `RedisLimiterBuilder`: the settings, checked without connecting.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::limit::clock::{Clock, SystemClock};
use crate::limit::learning::{Changes, Course, Law};
use crate::limit::rate_limit::RateLimit;
use crate::limit::token_bucket::TokenBucket;

use super::limiter::{RedisLimiter, Schedule, Shared};
use super::link::{self, RedisLink, Refused};
use super::settings::Settings;
use super::shared_learning::Following;
use super::when_unreachable::WhenUnreachable;

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

    /// How long the server's rate, learned from a 429, holds without a 429
    /// before the processes probe above it; default 12 s (see
    /// [`SlidingWindow`](crate::SlidingWindow): the same law).
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
    /// [`Limiter::check`](crate::Limiter::check)) fails with [`Error::SharedSettingsMismatch`]
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
        let client = link::open(&self.url, self.ca.as_deref()).map_err(|refused| {
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
                let bucket = TokenBucket::with_clock(local, self.clock.clone());
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
                    include_str!("limiter.lua"),
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
            .field("url", &link::redact(&self.url))
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
            probe_after: Duration::from_secs(12),
            stop: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_the_class_in_lower_case() {
        let names: Vec<&str> = ApiClass::ALL.iter().map(|c| class_name(*c)).collect();
        assert_eq!(
            names,
            ["track", "transactional", "app", "broadcast", "pipelines"]
        );
    }
}
