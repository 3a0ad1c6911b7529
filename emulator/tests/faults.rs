//! Injected faults: 500 before and after storing, 503, dropped connections, slow answers,
//! fixed latency; seeded, changeable at run time, never on admin routes.

mod client;

use std::time::{Duration, Instant};

use cio_emulator::{Config, Emulator, Faults};
use client::Client;

const EVENT: &str = "/api/v1/customers/1/events";

fn start(faults: Faults) -> (Emulator, Client) {
    let emulator = Emulator::start(Config::default().track_limit(0).faults(faults)).unwrap();
    let client = Client::new(&emulator);
    (emulator, client)
}

#[test]
fn error_before_store_answers_500_and_stores_nothing() {
    let (emulator, client) = start(Faults::default().error_before_store(1.0));
    let answer = client.track("POST", EVENT, r#"{"name":"x"}"#);
    assert_eq!(answer.status, 500);
    assert!(
        answer.json["meta"]["errors"][0].is_string(),
        "{}",
        answer.text
    );
    let snapshot = emulator.snapshot();
    assert!(snapshot.events.is_empty());
    assert_eq!(snapshot.status_count(500), 1);
}

#[test]
fn error_after_store_answers_500_but_stores() {
    let (emulator, client) = start(Faults::default().error_after_store(1.0));
    let answer = client.track("POST", EVENT, r#"{"name":"x","id":"e1"}"#);
    assert_eq!(answer.status, 500);
    // The client retries; dedup keeps one copy.
    client.track("POST", EVENT, r#"{"name":"x","id":"e1"}"#);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events.len(), 1);
    assert_eq!(snapshot.duplicate_events, 1);
    // Invalid requests keep their 400: there was nothing to store.
    assert_eq!(client.track("POST", EVENT, "{}").status, 400);
}

#[test]
fn unavailable_answers_503_without_retry_after() {
    let (emulator, client) = start(Faults::default().unavailable(1.0));
    let answer = client.app(
        "POST",
        "/v1/send/email",
        r#"{"transactional_message_id":1,"identifiers":{"id":"1"}}"#,
    );
    assert_eq!(answer.status, 503);
    assert_eq!(answer.retry_after, None);
    assert_eq!(answer.json["errors"][0]["status"], "503");
    assert!(emulator.snapshot().sends.is_empty());
}

#[test]
fn drop_connection_closes_the_socket_without_an_answer() {
    let (emulator, client) = start(Faults::default().drop_connection(1.0));
    let result = client.send(
        "POST",
        EVENT,
        Some(&client::basic(
            cio_emulator::DEFAULT_SITE_ID,
            cio_emulator::DEFAULT_API_KEY,
        )),
        r#"{"name":"x"}"#,
    );
    assert!(
        result.is_err(),
        "expected a transport error, got {result:?}"
    );
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.dropped_connections, 1);
    assert_eq!(snapshot.requests, 1);
    assert!(snapshot.status_counts.is_empty());
    assert!(snapshot.events.is_empty());
}

#[test]
fn slow_answers_are_held_back_after_storing() {
    let delay = Duration::from_millis(300);
    let (emulator, client) = start(Faults::default().slow(1.0, delay));
    let started = Instant::now();
    let answer = client.track("POST", EVENT, r#"{"name":"x"}"#);
    let took = started.elapsed();
    assert_eq!(answer.status, 200);
    assert!(took >= delay, "{took:?}");
    assert!(took < delay + Duration::from_secs(10), "{took:?}");
    assert_eq!(emulator.snapshot().events.len(), 1);
}

#[test]
fn a_client_timeout_on_a_slow_answer_still_stores_the_data() {
    let (emulator, _) = start(Faults::default().slow(1.0, Duration::from_secs(5)));
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(1)))
        .build()
        .new_agent();
    let result = agent
        .put(format!("{}/api/v1/customers/1", emulator.url()))
        .header(
            "Authorization",
            client::basic(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY),
        )
        .send("{}");
    assert!(result.is_err());
    assert_eq!(emulator.snapshot().people["1"].identify_count, 1);
    // Shutdown does not wait for the slow answer.
    let started = Instant::now();
    drop(emulator);
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[test]
fn latency_delays_every_api_request_but_not_admin_routes() {
    let latency = Duration::from_millis(500);
    let config = Config::default().latency(latency);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    for _ in 0..2 {
        let started = Instant::now();
        client.track("PUT", "/api/v1/customers/1", "{}");
        assert!(started.elapsed() >= latency);
    }
    let started = Instant::now();
    let snapshot = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
    assert_eq!(snapshot.status, 200);
    assert!(started.elapsed() < latency, "{:?}", started.elapsed());
}

#[test]
fn faults_never_touch_admin_routes() {
    let faults = Faults::default()
        .drop_connection(1.0)
        .unavailable(1.0)
        .error_before_store(1.0);
    let (emulator, client) = start(faults);
    for _ in 0..5 {
        let answer = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
        assert_eq!(answer.status, 200);
        let answer = client.send("POST", "/_emulator/reset", None, "").unwrap();
        assert_eq!(answer.status, 200);
    }
    assert_eq!(emulator.snapshot().requests, 0);
}

#[test]
fn faults_come_after_auth_and_the_rate_window() {
    let config = Config::default()
        .track_limit(1)
        .window(Duration::from_secs(30))
        .faults(Faults::default().unavailable(1.0));
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    assert_eq!(
        client
            .send("PUT", "/api/v1/customers/1", None, "{}")
            .unwrap()
            .status,
        401
    );
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 503);
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 429);
}

/// The statuses of `n` identify requests sent one after another.
fn statuses(faults: Faults, n: usize) -> Vec<u16> {
    let (_emulator, client) = start(faults);
    (0..n)
        .map(|_| client.track("PUT", "/api/v1/customers/1", "{}").status)
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_faults() {
    let faults = Faults::default()
        .seed(7)
        .error_before_store(0.3)
        .unavailable(0.2);
    let first = statuses(faults.clone(), 40);
    assert_eq!(first, statuses(faults.clone(), 40));
    for status in [200, 500, 503] {
        assert!(first.contains(&status), "{first:?}");
    }
    assert_ne!(first, statuses(faults.seed(8), 40));
}

#[test]
fn set_faults_changes_them_mid_run() {
    let (emulator, client) = start(Faults::default());
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 200);
    emulator.set_faults(Faults::default().error_before_store(1.0));
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 500);
    emulator.set_faults(Faults::default());
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 200);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.people["1"].identify_count, 2);
    assert_eq!(
        (snapshot.status_count(200), snapshot.status_count(500)),
        (2, 1)
    );
}
