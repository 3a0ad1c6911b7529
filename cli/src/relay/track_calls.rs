//! Track API calls as the official clients make them, checked as the library
//! checks them and turned into the v2 operations the spool keeps: v1
//! identify, events (a person's and anonymous), delete, suppress,
//! unsuppress, devices and merge; v2 `/entity` and `/batch`.
//!
//! A v1 path names a person by id, or `cio_<cio_id>`, or by email when it
//! holds an `@`.

use cio_emulator::http::Response;
use cio_ratelimit::Operation;
use serde_json::{Map, Value, json};

use crate::relay::call_body::{batch_fits, object};
use crate::relay::spool::Stream;
use crate::relay::spool_writer::{PLACEHOLDER_ID, Spooled};

/// The Track API versions, whose errors look different.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `/api/v1/...`: `{"meta":{"error":...,"errors":[...]}}`.
    V1,
    /// `/api/v2/...`: `{"errors":[{"reason","message"}]}`.
    V2,
}

impl Version {
    /// The version a path is for, if it is a Track API path.
    pub fn of(path: &str) -> Option<Version> {
        if path.starts_with("/api/v1/") {
            Some(Version::V1)
        } else if path.starts_with("/api/v2/") {
            Some(Version::V2)
        } else {
            None
        }
    }

    /// An error answer in this version's shape.
    pub fn error(self, status: u16, reason: &str, message: &str) -> Response {
        let body = match self {
            Version::V1 => json!({ "meta": { "error": message, "errors": [message] } }),
            Version::V2 => json!({ "errors": [{ "reason": reason, "message": message }] }),
        };
        Response::json(status, &body)
    }

    /// The 401 answer.
    pub fn unauthorized(self) -> Response {
        self.error(
            401,
            "unauthorized",
            "Unauthorized request: use HTTP Basic auth with the site ID and Track API key the relay was started with",
        )
    }
}

/// What a Track request keeps, and the items of a batch it refused.
#[derive(Debug)]
pub struct Checked {
    /// The operations to keep.
    pub items: Vec<Spooled>,
    /// A batch's refused items, `{batch_index, reason, message}`: answered 207.
    pub errors: Vec<Value>,
}

/// Checks a Track request and turns it into v2 operations; `Err` is the
/// answer to give instead (400, 404), with nothing kept.
pub fn check(method: &str, path: &str, body: &[u8]) -> Result<Checked, Response> {
    let version = Version::of(path).ok_or_else(|| not_found(Version::V2, method, path))?;
    let parts: Vec<&str> = path.trim_end_matches('/').split('/').skip(3).collect();
    let invalid = |message: String| version.error(400, "invalid", &message);
    let one = |body: Result<Map<String, Value>, String>| {
        body.and_then(operation)
            .map(|item| Checked {
                items: vec![item],
                errors: Vec::new(),
            })
            .map_err(invalid)
    };
    match (version, method, parts.as_slice()) {
        (Version::V1, "PUT", ["customers", id]) => one(person(id).and_then(|person| {
            let attributes = object(body, true)?;
            Ok(person_op(
                person,
                "identify",
                [("attributes", attributes.into())],
            ))
        })),
        (Version::V1, "DELETE", ["customers", id]) => {
            one(person(id).map(|person| person_op(person, "delete", [])))
        }
        (Version::V1, "POST", ["customers", id, "events"]) => {
            one(person(id).and_then(|person| event(Some(person), body)))
        }
        (Version::V1, "POST", ["events"]) => one(event(None, body)),
        (Version::V1, "POST", ["customers", id, action @ ("suppress" | "unsuppress")]) => {
            one(person(id).map(|person| person_op(person, action, [])))
        }
        (Version::V1, "PUT", ["customers", id, "devices"]) => {
            one(person(id).and_then(|person| add_device(person, body)))
        }
        (Version::V1, "DELETE", ["customers", id, "devices", token]) => {
            one(person(id).and_then(|person| {
                let token = decode(token)?;
                Ok(person_op(
                    person,
                    "delete_device",
                    [("device", json!({ "token": token }))],
                ))
            }))
        }
        (Version::V1, "POST", ["merge_customers"]) => one(object(body, false).map(|merge| {
            let mut op = Map::new();
            op.insert("type".into(), "person".into());
            op.insert("action".into(), "merge".into());
            for side in ["primary", "secondary"] {
                if let Some(value) = merge.get(side) {
                    op.insert(side.into(), value.clone());
                }
            }
            op
        })),
        (Version::V2, "POST", ["entity"]) => one(object(body, false)),
        (Version::V2, "POST", ["batch"]) => batch(body).map_err(invalid),
        _ => Err(not_found(version, method, path)),
    }
}

fn not_found(version: Version, method: &str, path: &str) -> Response {
    version.error(
        404,
        "not_found",
        &format!("the relay does not take {method} {path}; send it to Customer.io directly"),
    )
}

