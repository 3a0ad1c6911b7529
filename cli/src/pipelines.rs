//! `cio-ratelimit pipelines identify|track|page|screen|group|alias`: one
//! Pipelines API call each, built from flags into a library
//! [`PipelinesCall`] and checked before anything is sent.

use std::io::Read;

use cio_ratelimit::{PipelinesCall, PipelinesUser};
use clap::Subcommand;

use crate::args::Global;
use crate::error::Error;
use crate::json_arg;

/// One Pipelines API call (Data Pipelines), sent with `X-Strict-Mode: 1` so
/// that a call Customer.io finds invalid fails instead of being dropped.
#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// Identify a person, with their traits
    Identify(Identify),
    /// Record an event a person did, with its properties
    Track(Track),
    /// Record a page view
    Page(View),
    /// Record a mobile screen view
    Screen(View),
    /// Add a person to a group (an account, a company), with its traits
    Group(Group),
    /// Tell Customer.io that a person was known by another id before
    Alias(Alias),
}

/// What every Pipelines call takes: who, when, context, and its messageId.
#[derive(Debug, Clone, clap::Args)]
pub struct Common {
    /// The person: your id for them (userId), or with --anonymous a visitor's anonymousId
    #[arg(value_name = "USER_ID")]
    pub user: String,
    /// USER_ID is an anonymousId, for a visitor not yet identified
    #[arg(long)]
    pub anonymous: bool,
    /// When it happened, as an ISO 8601 date and time [default: when it arrives]
    #[arg(long, value_name = "ISO8601")]
    pub timestamp: Option<String>,
    /// The call's context (ip, locale, ...) as a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Derive the call's messageId from KEY, so that running the command again
    /// records the call once [default: a random messageId]
    #[arg(long, value_name = "KEY")]
    pub id_key: Option<String>,
}

/// `pipelines identify USER_ID [--traits JSON]`.
#[derive(Debug, clap::Args)]
pub struct Identify {
    /// Who, when, how.
    #[command(flatten)]
    pub common: Common,
    /// The person's traits as a JSON object, e.g. '{"plan":"pro"}'; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub traits: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines track USER_ID EVENT [--properties JSON]`.
#[derive(Debug, clap::Args)]
pub struct Track {
    /// Who, when, how.
    #[command(flatten)]
    pub common: Common,
    /// The event's name
    #[arg(value_name = "EVENT")]
    pub event: String,
    /// The event's properties as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub properties: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines page|screen USER_ID [NAME] [--properties JSON]`.
#[derive(Debug, clap::Args)]
pub struct View {
    /// Who, when, how.
    #[command(flatten)]
    pub common: Common,
    /// The page's or screen's name
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Its properties (url, path, title, ...) as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub properties: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines group USER_ID GROUP_ID [--traits JSON]`.
#[derive(Debug, clap::Args)]
pub struct Group {
    /// Who, when, how.
    #[command(flatten)]
    pub common: Common,
    /// The group's id
    #[arg(value_name = "GROUP_ID")]
    pub group_id: String,
    /// The group's traits as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub traits: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines alias USER_ID PREVIOUS_ID`.
#[derive(Debug, clap::Args)]
pub struct Alias {
    /// Who, when, how.
    #[command(flatten)]
    pub common: Common,
    /// The id the person was known by before (e.g. an anonymousId)
    #[arg(value_name = "PREVIOUS_ID")]
    pub previous_id: String,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

impl PipelinesCommand {
    /// The shared connection and output flags.
    pub fn global(&self) -> &Global {
        match self {
            PipelinesCommand::Identify(args) => &args.global,
            PipelinesCommand::Track(args) => &args.global,
            PipelinesCommand::Page(args) | PipelinesCommand::Screen(args) => &args.global,
            PipelinesCommand::Group(args) => &args.global,
            PipelinesCommand::Alias(args) => &args.global,
        }
    }

