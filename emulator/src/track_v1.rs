//! Track API v1: `/api/v1/customers/...`, `/api/v1/events` (anonymous and invite events),
//! `/api/v1/merge_customers`, `/api/v1/segments/{id}/add_customers|remove_customers` and
//! `/api/v1/push/events`.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::http::{Request, Response};
use crate::records::{Change, Records};
use crate::routes::Api;
use crate::snapshot::{DeliveryMetric, Event};
use crate::validate::{self, Violation};

/// The most ids one manual segment request may carry, as Customer.io documents.
const MAX_SEGMENT_IDS: usize = 1000;

/// Answers one Track v1 request (already authenticated and admitted).
pub(crate) fn handle(request: &Request, records: &Records) -> Response {
    let (method, path) = (request.method.as_str(), request.path.as_str());
    let id_type = request.query_param("id_type");
    match changes(method, path, id_type.as_deref(), &request.body) {
        Some(Ok(changes)) => {
            records.apply(changes);
            Response::json(200, &json!({}))
        }
        Some(Err(violation)) => Api::TrackV1.error(400, violation.reason, &violation.message),
        None => Api::TrackV1.not_found(method, path),
    }
}

/// What a request changes, `Err` when it is invalid, `None` when no such route.
fn changes(
    method: &str,
    path: &str,
    id_type: Option<&str>,
    body: &[u8],
) -> Option<Result<Vec<Change>, Violation>> {
    let rest = path.strip_prefix("/api/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    let result = match (method, segments.as_slice()) {
        ("PUT", ["customers", id]) => person(id).and_then(|person| identify(person, body)),
        ("DELETE", ["customers", id]) => person(id).map(|person| vec![Change::Delete { person }]),
        ("POST", ["customers", id, "events"]) => {
            person(id).and_then(|person| event(Some(person), body))
        }
        ("POST", ["events"]) => event(None, body),
        ("POST", ["customers", id, action @ ("suppress" | "unsuppress")]) => {
            person(id).map(|person| {
                vec![Change::Suppress {
                    person,
                    suppressed: *action == "suppress",
                }]
            })
        }
        ("PUT", ["customers", id, "devices"]) => {
            person(id).and_then(|person| add_device(person, body))
        }
        ("DELETE", ["customers", id, "devices", token]) => person(id).and_then(|person| {
            let device_id = decode("device token", token)?;
            Ok(vec![Change::DeleteDevice { person, device_id }])
        }),
        ("POST", ["merge_customers"]) => merge(body),
        (
            "POST",
            [
                "segments",
                id,
                action @ ("add_customers" | "remove_customers"),
            ],
        ) => {
            let segment_id = id.parse::<u64>().ok()?;
            segment(segment_id, *action == "add_customers", id_type, body)
        }
        ("POST", ["push", "events"]) => push_metric(body),
        _ => return None,
    };
    Some(result)
}

/// The person named by a path segment: an id, an email or `cio_<cio_id>`, percent-decoded.
fn person(segment: &str) -> Result<String, Violation> {
    let identifier = decode("customer identifier", segment)?;
    validate::identifier("id attribute", &identifier)?;
    Ok(identifier)
}

fn decode(what: &str, segment: &str) -> Result<String, Violation> {
    percent_decode_str(segment)
        .decode_utf8()
        .map(|text| text.into_owned())
        .map_err(|_| Violation::new("invalid", what, format!("{what} is not valid UTF-8")))
}

/// `PUT /api/v1/customers/{id}`: every top-level key of the body is an attribute.
fn identify(person: String, body: &[u8]) -> Result<Vec<Change>, Violation> {
    let attributes = validate::json_object(body)?;
    validate::attributes("", &attributes)?;
    Ok(vec![Change::Identify { person, attributes }])
}

/// `POST /api/v1/customers/{id}/events` and the anonymous `POST /api/v1/events`.
fn event(person: Option<String>, body: &[u8]) -> Result<Vec<Change>, Violation> {
    let object = validate::json_object(body)?;
    let anonymous_id = match &person {
        Some(_) => None,
        None => anonymous_id(&object)?,
    };
    let name = validate::event_name(&object)?;
    let data = validate::optional_object(
        &object,
        "data",
        "event data must be a hash (send \"data\":{} instead of \"data\":\"\")",
    )?;
    validate::event_data("data", &data)?;
    let kind = match object.get("type") {
        None | Some(Value::Null) => "event",
        Some(Value::String(kind)) if matches!(kind.as_str(), "event" | "page" | "screen") => {
            kind.as_str()
        }
        Some(_) => {
            return Err(Violation::new(
                "invalid",
                "type",
                "type must be \"event\", \"page\" or \"screen\"".into(),
            ));
        }
    };
    Ok(vec![Change::Event(Event {
        person,
        anonymous_id,
        name,
        id: validate::event_id(&object)?,
        kind: kind.to_owned(),
        data: Value::Object(data),
        timestamp: validate::timestamp(&object)?,
    })])
}

