//! `Client` against `cio-emulator`: every call, errors, retries, limits and secrets.
//! Assertions are on what the emulator received, not on what the client says.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{
    Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_SITE_ID, Emulator, Faults, RetryAfterStyle,
};
use cio_ratelimit::{
    ApiClass, Client, ClientBuilder, Error, Event, Identifier, Limiter, Operation, RateLimit,
    Region, RetryPolicy, SlidingWindow, TransactionalMessage,
    client::{BatchPacker, Device, Platform},
    error::{Credential, Invalid, TransportKind},
    limit::{ManualClock, Unlimited},
};
use serde_json::json;

mod scripted;
use cio_test_kit::{Logged, capture_logs, logged};
use scripted::Scripted;

fn emulator(config: Config) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

/// Fast retries, so that tests of retrying take milliseconds.
fn quick_retries() -> cio_ratelimit::retry::RetryPolicyBuilder {
    RetryPolicy::builder()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .retry_budget(1.0, Duration::from_secs(10), 100)
}

fn client_for(emu: &Emulator) -> ClientBuilder {
    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .app_key(DEFAULT_APP_KEY)
        .base_url(emu.url())
        .retry_policy(quick_retries().build().unwrap())
}

#[test]
fn identify_stores_the_person_with_their_attributes() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    client
        .identify("42", json!({"plan": "pro", "seats": 3}))
        .unwrap();
    client
        .identify(Identifier::email("ada+1@example.com"), json!({"n": 1}))
        .unwrap();
    client
        .identify(Identifier::cio_id("a3f9"), json!({"n": 2}))
        .unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people["42"].attributes["plan"], "pro");
    assert_eq!(snapshot.people["42"].attributes["seats"], 3);
    assert_eq!(snapshot.people["ada+1@example.com"].attributes["n"], 1);
    assert_eq!(snapshot.people["cio_a3f9"].attributes["n"], 2);
}

#[test]
fn track_sends_events_pages_and_screens_each_with_an_id() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let purchase = Event::new("purchase")
        .data(json!({"amount": 49}))
        .unwrap()
        .timestamp(1_700_000_000);
    client.track("42", &purchase).unwrap();
    client.track("42", &Event::page("/pricing")).unwrap();
    client.track("42", &Event::screen("Home")).unwrap();
    client
        .track_anonymous("anon-7", &Event::new("visited"))
        .unwrap();
    let events = emu.snapshot().events;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.name.as_str(), e.kind.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("purchase", "event"),
            ("/pricing", "page"),
            ("Home", "screen"),
            ("visited", "event")
        ]
    );
    assert_eq!(events[0].id.as_deref(), Some(purchase.event_id().as_str()));
    assert_eq!(events[0].data["amount"], 49);
    assert_eq!(events[0].timestamp, Some(1_700_000_000));
    assert_eq!(events[0].person.as_deref(), Some("42"));
    assert_eq!(events[3].anonymous_id.as_deref(), Some("anon-7"));
    assert!(
        events
            .iter()
            .all(|e| e.id.as_ref().is_some_and(|id| id.len() == 26))
    );
}

#[test]
fn suppress_unsuppress_devices_delete_and_merge_arrive() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    client.identify("1", json!({})).unwrap();
    client.identify("2", json!({})).unwrap();
    client.suppress("1").unwrap();
    assert!(emu.snapshot().people["1"].suppressed);
    client.unsuppress("1").unwrap();
    assert!(!emu.snapshot().people["1"].suppressed);
    let device = Device::new("tok/en", Platform::Ios).last_used(1_700_000_000);
    client.add_device("1", &device).unwrap();
    assert_eq!(
        emu.snapshot().people["1"].devices["tok/en"]["platform"],
        "ios"
    );
    client.delete_device("1", "tok/en").unwrap();
    assert!(emu.snapshot().people["1"].devices.is_empty());
    client
        .merge_customers(&Identifier::id("1"), &Identifier::id("2"))
        .unwrap();
    client.delete("1").unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(
        snapshot.merges,
        vec![json!({"primary": {"id": "1"}, "secondary": {"id": "2"}})]
    );
    assert_eq!(snapshot.deleted, vec!["1".to_string()]);
}

