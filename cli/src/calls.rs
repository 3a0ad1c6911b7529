//! The single calls for scripts: each is one request through the library's
//! [`Client`], so its rate limits and retries apply, checked completely
//! before anything is sent.

use std::io::Read;

use cio_ratelimit::{
    BroadcastTrigger, Client, Delivery, Event, EventId, EventKind, Identifier, ImportSummary,
    PipelinesCall, TransactionalMessage,
};
use serde_json::{Map, Value};

use crate::args::CallCommand;
use crate::credentials::Api;
use crate::error::Error;
use crate::json_arg;

/// One call, parsed and checked: nothing has been sent yet.
#[derive(Debug)]
pub enum Call {
    /// `identify`.
    Identify {
        /// Who.
        person: Identifier,
        /// Their attributes.
        attributes: Map<String, Value>,
    },
    /// `track`.
    Track {
        /// Who.
        person: Identifier,
        /// The event, with its id.
        event: Event,
        /// Event, page view or screen view.
        kind: EventKind,
    },
    /// `delete`.
    Delete(Identifier),
    /// `suppress`.
    Suppress(Identifier),
    /// `unsuppress`.
    Unsuppress(Identifier),
    /// `send-email`.
    SendEmail {
        /// Who the message is about.
        person: Identifier,
        /// The message.
        message: TransactionalMessage,
    },
    /// `trigger-broadcast`.
    TriggerBroadcast {
        /// The broadcast.
        campaign_id: u64,
        /// The trigger's body: `{"data": {...}}`, or `{}`.
        body: Map<String, Value>,
    },
    /// `pipelines identify|track|page|screen|group|alias`.
    Pipelines(PipelinesCall),
}

/// What a call that succeeded did.
#[derive(Debug, Clone, PartialEq)]
pub enum Receipt {
    /// A person was created or updated.
    Identified(Identifier),
    /// An event was recorded.
    Tracked {
        /// Who.
        person: Identifier,
        /// The event's name.
        name: String,
        /// Event, page view or screen view.
        kind: EventKind,
        /// The id it was sent with: the same id is counted once.
        id: EventId,
    },
    /// A person was deleted.
    Deleted(Identifier),
    /// A person was suppressed.
    Suppressed(Identifier),
    /// A person was unsuppressed.
    Unsuppressed(Identifier),
    /// A transactional email was queued.
    EmailSent {
        /// Who it is about.
        person: Identifier,
        /// Customer.io's receipt.
        delivery: Delivery,
    },
    /// An import finished (boxed: its counts are large beside the rest).
    Imported(Box<ImportSummary>),
    /// A broadcast was triggered.
    BroadcastTriggered {
        /// The broadcast.
        campaign_id: u64,
        /// Customer.io's receipt.
        trigger: BroadcastTrigger,
    },
    /// A Pipelines call was accepted, in strict mode.
    PipelinesSent(PipelinesCall),
}

impl Call {
    /// Parses the JSON flags of `command` (a `-` reads `stdin`) and builds the call.
    ///
    /// # Errors
    ///
    /// [`Error::Json`], [`Error::NotAnObject`] or [`Error::Stdin`] naming the
    /// flag, or [`Error::Api`] for input the library refuses to build.
    pub fn parse(command: &CallCommand, stdin: &mut dyn Read) -> Result<Call, Error> {
        let mut object = |flag, text: &Option<String>| match text {
            Some(text) => json_arg::object(flag, text, stdin).map(Some),
            None => Ok(None),
        };
        Ok(match command {
            CallCommand::Identify(args) => Call::Identify {
                person: args.person.identifier(),
                attributes: object("--attributes", &args.attributes)?.unwrap_or_default(),
            },
            CallCommand::Track(args) => {
                let kind = if args.page {
                    EventKind::Page
                } else if args.screen {
                    EventKind::Screen
                } else {
                    EventKind::Event
                };
                let mut event = Event::new(&args.name).kind(kind);
                if let Some(data) = object("--data", &args.data)? {
                    event = event.data(data)?;
                }
                if let Some(timestamp) = args.timestamp {
                    event = event.timestamp(timestamp);
                }
                if let Some(key) = &args.id_key {
                    event = event.id_from_key(key);
                }
                Call::Track {
                    person: args.person.identifier(),
                    event,
                    kind,
                }
            }
            CallCommand::Delete(args) => Call::Delete(args.person.identifier()),
            CallCommand::Suppress(args) => Call::Suppress(args.person.identifier()),
            CallCommand::Unsuppress(args) => Call::Unsuppress(args.person.identifier()),
            CallCommand::SendEmail(args) => {
                let person = args.recipient.identifier();
                // A number is the message's id; anything else its trigger name.
                let message_id = match args.message_id.parse::<u64>() {
                    Ok(number) => Value::from(number),
                    Err(_) => Value::from(args.message_id.as_str()),
                };
                let mut message = TransactionalMessage::new(message_id, &person).to(&args.to);
                if let Some(data) = object("--data", &args.data)? {
                    message = message.message_data(data)?;
                }
                Call::SendEmail { person, message }
            }
            CallCommand::TriggerBroadcast(args) => {
                let mut body = Map::new();
                if let Some(data) = object("--data", &args.data)? {
                    body.insert("data".into(), Value::Object(data));
                }
                Call::TriggerBroadcast {
                    campaign_id: args.campaign_id,
                    body,
                }
            }
            CallCommand::Pipelines(command) => Call::Pipelines(command.call(stdin)?),
        })
    }

