//! The Pipelines API over HTTP: Basic auth with a blank password, permissive and strict
//! modes, dedup by messageId, records and its own rate window.

mod client;

use std::time::Duration;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Emulator};
use client::{Client, basic};

#[test]
fn pipelines_needs_the_key_as_user_and_a_blank_password() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let body = r#"{"userId":"1","traits":{"plan":"pro"}}"#;
    let with_password = basic(DEFAULT_PIPELINES_KEY, "x");
    let wrong_key = basic("wrong", "");
    let track = basic(DEFAULT_SITE_ID, DEFAULT_API_KEY);
    for authorization in [None, Some(&with_password), Some(&wrong_key), Some(&track)] {
        let answer = client
            .send(
                "POST",
                "/v1/identify",
                authorization.map(String::as_str),
                body,
            )
            .unwrap();
        assert_eq!(answer.status, 401, "{authorization:?}");
        let message = answer.json["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("blank password"), "{message}");
    }
    assert!(emulator.snapshot().pipelines.is_empty());
    assert_eq!(client.pipelines("/v1/identify", body, true).status, 200);
    let stored = &emulator.snapshot().pipelines[0];
    assert_eq!(
        (stored.kind.as_str(), stored.user_id.as_deref()),
        ("identify", Some("1"))
    );
    assert_eq!(stored.body["traits"]["plan"], "pro");
    assert!(stored.strict);
}

#[test]
fn permissive_mode_answers_200_and_drops_what_strict_mode_refuses() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let no_event = r#"{"userId":"1","properties":{}}"#;
    assert_eq!(client.pipelines("/v1/track", no_event, false).status, 200);
    let refused = client.pipelines("/v1/track", no_event, true);
    assert_eq!(refused.status, 400);
    assert_eq!(refused.json["errors"][0]["reason"], "required");
    let snapshot = emulator.snapshot();
    assert!(snapshot.pipelines.is_empty());
    assert_eq!(snapshot.pipelines_dropped, 1);

    let batch = r#"{"batch":[
        {"type":"track","userId":"1","event":"a","messageId":"m1"},
        {"type":"track","userId":"1"},
        {"type":"page","anonymousId":"v","name":"Home","messageId":"m2"}]}"#;
    let refused = client.pipelines("/v1/batch", batch, true);
    assert_eq!(refused.status, 400);
    let message = refused.json["errors"][0]["message"].as_str().unwrap();
    assert!(message.starts_with("batch[1]:"), "{message}");
    assert!(emulator.snapshot().pipelines.is_empty(), "nothing stored");
    assert_eq!(client.pipelines("/v1/batch", batch, false).status, 200);
    let snapshot = emulator.snapshot();
    let ids: Vec<_> = snapshot
        .pipelines
        .iter()
        .map(|call| call.message_id.clone().unwrap())
        .collect();
    assert_eq!(ids, ["m1", "m2"]);
    assert_eq!(snapshot.pipelines_dropped, 2);
}

#[test]
fn a_repeated_message_id_is_acknowledged_and_stored_once() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let call = r#"{"userId":"1","event":"paid","messageId":"same"}"#;
    for _ in 0..3 {
        assert_eq!(client.pipelines("/v1/track", call, true).status, 200);
    }
    let batch = r#"{"batch":[{"type":"track","userId":"1","event":"paid","messageId":"same"}]}"#;
    assert_eq!(client.pipelines("/v1/batch", batch, true).status, 200);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.pipelines.len(), 1);
    assert_eq!(snapshot.pipelines_duplicates, 3);
}

#[test]
fn pipelines_has_its_own_rate_window() {
    let config = Config::default()
        .pipelines_limit(2)
        .window(Duration::from_secs(30));
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let call = r#"{"userId":"1"}"#;
    for _ in 0..2 {
        assert_eq!(client.pipelines("/v1/identify", call, true).status, 200);
    }
    let throttled = client.pipelines("/v1/identify", call, true);
    assert_eq!(throttled.status, 429);
    assert!(throttled.retry_after.is_some());
    // The Track API's window is another one.
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 200);
    let stats = &emulator.snapshot().classes["pipelines"];
    assert_eq!((stats.admitted, stats.throttled, stats.limit), (2, 1, 2));
}

#[test]
fn only_post_reaches_the_pipelines_endpoints() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let auth = basic(DEFAULT_PIPELINES_KEY, "");
    let answer = client.send("GET", "/v1/identify", Some(&auth), "").unwrap();
    assert_eq!(answer.status, 404);
}
