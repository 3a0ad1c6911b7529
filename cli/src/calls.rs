//! The single calls for scripts: each is one request through the library's
//! [`Client`], so its rate limits and retries apply, checked completely
//! before anything is sent.

use std::io::Read;

use cio_ratelimit::{
    Client, Event, Identifier, PipelinesCall, TransactionalMessage,
    client::{BroadcastTrigger, Delivery, EventId, EventKind, PersonProfile},
    import::ImportSummary,
};
use serde_json::{Map, Value};

use crate::args::{CallCommand, Message, SegmentAction};
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
    /// `send-email`, `send-sms`, `send-push`, `send-in-app`.
    Send {
        /// Which kind of message.
        channel: Channel,
        /// Who the message is for.
        person: Identifier,
        /// The message.
        message: TransactionalMessage,
    },
    /// `get-person`.
    GetPerson(Identifier),
    /// `segment add` and `segment remove`.
    Segment {
        /// The manual segment.
        segment_id: u64,
        /// Who.
        people: Vec<Identifier>,
        /// Add, or remove.
        add: bool,
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

/// The kinds of transactional message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `send-email`.
    Email,
    /// `send-sms`.
    Sms,
    /// `send-push`.
    Push,
    /// `send-in-app`.
    InApp,
}

impl Channel {
    /// What people call it: `email`, `SMS`, `push`, `in-app message`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "SMS",
            Channel::Push => "push",
            Channel::InApp => "in-app message",
        }
    }
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
    /// A transactional message was queued.
    Sent {
        /// Which kind of message.
        channel: Channel,
        /// Who it is for.
        person: Identifier,
        /// Customer.io's receipt.
        delivery: Delivery,
    },
    /// A person's profile was read (boxed: it is large beside the rest).
    Person(Box<PersonProfile>),
    /// People were added to a manual segment, or removed from it.
    SegmentChanged {
        /// The manual segment.
        segment_id: u64,
        /// Who.
        people: Vec<Identifier>,
        /// Added, or removed.
        added: bool,
    },
    /// An import finished (boxed: its counts are large beside the rest).
    Imported(Box<ImportSummary>),
    /// A dry run finished: every line checked, none sent.
    Checked(Box<ImportSummary>),
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
                let fields = Message {
                    message_id: args.message_id.clone(),
                    recipient: args.recipient.clone(),
                    data: args.data.clone(),
                };
                send(Channel::Email, &fields, Some(&args.to), stdin)?
            }
            CallCommand::SendSms(args) => {
                send(Channel::Sms, &args.message, args.to.as_ref(), stdin)?
            }
            CallCommand::SendPush(args) => {
                send(Channel::Push, &args.message, args.to.as_ref(), stdin)?
            }
            CallCommand::SendInApp(args) => send(Channel::InApp, &args.message, None, stdin)?,
            CallCommand::GetPerson(args) => Call::GetPerson(args.person.identifier()),
            CallCommand::Segment(segment) => match &segment.action {
                SegmentAction::Add(args) | SegmentAction::Remove(args) => Call::Segment {
                    segment_id: args.segment_id,
                    people: args.people(),
                    add: matches!(segment.action, SegmentAction::Add(_)),
                },
            },
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
            Call::Send { .. } | Call::TriggerBroadcast { .. } | Call::GetPerson(_) => Api::App,
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
    /// Customer.io answered after retries; [`Error::NotOnePerson`] when
    /// `get-person --email` finds no one, or several.
    pub fn send(&self, client: &Client) -> Result<Receipt, Error> {
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
            Call::Send {
                channel,
                person,
                message,
            } => Receipt::Sent {
                channel: *channel,
                person: person.clone(),
                delivery: match channel {
                    Channel::Email => client.send_email(message)?,
                    Channel::Sms => client.send_sms(message)?,
                    Channel::Push => client.send_push(message)?,
                    Channel::InApp => client.send_in_app(message)?,
                },
            },
            Call::GetPerson(person) => Receipt::Person(Box::new(get_person(client, person)?)),
            Call::Segment {
                segment_id,
                people,
                add,
            } => {
                if *add {
                    client.add_to_segment(*segment_id, people)?;
                } else {
                    client.remove_from_segment(*segment_id, people)?;
                }
                Receipt::SegmentChanged {
                    segment_id: *segment_id,
                    people: people.clone(),
                    added: *add,
                }
            }
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

/// A transactional send from its flags; `to` is the address, if any.
fn send(
    channel: Channel,
    fields: &Message,
    to: Option<&String>,
    stdin: &mut dyn Read,
) -> Result<Call, Error> {
    let person = fields.recipient.identifier();
    // A number is the message's id; anything else its trigger name.
    let message_id = match fields.message_id.parse::<u64>() {
        Ok(number) => Value::from(number),
        Err(_) => Value::from(fields.message_id.as_str()),
    };
    let mut message = TransactionalMessage::new(message_id, &person);
    if let Some(to) = to {
        message = message.to(to);
    }
    if let Some(data) = &fields.data {
        message = message.message_data(json_arg::object("--data", data, stdin)?)?;
    }
    Ok(Call::Send {
        channel,
        person,
        message,
    })
}

/// A person's profile. By email, the person is found first
/// (`GET /v1/customers?email=`), since Customer.io takes an email in place of
/// an id only in workspaces that identify people by email; then read by
/// their Customer.io id.
fn get_person(client: &Client, person: &Identifier) -> Result<PersonProfile, Error> {
    let Identifier::Email(email) = person else {
        return Ok(client.person_attributes(person)?);
    };
    let mut found = client.people_by_email(email)?;
    if found.len() != 1 {
        return Err(Error::NotOnePerson {
            email: email.clone(),
            cio_ids: found.into_iter().map(|person| person.cio_id).collect(),
        });
    }
    let only = found.remove(0);
    Ok(client.person_attributes(only.identifier())?)
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
        for args in [
            &["get-person", "7"][..],
            &["send-sms", "--message-id", "1", "--person-id", "7"],
            &["send-push", "--message-id", "1", "--person-id", "7"],
            &["send-in-app", "--message-id", "1", "--person-id", "7"],
        ] {
            assert_eq!(parse(args, "").unwrap().api(), Api::App, "{args:?}");
        }
        assert_eq!(
            parse(&["segment", "add", "7", "1"], "").unwrap().api(),
            Api::Track
        );
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
