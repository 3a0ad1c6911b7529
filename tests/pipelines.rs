//! The Pipelines API against `cio-emulator`: every call carries a messageId and strict mode,
//! retries keep the messageId, a strict 400 in a batch is narrowed down to the bad calls,
//! credentials and size limits. Assertions are on what the emulator recorded.

use std::collections::BTreeSet;
use std::time::Duration;

use cio_emulator::{Config, DEFAULT_PIPELINES_KEY, Emulator, Faults};
use cio_ratelimit::{
    ApiClass, Client, ClientBuilder, Dispatcher, Error, Event, PipelinesCall, Region, RetryPolicy,
    client::{PipelinesBatchPacker, PipelinesCallType, PipelinesUser},
    error::{Credential, Invalid},
    queue::{ClientCall, Reply},
};
use serde_json::json;

fn emulator(config: Config) -> Emulator {
    Emulator::start(config).expect("emulator starts")
}

fn client_for(emu: &Emulator) -> ClientBuilder {
    let retries = RetryPolicy::builder()
        .base_delay(Duration::from_millis(5))
        .max_delay(Duration::from_millis(20))
        .max_retries(12)
        .retry_budget(1.0, Duration::from_secs(10), 100)
        .build()
        .unwrap();
    Client::builder_without_credentials()
        .pipelines_key(DEFAULT_PIPELINES_KEY)
        .base_url(emu.url())
        .retry_policy(retries)
}

fn one_of_each() -> Vec<PipelinesCall> {
    vec![
        PipelinesCall::identify("42")
            .traits(json!({"email": "ada@example.com"}))
            .unwrap(),
        PipelinesCall::track("42", "order_paid")
            .properties(json!({"total": 42.5}))
            .unwrap()
            .timestamp("2026-11-30T09:00:00Z"),
        PipelinesCall::page(PipelinesUser::anonymous("v1")).name("Pricing"),
        PipelinesCall::screen("42").name("Home"),
        PipelinesCall::group("42", "acme")
            .traits(json!({"plan": "enterprise"}))
            .unwrap(),
        PipelinesCall::alias("42", "v1"),
    ]
}

#[test]
fn every_call_type_arrives_with_its_message_id_in_strict_mode() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let calls = one_of_each();
    for call in &calls {
        client.send_pipelines(call).unwrap();
    }
    let snapshot = emu.snapshot();
    let kinds: Vec<&str> = snapshot.pipelines.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        PipelinesCallType::ALL.map(|kind| kind.as_str()),
        "each type reached its own endpoint"
    );
    for (sent, arrived) in calls.iter().zip(&snapshot.pipelines) {
        assert_eq!(arrived.message_id.as_deref(), Some(sent.message_id()));
        assert_eq!(sent.message_id().len(), 26);
        assert!(arrived.strict, "X-Strict-Mode: 1 on every request");
        assert_eq!(arrived.body, sent.to_json());
    }
    assert_eq!(snapshot.pipelines[1].body["properties"]["total"], 42.5);
    assert_eq!(snapshot.pipelines[2].anonymous_id.as_deref(), Some("v1"));
    assert_eq!(snapshot.classes["pipelines"].admitted, 6);
    assert_eq!(snapshot.classes["track"].requests, 0);
}

#[test]
fn a_pipelines_key_alone_builds_a_client_that_refuses_other_apis_before_sending() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let track = client.track("42", &Event::new("x"));
    assert!(matches!(
        track,
        Err(Error::MissingCredential(Credential::TrackApiKey))
    ));
    let track_only = Client::builder("site", "key")
        .base_url(emu.url())
        .build()
        .unwrap();
    let pipelines = track_only.send_pipelines(&PipelinesCall::identify("1"));
    assert_eq!(
        pipelines,
        Err(Error::MissingCredential(Credential::PipelinesApiKey))
    );
    assert_eq!(emu.snapshot().requests, 0, "nothing was sent");
    let empty = Client::builder_without_credentials()
        .pipelines_key(" ")
        .build();
    assert!(matches!(
        empty,
        Err(Error::InvalidConfig {
            setting: "pipelines_key",
            ..
        })
    ));
}

#[test]
fn a_retried_call_keeps_its_message_id_and_is_stored_once() {
    let faults = Faults::default().seed(11).error_after_store(0.4);
    let emu = emulator(Config::default().faults(faults));
    let client = client_for(&emu).build().unwrap();
    let calls: Vec<PipelinesCall> = (0..30)
        .map(|i| PipelinesCall::track(format!("p{i}"), "viewed"))
        .collect();
    for call in &calls[..20] {
        client.send_pipelines(call).unwrap();
    }
    let response = client.send_pipelines_calls(&calls[20..]).unwrap();
    assert!(response.all_accepted());
    let snapshot = emu.snapshot();
    assert!(snapshot.status_count(500) > 5, "the faults fired");
    assert_eq!(
        snapshot.pipelines.len(),
        30,
        "each call stored exactly once"
    );
    // Each 500 came after storing: its retry was a repeat of every call it carried.
    assert!(snapshot.pipelines_duplicates >= snapshot.status_count(500));
    let sent: BTreeSet<&str> = calls.iter().map(PipelinesCall::message_id).collect();
    let arrived: BTreeSet<&str> = snapshot
        .pipelines
        .iter()
        .map(|call| call.message_id.as_deref().unwrap())
        .collect();
    assert_eq!(arrived, sent);
}

