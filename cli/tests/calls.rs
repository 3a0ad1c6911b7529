//! Every single call, run as a process against an emulator: what arrived,
//! what was printed, and input refused before anything is sent.

mod command;

use cio_emulator::{Config, Emulator};
use serde_json::json;

use command::against;

fn emulator() -> Emulator {
    Emulator::start(Config::default()).unwrap()
}

#[test]
fn identify_sends_the_attributes() {
    let emulator = emulator();
    let outcome = against(
        &emulator,
        &[
            "identify",
            "42",
            "--attributes",
            r#"{"plan":"pro","seats":3}"#,
        ],
    )
    .run();
    outcome.assert_code(0);
    assert_eq!(outcome.stdout, "identified id=42\n");
    let person = &emulator.snapshot().people["42"];
    assert_eq!(person.attributes["plan"], "pro");
    assert_eq!(person.attributes["seats"], 3);
}

#[test]
fn identify_reads_attributes_from_stdin_and_takes_an_email() {
    let emulator = emulator();
    against(
        &emulator,
        &[
            "identify",
            "ada@example.com",
            "--email",
            "--attributes",
            "-",
        ],
    )
    .stdin("{\"plan\": \"team\"}\n")
    .run()
    .assert_code(0);
    assert_eq!(
        emulator.snapshot().people["ada@example.com"].attributes["plan"],
        "team"
    );
}

#[test]
fn track_sends_the_event_with_a_stable_id_from_its_key() {
    let emulator = emulator();
    let args = [
        "track",
        "42",
        "purchase",
        "--data",
        r#"{"amount":49}"#,
        "--timestamp",
        "1700000000",
        "--id-key",
        "order-1234",
    ];
    let first = against(&emulator, &args).run();
    first.assert_code(0);
    against(&emulator, &args).run().assert_code(0);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.events.len(), 1, "{snapshot:?}");
    assert_eq!(snapshot.duplicate_events, 1, "the re-run had the same id");
    let event = &snapshot.events[0];
    assert_eq!(
        (
            event.person.as_deref(),
            event.name.as_str(),
            event.kind.as_str()
        ),
        (Some("42"), "purchase", "event")
    );
    assert_eq!(event.data, json!({"amount": 49}));
    assert_eq!(event.timestamp, Some(1_700_000_000));
    let id = event.id.as_deref().unwrap();
    assert!(first.stdout.contains(id), "{first:?}");
}

#[test]
fn track_sends_page_and_screen_views() {
    let emulator = emulator();
    against(&emulator, &["track", "42", "/pricing", "--page"])
        .run()
        .assert_code(0);
    against(&emulator, &["track", "42", "Settings", "--screen"])
        .run()
        .assert_code(0);
    let kinds: Vec<_> = emulator
        .snapshot()
        .events
        .iter()
        .map(|event| (event.name.clone(), event.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("/pricing".to_owned(), "page".to_owned()),
            ("Settings".to_owned(), "screen".to_owned())
        ]
    );
}

#[test]
fn suppress_unsuppress_and_delete_reach_the_person() {
    let emulator = emulator();
    against(&emulator, &["identify", "42"]).run().assert_code(0);
    against(&emulator, &["suppress", "42"]).run().assert_code(0);
    assert!(emulator.snapshot().people["42"].suppressed);
    against(&emulator, &["unsuppress", "42"])
        .run()
        .assert_code(0);
    assert!(!emulator.snapshot().people["42"].suppressed);
    let deleted = against(&emulator, &["delete", "42"]).run();
    deleted.assert_code(0);
    assert_eq!(deleted.stdout, "deleted id=42\n");
    let snapshot = emulator.snapshot();
    assert!(!snapshot.people.contains_key("42"));
    assert_eq!(snapshot.deleted, ["42"]);
}

#[test]
fn a_cio_id_is_sent_as_one() {
    let emulator = emulator();
    against(&emulator, &["delete", "a3f9", "--cio-id"])
        .run()
        .assert_code(0);
    assert_eq!(emulator.snapshot().deleted, ["cio_a3f9"]);
}

#[test]
fn send_email_sends_the_message_and_prints_the_delivery() {
    let emulator = emulator();
    let outcome = against(
        &emulator,
        &[
            "send-email",
            "--message-id",
            "7",
            "--to",
            "ada@example.com",
            "--person-id",
            "42",
            "--data",
            r#"{"reset_link":"https://example.com/r/abc"}"#,
        ],
    )
    .run();
    outcome.assert_code(0);
    let snapshot = emulator.snapshot();
    let send = &snapshot.sends[0];
    assert_eq!(
        send.body,
        json!({
            "transactional_message_id": 7,
            "identifiers": {"id": "42"},
            "to": "ada@example.com",
            "message_data": {"reset_link": "https://example.com/r/abc"},
        })
    );
    assert!(outcome.stdout.contains(&send.delivery_id), "{outcome:?}");
}

