//! The App API: transactional messages and broadcast triggers.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::client::client::Client;
use crate::client::event::to_object;
use crate::client::identifier::Identifier;
use crate::client::request::{Method, Request};
use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::retry::policy::Call;

/// A transactional message to send: an email, push, SMS, in-app or inbox
/// message (`/v1/send/{email,push,sms,in_app,inbox_message}`).
///
/// ```
/// use cio_ratelimit::{Identifier, TransactionalMessage};
/// use serde_json::json;
///
/// let message = TransactionalMessage::new(12, Identifier::email("ada@example.com"))
///     .to("ada@example.com")
///     .message_data(json!({"reset_link": "https://example.com/r/abc"}))?
///     .field("send_to_unsubscribed", false);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionalMessage {
    person: Identifier,
    body: Map<String, Value>,
}

impl TransactionalMessage {
    /// The message template `transactional_message_id` (its number, or its
    /// trigger name) for `person`.
    pub fn new(
        transactional_message_id: impl Into<Value>,
        person: impl Into<Identifier>,
    ) -> TransactionalMessage {
        let person = person.into();
        let mut body = Map::new();
        body.insert(
            "transactional_message_id".into(),
            transactional_message_id.into(),
        );
        body.insert("identifiers".into(), person.to_json());
        TransactionalMessage { person, body }
    }

    /// The recipient's address (an email address, or a device token for push).
    pub fn to(self, to: impl Into<String>) -> TransactionalMessage {
        self.field("to", to.into())
    }

    /// Data for the template's Liquid, a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] if it is not an object.
    pub fn message_data(self, data: impl Serialize) -> Result<TransactionalMessage> {
        let data = to_object(data, "message_data")?;
        Ok(self.field("message_data", Value::Object(data)))
    }

    /// Any other documented field (`from`, `subject`, `bcc`, `tracked`, ...).
    pub fn field(mut self, name: &str, value: impl Into<Value>) -> TransactionalMessage {
        self.body.insert(name.into(), value.into());
        self
    }
}

/// Customer.io's receipt for a transactional message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Delivery {
    /// The delivery's id, to look it up later.
    pub delivery_id: String,
    /// When it was queued, in Unix seconds.
    #[serde(default)]
    pub queued_at: i64,
}

/// Customer.io's receipt for a broadcast trigger.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BroadcastTrigger {
    /// The trigger's id.
    pub id: u64,
}

impl Client {
    /// Sends a transactional email (`POST /v1/send/email`) on the
    /// transactional limiter. Not repeated after a 5xx or a timeout unless
    /// the retry policy opts in: the person might get it twice.
    ///
    /// # Errors
    ///
    /// [`Error::MissingCredential`] without an App API key; otherwise as
    /// [`identify`](Client::identify).
    pub fn send_email(&self, message: &TransactionalMessage) -> Result<Delivery> {
        self.send_transactional("send_email", "/v1/send/email", message)
    }

    /// Sends a transactional push (`POST /v1/send/push`); as
    /// [`send_email`](Client::send_email).
    ///
    /// # Errors
    ///
    /// As [`send_email`](Client::send_email).
    pub fn send_push(&self, message: &TransactionalMessage) -> Result<Delivery> {
        self.send_transactional("send_push", "/v1/send/push", message)
    }

    /// Triggers an API-triggered broadcast (`POST /v1/campaigns/{id}/triggers`)
    /// on the broadcast limiter (1 per 10 s by default). `body` is the trigger's
    /// JSON object, e.g. `{"data": {...}}`. Not repeated after a 5xx or a
    /// timeout unless the retry policy opts in.
    ///
    /// # Errors
    ///
    /// As [`send_email`](Client::send_email).
    pub fn trigger_broadcast(
        &self,
        campaign_id: u64,
        body: impl Serialize,
    ) -> Result<BroadcastTrigger> {
        let body = to_object(body, "broadcast trigger")?;
        let answer = self.send(&Request {
            class: ApiClass::Broadcast,
            call: Call::unsafe_to_repeat("trigger_broadcast"),
            method: Method::Post,
            path: format!("/v1/campaigns/{campaign_id}/triggers"),
            body: Some(serde_json::to_vec(&body).expect("a JSON map always serializes")),
        })?;
        parse_receipt(&answer.body)
    }

    pub(crate) fn send_transactional(
        &self,
        name: &str,
        path: &str,
        message: &TransactionalMessage,
    ) -> Result<Delivery> {
        message.person.validate()?;
        let answer = self.send(&Request {
            class: ApiClass::Transactional,
            call: Call::unsafe_to_repeat(name),
            method: Method::Post,
            path: path.into(),
            body: Some(serde_json::to_vec(&message.body).expect("a JSON map always serializes")),
        })?;
        parse_receipt(&answer.body)
    }
}

/// A receipt from a 2xx body; a body that does not parse is reported, since
/// the message was sent but its receipt is unknown.
fn parse_receipt<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|err| Error::Unreadable {
        status: 200,
        message: format!("sent, but the receipt could not be read: {err}"),
    })
}
