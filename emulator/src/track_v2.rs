//! Track API v2: `POST /api/v2/entity` (one operation) and `POST /api/v2/batch`.

use serde_json::{Map, Value, json};

use crate::http::Response;
use crate::records::{Change, Records};
use crate::routes::Api;
use crate::snapshot::{DeliveryMetric, Event};
use crate::validate::{self, MAX_BATCH_BYTES, MAX_ENTITY_BYTES, Violation};

/// Answers one Track v2 request (already authenticated and admitted).
pub(crate) fn handle(method: &str, path: &str, body: &[u8], records: &Records) -> Response {
    match (method, path) {
        ("POST", "/api/v2/entity") => entity(body, records),
        ("POST", "/api/v2/batch") => batch(body, records),
        _ => Api::TrackV2.not_found(method, path),
    }
}

fn invalid(violation: &Violation) -> Response {
    let error = json!({
        "reason": violation.reason,
        "field": violation.field,
        "message": violation.message,
    });
    Response::json(400, &json!({ "errors": [error] }))
}

/// One operation, at most 32 KB: 200 `{}` or 400.
fn entity(body: &[u8], records: &Records) -> Response {
    if body.len() > MAX_ENTITY_BYTES {
        return invalid(&Violation::new(
            "too_large",
            "",
            format!(
                "an /entity request must be at most {MAX_ENTITY_BYTES} bytes, got {}",
                body.len()
            ),
        ));
    }
    let result = validate::json_object(body).and_then(|object| operation(&object));
    match result {
        Ok(changes) => {
            records.apply(changes);
            Response::json(200, &json!({}))
        }
        Err(violation) => invalid(&violation),
    }
}

/// `{"batch": [op, ...]}` under 500 KB: 200 `{}`, 207 with per-item errors (the valid items
/// are stored), or 400 when the request as a whole is invalid.
fn batch(body: &[u8], records: &Records) -> Response {
    if body.len() >= MAX_BATCH_BYTES {
        return invalid(&Violation::new(
            "too_large",
            "",
            format!(
                "a batch request must be smaller than {MAX_BATCH_BYTES} bytes, got {}",
                body.len()
            ),
        ));
    }
    let object = match validate::json_object(body) {
        Ok(object) => object,
        Err(violation) => return invalid(&violation),
    };
    let Some(Value::Array(items)) = object.get("batch") else {
        return invalid(&Violation::new(
            "required",
            "batch",
            "the body must be {\"batch\": [operation, ...]}".into(),
        ));
    };
    let mut changes = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match batch_item(item) {
            Ok(item_changes) => changes.extend(item_changes),
            Err(violation) => errors.push(json!({
                "batch_index": index,
                "reason": violation.reason,
                "field": violation.field,
                "message": violation.message,
            })),
        }
    }
    records.apply(changes);
    if errors.is_empty() {
        Response::json(200, &json!({}))
    } else {
        Response::json(207, &json!({ "errors": errors }))
    }
}

fn batch_item(item: &Value) -> Result<Vec<Change>, Violation> {
    let len = validate::serialized_len(item);
    if len > MAX_ENTITY_BYTES {
        return Err(Violation::new(
            "too_large",
            "",
            format!("a batch item must be at most {MAX_ENTITY_BYTES} bytes, got {len}"),
        ));
    }
    match item {
        Value::Object(object) => operation(object),
        _ => Err(Violation::new(
            "invalid",
            "",
            "a batch item must be an object".into(),
        )),
    }
}

/// One operation: `{type, action, identifiers, attributes, name, id, timestamp, ...}`.
fn operation(op: &Map<String, Value>) -> Result<Vec<Change>, Violation> {
    let kind = required_str(op, "type")?;
    let action = required_str(op, "action")?;
    match kind {
        "person" => person_operation(action, op),
        "object" => object_operation(action, op),
        "delivery" => delivery_operation(action, op),
        other => Err(Violation::new(
            "invalid",
            "type",
            format!("unknown type {other:?}: expected person, object or delivery"),
        )),
    }
}

