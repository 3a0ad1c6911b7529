//! Track API v2: `/api/v2/entity` and `/api/v2/batch`, 200 / 207 / 400, size limits.

mod client;

use cio_emulator::{Config, Emulator};
use client::Client;
use serde_json::{Value, json};

fn emulator() -> (Emulator, Client) {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let client = Client::new(&emulator);
    (emulator, client)
}

fn person(action: &str, identifiers: Value, extra: Value) -> Value {
    let mut op = json!({"type": "person", "action": action, "identifiers": identifiers});
    op.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    op
}

#[test]
fn entity_applies_every_person_action() {
    let (emulator, client) = emulator();
    let id = json!({"id": "42"});
    let ops = [
        person(
            "identify",
            id.clone(),
            json!({"attributes": {"plan": "pro"}}),
        ),
        person(
            "identify",
            json!({"email": "b@x.io"}),
            json!({"attributes": {"city": "Oslo"}}),
        ),
        person("identify", json!({"cio_id": "a1b2"}), json!({})),
        person(
            "event",
            id.clone(),
            json!({"name": "purchase", "id": "01HA", "timestamp": 17,
            "attributes": {"total": 3}}),
        ),
        person("page", id.clone(), json!({"name": "/pricing"})),
        person("screen", id.clone(), json!({"name": "Home"})),
        person(
            "add_device",
            id.clone(),
            json!({"device": {"token": "tok", "platform": "android"}}),
        ),
        person("suppress", id.clone(), json!({})),
        person(
            "add_relationships",
            id.clone(),
            json!({"cio_relationships": [
            {"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}),
        ),
        person(
            "delete_relationships",
            id.clone(),
            json!({"cio_relationships": [
            {"identifiers": {"object_type_id": "1", "object_id": "acme"}}]}),
        ),
        json!({"type": "person", "action": "merge", "primary": {"id": "42"},
            "secondary": {"email": "b@x.io"}}),
        person("delete", json!({"cio_id": "a1b2"}), json!({})),
    ];
    for op in &ops {
        let answer = client.track("POST", "/api/v2/entity", &op.to_string());
        assert_eq!((answer.status, &answer.json), (200, &json!({})), "{op}");
    }
    let snapshot = emulator.snapshot();
    let person = &snapshot.people["42"];
    assert_eq!(person.attributes["plan"], "pro");
    assert_eq!(person.attributes["city"], "Oslo", "merged from b@x.io");
    assert!(person.suppressed);
    assert!(person.devices.contains_key("tok"));
    assert!(!snapshot.people.contains_key("b@x.io"));
    assert_eq!(snapshot.deleted, ["cio_a1b2"]);
    assert_eq!(snapshot.merges.len(), 1);
    let events: Vec<(&str, &str)> = snapshot
        .events
        .iter()
        .map(|e| (e.kind.as_str(), e.name.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("event", "purchase"),
            ("page", "/pricing"),
            ("screen", "Home")
        ]
    );
    assert_eq!(snapshot.events[0].data, json!({"total": 3}));
    assert_eq!(snapshot.events[0].timestamp, Some(17));

    let answer = client.track(
        "POST",
        "/api/v2/entity",
        &person_op("unsuppress").to_string(),
    );
    assert_eq!(answer.status, 200);
    let answer = client.track(
        "POST",
        "/api/v2/entity",
        &json!({"type": "person", "action": "delete_device", "identifiers": {"id": "42"},
            "device": {"token": "tok"}})
        .to_string(),
    );
    assert_eq!(answer.status, 200);
    let person = &emulator.snapshot().people["42"];
    assert!(!person.suppressed);
    assert!(person.devices.is_empty());
}

fn person_op(action: &str) -> Value {
    person(action, json!({"id": "42"}), json!({}))
}

#[test]
fn objects_and_deliveries_are_acknowledged() {
    let (_emulator, client) = emulator();
    let object = json!({"type": "object", "action": "identify",
        "identifiers": {"object_type_id": "1", "object_id": "acme"}, "attributes": {"n": 1}});
    assert_eq!(
        client
            .track("POST", "/api/v2/entity", &object.to_string())
            .status,
        200
    );
    let delivery = json!({"type": "delivery", "action": "event",
        "identifiers": {"id": "RAECAAGKdWp"}, "name": "opened"});
    assert_eq!(
        client
            .track("POST", "/api/v2/entity", &delivery.to_string())
            .status,
        200
    );
}

#[test]
fn an_invalid_entity_is_a_400_naming_the_field() {
    let (emulator, client) = emulator();
    let long_name = "n".repeat(151);
    let cases = [
        (person_op("fly"), "action".to_owned()),
        (
            person("identify", json!({}), json!({})),
            "identifiers".to_owned(),
        ),
        (
            person("identify", json!({"id": "1", "email": "a@b.c"}), json!({})),
            "identifiers".to_owned(),
        ),
        (person_op("event"), "name".to_owned()),
        (
            person("identify", json!({"id": "i".repeat(151)}), json!({})),
            "identifiers.id".to_owned(),
        ),
        (
            person(
                "identify",
                json!({"id": "1"}),
                json!({"attributes": {&long_name: 1}}),
            ),
            format!("attributes.{long_name}"),
        ),
        (
            json!({"type": "person", "identifiers": {"id": "1"}}),
            "action".to_owned(),
        ),
    ];
    for (op, field) in cases {
        let answer = client.track("POST", "/api/v2/entity", &op.to_string());
        assert_eq!(answer.status, 400, "{op}");
        assert_eq!(answer.json["errors"][0]["field"], field, "{}", answer.text);
        assert!(answer.json["errors"][0]["reason"].is_string());
        assert!(answer.json["errors"][0]["message"].is_string());
    }
    let answer = client.track("POST", "/api/v2/entity", "{oops");
    assert_eq!(answer.status, 400);
    assert_eq!(emulator.snapshot().people.len(), 0);
}

#[test]
fn a_batch_of_valid_operations_is_a_200() {
    let (emulator, client) = emulator();
    let batch = json!({"batch": [
        person("identify", json!({"id": "1"}), json!({"attributes": {"a": 1}})),
        person("event", json!({"id": "1"}), json!({"name": "signup", "id": "e1"})),
    ]});
    let answer = client.track("POST", "/api/v2/batch", &batch.to_string());
    assert_eq!((answer.status, &answer.json), (200, &json!({})));
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.people["1"].attributes["a"], 1);
    assert_eq!(snapshot.events.len(), 1);
}

#[test]
fn per_item_failures_are_a_207_and_the_other_items_are_stored() {
    let (emulator, client) = emulator();
    let batch = json!({"batch": [
        person("identify", json!({"id": "1"}), json!({})),
        person("event", json!({"id": "1"}), json!({})),
        person("identify", json!({"id": "2"}), json!({})),
        "not an object",
        person("identify", json!({"id": "3"}), json!({"attributes": {"big": "x".repeat(1001)}})),
    ]});
    let answer = client.track("POST", "/api/v2/batch", &batch.to_string());
    assert_eq!(answer.status, 207, "{}", answer.text);
    let errors = answer.json["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["batch_index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [1, 3, 4]);
    assert_eq!(errors[0]["field"], "name");
    assert_eq!(errors[2]["field"], "attributes.big");
    for error in errors {
        assert!(error["reason"].is_string() && error["message"].is_string());
    }
    let people: Vec<String> = emulator.snapshot().people.into_keys().collect();
    assert_eq!(people, ["1", "2"]);
}

#[test]
fn a_batch_that_is_not_a_batch_is_a_400() {
    let (_emulator, client) = emulator();
    for body in [r#"{"batch": {}}"#, r#"{"items": []}"#, "[]", "{"] {
        let answer = client.track("POST", "/api/v2/batch", body);
        assert_eq!(answer.status, 400, "{body}");
        assert!(answer.json["errors"][0]["message"].is_string());
    }
}

/// An event op whose attribute pads it to exactly `len` bytes of JSON. Events suit size tests:
/// their data has a total limit (100,000 bytes), not a per-attribute one.
fn event_of_len(person_id: usize, len: usize) -> Value {
    let mut op = person(
        "event",
        json!({"id": person_id.to_string()}),
        json!({"name": "pad", "attributes": {"pad": ""}}),
    );
    let base = op.to_string().len();
    op["attributes"]["pad"] = Value::String("p".repeat(len - base));
    assert_eq!(op.to_string().len(), len);
    op
}

#[test]
fn entity_bodies_up_to_32768_bytes() {
    let (emulator, client) = emulator();
    let body = |len: usize| event_of_len(1, len).to_string();
    assert_eq!(
        client.track("POST", "/api/v2/entity", &body(32_768)).status,
        200
    );
    let answer = client.track("POST", "/api/v2/entity", &body(32_769));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json["errors"][0]["reason"], "too_large");
    assert_eq!(emulator.snapshot().events.len(), 1);
}

#[test]
fn batch_items_up_to_32768_bytes() {
    let (emulator, client) = emulator();
    let batch = json!({"batch": [event_of_len(1, 32_768), event_of_len(2, 32_769)]});
    let answer = client.track("POST", "/api/v2/batch", &batch.to_string());
    assert_eq!(answer.status, 207, "{}", answer.text);
    assert_eq!(answer.json["errors"][0]["batch_index"], 1);
    assert_eq!(answer.json["errors"][0]["reason"], "too_large");
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events.len(), 1);
    assert_eq!(snapshot.events[0].person.as_deref(), Some("1"));
}

#[test]
fn batch_bodies_must_be_smaller_than_500000_bytes() {
    let (emulator, client) = emulator();
    let body = |len: usize| {
        let items: Vec<Value> = (0..20).map(|i| event_of_len(i, 20_000)).collect();
        let mut text = json!({ "batch": items }).to_string();
        // JSON allows trailing whitespace, and the body limit counts it.
        text.push_str(&" ".repeat(len - text.len()));
        text
    };
    assert_eq!(
        client.track("POST", "/api/v2/batch", &body(499_999)).status,
        200
    );
    let answer = client.track("POST", "/api/v2/batch", &body(500_000));
    assert_eq!(answer.status, 400);
    assert_eq!(answer.json["errors"][0]["reason"], "too_large");
    assert_eq!(emulator.snapshot().events.len(), 20);
}
