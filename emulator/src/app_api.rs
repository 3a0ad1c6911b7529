//! App API: transactional sends (`/v1/send/{email,push,sms,in_app,inbox_message}`), broadcast
//! triggers (`/v1/campaigns/{id}/triggers`), and reads answered from what was recorded: people
//! by email (`/v1/customers?email=`), a person's attributes and segments
//! (`/v1/customers/{id}/attributes|segments?id_type=`), segments and their members
//! (`/v1/segments`, `/v1/segments/{id}/membership?start=&limit=`), and people exports
//! (`/v1/exports/customers`, `/v1/exports/{id}`, `/v1/exports/{id}/download`).

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::http::{Request, Response};
use crate::records::{Records, unix_now};
use crate::routes::Api;
use crate::validate::{self, Violation};

/// The most members one page of `/v1/segments/{id}/membership` returns (its `limit` maximum).
const MAX_MEMBERS_PER_PAGE: usize = 30_000;

/// Answers one App API request (already authenticated and admitted).
pub(crate) fn handle(request: &Request, records: &Records) -> Response {
    let (method, path, body) = (
        request.method.as_str(),
        request.path.as_str(),
        &request.body,
    );
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let not_found = || Api::App.not_found(method, path);
    let number = |text: &str| text.parse::<u64>().ok();
    let result = match (method, segments.as_slice()) {
        (
            "POST",
            [
                "v1",
                "send",
                kind @ ("email" | "push" | "sms" | "in_app" | "inbox_message"),
            ],
        ) => send(kind, body, records),
        ("POST", ["v1", "campaigns", id, "triggers"]) => match number(id) {
            Some(campaign_id) => trigger(campaign_id, body, records),
            None => return not_found(),
        },
        ("GET", ["v1", "customers"]) => people_by_email(request, records),
        ("GET", ["v1", "customers", id, what @ ("attributes" | "segments")]) => {
            return person(request, id, what, records);
        }
        ("GET", ["v1", "segments"]) => Ok(Response::json(
            200,
            &json!({ "segments": records.segments() }),
        )),
        ("GET", ["v1", "segments", id, "membership"]) => match number(id) {
            Some(segment_id) => return members(request, segment_id, records),
            None => return not_found(),
        },
        ("POST", ["v1", "exports", "customers"]) => create_export(body, records),
        ("GET", ["v1", "exports", id]) => match number(id).and_then(|id| records.export(id)) {
            Some(export) => Ok(Response::json(200, &json!({ "export": export }))),
            None => return missing("export"),
        },
        ("GET", ["v1", "exports", id, "download"]) => match number(id) {
            Some(id) if records.export(id).is_some() => {
                let host = request.header("host").unwrap_or("127.0.0.1");
                let url = format!("http://{host}/_emulator/exports/{id}");
                Ok(Response::json(200, &json!({ "url": url })))
            }
            _ => return missing("export"),
        },
        _ => return not_found(),
    };
    result.unwrap_or_else(|violation| Api::App.error(400, violation.reason, &violation.message))
}

/// 404 as Customer.io answers an unknown person or export.
fn missing(what: &str) -> Response {
    Api::App.error(404, "not_found", &format!("{what} not found"))
}

/// `GET /v1/customers?email=`: `{"results": [{id, email, cio_id}, ...]}`, maybe empty.
fn people_by_email(request: &Request, records: &Records) -> Result<Response, Violation> {
    match request.query_param("email") {
        Some(email) if !email.is_empty() => {
            let results = records.people_by_email(&email);
            Ok(Response::json(200, &json!({ "results": results })))
        }
        _ => Err(Violation::new(
            "required",
            "email",
            "email is required".into(),
        )),
    }
}

/// `GET /v1/customers/{id}/attributes` and `.../segments`, the person named by `id` of kind
/// `id_type` (default `id`).
fn person(request: &Request, id: &str, what: &str, records: &Records) -> Response {
    let id_type = request
        .query_param("id_type")
        .unwrap_or_else(|| "id".into());
    if !matches!(id_type.as_str(), "id" | "email" | "cio_id") {
        return Api::App.error(400, "invalid", "id_type must be id, email or cio_id");
    }
    let id = percent_decode_str(id).decode_utf8_lossy();
    let answer = match what {
        "attributes" => records.profile(&id_type, &id),
        _ => records
            .person_segments(&id_type, &id)
            .map(|segments| json!({ "segments": segments })),
    };
    match answer {
        Some(answer) => Response::json(200, &answer),
        None => missing("customer"),
    }
}

/// `GET /v1/segments/{id}/membership?start=&limit=`: `{ids, identifiers, next}`.
fn members(request: &Request, segment_id: u64, records: &Records) -> Response {
    let start = request
        .query_param("start")
        .and_then(|start| start.parse().ok())
        .unwrap_or(0);
    let limit = request
        .query_param("limit")
        .and_then(|limit| limit.parse().ok())
        .unwrap_or(MAX_MEMBERS_PER_PAGE)
        .clamp(1, MAX_MEMBERS_PER_PAGE);
    match records.segment_members(segment_id, start, limit) {
        Some((identifiers, next)) => {
            let ids: Vec<&Value> = identifiers.iter().map(|person| &person["id"]).collect();
            let mut answer = json!({ "ids": ids, "identifiers": identifiers });
            if let Some(next) = next {
                answer["next"] = Value::String(next);
            }
            Response::json(200, &answer)
        }
        None => missing("segment"),
    }
}

/// `POST /v1/exports/customers` with `{"filters": {...}}`: `{"export": {...}}`, done at once.
fn create_export(body: &[u8], records: &Records) -> Result<Response, Violation> {
    let object = validate::json_object(body)?;
    let filters = match object.get("filters") {
        Some(filters @ Value::Object(_)) => filters.clone(),
        _ => {
            let message = "filters must be an object".into();
            return Err(Violation::new("required", "filters", message));
        }
    };
    match records.create_export(filters) {
        Ok(export) => Ok(Response::json(200, &json!({ "export": export }))),
        Err(message) => Err(Violation::new("invalid", "filters", message)),
    }
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