#[test]
fn v2_entity_and_batches_arrive_and_207_item_errors_come_back_as_data() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    client
        .send_entity(&Operation::identify("7", json!({"a": 1})).unwrap())
        .unwrap();
    let mut packer = BatchPacker::new();
    let good = Operation::event("7", &Event::new("ok")).unwrap();
    assert!(packer.push(&good).unwrap().is_none());
    // Valid as far as the client can tell, but the server wants the
    // relationships listed: a 207 item error, while the good item is stored.
    let odd = Operation::from_json(json!({
        "type": "person", "action": "add_relationships", "identifiers": {"id": "7"}
    }))
    .unwrap();
    assert!(packer.push(&odd).unwrap().is_none());
    let response = client.send_batch(&packer.finish().unwrap()).unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people["7"].attributes["a"], 1);
    assert_eq!(
        snapshot.events_named("ok").count(),
        1,
        "the good item was stored"
    );
    assert_eq!(snapshot.status_count(207), 1);
    assert_eq!(response.rejected.len(), 1);
    assert_eq!(response.rejected[0].index, 1);
    assert!(matches!(response.into_result(), Err(Error::ItemsRejected(items)) if items.len() == 1));
}

#[test]
fn send_operations_packs_many_into_few_requests_and_reports_rejections_by_index() {
    let emu = emulator(Config::default().track_limit(0));
    let client = client_for(&emu).build().unwrap();
    let ops: Vec<Operation> = (0..3_000)
        .map(|i| Operation::identify(i.to_string(), json!({"bio": "x".repeat(400)})).unwrap())
        .collect();
    let report = client.send_operations(&ops).unwrap();
    assert!(report.all_accepted());
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 3_000);
    assert!(
        snapshot.requests <= 4,
        "{} requests for 1.3 MB",
        snapshot.requests
    );
}

#[test]
fn transactional_sends_and_broadcasts_use_the_app_api() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let message = TransactionalMessage::new(3, Identifier::email("ada@example.com"))
        .to("ada@example.com")
        .message_data(json!({"code": "1234"}))
        .unwrap();
    let delivery = client.send_email(&message).unwrap();
    let push = client
        .send_push(&TransactionalMessage::new(4, "42"))
        .unwrap();
    client
        .trigger_broadcast(9, json!({"data": {"headline": "hi"}}))
        .unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.sends.len(), 2);
    assert_eq!(
        (
            snapshot.sends[0].kind.as_str(),
            snapshot.sends[0].delivery_id.as_str()
        ),
        ("email", delivery.delivery_id.as_str())
    );
    assert_eq!(snapshot.sends[0].body["message_data"]["code"], "1234");
    assert_eq!(snapshot.sends[1].delivery_id, push.delivery_id);
    assert_eq!(snapshot.broadcasts[0].campaign_id, 9);
    assert_eq!(snapshot.broadcasts[0].body["data"]["headline"], "hi");
}

#[test]
fn an_app_call_without_an_app_key_is_refused_before_sending() {
    let emu = emulator(Config::default());
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(emu.url())
        .build()
        .unwrap();
    let err = client
        .send_email(&TransactionalMessage::new(1, "42"))
        .unwrap_err();
    assert_eq!(err, Error::MissingCredential(Credential::AppApiKey));
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn an_app_only_client_sends_app_calls_and_refuses_track_calls_before_sending() {
    let emu = emulator(Config::default());
    let client = Client::builder_without_credentials()
        .app_key(DEFAULT_APP_KEY)
        .base_url(emu.url())
        .build()
        .unwrap();
    client
        .send_email(&TransactionalMessage::new(3, "42"))
        .unwrap();
    let err = client.identify("42", json!({"plan": "pro"})).unwrap_err();
    assert_eq!(err, Error::MissingCredential(Credential::TrackApiKey));
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.requests, 1, "only the send reached the server");
    assert_eq!(snapshot.sends.len(), 1);
    assert!(snapshot.people.is_empty());
}