#[test]
fn send_email_takes_a_trigger_name_and_a_person_by_email() {
    let emulator = emulator();
    against(
        &emulator,
        &[
            "send-email",
            "--message-id",
            "password-reset",
            "--to",
            "ada@example.com",
            "--person-email",
            "ada@example.com",
        ],
    )
    .run()
    .assert_code(0);
    let body = &emulator.snapshot().sends[0].body;
    assert_eq!(body["transactional_message_id"], "password-reset");
    assert_eq!(body["identifiers"], json!({"email": "ada@example.com"}));
}

#[test]
fn trigger_broadcast_sends_its_data() {
    let emulator = emulator();
    let outcome = against(
        &emulator,
        &["trigger-broadcast", "9", "--data", r#"{"headline":"Hi"}"#],
    )
    .run();
    outcome.assert_code(0);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.broadcasts.len(), 1);
    assert_eq!(snapshot.broadcasts[0].campaign_id, 9);
    assert_eq!(
        snapshot.broadcasts[0].body,
        json!({"data": {"headline": "Hi"}})
    );
    assert_eq!(outcome.stdout, "triggered broadcast 9 (trigger id 1)\n");
}

#[test]
fn json_output_is_one_object_for_success_and_failure() {
    let emulator = emulator();
    let tracked = against(
        &emulator,
        &["track", "42", "signup", "--id-key", "k", "--json"],
    )
    .run();
    tracked.assert_code(0);
    let json = tracked.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["command"], "track");
    assert_eq!(json["person"], json!({"id": "42"}));
    assert_eq!(json["event"]["name"], "signup");
    assert_eq!(
        json["event"]["id"].as_str(),
        emulator.snapshot().events[0].id.as_deref()
    );

    let refused = against(&emulator, &["delete", "", "--json"]).run();
    refused.assert_code(2);
    let json = refused.json();
    assert_eq!(json["ok"], false);
    assert_eq!(json["error"]["exit_code"], 2);
    assert_eq!(json["error"]["transient"], false);
    assert!(!refused.stderr.is_empty());
}

#[test]
fn invalid_json_is_refused_naming_the_flag_and_nothing_is_sent() {
    let emulator = emulator();
    for (args, flag) in [
        (
            &["identify", "42", "--attributes", "{plan: pro}"][..],
            "--attributes",
        ),
        (
            &["identify", "42", "--attributes", "[1, 2]"],
            "--attributes",
        ),
        (&["track", "42", "signup", "--data", "{"], "--data"),
        (&["trigger-broadcast", "9", "--data", "\"text\""], "--data"),
        (
            &[
                "send-email",
                "--message-id",
                "7",
                "--to",
                "a@b.c",
                "--person-id",
                "1",
                "--data",
                "nope",
            ],
            "--data",
        ),
    ] {
        let outcome = against(&emulator, args).run();
        outcome.assert_code(2);
        assert!(
            outcome
                .stderr
                .starts_with(&format!("cio-ratelimit: {flag} ")),
            "{outcome:?}"
        );
        assert!(outcome.stdout.is_empty(), "{outcome:?}");
    }
    assert_eq!(emulator.snapshot().requests, 0);
}

#[test]
fn input_over_customerio_limits_is_refused_before_sending() {
    let emulator = emulator();
    let long_id = "x".repeat(151);
    for args in [
        &["delete", ""][..],
        &["identify", &long_id],
        &["track", "42", ""],
        &["identify", "42", "--attributes", r#"{"":1}"#],
    ] {
        let outcome = against(&emulator, args).run();
        outcome.assert_code(2);
        assert!(outcome.stderr.contains("not sent"), "{outcome:?}");
    }
    assert_eq!(emulator.snapshot().requests, 0);
}

#[test]
fn usage_errors_exit_with_2() {
    let emulator = emulator();
    for args in [
        &["identify"][..],
        &["track", "42"],
        &["no-such-command"],
        &["delete", "42", "--timeout", "0"],
        &["send-email", "--message-id", "7", "--to", "a@b.c"],
    ] {
        against(&emulator, args).run().assert_code(2);
    }
    assert_eq!(emulator.snapshot().requests, 0);
}

#[test]
fn get_person_prints_the_person_as_json_by_id_by_email_and_by_cio_id() {
    let emulator = emulator();
    against(
        &emulator,
        &[
            "identify",
            "42",
            "--attributes",
            r#"{"email":"ada@example.com","plan":"pro"}"#,
        ],
    )
    .run()
    .assert_code(0);
    let cio_id = emulator.snapshot().people["42"].cio_id.clone();
    for args in [
        &["get-person", "42"][..],
        &["get-person", "--email", "ada@example.com"],
        &["get-person", &cio_id, "--cio-id"],
    ] {
        let outcome = against(&emulator, args).run();
        outcome.assert_code(0);
        let person: serde_json::Value = serde_json::from_str(&outcome.stdout)
            .unwrap_or_else(|error| panic!("{error}: {outcome:?}"));
        assert_eq!(person["attributes"]["plan"], "pro", "{args:?}");
        assert_eq!(person["identifiers"]["cio_id"], cio_id.as_str(), "{args:?}");
    }
    let json = against(&emulator, &["get-person", "42", "--json"])
        .run()
        .json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["person"]["id"], "42");
}

