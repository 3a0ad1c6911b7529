//! Classification: what a failed attempt means for the retry loop.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, TransportKind};

/// How a failed attempt failed, as far as retrying is concerned.
///
/// The retry loop asks an attempt's error for this through [`Classify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The server answered with an HTTP status that is not a success.
    Status {
        /// The status code.
        status: u16,
        /// The server's `Retry-After`, already parsed (see
        /// [`parse_retry_after`](crate::parse_retry_after)).
        retry_after: Option<Duration>,
    },
    /// The request timed out. It may or may not have reached the server.
    Timeout,
    /// The connection broke (reset, closed early) before a full answer. The
    /// request may have reached the server.
    ConnectionReset,
    /// The connection was refused: the request never left.
    ConnectionRefused,
    /// Anything else (bad URL, TLS, invalid input): never retried.
    Permanent,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status { status, .. } => write!(f, "HTTP {status}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::ConnectionReset => f.write_str("connection reset"),
            Failure::ConnectionRefused => f.write_str("connection refused"),
            Failure::Permanent => f.write_str("permanent error"),
        }
    }
}

/// An error that the retry loop can classify.
///
/// The crate's [`Error`] implements it; implement it for your own error
/// type to run your own calls through [`RetryPolicy::run`](crate::RetryPolicy::run).
pub trait Classify {
    /// How this error failed.
    fn failure(&self) -> Failure;
}

impl Classify for Failure {
    fn failure(&self) -> Failure {
        *self
    }
}

impl Error {
    /// Whether retrying later may succeed: throttling, server errors,
    /// timeouts and broken connections. `false` for bad input, refused
    /// credentials, the wrong region and other client errors.
    pub fn is_transient(&self) -> bool {
        match self.failure() {
            Failure::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            Failure::Timeout | Failure::ConnectionReset | Failure::ConnectionRefused => true,
            _ => false,
        }
    }
}

impl Classify for Error {
    fn failure(&self) -> Failure {
        match self {
            Error::Status {
                status,
                retry_after,
                ..
            } => Failure::Status {
                status: *status,
                retry_after: *retry_after,
            },
            Error::Timeout(_) => Failure::Timeout,
            Error::Transport {
                kind: TransportKind::ConnectionRefused,
                ..
            } => Failure::ConnectionRefused,
            Error::Transport {
                kind: TransportKind::ConnectionReset,
                ..
            } => Failure::ConnectionReset,
            // Nothing left: safe to try again, whatever the call.
            Error::RedisUnreachable { .. } => Failure::ConnectionRefused,
            _ => Failure::Permanent,
        }
    }
}