#[test]
fn a_client_without_any_credentials_cannot_be_built() {
    let err = Client::builder_without_credentials().build().unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidConfig {
                setting: "credentials",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn invalid_input_is_refused_with_a_typed_error_and_no_request() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let expect = |err: Error, expected: fn(&Invalid) -> bool| match &err {
        Error::Invalid(invalid) => assert!(expected(invalid), "{err}"),
        other => panic!("expected Error::Invalid, got {other:?}"),
    };
    expect(client.identify("", json!({})).unwrap_err(), |i| {
        matches!(i, Invalid::EmptyIdentifier("id"))
    });
    expect(
        client.identify("x".repeat(151), json!({})).unwrap_err(),
        |i| matches!(i, Invalid::IdentifierTooLong { bytes: 151, .. }),
    );
    expect(
        client
            .identify("1", json!({"bio": "b".repeat(1001)}))
            .unwrap_err(),
        |i| matches!(i, Invalid::AttributeValueTooLong { .. }),
    );
    expect(client.identify("1", json!([1, 2])).unwrap_err(), |i| {
        matches!(i, Invalid::NotAnObject(_))
    });
    expect(client.track("1", &Event::new("")).unwrap_err(), |i| {
        matches!(i, Invalid::MissingEventName)
    });
    expect(
        client.track_anonymous("", &Event::new("x")).unwrap_err(),
        |i| matches!(i, Invalid::MissingAnonymousId),
    );
    let huge = Event::new("x")
        .data(json!({"blob": "d".repeat(100_001)}))
        .unwrap();
    expect(client.track("1", &huge).unwrap_err(), |i| {
        matches!(i, Invalid::EventDataTooLarge(_))
    });
    assert_eq!(emu.snapshot().requests, 0, "nothing was sent");
}

#[test]
fn a_wrong_api_key_is_unauthorized_and_never_retried() {
    let emu = emulator(Config::default());
    let client = Client::builder(DEFAULT_SITE_ID, "not-the-key")
        .app_key("not-the-app-key")
        .base_url(emu.url())
        .retry_policy(quick_retries().build().unwrap())
        .build()
        .unwrap();
    assert_eq!(
        client.identify("1", json!({})).unwrap_err(),
        Error::Unauthorized {
            status: 401,
            credential: Credential::TrackApiKey
        }
    );
    assert_eq!(
        client
            .send_email(&TransactionalMessage::new(1, "1"))
            .unwrap_err(),
        Error::Unauthorized {
            status: 401,
            credential: Credential::AppApiKey
        }
    );
    assert_eq!(emu.snapshot().requests, 2, "one request each, no retries");
}

#[test]
fn regions_choose_their_hosts_and_overrides_win() {
    let us = Client::builder("s", "k").build().unwrap();
    assert_eq!(
        (us.track_url(), us.app_url()),
        ("https://track.customer.io", "https://api.customer.io")
    );
    let eu = Client::builder("s", "k")
        .region(Region::Eu)
        .build()
        .unwrap();
    assert_eq!(
        (eu.track_url(), eu.app_url()),
        ("https://track-eu.customer.io", "https://api-eu.customer.io")
    );
    let local = Client::builder("s", "k")
        .region(Region::Eu)
        .track_url("http://127.0.0.1:9/")
        .build()
        .unwrap();
    assert_eq!(
        (local.track_url(), local.app_url()),
        ("http://127.0.0.1:9", "https://api-eu.customer.io")
    );
}

#[test]
fn plain_http_to_a_remote_host_is_refused_unless_allowed() {
    let refused = Client::builder("s", "k")
        .track_url("http://track.example.com")
        .build()
        .unwrap_err();
    assert!(
        matches!(
            refused,
            Error::InvalidConfig {
                setting: "track_url",
                ..
            }
        ),
        "{refused}"
    );
    assert!(
        Client::builder("s", "k")
            .track_url("http://track.example.com")
            .allow_http(true)
            .build()
            .is_ok()
    );
    for (builder, setting) in [
        (Client::builder("", "k"), "site_id"),
        (Client::builder("s", " "), "api_key"),
        (Client::builder("s", "k").timeout(Duration::ZERO), "timeout"),
        (
            Client::builder("s", "k").connect_timeout(Duration::ZERO),
            "connect_timeout",
        ),
        (Client::builder("s", "k").app_key(""), "app_key"),
    ] {
        assert!(
            matches!(builder.build(), Err(Error::InvalidConfig { setting: s, .. }) if s == setting)
        );
    }
}

/// A server that answers every request `301 wrong datacenter`, pointing at the EU.
fn wrong_datacenter_server() -> (String, thread::JoinHandle<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = [0u8; 4096];
        let _ = stream.read(&mut request).unwrap();
        let body = r#"{"meta":{"error":"wrong datacenter"}}"#;
        let answer = format!(
            "HTTP/1.1 301 Moved Permanently\r\nLocation: https://track-eu.customer.io/api/v1/customers/1\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(answer.as_bytes()).unwrap();
        1
    });
    (url, handle)
}

