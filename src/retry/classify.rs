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
        /// [`parse_retry_after`](crate::retry::parse_retry_after)).
        retry_after: Option<Duration>,
    },
    /// The request timed out. It may or may not have reached the server.
    Timeout,
    /// The connection broke (reset, closed early) before a full answer. The
    /// request may have reached the server.
    ConnectionReset,
    /// The connection was refused: the request never left.
    ConnectionRefused,
    /// The Redis of a shared rate limit stayed unreachable for as long as
    /// its limiter may wait: nothing was sent. Not retried, as the limiter
    /// already waited; trying again later may succeed.
    RedisUnreachable,
    /// The server said it succeeded, but its answer could not be read (a
    /// batch's list of rejected items, say): what it did is unknown.
    UnreadableAnswer,
    /// Anything else (bad URL, TLS, invalid input): never retried.
    Permanent,
}

/// What a failed attempt means. [`Failure::verdict`] is the one table that
/// says so: the retry loop, [`Error::is_transient`] and the importer all ask it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 429: the workspace is throttled. Pause everyone who shares the
    /// limiter (for the server's `Retry-After`, if it sent one), then try again.
    Pause(Option<Duration>),
    /// A transient failure: try again after a backoff, or the server's
    /// `Retry-After`. `may_have_acted`: the request may have reached the
    /// server, so only calls safe to repeat are repeated.
    Retry {
        after: Option<Duration>,
        may_have_acted: bool,
    },
    /// Transient, but already waited out by whoever failed it (a shared
    /// limiter's Redis, away longer than it may wait): not retried now;
    /// trying again later may succeed.
    Unavailable,
    /// The content is wrong (400, 413, 422): the same content fails the
    /// same way again, but other content may pass.
    RejectContent,
    /// Nothing will help until something changes: credentials, region,
    /// configuration, or a status that is none of the above.
    Fatal,
}

impl Failure {
    /// What this failure means for whoever made the call.
    pub(crate) fn verdict(self) -> Verdict {
        let retry = |after, may_have_acted| Verdict::Retry {
            after,
            may_have_acted,
        };
        match self {
            Failure::Status {
                status: 429,
                retry_after,
            } => Verdict::Pause(retry_after),
            Failure::Status {
                status: 408 | 500 | 502 | 503 | 504,
                retry_after,
            } => retry(retry_after, true),
            Failure::Status {
                status: 400 | 413 | 422,
                ..
            } => Verdict::RejectContent,
            Failure::Timeout | Failure::ConnectionReset | Failure::UnreadableAnswer => {
                retry(None, true)
            }
            Failure::ConnectionRefused => retry(None, false),
            Failure::RedisUnreachable => Verdict::Unavailable,
            Failure::Status { .. } | Failure::Permanent => Verdict::Fatal,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Status { status, .. } => write!(f, "HTTP {status}"),
            Failure::Timeout => f.write_str("timeout"),
            Failure::ConnectionReset => f.write_str("connection reset"),
            Failure::ConnectionRefused => f.write_str("connection refused"),
            Failure::RedisUnreachable => {
                f.write_str("the shared rate limit's Redis is unreachable")
            }
            Failure::UnreadableAnswer => f.write_str("unreadable answer"),
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
        matches!(
            self.failure().verdict(),
            Verdict::Pause(_) | Verdict::Retry { .. } | Verdict::Unavailable
        )
    }

    /// Whether the server refused this content (400, 413, 422): sent again
    /// unchanged it would fail the same way, but other content may pass.
    pub(crate) fn rejects_content(&self) -> bool {
        self.failure().verdict() == Verdict::RejectContent
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
            // Nothing left, and the limiter already waited for Redis.
            Error::RedisUnreachable { .. } => Failure::RedisUnreachable,
            // A 207 whose list of rejected items cannot be read: which items
            // were accepted is unknown, so the whole batch is tried again.
            Error::Unreadable { status: 207, .. } => Failure::UnreadableAnswer,
            _ => Failure::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Failure {
        Failure::Status {
            status,
            retry_after: None,
        }
    }

    #[test]
    fn every_failure_has_one_meaning() {
        let second = Some(Duration::from_secs(1));
        assert_eq!(
            Failure::Status {
                status: 429,
                retry_after: second
            }
            .verdict(),
            Verdict::Pause(second)
        );
        for code in [408, 500, 502, 503, 504] {
            assert!(
                matches!(
                    status(code).verdict(),
                    Verdict::Retry {
                        may_have_acted: true,
                        ..
                    }
                ),
                "{code}"
            );
        }
        for code in [400, 413, 422] {
            assert_eq!(status(code).verdict(), Verdict::RejectContent, "{code}");
        }
        for code in [301, 401, 403, 404, 409, 501, 505] {
            assert_eq!(status(code).verdict(), Verdict::Fatal, "{code}");
        }
        assert_eq!(
            Failure::ConnectionRefused.verdict(),
            Verdict::Retry {
                after: None,
                may_have_acted: false
            }
        );
        assert_eq!(Failure::Permanent.verdict(), Verdict::Fatal);
    }

    #[test]
    fn errors_ask_the_same_table() {
        let unreadable = |status| Error::Unreadable {
            status,
            message: "garbled".into(),
        };
        assert!(unreadable(207).is_transient(), "a garbled 207 is retried");
        assert!(!unreadable(200).is_transient(), "a garbled receipt is not");
        let rejected = Error::Status {
            status: 413,
            message: String::new(),
            retry_after: None,
        };
        assert!(rejected.rejects_content() && !rejected.is_transient());
        assert!(
            !Error::Unauthorized {
                status: 401,
                credential: crate::error::Credential::TrackApiKey
            }
            .is_transient()
        );
    }
}
