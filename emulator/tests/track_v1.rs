//! Track API v1 endpoints, their validation and their error bodies.

mod client;

use cio_emulator::{Config, Emulator};
use client::Client;
use serde_json::json;

fn emulator() -> (Emulator, Client) {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let client = Client::new(&emulator);
    (emulator, client)
}

#[test]
fn identify_merges_top_level_attributes() {
    let (emulator, client) = emulator();
    let first = client.track(
        "PUT",
        "/api/v1/customers/42",
        r#"{"email":"ada@example.com","plan":"free","created_at":1700000000}"#,
    );
    assert_eq!((first.status, &first.json), (200, &json!({})));
    client.track("PUT", "/api/v1/customers/42", r#"{"plan":"pro"}"#);
    let snapshot = emulator.snapshot();
    let person = &snapshot.people["42"];
    assert_eq!(person.identify_count, 2);
    assert_eq!(
        serde_json::Value::Object(person.attributes.clone()),
        json!({"email": "ada@example.com", "plan": "pro", "created_at": 1700000000})
    );
}

#[test]
fn path_identifiers_may_be_emails_or_cio_ids_and_are_percent_decoded() {
    let (emulator, client) = emulator();
    assert_eq!(
        client
            .track("PUT", "/api/v1/customers/ada%40example.com", "{}")
            .status,
        200
    );
    assert_eq!(
        client
            .track("PUT", "/api/v1/customers/cio_03000001", "")
            .status,
        200
    );
    assert_eq!(
        client
            .track("PUT", "/api/v1/customers/with%2Fslash%20and%20space", "{}")
            .status,
        200
    );
    let people: Vec<String> = emulator.snapshot().people.into_keys().collect();
    assert_eq!(
        people,
        ["ada@example.com", "cio_03000001", "with/slash and space"]
    );
}

#[test]
fn delete_forgets_the_person_and_notes_it() {
    let (emulator, client) = emulator();
    client.track("PUT", "/api/v1/customers/1", "{}");
    assert_eq!(
        client.track("DELETE", "/api/v1/customers/1", "").status,
        200
    );
    let snapshot = emulator.snapshot();
    assert!(snapshot.people.is_empty());
    assert_eq!(snapshot.deleted, ["1"]);
}

#[test]
fn events_are_stored_with_name_id_type_data_and_timestamp() {
    let (emulator, client) = emulator();
    let answer = client.track(
        "POST",
        "/api/v1/customers/7/events",
        r#"{"name":"purchase","id":"01HV000000000000000000000A","timestamp":1700000000,
            "data":{"total":12.5}}"#,
    );
    assert_eq!(answer.status, 200);
    client.track(
        "POST",
        "/api/v1/customers/7/events",
        r#"{"name":"/pricing","type":"page"}"#,
    );
    client.track(
        "POST",
        "/api/v1/customers/7/events",
        r#"{"name":"Home","type":"screen"}"#,
    );
    let snapshot = emulator.snapshot();
    let purchase = snapshot.events_named("purchase").next().unwrap();
    assert_eq!(purchase.person.as_deref(), Some("7"));
    assert_eq!(purchase.id.as_deref(), Some("01HV000000000000000000000A"));
    assert_eq!(purchase.kind, "event");
    assert_eq!(purchase.data, json!({"total": 12.5}));
    assert_eq!(purchase.timestamp, Some(1700000000));
    let kinds: Vec<&str> = snapshot.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["event", "page", "screen"]);
}

