//! App API: transactional sends (`/v1/send/email`, `/v1/send/push`) and broadcast triggers
//! (`/v1/campaigns/{id}/triggers`).

use serde_json::{Map, Value, json};

use crate::http::Response;
use crate::records::{Records, unix_now};
use crate::routes::Api;
use crate::validate::{self, Violation};

/// Answers one App API request (already authenticated and admitted).
pub(crate) fn handle(method: &str, path: &str, body: &[u8], records: &Records) -> Response {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let result = match (method, segments.as_slice()) {
        ("POST", ["v1", "send", kind @ ("email" | "push")]) => send(kind, body, records),
        ("POST", ["v1", "campaigns", id, "triggers"]) => match id.parse::<u64>() {
            Ok(campaign_id) => trigger(campaign_id, body, records),
            Err(_) => return Api::App.not_found(method, path),
        },
        _ => return Api::App.not_found(method, path),
    };
    result.unwrap_or_else(|violation| Api::App.error(400, violation.reason, &violation.message))
}

/// A transactional message: `{transactional_message_id, identifiers, message_data, to, ...}`
/// → `{"delivery_id": "...", "queued_at": unix_secs}`.
fn send(kind: &str, body: &[u8], records: &Records) -> Result<Response, Violation> {
    let object = validate::json_object(body)?;
    validate::person_key("identifiers", object.get("identifiers"))?;
    let has_template = match object.get("transactional_message_id") {
        Some(Value::String(id)) => !id.is_empty(),
        Some(Value::Number(_)) => true,
        _ => false,
    };
    // An email may also be composed in the request instead of using a template.
    let composed = kind == "email" && object.get("body").is_some_and(Value::is_string);
    if !has_template && !composed {
        return Err(Violation::new(
            "required",
            "transactional_message_id",
            "transactional_message_id is required".into(),
        ));
    }
    optional_object(&object, "message_data")?;
    let delivery_id = records.send(kind, Value::Object(object));
    Ok(Response::json(
        200,
        &json!({ "delivery_id": delivery_id, "queued_at": unix_now() }),
    ))
}

/// A broadcast trigger: an optional JSON object body → `{"id": N}`.
fn trigger(campaign_id: u64, body: &[u8], records: &Records) -> Result<Response, Violation> {
    let object = validate::json_object(body)?;
    optional_object(&object, "data")?;
    let id = records.broadcast(campaign_id, Value::Object(object));
    Ok(Response::json(200, &json!({ "id": id })))
}

fn optional_object(object: &Map<String, Value>, field: &str) -> Result<(), Violation> {
    validate::optional_object(object, field, &format!("{field} must be an object")).map(drop)
}
