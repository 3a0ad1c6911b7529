//! The connection behind a `RedisLimiter`: a small pool of blocking
//! connections, the limiter's script, timeouts, outages told once, a Redis
//! that refuses the limiter told apart from one that is away, and URLs
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
    /// Why Redis refused the last command, if it did: a setting to fix.
    refused: Mutex<Option<Refusal>>,
    /// Whether the URL is `rediss://`: a TLS failure names the CA.
    tls: bool,
    clock: Arc<dyn Clock>,
}

/// Redis answered, but refused this limiter: a wrong password, a database
/// it does not have, a certificate that is not trusted, something that is
/// not Redis. Waiting does not help; fixing the setting does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The builder setting to fix: `redis_url` or `trust_ca`.
    pub(crate) setting: &'static str,
    /// What Redis (or the TLS handshake) said, without the password.
    pub(crate) reason: String,
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
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        let password = info
            .redis_settings()
            .password()
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        RedisLink {
            client,
            script: redis::Script::new(script),
            settings_script: redis::Script::new(include_str!("settings.lua")),
            idle: Mutex::new(Vec::new()),
            timeout,
            shown,
            password,
            meanwhile,
            outage: Mutex::new(None),
            refused: Mutex::new(None),
            tls,
            clock,
        }
    }

    /// The URL without its credentials.
    pub(crate) fn shown(&self) -> &str {
        &self.shown
    }

    /// Why Redis refused the last command, if it did.
    pub(crate) fn refusal(&self) -> Option<Refusal> {
        self.refused.lock().clone()
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

    /// Records `ours`, the settings of a process, at `key` and takes (or
    /// renews) a lease of `lease` on them for `sharer`, in `sharers`, if none
    /// are recorded there (or the same are); returns the settings recorded
    /// there. `Err` (already logged) if Redis could not be reached.
    pub(crate) fn register(
        &self,
        key: &str,
        sharers: &str,
        sharer: &str,
        ours: &str,
        lease: Duration,
    ) -> Result<String, ()> {
        let mut invocation = self.settings_script.key(key);
        invocation
            .key(sharers)
            .arg("register")
            .arg(sharer)
            .arg(ours)
            .arg(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
        let answer = self.invoke::<String>(&invocation);
        self.read(answer, |answer| Ok(answer.clone()))
    }

    /// Gives `sharer`'s lease on the settings at `key` back: with the last
    /// lease, the settings go. Quietly, once: a process on its way out.
    pub(crate) fn release(&self, key: &str, sharers: &str, sharer: &str) {
        let mut invocation = self.settings_script.key(key);
        invocation.key(sharers).arg("release").arg(sharer);
        if let Err(err) = self.invoke::<i64>(&invocation) {
            log::debug!(
                "Redis at {}: the lease on the shared settings was not given back ({}); \
                 it runs out by itself",
                self.shown,
                self.scrub(&err.to_string())
            );
        }
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

    /// Reads an answer, noting an outage's start or end, or a refusal.
    fn read<A, T>(
        &self,
        answer: redis::RedisResult<A>,
        read: impl FnOnce(&A) -> Result<T, String>,
    ) -> Result<T, ()> {
        let read = match answer {
            Ok(answer) => read(&answer).map_err(|reason| (reason, true)),
            Err(err) => Err((self.scrub(&err.to_string()), is_away(&err))),
        };
        match read {
            Ok(value) => {
                self.recovered();
                Ok(value)
            }
            Err((reason, true)) => {
                self.failed(&reason);
                Err(())
            }
            Err((reason, false)) => {
                self.refuse(reason);
                Err(())
            }
        }
    }

    /// Redis answered, but refuses this limiter: told once, until it
    /// answers again. Not an outage: nobody waits for it.
    fn refuse(&self, reason: String) {
        self.idle.lock().clear();
        *self.outage.lock() = None;
        let setting = if self.tls && is_tls(&reason) {
            "trust_ca"
        } else {
            "redis_url"
        };
        let mut refused = self.refused.lock();
        if refused.as_ref().map(|r| &r.reason) != Some(&reason) {
            log::error!(
                "Redis at {} refuses this limiter ({reason}); check the {}",
                self.shown,
                match setting {
                    "trust_ca" => "CA trusted for it and the rediss:// URL",
                    _ => "URL: its password, database and scheme",
                }
            );
        }
        *refused = Some(Refusal { setting, reason });
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
        *self.refused.lock() = None;
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
        *self.refused.lock() = None;
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

/// Whether a failed command means Redis is away for now (it cannot be
/// connected to, the connection was lost or timed out, or it is loading,
/// failing over or out of memory), not that it refuses this limiter.
fn is_away(err: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    match err.kind() {
        // A TLS handshake that failed, or something that does not speak
        // Redis's protocol: a setting, not an outage.
        ErrorKind::Io => io_kind(err) != Some(std::io::ErrorKind::InvalidData),
        ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::ReadOnly,
        ) => true,
        _ => matches!(err.code(), Some("OOM" | "BUSY" | "LOADING" | "MASTERDOWN")),
    }
}

/// The kind of the I/O error behind a Redis error, if there is one.
fn io_kind(err: &redis::RedisError) -> Option<std::io::ErrorKind> {
    let source = std::error::Error::source(err)?;
    if let Some(io) = source.downcast_ref::<std::io::Error>() {
        return Some(io.kind());
    }
    let shared = source.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()?;
    shared
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
}

/// Whether a refusal's text is the TLS handshake's.
fn is_tls(reason: &str) -> bool {
    let reason = reason.to_lowercase();
    [
        "certificate",
        "tls",
        "handshake",
        "unknownissuer",
        "corrupt message",
    ]
    .iter()
    .any(|word| reason.contains(word))
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
    fn an_outage_is_told_apart_from_a_refusal() {
        use redis::{ErrorKind, RedisError, ServerErrorKind};
        use std::io;
        let io = |kind| RedisError::from(io::Error::new(kind, "from the socket"));
        for away in [
            io(io::ErrorKind::ConnectionRefused),
            io(io::ErrorKind::ConnectionReset),
            io(io::ErrorKind::UnexpectedEof),
            io(io::ErrorKind::TimedOut),
            io(io::ErrorKind::WouldBlock),
            RedisError::from((ErrorKind::Server(ServerErrorKind::BusyLoading), "loading")),
            RedisError::from((ErrorKind::Server(ServerErrorKind::ReadOnly), "failover")),
        ] {
            assert!(is_away(&away), "{away:?}");
        }
        for refusal in [
            // rustls reports a certificate it does not trust as InvalidData.
            io(io::ErrorKind::InvalidData),
            RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS")),
            RedisError::from((
                ErrorKind::Server(ServerErrorKind::ResponseError),
                "DB index is out of range",
            )),
            RedisError::from((ErrorKind::Parse, "not Redis's protocol")),
        ] {
            assert!(!is_away(&refusal), "{refusal:?}");
        }
        assert!(is_tls("invalid peer certificate: UnknownIssuer"));
        assert!(!is_tls("WRONGPASS invalid username-password pair"));
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
