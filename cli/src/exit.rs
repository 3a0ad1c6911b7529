//! The exit codes, a contract that scripts rely on, and the one place that
//! maps errors to them.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | some lines were dead-lettered (imports only) |
//! | 2 | usage, credentials, bad input, a Redis that refuses `--redis-url` (password, database, TLS), or another error that trying again will not fix |
//! | 3 | Customer.io unavailable after retries (5xx, 429 past the deadline, timeouts, refused or dropped connections), or Redis unreachable past `--redis-wait`: resume later |
//! | 130 | an import stopped cleanly on SIGINT (Ctrl-C): resume it |
//! | 143 | an import stopped cleanly on SIGTERM: resume it |
//!
//! clap's own usage errors exit with 2 as well.

use std::process::ExitCode;

use crate::error::Error;
use crate::signals::StopSignal;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything was done.
    Success,
    /// The import finished, but some lines went to the dead-letter file.
    DeadLettered,
    /// Usage, credentials, bad input, or an error that trying again will not fix.
    Fatal,
    /// Customer.io stayed unavailable through every retry: try again later.
    Unavailable,
    /// An import stopped cleanly on a signal: 128 + its number, as a shell
    /// reports a process the signal killed.
    Stopped(StopSignal),
}

impl Exit {
    /// The process exit code: 0, 1, 2, 3, or 130 / 143 after a signal.
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::DeadLettered => 1,
            Exit::Fatal => 2,
            Exit::Unavailable => 3,
            Exit::Stopped(signal) => signal.exit_code(),
        }
    }

    /// How a failed library call ends the process: [`Unavailable`](Exit::Unavailable)
    /// when trying again later may help ([`cio_ratelimit::Error::is_transient`]),
    /// otherwise [`Fatal`](Exit::Fatal).
    pub fn of(error: &cio_ratelimit::Error) -> Exit {
        if error.is_transient() {
            Exit::Unavailable
        } else {
            Exit::Fatal
        }
    }

    /// How the embedded `cio-emulator` command line's exit code ends the
    /// process: 0 is success, anything else (it documents 2) is fatal.
    pub fn of_emulator(code: i32) -> Exit {
        if code == 0 {
            Exit::Success
        } else {
            Exit::Fatal
        }
    }
}

impl From<&Error> for Exit {
    fn from(error: &Error) -> Exit {
        match error {
            Error::Api(error) => Exit::of(error),
            Error::Import {
                stopped: Some(stopped),
                ..
            } => Exit::Stopped(stopped.signal),
            Error::Import { failure, .. } => Exit::of(&failure.error),
            Error::MissingCredentials(_)
            | Error::KeyFile { .. }
            | Error::File { .. }
            | Error::RedisRefused { .. }
            | Error::EmptyKeyFile { .. }
            | Error::Json { .. }
            | Error::NotAnObject { .. }
            | Error::Stdin { .. }
            | Error::Emulator(_)
            | Error::NotOnePerson { .. }
            | Error::CsvOnly { .. }
            | Error::Output(_) => Exit::Fatal,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit.code())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cio_ratelimit::{
        Region,
        error::{Credential, Invalid, TimeoutKind, TransportKind},
    };

    use super::*;

    fn status(status: u16) -> cio_ratelimit::Error {
        cio_ratelimit::Error::Status {
            status,
            message: String::new(),
            retry_after: Some(Duration::from_secs(1)),
        }
    }

    fn transport(kind: TransportKind) -> cio_ratelimit::Error {
        cio_ratelimit::Error::Transport {
            kind,
            message: String::new(),
        }
    }

    #[test]
    fn codes_are_the_documented_contract() {
        let codes = [
            Exit::Success,
            Exit::DeadLettered,
            Exit::Fatal,
            Exit::Unavailable,
            Exit::Stopped(StopSignal::Interrupt),
            Exit::Stopped(StopSignal::Terminate),
        ]
        .map(Exit::code);
        assert_eq!(codes, [0, 1, 2, 3, 130, 143]);
    }

    #[test]
    fn transient_failures_mean_unavailable() {
        for error in [
            status(429),
            status(500),
            status(502),
            status(503),
            status(504),
            status(408),
            cio_ratelimit::Error::Timeout(TimeoutKind::Connect),
            cio_ratelimit::Error::Timeout(TimeoutKind::Request),
            transport(TransportKind::ConnectionRefused),
            transport(TransportKind::ConnectionReset),
        ] {
            assert_eq!(Exit::of(&error), Exit::Unavailable, "{error:?}");
            assert_eq!(Exit::from(&Error::Api(error)).code(), 3);
        }
    }

    #[test]
    fn everything_else_is_fatal() {
        for error in [
            status(400),
            status(404),
            status(422),
            cio_ratelimit::Error::Unauthorized {
                status: 401,
                credential: Credential::TrackApiKey,
            },
            cio_ratelimit::Error::Unauthorized {
                status: 403,
                credential: Credential::AppApiKey,
            },
            cio_ratelimit::Error::WrongRegion {
                use_region: Region::Eu,
            },
            cio_ratelimit::Error::MissingCredential(Credential::AppApiKey),
            cio_ratelimit::Error::Invalid(Invalid::EmptyIdentifier("id")),
            cio_ratelimit::Error::InvalidConfig {
                setting: "track_url",
                value: "ftp://x".into(),
                expected: "an http:// or https:// URL",
            },
            transport(TransportKind::Tls),
            transport(TransportKind::HostNotFound),
        ] {
            assert_eq!(Exit::of(&error), Exit::Fatal, "{error:?}");
            assert_eq!(Exit::from(&Error::Api(error)).code(), 2);
        }
    }

    #[test]
    fn the_command_line_s_own_errors_are_fatal() {
        let missing = Error::MissingCredentials(vec![crate::error::Missing::ApiKey]);
        assert_eq!(Exit::from(&missing), Exit::Fatal);
        let not_an_object = Error::NotAnObject {
            flag: "--data",
            found: "an array",
        };
        assert_eq!(Exit::from(&not_an_object), Exit::Fatal);
        let emulator = Error::Emulator(std::io::ErrorKind::AddrInUse.into());
        assert_eq!(Exit::from(&emulator), Exit::Fatal);
    }

    #[test]
    fn the_emulator_s_exit_codes_pass_through() {
        assert_eq!(Exit::of_emulator(0), Exit::Success);
        assert_eq!(Exit::of_emulator(2), Exit::Fatal);
    }
}