#[test]
fn a_301_wrong_datacenter_names_the_region_to_use_and_is_not_followed() {
    let (url, server) = wrong_datacenter_server();
    let client = Client::builder("s", "k").track_url(url).build().unwrap();
    assert_eq!(
        client.identify("1", json!({})).unwrap_err(),
        Error::WrongRegion {
            use_region: Region::Eu
        }
    );
    assert_eq!(
        server.join().unwrap(),
        1,
        "one request, no redirect followed"
    );
}

/// A limiter that lets everything through (pauses aside), reports every
/// pause on a channel with the time taken before it began, and notes the
/// time of each grant by the granted thread's name: a request cannot reach
/// the server before its grant.
#[derive(Debug)]
struct ReportingPauses {
    inner: Unlimited,
    pauses: Mutex<mpsc::Sender<(Instant, Duration)>>,
    grants: Mutex<Vec<(Option<String>, Instant)>>,
}

impl ReportingPauses {
    fn granted(&self) {
        let name = thread::current().name().map(str::to_string);
        self.grants.lock().unwrap().push((name, Instant::now()));
    }

    /// When the thread named `name` was first granted a permit.
    fn first_grant_of(&self, name: &str) -> Option<Instant> {
        let grants = self.grants.lock().unwrap();
        grants
            .iter()
            .find(|(granted, _)| granted.as_deref() == Some(name))
            .map(|(_, at)| *at)
    }
}

impl Limiter for ReportingPauses {
    fn acquire(&self) {
        self.inner.acquire();
        self.granted();
    }
    fn try_acquire(&self) -> bool {
        let granted = self.inner.try_acquire();
        if granted {
            self.granted();
        }
        granted
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        let granted = self.inner.acquire_timeout(timeout);
        if granted {
            self.granted();
        }
        granted
    }
    fn pause_for(&self, duration: Duration) {
        let before = Instant::now();
        self.inner.pause_for(duration);
        let _ = self.pauses.lock().unwrap().send((before, duration));
    }
}

/// One thread gets a 429; a bystander that starts during the pause, into a
/// window that is still full, must not send until the pause ends. If the
/// pause were the throttled thread's alone, the bystander would send at once
/// and get a 429 of its own (or arrive before the pause's end).
fn a_429_pauses_every_thread(style: RetryAfterStyle) {
    // Two per 2 s: the window stays full for about 2 s after the third call's
    // 429, long enough that a bystander sent in it is throttled too.
    let emu = emulator(
        Config::default()
            .track_limit(2)
            .window(Duration::from_secs(2))
            .retry_after(style),
    );
    let (tx, pauses) = mpsc::channel();
    let limiter = Arc::new(ReportingPauses {
        inner: Unlimited::new(),
        pauses: Mutex::new(tx),
        grants: Mutex::new(Vec::new()),
    });
    let client = client_for(&emu)
        .limiter(ApiClass::Track, limiter.clone())
        .build()
        .unwrap();
    client.identify("a", json!({})).unwrap();
    client.identify("b", json!({})).unwrap();
    let throttled = {
        let client = client.clone();
        thread::Builder::new()
            .name("throttled".into())
            .spawn(move || client.identify("c", json!({})))
            .unwrap()
    };
    let (paused_from, pause) = pauses
        .recv_timeout(Duration::from_secs(10))
        .expect("a 429 paused the limiter");
    assert!(
        pause >= Duration::from_millis(500) && pause <= Duration::from_secs(3),
        "{pause:?}"
    );
    let bystander = {
        let client = client.clone();
        thread::Builder::new()
            .name("bystander".into())
            .spawn(move || client.identify("d", json!({})))
            .unwrap()
    };
    bystander.join().unwrap().unwrap();
    throttled.join().unwrap().unwrap();
    let bystander_sent = limiter
        .first_grant_of("bystander")
        .expect("the bystander was granted a permit");
    assert!(
        bystander_sent >= paused_from + pause,
        "the bystander sent {:?} into a pause of {pause:?}",
        bystander_sent - paused_from
    );
    let snapshot = emu.snapshot();
    assert!(
        ["a", "b", "c", "d"]
            .iter()
            .all(|id| snapshot.people.contains_key(*id))
    );
    assert_eq!(
        snapshot.throttled, 1,
        "only the throttled thread's first attempt met a 429; the bystander never did"
    );
    assert!(pauses.try_recv().is_err(), "one pause");
}