#[test]
fn get_person_needs_only_the_app_key() {
    let emulator = emulator();
    against(
        &emulator,
        &["identify", "42", "--attributes", r#"{"plan":"pro"}"#],
    )
    .run()
    .assert_code(0);
    let outcome = command::cio_ratelimit(&["get-person", "42", "--app-url", &emulator.url()])
        .env("CUSTOMERIO_APP_API_KEY", cio_emulator::DEFAULT_APP_KEY)
        .run();
    outcome.assert_code(0);
    assert!(outcome.stdout.contains("\"pro\""), "{outcome:?}");
}

#[test]
fn get_person_of_nobody_exits_with_2_saying_so() {
    let emulator = emulator();
    let by_id = against(&emulator, &["get-person", "nobody"]).run();
    by_id.assert_code(2);
    assert!(by_id.stderr.contains("404"), "{by_id:?}");
    assert!(by_id.stdout.is_empty(), "{by_id:?}");
    let by_email = against(&emulator, &["get-person", "--email", "no@example.com"]).run();
    by_email.assert_code(2);
    assert!(
        by_email
            .stderr
            .contains("no person has the email no@example.com"),
        "{by_email:?}"
    );
}

#[test]
fn send_sms_push_and_in_app_send_their_message_like_send_email() {
    let emulator = emulator();
    for (command, extra) in [
        ("send-sms", &["--to", "+14155552671"][..]),
        ("send-push", &[][..]),
        ("send-in-app", &[][..]),
    ] {
        let args = [
            &[
                command,
                "--message-id",
                "7",
                "--person-email",
                "ada@example.com",
                "--data",
                r#"{"code":"123"}"#,
            ][..],
            extra,
        ]
        .concat();
        let outcome = against(&emulator, &args).run();
        outcome.assert_code(0);
        assert!(outcome.stdout.starts_with("queued "), "{outcome:?}");
    }
    let snapshot = emulator.snapshot();
    let kinds: Vec<&str> = snapshot
        .sends
        .iter()
        .map(|send| send.kind.as_str())
        .collect();
    assert_eq!(kinds, ["sms", "push", "in_app"]);
    assert_eq!(
        snapshot.sends[0].body,
        json!({
            "transactional_message_id": 7,
            "identifiers": {"email": "ada@example.com"},
            "to": "+14155552671",
            "message_data": {"code": "123"},
        })
    );
    assert!(snapshot.sends[2].body.get("to").is_none());
    assert!(
        against(&emulator, &["send-sms", "--message-id", "7"])
            .run()
            .code
            == 2
    );
}

#[test]
fn segment_add_and_remove_change_the_membership() {
    let emulator = emulator();
    for id in ["1", "2", "3"] {
        against(&emulator, &["identify", id]).run().assert_code(0);
    }
    let added = against(&emulator, &["segment", "add", "7", "1", "2", "3"]).run();
    added.assert_code(0);
    assert_eq!(added.stdout, "added 3 people to segment 7\n");
    let removed = against(&emulator, &["segment", "remove", "7", "2", "--json"]).run();
    removed.assert_code(0);
    assert_eq!(removed.json()["people"], json!([{"id": "2"}]));
    let members: Vec<String> = emulator.snapshot().segments[&7]
        .members
        .iter()
        .cloned()
        .collect();
    assert_eq!(members, ["1", "3"]);
}

#[test]
fn the_wrong_datacenter_exits_with_2_naming_the_region() {
    let emulator =
        Emulator::start(Config::default().wrong_datacenter(cio_emulator::Datacenter::Eu)).unwrap();
    for args in [&["get-person", "1"][..], &["segment", "add", "7", "1"]] {
        let outcome = against(&emulator, args).run();
        outcome.assert_code(2);
        assert!(outcome.stderr.contains("use region eu"), "{outcome:?}");
    }
}
