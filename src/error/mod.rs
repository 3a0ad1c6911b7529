//! The crate's one error type, and what its variants carry.
//!
//! # Overview
//!
//! - [`Error`] and [`Result`] (both also at the crate root): every fallible
//!   call in the crate returns them. [`Error::is_transient`] tells whether
//!   trying again later may help.
//! - [`Invalid`]: why input breaks Customer.io's limits; nothing was sent.
//! - [`ItemError`]: one item of a batch the server rejected.
//! - [`Credential`], [`TimeoutKind`], [`TransportKind`]: which key was
//!   refused, which timeout fired, how the connection failed.
//!
//! A leaf: this room uses nothing else in the crate but [`Region`], so every
//! room may return its errors.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub(crate) mod invalid;
pub(crate) mod item_error;

pub use invalid::Invalid;
pub use item_error::ItemError;

use crate::region::Region;

/// What can go wrong in this crate.
///
/// Each variant carries structured data rather than a string, so a program can
/// decide what to do without parsing messages. No variant, and no `Display`
/// or `Debug` output, ever contains an API key.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is out of range; nothing was built.
    InvalidConfig {
        /// The setting at fault, e.g. `"rate_per_sec"`.
        setting: &'static str,
        /// The value that was given, as text.
        value: String,
        /// What the setting accepts.
        expected: &'static str,
    },
    /// More permits were asked for at once than the bucket's burst can ever
    /// grant. Waiting would never end, so the call fails at once.
    BurstExceeded {
        /// Permits asked for.
        requested: u32,
        /// The most permits the bucket grants at once.
        burst: u32,
    },
    /// The input breaks one of Customer.io's limits; nothing was sent.
    Invalid(Invalid),
    /// Customer.io answered with an error status (after any retries).
    Status {
        /// The HTTP status.
        status: u16,
        /// Customer.io's own message, from its error body, if it gave one.
        message: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// Customer.io accepted a batch but rejected some of its items (HTTP 207).
    ItemsRejected(Vec<ItemError>),
    /// Customer.io refused the credentials (401 or 403). Never retried: stop
    /// and fix the credential named here.
    Unauthorized {
        /// 401 or 403.
        status: u16,
        /// Which credential was refused.
        credential: Credential,
    },
    /// The workspace lives in another region: Customer.io answered
    /// `301 wrong datacenter`. The redirect is not followed, so that data and
    /// keys go only where they were configured to go.
    WrongRegion {
        /// The region to configure instead.
        use_region: Region,
    },
    /// The call needs a credential the client was built without, e.g. an App
    /// API call on a client with only Track credentials. Nothing was sent.
    MissingCredential(Credential),
    /// The request timed out (after any retries).
    Timeout(TimeoutKind),
    /// Customer.io answered with success, but with a body this crate could
    /// not read: a receipt or a list of rejected batch items.
    Unreadable {
        /// The HTTP status.
        status: u16,
        /// What could not be read.
        message: String,
    },
    /// A file could not be read or written (an import's input, checkpoint
    /// or dead-letter file).
    Io {
        /// What was being done, e.g. `"write the checkpoint"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The operating system's kind of error.
        kind: io::ErrorKind,
        /// The operating system's message.
        message: String,
    },
    /// A checkpoint (or the dead-letter file beside it) cannot be used to
    /// resume: unreadable, from another import, or from another version.
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection failed (after any retries).
    Transport {
        /// What kind of failure.
        kind: TransportKind,
        /// Details, for people (never a key).
        message: String,
    },
    /// A shared limiter (`RedisLimiter` with `WhenUnreachable::WaitAtMost`)
    /// could not reach Redis for longer than it may wait, so nothing was
    /// sent. Transient: try again once Redis is back.
    RedisUnreachable {
        /// The Redis URL, without its password.
        url: String,
        /// How long Redis had been unreachable.
        waited: Duration,
    },
    /// Redis answered, but refuses the shared limiter (`RedisLimiter`): a
    /// wrong password, a database it does not have, a certificate that is
    /// not trusted, something that does not speak Redis. Nothing was sent,
    /// and waiting will not help: fix the setting named here.
    RedisRefused {
        /// The Redis URL, without its password.
        url: String,
        /// The limiter's setting to fix: `"redis_url"`, or `"trust_ca"`
        /// for a TLS handshake that failed.
        setting: &'static str,
        /// What Redis (or the TLS handshake) said, without the password.
        reason: String,
    },
    /// Another process shares the limiter's Redis key with different
    /// settings; nothing was sent. Use the same settings, or let this
    /// process adopt the shared ones
    /// (`RedisLimiterBuilder::adopt_shared_settings`).
    SharedSettingsMismatch {
        /// The Redis key of the shared state.
        key: String,
        /// The settings recorded beside it, e.g. `rate=80/s burst=10 window=1s`.
        shared: String,
        /// This process's settings.
        ours: String,
    },
    /// An import was asked to stop
    /// ([`ImporterBuilder::stop_when`](crate::import::ImporterBuilder::stop_when))
    /// and did: the requests in flight finished and the checkpoint covers
    /// every line done, so resuming sends the rest. Not a fault, and not
    /// transient: nothing failed.
    Stopped,
    /// An import's input is not what the importer reads (a binary file,
    /// another format): almost every line of the first ones read was bad, so
    /// it stopped rather than dead-letter the whole file. The dead letters
    /// already written stay.
    WrongFormat {
        /// The lines judged (blank ones aside): the first ones read, or
        /// the last ones before it stopped.
        lines: u64,
        /// How many of them were bad.
        bad: u64,
    },
}