#[test]
fn a_429_with_retry_after_in_seconds_pauses_every_thread() {
    a_429_pauses_every_thread(RetryAfterStyle::Seconds);
}

#[test]
fn a_429_with_retry_after_as_an_http_date_pauses_every_thread() {
    a_429_pauses_every_thread(RetryAfterStyle::HttpDate);
}

#[test]
fn a_500_after_storing_is_retried_and_the_event_is_stored_once() {
    let faults = Faults::default().seed(11).error_after_store(0.4);
    let emu = emulator(Config::default().faults(faults));
    let client = client_for(&emu)
        .retry_policy(quick_retries().max_retries(12).build().unwrap())
        .build()
        .unwrap();
    let events: Vec<Event> = (0..40).map(|i| Event::new(format!("e{i}"))).collect();
    for event in &events {
        client.track("42", event).unwrap();
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.events.len(), 40, "each event stored exactly once");
    assert!(snapshot.status_count(500) > 5);
    assert_eq!(
        snapshot.duplicate_events,
        snapshot.status_count(500),
        "every retry of a stored event was a repeat"
    );
    let sent: std::collections::BTreeSet<String> =
        events.iter().map(|e| e.event_id().to_string()).collect();
    assert_eq!(snapshot.event_ids(), sent);
}

#[test]
fn dropped_connections_are_retried() {
    let emu = emulator(Config::default().faults(Faults::default().seed(5).drop_connection(0.3)));
    let client = client_for(&emu).build().unwrap();
    for i in 0..30 {
        client.identify(i.to_string(), json!({"i": i})).unwrap();
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 30);
    assert!(snapshot.dropped_connections > 0);
}

#[test]
fn a_slow_answer_times_out_and_is_retried() {
    let faults = Faults::default().seed(3).slow(0.5, Duration::from_secs(2));
    let emu = emulator(Config::default().faults(faults));
    let client = client_for(&emu)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    for i in 0..10 {
        client.identify(i.to_string(), json!({})).unwrap();
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 10);
    assert!(
        snapshot.requests > 10,
        "some attempts timed out and were repeated"
    );
    // Each attempt is bounded by the 300 ms timeout, never the 2 s slow answer.
    let bound = Duration::from_millis(400) * snapshot.requests as u32;
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

#[test]
fn timeouts_that_outlast_the_retries_are_reported_as_timeouts() {
    let emu =
        emulator(Config::default().faults(Faults::default().slow(1.0, Duration::from_secs(2))));
    let client = client_for(&emu)
        .timeout(Duration::from_millis(100))
        .retry_policy(quick_retries().max_retries(1).build().unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        client.identify("1", json!({})).unwrap_err(),
        Error::Timeout(_)
    ));
}

