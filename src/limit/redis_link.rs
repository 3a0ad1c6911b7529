//! The connection behind a `RedisLimiter`: a small pool of blocking
//! connections, the limiter's script, timeouts, outages told once, and URLs
//! shown without their password.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::limit::clock::Clock;

/// Idle connections kept for reuse; more threads than this open their own.
const MAX_IDLE: usize = 16;
/// The first retry after a failure; each further failure doubles it.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// The longest gap between two attempts to reach Redis during an outage.
const MAX_RETRY: Duration = Duration::from_secs(1);

pub(crate) struct RedisLink {
    client: redis::Client,
    script: redis::Script,
    /// Records a process's settings beside the shared state.
    settings_script: redis::Script,
    idle: Mutex<Vec<redis::Connection>>,
    timeout: Duration,
    /// The URL as logs and `Debug` show it: no user name, no password.
    shown: String,
    /// The password, scrubbed from any error text that might echo it.
    password: Option<String>,
    /// What the limiter does while Redis is away, for the warning.
    meanwhile: &'static str,
    outage: Mutex<Option<Outage>>,
    clock: Arc<dyn Clock>,
}

struct Outage {
    since: Instant,
    failures: u32,
    /// No attempt to reach Redis before this, except by the caller that claims it.
    next_try: Instant,
}

/// The URL, parsed, or the reason it is refused (without its password).
/// `ca`: PEM certificates to trust instead of the system's roots, for a
/// `rediss://` URL.
pub(crate) fn open(url: &str, ca: Option<&[u8]>) -> Result<redis::Client, Refused> {
    let client = redis::Client::open(url).map_err(|_| Refused::Url(redact(url)))?;
    let tls = match client.get_connection_info().addr() {
        redis::ConnectionAddr::TcpTls { insecure: true, .. } => {
            return Err(Refused::Insecure(redact(url)));
        }
        redis::ConnectionAddr::TcpTls { .. } => true,
        _ => false,
    };
    let ca = match ca {
        None => return Ok(client),
        Some(_) if !tls => return Err(Refused::CaWithoutTls(redact(url))),
        Some(ca) => ca,
    };
    if !ca
        .windows(b"-----BEGIN CERTIFICATE-----".len())
        .any(|window| window == b"-----BEGIN CERTIFICATE-----")
    {
        return Err(Refused::Ca("no PEM certificate in it".to_owned()));
    }
    let certificates = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.to_vec()),
    };
    redis::Client::build_with_tls(client.get_connection_info().clone(), certificates)
        .map_err(|error| Refused::Ca(error.to_string()))
}

/// Why [`open`] refused its settings.
#[derive(Debug)]
pub(crate) enum Refused {
    /// Not a URL the Redis client can use (shown without its password).
    Url(String),
    /// A `rediss://` URL that turns off certificate checks.
    Insecure(String),
    /// A CA to trust, for a URL that does not use TLS.
    CaWithoutTls(String),
    /// CA certificates that cannot be used, and why.
    Ca(String),
}

pub(crate) use crate::error::redact_url as redact;

impl RedisLink {
    pub(crate) fn new(
        client: redis::Client,
        script: &'static str,
        timeout: Duration,
        meanwhile: &'static str,
        clock: Arc<dyn Clock>,
    ) -> RedisLink {
        let info = client.get_connection_info();
        let shown = match info.addr() {
            redis::ConnectionAddr::Tcp(host, port) => {
                format!("redis://{host}:{port}/{}", info.redis_settings().db())
            }
            redis::ConnectionAddr::TcpTls { host, port, .. } => {
                format!("rediss://{host}:{port}/{}", info.redis_settings().db())
            }
            redis::ConnectionAddr::Unix(path) => format!("redis+unix://{}", path.display()),
            other => other.to_string(),
        };
        let password = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        RedisLink {
            client,
            script: redis::Script::new(script),
            settings_script: redis::Script::new(include_str!("redis_settings.lua")),
            idle: Mutex::new(Vec::new()),
            timeout,
            shown,
            password,
            meanwhile,
            outage: Mutex::new(None),
            clock,
        }
    }

    /// The URL without its credentials.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Whether an outage is going on.
    pub(crate) fn is_down(&self) -> bool {
        self.outage.lock().is_some()
    }

    /// `None` when Redis may be tried now (no outage, or this caller claims
    /// the next attempt of one); otherwise when the next attempt is due.
    pub(crate) fn next_try(&self) -> Option<Instant> {
        let now = self.clock.now();
        let mut outage = self.outage.lock();
        let outage = outage.as_mut()?;
        if now < outage.next_try {
            return Some(outage.next_try);
        }
        // Claimed: the other callers wait for this attempt or the next one.
        outage.next_try = now + retry_delay(outage.failures);
        None
    }