/// Which credential Customer.io refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// The Track API site id and API key (Basic auth).
    TrackApiKey,
    /// The App API key (Bearer auth).
    AppApiKey,
    /// The Pipelines API key: a source's write key (Basic auth, blank password).
    PipelinesApiKey,
}

impl fmt::Display for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Credential::TrackApiKey => "Track API site id and API key",
            Credential::AppApiKey => "App API key",
            Credential::PipelinesApiKey => "Pipelines API key",
        })
    }
}

/// Which part of a request ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// Connecting (TCP and TLS).
    Connect,
    /// The whole request, from connecting to reading the answer.
    Request,
}

/// How a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// Refused: the request never left. Safe to retry for every call.
    ConnectionRefused,
    /// Reset or closed before a full answer: the request may have arrived.
    ConnectionReset,
    /// The host name did not resolve.
    HostNotFound,
    /// TLS failed.
    Tls,
    /// Anything else.
    Other,
}

/// `Result<T, cio_ratelimit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(action: &'static str, path: &Path, err: &io::Error) -> Error {
        Error::Io {
            action,
            path: path.to_owned(),
            kind: err.kind(),
            message: err.to_string(),
        }
    }

    pub(crate) fn invalid(
        setting: &'static str,
        value: impl fmt::Display,
        expected: &'static str,
    ) -> Error {
        Error::InvalidConfig {
            setting,
            value: value.to_string(),
            expected,
        }
    }
}

/// `url` with everything between `://` and the last `@` (a user name and
/// password) replaced by `***`, even in URLs that do not parse: for errors,
/// logs and `Debug`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig {
                setting,
                value,
                expected,
            } => write!(f, "invalid {setting} {value}: expected {expected}"),
            Error::BurstExceeded { requested, burst } => write!(
                f,
                "asked for {requested} permits at once, but the burst is {burst}: it could never be granted"
            ),
            Error::Invalid(invalid) => write!(f, "not sent: {invalid}"),
            Error::Status {
                status, message, ..
            } if message.is_empty() => write!(f, "Customer.io answered HTTP {status}"),
            Error::Status {
                status, message, ..
            } => write!(f, "Customer.io answered HTTP {status}: {message}"),
            Error::ItemsRejected(items) => {
                write!(f, "Customer.io rejected {} batch item(s)", items.len())?;
                if let Some(first) = items.first() {
                    write!(f, "; first: {first}")?;
                }
                Ok(())
            }
            Error::Unauthorized { status, credential } => write!(
                f,
                "Customer.io refused the {credential} (HTTP {status}); check that credential"
            ),
            Error::WrongRegion { use_region } => write!(
                f,
                "this workspace is not in the configured region (HTTP 301 wrong datacenter); use region {use_region}"
            ),
            Error::MissingCredential(credential) => {
                write!(
                    f,
                    "this call needs the {credential}, and the client has none"
                )
            }
            Error::Timeout(TimeoutKind::Connect) => {
                f.write_str("timed out connecting to Customer.io")
            }
            Error::Timeout(TimeoutKind::Request) => {
                f.write_str("timed out waiting for Customer.io's answer")
            }
            Error::Unreadable { status, message } => {
                write!(
                    f,
                    "Customer.io answered HTTP {status} with an unreadable body: {message}"
                )
            }
            Error::Io {
                action,
                path,
                message,
                ..
            } => write!(f, "could not {action} {}: {message}", path.display()),
            Error::Checkpoint { path, reason } => {
                write!(f, "cannot resume from {}: {reason}", path.display())
            }
            Error::Transport { kind, message } => {
                write!(f, "connection to Customer.io failed ({kind:?}): {message}")
            }
            Error::RedisUnreachable { url, waited } => write!(
                f,
                "Redis at {url} has been unreachable for {:.0?}, longer than the limiter may wait; nothing was sent",
                waited
            ),
            Error::RedisRefused {
                url,
                setting,
                reason,
            } => write!(
                f,
                "Redis at {url} refuses the shared rate limiter ({reason}); nothing was sent: \
                 check {setting}"
            ),
            Error::Stopped => f.write_str("stopped on request"),
            Error::WrongFormat { lines, bad } => write!(
                f,
                "{bad} of {lines} lines in a row are not valid operations: the input is not in \
                 the format it is read as (a binary file, say), so the import stopped"
            ),
            Error::SharedSettingsMismatch { key, shared, ours } => write!(
                f,
                "Redis key {key} is shared at {shared}, but this process is set to {ours}; \
                 use the same settings, or adopt the shared ones"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Invalid(invalid) => Some(invalid),
            _ => None,
        }
    }
}

impl From<Invalid> for Error {
    fn from(invalid: Invalid) -> Error {
        Error::Invalid(invalid)
    }
}
