//! Track API v1: `/api/v1/customers/...`, `/api/v1/events`, `/api/v1/merge_customers`.

use percent_encoding::percent_decode_str;
use serde_json::{Map, Value, json};

use crate::http::Response;
use crate::records::{Change, Records};
use crate::routes::Api;
use crate::snapshot::Event;
use crate::validate::{self, Violation};

/// Answers one Track v1 request (already authenticated and admitted).
pub(crate) fn handle(method: &str, path: &str, body: &[u8], records: &Records) -> Response {
    match changes(method, path, body) {
        Some(Ok(changes)) => {
            records.apply(changes);
            Response::json(200, &json!({}))
        }
        Some(Err(violation)) => Api::TrackV1.error(400, violation.reason, &violation.message),
        None => Api::TrackV1.not_found(method, path),
    }
}

/// What a request changes, `Err` when it is invalid, `None` when no such route.
fn changes(method: &str, path: &str, body: &[u8]) -> Option<Result<Vec<Change>, Violation>> {
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
        None => Some(anonymous_id(&object)?),
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

fn anonymous_id(object: &Map<String, Value>) -> Result<String, Violation> {
    match object.get("anonymous_id") {
        Some(Value::String(id)) if !id.is_empty() => {
            validate::identifier("anonymous_id", id)?;
            Ok(id.clone())
        }
        _ => Err(Violation::new(
            "required",
            "anonymous_id",
            "anonymous_id must be present for an anonymous event".into(),
        )),
    }
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
        let changes = changes("DELETE", "/api/v1/customers/a%40b.io", b"")
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
        changes(method, path, b"").unwrap().unwrap()
    }

    #[test]
    fn unknown_routes_and_methods_are_not_found() {
        assert!(changes("GET", "/api/v1/customers/1", b"").is_none());
        assert!(changes("POST", "/api/v1/customers/1/nope", b"").is_none());
        assert!(changes("POST", "/api/v1/customers", b"").is_none());
    }

    #[test]
    fn empty_path_identifier_is_invalid() {
        let violation = changes("PUT", "/api/v1/customers/", b"{}")
            .unwrap()
            .unwrap_err();
        assert_eq!(violation.reason, "required");
    }

    #[test]
    fn events_default_to_kind_event_with_empty_data() {
        let changes = changes("POST", "/api/v1/customers/1/events", br#"{"name":"x"}"#)
            .unwrap()
            .unwrap();
        let Change::Event(event) = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!((event.kind.as_str(), &event.data), ("event", &json!({})));
    }
}
