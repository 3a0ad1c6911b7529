//! `Importer::import_operations`: operations from memory, batched, in
//! per-person order, dead-lettered and checkpointed by position.

use std::sync::Arc;

use cio_emulator::{Config, DEFAULT_API_KEY, Emulator, Faults};
use cio_ratelimit::{
    Client, Event, Importer, Limiter, Operation,
    import::{Checkpoint, DeadLetter},
    limit::Unlimited,
};
use serde_json::json;

mod on_request;
mod quick_client;
mod scripted;
use cio_test_kit::{ScratchDir, dead_letters};
use on_request::OnRequest;
use quick_client::{quick_retries, track_client};
use scripted::Scripted;

fn client(url: &str, limiter: impl Limiter + 'static, max_retries: u32) -> Client {
    track_client(url, DEFAULT_API_KEY, limiter, quick_retries(max_retries))
}

/// Operation `n` of a stream built as it is read: people identified with
/// their position, and an event each with an id derived from it.
fn operation(n: u64) -> Operation {
    let person = format!("u{}", n / 2);
    if n.is_multiple_of(2) {
        Operation::identify(person.as_str(), json!({"n": n})).unwrap()
    } else {
        let event = Event::new("imported").id_from_key(&format!("ops-test/{n}"));
        Operation::event(person.as_str(), &event).unwrap()
    }
}

#[test]
fn operations_from_an_iterator_are_batched_and_all_arrive() {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("all");
    let summary = Importer::builder(client(&emulator.url(), Unlimited::new(), 2))
        .max_batch_bytes(4_000)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_operations((0..2_000).map(operation))
        .unwrap();
    assert_eq!(
        (summary.progress.delivered, summary.progress.lines_read),
        (2_000, 2_000)
    );
    assert!(summary.dead_letter_file.is_none());
    let snapshot = emulator.snapshot();
    assert_eq!(
        (snapshot.people.len(), snapshot.events.len()),
        (1_000, 1_000)
    );
    assert!(
        snapshot.requests < 200,
        "batched, not one by one: {} requests",
        snapshot.requests
    );
    assert_eq!(snapshot.people["u7"].attributes["n"], 14);
}

#[test]
fn an_operation_the_server_rejects_is_dead_lettered_with_its_position() {
    let server = Scripted::start(&[(
        "/api/v2/batch",
        207,
        r#"{"errors":[{"batch_index":1,"reason":"invalid","message":"no such plan"}]}"#,
    )]);
    let dir = ScratchDir::new("rejected");
    let operations = ["a", "b", "c"].map(|id| Operation::identify(id, json!({})).unwrap());
    let summary = Importer::builder(client(server.url(), Unlimited::new(), 0))
        // One worker: the three travel in one batch.
        .workers(1)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_operations(operations.clone())
        .unwrap();
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (2, 1)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].line, 2, "the second operation");
    assert_eq!(letters[0].original.as_bytes(), operations[1].as_bytes());
    assert!(
        letters[0].reason.contains("no such plan"),
        "{}",
        letters[0].reason
    );
}

#[test]
fn an_import_that_stops_resumes_by_position_and_loses_nothing() {
    let emulator = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let dir = ScratchDir::new("resume");
    let importer = |client| {
        Importer::builder(client)
            .max_batch_bytes(2_000)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("checkpoint"))
    };
    // From the 40th request on, the server answers 503 to everything.
    let failing = OnRequest::outage_from(emulator.clone(), 40);
    let failure = importer(client(&emulator.url(), failing, 1))
        .build()
        .unwrap()
        .import_operations((0..3_000).map(operation))
        .unwrap_err();
    assert!(failure.error.is_transient(), "{}", failure.error);
    let checkpoint = Checkpoint::load(&dir.join("checkpoint")).unwrap();
    assert!(
        checkpoint.line() > 0 && checkpoint.line() < 3_000,
        "{checkpoint:?}"
    );
    assert_eq!(checkpoint.line(), failure.summary.progress.checkpoint_line);

    emulator.set_faults(Faults::default());
    let summary = importer(client(&emulator.url(), Unlimited::new(), 2))
        .resume(true)
        .build()
        .unwrap()
        .import_operations((0..3_000).map(operation))
        .unwrap();
    assert_eq!(summary.progress.skipped, checkpoint.line());
    let snapshot = emulator.snapshot();
    assert_eq!(
        (snapshot.people.len(), snapshot.events.len()),
        (1_500, 1_500)
    );
    let last = Checkpoint::load(&dir.join("checkpoint")).unwrap();
    assert_eq!((last.line(), last.delivered()), (3_000, 3_000));

    // Resuming what is finished sends nothing; fewer operations than the
    // checkpoint's position are another import's.
    let requests = emulator.snapshot().requests;
    let again = importer(client(&emulator.url(), Unlimited::new(), 2))
        .resume(true)
        .build()
        .unwrap()
        .import_operations((0..3_000).map(operation))
        .unwrap();
    assert_eq!(
        (again.progress.skipped, again.progress.delivered),
        (3_000, 0)
    );
    assert_eq!(emulator.snapshot().requests, requests);
    let shorter = importer(client(&emulator.url(), Unlimited::new(), 2))
        .resume(true)
        .build()
        .unwrap()
        .import_operations((0..10).map(operation))
        .unwrap_err();
    assert!(
        shorter.error.to_string().contains("line 3000"),
        "{}",
        shorter.error
    );
}