/// `/api/v2/batch`: `{"batch":[op, ...]}`, each item checked on its own.
fn batch(body: &[u8]) -> Result<Checked, String> {
    batch_fits(body)?;
    let mut request = object(body, false)?;
    let Some(Value::Array(ops)) = request.remove("batch") else {
        return Err("the body needs \"batch\": an array of operations".into());
    };
    let mut checked = Checked {
        items: Vec::new(),
        errors: Vec::new(),
    };
    for (index, op) in ops.into_iter().enumerate() {
        let op = match op {
            Value::Object(op) => Ok(op),
            _ => Err("an operation must be a JSON object".to_owned()),
        };
        match op.and_then(operation) {
            Ok(item) => checked.items.push(item),
            Err(message) => checked
                .errors
                .push(json!({ "batch_index": index, "reason": "invalid", "message": message })),
        }
    }
    if checked.items.is_empty() && !checked.errors.is_empty() {
        return Err(format!(
            "every operation was invalid: {}",
            checked.errors[0]["message"]
        ));
    }
    Ok(checked)
}

/// A v2 operation, checked as the library checks it; an event without an
/// id gets one from its place in the spool.
fn operation(mut op: Map<String, Value>) -> Result<Spooled, String> {
    let is_event = matches!(
        op.get("action").and_then(Value::as_str),
        Some("event" | "page" | "screen")
    );
    let lacks_id = is_event && matches!(op.get("id"), None | Some(Value::Null));
    // The line the writer completes with the id: the operation as checked,
    // less the placeholder (the library keeps the body it is given).
    let without_id = lacks_id.then(|| {
        op.remove("id");
        serde_json::to_vec(&op).expect("a JSON map always serializes")
    });
    if lacks_id {
        op.insert("id".into(), PLACEHOLDER_ID.into());
    }
    let operation =
        Operation::from_json(Value::Object(op)).map_err(|invalid| invalid.to_string())?;
    Ok(Spooled {
        stream: Stream::Track,
        line: without_id.unwrap_or_else(|| operation.to_bytes()),
        id_field: lacks_id.then_some("id"),
    })
}

/// A v1 event: `{name, data, timestamp, id, type}` for a person, or with an
/// `anonymous_id` instead.
fn event(person: Option<Value>, body: &[u8]) -> Result<Map<String, Value>, String> {
    let mut event = object(body, false)?;
    let action = match event.remove("type") {
        None | Some(Value::Null) => "event".to_owned(),
        Some(Value::String(kind)) if matches!(kind.as_str(), "event" | "page" | "screen") => kind,
        Some(_) => return Err("type must be \"event\", \"page\" or \"screen\"".into()),
    };
    let mut op = Map::new();
    op.insert("type".into(), "person".into());
    op.insert("action".into(), action.into());
    match person {
        Some(identifiers) => {
            op.insert("identifiers".into(), identifiers);
        }
        None => {
            if let Some(anonymous_id) = event.remove("anonymous_id") {
                op.insert("anonymous_id".into(), anonymous_id);
            }
        }
    }
    for (from, to) in [
        ("name", "name"),
        ("data", "attributes"),
        ("timestamp", "timestamp"),
        ("id", "id"),
    ] {
        if let Some(value) = event.remove(from).filter(|value| !value.is_null()) {
            op.insert(to.into(), value);
        }
    }
    Ok(op)
}

/// `PUT /customers/{id}/devices`: `{"device":{id, platform, last_used, attributes}}`.
fn add_device(person: Value, body: &[u8]) -> Result<Map<String, Value>, String> {
    let mut body = object(body, false)?;
    let Some(Value::Object(mut device)) = body.remove("device") else {
        return Err("the body needs \"device\": an object".into());
    };
    let token = match device.remove("id").or_else(|| device.remove("token")) {
        Some(Value::String(token)) if !token.is_empty() => token,
        _ => return Err("device.id (its token) must be a non-empty string".into()),
    };
    if !matches!(
        device.get("platform").and_then(Value::as_str),
        Some("ios" | "android")
    ) {
        return Err("device.platform must be \"ios\" or \"android\"".into());
    }
    device.insert("token".into(), token.into());
    Ok(person_op(person, "add_device", [("device", device.into())]))
}

/// A person operation with its identifiers and more fields.
fn person_op<const N: usize>(
    identifiers: Value,
    action: &str,
    fields: [(&str, Value); N],
) -> Map<String, Value> {
    let mut op = Map::new();
    op.insert("type".into(), "person".into());
    op.insert("action".into(), action.into());
    op.insert("identifiers".into(), identifiers);
    for (name, value) in fields {
        op.insert(name.into(), value);
    }
    op
}

/// The identifiers a v1 path names.
fn person(segment: &str) -> Result<Value, String> {
    let identifier = decode(segment)?;
    Ok(if let Some(cio_id) = identifier.strip_prefix("cio_") {
        json!({ "cio_id": cio_id })
    } else if identifier.contains('@') {
        json!({ "email": identifier })
    } else {
        json!({ "id": identifier })
    })
}

