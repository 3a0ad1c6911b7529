//! `PipelinesCall`: one Segment-style call of the Pipelines API (identify,
//! track, page, screen, group, alias), with the `messageId` that makes it
//! safe to send twice.

use std::borrow::Cow;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::event::to_object;
use crate::client::event_id::EventId;
use crate::client::validate::{self, Invalid};

/// The kinds of Pipelines call, each with its own endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipelinesCallType {
    /// Who a person is and their `traits` (`/v1/identify`).
    Identify,
    /// Something a person did: an `event` with `properties` (`/v1/track`).
    Track,
    /// A web page view (`/v1/page`).
    Page,
    /// A mobile screen view (`/v1/screen`).
    Screen,
    /// A person joins a group (an account, a company) by `groupId` (`/v1/group`).
    Group,
    /// A person's new id replaces a `previousId` (`/v1/alias`).
    Alias,
}

impl PipelinesCallType {
    /// Every type, in declaration order.
    pub const ALL: [PipelinesCallType; 6] = [
        PipelinesCallType::Identify,
        PipelinesCallType::Track,
        PipelinesCallType::Page,
        PipelinesCallType::Screen,
        PipelinesCallType::Group,
        PipelinesCallType::Alias,
    ];

    /// The `type` field's value: `"identify"`, `"track"`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            PipelinesCallType::Identify => "identify",
            PipelinesCallType::Track => "track",
            PipelinesCallType::Page => "page",
            PipelinesCallType::Screen => "screen",
            PipelinesCallType::Group => "group",
            PipelinesCallType::Alias => "alias",
        }
    }

    /// The type whose `type` field is `text`, if any.
    pub fn from_type(text: &str) -> Option<PipelinesCallType> {
        PipelinesCallType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
    }

    /// The endpoint a single call of this type goes to, e.g. `/v1/track`.
    pub(crate) fn path(&self) -> String {
        format!("/v1/{}", self.as_str())
    }
}

impl fmt::Display for PipelinesCallType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who a Pipelines call is about: your `userId` for them, an `anonymousId`
/// for a visitor not yet identified, or both (an identify that links the
/// two). A plain string is a `userId`.
///
/// ```
/// use cio_ratelimit::client::PipelinesUser;
///
/// let known: PipelinesUser = "42".into();
/// let visitor = PipelinesUser::anonymous("a1b2c3");
/// let linked = PipelinesUser::id("42").with_anonymous_id("a1b2c3");
/// # let _ = (known, visitor, linked);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelinesUser {
    user_id: Option<String>,
    anonymous_id: Option<String>,
}

impl PipelinesUser {
    /// A person by your id for them (`userId`).
    pub fn id(user_id: impl Into<String>) -> PipelinesUser {
        PipelinesUser {
            user_id: Some(user_id.into()),
            anonymous_id: None,
        }
    }

    /// A visitor not yet identified (`anonymousId`).
    pub fn anonymous(anonymous_id: impl Into<String>) -> PipelinesUser {
        PipelinesUser {
            user_id: None,
            anonymous_id: Some(anonymous_id.into()),
        }
    }

    /// This user with an `anonymousId` as well.
    pub fn with_anonymous_id(mut self, anonymous_id: impl Into<String>) -> PipelinesUser {
        self.anonymous_id = Some(anonymous_id.into());
        self
    }
}

impl From<&str> for PipelinesUser {
    fn from(user_id: &str) -> PipelinesUser {
        PipelinesUser::id(user_id)
    }
}

impl From<String> for PipelinesUser {
    fn from(user_id: String) -> PipelinesUser {
        PipelinesUser::id(user_id)
    }
}

impl From<&String> for PipelinesUser {
    fn from(user_id: &String) -> PipelinesUser {
        PipelinesUser::id(user_id.as_str())
    }
}

