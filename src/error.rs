//! The crate's one error type.

use std::fmt;

/// What can go wrong in this crate.
///
/// Each variant carries structured data rather than a string, so a program can
/// decide what to do without parsing messages. No variant ever contains an
/// API key.
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
}

/// `Result<T, cio_ratelimit::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
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
        }
    }
}

impl std::error::Error for Error {}