/// A percent-encoded path segment, decoded.
fn decode(segment: &str) -> Result<String, String> {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| "the path's identifier is not UTF-8".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(method: &str, path: &str, body: &str) -> Vec<Value> {
        check(method, path, body.as_bytes())
            .unwrap_or_else(|response| panic!("{}", String::from_utf8_lossy(&response.body)))
            .items
            .into_iter()
            .map(|item| serde_json::from_slice(&item.line).unwrap())
            .collect()
    }

    #[test]
    fn v1_calls_become_v2_operations() {
        assert_eq!(
            kept("PUT", "/api/v1/customers/a%2Fb", r#"{"plan":"pro"}"#),
            [
                json!({"type":"person","action":"identify","identifiers":{"id":"a/b"},"attributes":{"plan":"pro"}})
            ]
        );
        assert_eq!(
            kept("DELETE", "/api/v1/customers/ada%40example.com", ""),
            [json!({"type":"person","action":"delete","identifiers":{"email":"ada@example.com"}})]
        );
        let event = &kept(
            "POST",
            "/api/v1/customers/cio_03/events",
            r#"{"name":"paid","data":{"total":3},"timestamp":1700000000}"#,
        )[0];
        assert_eq!(event["identifiers"], json!({"cio_id": "03"}));
        assert_eq!(event["attributes"], json!({"total": 3}));
        // The writer adds the id from the event's place in the spool.
        assert_eq!(event.get("id"), None);
        let anonymous = &kept(
            "POST",
            "/api/v1/events",
            r#"{"name":"visit","anonymous_id":"x"}"#,
        )[0];
        assert_eq!(anonymous["anonymous_id"], "x");
        assert_eq!(
            kept(
                "PUT",
                "/api/v1/customers/1/devices",
                r#"{"device":{"id":"t","platform":"ios"}}"#
            )[0]["device"],
            json!({"token":"t","platform":"ios"})
        );
        assert_eq!(
            kept(
                "POST",
                "/api/v1/merge_customers",
                r#"{"primary":{"id":"1"},"secondary":{"id":"2"}}"#
            )[0]["action"],
            "merge"
        );
    }

    #[test]
    fn an_event_without_an_id_leaves_it_to_the_writer_and_one_with_an_id_keeps_it() {
        let path = "/api/v1/customers/1/events";
        let without = check("POST", path, br#"{"name":"paid","id":null}"#).unwrap();
        assert_eq!(without.items[0].id_field, Some("id"));
        let line: Value = serde_json::from_slice(&without.items[0].line).unwrap();
        assert_eq!(line.get("id"), None);
        let with = check(
            "POST",
            path,
            br#"{"name":"paid","id":"01J0000000000000000000000A"}"#,
        );
        let with = with.unwrap();
        assert_eq!(with.items[0].id_field, None);
        let line: Value = serde_json::from_slice(&with.items[0].line).unwrap();
        assert_eq!(line["id"], "01J0000000000000000000000A");
        // Checked with a placeholder as long as a real id: a too-large event is refused.
        let data = "x".repeat(32 * 1024);
        let large = format!(r#"{{"name":"paid","data":{{"blob":"{data}"}}}}"#);
        assert_eq!(
            check("POST", path, large.as_bytes()).unwrap_err().status,
            400
        );
    }

    #[test]
    fn bad_bodies_get_customer_io_error_shapes_and_nothing_kept() {
        let v1 = check("POST", "/api/v1/customers/1/events", b"{}").unwrap_err();
        assert_eq!(v1.status, 400);
        let body: Value = serde_json::from_slice(&v1.body).unwrap();
        assert!(body["meta"]["error"].is_string(), "{body}");
        let v2 = check("POST", "/api/v2/entity", br#"{"type":"person"}"#).unwrap_err();
        let body: Value = serde_json::from_slice(&v2.body).unwrap();
        assert_eq!(body["errors"][0]["reason"], "invalid");
        assert_eq!(
            check("GET", "/api/v1/nothing", b"").unwrap_err().status,
            404
        );
        let not_utf8 = check("PUT", "/api/v1/customers/%FF", b"{}").unwrap_err();
        assert_eq!(not_utf8.status, 400);
        assert!(
            String::from_utf8_lossy(&not_utf8.body).contains("not UTF-8"),
            "{}",
            String::from_utf8_lossy(&not_utf8.body)
        );
    }

    #[test]
    fn a_batch_keeps_its_valid_items_and_names_the_others() {
        let checked = check(
            "POST",
            "/api/v2/batch",
            br#"{"batch":[{"type":"person","action":"identify","identifiers":{"id":"1"}},{"type":"nope"}]}"#,
        )
        .unwrap();
        assert_eq!(checked.items.len(), 1);
        assert_eq!(checked.errors[0]["batch_index"], 1);
    }
}
