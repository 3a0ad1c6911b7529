//! Exit code 3: Customer.io stayed unavailable through the retries, so the
//! caller should try again later.

mod command;

use std::time::Duration;

use cio_emulator::{Config, Emulator, Faults};

use command::{against, against_url};

#[test]
fn a_server_that_is_down_exits_with_3_after_retrying() {
    let gone = Emulator::start(Config::default()).unwrap();
    let url = gone.url();
    gone.shutdown();
    let outcome = against_url(&url, &["identify", "42", "--max-retries", "1"]).run();
    outcome.assert_code(3);
    // One backoff of 1 s plus up to 25 % jitter; generous margin for a loaded machine.
    assert!(
        outcome.elapsed >= Duration::from_millis(900) && outcome.elapsed < Duration::from_secs(15),
        "{outcome:?}"
    );
    assert!(
        outcome.stderr.contains("retry 1/1"),
        "warnings show by default: {outcome:?}"
    );
}

#[test]
fn a_service_unavailable_exits_with_3_after_retrying() {
    let emulator =
        Emulator::start(Config::default().faults(Faults::default().unavailable(1.0))).unwrap();
    let outcome = against(&emulator, &["delete", "42", "--max-retries", "1", "--json"]).run();
    outcome.assert_code(3);
    let json = outcome.json();
    assert_eq!(json["error"]["exit_code"], 3);
    assert_eq!(json["error"]["transient"], true);
    assert!(outcome.stderr.contains("503"), "{outcome:?}");
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.status_count(503), 2, "the call and one retry");
    assert!(snapshot.deleted.is_empty());
}

#[test]
fn a_transactional_email_is_not_repeated_after_a_5xx_but_still_exits_with_3() {
    let emulator =
        Emulator::start(Config::default().faults(Faults::default().unavailable(1.0))).unwrap();
    let outcome = against(
        &emulator,
        &[
            "send-email",
            "--message-id",
            "7",
            "--to",
            "a@b.c",
            "--person-id",
            "1",
        ],
    )
    .run();
    outcome.assert_code(3);
    assert!(outcome.elapsed < Duration::from_secs(5), "{outcome:?}");
    assert_eq!(
        emulator.snapshot().requests,
        1,
        "unsafe to repeat: sent once"
    );
}
