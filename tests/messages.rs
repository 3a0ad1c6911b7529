//! Transactional SMS, in-app and inbox sends, push metrics and invite events
//! against `cio-emulator`: what it recorded, which limiter each call waited
//! on, and the errors.

mod unthrottled;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Faults};
use cio_ratelimit::{
    ApiClass, Client, Error, Event, Identifier, TransactionalMessage,
    client::{PushEvent, PushMetric},
    error::{Credential, Invalid},
};
use serde_json::json;

use unthrottled::{Counting, client_for, emulator};

#[test]
fn sms_in_app_and_inbox_messages_are_sent_on_the_transactional_limiter() {
    let emu = emulator(Config::default());
    let (transactional, app) = (Counting::default(), Counting::default());
    let client = client_for(&emu)
        .limiter(ApiClass::Transactional, transactional.clone())
        .limiter(ApiClass::App, app.clone())
        .build()
        .unwrap();
    let sms = TransactionalMessage::new(3, Identifier::id("42"))
        .to("+14155552671")
        .message_data(json!({"code": "123456"}))
        .unwrap();
    let in_app = TransactionalMessage::new("welcome", Identifier::email("ada@example.com"));
    let inbox = TransactionalMessage::new(9, Identifier::cio_id("e0000001"));
    let deliveries = [
        client.send_sms(&sms).unwrap(),
        client.send_in_app(&in_app).unwrap(),
        client.send_inbox_message(&inbox).unwrap(),
    ];

    let snapshot = emu.snapshot();
    let kinds: Vec<&str> = snapshot
        .sends
        .iter()
        .map(|send| send.kind.as_str())
        .collect();
    assert_eq!(kinds, ["sms", "in_app", "inbox_message"]);
    assert_eq!(
        snapshot.sends[0].body,
        json!({"transactional_message_id": 3, "identifiers": {"id": "42"},
               "to": "+14155552671", "message_data": {"code": "123456"}})
    );
    assert_eq!(
        snapshot.sends[1].body["identifiers"],
        json!({"email": "ada@example.com"})
    );
    for (delivery, send) in deliveries.iter().zip(&snapshot.sends) {
        assert_eq!(delivery.delivery_id, send.delivery_id);
    }
    assert_eq!((transactional.count(), app.count()), (3, 0));
}

#[test]
fn an_sms_that_gets_a_500_is_not_sent_twice() {
    let emu = emulator(Config::default());
    emu.set_faults(Faults::default().error_after_store(1.0));
    let client = client_for(&emu).build().unwrap();
    let sms = TransactionalMessage::new(3, Identifier::id("42"));
    let failed = client.send_sms(&sms).unwrap_err();
    assert!(
        matches!(failed, Error::Status { status: 500, .. }),
        "{failed:?}"
    );
    assert_eq!(emu.snapshot().sends.len(), 1, "stored once, not repeated");
}

#[test]
fn sends_need_an_app_key_and_a_valid_person() {
    let emu = emulator(Config::default());
    let track_only = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(emu.url())
        .build()
        .unwrap();
    let message = TransactionalMessage::new(1, Identifier::id("1"));
    for result in [
        track_only.send_sms(&message),
        track_only.send_in_app(&message),
        track_only.send_inbox_message(&message),
    ] {
        assert_eq!(result, Err(Error::MissingCredential(Credential::AppApiKey)));
    }
    let client = client_for(&emu).build().unwrap();
    let nobody = TransactionalMessage::new(1, Identifier::id(""));
    assert!(matches!(client.send_sms(&nobody), Err(Error::Invalid(_))));
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn push_metrics_arrive_on_the_track_limiter() {
    let emu = emulator(Config::default());
    let track = Counting::default();
    let client = client_for(&emu)
        .limiter(ApiClass::Track, track.clone())
        .build()
        .unwrap();
    client
        .track_push(&PushMetric::new("d1", "token", PushEvent::Opened).timestamp(1_700_000_000))
        .unwrap();
    client
        .track_push(&PushMetric::new("d1", "token", PushEvent::Converted))
        .unwrap();
    let snapshot = emu.snapshot();
    let metrics: Vec<(&str, &str, Option<i64>)> = snapshot
        .delivery_metrics
        .iter()
        .map(|m| (m.delivery_id.as_str(), m.metric.as_str(), m.timestamp))
        .collect();
    assert_eq!(
        metrics,
        [
            ("d1", "opened", Some(1_700_000_000)),
            ("d1", "converted", None)
        ]
    );
    assert_eq!(
        snapshot.delivery_metrics[0].device_id.as_deref(),
        Some("token")
    );
    assert_eq!(track.count(), 2);
    let empty = client.track_push(&PushMetric::new("", "token", PushEvent::Delivered));
    assert_eq!(
        empty,
        Err(Error::Invalid(Invalid::EmptyIdentifier("delivery_id")))
    );
}

#[test]
fn an_invite_is_an_anonymous_event_without_an_anonymous_id() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let invite = Event::new("invited").data(json!({"from": "Ada"})).unwrap();
    client.track_invite("grace@example.com", &invite).unwrap();
    client.track_invite("grace@example.com", &invite).unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(
        snapshot.events.len(),
        1,
        "the retry-safe event id counts it once"
    );
    let event = &snapshot.events[0];
    assert_eq!(
        (event.person.as_deref(), event.anonymous_id.as_deref()),
        (None, None)
    );
    assert_eq!(
        event.data,
        json!({"from": "Ada", "recipient": "grace@example.com"})
    );
    assert_eq!(
        client.track_invite("", &invite),
        Err(Error::Invalid(Invalid::EmptyIdentifier("recipient")))
    );
}
