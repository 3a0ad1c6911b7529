//! `cio-ratelimit pipelines identify|track|page|screen|group|alias`: one
//! Pipelines API call each, built from flags into a library
//! [`PipelinesCall`] and checked before anything is sent.

use std::io::Read;

use cio_ratelimit::{PipelinesCall, client::PipelinesUser};

use crate::args::{PipelinesCommand, PipelinesCommon};
use crate::error::Error;
use crate::json_arg;

impl PipelinesCommand {
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

impl PipelinesCommon {
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
            cio_ratelimit::client::EventId::from_key("o-1").as_str()
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