/// An anonymous event's `anonymous_id`; `None` for an invite event, which has none but a
/// `data.recipient`.
fn anonymous_id(object: &Map<String, Value>) -> Result<Option<String>, Violation> {
    match object.get("anonymous_id") {
        Some(Value::String(id)) if !id.is_empty() => {
            validate::identifier("anonymous_id", id)?;
            Ok(Some(id.clone()))
        }
        None if object
            .get("data")
            .and_then(|data| data.get("recipient"))
            .and_then(Value::as_str)
            .is_some_and(|recipient| !recipient.is_empty()) =>
        {
            Ok(None)
        }
        _ => Err(Violation::new(
            "required",
            "anonymous_id",
            "anonymous_id (or, for an invite, data.recipient) must be present for an anonymous event"
                .into(),
        )),
    }
}

/// `POST /api/v1/segments/{id}/add_customers|remove_customers?id_type=` with `{"ids": [...]}`.
fn segment(
    segment_id: u64,
    add: bool,
    id_type: Option<&str>,
    body: &[u8],
) -> Result<Vec<Change>, Violation> {
    let id_type = id_type.unwrap_or("id");
    if !matches!(id_type, "id" | "email" | "cio_id") {
        let message = "id_type must be id, email or cio_id".into();
        return Err(Violation::new("invalid", "id_type", message));
    }
    let object = validate::json_object(body)?;
    let Some(Value::Array(list)) = object.get("ids") else {
        return Err(Violation::new(
            "required",
            "ids",
            "ids must be an array".into(),
        ));
    };
    if list.len() > MAX_SEGMENT_IDS {
        let message = format!(
            "at most {MAX_SEGMENT_IDS} ids per request, got {}",
            list.len()
        );
        return Err(Violation::new("too_large", "ids", message));
    }
    let ids = list
        .iter()
        .map(|id| match id {
            Value::String(id) => Ok(id.clone()),
            Value::Number(id) => Ok(id.to_string()),
            _ => Err(Violation::new(
                "invalid",
                "ids",
                "ids must be strings".into(),
            )),
        })
        .collect::<Result<_, _>>()?;
    Ok(vec![Change::Segment {
        segment_id,
        id_type: id_type.to_owned(),
        ids,
        add,
    }])
}

/// `POST /api/v1/push/events` with `{delivery_id, event, device_id, timestamp}`.
fn push_metric(body: &[u8]) -> Result<Vec<Change>, Violation> {
    let object = validate::json_object(body)?;
    let text = |field: &str| {
        object
            .get(field)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let Some(delivery_id) = text("delivery_id") else {
        let message = "delivery_id is required".into();
        return Err(Violation::new("required", "delivery_id", message));
    };
    let Some(event @ ("opened" | "converted" | "delivered")) = text("event") else {
        let message = "event must be opened, converted or delivered".into();
        return Err(Violation::new("invalid", "event", message));
    };
    Ok(vec![Change::DeliveryMetric(DeliveryMetric {
        delivery_id: delivery_id.to_owned(),
        metric: event.to_owned(),
        device_id: text("device_id").map(str::to_owned),
        timestamp: validate::timestamp(&object)?,
    })])
}

/// `PUT /api/v1/customers/{id}/devices` with `{"device": {"id", "platform", "last_used", ...}}`.
fn add_device(person: String, body: &[u8]) -> Result<Vec<Change>, Violation> {
    let object = validate::json_object(body)?;
    let (device_id, device) = validate::device("device", object.get("device"))?;
    Ok(vec![Change::AddDevice {
        person,
        device_id,
        device,
    }])
}

/// `POST /api/v1/merge_customers` with `{"primary": {...}, "secondary": {...}}`.
/// The same body as a v2 `merge` operation's `primary` and `secondary`.
fn merge(body: &[u8]) -> Result<Vec<Change>, Violation> {
    crate::track_v2::merge(&validate::json_object(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_identifiers_are_percent_decoded() {
        let changes = changes("DELETE", "/api/v1/customers/a%40b.io", None, b"")
            .unwrap()
            .unwrap();
        assert_eq!(
            changes,
            vec![Change::Delete {
                person: "a@b.io".into()
            }]
        );
        let changes = changes_of("POST", "/api/v1/customers/cio_f00/suppress");
        assert_eq!(
            changes,
            vec![Change::Suppress {
                person: "cio_f00".into(),
                suppressed: true
            }]
        );
    }

    fn changes_of(method: &str, path: &str) -> Vec<Change> {
        changes(method, path, None, b"").unwrap().unwrap()
    }

    #[test]
    fn unknown_routes_and_methods_are_not_found() {
        assert!(changes("GET", "/api/v1/customers/1", None, b"").is_none());
        assert!(changes("POST", "/api/v1/customers/1/nope", None, b"").is_none());
        assert!(changes("POST", "/api/v1/customers", None, b"").is_none());
    }

    #[test]
    fn empty_path_identifier_is_invalid() {
        let violation = changes("PUT", "/api/v1/customers/", None, b"{}")
            .unwrap()
            .unwrap_err();
        assert_eq!(violation.reason, "required");
    }

    #[test]
    fn events_default_to_kind_event_with_empty_data() {
        let changes = changes(
            "POST",
            "/api/v1/customers/1/events",
            None,
            br#"{"name":"x"}"#,
        )
        .unwrap()
        .unwrap();
        let Change::Event(event) = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!((event.kind.as_str(), &event.data), ("event", &json!({})));
    }
}
