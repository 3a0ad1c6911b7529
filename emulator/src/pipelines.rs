//! The Pipelines API (Data Pipelines): `POST /v1/identify`, `/v1/track`, `/v1/page`,
//! `/v1/screen`, `/v1/group`, `/v1/alias` and `/v1/batch`.
//!
//! Permissive by default, as Customer.io documents: a call that fails validation is answered
//! 200 and dropped. With `X-Strict-Mode: 1` it is answered 400, and a batch with any such call
//! is refused whole, so that nothing in it is stored.

use serde_json::{Map, Value, json};

use crate::http::Response;
use crate::records::{Change, Records};
use crate::routes::Api;
use crate::snapshot::PipelinesCall;
use crate::validate::{self, MAX_BATCH_BYTES, MAX_ENTITY_BYTES, Violation};

const TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

/// Answers one Pipelines request (already authenticated and admitted).
pub(crate) fn handle(
    method: &str,
    path: &str,
    body: &[u8],
    strict: bool,
    records: &Records,
) -> Response {
    let kind = path.strip_prefix("/v1/").unwrap_or_default();
    if method != "POST" {
        return Api::Pipelines.not_found(method, path);
    }
    let (calls, violations) = if kind == "batch" {
        batch(body, strict)
    } else {
        match single(kind, body, strict) {
            Ok(call) => (vec![call], Vec::new()),
            Err(violation) => (Vec::new(), vec![violation]),
        }
    };
    match violations.first() {
        Some(first) if strict => Api::Pipelines.error(400, first.reason, &first.message),
        _ => {
            let mut changes: Vec<Change> = calls.into_iter().map(Change::Pipelines).collect();
            if !violations.is_empty() {
                changes.push(Change::PipelinesDropped(violations.len() as u64));
            }
            records.apply(changes);
            Response::json(200, &json!({}))
        }
    }
}

/// One call to `/v1/{kind}`, at most 32 KB.
fn single(kind: &str, body: &[u8], strict: bool) -> Result<PipelinesCall, Violation> {
    if body.len() > MAX_ENTITY_BYTES {
        return Err(too_large("a request", body.len(), MAX_ENTITY_BYTES));
    }
    let object = validate::json_object(body)?;
    call(Some(kind), &object, strict)
}

/// `{"batch": [call, ...]}` of at most 500 KB: the calls that pass, and why the others failed
/// (each message naming the call's index).
fn batch(body: &[u8], strict: bool) -> (Vec<PipelinesCall>, Vec<Violation>) {
    if body.len() > MAX_BATCH_BYTES {
        return (
            Vec::new(),
            vec![too_large("a batch", body.len(), MAX_BATCH_BYTES)],
        );
    }
    let object = match validate::json_object(body) {
        Ok(object) => object,
        Err(violation) => return (Vec::new(), vec![violation]),
    };
    let Some(Value::Array(items)) = object.get("batch") else {
        let message = "the body must be {\"batch\": [call, ...]}".into();
        return (
            Vec::new(),
            vec![Violation::new("required", "batch", message)],
        );
    };
    let mut calls = Vec::with_capacity(items.len());
    let mut violations = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let len = validate::serialized_len(item);
        let checked = match item {
            _ if len > MAX_ENTITY_BYTES => Err(too_large("a call", len, MAX_ENTITY_BYTES)),
            Value::Object(object) => call(None, object, strict),
            _ => Err(Violation::new(
                "invalid",
                "",
                "a call must be an object".into(),
            )),
        };
        match checked {
            Ok(call) => calls.push(call),
            Err(mut violation) => {
                violation.message = format!("batch[{index}]: {}", violation.message);
                violation.field = format!("batch[{index}].{}", violation.field);
                violations.push(violation);
            }
        }
    }
    (calls, violations)
}

fn too_large(what: &str, len: usize, limit: usize) -> Violation {
    Violation::new(
        "too_large",
        "",
        format!("{what} must be at most {limit} bytes, got {len}"),
    )
}

/// One call: its type (from the path, or its `type` in a batch), a `userId` or an
/// `anonymousId`, and its type's own required fields.
fn call(
    path_kind: Option<&str>,
    object: &Map<String, Value>,
    strict: bool,
) -> Result<PipelinesCall, Violation> {
    let kind = match path_kind {
        Some(kind) => kind,
        None => match object.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            _ => return Err(required("type", "a batch call needs a \"type\"")),
        },
    };
    if !TYPES.contains(&kind) {
        return Err(Violation::new(
            "invalid",
            "type",
            format!(
                "unknown type {kind:?}: expected one of {}",
                TYPES.join(", ")
            ),
        ));
    }
    let text = |field: &str| -> Result<Option<String>, Violation> {
        match object.get(field) {
            None => Ok(None),
            Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
            Some(_) => Err(Violation::new(
                "invalid",
                field,
                format!("{field} must be a non-empty string"),
            )),
        }
    };
    let user_id = text("userId")?;
    let anonymous_id = text("anonymousId")?;
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(required(
            "userId",
            "a call needs a userId or an anonymousId",
        ));
    }
    let needs = match kind {
        "track" => Some("event"),
        "group" => Some("groupId"),
        "alias" => Some("previousId"),
        _ => None,
    };
    if let Some(field) = needs
        && text(field)?.is_none()
    {
        return Err(required(field, &format!("a {kind} call needs {field}")));
    }
    if let Some(timestamp) = text("timestamp")?
        && !is_iso_8601(&timestamp)
    {
        return Err(Violation::new(
            "invalid",
            "timestamp",
            format!("timestamp {timestamp:?} is not an ISO 8601 date and time"),
        ));
    }
    for field in ["traits", "properties", "context"] {
        if object.get(field).is_some_and(|value| !value.is_object()) {
            return Err(Violation::new(
                "invalid",
                field,
                format!("{field} must be an object"),
            ));
        }
    }
    Ok(PipelinesCall {
        kind: kind.to_owned(),
        message_id: text("messageId")?,
        user_id,
        anonymous_id,
        body: Value::Object(object.clone()),
        strict,
    })
}

