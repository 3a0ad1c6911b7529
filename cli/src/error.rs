//! What can stop a command: the library's errors, and the command line's own.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::signals::StopSignal;

/// Why a command failed. [`Exit::from`](crate::exit::Exit) turns it into the
/// process's exit code; no variant ever holds an API key.
#[derive(Debug)]
pub enum Error {
    /// The library refused the input or the settings, or Customer.io (or the
    /// connection to it) failed, after any retries.
    Api(cio_ratelimit::Error),
    /// Credentials the command needs were given nowhere.
    MissingCredentials(Vec<Missing>),
    /// A key file could not be read.
    KeyFile {
        /// The flag that named the file, e.g. `--api-key-file`.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: io::Error,
    },
    /// A file a flag names cannot be used (a CA that cannot be read, a
    /// metrics path that is not ours to replace).
    File {
        /// The flag, e.g. `--metrics-file`.
        flag: &'static str,
        /// The path it names.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// Redis answered `--redis-url`, but refuses the shared limiter: a
    /// wrong password or database, a certificate `--redis-ca` does not
    /// trust. Nothing was sent; waiting would not help.
    RedisRefused {
        /// The flag to fix: `--redis-url` or `--redis-ca`.
        flag: &'static str,
        /// The Redis URL, without its password.
        url: String,
        /// What Redis (or the TLS handshake) said, without the password.
        reason: String,
    },
    /// A key file holds nothing but white space.
    EmptyKeyFile {
        /// The flag that named the file.
        flag: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// A JSON argument does not parse; nothing was sent.
    Json {
        /// The flag, e.g. `--attributes`.
        flag: &'static str,
        /// Where and why parsing failed.
        source: serde_json::Error,
    },
    /// A JSON argument parses, but is not an object; nothing was sent.
    NotAnObject {
        /// The flag.
        flag: &'static str,
        /// What it is instead: `an array`, `a string`, ...
        found: &'static str,
    },
    /// Standard input could not be read for a flag given `-`.
    Stdin {
        /// The flag.
        flag: &'static str,
        /// Why reading failed.
        source: io::Error,
    },
    /// The emulator for `--emulator` could not start.
    Emulator(io::Error),
    /// Standard output could not be written.
    Output(io::Error),
    /// A flag that applies to CSV input only was given for NDJSON input:
    /// it would be ignored, so nothing was read.
    CsvOnly {
        /// The flag, e.g. `--id-column`.
        flag: &'static str,
    },
    /// `get-person --email` found no one with the email, or several people.
    NotOnePerson {
        /// The email.
        email: String,
        /// The Customer.io ids of the people found.
        cio_ids: Vec<String>,
    },
    /// An import stopped before the end; how far it got is in the failure.
    Import {
        /// Why, and the counts when it stopped.
        failure: Box<cio_ratelimit::import::ImportFailure>,
        /// Whether a checkpoint is on disk, so `--resume` can continue.
        resumable: bool,
        /// Set when a signal stopped it cleanly.
        stopped: Option<Stopped>,
    },
}

/// An import that a signal stopped cleanly: which, and how to go on.
#[derive(Debug)]
pub struct Stopped {
    /// SIGINT or SIGTERM.
    pub signal: StopSignal,
    /// The command that resumes the import (keys hidden).
    pub resume_command: String,
    /// Whether the input was standard input, which the command needs again.
    pub from_stdin: bool,
}

/// A credential that was given nowhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The Track API site id.
    SiteId,
    /// The Track API key.
    ApiKey,
    /// The App API key.
    AppKey,
    /// The Pipelines API key.
    PipelinesKey,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Missing::SiteId => "the Track API site id (--site-id or CUSTOMERIO_SITE_ID)",
            Missing::ApiKey => {
                "the Track API key (CUSTOMERIO_TRACK_API_KEY, --api-key-file PATH or --api-key)"
            }
            Missing::AppKey => {
                "the App API key (CUSTOMERIO_APP_API_KEY, --app-key-file PATH or --app-key)"
            }
            Missing::PipelinesKey => {
                "the Pipelines API key (CUSTOMERIO_PIPELINES_API_KEY, --pipelines-key-file PATH or --pipelines-key)"
            }
        })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Api(error) => error.fmt(f),
            Error::MissingCredentials(missing) => {
                f.write_str("no Customer.io credentials: missing ")?;
                for (i, credential) in missing.iter().enumerate() {
                    match i {
                        0 => {}
                        i if i + 1 == missing.len() => f.write_str(" and ")?,
                        _ => f.write_str(", ")?,
                    }
                    write!(f, "{credential}")?;
                }
                f.write_str("; or add --emulator to try the command against a local emulator")
            }
            Error::KeyFile { flag, path, .. } => {
                write!(f, "cannot read {flag} {}", path.display())
            }
            Error::File {
                flag,
                path,
                problem,
            } => write!(f, "{flag} {}: {problem}", path.display()),
            Error::RedisRefused { flag, url, reason } => write!(
                f,
                "Redis at {url} refuses the shared rate limiter ({reason}); nothing was sent: \
                 check {flag}"
            ),
            Error::EmptyKeyFile { flag, path } => {
                write!(f, "{flag} {} is empty", path.display())
            }
            Error::Json { flag, .. } => write!(f, "{flag} is not valid JSON; nothing was sent"),
            Error::NotAnObject { flag, found } => write!(
                f,
                "{flag} must be a JSON object like '{{\"plan\":\"pro\"}}', not {found}; nothing was sent"
            ),
            Error::Stdin { flag, .. } => {
                write!(f, "cannot read {flag} from standard input")
            }
            Error::Emulator(_) => f.write_str("cannot start the emulator for --emulator"),
            Error::NotOnePerson { email, cio_ids } if cio_ids.is_empty() => {
                write!(f, "no person has the email {email}")
            }
            Error::NotOnePerson { email, cio_ids } => write!(
                f,
                "{} people have the email {email} (cio ids {}): name one with get-person CIO_ID --cio-id",
                cio_ids.len(),
                cio_ids.join(", ")
            ),
            Error::Output(_) => f.write_str("cannot write to standard output"),
            Error::CsvOnly { flag } => write!(
                f,
                "{flag} applies to CSV input only (a .csv file, or --format csv), \
                 and this input is read as NDJSON; nothing was sent"
            ),
            Error::Import {
                failure,
                resumable,
                stopped: Some(stopped),
            } => {
                let progress = &failure.summary.progress;
                write!(
                    f,
                    "stopped by {} after line {} ({} lines delivered, {} dead-lettered); ",
                    stopped.signal.name(),
                    progress.checkpoint_line,
                    progress.delivered,
                    progress.dead_lettered
                )?;
                if *resumable {
                    f.write_str("the checkpoint is stored. Resume with")?;
                    if stopped.from_stdin {
                        f.write_str(" (the same standard input again)")?;
                    }
                    f.write_str(":\n  ")?;
                } else {
                    f.write_str(
                        "no checkpoint was stored, so it cannot be resumed. Run it again (events \
                         keep their ids, so none is stored twice), keeping a checkpoint:\n  ",
                    )?;
                }
                f.write_str(&stopped.resume_command)
            }
            Error::Import {
                failure, resumable, ..
            } => {
                let progress = &failure.summary.progress;
                write!(
                    f,
                    "{failure} ({} lines delivered, {} dead-lettered",
                    progress.delivered, progress.dead_lettered
                )?;
                match (failure.error.is_transient(), resumable) {
                    (true, true) => {
                        f.write_str("; the checkpoint is intact: run again with --resume later)")
                    }
                    (true, false) => f.write_str(
                        "; no checkpoint was stored: try again later, with --checkpoint PATH to resume next time)",
                    ),
                    (false, true) => f.write_str("; fix that, then run again with --resume)"),
                    (false, false) => f.write_str(")"),
                }
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the library's message is this error's message.
            Error::Api(error) => error.source(),
            Error::Import { failure, .. } => failure.error.source(),
            Error::KeyFile { source, .. }
            | Error::Stdin { source, .. }
            | Error::Emulator(source)
            | Error::Output(source) => Some(source),
            Error::Json { source, .. } => Some(source),
            Error::MissingCredentials(_)
            | Error::EmptyKeyFile { .. }
            | Error::RedisRefused { .. }
            | Error::File { .. }
            | Error::CsvOnly { .. }
            | Error::NotAnObject { .. }
            | Error::NotOnePerson { .. } => None,
        }
    }
}