fn person_operation(action: &str, op: &Map<String, Value>) -> Result<Vec<Change>, Violation> {
    // An anonymous event names no person, only its anonymous_id.
    if matches!(action, "event" | "screen" | "page")
        && op.get("identifiers").is_none()
        && op.get("anonymous_id").is_some()
    {
        return event(action, None, op);
    }
    if action == "merge" {
        return merge(op);
    }
    let person = validate::person_key("identifiers", op.get("identifiers"))?;
    let change = match action {
        "identify" => {
            let attributes = attributes(op)?;
            let mut changes = vec![Change::Identify {
                person: person.clone(),
                attributes,
            }];
            if op.contains_key("cio_relationships") {
                changes.extend(related_objects(&person, op, true)?);
            }
            return Ok(changes);
        }
        "delete" => Change::Delete { person },
        "event" | "screen" | "page" => return event(action, Some(person), op),
        "suppress" | "unsuppress" => Change::Suppress {
            person,
            suppressed: action == "suppress",
        },
        "add_device" => {
            let (device_id, device) = validate::device("device", op.get("device"))?;
            Change::AddDevice {
                person,
                device_id,
                device,
            }
        }
        "delete_device" => Change::DeleteDevice {
            person,
            device_id: validate::device_token("device", op.get("device"))?,
        },
        "add_relationships" | "delete_relationships" => {
            return related_objects(&person, op, action == "add_relationships");
        }
        other => return Err(unknown_action("person", other)),
    };
    Ok(vec![change])
}

fn attributes(op: &Map<String, Value>) -> Result<Map<String, Value>, Violation> {
    let attributes = validate::optional_object(op, "attributes", "attributes must be an object")?;
    validate::attributes("attributes", &attributes)?;
    Ok(attributes)
}

fn event(
    action: &str,
    person: Option<String>,
    op: &Map<String, Value>,
) -> Result<Vec<Change>, Violation> {
    let anonymous_id = match &person {
        Some(_) => None,
        None => match op.get("anonymous_id") {
            Some(Value::String(id)) if !id.is_empty() => {
                validate::identifier("anonymous_id", id)?;
                Some(id.clone())
            }
            _ => {
                return Err(Violation::new(
                    "required",
                    "anonymous_id",
                    "anonymous_id must be a non-empty string".into(),
                ));
            }
        },
    };
    let name = validate::event_name(op)?;
    let data = validate::optional_object(op, "attributes", "attributes must be an object")?;
    validate::event_data("attributes", &data)?;
    Ok(vec![Change::Event(Event {
        person,
        anonymous_id,
        name,
        id: validate::event_id(op)?,
        kind: action.to_owned(),
        data: Value::Object(data),
        timestamp: validate::timestamp(op)?,
    })])
}

/// A merge of `secondary` into `primary`, from a v2 operation or a v1 body.
pub(crate) fn merge(op: &Map<String, Value>) -> Result<Vec<Change>, Violation> {
    let primary = validate::person_key("primary", op.get("primary"))?;
    let secondary = validate::person_key("secondary", op.get("secondary"))?;
    if primary == secondary {
        return Err(Violation::new(
            "invalid",
            "secondary",
            "cannot merge a person into themselves".into(),
        ));
    }
    Ok(vec![Change::Merge {
        primary,
        secondary,
        body: json!({ "primary": op["primary"], "secondary": op["secondary"] }),
    }])
}

/// An object operation: identify (with its `cio_relationships` to people), delete, or add
/// or delete relationships to people.
fn object_operation(action: &str, op: &Map<String, Value>) -> Result<Vec<Change>, Violation> {
    let object = object_key(op.get("identifiers"))?;
    let mut changes = Vec::new();
    match action {
        "identify" | "identify_anonymous" => {
            let attributes = attributes(op)?;
            changes.push(Change::IdentifyObject {
                object: object.clone(),
                attributes,
            });
            if op.contains_key("cio_relationships") {
                changes.extend(related_people(&object, op, true)?);
            }
        }
        "delete" => changes.push(Change::DeleteObject { object }),
        "add_relationships" | "delete_relationships" => {
            changes.extend(related_people(&object, op, action == "add_relationships")?);
        }
        other => return Err(unknown_action("object", other)),
    }
    Ok(changes)
}