    /// The call the flags describe (a `-` JSON flag reads `stdin`), checked
    /// by the library.
    ///
    /// # Errors
    ///
    /// [`Error::Json`], [`Error::NotAnObject`] or [`Error::Stdin`] naming the
    /// flag, or [`Error::Api`] for a call the library refuses.
    pub fn call(&self, stdin: &mut dyn Read) -> Result<PipelinesCall, Error> {
        let mut object = |flag, text: &Option<String>| match text {
            Some(text) => json_arg::object(flag, text, stdin).map(Some),
            None => Ok(None),
        };
        let (mut call, common) = match self {
            PipelinesCommand::Identify(args) => {
                let mut call = PipelinesCall::identify(args.common.user());
                if let Some(traits) = object("--traits", &args.traits)? {
                    call = call.traits(traits)?;
                }
                (call, &args.common)
            }
            PipelinesCommand::Track(args) => {
                let mut call = PipelinesCall::track(args.common.user(), &args.event);
                if let Some(properties) = object("--properties", &args.properties)? {
                    call = call.properties(properties)?;
                }
                (call, &args.common)
            }
            PipelinesCommand::Page(args) | PipelinesCommand::Screen(args) => {
                let mut call = if matches!(self, PipelinesCommand::Page(_)) {
                    PipelinesCall::page(args.common.user())
                } else {
                    PipelinesCall::screen(args.common.user())
                };
                if let Some(name) = &args.name {
                    call = call.name(name);
                }
                if let Some(properties) = object("--properties", &args.properties)? {
                    call = call.properties(properties)?;
                }
                (call, &args.common)
            }
            PipelinesCommand::Group(args) => {
                let mut call = PipelinesCall::group(args.common.user(), &args.group_id);
                if let Some(traits) = object("--traits", &args.traits)? {
                    call = call.traits(traits)?;
                }
                (call, &args.common)
            }
            PipelinesCommand::Alias(args) => (
                PipelinesCall::alias(args.common.user(), &args.previous_id),
                &args.common,
            ),
        };
        if let Some(context) = object("--context", &common.context)? {
            call = call.context(context)?;
        }
        if let Some(timestamp) = &common.timestamp {
            call = call.timestamp(timestamp);
        }
        if let Some(key) = &common.id_key {
            call = call.message_id_from_key(key);
        }
        Ok(call)
    }
}

impl Common {
    fn user(&self) -> PipelinesUser {
        if self.anonymous {
            PipelinesUser::anonymous(&self.user)
        } else {
            PipelinesUser::id(&self.user)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::args::{Args, CallCommand, Command};

    fn call(args: &[&str], stdin: &str) -> Result<PipelinesCall, Error> {
        let args = Args::try_parse_from(
            ["cio-ratelimit", "pipelines"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap();
        let Command::Call(command) = args.command else {
            panic!("not a call")
        };
        let CallCommand::Pipelines(pipelines) = *command else {
            panic!("not a Pipelines call")
        };
        pipelines.call(&mut stdin.as_bytes())
    }

    #[test]
    fn each_subcommand_builds_its_call() {
        let track = call(
            &[
                "track",
                "42",
                "paid",
                "--properties",
                "-",
                "--id-key",
                "o-1",
            ],
            r#"{"total": 3}"#,
        )
        .unwrap()
        .to_json();
        assert_eq!(track["type"], "track");
        assert_eq!(track["userId"], "42");
        assert_eq!(track["event"], "paid");
        assert_eq!(track["properties"], json!({"total": 3}));
        assert_eq!(
            track["messageId"],
            cio_ratelimit::EventId::from_key("o-1").as_str()
        );
        let page = call(&["page", "v1", "Pricing", "--anonymous"], "")
            .unwrap()
            .to_json();
        assert_eq!(
            (&page["type"], &page["anonymousId"], &page["name"]),
            (&json!("page"), &json!("v1"), &json!("Pricing"))
        );
        assert!(page.get("userId").is_none());
        let group = call(&["group", "1", "acme", "--traits", r#"{"plan":"pro"}"#], "")
            .unwrap()
            .to_json();
        assert_eq!(group["groupId"], "acme");
        assert_eq!(group["traits"]["plan"], "pro");
        let alias = call(
            &["alias", "1", "v1", "--timestamp", "2026-11-30T09:00:00Z"],
            "",
        )
        .unwrap()
        .to_json();
        assert_eq!(alias["previousId"], "v1");
        assert_eq!(alias["timestamp"], "2026-11-30T09:00:00Z");
        let screen = call(&["screen", "1", "--context", r#"{"locale":"nb"}"#], "")
            .unwrap()
            .to_json();
        assert_eq!(screen["context"]["locale"], "nb");
    }

    #[test]
    fn a_bad_json_flag_is_named() {
        let error = call(&["identify", "1", "--traits", "[1]"], "").unwrap_err();
        assert!(
            matches!(
                error,
                Error::NotAnObject {
                    flag: "--traits",
                    ..
                }
            ),
            "{error:?}"
        );
        let error = call(&["track", "1", "e", "--context", "{"], "").unwrap_err();
        assert!(
            matches!(
                error,
                Error::Json {
                    flag: "--context",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
