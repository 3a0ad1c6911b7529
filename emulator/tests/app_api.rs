//! App API: transactional sends, broadcast triggers, validation, unknown calls.

mod client;

use cio_emulator::{Config, Emulator};
use client::Client;
use serde_json::json;

fn emulator() -> (Emulator, Client) {
    let config = Config::default()
        .transactional_limit(0)
        .app_limit(0)
        .broadcast_limit(0);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    (emulator, client)
}

#[test]
fn send_email_answers_a_delivery_id_and_records_the_body() {
    let (emulator, client) = emulator();
    let body = json!({"transactional_message_id": "welcome", "to": "ada@example.com",
        "identifiers": {"email": "ada@example.com"}, "message_data": {"name": "Ada"}});
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let answer = client.app("POST", "/v1/send/email", &body.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text);
    let delivery_id = answer.json["delivery_id"].as_str().unwrap().to_owned();
    let queued_at = answer.json["queued_at"].as_u64().unwrap();
    assert!((before..before + 60).contains(&queued_at), "{queued_at}");
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.sends.len(), 1);
    assert_eq!(snapshot.sends[0].kind, "email");
    assert_eq!(snapshot.sends[0].delivery_id, delivery_id);
    assert_eq!(snapshot.sends[0].body, body);
}

#[test]
fn send_push_and_delivery_ids_are_unique() {
    let (emulator, client) = emulator();
    let body = json!({"transactional_message_id": 3, "identifiers": {"id": "42"}});
    let first = client.app("POST", "/v1/send/push", &body.to_string());
    let second = client.app("POST", "/v1/send/push", &body.to_string());
    assert_eq!((first.status, second.status), (200, 200));
    assert_ne!(first.json["delivery_id"], second.json["delivery_id"]);
    let kinds: Vec<String> = emulator
        .snapshot()
        .sends
        .into_iter()
        .map(|s| s.kind)
        .collect();
    assert_eq!(kinds, ["push", "push"]);
}

#[test]
fn sends_need_identifiers_and_a_template_in_the_app_error_shape() {
    let (emulator, client) = emulator();
    for body in [
        json!({"transactional_message_id": "welcome"}),
        json!({"identifiers": {"id": "1"}}),
        json!({"transactional_message_id": "w", "identifiers": {"id": "1", "email": "a@b.c"}}),
        json!({"transactional_message_id": "w", "identifiers": {"id": "1"}, "message_data": 5}),
    ] {
        let answer = client.app("POST", "/v1/send/email", &body.to_string());
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.json["errors"][0]["status"], "400");
        assert!(
            answer.json["errors"][0]["detail"].is_string(),
            "{}",
            answer.text
        );
    }
    let answer = client.app("POST", "/v1/send/email", "{nope");
    assert_eq!(answer.status, 400);
    // An email composed in the request needs no template.
    let composed = json!({"identifiers": {"id": "1"}, "to": "a@b.c", "from": "x@y.z",
        "subject": "Hi", "body": "<p>Hi</p>"});
    assert_eq!(
        client
            .app("POST", "/v1/send/email", &composed.to_string())
            .status,
        200
    );
    assert_eq!(emulator.snapshot().sends.len(), 1);
}

#[test]
fn broadcast_triggers_answer_an_id_and_record_the_body() {
    let (emulator, client) = emulator();
    let body = json!({"data": {"headline": "Sale"}, "ids": ["1", "2"]});
    let answer = client.app("POST", "/v1/campaigns/12/triggers", &body.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["id"], 1);
    let empty = client.app("POST", "/v1/campaigns/12/triggers", "");
    assert_eq!(empty.json["id"], 2);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.broadcasts.len(), 2);
    assert_eq!(snapshot.broadcasts[0].campaign_id, 12);
    assert_eq!(snapshot.broadcasts[0].body, body);
    assert_eq!(snapshot.broadcasts[1].body, json!({}));
    assert_eq!(snapshot.classes["broadcast"].admitted, 2);
}

#[test]
fn other_app_calls_are_counted_as_app_and_answered_404() {
    let (emulator, client) = emulator();
    let answer = client.app("GET", "/v1/customers/1/attributes", "");
    assert_eq!(answer.status, 404);
    assert_eq!(answer.json["errors"][0]["status"], "404");
    assert_eq!(
        client.app("POST", "/v1/campaigns/abc/triggers", "").status,
        404
    );
    assert_eq!(
        client.app("POST", "/v1/send/carrier-pigeon", "{}").status,
        404
    );
    let classes = emulator.snapshot().classes;
    assert_eq!(classes["app"].requests, 1);
    assert_eq!(classes["broadcast"].requests, 1);
    assert_eq!(classes["transactional"].requests, 1);
}