impl From<cio_ratelimit::Error> for Error {
    fn from(error: cio_ratelimit::Error) -> Error {
        Error::Api(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_say_where_to_set_them_and_mention_the_emulator() {
        let text = Error::MissingCredentials(vec![Missing::SiteId, Missing::ApiKey]).to_string();
        for needle in [
            "--site-id",
            "CUSTOMERIO_SITE_ID",
            "CUSTOMERIO_TRACK_API_KEY",
            "--api-key-file",
            "--emulator",
            "id (--site-id or CUSTOMERIO_SITE_ID) and the Track API key",
        ] {
            assert!(text.contains(needle), "{needle:?} not in {text:?}");
        }
        let three =
            Error::MissingCredentials(vec![Missing::SiteId, Missing::ApiKey, Missing::AppKey])
                .to_string();
        assert!(
            three.contains("CUSTOMERIO_SITE_ID), the Track API key"),
            "{three}"
        );
        assert!(
            three.contains("or --api-key) and the App API key"),
            "{three}"
        );
    }

    #[test]
    fn an_email_that_names_no_one_or_several_says_so() {
        let none = Error::NotOnePerson {
            email: "a@b.c".into(),
            cio_ids: Vec::new(),
        };
        assert_eq!(none.to_string(), "no person has the email a@b.c");
        let two = Error::NotOnePerson {
            email: "a@b.c".into(),
            cio_ids: vec!["e1".into(), "e2".into()],
        };
        let text = two.to_string();
        assert!(
            text.starts_with("2 people have the email a@b.c (cio ids e1, e2)")
                && text.contains("--cio-id"),
            "{text}"
        );
    }

    #[test]
    fn json_errors_name_the_flag_and_keep_the_parser_message_as_source() {
        let source = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
        let error = Error::Json {
            flag: "--attributes",
            source,
        };
        assert!(error.to_string().contains("--attributes"));
        let source = std::error::Error::source(&error).unwrap().to_string();
        assert!(source.contains("line 1"), "{source}");
    }
}