#[test]
fn anonymous_events_need_an_anonymous_id() {
    let (emulator, client) = emulator();
    let ok = client.track(
        "POST",
        "/api/v1/events",
        r#"{"name":"visit","anonymous_id":"cookie-1","data":{"ref":"ad"}}"#,
    );
    assert_eq!(ok.status, 200);
    let refused = client.track("POST", "/api/v1/events", r#"{"name":"visit"}"#);
    assert_eq!(refused.status, 400);
    assert!(
        refused.json["meta"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("anonymous_id"),
        "{}",
        refused.text
    );
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events.len(), 1);
    assert_eq!(snapshot.events[0].person, None);
    assert_eq!(snapshot.events[0].anonymous_id.as_deref(), Some("cookie-1"));
}

#[test]
fn suppress_and_unsuppress_set_the_flag() {
    let (emulator, client) = emulator();
    assert_eq!(
        client
            .track("POST", "/api/v1/customers/5/suppress", "")
            .status,
        200
    );
    assert!(emulator.snapshot().people["5"].suppressed);
    client.track("POST", "/api/v1/customers/5/unsuppress", "");
    assert!(!emulator.snapshot().people["5"].suppressed);
}

#[test]
fn devices_are_added_and_deleted_by_token() {
    let (emulator, client) = emulator();
    let device = json!({"device": {"id": "tok/1", "platform": "ios", "last_used": 1700000000,
        "attributes": {"app_version": "1.2"}}});
    let answer = client.track("PUT", "/api/v1/customers/5/devices", &device.to_string());
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        emulator.snapshot().people["5"].devices["tok/1"],
        device["device"]
    );
    let answer = client.track("DELETE", "/api/v1/customers/5/devices/tok%2F1", "");
    assert_eq!(answer.status, 200);
    assert!(emulator.snapshot().people["5"].devices.is_empty());
}

#[test]
fn devices_need_an_id_and_a_known_platform() {
    let (_emulator, client) = emulator();
    for body in [
        json!({"device": {"platform": "ios"}}),
        json!({"device": {"id": "t", "platform": "windows"}}),
        json!({"id": "t", "platform": "ios"}),
    ] {
        let answer = client.track("PUT", "/api/v1/customers/5/devices", &body.to_string());
        assert_eq!(answer.status, 400, "{body}");
    }
}

#[test]
fn merge_customers_records_the_body_and_merges_people() {
    let (emulator, client) = emulator();
    client.track("PUT", "/api/v1/customers/1", r#"{"plan":"pro"}"#);
    client.track(
        "PUT",
        "/api/v1/customers/b%40x.io",
        r#"{"plan":"free","city":"Oslo"}"#,
    );
    let body = json!({"primary": {"id": "1"}, "secondary": {"email": "b@x.io"}});
    let answer = client.track("POST", "/api/v1/merge_customers", &body.to_string());
    assert_eq!(answer.status, 200);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.merges, [body]);
    assert!(!snapshot.people.contains_key("b@x.io"));
    assert_eq!(snapshot.people["1"].attributes["plan"], "pro");
    assert_eq!(snapshot.people["1"].attributes["city"], "Oslo");

    let two_ids = json!({"primary": {"id": "1", "email": "a@x.io"}, "secondary": {"id": "2"}});
    let answer = client.track("POST", "/api/v1/merge_customers", &two_ids.to_string());
    assert_eq!(answer.status, 400);
}

#[test]
fn malformed_json_is_a_400_in_the_v1_error_shape() {
    let (emulator, client) = emulator();
    let answer = client.track("PUT", "/api/v1/customers/1", "{not json");
    assert_eq!(answer.status, 400);
    assert!(answer.json["meta"]["errors"].is_array(), "{}", answer.text);
    assert!(answer.json["meta"]["error"].is_string(), "{}", answer.text);
    let answer = client.track("PUT", "/api/v1/customers/1", "[1,2]");
    assert_eq!(answer.status, 400);
    assert!(emulator.snapshot().people.is_empty());
}

#[test]
fn unknown_routes_are_404() {
    let (_emulator, client) = emulator();
    assert_eq!(client.track("GET", "/api/v1/customers/1", "").status, 404);
    assert_eq!(client.track("POST", "/api/v1/nothing", "{}").status, 404);
    let outside = client.send("GET", "/", None, "").unwrap();
    assert_eq!(outside.status, 404);
}

