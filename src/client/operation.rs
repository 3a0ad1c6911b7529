//! Track v2 operations: the body of `/api/v2/entity` and each item of `/api/v2/batch`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::event::{Event, to_object};
use crate::client::event_id::EventId;
use crate::client::identifier::Identifier;
use crate::client::validate::{self, Invalid};

/// One validated Track v2 operation, such as identifying a person or
/// recording an event.
///
/// Build one with the constructors, or from the JSON Customer.io documents
/// with [`from_json`](Operation::from_json) or [`from_slice`](Operation::from_slice).
/// Either way it is checked against Customer.io's rules and limits, and an
/// event without an `id` gets one.
///
/// The bytes it sends are fixed when it is built: an operation read with
/// `from_slice` goes out exactly as it came (an integer id of 23 digits keeps
/// every digit), with only a missing event `id` added.
///
/// ```
/// use cio_ratelimit::{Event, Identifier, Operation};
/// use serde_json::json;
///
/// let identify = Operation::identify(Identifier::email("ada@example.com"), json!({"plan": "pro"}))?;
/// let event = Operation::event("42", &Event::new("signed_up"))?;
/// let parsed = Operation::from_json(json!({
///     "type": "person", "action": "identify",
///     "identifiers": {"id": "42"}, "attributes": {"plan": "pro"}
/// }))?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    body: Map<String, Value>,
    /// What goes out: the original text, or `body` serialized once.
    bytes: Vec<u8>,
}

// Customer.io's table of v2 actions by type.
const PERSON_ACTIONS: &[&str] = &[
    "identify",
    "delete",
    "event",
    "screen",
    "page",
    "add_relationships",
    "delete_relationships",
    "add_device",
    "delete_device",
    "merge",
    "suppress",
    "unsuppress",
];
const OBJECT_ACTIONS: &[&str] = &[
    "identify",
    "identify_anonymous",
    "delete",
    "event",
    "add_relationships",
    "delete_relationships",
];
const DELIVERY_ACTIONS: &[&str] = &["event"];
const EVENT_ACTIONS: &[&str] = &["event", "screen", "page"];

impl Operation {
    /// Creates or updates a person with `attributes` (a JSON object).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if the identifier or an
    /// attribute breaks Customer.io's limits.
    pub fn identify(
        person: impl Into<Identifier>,
        attributes: impl Serialize,
    ) -> crate::Result<Operation> {
        let person = person.into();
        let mut body = person_op(&person, "identify");
        body.insert(
            "attributes".into(),
            Value::Object(to_object(attributes, "attributes")?),
        );
        Ok(Operation::from_json(Value::Object(body))?)
    }

    /// Records `event` for a person, with the event's id.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if the identifier or the
    /// event breaks Customer.io's limits.
    pub fn event(person: impl Into<Identifier>, event: &Event) -> crate::Result<Operation> {
        let person = person.into();
        let mut body = person_op(&person, event.kind.as_str());
        body.insert("name".into(), Value::String(event.name.clone()));
        body.insert("id".into(), Value::String(event.id.to_string()));
        if let Some(timestamp) = event.timestamp {
            body.insert("timestamp".into(), Value::from(timestamp));
        }
        if !event.data.is_empty() {
            body.insert("attributes".into(), Value::Object(event.data.clone()));
        }
        Ok(Operation::from_json(Value::Object(body))?)
    }

    /// Deletes a person.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if the identifier is empty or too long.
    pub fn delete(person: impl Into<Identifier>) -> crate::Result<Operation> {
        Ok(Operation::from_json(Value::Object(person_op(
            &person.into(),
            "delete",
        )))?)
    }