/// One call of the Pipelines API (Customer.io Data Pipelines), in the
/// Segment-style shape it documents: `type`, `userId` and/or `anonymousId`,
/// `traits`, `event`, `properties`, `name`, `groupId`, `previousId`,
/// `timestamp`, `context` and `messageId`.
///
/// Every call carries a `messageId`, random unless you derive it from a key
/// of your own with [`message_id_from_key`](PipelinesCall::message_id_from_key):
/// Customer.io counts a repeated `messageId` once, so a call that is retried,
/// or sent again after a crash, is not recorded twice.
///
/// ```
/// use cio_ratelimit::PipelinesCall;
/// use cio_ratelimit::client::PipelinesUser;
/// use serde_json::json;
///
/// let identify = PipelinesCall::identify("42").traits(json!({"email": "ada@example.com"}))?;
/// let track = PipelinesCall::track("42", "order_paid")
///     .properties(json!({"total": 42.5}))?
///     .message_id_from_key("order-1234/paid");
/// let page = PipelinesCall::page(PipelinesUser::anonymous("a1b2")).name("Pricing");
/// let group = PipelinesCall::group("42", "acme").traits(json!({"plan": "enterprise"}))?;
/// let alias = PipelinesCall::alias("42", "a1b2");
/// let parsed = PipelinesCall::from_json(json!({"type": "screen", "userId": "42", "name": "Home"}))?;
/// assert_eq!(parsed.message_id().len(), 26);
/// # let _ = (identify, track, page, group, alias);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// A call is checked before it is sent or packed: its type's required fields
/// (`event` for track, `groupId` for group, `previousId` for alias), a
/// non-empty `userId` or `anonymousId`, objects where objects belong, and at
/// most 32 KB in all.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelinesCall {
    kind: PipelinesCallType,
    body: Map<String, Value>,
    /// The bytes of the line it was read from, sent as they came; dropped
    /// when the call changes.
    line: Option<Vec<u8>>,
}

impl PipelinesCall {
    fn new(kind: PipelinesCallType, user: impl Into<PipelinesUser>) -> PipelinesCall {
        let user = user.into();
        let mut body = Map::new();
        body.insert("type".into(), kind.as_str().into());
        if let Some(user_id) = user.user_id {
            body.insert("userId".into(), user_id.into());
        }
        if let Some(anonymous_id) = user.anonymous_id {
            body.insert("anonymousId".into(), anonymous_id.into());
        }
        body.insert("messageId".into(), EventId::new().to_string().into());
        PipelinesCall {
            kind,
            body,
            line: None,
        }
    }