    /// Runs the script's `op` on `key` with `args`, and reads its answer
    /// with `read`. `Err` (already logged) if Redis could not be reached,
    /// failed, or answered something `read` refuses.
    pub(crate) fn run<T>(
        &self,
        key: &str,
        op: &str,
        args: &[i64],
        read: impl FnOnce(&[i64]) -> Option<T>,
    ) -> Result<T, ()> {
        let mut invocation = self.script.key(key);
        invocation.arg(op);
        for arg in args {
            invocation.arg(*arg);
        }
        let answer = self.invoke::<Vec<i64>>(&invocation);
        self.read(answer, |answer| {
            read(answer).ok_or_else(|| format!("unexpected answer {answer:?}"))
        })
    }

    /// Records `ours`, the settings of a process, at `key` for `linger` if
    /// none are recorded there (or the same are), and returns the settings
    /// recorded there. `Err` (already logged) if Redis could not be reached.
    pub(crate) fn register(&self, key: &str, ours: &str, linger: Duration) -> Result<String, ()> {
        let mut invocation = self.settings_script.key(key);
        invocation
            .arg(ours)
            .arg(u64::try_from(linger.as_millis()).unwrap_or(u64::MAX));
        let answer = self.invoke::<String>(&invocation);
        self.read(answer, |answer| Ok(answer.clone()))
    }

    /// How long the current outage has lasted, if one is going on.
    pub(crate) fn down_for(&self) -> Option<Duration> {
        let since = self.outage.lock().as_ref()?.since;
        Some(self.clock.now().saturating_duration_since(since))
    }

    /// Runs a script on a pooled connection, which goes back to the pool
    /// once it has answered.
    fn invoke<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<T> {
        let mut connection = self.connection()?;
        let answer = invocation.invoke::<T>(&mut connection)?;
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        Ok(answer)
    }

    /// Reads an answer, noting an outage's start or end.
    fn read<A, T>(
        &self,
        answer: redis::RedisResult<A>,
        read: impl FnOnce(&A) -> Result<T, String>,
    ) -> Result<T, ()> {
        let read = match answer {
            Ok(answer) => read(&answer),
            Err(err) => Err(self.scrub(&err.to_string())),
        };
        match read {
            Ok(value) => {
                self.recovered();
                Ok(value)
            }
            Err(reason) => {
                self.failed(&reason);
                Err(())
            }
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        if let Some(connection) = self.idle.lock().pop() {
            return Ok(connection);
        }
        let connection = self.client.get_connection_with_timeout(self.timeout)?;
        connection.set_read_timeout(Some(self.timeout))?;
        connection.set_write_timeout(Some(self.timeout))?;
        Ok(connection)
    }

    fn failed(&self, reason: &str) {
        // Pooled connections to a server that went away are all dead.
        self.idle.lock().clear();
        let now = self.clock.now();
        let mut outage = self.outage.lock();
        match outage.as_mut() {
            Some(outage) => {
                outage.failures = outage.failures.saturating_add(1);
                outage.next_try = outage.next_try.max(now + retry_delay(outage.failures));
            }
            None => {
                log::warn!(
                    "Redis at {} is unreachable ({reason}); {}",
                    self.shown,
                    self.meanwhile
                );
                *outage = Some(Outage {
                    since: now,
                    failures: 1,
                    next_try: now + retry_delay(1),
                });
            }
        }
    }

    fn recovered(&self) {
        let mut outage = self.outage.lock();
        if let Some(ended) = outage.take() {
            log::info!(
                "Redis at {} is reachable again after {:.1?}; the shared limit applies again",
                self.shown,
                self.clock.now().saturating_duration_since(ended.since)
            );
        }
    }

    fn scrub(&self, text: &str) -> String {
        match &self.password {
            Some(password) => text.replace(password.as_str(), "***"),
            None => text.to_owned(),
        }
    }
}

/// 50 ms, 100 ms, 200 ms, … up to 1 s, each ±20 % so that processes spread out.
fn retry_delay(failures: u32) -> Duration {
    let doubled = FIRST_RETRY.saturating_mul(1 << failures.saturating_sub(1).min(10));
    doubled.min(MAX_RETRY).mul_f64(0.8 + 0.4 * fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_user_and_password_even_in_urls_that_do_not_parse() {
        assert_eq!(
            redact("redis://user:s3cret@host:6379/0"),
            "redis://***@host:6379/0"
        );
        assert_eq!(redact("redis://:p@ss@host"), "redis://***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
        assert_eq!(redact("not a url @ all"), "not a url @ all");
    }

    #[test]
    fn retries_back_off_from_50_ms_to_at_most_1_s() {
        assert!((40..=60).contains(&retry_delay(1).as_millis()));
        assert!((80..=120).contains(&retry_delay(2).as_millis()));
        for failures in [6, 11, 40, u32::MAX] {
            assert!((800..=1200).contains(&retry_delay(failures).as_millis()));
        }
    }
}
