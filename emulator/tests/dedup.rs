//! Events are deduplicated by `id`, like Customer.io: acknowledged, stored once, counted.

mod client;

use cio_emulator::{Config, Emulator};
use client::Client;
use serde_json::json;

#[test]
fn a_repeated_event_id_is_acknowledged_and_stored_once() {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let client = Client::new(&emulator);
    let event = json!({"name": "purchase", "id": "01HV0000000000000000000001"});
    for _ in 0..3 {
        let answer = client.track("POST", "/api/v1/customers/1/events", &event.to_string());
        assert_eq!(answer.status, 200);
    }
    // The same id through v2, and as an anonymous event: still the same event.
    let op = json!({"type": "person", "action": "event", "identifiers": {"id": "1"},
        "name": "purchase", "id": "01HV0000000000000000000001"});
    assert_eq!(
        client
            .track("POST", "/api/v2/entity", &op.to_string())
            .status,
        200
    );
    let batch = json!({"batch": [op, {"type": "person", "action": "event",
        "identifiers": {"id": "1"}, "name": "purchase", "id": "01HV0000000000000000000002"}]});
    assert_eq!(
        client
            .track("POST", "/api/v2/batch", &batch.to_string())
            .status,
        200
    );
    let anonymous = json!({"name": "purchase", "anonymous_id": "a",
        "id": "01HV0000000000000000000002"});
    assert_eq!(
        client
            .track("POST", "/api/v1/events", &anonymous.to_string())
            .status,
        200
    );

    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events.len(), 2);
    assert_eq!(snapshot.duplicate_events, 5);
    assert_eq!(
        snapshot.event_ids().into_iter().collect::<Vec<_>>(),
        ["01HV0000000000000000000001", "01HV0000000000000000000002"]
    );
}

#[test]
fn events_without_an_id_are_never_deduplicated() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    for _ in 0..3 {
        client.track("POST", "/api/v1/customers/1/events", r#"{"name":"tick"}"#);
    }
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events_named("tick").count(), 3);
    assert_eq!(snapshot.duplicate_events, 0);
}

#[test]
fn reset_forgets_seen_ids() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let event = r#"{"name":"x","id":"e1"}"#;
    client.track("POST", "/api/v1/customers/1/events", event);
    emulator.reset();
    client.track("POST", "/api/v1/customers/1/events", event);
    let snapshot = emulator.snapshot();
    assert_eq!((snapshot.events.len(), snapshot.duplicate_events), (1, 0));
}
