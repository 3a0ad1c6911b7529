//! Credentials: HTTP Basic on the Track API, Bearer on the App API; 401 bodies per API.

mod client;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_SITE_ID, Emulator};
use client::{Client, basic};

#[test]
fn the_test_client_encodes_the_documented_default_token() {
    assert_eq!(
        basic(DEFAULT_SITE_ID, DEFAULT_API_KEY),
        "Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5"
    );
    assert_eq!(basic("a", "b"), "Basic YTpi");
}

#[test]
fn track_needs_basic_site_id_and_api_key() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let bearer = format!("Bearer {DEFAULT_APP_KEY}");
    let wrong_key = basic(DEFAULT_SITE_ID, "wrong");
    let wrong_site = basic("wrong", DEFAULT_API_KEY);
    for authorization in [
        None,
        Some(wrong_key.as_str()),
        Some(&wrong_site),
        Some(&bearer),
    ] {
        let v1 = client
            .send("PUT", "/api/v1/customers/1", authorization, "{}")
            .unwrap();
        assert_eq!(v1.status, 401, "{authorization:?}");
        let message = v1.json["meta"]["errors"][0].as_str().unwrap();
        assert!(message.contains("site ID"), "{message}");
        let v2 = client
            .send("POST", "/api/v2/batch", authorization, r#"{"batch":[]}"#)
            .unwrap();
        assert_eq!(v2.status, 401);
        assert_eq!(v2.json["errors"][0]["reason"], "unauthorized");
        assert!(v2.json["errors"][0]["message"].is_string());
    }
    assert!(emulator.snapshot().people.is_empty());
    let ok = client.track("PUT", "/api/v1/customers/1", "{}");
    assert_eq!(ok.status, 200);
}

#[test]
fn app_needs_bearer_app_key() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    let track_auth = basic(DEFAULT_SITE_ID, DEFAULT_API_KEY);
    let body = r#"{"transactional_message_id":"1","identifiers":{"id":"1"}}"#;
    for authorization in [None, Some("Bearer wrong"), Some(track_auth.as_str())] {
        let answer = client
            .send("POST", "/v1/send/email", authorization, body)
            .unwrap();
        assert_eq!(answer.status, 401, "{authorization:?}");
        assert_eq!(answer.json["errors"][0]["status"], "401");
        assert!(
            answer.json["errors"][0]["detail"]
                .as_str()
                .unwrap()
                .contains("App API key")
        );
    }
    assert!(emulator.snapshot().sends.is_empty());
    assert_eq!(client.app("POST", "/v1/send/email", body).status, 200);
}

#[test]
fn configured_credentials_replace_the_defaults() {
    let config = Config::default()
        .site_id("site")
        .api_key("key")
        .app_key("app");
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let default_track = client.track("PUT", "/api/v1/customers/1", "{}");
    assert_eq!(default_track.status, 401);
    let custom = basic("site", "key");
    let answer = client
        .send("PUT", "/api/v1/customers/1", Some(&custom), "{}")
        .unwrap();
    assert_eq!(answer.status, 200);
    let answer = client
        .send("POST", "/v1/campaigns/1/triggers", Some("Bearer app"), "")
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[test]
fn unauthorized_requests_arrive_but_are_not_admitted() {
    let emulator = Emulator::start(Config::default().track_limit(1)).unwrap();
    let client = Client::new(&emulator);
    for _ in 0..3 {
        let answer = client
            .send("PUT", "/api/v1/customers/1", None, "{}")
            .unwrap();
        assert_eq!(answer.status, 401);
    }
    // The window is still empty: the first good request is admitted.
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 200);
    let snapshot = emulator.snapshot();
    let track = &snapshot.classes["track"];
    assert_eq!((track.requests, track.admitted, track.throttled), (4, 1, 0));
    assert_eq!(track.max_in_window, 4);
    assert_eq!(snapshot.status_count(401), 3);
}
