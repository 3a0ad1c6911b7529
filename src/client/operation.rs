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
/// with [`from_json`](Operation::from_json). Either way it is checked against
/// Customer.io's rules and limits, and an event without an `id` gets one.
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
        let operation = Operation::from_json_any_size(value)?;
        validate::item_size(operation.to_bytes().len())?;
        Ok(operation)
    }

    /// [`from_json`](Operation::from_json) without the size check, for a
    /// caller that checks the size of the bytes it will send itself.
    pub(crate) fn from_json_any_size(value: Value) -> Result<Operation, Invalid> {
        let Value::Object(mut body) = value else {
            return Err(Invalid::NotAnObject("an operation"));
        };
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
        } else if !(kind == "object" && action == "identify_anonymous") {
            check_identifiers(kind, &body)?;
        }
        if is_event {
            validate::event_name(body.get("name").and_then(Value::as_str).unwrap_or(""))?;
        }
        match body.get("attributes") {
            None => {}
            Some(Value::Object(attributes)) if is_event => {
                validate::event_data(&Value::Object(attributes.clone()))?
            }
            Some(Value::Object(attributes)) => validate::attributes(attributes)?,
            Some(_) => return Err(Invalid::NotAnObject("attributes")),
        }
        if action == "merge"
            && !(body.get("primary").is_some_and(Value::is_object)
                && body.get("secondary").is_some_and(Value::is_object))
        {
            return Err(Invalid::Operation(
                "merge needs primary and secondary identifiers".into(),
            ));
        }
        if is_event {
            match body.get("id") {
                None | Some(Value::Null) => {
                    body.insert("id".into(), Value::String(EventId::new().to_string()));
                }
                Some(Value::String(id)) if !id.is_empty() => {}
                Some(_) => {
                    return Err(Invalid::Operation(
                        "an event id must be a non-empty string".into(),
                    ));
                }
            }
        }
        Ok(Operation { body })
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

    /// The operation as compact JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.body).expect("a JSON map always serializes")
    }
}

/// Whether `value` is an event operation without an id, that will need one.
pub(crate) fn lacks_event_id(value: &Value) -> bool {
    let is_event = value
        .get("action")
        .and_then(Value::as_str)
        .is_some_and(|action| EVENT_ACTIONS.contains(&action));
    is_event && value.get("id").is_none_or(Value::is_null)
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
    let required: &[&[&'static str]] = match kind {
        "person" => &[&["id", "email", "cio_id"]],
        "object" => &[&["object_type_id"], &["object_id"]],
        _ => &[&["id"]],
    };
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