mod limits {
    use super::*;

    fn refused(client: &Client, path: &str, body: &serde_json::Value) -> String {
        let answer = client.track(
            if path.ends_with("events") {
                "POST"
            } else {
                "PUT"
            },
            path,
            &body.to_string(),
        );
        assert_eq!(answer.status, 400, "{body}");
        answer.json["meta"]["errors"][0]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn identifiers_up_to_150_bytes() {
        let (_emulator, client) = emulator();
        let ok = format!("/api/v1/customers/{}", "i".repeat(150));
        assert_eq!(client.track("PUT", &ok, "{}").status, 200);
        let long = format!("/api/v1/customers/{}", "i".repeat(151));
        assert!(refused(&client, &long, &json!({})).contains("150 bytes"));
    }

    #[test]
    fn attribute_names_up_to_150_bytes_and_values_up_to_1000() {
        let (emulator, client) = emulator();
        let path = "/api/v1/customers/1";
        let at_limit = json!({ "n".repeat(150): "v".repeat(1000) });
        assert_eq!(client.track("PUT", path, &at_limit.to_string()).status, 200);
        let message = refused(&client, path, &json!({ "n".repeat(151): 1 }));
        assert_eq!(message, "attribute name cannot be longer than 150 bytes");
        let message = refused(&client, path, &json!({ "bio": "v".repeat(1001) }));
        assert_eq!(
            message,
            "value for attribute 'bio' cannot be longer than 1000 bytes"
        );
        // Non-strings are measured by their JSON text.
        refused(&client, path, &json!({ "list": ["v".repeat(998)] }));
        assert_eq!(emulator.snapshot().people["1"].identify_count, 1);
    }

    #[test]
    fn at_most_300_attributes() {
        let (_emulator, client) = emulator();
        let path = "/api/v1/customers/1";
        let attributes = |n: usize| {
            serde_json::Value::Object((0..n).map(|i| (format!("a{i}"), json!(i))).collect())
        };
        assert_eq!(
            client
                .track("PUT", path, &attributes(300).to_string())
                .status,
            200
        );
        let message = refused(&client, path, &attributes(301));
        assert_eq!(
            message,
            "cannot identify more than 300 attributes in one request"
        );
    }

    #[test]
    fn event_names_up_to_100_bytes_and_not_blank() {
        let (_emulator, client) = emulator();
        let path = "/api/v1/customers/1/events";
        let ok = json!({ "name": "e".repeat(100) });
        assert_eq!(client.track("POST", path, &ok.to_string()).status, 200);
        let message = refused(&client, path, &json!({ "name": "e".repeat(101) }));
        assert_eq!(message, "event name cannot be longer than 100 bytes");
        let message = refused(&client, path, &json!({ "data": {} }));
        assert_eq!(message, "event name must not be blank");
    }

    #[test]
    fn event_data_up_to_100000_bytes_and_a_hash() {
        let (_emulator, client) = emulator();
        let path = "/api/v1/customers/1/events";
        // {"d":"…"} is 8 bytes around the string.
        let ok = json!({ "name": "big", "data": { "d": "x".repeat(100_000 - 8) } });
        assert_eq!(client.track("POST", path, &ok.to_string()).status, 200);
        let over = json!({ "name": "big", "data": { "d": "x".repeat(100_000 - 7) } });
        let message = refused(&client, path, &over);
        assert_eq!(message, "event data cannot be longer than 100000 bytes");
        let message = refused(&client, path, &json!({ "name": "x", "data": "" }));
        assert!(
            message.starts_with("event data must be a hash"),
            "{message}"
        );
        refused(&client, path, &json!({ "name": "x", "type": "click" }));
        refused(
            &client,
            path,
            &json!({ "name": "x", "timestamp": "yesterday" }),
        );
    }
}