#[test]
fn a_transactional_send_that_gets_a_500_is_not_repeated_unless_opted_in() {
    let emu = emulator(Config::default().faults(Faults::default().error_before_store(1.0)));
    let message = TransactionalMessage::new(1, "42");
    let client = client_for(&emu).build().unwrap();
    assert!(matches!(
        client.send_email(&message).unwrap_err(),
        Error::Status { status: 500, .. }
    ));
    assert_eq!(
        emu.snapshot().classes["transactional"].requests,
        1,
        "sent once"
    );
    let opted_in = client_for(&emu)
        .retry_policy(quick_retries().retry_unsafe(true).build().unwrap())
        .build()
        .unwrap();
    assert!(opted_in.send_email(&message).is_err());
    assert_eq!(
        emu.snapshot().classes["transactional"].requests,
        1 + 5,
        "then 1 + 4 retries"
    );
}

#[test]
fn a_server_that_is_gone_is_refused_and_retried_then_reported() {
    let emu = emulator(Config::default());
    let url = emu.url();
    emu.shutdown();
    let client = Client::builder("s", "k")
        .base_url(url)
        .retry_policy(quick_retries().build().unwrap())
        .build()
        .unwrap();
    let err = client.identify("1", json!({})).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transport {
                kind: TransportKind::ConnectionRefused,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_transient());
}

#[test]
fn retries_respect_the_rate_limit() {
    // Every attempt, retries included, takes a permit: 30 calls with 50 % 503s
    // at 40/s burst 5 never put more than 45 requests in any second.
    let faults = Faults::default().seed(8).unavailable(0.5);
    let emu = emulator(Config::default().track_limit(0).faults(faults));
    let client = client_for(&emu)
        .rate_limit(
            ApiClass::Track,
            cio_ratelimit::RateLimit::new(40.0, 5).unwrap(),
        )
        // 50 % faults: a call may meet several 503s in a row. With 12 retries
        // one of the 60 calls gave up in about 1 run in 150 (0.5^13 × 60);
        // with 40 that takes 0.5^41 × 60, and the retries still take permits.
        .retry_policy(quick_retries().max_retries(40).build().unwrap())
        .build()
        .unwrap();
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let client = client.clone();
            thread::spawn(move || {
                for i in 0..15 {
                    client.identify(format!("{w}-{i}"), json!({})).unwrap();
                }
            })
        })
        .collect();
    workers.into_iter().for_each(|w| w.join().unwrap());
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 60);
    assert!(snapshot.requests > 60);
    assert!(
        snapshot.classes["track"].max_in_window <= 45,
        "{:?}",
        snapshot.classes["track"]
    );
}

/// The filter the crate docs (`# Logging`) tell an app to apply:
/// ureq-proto's `trace` records are its raw bytes on the wire.
fn passes_documented_filter(logged: &Logged) -> bool {
    !(logged.level == log::Level::Trace && logged.target.starts_with("ureq_proto"))
}