    /// The API the call goes to, and so the credentials it needs.
    pub fn api(&self) -> Api {
        match self {
            Call::SendEmail { .. } | Call::TriggerBroadcast { .. } => Api::App,
            Call::Pipelines(_) => Api::Pipelines,
            _ => Api::Track,
        }
    }

    /// Sends the call: one request, waiting for its limiter and retried as
    /// the client's retry policy says.
    ///
    /// # Errors
    ///
    /// What the library returns: input it refuses before sending, or what
    /// Customer.io answered after retries.
    pub fn send(&self, client: &Client) -> cio_ratelimit::Result<Receipt> {
        Ok(match self {
            Call::Identify { person, attributes } => {
                client.identify(person, attributes)?;
                Receipt::Identified(person.clone())
            }
            Call::Track {
                person,
                event,
                kind,
            } => {
                client.track(person, event)?;
                Receipt::Tracked {
                    person: person.clone(),
                    name: event.name().to_owned(),
                    kind: *kind,
                    id: event.event_id().clone(),
                }
            }
            Call::Delete(person) => {
                client.delete(person)?;
                Receipt::Deleted(person.clone())
            }
            Call::Suppress(person) => {
                client.suppress(person)?;
                Receipt::Suppressed(person.clone())
            }
            Call::Unsuppress(person) => {
                client.unsuppress(person)?;
                Receipt::Unsuppressed(person.clone())
            }
            Call::SendEmail { person, message } => Receipt::EmailSent {
                person: person.clone(),
                delivery: client.send_email(message)?,
            },
            Call::TriggerBroadcast { campaign_id, body } => Receipt::BroadcastTriggered {
                campaign_id: *campaign_id,
                trigger: client.trigger_broadcast(*campaign_id, body)?,
            },
            Call::Pipelines(call) => {
                client.send_pipelines(call)?;
                Receipt::PipelinesSent(call.clone())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;
    use crate::args::{Args, Command};

    fn parse(args: &[&str], stdin: &str) -> Result<Call, Error> {
        let args =
            Args::try_parse_from(std::iter::once("cio-ratelimit").chain(args.iter().copied()))
                .unwrap();
        let Command::Call(command) = args.command else {
            panic!("not a call")
        };
        Call::parse(&command, &mut stdin.as_bytes())
    }

    #[test]
    fn identify_takes_attributes_from_the_flag_or_stdin() {
        let Call::Identify { person, attributes } = parse(
            &["identify", "a@b.c", "--email", "--attributes", "-"],
            r#"{"x":1}"#,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(person, Identifier::email("a@b.c"));
        assert_eq!(Value::Object(attributes), json!({"x": 1}));
        let Call::Identify { attributes, .. } = parse(&["identify", "1"], "").unwrap() else {
            panic!()
        };
        assert!(attributes.is_empty());
    }

    #[test]
    fn track_ids_derived_from_a_key_are_stable() {
        let call = || {
            parse(
                &["track", "1", "paid", "--id-key", "order-7", "--screen"],
                "",
            )
            .unwrap()
        };
        let (Call::Track { event: a, kind, .. }, Call::Track { event: b, .. }) = (call(), call())
        else {
            panic!()
        };
        assert_eq!(a.event_id(), b.event_id());
        assert_eq!(a.event_id(), &EventId::from_key("order-7"));
        assert_eq!(kind, EventKind::Screen);
    }

    #[test]
    fn app_calls_need_the_app_api() {
        let email = parse(
            &[
                "send-email",
                "--message-id",
                "welcome",
                "--to",
                "a@b.c",
                "--person-id",
                "1",
            ],
            "",
        )
        .unwrap();
        assert_eq!(email.api(), Api::App);
        assert_eq!(
            parse(&["trigger-broadcast", "7"], "").unwrap().api(),
            Api::App
        );
        assert_eq!(parse(&["suppress", "7"], "").unwrap().api(), Api::Track);
    }

    #[test]
    fn a_bad_json_flag_is_named() {
        let error = parse(&["track", "1", "x", "--data", "[]"], "").unwrap_err();
        assert!(
            matches!(error, Error::NotAnObject { flag: "--data", .. }),
            "{error:?}"
        );
        let error = parse(&["identify", "1", "--attributes", "{"], "").unwrap_err();
        assert!(
            matches!(
                error,
                Error::Json {
                    flag: "--attributes",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
