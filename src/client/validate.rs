//! Customer.io's size limits, checked before anything is sent: the limits
//! themselves, and [`Invalid`], what breaking one looks like.

use serde_json::{Map, Value};

pub use crate::error::invalid::{
    Invalid, MAX_ATTRIBUTE_VALUE_BYTES, MAX_ATTRIBUTES, MAX_BATCH_BYTES, MAX_EVENT_DATA_BYTES,
    MAX_EVENT_NAME_BYTES, MAX_IDENTIFIER_BYTES, MAX_ITEM_BYTES,
};

/// An identifier of the given kind: not empty, at most 150 bytes.
pub(crate) fn identifier(kind: &'static str, value: &str) -> Result<(), Invalid> {
    if value.is_empty() {
        return Err(Invalid::EmptyIdentifier(kind));
    }
    if value.len() > MAX_IDENTIFIER_BYTES {
        return Err(Invalid::IdentifierTooLong {
            kind,
            bytes: value.len(),
        });
    }
    Ok(())
}

/// Attributes: at most 300, names 1..=150 bytes, values at most 1000 bytes.
pub(crate) fn attributes(attributes: &Map<String, Value>) -> Result<(), Invalid> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Invalid::TooManyAttributes(attributes.len()));
    }
    for (name, value) in attributes {
        if name.is_empty() || name.len() > MAX_IDENTIFIER_BYTES {
            return Err(Invalid::AttributeName {
                name: cut(name, MAX_IDENTIFIER_BYTES).to_owned(),
                bytes: name.len(),
            });
        }
        let bytes = match value {
            Value::String(text) => text.len(),
            other => json_len(other),
        };
        if bytes > MAX_ATTRIBUTE_VALUE_BYTES {
            return Err(Invalid::AttributeValueTooLong {
                name: name.clone(),
                bytes,
            });
        }
    }
    Ok(())
}

/// An event name: present and not blank (Customer.io refuses one of only
/// spaces), at most 100 bytes.
pub(crate) fn event_name(name: &str) -> Result<(), Invalid> {
    if name.trim().is_empty() {
        return Err(Invalid::MissingEventName);
    }
    if name.len() > MAX_EVENT_NAME_BYTES {
        return Err(Invalid::EventNameTooLong(name.len()));
    }
    Ok(())
}

/// An event's optional `timestamp`: Unix time in whole seconds (Customer.io
/// refuses a fraction or a date written out).
pub(crate) fn timestamp(timestamp: Option<&Value>) -> Result<(), Invalid> {
    match timestamp {
        None | Some(Value::Null) => Ok(()),
        Some(value) if value.is_i64() => Ok(()),
        Some(value) => Err(Invalid::Operation(format!(
            "timestamp {value} is not a Unix timestamp in whole seconds"
        ))),
    }
}

/// A person's identifiers: an `email` is always a string (Customer.io
/// takes a number as an `id` or a `cio_id`, never as an email).
pub(crate) fn person_identifiers(identifiers: &Map<String, Value>) -> Result<(), Invalid> {
    match identifiers.get("email") {
        Some(email) if !email.is_string() => Err(Invalid::Operation(format!(
            "identifier \"email\" must be a string, not {email}"
        ))),
        _ => Ok(()),
    }
}

/// Event data: at most 100,000 bytes as JSON.
pub(crate) fn event_data(data: &Value) -> Result<(), Invalid> {
    let bytes = json_len(data);
    if bytes > MAX_EVENT_DATA_BYTES {
        return Err(Invalid::EventDataTooLarge(bytes));
    }
    Ok(())
}

/// A serialized `/entity` body or batch item: at most 32 KB.
pub(crate) fn item_size(bytes: usize) -> Result<(), Invalid> {
    if bytes > MAX_ITEM_BYTES {
        return Err(Invalid::ItemTooLarge(bytes));
    }
    Ok(())
}

/// The length of `value` as compact JSON, without building the text.
pub(crate) fn json_len(value: &(impl serde::Serialize + ?Sized)) -> usize {
    let mut counter = ByteCounter(0);
    // Writing to a counter cannot fail, and JSON values always serialize.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn identifiers_must_be_present_and_short() {
        assert_eq!(identifier("id", ""), Err(Invalid::EmptyIdentifier("id")));
        assert!(identifier("id", &"x".repeat(150)).is_ok());
        assert_eq!(
            identifier("email", &"é".repeat(76)),
            Err(Invalid::IdentifierTooLong {
                kind: "email",
                bytes: 152
            })
        );
    }

    #[test]
    fn attribute_limits() {
        assert!(attributes(&map(json!({"plan": "pro", "n": 1}))).is_ok());
        let many: Map<String, Value> = (0..301).map(|i| (format!("a{i}"), json!(i))).collect();
        assert_eq!(attributes(&many), Err(Invalid::TooManyAttributes(301)));
        let long_name = "n".repeat(151);
        assert!(matches!(
            attributes(&map(json!({ long_name: 1 }))),
            Err(Invalid::AttributeName { bytes: 151, .. })
        ));
        assert!(matches!(
            attributes(&map(json!({ "": 1 }))),
            Err(Invalid::AttributeName { bytes: 0, .. })
        ));
        assert!(attributes(&map(json!({ "bio": "b".repeat(1000) }))).is_ok());
        assert_eq!(
            attributes(&map(json!({ "bio": "b".repeat(1001) }))),
            Err(Invalid::AttributeValueTooLong {
                name: "bio".into(),
                bytes: 1001
            })
        );
        let list: Vec<u32> = (0..400).collect();
        assert!(matches!(
            attributes(&map(json!({ "list": list }))),
            Err(Invalid::AttributeValueTooLong { .. })
        ));
    }

    #[test]
    fn event_limits() {
        assert_eq!(event_name(""), Err(Invalid::MissingEventName));
        assert!(event_name(&"e".repeat(100)).is_ok());
        assert_eq!(
            event_name(&"e".repeat(101)),
            Err(Invalid::EventNameTooLong(101))
        );
        assert!(event_data(&json!({"x": "d".repeat(99_000)})).is_ok());
        assert!(matches!(
            event_data(&json!({"x": "d".repeat(100_000)})),
            Err(Invalid::EventDataTooLarge(_))
        ));
    }

    #[test]
    fn json_len_matches_serialization() {
        let value = json!({"a": [1, 2, {"b": "ü\"q"}], "c": null});
        assert_eq!(json_len(&value), serde_json::to_vec(&value).unwrap().len());
    }

    #[test]
    fn cut_respects_character_boundaries() {
        assert_eq!(cut("ééé", 3), "é");
        assert_eq!(cut("abc", 10), "abc");
    }
}