/// An object's key in the snapshot, `{object_type_id}/{object_id}`, from its identifiers.
fn object_key(identifiers: Option<&Value>) -> Result<String, Violation> {
    let part = |key: &str| match identifiers.and_then(|ids| ids.get(key)) {
        Some(Value::String(text)) if !text.is_empty() => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    match (part("object_type_id"), part("object_id")) {
        (Some(type_id), Some(id)) => Ok(format!("{type_id}/{id}")),
        _ => Err(Violation::new(
            "required",
            "identifiers",
            "an object needs identifiers {object_type_id, object_id}".into(),
        )),
    }
}

/// The relationships an operation's `cio_relationships` name: `pair` turns the identifiers
/// of one of them into the person and the object it relates.
fn relate(
    op: &Map<String, Value>,
    add: bool,
    pair: impl Fn(Option<&Value>) -> Result<(String, String), Violation>,
) -> Result<Vec<Change>, Violation> {
    relationships(op)?
        .iter()
        .map(|relationship| {
            let (person, object) = pair(relationship.get("identifiers"))?;
            Ok(Change::Relate {
                person,
                object,
                add,
            })
        })
        .collect()
}

/// A person's `cio_relationships`: each names an object.
fn related_objects(
    person: &str,
    op: &Map<String, Value>,
    add: bool,
) -> Result<Vec<Change>, Violation> {
    relate(op, add, |ids| Ok((person.to_owned(), object_key(ids)?)))
}

/// An object's `cio_relationships`: each names a person.
fn related_people(
    object: &str,
    op: &Map<String, Value>,
    add: bool,
) -> Result<Vec<Change>, Violation> {
    relate(op, add, |ids| {
        let person = validate::person_key("cio_relationships.identifiers", ids)?;
        Ok((person, object.to_owned()))
    })
}

/// A delivery metric: `{type: delivery, action: event, identifiers: {id: delivery_id}, name:
/// metric, timestamp, attributes: {device_token, ...}}`.
fn delivery_operation(action: &str, op: &Map<String, Value>) -> Result<Vec<Change>, Violation> {
    if action != "event" {
        return Err(unknown_action("delivery", action));
    }
    let has_id = op
        .get("identifiers")
        .and_then(|ids| ids.get("id"))
        .and_then(Value::as_str)
        .is_some_and(|id| !id.is_empty());
    if !has_id {
        return Err(Violation::new(
            "required",
            "identifiers.id",
            "a delivery needs identifiers {id: delivery_id}".into(),
        ));
    }
    let metric = validate::event_name(op)?;
    let delivery_id = op["identifiers"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let device_id = op
        .get("attributes")
        .and_then(|attributes| attributes.get("device_token"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(vec![Change::DeliveryMetric(DeliveryMetric {
        delivery_id,
        metric,
        device_id,
        timestamp: validate::timestamp(op)?,
    })])
}

fn relationships(op: &Map<String, Value>) -> Result<&Vec<Value>, Violation> {
    match op.get("cio_relationships") {
        Some(Value::Array(list)) if !list.is_empty() => Ok(list),
        _ => Err(Violation::new(
            "required",
            "cio_relationships",
            "cio_relationships must be a non-empty array".into(),
        )),
    }
}

fn required_str<'a>(op: &'a Map<String, Value>, field: &str) -> Result<&'a str, Violation> {
    match op.get(field) {
        Some(Value::String(text)) if !text.is_empty() => Ok(text),
        _ => Err(Violation::new(
            "required",
            field,
            format!("{field} must be a non-empty string"),
        )),
    }
}

fn unknown_action(kind: &str, action: &str) -> Violation {
    Violation::new(
        "invalid",
        "action",
        format!("unknown action {action:?} for type {kind}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(value: Value) -> Result<Vec<Change>, Violation> {
        operation(value.as_object().unwrap())
    }

    #[test]
    fn person_actions_become_changes() {
        let ids = json!({"email": "a@b.io"});
        let identify = op(
            json!({"type": "person", "action": "identify", "identifiers": ids,
            "attributes": {"plan": "pro"}}),
        )
        .unwrap();
        assert!(matches!(&identify[0], Change::Identify { person, .. } if person == "a@b.io"));
        let page = op(
            json!({"type": "person", "action": "page", "identifiers": ids,
            "name": "/home", "id": "01H", "timestamp": 5}),
        )
        .unwrap();
        let Change::Event(event) = &page[0] else {
            panic!()
        };
        assert_eq!(
            (event.kind.as_str(), event.id.as_deref()),
            ("page", Some("01H"))
        );
        let relation = op(json!({"type": "person", "action": "add_relationships",
            "identifiers": ids, "cio_relationships": [{"identifiers": {"object_type_id": "1",
            "object_id": "acme"}}]}))
        .unwrap();
        assert_eq!(
            relation,
            vec![Change::Relate {
                person: "a@b.io".into(),
                object: "1/acme".into(),
                add: true
            }]
        );
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |value: Value| op(value).unwrap_err().field;
        assert_eq!(field(json!({"action": "identify"})), "type");
        assert_eq!(field(json!({"type": "person"})), "action");
        assert_eq!(
            field(json!({"type": "person", "action": "identify"})),
            "identifiers"
        );
        assert_eq!(
            field(json!({"type": "person", "action": "event", "identifiers": {"id": "1"}})),
            "name"
        );
        assert_eq!(
            field(json!({"type": "person", "action": "fly", "identifiers": {"id": "1"}})),
            "action"
        );
        assert_eq!(
            field(json!({"type": "robot", "action": "identify"})),
            "type"
        );
    }

    #[test]
    fn anonymous_events_need_no_identifiers() {
        let changes =
            op(json!({"type": "person", "action": "event", "anonymous_id": "anon", "name": "x"}))
                .unwrap();
        let Change::Event(event) = &changes[0] else {
            panic!()
        };
        assert_eq!(
            (event.person.as_deref(), event.anonymous_id.as_deref()),
            (None, Some("anon"))
        );
    }
}