/// The captured lines that `keep` lets through, one text.
fn logged_lines(keep: impl Fn(&Logged) -> bool) -> String {
    logged()
        .iter()
        .filter(|logged| keep(logged))
        .map(|logged| format!("{} {}: {}", logged.level, logged.target, logged.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every 8-byte piece of `secret`, as text and as the lowercase hex that
/// ureq-proto's rows also show (spaces removed): a key can leak cut in rows.
fn pieces_of(secret: &str) -> Vec<String> {
    secret
        .as_bytes()
        .windows(8)
        .flat_map(|window| {
            let hex: String = window.iter().map(|b| format!("{b:02x}")).collect();
            [std::str::from_utf8(window).unwrap().to_string(), hex]
        })
        .collect()
}

/// The first piece of `secret` found in `text` (spaces removed too).
fn piece_of_in(secret: &str, text: &str) -> Option<String> {
    let squeezed: String = text.chars().filter(|c| *c != ' ').collect();
    pieces_of(secret)
        .into_iter()
        .find(|piece| text.contains(piece.as_str()) || squeezed.contains(piece.as_str()))
}

#[test]
fn keys_never_appear_in_debug_display_errors_or_logs() {
    capture_logs(log::LevelFilter::Trace);
    let secret_key = "sk-live-0123456789abcdef";
    let secret_app = "app-live-fedcba9876543210";
    let emu = emulator(
        Config::default()
            .api_key(secret_key)
            .app_key(secret_app)
            .faults(Faults::default().unavailable(1.0)),
    );
    let builder = Client::builder(DEFAULT_SITE_ID, secret_key)
        .app_key(secret_app)
        .base_url(emu.url())
        .retry_policy(quick_retries().build().unwrap());
    let builder_debug = format!("{builder:?}");
    let client = builder.build().unwrap();
    let err = client.identify("1", json!({})).unwrap_err();
    // The App API's Bearer header goes out too.
    let app_err = client
        .send_email(&TransactionalMessage::new(
            7,
            Identifier::email("ada@example.com"),
        ))
        .unwrap_err();
    let bad = Client::builder(DEFAULT_SITE_ID, "wrong")
        .base_url(emu.url())
        .build()
        .unwrap();
    let unauthorized = bad.identify("1", json!({})).unwrap_err();
    let logs = logged_lines(passes_documented_filter);
    let texts = [
        builder_debug,
        format!("{client:?}"),
        format!("{err:?} {err}"),
        format!("{app_err:?} {app_err}"),
        format!("{unauthorized:?} {unauthorized}"),
        logs.clone(),
    ];
    // The Basic value: base64 of "emulator-site-id:sk-live-0123456789abcdef".
    let basic = "ZW11bGF0b3Itc2l0ZS1pZDpzay1saXZlLTAxMjM0NTY3ODlhYmNkZWY=";
    for secret in [secret_key, secret_app, basic] {
        for text in &texts {
            if let Some(piece) = piece_of_in(secret, text) {
                panic!("{piece:?} of a secret leaked:\n{text}");
            }
        }
    }
    assert!(logs.contains("retry"), "the retries were logged: {logs}");
    assert!(
        logs.lines().any(|line| line.starts_with("TRACE ")),
        "the check ran at trace level"
    );
}

/// The other half of the check above: without the documented filter,
/// ureq-proto's `trace` rows carry the `Authorization` header, cut in
/// 16-byte rows, so a check for whole keys could never see it.
#[test]
fn without_the_documented_filter_ureq_proto_s_trace_rows_carry_pieces_of_the_basic_value() {
    capture_logs(log::LevelFilter::Trace);
    let secret_key = "sk-rows-aaaabbbbccccdddd";
    let emu = emulator(Config::default().api_key(secret_key));
    let client = Client::builder(DEFAULT_SITE_ID, secret_key)
        .base_url(emu.url())
        .build()
        .unwrap();
    client.identify("1", json!({})).unwrap();
    // The Basic value: base64 of "emulator-site-id:sk-rows-aaaabbbbccccdddd".
    let basic = "ZW11bGF0b3Itc2l0ZS1pZDpzay1yb3dzLWFhYWFiYmJiY2NjY2RkZGQ=";
    let raw = logged_lines(|logged| !passes_documented_filter(logged));
    assert!(
        piece_of_in(basic, &raw).is_some(),
        "ureq-proto's trace rows no longer carry the header: {raw}"
    );
    assert!(!raw.contains(basic), "never whole, only in pieces");
    let filtered = logged_lines(passes_documented_filter);
    assert_eq!(
        piece_of_in(basic, &filtered),
        None,
        "the filter takes them out"
    );
}

#[test]
fn clients_are_send_sync_and_clones_share_limiters() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    let client = Client::builder("s", "k").build().unwrap();
    let clone = client.clone();
    assert!(Arc::ptr_eq(
        client.limiter(ApiClass::Track),
        clone.limiter(ApiClass::Track)
    ));
    assert!(!Arc::ptr_eq(
        client.limiter(ApiClass::Track),
        client.limiter(ApiClass::Transactional)
    ));
}

fn batch_of(ids: &[&str]) -> cio_ratelimit::client::Batch {
    let mut packer = BatchPacker::new();
    for id in ids {
        assert!(
            packer
                .push(&Operation::identify(*id, json!({})).unwrap())
                .unwrap()
                .is_none()
        );
    }
    packer.finish().unwrap()
}

fn scripted_client(server: &Scripted) -> Client {
    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(server.url())
        .retry_policy(quick_retries().build().unwrap())
        .build()
        .unwrap()
}

#[test]
fn a_batch_refused_as_a_whole_is_sent_again_item_by_item() {
    let server = Scripted::start(&[
        (
            "/api/v2/batch",
            422,
            r#"{"errors":[{"message":"one bad item"}]}"#,
        ),
        ("/api/v2/entity", 200, "{}"),
        (
            "/api/v2/entity",
            400,
            r#"{"errors":[{"reason":"invalid","message":"bad id"}]}"#,
        ),
    ]);
    let batch = batch_of(&["1", "2", "3"]);
    let response = scripted_client(&server).send_batch(&batch).unwrap();
    assert_eq!(response.rejected.len(), 1);
    assert_eq!(response.rejected[0].to_string(), "item 1: HTTP 400: bad id");
    let received = server.received();
    assert_eq!(received.len(), 4);
    for (index, request) in received[1..].iter().enumerate() {
        assert!(request.went_to("/api/v2/entity"));
        assert_eq!(Some(&request.body[..]), batch.item(index));
    }
}

#[test]
fn a_lone_item_refused_is_rejected_without_being_sent_again() {
    let server = Scripted::start(&[("/api/v2/batch", 413, "too large")]);
    let response = scripted_client(&server)
        .send_batch(&batch_of(&["1"]))
        .unwrap();
    assert_eq!(
        response.rejected[0].to_string(),
        "item 0: HTTP 413: too large"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn a_failure_other_than_the_content_while_sending_items_alone_fails_the_batch() {
    let server = Scripted::start(&[("/api/v2/batch", 400, "{}"), ("/api/v2/entity", 401, "{}")]);
    let result = scripted_client(&server).send_batch(&batch_of(&["1", "2"]));
    assert!(
        matches!(
            result,
            Err(Error::Unauthorized {
                status: 401,
                credential: Credential::TrackApiKey
            })
        ),
        "{result:?}"
    );
    assert_eq!(
        server.received().len(),
        2,
        "it stopped at the first failure"
    );
}

/// Learning through a `Client`, on a manual clock: a 429 lowers the rate,
/// and calls that keep being accepted raise it again (a probe), up to the
/// configured ceiling. Without the probe a workspace whose neighbour went
/// quiet would stay at the lowered rate for ever.
#[test]
fn after_a_429_a_learning_client_probes_back_up_to_its_ceiling() {
    let clock = ManualClock::new();
    let limiter = SlidingWindow::builder(RateLimit::new(20.0, 1).unwrap())
        .probe_after(Duration::from_secs(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    // Two full windows accepted, then one 429 (without Retry-After), then
    // everything is accepted.
    let mut script = vec![("/api/v1/customers", 200, "{}"); 40];
    script.push(("/api/v1/customers", 429, "{}"));
    let server = Scripted::start(&script);
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(server.url())
        .limiter(ApiClass::Track, limiter.clone())
        .retry_policy(quick_retries().build().unwrap())
        .build()
        .unwrap();
    let rate = || client.limiter(ApiClass::Track).rate().unwrap();
    for i in 0..40 {
        client.identify(format!("p{i}"), json!({})).unwrap();
    }
    assert_eq!(rate(), 20.0, "no 429 yet");
    client.identify("throttled", json!({})).unwrap();
    let lowered = rate();
    assert!(lowered < 20.0, "the 429 lowered the rate: {lowered}");
    let throttled_at = clock.elapsed();
    let mut risen_at = None;
    for i in 0..400 {
        client.identify(format!("q{i}"), json!({})).unwrap();
        if risen_at.is_none() && rate() > lowered {
            risen_at = Some(clock.elapsed() - throttled_at);
        }
    }
    let risen_at = risen_at.expect("the rate rose again after the 429");
    assert!(
        risen_at <= Duration::from_secs(4),
        "the first probe came {risen_at:?} after the 429 (hold 2 s)"
    );
    assert_eq!(
        rate(),
        20.0,
        "back at the ceiling: {:?}",
        limiter.rate_changes()
    );
    let changes = limiter.rate_changes();
    assert!(changes[0].to < changes[0].from, "{changes:?}");
    assert!(changes[1..].iter().all(|c| c.to > c.from), "{changes:?}");
    assert_eq!(
        server.received().len(),
        40 + 2 + 400,
        "every call once, the throttled one twice"
    );
}