#[test]
fn a_line_read_again_after_a_crash_keeps_its_message_id() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let line = br#"{"type":"identify","userId":"7","traits":{"n":1.50}}"#;
    for _ in 0..2 {
        let call = PipelinesCall::from_line(line, "import-1:12").unwrap();
        client.send_pipelines_calls([&call]).unwrap();
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.pipelines.len(), 1);
    assert_eq!(snapshot.pipelines_duplicates, 1);
    let expected = PipelinesCall::from_line(line, "import-1:12").unwrap();
    assert_eq!(
        snapshot.pipelines[0].message_id.as_deref(),
        Some(expected.message_id())
    );
}

#[test]
fn a_strict_400_in_a_batch_is_narrowed_to_the_bad_calls_and_the_rest_delivered() {
    let emu = emulator(Config::default().pipelines_limit(0));
    let client = client_for(&emu).build().unwrap();
    let bad = [2, 11, 17];
    // The client cannot tell a malformed timestamp; Customer.io (and the emulator) can.
    let calls: Vec<PipelinesCall> = (0..20)
        .map(|i| {
            let call = PipelinesCall::track(format!("p{i}"), "viewed");
            if bad.contains(&i) {
                call.timestamp("yesterday")
            } else {
                call
            }
        })
        .collect();
    let response = client.send_pipelines_calls(&calls).unwrap();
    let rejected: Vec<usize> = response.rejected.iter().map(|item| item.index).collect();
    assert_eq!(rejected, bad);
    for item in &response.rejected {
        assert!(item.message.contains("timestamp"), "{item}");
    }
    let snapshot = emu.snapshot();
    let delivered: Vec<&str> = snapshot
        .pipelines
        .iter()
        .map(|call| call.message_id.as_deref().unwrap())
        .collect();
    let good: Vec<&str> = calls
        .iter()
        .enumerate()
        .filter(|(i, _)| !bad.contains(i))
        .map(|(_, call)| call.message_id())
        .collect();
    assert_eq!(delivered, good, "every good call, in order");
    assert_eq!(snapshot.pipelines_dropped, 0);
    // 1 + about 2·k·log2(n) requests, not one per call.
    assert!(snapshot.requests <= 1 + 2 * 3 * 5, "{}", snapshot.requests);
}

#[test]
fn a_packed_batch_is_sent_as_one_request() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let mut packer = PipelinesBatchPacker::new();
    for call in one_of_each() {
        assert!(packer.push(&call).unwrap().is_none());
    }
    let batch = packer.finish().unwrap();
    assert!(client.send_pipelines_batch(&batch).unwrap().all_accepted());
    let snapshot = emu.snapshot();
    assert_eq!((snapshot.requests, snapshot.pipelines.len()), (1, 6));
}

#[test]
fn calls_and_batches_queue_on_a_dispatcher() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let dispatcher = Dispatcher::builder()
        .workers(2)
        .build_for_client(client)
        .unwrap();
    let mut packer = PipelinesBatchPacker::new();
    packer.push(&PipelinesCall::track("1", "a")).unwrap();
    packer
        .push(&PipelinesCall::track("1", "b").timestamp("never"))
        .unwrap();
    let batch = dispatcher
        .submit(ClientCall::PipelinesBatch(packer.finish().unwrap()))
        .unwrap();
    let single = dispatcher
        .submit(ClientCall::Pipelines(Box::new(PipelinesCall::identify(
            "2",
        ))))
        .unwrap();
    assert_eq!(single.wait().unwrap(), Ok(Reply::Done));
    let Ok(Reply::Batch(response)) = batch.wait().unwrap() else {
        panic!("a batch replies with its response")
    };
    assert_eq!(response.rejected.len(), 1);
    assert_eq!(response.rejected[0].index, 1);
    assert_eq!(emu.snapshot().pipelines.len(), 2);
}

#[test]
fn the_strict_header_turns_a_silent_drop_into_an_error() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let call = PipelinesCall::identify("1").timestamp("soon");
    // Without the header, Customer.io's permissive mode would answer 200 and drop it:
    let permissive = ureq::post(format!("{}/v1/identify", emu.url()))
        .header("authorization", "Basic ZW11bGF0b3ItcGlwZWxpbmVzLWtleTo=")
        .config()
        .http_status_as_error(false)
        .build()
        .send(&*call.to_bytes())
        .unwrap();
    assert_eq!(permissive.status(), 200);
    assert_eq!(emu.snapshot().pipelines_dropped, 1);
    // The client always sends it, so the same call is an error, not a loss.
    let error = client.send_pipelines(&call).unwrap_err();
    assert!(
        matches!(&error, Error::Status { status: 400, message, .. } if message.contains("timestamp")),
        "{error:?}"
    );
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.pipelines_dropped, 1, "not dropped this time");
    assert_eq!(snapshot.status_count(400), 1, "a 400 is not retried");
}

