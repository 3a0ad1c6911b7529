//! Customer.io's documented limits and the shape checks shared by the Track and App APIs.

use serde_json::{Map, Value};

/// An identifier (id, email, cio_id) may be at most this long.
pub(crate) const MAX_IDENTIFIER_BYTES: usize = 150;
/// An attribute name may be at most this long.
pub(crate) const MAX_ATTRIBUTE_NAME_BYTES: usize = 150;
/// An attribute value may be at most this long (a string's length; otherwise its JSON text).
pub(crate) const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1000;
/// One call may set at most this many attributes.
pub(crate) const MAX_ATTRIBUTES: usize = 300;
/// An event name may be at most this long.
pub(crate) const MAX_EVENT_NAME_BYTES: usize = 100;
/// An event's data, as serialized JSON, may be at most this long.
pub(crate) const MAX_EVENT_DATA_BYTES: usize = 100_000;
/// A `/api/v2/entity` body and each item of a batch, serialized, may be at most this long.
pub(crate) const MAX_ENTITY_BYTES: usize = 32_768;
/// A `/api/v2/batch` body must be shorter than this.
pub(crate) const MAX_BATCH_BYTES: usize = 500_000;

/// Why a request, or one item of a batch, was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Violation {
    /// A short machine-readable reason: `required`, `invalid`, `too_long`, `too_large`,
    /// `too_many`, `malformed`.
    pub(crate) reason: &'static str,
    /// The offending field, dotted (`identifiers.id`, `attributes.plan`), or empty.
    pub(crate) field: String,
    /// A sentence for people, in Customer.io's words where it has any.
    pub(crate) message: String,
}

impl Violation {
    pub(crate) fn new(reason: &'static str, field: impl Into<String>, message: String) -> Self {
        Violation {
            reason,
            field: field.into(),
            message,
        }
    }
}

/// A body parsed as a JSON object; an empty body is an empty object.
pub(crate) fn json_object(body: &[u8]) -> Result<Map<String, Value>, Violation> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Violation::new(
            "invalid",
            "",
            "the request body must be a JSON object".into(),
        )),
        Err(error) => Err(Violation::new(
            "malformed",
            "",
            format!("malformed JSON: {error}"),
        )),
    }
}

/// The length Customer.io measures for a value: a string's bytes, otherwise its JSON text.
pub(crate) fn value_len(value: &Value) -> usize {
    match value {
        Value::String(text) => text.len(),
        other => serialized_len(other),
    }
}

pub(crate) fn serialized_len(value: &Value) -> usize {
    serde_json::to_vec(value).map_or(usize::MAX, |bytes| bytes.len())
}

/// An identifier given as a string (an id, an email, a path segment).
pub(crate) fn identifier(field: &str, value: &str) -> Result<(), Violation> {
    if value.is_empty() {
        return Err(Violation::new(
            "required",
            field,
            format!("{field} cannot be an empty string"),
        ));
    }
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(Violation::new(
            "too_long",
            field,
            format!("{field} cannot be longer than {MAX_IDENTIFIER_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The attributes of one call: at most 300, names ≤ 150 bytes, values ≤ 1000 bytes.
pub(crate) fn attributes(field: &str, attributes: &Map<String, Value>) -> Result<(), Violation> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Violation::new(
            "too_many",
            field,
            format!("cannot identify more than {MAX_ATTRIBUTES} attributes in one request"),
        ));
    }
    for (name, value) in attributes {
        let dotted = dotted(field, name);
        if name.len() > MAX_ATTRIBUTE_NAME_BYTES {
            return Err(Violation::new(
                "too_long",
                dotted,
                format!("attribute name cannot be longer than {MAX_ATTRIBUTE_NAME_BYTES} bytes"),
            ));
        }
        if value_len(value) > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(Violation::new(
                "too_long",
                dotted,
                format!(
                    "value for attribute '{name}' cannot be longer than {MAX_ATTRIBUTE_VALUE_BYTES} bytes"
                ),
            ));
        }
    }
    Ok(())
}

/// An optional object-valued field (`attributes`, `data`): absent or null is an empty object.
pub(crate) fn optional_object(
    object: &Map<String, Value>,
    field: &str,
    message: &str,
) -> Result<Map<String, Value>, Violation> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map.clone()),
        Some(_) => Err(Violation::new("invalid", field, message.to_owned())),
    }
}

/// An event's name: present, not blank, at most 100 bytes.
pub(crate) fn event_name(object: &Map<String, Value>) -> Result<String, Violation> {
    match object.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => {
            if name.len() > MAX_EVENT_NAME_BYTES {
                Err(Violation::new(
                    "too_long",
                    "name",
                    format!("event name cannot be longer than {MAX_EVENT_NAME_BYTES} bytes"),
                ))
            } else {
                Ok(name.clone())
            }
        }
        Some(Value::String(_)) | None | Some(Value::Null) => Err(Violation::new(
            "required",
            "name",
            "event name must not be blank".into(),
        )),
        Some(_) => Err(Violation::new(
            "invalid",
            "name",
            "event name must be a string".into(),
        )),
    }
}