    /// Identifies a person; add their [`traits`](PipelinesCall::traits).
    pub fn identify(user: impl Into<PipelinesUser>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Identify, user)
    }

    /// Records that a person did `event`; add its
    /// [`properties`](PipelinesCall::properties).
    pub fn track(user: impl Into<PipelinesUser>, event: impl Into<String>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Track, user).set("event", event.into())
    }

    /// Records a page view; add the page's [`name`](PipelinesCall::name) and
    /// [`properties`](PipelinesCall::properties) (`url`, `path`, ...).
    pub fn page(user: impl Into<PipelinesUser>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Page, user)
    }

    /// Records a mobile screen view; add the screen's [`name`](PipelinesCall::name).
    pub fn screen(user: impl Into<PipelinesUser>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Screen, user)
    }

    /// Adds a person to the group `group_id`; add the group's
    /// [`traits`](PipelinesCall::traits).
    pub fn group(user: impl Into<PipelinesUser>, group_id: impl Into<String>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Group, user).set("groupId", group_id.into())
    }

    /// Tells Customer.io that `user` was known as `previous_id` before.
    pub fn alias(user: impl Into<PipelinesUser>, previous_id: impl Into<String>) -> PipelinesCall {
        PipelinesCall::new(PipelinesCallType::Alias, user).set("previousId", previous_id.into())
    }

    /// Reads a call from the JSON Customer.io documents, with its `type`.
    /// A call without a `messageId` gets a random one.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if it is not an object, its
    /// `type` is unknown, or it breaks the rules above.
    pub fn from_json(value: Value) -> crate::Result<PipelinesCall> {
        let Value::Object(mut body) = value else {
            return Err(Invalid::NotAnObject("a Pipelines call").into());
        };
        if !body.contains_key("messageId") {
            body.insert("messageId".into(), EventId::new().to_string().into());
        }
        let call = PipelinesCall::checked(body, None)?;
        validate::item_size(validate::json_len(&call.body))?;
        Ok(call)
    }

    /// Reads one line of an NDJSON file of Pipelines calls: a call with its
    /// `type`, checked as [`from_json`](PipelinesCall::from_json) checks.
    ///
    /// A line without a `messageId` gets one derived from `key`, the line's
    /// identity (such as the file's id and the line number), so that reading
    /// the same line again, after a crash, gives the same `messageId` and
    /// Customer.io counts the call once. The line's own bytes are kept and
    /// sent as they are; a derived `messageId` is inserted at their start.
    ///
    /// ```
    /// use cio_ratelimit::PipelinesCall;
    ///
    /// let line = br#"{"type":"track","userId":"42","event":"paid","properties":{"total":1.50}}"#;
    /// let call = PipelinesCall::from_line(line, "orders.ndjson:7")?;
    /// assert_eq!(call.message_id(), PipelinesCall::from_line(line, "orders.ndjson:7")?.message_id());
    /// assert!(call.to_bytes().ends_with(br#""properties":{"total":1.50}}"#));
    /// # Ok::<(), cio_ratelimit::error::Invalid>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Invalid::Json`] for a line that is not JSON; otherwise as
    /// [`from_json`](PipelinesCall::from_json).
    pub fn from_line(line: &[u8], key: &str) -> Result<PipelinesCall, Invalid> {
        let line = line.trim_ascii();
        let mut body: Map<String, Value> = match serde_json::from_slice(line) {
            Ok(Value::Object(body)) => body,
            Ok(_) => return Err(Invalid::NotAnObject("a Pipelines call")),
            Err(err) => return Err(Invalid::Json(err.to_string())),
        };
        let bytes = if body.contains_key("messageId") {
            line.to_vec()
        } else {
            let id = EventId::from_key(key);
            let field = format!("\"messageId\":\"{id}\",");
            body.insert("messageId".into(), id.to_string().into());
            // After the `{`: the object has at least a `type`, so a comma follows.
            let mut bytes = Vec::with_capacity(line.len() + field.len());
            bytes.push(b'{');
            bytes.extend_from_slice(field.as_bytes());
            bytes.extend_from_slice(&line[1..]);
            bytes
        };
        validate::item_size(bytes.len())?;
        PipelinesCall::checked(body, Some(bytes))
    }

    /// A body checked against the rules of its `type`.
    fn checked(body: Map<String, Value>, line: Option<Vec<u8>>) -> Result<PipelinesCall, Invalid> {
        let kind = match body.get("type") {
            Some(Value::String(text)) => PipelinesCallType::from_type(text).ok_or_else(|| {
                Invalid::Call(format!(
                    "unknown type {text:?}: expected identify, track, page, screen, group or alias"
                ))
            })?,
            _ => return Err(Invalid::Call("no \"type\"".into())),
        };
        let call = PipelinesCall { kind, body, line };
        call.check_fields()?;
        Ok(call)
    }

    /// The traits of the person (identify) or the group (group), a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if it is not an object.
    pub fn traits(self, traits: impl Serialize) -> crate::Result<PipelinesCall> {
        let traits = to_object(traits, "traits")?;
        Ok(self.set("traits", Value::Object(traits)))
    }

    /// The properties of the event, page or screen, a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if it is not an object.
    pub fn properties(self, properties: impl Serialize) -> crate::Result<PipelinesCall> {
        let properties = to_object(properties, "properties")?;
        Ok(self.set("properties", Value::Object(properties)))
    }

    /// The call's `context` (`ip`, `locale`, `userAgent`, ...), a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if it is not an object.
    pub fn context(self, context: impl Serialize) -> crate::Result<PipelinesCall> {
        let context = to_object(context, "context")?;
        Ok(self.set("context", Value::Object(context)))
    }

    /// The page's or screen's name.
    pub fn name(self, name: impl Into<String>) -> PipelinesCall {
        self.set("name", name.into())
    }

    /// When it happened, as an ISO 8601 date and time such as
    /// `2026-11-30T09:15:00Z`; default: when it arrives.
    pub fn timestamp(self, timestamp: impl Into<String>) -> PipelinesCall {
        self.set("timestamp", timestamp.into())
    }

    /// The call's `messageId`, instead of a random one.
    pub fn with_message_id(self, id: EventId) -> PipelinesCall {
        self.set("messageId", id.to_string())
    }

    /// A `messageId` derived from `key` (see [`EventId::from_key`]): the same
    /// key gives the same id, so the call is counted once however often it
    /// is sent.
    pub fn message_id_from_key(self, key: &str) -> PipelinesCall {
        self.with_message_id(EventId::from_key(key))
    }

    fn set(mut self, name: &str, value: impl Into<Value>) -> PipelinesCall {
        self.body.insert(name.into(), value.into());
        self.line = None;
        self
    }

    /// The call's type.
    pub fn call_type(&self) -> PipelinesCallType {
        self.kind
    }

    /// The call's `messageId`.
    pub fn message_id(&self) -> &str {
        self.body
            .get("messageId")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// Who the call is about: its `userId`, else its `anonymousId`. Calls
    /// about the same person must reach Customer.io in order.
    pub fn person(&self) -> &str {
        ["userId", "anonymousId"]
            .iter()
            .find_map(|field| self.body.get(*field).and_then(Value::as_str))
            .unwrap_or_default()
    }

    /// The bytes that go out (the line it was read from, or compact JSON),
    /// the parsed body dropped.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        match self.line {
            Some(line) => line,
            None => serde_json::to_vec(&self.body).expect("a JSON map always serializes"),
        }
    }

    /// The person an alias renames: its `previousId`, if any.
    pub(crate) fn previous_id(&self) -> Option<&str> {
        self.body
            .get("previousId")
            .and_then(Value::as_str)
            .filter(|previous| !previous.is_empty())
    }

    /// The call as JSON.
    pub fn to_json(&self) -> Value {
        Value::Object(self.body.clone())
    }

    /// The call as it is sent: the line it was read from, or compact JSON.
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match &self.line {
            Some(line) => Cow::Borrowed(line),
            None => {
                Cow::Owned(serde_json::to_vec(&self.body).expect("a JSON map always serializes"))
            }
        }
    }

    /// The call's bytes, checked to be sendable: its fields and its size.
    pub(crate) fn checked_bytes(&self) -> Result<Cow<'_, [u8]>, Invalid> {
        self.check_fields()?;
        let bytes = self.to_bytes();
        validate::item_size(bytes.len())?;
        Ok(bytes)
    }

    fn check_fields(&self) -> Result<(), Invalid> {
        let body = &self.body;
        let text = |field: &'static str| -> Result<Option<&str>, Invalid> {
            match body.get(field) {
                None => Ok(None),
                Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
                Some(_) => Err(Invalid::Call(format!(
                    "\"{field}\" must be a non-empty string"
                ))),
            }
        };
        let required = |field: &'static str| -> Result<(), Invalid> {
            match text(field)? {
                Some(_) => Ok(()),
                None => Err(Invalid::Call(format!(
                    "a {} call needs \"{field}\"",
                    self.kind
                ))),
            }
        };
        if text("userId")?.is_none() && text("anonymousId")?.is_none() {
            return Err(Invalid::Call(
                "a call needs a \"userId\" or an \"anonymousId\"".into(),
            ));
        }
        required("messageId")?;
        text("timestamp")?;
        text("name")?;
        match self.kind {
            PipelinesCallType::Track => required("event")?,
            PipelinesCallType::Group => required("groupId")?,
            PipelinesCallType::Alias => required("previousId")?,
            _ => {}
        }
        for field in ["traits", "properties", "context"] {
            if body.get(field).is_some_and(|value| !value.is_object()) {
                return Err(Invalid::Call(format!("\"{field}\" must be a JSON object")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(value: Value) -> Result<PipelinesCall, Invalid> {
        match PipelinesCall::from_json(value) {
            Ok(call) => Ok(call),
            Err(crate::Error::Invalid(invalid)) => Err(invalid),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn built_calls_carry_their_type_user_and_a_message_id() {
        let track = PipelinesCall::track(PipelinesUser::id("42").with_anonymous_id("a"), "paid")
            .properties(json!({"total": 3}))
            .unwrap();
        let json = track.to_json();
        assert_eq!(json["type"], "track");
        assert_eq!(json["userId"], "42");
        assert_eq!(json["anonymousId"], "a");
        assert_eq!(json["event"], "paid");
        assert_eq!(json["properties"]["total"], 3);
        assert_eq!(track.message_id().len(), 26);
        assert_eq!(track.person(), "42");
        assert!(track.checked_bytes().is_ok());
        let keyed = PipelinesCall::alias("42", "a").message_id_from_key("k");
        assert_eq!(keyed.message_id(), EventId::from_key("k").as_str());
        assert_eq!(
            PipelinesCall::page(PipelinesUser::anonymous("v")).person(),
            "v"
        );
    }

    #[test]
    fn each_type_needs_its_own_fields() {
        let missing = [
            (json!({"type": "track", "userId": "1"}), "event"),
            (json!({"type": "group", "userId": "1"}), "groupId"),
            (json!({"type": "alias", "userId": "1"}), "previousId"),
            (json!({"type": "identify"}), "userId"),
            (json!({"type": "identify", "userId": ""}), "userId"),
            (json!({"type": "identify", "userId": 7}), "userId"),
            (json!({"type": "merge", "userId": "1"}), "unknown type"),
            (json!({"userId": "1"}), "type"),
            (
                json!({"type": "identify", "userId": "1", "traits": []}),
                "traits",
            ),
            (
                json!({"type": "page", "userId": "1", "messageId": null}),
                "messageId",
            ),
        ];
        for (value, field) in missing {
            let error = call(value.clone()).unwrap_err();
            assert!(
                matches!(&error, Invalid::Call(reason) if reason.contains(field)),
                "{value}: {error}"
            );
        }
        assert_eq!(
            call(json!([1])).unwrap_err(),
            Invalid::NotAnObject("a Pipelines call")
        );
        let alias = call(json!({"type": "alias", "userId": "1", "previousId": "a"})).unwrap();
        assert_eq!(alias.call_type(), PipelinesCallType::Alias);
    }

    #[test]
    fn calls_over_32_kb_are_refused_before_sending() {
        let big = PipelinesCall::identify("1")
            .traits(json!({"bio": "x".repeat(33_000)}))
            .unwrap();
        assert!(matches!(
            big.checked_bytes(),
            Err(Invalid::ItemTooLarge(bytes)) if bytes > 33_000
        ));
        let error =
            call(json!({"type": "identify", "userId": "1", "traits": {"bio": "x".repeat(33_000)}}));
        assert!(matches!(error, Err(Invalid::ItemTooLarge(_))));
    }

    #[test]
    fn lines_keep_their_bytes_and_derive_a_stable_message_id() {
        let line = b"{\"type\":\"track\", \"userId\":\"1\",\"event\":\"e\",\"properties\":{\"n\":1.50}}\r\n";
        let call = PipelinesCall::from_line(line, "file:3").unwrap();
        assert_eq!(call.message_id(), EventId::from_key("file:3").as_str());
        let bytes = call.to_bytes();
        let expected = format!(
            "{{\"messageId\":\"{}\",\"type\":\"track\", \"userId\":\"1\",\"event\":\"e\",\"properties\":{{\"n\":1.50}}}}",
            EventId::from_key("file:3")
        );
        assert_eq!(std::str::from_utf8(&bytes).unwrap(), expected);
        let parsed: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed, call.to_json());
        assert_ne!(
            PipelinesCall::from_line(line, "file:4")
                .unwrap()
                .message_id(),
            call.message_id()
        );

        let with_id = br#"{"type":"identify","userId":"1","messageId":"mine"}"#;
        let call = PipelinesCall::from_line(with_id, "file:5").unwrap();
        assert_eq!(call.message_id(), "mine");
        assert_eq!(&*call.to_bytes(), with_id);
        // A change drops the line's bytes.
        assert_ne!(&*call.name("x").to_bytes(), with_id);
    }

    #[test]
    fn bad_lines_say_why() {
        assert!(matches!(
            PipelinesCall::from_line(b"{nope", "k"),
            Err(Invalid::Json(_))
        ));
        assert!(matches!(
            PipelinesCall::from_line(b"[]", "k"),
            Err(Invalid::NotAnObject(_))
        ));
        assert!(matches!(
            PipelinesCall::from_line(br#"{"type":"track","userId":"1"}"#, "k"),
            Err(Invalid::Call(_))
        ));
        let big = format!(
            r#"{{"type":"identify","userId":"1","traits":{{"bio":"{}"}}}}"#,
            "x".repeat(32_700)
        );
        assert!(matches!(
            PipelinesCall::from_line(big.as_bytes(), "k"),
            Err(Invalid::ItemTooLarge(bytes)) if bytes > 32_768
        ));
    }
}