#[test]
fn a_wrong_pipelines_key_is_unauthorized_and_never_retried() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).pipelines_key("wrong").build().unwrap();
    let error = client.send_pipelines(&PipelinesCall::identify("1"));
    assert_eq!(
        error,
        Err(Error::Unauthorized {
            status: 401,
            credential: Credential::PipelinesApiKey
        })
    );
    let batch = client.send_pipelines_calls(&one_of_each()).unwrap_err();
    assert!(matches!(batch, Error::Unauthorized { .. }), "{batch:?}");
    assert_eq!(emu.snapshot().requests, 2);
}

#[test]
fn calls_over_the_size_limits_are_refused_before_sending() {
    let emu = emulator(Config::default());
    let client = client_for(&emu).build().unwrap();
    let big = PipelinesCall::identify("1")
        .traits(json!({"bio": "x".repeat(33_000)}))
        .unwrap();
    let error = client.send_pipelines(&big).unwrap_err();
    assert!(
        matches!(error, Error::Invalid(Invalid::ItemTooLarge(_))),
        "{error:?}"
    );
    let calls = [PipelinesCall::identify("2"), big];
    let error = client.send_pipelines_calls(&calls).unwrap_err();
    assert!(
        matches!(error, Error::Invalid(Invalid::ItemTooLarge(_))),
        "{error:?}"
    );
    let malformed = client.send_pipelines(&PipelinesCall::group("1", ""));
    assert!(matches!(malformed, Err(Error::Invalid(Invalid::Call(_)))));
    assert_eq!(emu.snapshot().requests, 0, "nothing was sent");
}

#[test]
fn many_calls_pack_into_few_batches_under_500_kb() {
    let emu = emulator(Config::default().pipelines_limit(0));
    let client = client_for(&emu).build().unwrap();
    let calls: Vec<PipelinesCall> = (0..3_000)
        .map(|i| {
            PipelinesCall::identify(i.to_string())
                .traits(json!({"bio": "x".repeat(500)}))
                .unwrap()
        })
        .collect();
    assert!(client.send_pipelines_calls(&calls).unwrap().all_accepted());
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.pipelines.len(), 3_000);
    assert!(
        (4..=5).contains(&snapshot.requests),
        "{}",
        snapshot.requests
    );
}

#[test]
fn regions_choose_the_cdp_hosts_and_overrides_win() {
    let eu = Client::builder_without_credentials()
        .pipelines_key("k")
        .region(Region::Eu)
        .build()
        .unwrap();
    assert_eq!(eu.pipelines_url(), "https://cdp-eu.customer.io");
    let us = Client::builder_without_credentials()
        .pipelines_key("k")
        .build()
        .unwrap();
    assert_eq!(us.pipelines_url(), "https://cdp.customer.io");
    let local = Client::builder_without_credentials()
        .pipelines_key("k")
        .pipelines_url("http://127.0.0.1:9/")
        .build()
        .unwrap();
    assert_eq!(local.pipelines_url(), "http://127.0.0.1:9");
    let remote = Client::builder_without_credentials()
        .pipelines_key("k")
        .pipelines_url("http://cdp.example.com")
        .build();
    assert!(matches!(
        remote,
        Err(Error::InvalidConfig {
            setting: "pipelines_url",
            ..
        })
    ));
    assert_eq!(
        format!("{:?}", ApiClass::Pipelines.default_limit()),
        format!("{:?}", cio_ratelimit::RateLimit::PIPELINES_API)
    );
}

#[test]
fn the_pipelines_key_never_shows() {
    let secret = "wk-live-0123456789abcdef";
    let emu = emulator(Config::default().pipelines_key(secret));
    let builder = client_for(&emu).pipelines_key(secret);
    let builder_debug = format!("{builder:?}");
    let client = builder.build().unwrap();
    let wrong = client_for(&emu)
        .pipelines_key("wk-wrong-key")
        .build()
        .unwrap();
    let error = wrong
        .send_pipelines(&PipelinesCall::identify("1"))
        .unwrap_err();
    for text in [
        builder_debug,
        format!("{client:?}"),
        format!("{error:?} {error}"),
    ] {
        assert!(
            !text.contains(secret) && !text.contains("wk-wrong-key"),
            "{text}"
        );
    }
    client
        .send_pipelines(&PipelinesCall::identify("1"))
        .unwrap();
    assert_eq!(emu.snapshot().pipelines.len(), 1);
}