/// An event's data: at most 100,000 bytes of JSON.
pub(crate) fn event_data(field: &str, data: &Map<String, Value>) -> Result<(), Violation> {
    let len = serde_json::to_vec(data).map_or(usize::MAX, |bytes| bytes.len());
    if len > MAX_EVENT_DATA_BYTES {
        return Err(Violation::new(
            "too_large",
            field,
            format!("event data cannot be longer than {MAX_EVENT_DATA_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// An event's optional `id`: a string (Customer.io dedups events by it).
pub(crate) fn event_id(object: &Map<String, Value>) -> Result<Option<String>, Violation> {
    match object.get("id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(id)) if !id.is_empty() => Ok(Some(id.clone())),
        Some(_) => Err(Violation::new(
            "invalid",
            "id",
            "event id must be a non-empty string".into(),
        )),
    }
}

/// An optional Unix `timestamp` in whole seconds.
pub(crate) fn timestamp(object: &Map<String, Value>) -> Result<Option<i64>, Violation> {
    match object.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value.as_i64().map(Some).ok_or_else(|| {
            Violation::new(
                "invalid",
                "timestamp",
                "timestamp must be a Unix timestamp in whole seconds".into(),
            )
        }),
    }
}

/// The key of a person named by `{id | email | cio_id}`: exactly one usable identifier.
/// The key is the `id`, the `email`, or `cio_` followed by the `cio_id`.
pub(crate) fn person_key(field: &str, identifiers: Option<&Value>) -> Result<String, Violation> {
    let Some(Value::Object(identifiers)) = identifiers else {
        return Err(Violation::new(
            "required",
            field,
            format!("{field} must be an object with one of id, email or cio_id"),
        ));
    };
    let mut usable = Vec::with_capacity(1);
    for name in ["id", "email", "cio_id"] {
        let text = match identifiers.get(name) {
            Some(Value::String(text)) if !text.is_empty() => text.clone(),
            Some(Value::Number(number)) if name != "email" => number.to_string(),
            _ => continue,
        };
        usable.push((name, text));
    }
    match usable.as_slice() {
        [(name, value)] => {
            identifier(&dotted(field, name), value)?;
            Ok(if *name == "cio_id" {
                format!("cio_{value}")
            } else {
                value.clone()
            })
        }
        [] => Err(Violation::new(
            "required",
            field,
            format!("{field} must contain one of id, email or cio_id"),
        )),
        _ => Err(Violation::new(
            "invalid",
            field,
            format!("{field} must contain exactly one of id, email or cio_id"),
        )),
    }
}

/// A device: `{"id" or "token", "platform": "ios" | "android", "last_used", "attributes"}`.
/// Returns the device id and the device object as sent.
pub(crate) fn device(field: &str, device: Option<&Value>) -> Result<(String, Value), Violation> {
    let Some(Value::Object(object)) = device else {
        return Err(Violation::new(
            "required",
            field,
            format!("{field} must be an object"),
        ));
    };
    let id = ["id", "token"]
        .iter()
        .find_map(|key| object.get(*key).and_then(Value::as_str))
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            Violation::new(
                "required",
                dotted(field, "id"),
                format!("{field} needs an id (its token)"),
            )
        })?;
    match object.get("platform").and_then(Value::as_str) {
        Some("ios" | "android") => {}
        _ => {
            return Err(Violation::new(
                "invalid",
                dotted(field, "platform"),
                "device platform must be \"ios\" or \"android\"".into(),
            ));
        }
    }
    if let Some(last_used) = object.get("last_used")
        && !last_used.is_null()
        && !last_used.is_i64()
    {
        return Err(Violation::new(
            "invalid",
            dotted(field, "last_used"),
            "last_used must be a Unix timestamp in whole seconds".into(),
        ));
    }
    let attributes_field = dotted(field, "attributes");
    let attributes = optional_object(object, "attributes", "device attributes must be an object")
        .map_err(|violation| Violation {
        field: attributes_field.clone(),
        ..violation
    })?;
    self::attributes(&attributes_field, &attributes)?;
    Ok((id.to_owned(), Value::Object(object.clone())))
}

/// A device token only (to delete a device).
pub(crate) fn device_token(field: &str, device: Option<&Value>) -> Result<String, Violation> {
    device
        .and_then(Value::as_object)
        .and_then(|object| {
            ["token", "id"]
                .iter()
                .find_map(|key| object.get(*key).and_then(Value::as_str))
        })
        .filter(|token| !token.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Violation::new(
                "required",
                dotted(field, "token"),
                format!("{field} needs a token"),
            )
        })
}

fn dotted(field: &str, name: &str) -> String {
    if field.is_empty() {
        name.to_owned()
    } else {
        format!("{field}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn person_key_takes_exactly_one_identifier() {
        let key = |v: Value| person_key("identifiers", Some(&v));
        assert_eq!(key(json!({"id": "42"})).unwrap(), "42");
        assert_eq!(key(json!({"id": 42})).unwrap(), "42");
        assert_eq!(key(json!({"email": "a@b.c"})).unwrap(), "a@b.c");
        assert_eq!(key(json!({"cio_id": "f00"})).unwrap(), "cio_f00");
        assert_eq!(key(json!({"id": null, "email": "a@b.c"})).unwrap(), "a@b.c");
        assert_eq!(key(json!({"id": ""})).unwrap_err().reason, "required");
        assert_eq!(key(json!({})).unwrap_err().reason, "required");
        assert_eq!(
            key(json!({"id": "1", "email": "a@b.c"}))
                .unwrap_err()
                .reason,
            "invalid"
        );
        assert_eq!(key(json!("42")).unwrap_err().reason, "required");
        let long = "x".repeat(151);
        let error = key(json!({ "id": long })).unwrap_err();
        assert_eq!(
            (error.reason, error.field.as_str()),
            ("too_long", "identifiers.id")
        );
        assert!(key(json!({ "id": "x".repeat(150) })).is_ok());
    }

    #[test]
    fn attribute_limits_are_inclusive() {
        let at_limit = object(json!({ "n".repeat(150): "v".repeat(1000) }));
        assert!(attributes("attributes", &at_limit).is_ok());
        let long_name = object(json!({ "n".repeat(151): 1 }));
        assert_eq!(
            attributes("attributes", &long_name).unwrap_err().reason,
            "too_long"
        );
        let long_value = object(json!({ "plan": "v".repeat(1001) }));
        let error = attributes("attributes", &long_value).unwrap_err();
        assert_eq!(error.field, "attributes.plan");
        // Non-strings are measured by their JSON text: 1001 bytes here.
        let list = object(json!({ "list": [ "v".repeat(997) ] }));
        assert_eq!(value_len(&list["list"]), 1001);
        assert!(attributes("attributes", &list).is_err());
        let many: Map<String, Value> = (0..301).map(|i| (format!("a{i}"), json!(i))).collect();
        assert_eq!(
            attributes("attributes", &many).unwrap_err().reason,
            "too_many"
        );
        let enough: Map<String, Value> = (0..300).map(|i| (format!("a{i}"), json!(i))).collect();
        assert!(attributes("attributes", &enough).is_ok());
    }

    #[test]
    fn event_checks() {
        assert_eq!(event_name(&object(json!({"name": "x"}))).unwrap(), "x");
        assert!(event_name(&object(json!({ "name": "n".repeat(100) }))).is_ok());
        assert_eq!(
            event_name(&object(json!({ "name": "n".repeat(101) })))
                .unwrap_err()
                .reason,
            "too_long"
        );
        assert_eq!(
            event_name(&object(json!({"name": " "})))
                .unwrap_err()
                .reason,
            "required"
        );
        assert_eq!(
            event_name(&object(json!({}))).unwrap_err().reason,
            "required"
        );
        // {"d":"..."} is 8 bytes of JSON around the string.
        let data = object(json!({ "d": "x".repeat(100_000 - 8) }));
        assert!(event_data("data", &data).is_ok());
        let data = object(json!({ "d": "x".repeat(100_000 - 7) }));
        assert_eq!(event_data("data", &data).unwrap_err().reason, "too_large");
        assert_eq!(
            timestamp(&object(json!({"timestamp": 1.5})))
                .unwrap_err()
                .field,
            "timestamp"
        );
        assert_eq!(
            timestamp(&object(json!({"timestamp": 17}))).unwrap(),
            Some(17)
        );
        assert!(event_id(&object(json!({"id": 5}))).is_err());
    }

    #[test]
    fn json_object_accepts_empty_bodies_and_refuses_others() {
        assert!(json_object(b"").unwrap().is_empty());
        assert_eq!(json_object(b"[1]").unwrap_err().reason, "invalid");
        assert_eq!(json_object(b"{").unwrap_err().reason, "malformed");
    }

    #[test]
    fn devices_need_an_id_and_a_platform() {
        let ok = json!({"id": "tok", "platform": "ios", "last_used": 5});
        assert_eq!(device("device", Some(&ok)).unwrap().0, "tok");
        let v2 = json!({"token": "tok2", "platform": "android"});
        assert_eq!(device("device", Some(&v2)).unwrap().0, "tok2");
        let no_platform = json!({"id": "tok"});
        assert_eq!(
            device("device", Some(&no_platform)).unwrap_err().field,
            "device.platform"
        );
        assert!(device("device", None).is_err());
        assert_eq!(
            device_token("device", Some(&json!({"token": "t"}))).unwrap(),
            "t"
        );
    }
}