/// `YYYY-MM-DD`, alone or followed by `T` and a time: the shape of an ISO 8601 timestamp.
fn is_iso_8601(text: &str) -> bool {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| bytes[range].iter().all(u8::is_ascii_digit);
    bytes.len() >= 10
        && digits(0..4)
        && bytes[4] == b'-'
        && digits(5..7)
        && bytes[7] == b'-'
        && digits(8..10)
        && (bytes.len() == 10 || bytes[10] == b'T')
}

fn required(field: &str, message: &str) -> Violation {
    Violation::new("required", field, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(path: &str, body: &Value, strict: bool) -> (u16, Records) {
        let records = Records::default();
        let body = serde_json::to_vec(body).unwrap();
        let status = handle("POST", path, &body, strict, &records).status;
        (status, records)
    }

    #[test]
    fn strict_mode_refuses_what_permissive_mode_drops() {
        let bad = json!({"userId": "1"}); // a track call without an event
        let (status, records) = answer("/v1/track", &bad, true);
        assert_eq!(status, 400);
        assert_eq!(records.snapshot().pipelines_dropped, 0);
        let (status, records) = answer("/v1/track", &bad, false);
        assert_eq!(status, 200);
        let snapshot = records.snapshot();
        assert!(snapshot.pipelines.is_empty());
        assert_eq!(snapshot.pipelines_dropped, 1);
    }

    #[test]
    fn a_strict_batch_with_one_bad_call_stores_nothing() {
        let batch = json!({"batch": [
            {"type": "identify", "userId": "1", "messageId": "a"},
            {"type": "group", "userId": "1"},
        ]});
        let (status, records) = answer("/v1/batch", &batch, true);
        assert_eq!(status, 400);
        assert!(records.snapshot().pipelines.is_empty());
        let (status, records) = answer("/v1/batch", &batch, false);
        assert_eq!(status, 200);
        let snapshot = records.snapshot();
        assert_eq!(snapshot.pipelines.len(), 1);
        assert_eq!(snapshot.pipelines[0].message_id.as_deref(), Some("a"));
        assert!(!snapshot.pipelines[0].strict);
        assert_eq!(snapshot.pipelines_dropped, 1);
    }

    #[test]
    fn each_type_needs_its_fields() {
        for (path, body) in [
            ("/v1/identify", json!({})),
            ("/v1/identify", json!({"userId": ""})),
            ("/v1/group", json!({"userId": "1"})),
            ("/v1/alias", json!({"userId": "1"})),
            ("/v1/page", json!({"userId": "1", "properties": [1]})),
            ("/v1/page", json!({"userId": "1", "timestamp": "yesterday"})),
            ("/v1/batch", json!({"batch": [{"userId": "1"}]})),
            (
                "/v1/batch",
                json!({"batch": [{"type": "merge", "userId": "1"}]}),
            ),
            ("/v1/batch", json!({"calls": []})),
        ] {
            assert_eq!(answer(path, &body, true).0, 400, "{path} {body}");
        }
        for (path, body) in [
            (
                "/v1/identify",
                json!({"anonymousId": "a", "traits": {"x": 1}}),
            ),
            ("/v1/screen", json!({"userId": "1", "name": "Home"})),
            ("/v1/alias", json!({"userId": "1", "previousId": "a"})),
            ("/v1/group", json!({"userId": "1", "groupId": "g"})),
            (
                "/v1/track",
                json!({"userId": "1", "event": "e", "timestamp": "2026-11-30T09:00:00Z"}),
            ),
        ] {
            assert_eq!(answer(path, &body, true).0, 200, "{path} {body}");
        }
    }

    #[test]
    fn requests_and_calls_over_the_limits_are_refused() {
        let pad = "x".repeat(MAX_ENTITY_BYTES);
        let big = json!({"userId": "1", "traits": {"pad": pad}});
        assert_eq!(answer("/v1/identify", &big, true).0, 400);
        let mut item = big.clone();
        item["type"] = "identify".into();
        assert_eq!(answer("/v1/batch", &json!({"batch": [item]}), true).0, 400);
        let small =
            json!({"type": "identify", "userId": "1", "traits": {"pad": "x".repeat(20_000)}});
        let many = json!({"batch": vec![small; 26]});
        assert_eq!(answer("/v1/batch", &many, true).0, 400);
    }
}
