//! The admin routes: the snapshot as JSON and reset, without auth, rate limits or counting.

mod client;

use cio_emulator::{Config, Emulator, Snapshot};
use client::Client;

#[test]
fn the_http_snapshot_is_the_in_process_snapshot() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    client.track("PUT", "/api/v1/customers/1", r#"{"plan":"pro"}"#);
    client.track(
        "POST",
        "/api/v1/customers/1/events",
        r#"{"name":"x","id":"e1","data":{"n":1}}"#,
    );
    client.track("PUT", "/api/v1/customers/1", "{broken");
    client.app(
        "POST",
        "/v1/send/email",
        r#"{"transactional_message_id":1,"identifiers":{"id":"1"}}"#,
    );
    let answer = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
    assert_eq!(answer.status, 200);
    let over_http: Snapshot = serde_json::from_str(&answer.text).unwrap();
    assert_eq!(over_http, emulator.snapshot());
    assert_eq!(over_http.requests, 4, "admin routes are not counted");
    assert_eq!(over_http.status_count(400), 1);
    assert_eq!(answer.json["status_counts"]["200"], 3);
    assert_eq!(answer.json["classes"]["track"]["admitted"], 3);
}

#[test]
fn reset_over_http_clears_the_records() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    client.track("PUT", "/api/v1/customers/1", "{}");
    let answer = client.send("POST", "/_emulator/reset", None, "").unwrap();
    assert_eq!(answer.status, 200);
    let snapshot = emulator.snapshot();
    assert!(snapshot.people.is_empty());
    assert_eq!(snapshot.requests, 0);
}

#[test]
fn admin_routes_are_not_rate_limited() {
    let config = Config::default().track_limit(1).app_limit(1);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    for _ in 0..50 {
        let answer = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
        assert_eq!(answer.status, 200);
    }
    assert_eq!(
        client
            .send("GET", "/_emulator/other", None, "")
            .unwrap()
            .status,
        404
    );
}