    /// Checks a v2 operation given as JSON; an event without an `id` gets a
    /// random one.
    ///
    /// # Errors
    ///
    /// [`Invalid`] saying what is wrong: not an object, an unknown `type` or
    /// `action`, missing or oversize identifiers (an event may carry an
    /// `anonymous_id` instead), a missing event name,
    /// attributes that break the limits, or more than 32 KB in all.
    pub fn from_json(value: Value) -> Result<Operation, Invalid> {
        let Value::Object(mut body) = value else {
            return Err(Invalid::NotAnObject("an operation"));
        };
        if lacks_event_id(&body) {
            body.insert("id".into(), Value::String(EventId::new().to_string()));
        }
        let bytes = serde_json::to_vec(&body).expect("a JSON map always serializes");
        Operation::checked(body, bytes)
    }

    /// Reads and checks a v2 operation from its JSON text, which is what
    /// goes out, unchanged: numbers keep every digit. An event without an
    /// `id` gets a random one, added to the text.
    ///
    /// ```
    /// use cio_ratelimit::Operation;
    ///
    /// let text = br#"{"type":"person","action":"identify","identifiers":{"id":12345678901234567890123}}"#;
    /// let operation = Operation::from_slice(text)?;
    /// assert_eq!(operation.as_bytes(), text);
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Invalid::Json`] if it is not JSON; otherwise as
    /// [`from_json`](Operation::from_json).
    pub fn from_slice(text: &[u8]) -> Result<Operation, Invalid> {
        let value = serde_json::from_slice(text).map_err(|err| Invalid::Json(err.to_string()))?;
        Operation::from_text(value, text, EventId::new)
    }

    /// [`from_slice`](Operation::from_slice) for text already parsed into
    /// `value`; an event without an id gets `event_id()`.
    pub(crate) fn from_text(
        value: Value,
        text: &[u8],
        event_id: impl FnOnce() -> EventId,
    ) -> Result<Operation, Invalid> {
        let Value::Object(mut body) = value else {
            return Err(Invalid::NotAnObject("an operation"));
        };
        let text = text.trim_ascii();
        let bytes = if !lacks_event_id(&body) {
            text.to_vec()
        } else {
            let id = event_id().to_string();
            let spliced = match (body.contains_key("id"), text.strip_suffix(b"}")) {
                // Add the id at the end, leaving the rest byte for byte.
                (false, Some(open)) => {
                    let mut bytes = Vec::with_capacity(text.len() + id.len() + 8);
                    bytes.extend_from_slice(open.trim_ascii_end());
                    bytes.extend_from_slice(b",\"id\":\"");
                    bytes.extend_from_slice(id.as_bytes());
                    bytes.extend_from_slice(b"\"}");
                    Some(bytes)
                }
                // `"id": null` is replaced: the text is written anew.
                _ => None,
            };
            body.insert("id".into(), Value::String(id));
            spliced
                .unwrap_or_else(|| serde_json::to_vec(&body).expect("a JSON map always serializes"))
        };
        Operation::checked(body, bytes)
    }

    /// Checks `body` against Customer.io's rules, and `bytes` (what will be
    /// sent) against the size limit.
    fn checked(body: Map<String, Value>, bytes: Vec<u8>) -> Result<Operation, Invalid> {
        let kind = string_field(&body, "type")?;
        let action = string_field(&body, "action")?;
        let actions = match kind {
            "person" => PERSON_ACTIONS,
            "object" => OBJECT_ACTIONS,
            "delivery" => DELIVERY_ACTIONS,
            other => return Err(Invalid::Operation(format!("unknown type {other:?}"))),
        };
        if !actions.contains(&action) {
            return Err(Invalid::Operation(format!(
                "unknown action {action:?} for type {kind:?}"
            )));
        }
        let is_event = EVENT_ACTIONS.contains(&action);
        let is_merge = kind == "person" && action == "merge";
        // A person's event may name an anonymous visitor instead of a person.
        let anonymous = kind == "person"
            && is_event
            && !body.contains_key("identifiers")
            && body
                .get("anonymous_id")
                .and_then(Value::as_str)
                .is_some_and(|id| !id.is_empty());
        if anonymous {
            validate::identifier(
                "anonymous_id",
                body["anonymous_id"].as_str().unwrap_or_default(),
            )?;
        } else if is_merge {
            // A merge names its two people as `primary` and `secondary`.
            for side in ["primary", "secondary"] {
                match body.get(side) {
                    Some(Value::Object(person)) => check_person(person)?,
                    _ => {
                        return Err(Invalid::Operation(
                            "merge needs primary and secondary identifiers".into(),
                        ));
                    }
                }
            }
        } else if !(kind == "object" && action == "identify_anonymous") {
            check_identifiers(kind, &body)?;
        }
        if is_event {
            validate::event_name(body.get("name").and_then(Value::as_str).unwrap_or(""))?;
            validate::timestamp(body.get("timestamp"))?;
        }
        match body.get("attributes") {
            None => {}
            Some(Value::Object(attributes)) if is_event => {
                validate::event_data(&Value::Object(attributes.clone()))?
            }
            Some(Value::Object(attributes)) => validate::attributes(attributes)?,
            Some(_) => return Err(Invalid::NotAnObject("attributes")),
        }
        if is_event && !matches!(body.get("id"), Some(Value::String(id)) if !id.is_empty()) {
            return Err(Invalid::Operation(
                "an event id must be a non-empty string".into(),
            ));
        }
        validate::item_size(bytes.len())?;
        Ok(Operation { body, bytes })
    }

    /// The operation as JSON.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.body
    }

    /// The operation's `type`: `person`, `object` or `delivery`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    /// The operation's `action`, such as `identify` or `event`.
    pub fn action(&self) -> &str {
        self.body["action"].as_str().unwrap_or_default()
    }

    /// The event id, for event operations.
    pub fn event_id(&self) -> Option<&str> {
        EVENT_ACTIONS
            .contains(&self.action())
            .then(|| self.body["id"].as_str())
            .flatten()
    }

    /// The JSON text that goes out: as it was read, or as it was built.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// [`as_bytes`](Operation::as_bytes), copied.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Whether sending it twice has the effect of sending it once: true
    /// unless it is a `merge`, whose second attempt would find the secondary
    /// person gone.
    pub fn is_repeatable(&self) -> bool {
        !(self.kind() == "person" && self.action() == "merge")
    }

    /// The bytes that go out, the parsed body dropped.
    pub(crate) fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// Whether `body` is an event operation without an id, that will need one.
fn lacks_event_id(body: &Map<String, Value>) -> bool {
    let is_event = body
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|action| EVENT_ACTIONS.contains(&action));
    is_event && body.get("id").is_none_or(Value::is_null)
}

fn person_op(person: &Identifier, action: &str) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("type".into(), Value::String("person".into()));
    body.insert("action".into(), Value::String(action.into()));
    body.insert("identifiers".into(), person.to_json());
    body
}

fn string_field<'a>(body: &'a Map<String, Value>, field: &str) -> Result<&'a str, Invalid> {
    match body.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        Some(_) => Err(Invalid::Operation(format!(
            "{field:?} must be a non-empty string"
        ))),
        None => Err(Invalid::Operation(format!("no {field:?}"))),
    }
}

/// A person needs one of `id`, `email`, `cio_id`; an object `object_type_id`
/// and `object_id`; a delivery its `id`. Each within the identifier limits.
fn check_identifiers(kind: &str, body: &Map<String, Value>) -> Result<(), Invalid> {
    let Some(Value::Object(identifiers)) = body.get("identifiers") else {
        return Err(Invalid::Operation("no \"identifiers\" object".into()));
    };
    if kind == "person" {
        validate::person_identifiers(identifiers)?;
    }
    check_any_of(identifiers, required_identifiers(kind))
}

const PERSON_IDENTIFIERS: &[&str] = &["id", "email", "cio_id"];

/// A merge's `primary` or `secondary`: one person's identifiers.
fn check_person(identifiers: &Map<String, Value>) -> Result<(), Invalid> {
    validate::person_identifiers(identifiers)?;
    check_any_of(identifiers, &[PERSON_IDENTIFIERS])
}

fn required_identifiers(kind: &str) -> &'static [&'static [&'static str]] {
    match kind {
        "person" => &[PERSON_IDENTIFIERS],
        "object" => &[&["object_type_id"], &["object_id"]],
        _ => &[&["id"]],
    }
}

/// For each group of keys, one at least is there; each there is a valid identifier.
fn check_any_of(
    identifiers: &Map<String, Value>,
    required: &[&[&'static str]],
) -> Result<(), Invalid> {
    for any_of in required {
        let mut found = false;
        for &key in *any_of {
            match identifiers.get(key) {
                Some(Value::String(value)) => {
                    validate::identifier(key, value)?;
                    found = true;
                }
                Some(Value::Number(number)) => {
                    validate::identifier(key, &number.to_string())?;
                    found = true;
                }
                Some(_) => {
                    return Err(Invalid::Operation(format!(
                        "identifier {key:?} must be a string"
                    )));
                }
                None => {}
            }
        }
        if !found {
            return Err(Invalid::Operation(format!(
                "identifiers need one of {any_of:?}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(value: Value) -> String {
        Operation::from_json(value).unwrap_err().to_string()
    }

    #[test]
    fn valid_operations_pass_and_events_get_an_id() {
        let op = Operation::from_json(json!({
            "type": "person", "action": "event", "identifiers": {"email": "a@b.c"}, "name": "x"
        }))
        .unwrap();
        assert_eq!(op.event_id().unwrap().len(), 26);
        let kept = Operation::from_json(json!({
            "type": "person", "action": "page", "identifiers": {"id": 7}, "name": "/", "id": "mine"
        }))
        .unwrap();
        assert_eq!(kept.event_id(), Some("mine"));
        let anonymous =
            json!({"type": "person", "action": "page", "anonymous_id": "v-1", "name": "/"});
        assert!(Operation::from_json(anonymous).is_ok());
        assert!(
            reason(json!({"type": "person", "action": "page", "anonymous_id": "", "name": "/"}))
                .contains("identifiers")
        );
        let object = json!({"type": "object", "action": "identify",
            "identifiers": {"object_type_id": "1", "object_id": "acme"}, "attributes": {"n": 1}});
        assert!(Operation::from_json(object).is_ok());
    }

    #[test]
    fn invalid_operations_say_why() {
        assert!(reason(json!([])).contains("must be a JSON object"));
        assert!(reason(json!({"action": "identify"})).contains("no \"type\""));
        assert!(reason(json!({"type": "robot", "action": "identify"})).contains("unknown type"));
        assert!(reason(json!({"type": "person", "action": "fly"})).contains("unknown action"));
        assert!(reason(json!({"type": "person", "action": "identify"})).contains("identifiers"));
        assert!(
            reason(json!({"type": "person", "action": "identify", "identifiers": {}}))
                .contains("one of")
        );
        assert!(
            reason(json!({"type": "person", "action": "identify", "identifiers": {"id": ""}}))
                .contains("empty")
        );
        assert!(
            reason(json!({"type": "person", "action": "event", "identifiers": {"id": "1"}}))
                .contains("name")
        );
        assert!(
            reason(json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}, "attributes": 5}))
                .contains("object")
        );
        assert!(
            reason(json!({"type": "person", "action": "merge", "identifiers": {"id": "1"}}))
                .contains("primary")
        );
        let big = "x".repeat(999);
        let attributes: Map<String, Value> =
            (0..40).map(|i| (format!("a{i}"), json!(big))).collect();
        assert!(
            reason(json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}, "attributes": attributes}))
                .contains("32768")
        );
    }
}
