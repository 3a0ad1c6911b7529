//! `Importer` against `cio-emulator`: every line delivered once, dead-lettered
//! with a reason, or still ahead of the checkpoint — even when the server fails.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Faults};
use cio_ratelimit::{
    ApiClass, Client, Error, Importer, Limiter, RateLimit, RetryPolicy, TokenBucket,
    error::Credential,
    import::{Checkpoint, DeadLetter, ImportFailure, ImportMode, ImporterBuilder},
    limit::Unlimited,
};
use serde_json::json;

mod line_ids;
mod on_request;
mod quick_client;
mod scripted;
use cio_test_kit::{ScratchDir, dead_letters};
use line_ids::line_id;
use on_request::OnRequest;
use quick_client::{quick_retries, track_client};
use scripted::Scripted;

fn client(emu: &Emulator, api_key: &str) -> Client {
    client_with(
        emu,
        api_key,
        TokenBucket::from_limit(RateLimit::new(5_000.0, 100).unwrap()),
    )
}

fn client_with(emu: &Emulator, api_key: &str, limiter: impl Limiter + 'static) -> Client {
    track_client(&emu.url(), api_key, limiter, quick_retries(2))
}

/// A client of a scripted server at `url`.
fn client_at(url: &str) -> Client {
    track_client(url, DEFAULT_API_KEY, Unlimited::new(), quick_retries(2))
}

/// `n` lines alternating identifies and events without ids, one in ten bad.
fn sample(n: u64) -> (String, u64) {
    let mut text = String::new();
    let mut bad = 0;
    for line in 1..=n {
        let entry = match line % 10 {
            0 => {
                bad += 1;
                match line % 30 {
                    0 => "{not json".to_string(),
                    10 => json!({"type": "robot", "action": "identify", "identifiers": {"id": "x"}}).to_string(),
                    _ => json!({"type": "person", "action": "event", "identifiers": {"id": "x"}}).to_string(),
                }
            }
            n if n % 2 == 1 => json!({"type": "person", "action": "identify",
                "identifiers": {"id": format!("u{line}")}, "attributes": {"line": line}})
            .to_string(),
            _ => json!({"type": "person", "action": "event", "identifiers": {"id": format!("u{}", line - 1)},
                "name": "seen", "attributes": {"line": line}})
            .to_string(),
        };
        text.push_str(&entry);
        text.push('\n');
    }
    (text, bad)
}

/// The event ids an import with `import_id` derives for the event lines of
/// `sample(n)` (all different).
fn expected_event_ids(import_id: &str, n: u64) -> BTreeSet<String> {
    let (text, _) = sample(n);
    text.lines()
        .zip(1u64..)
        .filter(|(_, line)| line % 10 != 0 && line % 2 == 0)
        .map(|(text, _)| line_id(import_id, text, 0))
        .collect()
}

#[test]
fn every_valid_line_arrives_once_and_bad_lines_are_dead_lettered_with_reasons() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("basic");
    let (text, bad) = sample(1_000);
    let summary = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("dead.ndjson"))
        .import_id("import-a")
        .max_batch_bytes(8_000)
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    let snapshot = emu.snapshot();
    assert_eq!(summary.progress.delivered, 1_000 - bad);
    assert_eq!(summary.progress.dead_lettered, bad);
    assert_eq!(snapshot.people.len(), 500);
    assert_eq!(snapshot.event_ids(), expected_event_ids("import-a", 1_000));
    assert_eq!(snapshot.events.len(), 400, "each event stored once");
    assert!(
        snapshot.requests > 10 && snapshot.requests < 100,
        "batched: {} requests",
        snapshot.requests
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(
        letters.iter().map(|l| l.line).collect::<Vec<_>>(),
        (1..=100).map(|k| k * 10).collect::<Vec<_>>()
    );
    assert!(
        letters[2].reason.starts_with("invalid JSON"),
        "{}",
        letters[2].reason
    );
    assert_eq!(letters[2].original, "{not json");
    assert!(
        letters[0].reason.contains("unknown type"),
        "{}",
        letters[0].reason
    );
    assert!(letters[1].reason.contains("name"), "{}", letters[1].reason);
    assert_eq!(summary.dead_letter_file, Some(dir.join("dead.ndjson")));
}

#[test]
fn single_mode_sends_one_request_per_line_and_dead_letters_server_rejections() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("single");
    let lines = [
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}, "attributes": {"a": 1}}),
        json!({"type": "person", "action": "add_relationships", "identifiers": {"id": "1"}}),
        json!({"type": "person", "action": "page", "identifiers": {"id": "1"}, "name": "/home"}),
    ];
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let summary = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .mode(ImportMode::Single)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    assert_eq!(
        (
            summary.progress.delivered,
            summary.progress.dead_lettered,
            summary.progress.requests
        ),
        (2, 1, 3)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(letters[0].line, 2);
    assert!(
        letters[0].reason.contains("HTTP 400"),
        "{}",
        letters[0].reason
    );
    assert_eq!(emu.snapshot().events_named("/home").count(), 1);
}

#[test]
fn batch_items_the_server_rejects_with_a_207_are_dead_lettered_and_the_rest_delivered() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("207");
    let text = [
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}}),
        json!({"type": "person", "action": "add_relationships", "identifiers": {"id": "1"}}),
        json!({"type": "person", "action": "identify", "identifiers": {"id": "2"}}),
    ]
    .iter()
    .map(|l| format!("{l}\n"))
    .collect::<String>();
    let summary = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (2, 1)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(letters[0].line, 2);
    assert!(
        letters[0].reason.contains("cio_relationships"),
        "{}",
        letters[0].reason
    );
    assert!(letters[0].original.contains("add_relationships"));
    assert_eq!(emu.snapshot().people.len(), 2);
}

#[test]
fn blank_lines_crlf_and_overlong_lines_are_handled() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("odd");
    let long = "x".repeat(2 << 20);
    let text = format!(
        "\r\n{}\r\n\n   \n{long}\n{}",
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}}),
        json!({"type": "person", "action": "identify", "identifiers": {"id": "2"}}),
    );
    let summary = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (2, 1)
    );
    assert_eq!(summary.progress.lines_read, 6);
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(letters[0].line, 5);
    assert!(
        letters[0].reason.contains("longer than"),
        "{}",
        letters[0].reason
    );
}

#[test]
fn a_server_that_goes_down_stops_the_import_with_the_checkpoint_intact_then_resume_loses_nothing() {
    let emu = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let dir = ScratchDir::new("resume");
    let (text, bad) = sample(3_000);
    let input = dir.join("input.ndjson");
    fs::write(&input, &text).unwrap();
    let importer = |client: Client| {
        Importer::builder(client)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("import.checkpoint"))
            .max_batch_bytes(6_000)
    };
    // From the 20th request on, the server answers 503 to everything. The
    // 20th and later wait until the first 19 have been answered: on a
    // loaded machine some of those would still be on the wire when the
    // outage began, and fail too.
    let down = Arc::new(AtomicBool::new(false));
    let outage = OnRequest::new({
        let (emu, down) = (emu.clone(), down.clone());
        move |n| {
            if n >= 20 && !down.load(Ordering::SeqCst) {
                let deadline = Instant::now() + Duration::from_secs(10);
                while emu.snapshot().status_counts.values().sum::<u64>() < 19
                    && Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(1));
                }
                emu.set_faults(Faults::default().unavailable(1.0));
                down.store(true, Ordering::SeqCst);
            }
        }
    });
    let failing = importer(client_with(&emu, DEFAULT_API_KEY, outage));
    let failure = failing.build().unwrap().import_file(&input).unwrap_err();
    assert!(
        matches!(failure.error, Error::Status { status: 503, .. }),
        "{}",
        failure.error
    );
    assert!(failure.error.is_transient());
    let checkpoint = Checkpoint::load(&dir.join("import.checkpoint")).unwrap();
    assert_eq!(checkpoint.line(), failure.summary.progress.checkpoint_line);
    // Stored during the run and kept: how far it got before the outage
    // depends on which batches the scheduler let go first (a batch whose
    // worker stalls is overtaken by later ones), so it is not bounded here
    // by a number of lines but by what arrived.
    assert!(
        checkpoint.line() > 0 && checkpoint.line() < 3_000,
        "{checkpoint:?}"
    );
    let (people, events) = sample_arrivals(checkpoint.import_id(), checkpoint.line());
    let arrived = emu.snapshot();
    assert!(
        people.iter().all(|id| arrived.people.contains_key(id))
            && events.is_subset(&arrived.event_ids()),
        "lines before the checkpoint {} never arrived",
        checkpoint.line()
    );
    // Every line up to the checkpoint is accounted for, and no good line was dead-lettered.
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert!(letters.iter().all(|l| l.line % 10 == 0));
    assert_eq!(letters.len() as u64, checkpoint.dead_lettered());
    assert_eq!(
        checkpoint.delivered() + checkpoint.dead_lettered(),
        checkpoint.line()
    );

    emu.set_faults(Faults::default());
    let summary = importer(client(&emu, DEFAULT_API_KEY))
        .resume(true)
        .build()
        .unwrap()
        .import_file(&input)
        .unwrap();
    assert_eq!(summary.progress.skipped, checkpoint.line());
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 1_500, "every identify arrived");
    assert_eq!(
        snapshot.event_ids(),
        expected_event_ids(checkpoint.import_id(), 3_000),
        "every event, by its id"
    );
    assert_eq!(snapshot.events.len(), 1_200, "none stored twice");
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(
        letters.len() as u64,
        bad,
        "each bad line dead-lettered exactly once"
    );
    let final_checkpoint = Checkpoint::load(&dir.join("import.checkpoint")).unwrap();
    assert_eq!(
        (final_checkpoint.line(), final_checkpoint.delivered()),
        (3_000, 3_000 - bad)
    );
}

#[test]
fn a_wrong_key_stops_the_import_at_once_naming_the_credential() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("401");
    let (text, _) = sample(5_000);
    let failure = Importer::builder(client(&emu, "wrong-key"))
        .dead_letter(dir.join("dead.ndjson"))
        .max_batch_bytes(4_000)
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap_err();
    assert_eq!(
        failure.error,
        Error::Unauthorized {
            status: 401,
            credential: Credential::TrackApiKey
        }
    );
    assert_eq!(failure.summary.progress.delivered, 0);
    assert_eq!(
        failure.summary.progress.dead_lettered, 0,
        "good lines are not dead letters"
    );
    assert!(
        emu.snapshot().requests <= 12,
        "{} requests: a handful, no retry storm",
        emu.snapshot().requests
    );
}

#[test]
fn a_leftover_checkpoint_or_another_imports_checkpoint_is_refused() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("refused");
    let path = dir.join("import.checkpoint");
    // An import that kept a checkpoint, and is not resumed.
    let line = json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}});
    Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("dead.ndjson"))
        .checkpoint(&path)
        .import_id("first")
        .build()
        .unwrap()
        .import_reader(format!("{line}\n").as_bytes(), None)
        .unwrap();
    assert_eq!(Checkpoint::load(&path).unwrap().import_id(), "first");
    let requests = emu.snapshot().requests;
    let builder = || {
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(&path)
    };
    let fresh = builder()
        .build()
        .unwrap()
        .import_reader(&b""[..], None)
        .unwrap_err();
    assert!(
        matches!(fresh.error, Error::Checkpoint { .. }),
        "{}",
        fresh.error
    );
    let other = builder()
        .resume(true)
        .import_id("second")
        .build()
        .unwrap()
        .import_reader(&b""[..], None);
    assert!(other.unwrap_err().to_string().contains("first"));
    assert!(matches!(
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .resume(true)
            .build(),
        Err(Error::InvalidConfig {
            setting: "resume",
            ..
        })
    ));
    assert!(matches!(
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .max_batch_bytes(0)
            .build(),
        Err(Error::InvalidConfig {
            setting: "max_batch_bytes",
            ..
        })
    ));
    assert_eq!(emu.snapshot().requests, requests, "nothing more was sent");
}

#[test]
fn a_missing_input_file_is_a_clear_error() {
    let emu = Emulator::start(Config::default()).unwrap();
    let failure = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .build()
        .unwrap()
        .import_file(Path::new("/nonexistent/input.ndjson"))
        .unwrap_err();
    assert!(matches!(failure.error, Error::Io { .. }));
    assert!(
        failure.to_string().contains("/nonexistent/input.ndjson"),
        "{failure}"
    );
}

#[test]
fn progress_is_reported_and_ends_with_the_final_counts() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("progress");
    let (text, _) = sample(200);
    let reports = Arc::new(Mutex::new(Vec::new()));
    let summary = {
        let reports = reports.clone();
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join("dead.ndjson"))
            .progress(move |p| reports.lock().unwrap().push(p.clone()))
            .build()
            .unwrap()
            .import_reader(text.as_bytes(), Some(text.len() as u64))
            .unwrap()
    };
    let reports = reports.lock().unwrap();
    let last = reports.last().unwrap();
    assert_eq!(last, &summary.progress);
    assert_eq!(
        (last.lines_read, last.bytes_read, last.checkpoint_line),
        (200, text.len() as u64, 200)
    );
    assert_eq!(last.eta(), Some(Duration::ZERO));
}

/// Regression: after a chunk failed, chunks behind it that had succeeded were
/// settled too, moving the checkpoint past the failed chunk's lines.
#[test]
fn a_failed_chunk_holds_the_checkpoint_before_it_even_when_later_chunks_succeed() {
    let emu = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let dir = ScratchDir::new("held");
    let (text, _) = sample(3_000);
    // The fifth request fails on purpose, but only once the server has
    // received six others: at least two of them come after it.
    let failing = OnRequest::new({
        let emu = emu.clone();
        move |n| {
            if n == 5 {
                let deadline = Instant::now() + Duration::from_secs(10);
                while emu.snapshot().requests < 6 && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                panic!("request {n} fails on purpose");
            }
        }
    });
    let failure = Importer::builder(client_with(&emu, DEFAULT_API_KEY, failing))
        .dead_letter(dir.join("dead.ndjson"))
        .checkpoint(dir.join("import.checkpoint"))
        .max_batch_bytes(6_000)
        .workers(4)
        .import_id("held")
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap_err();
    let checkpoint = Checkpoint::load(&dir.join("import.checkpoint")).unwrap();
    assert_eq!(
        checkpoint.delivered() + checkpoint.dead_lettered(),
        checkpoint.line(),
        "{}",
        failure.error
    );
    assert!(checkpoint.line() < 3_000, "{checkpoint:?}");
    // Whatever was sent after it, the checkpoint stays before the
    // failed request's lines: every good line up to it arrived.
    let snapshot = emu.snapshot();
    let missing_events: Vec<_> = expected_event_ids(checkpoint.import_id(), checkpoint.line())
        .difference(&snapshot.event_ids())
        .cloned()
        .collect();
    let missing_people: Vec<_> = (1..=checkpoint.line())
        .filter(|line| line % 10 != 0 && line % 2 == 1)
        .filter(|line| !snapshot.people.contains_key(&format!("u{line}")))
        .collect();
    assert!(
        missing_events.is_empty() && missing_people.is_empty(),
        "the checkpoint {} passed lines that never arrived: events {missing_events:?}, identifies {missing_people:?}",
        checkpoint.line()
    );
    // And later chunks did succeed: lines past the checkpoint arrived.
    let later_people = (checkpoint.line() + 1..=3_000)
        .filter(|line| snapshot.people.contains_key(&format!("u{line}")))
        .count();
    let later_events = expected_event_ids(checkpoint.import_id(), 3_000)
        .difference(&expected_event_ids(
            checkpoint.import_id(),
            checkpoint.line(),
        ))
        .filter(|id| snapshot.event_ids().contains(*id))
        .count();
    assert!(
        later_people + later_events > 0,
        "no chunk after the failed one was acknowledged (checkpoint {})",
        checkpoint.line()
    );
}

fn import_lines(
    client: Client,
    dir: &Path,
    mode: ImportMode,
    lines: &[&str],
) -> cio_ratelimit::import::ImportSummary {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    Importer::builder(client)
        .mode(mode)
        // One worker: in batch mode, the lines travel in one request.
        .workers(1)
        .dead_letter(dir.join("dead.ndjson"))
        .import_id("import")
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap()
}

/// Regression: `{"id":12345678901234567890123}` went out as
/// `1.2345678901234568e+22`, so the data landed on another person.
#[test]
fn large_integers_go_out_with_every_digit_in_both_modes() {
    let identify = r#"{"type":"person","action":"identify","identifiers":{"id":12345678901234567890123},"attributes":{"share":0.100000000000000000000001}}"#;
    let event = r#"{"type":"person","action":"event","identifiers":{"id":12345678901234567890123},"name":"paid","attributes":{"cents":98765432109876543210}}"#;
    let id = line_id("import", event, 0);
    let event_with_id = format!("{},\"id\":\"{id}\"}}", &event[..event.len() - 1]);
    for mode in [ImportMode::Batch, ImportMode::Single] {
        let server = Scripted::start(&[]);
        let dir = ScratchDir::new(&format!("digits-{mode:?}"));
        let client = client_at(server.url());
        let summary = import_lines(client, &dir, mode, &[identify, event]);
        assert_eq!(summary.progress.delivered, 2);
        let sent: String = server
            .received()
            .iter()
            .map(|request| String::from_utf8_lossy(&request.body).into_owned())
            .collect();
        assert!(sent.contains(identify), "{mode:?}: {sent}");
        assert!(sent.contains(&event_with_id), "{mode:?}: {sent}");
    }
}

/// Regression: `{"type":"person","action":"merge","primary":…,"secondary":…}`
/// was dead-lettered with "no identifiers object".
#[test]
fn v2_merges_are_accepted_and_arrive() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("merge");
    let lines = [
        r#"{"type":"person","action":"identify","identifiers":{"id":"1"},"attributes":{"a":1}}"#,
        r#"{"type":"person","action":"identify","identifiers":{"id":"2"},"attributes":{"b":2}}"#,
        r#"{"type":"person","action":"merge","primary":{"id":"1"},"secondary":{"id":"2"}}"#,
        r#"{"type":"person","action":"merge","primary":{"id":"1"},"secondary":{}}"#,
    ];
    let summary = import_lines(
        client(&emu, DEFAULT_API_KEY),
        &dir,
        ImportMode::Batch,
        &lines,
    );
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (3, 1)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(
        letters[0].line, 4,
        "a merge without a secondary person is still refused"
    );
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.merges.len(), 1);
    assert!(snapshot.people.contains_key("1") && !snapshot.people.contains_key("2"));
}

const THREE: [&str; 3] = [
    r#"{"type":"person","action":"identify","identifiers":{"id":"1"}}"#,
    r#"{"type":"person","action":"identify","identifiers":{"id":"2"}}"#,
    r#"{"type":"person","action":"identify","identifiers":{"id":"3"}}"#,
];

/// Regression: an item a 207 named twice was dead-lettered (and counted) twice.
#[test]
fn an_item_a_207_names_twice_is_dead_lettered_once() {
    let server = Scripted::start(&[(
        "/api/v2/batch",
        207,
        r#"{"errors":[{"batch_index":1,"reason":"invalid","message":"one"},{"batch_index":1,"reason":"invalid","message":"two"}]}"#,
    )]);
    let dir = ScratchDir::new("207-twice");
    let client = client_at(server.url());
    let summary = import_lines(client, &dir, ImportMode::Batch, &THREE);
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (2, 1)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (letters[0].line, letters[0].original.as_str()),
        (2, THREE[1])
    );
    assert_eq!(letters[0].reason, "rejected by Customer.io: invalid: one");
}

/// Regression: a 207 item without a `batch_index` was blamed on line 1, and
/// an index past the end on the last line, which the server had accepted.
/// A 207 that cannot name the right items fails the batch, which is retried.
#[test]
fn a_207_that_cannot_name_the_right_items_is_retried_and_blames_no_line() {
    for wrong in [
        r#"{"errors":[{"reason":"invalid","message":"which one?"}]}"#,
        r#"{"errors":[{"batch_index":3,"reason":"invalid"}]}"#,
        "<html>oops</html>",
    ] {
        let server = Scripted::start(&[("/api/v2/batch", 207, wrong)]);
        let dir = ScratchDir::new("207-wrong");
        let client = client_at(server.url());
        let summary = import_lines(client, &dir, ImportMode::Batch, &THREE);
        assert_eq!(
            (summary.progress.delivered, summary.progress.dead_lettered),
            (3, 0),
            "{wrong}"
        );
        assert!(dead_letters::<DeadLetter>(&dir.join("dead.ndjson")).is_empty());
        assert_eq!(server.received().len(), 2, "the batch was sent again");
        assert_eq!(summary.progress.requests, 2);
        assert_eq!(summary.progress.retried, 1);
    }
}

/// An import whose 207s never make sense stops as "unavailable" (resume
/// later), not as a fatal error, and dead-letters nothing.
#[test]
fn a_207_that_never_makes_sense_stops_the_import_as_transient() {
    let garbled = r#"{"errors":[{"reason":"invalid"}]}"#;
    let server = Scripted::start(&[("/api/v2/batch", 207, garbled); 3]);
    let dir = ScratchDir::new("207-never");
    let client = client_at(server.url());
    let text: String = THREE.iter().map(|line| format!("{line}\n")).collect();
    let failure = Importer::builder(client)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap_err();
    assert!(failure.error.is_transient(), "{}", failure.error);
    assert_eq!(failure.summary.progress.dead_lettered, 0);
    assert_eq!(
        failure.summary.progress.requests, 3,
        "1 attempt + 2 retries"
    );
}

/// Regression: the summary's `requests` counted batches, missing the
/// item-by-item resend after a whole batch was refused, and retries.
#[test]
fn requests_count_every_request_the_server_received() {
    // The batch is refused as a whole (413); sent one by one, item 2 is refused.
    let server = Scripted::start(&[
        (
            "/api/v2/batch",
            413,
            r#"{"errors":[{"message":"too large"}]}"#,
        ),
        ("/api/v2/entity", 200, "{}"),
        (
            "/api/v2/entity",
            400,
            r#"{"errors":[{"message":"bad item"}]}"#,
        ),
    ]);
    let dir = ScratchDir::new("requests-413");
    let client = client_at(server.url());
    let summary = import_lines(client, &dir, ImportMode::Batch, &THREE);
    assert_eq!(
        (summary.progress.delivered, summary.progress.dead_lettered),
        (2, 1)
    );
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert_eq!(
        (letters[0].line, letters[0].original.as_str()),
        (2, THREE[1])
    );
    assert!(letters[0].reason.contains("HTTP 400") && letters[0].reason.contains("bad item"));
    let received = server.received();
    assert_eq!(received.len(), 4);
    assert!(received[0].went_to("/api/v2/batch") && received[1].went_to("/api/v2/entity"));
    assert_eq!(summary.progress.requests, 4);
    let sent_alone: Vec<&[u8]> = received[1..].iter().map(|r| &r.body[..]).collect();
    assert_eq!(
        sent_alone,
        THREE.map(str::as_bytes),
        "each item byte for byte"
    );

    // 429s and 5xx are retried, and every attempt counts.
    let faults = Faults::default().seed(7).unavailable(0.2);
    let emu = Emulator::start(
        Config::default()
            .track_limit(50)
            .window(Duration::from_millis(100))
            .faults(faults),
    )
    .unwrap();
    let dir = ScratchDir::new("requests-429");
    let (text, _) = sample(300);
    let client = track_client(
        &emu.url(),
        DEFAULT_API_KEY,
        Unlimited::new(),
        quick_retries(20),
    );
    let summary = Importer::builder(client)
        .mode(ImportMode::Single)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    let snapshot = emu.snapshot();
    assert!(
        snapshot.throttled > 0 && snapshot.status_count(503) > 0,
        "{snapshot:?}"
    );
    assert_eq!(summary.progress.requests, snapshot.requests);
    assert_eq!(summary.progress.throttled, snapshot.throttled);
    assert_eq!(summary.progress.retried, snapshot.status_count(503));
}

/// Two imports sharing one `Client` each report their own retries and requests.
#[test]
fn two_imports_sharing_a_client_do_not_see_each_others_retries() {
    let faults = Faults::default().seed(3).unavailable(0.25);
    let emu = Emulator::start(Config::default().track_limit(0).faults(faults)).unwrap();
    let shared = track_client(
        &emu.url(),
        DEFAULT_API_KEY,
        Unlimited::new(),
        quick_retries(20),
    );
    let summaries: Vec<cio_ratelimit::import::ImportSummary> = std::thread::scope(|scope| {
        let imports: Vec<_> = ["a", "b"]
            .map(|name| {
                let client = shared.clone();
                scope.spawn(move || {
                    let dir = ScratchDir::new(&format!("shared-{name}"));
                    let (text, _) = sample(200);
                    let text = text.replace("\"u", &format!("\"{name}"));
                    Importer::builder(client)
                        .mode(ImportMode::Single)
                        .dead_letter(dir.join("dead.ndjson"))
                        .build()
                        .unwrap()
                        .import_reader(text.as_bytes(), None)
                        .unwrap()
                })
            })
            .into_iter()
            .collect();
        imports
            .into_iter()
            .map(|import| import.join().unwrap())
            .collect()
    });
    let snapshot = emu.snapshot();
    let (a, b) = (&summaries[0].progress, &summaries[1].progress);
    assert!(a.retried > 0 && b.retried > 0, "{a:?} {b:?}");
    assert_eq!(a.retried + b.retried, snapshot.status_count(503));
    assert_eq!(a.requests + b.requests, snapshot.requests);
    assert_eq!(a.requests, a.lines_read - a.dead_lettered + a.retried);
    assert_eq!(b.requests, b.lines_read - b.dead_lettered + b.retried);
}

/// Regression: a retry budget on by default gave up on transient failures
/// before `--max-retries` was spent: at 15 % 503s an import crawled, at 30 %
/// it stopped after 66 of 300 lines. Retries wait for the limiter like first
/// attempts, so they cannot storm the server, and the budget is off.
///
/// The rate at 15 % is compared with a run without faults made just before
/// it, so that a loaded machine slows both alike.
#[test]
fn an_import_keeps_its_rate_through_5xx_and_finishes_at_30_percent() {
    const RATE: f64 = 100.0;
    let mut fault_free = None;
    for (seed, unavailable) in [(0, 0.0), (15, 0.15), (30, 0.30)] {
        let faults = Faults::default().seed(seed).unavailable(unavailable);
        let emu = Emulator::start(Config::default().track_limit(0).faults(faults)).unwrap();
        let dir = ScratchDir::new(&format!("unavailable-{seed}"));
        let (text, bad) = sample(150);
        let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
            .track_url(emu.url())
            .limiter(ApiClass::Track, TokenBucket::new(RATE, 1))
            .retry_policy(
                RetryPolicy::builder()
                    .base_delay(Duration::from_millis(10))
                    .max_delay(Duration::from_millis(100))
                    .max_retries(10)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        let summary = Importer::builder(client)
            .mode(ImportMode::Single)
            .dead_letter(dir.join("dead.ndjson"))
            .build()
            .unwrap()
            .import_reader(text.as_bytes(), None)
            .unwrap_or_else(|failure| panic!("{unavailable}: {failure}"));
        let progress = &summary.progress;
        assert_eq!(progress.delivered, 150 - bad, "{unavailable}");
        let snapshot = emu.snapshot();
        assert_eq!(progress.retried, snapshot.status_count(503));
        let rate = progress.requests as f64 / progress.elapsed.as_secs_f64();
        assert!(
            rate <= RATE * 1.1,
            "{unavailable}: {rate:.0} requests/s, over the limit"
        );
        match fault_free {
            None => fault_free = Some(rate),
            Some(baseline) if unavailable < 0.2 => assert!(
                rate >= baseline * 0.8,
                "{unavailable}: {rate:.0} requests/s, under 80 % of {baseline:.0} without faults"
            ),
            Some(_) => {}
        }
    }
}

#[test]
fn a_dry_run_validates_and_dead_letters_everything_but_sends_nothing_and_keeps_no_checkpoint() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("dry-run");
    let (text, bad) = sample(1_000);
    let input = dir.join("input.ndjson");
    fs::write(&input, &text).unwrap();
    // A dry run makes no request: placeholder credentials do.
    let client = Client::builder("placeholder", "placeholder")
        .track_url(emu.url())
        .build()
        .unwrap();
    let summary = Importer::builder(client)
        .dead_letter(dir.join("dead.ndjson"))
        .checkpoint(dir.join("import.checkpoint"))
        .dry_run(true)
        .build()
        .unwrap()
        .import_file(&input)
        .unwrap();
    let progress = &summary.progress;
    assert_eq!(
        (
            progress.delivered,
            progress.dead_lettered,
            progress.requests
        ),
        (1_000 - bad, bad, 0)
    );
    assert_eq!(
        dead_letters::<DeadLetter>(&dir.join("dead.ndjson")).len() as u64,
        bad
    );
    assert!(!dir.join("import.checkpoint").exists(), "no checkpoint");
    let snapshot = emu.snapshot();
    assert_eq!((snapshot.requests, snapshot.people.len()), (0, 0));
}

/// The people and events `sample(n)` holds arrived exactly once each.
fn assert_sample_arrived_once(emu: &Emulator, n: u64) {
    let snapshot = emu.snapshot();
    assert_eq!(
        snapshot.people.len() as u64,
        n / 2,
        "every identify arrived"
    );
    assert!(
        snapshot.people.values().all(|p| p.identify_count == 1),
        "no identify sent twice"
    );
    assert_eq!(snapshot.events.len() as u64, n / 2 - n / 10, "every event");
    assert_eq!(snapshot.duplicate_events, 0, "no event sent twice");
}

/// Who and what an import of `sample(n)` with `import_id` sends for its
/// lines 1 to `line`: the people identified and the event ids.
fn sample_arrivals(import_id: &str, line: u64) -> (BTreeSet<String>, BTreeSet<String>) {
    let people = (1..=line)
        .filter(|line| line % 10 != 0 && line % 2 == 1)
        .map(|line| format!("u{line}"))
        .collect();
    (people, expected_event_ids(import_id, line))
}

/// The stop tests' import: 600 sample lines in a file, imported in single
/// mode by three workers with a checkpoint.
struct StoppedImport {
    dir: ScratchDir,
    input: PathBuf,
    bad: u64,
}

impl StoppedImport {
    fn new(name: &str) -> StoppedImport {
        let dir = ScratchDir::new(name);
        let (text, bad) = sample(600);
        let input = dir.join("input.ndjson");
        fs::write(&input, &text).unwrap();
        StoppedImport { dir, input, bad }
    }

    fn importer(&self, client: Client) -> ImporterBuilder {
        Importer::builder(client)
            .mode(ImportMode::Single)
            .workers(3)
            .dead_letter(self.dir.join("dead.ndjson"))
            .checkpoint(self.dir.join("import.checkpoint"))
    }

    /// Runs the import on `client` until `stop` stops it, and checks the
    /// checkpoint it stored; returns it with the failure.
    fn stop(
        &self,
        emu: &Emulator,
        client: Client,
        stop: Arc<AtomicBool>,
    ) -> (ImportFailure, Checkpoint) {
        let failure = self
            .importer(client)
            .stop_when(stop)
            .build()
            .unwrap()
            .import_file(&self.input)
            .unwrap_err();
        assert_eq!(failure.error, Error::Stopped);
        assert!(!failure.error.is_transient());
        let checkpoint = Checkpoint::load(&self.dir.join("import.checkpoint")).unwrap();
        let progress = &failure.summary.progress;
        assert_eq!(checkpoint.line(), progress.checkpoint_line, "stored");
        assert!(checkpoint.line() < 600, "{checkpoint:?}");
        assert_eq!(
            checkpoint.delivered() + checkpoint.dead_lettered(),
            checkpoint.line()
        );
        let (people, events) = sample_arrivals(checkpoint.import_id(), checkpoint.line());
        let sent = emu.snapshot();
        let missing_people: Vec<_> = people
            .iter()
            .filter(|id| !sent.people.contains_key(*id))
            .collect();
        let missing_events = events.difference(&sent.event_ids()).count();
        assert!(
            missing_people.is_empty() && missing_events == 0,
            "lines before the checkpoint {} never arrived: identifies {missing_people:?}, {missing_events} events",
            checkpoint.line()
        );
        (failure, checkpoint)
    }

    /// Resumes on a healthy server: every identify arrives and every event
    /// is stored once (by its id), every bad line dead-lettered once.
    fn resume(&self, emu: &Emulator) {
        let stopped = Checkpoint::load(&self.dir.join("import.checkpoint")).unwrap();
        let before = emu.snapshot();
        self.importer(client(emu, DEFAULT_API_KEY))
            .resume(true)
            .build()
            .unwrap()
            .import_file(&self.input)
            .unwrap();
        let checkpoint = Checkpoint::load(&self.dir.join("import.checkpoint")).unwrap();
        assert_eq!(checkpoint.line(), 600);
        let (people, events) = sample_arrivals(checkpoint.import_id(), 600);
        let snapshot = emu.snapshot();
        assert_eq!(
            snapshot.people.keys().cloned().collect::<BTreeSet<_>>(),
            people,
            "every identify, no other"
        );
        assert_eq!(snapshot.event_ids(), events, "every event, no other");
        // The resume sent each line past the checkpoint once, and nothing
        // the checkpoint had settled. (A line past it may have arrived before
        // the stop too, out of order: an identify is safe to repeat.)
        let wrong: Vec<_> = snapshot
            .people
            .iter()
            .filter(|(id, person)| {
                let earlier = before.people.get(*id).map_or(0, |p| p.identify_count);
                let settled = id[1..].parse::<u64>().unwrap() <= stopped.line();
                person.identify_count != earlier + u64::from(!settled)
            })
            .map(|(id, person)| (id, person.identify_count))
            .collect();
        assert!(
            wrong.is_empty(),
            "sent by the resume though settled, or not exactly once (checkpoint {}): {wrong:?}",
            stopped.line()
        );
        let (_, settled_events) = sample_arrivals(stopped.import_id(), stopped.line());
        let early = before.event_ids().difference(&settled_events).count() as u64;
        assert!(
            snapshot.duplicate_events - before.duplicate_events <= early,
            "repeats beyond the {early} events that had arrived past the checkpoint"
        );
        assert_eq!(
            dead_letters::<DeadLetter>(&self.dir.join("dead.ndjson")).len() as u64,
            self.bad
        );
    }
}

#[test]
fn a_stop_handle_stops_cleanly_with_the_checkpoint_stored_and_a_resume_sends_the_rest_once() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let import = StoppedImport::new("stop-handle");
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = OnRequest::new({
        let stop = stop.clone();
        move |n| {
            if n == 100 {
                stop.store(true, Ordering::SeqCst);
            }
        }
    });
    let (failure, checkpoint) =
        import.stop(&emu, client_with(&emu, DEFAULT_API_KEY, stopping), stop);
    let progress = &failure.summary.progress;
    // Past the 100th request, only what was taken goes: the other requests
    // under way (two a worker, 3 workers), the line the reader held, and the
    // lines waiting for those requests' people (at most one each).
    assert!(
        progress.checkpoint_line >= 100 && progress.requests <= 100 + 5 + 1 + 6,
        "stopped within a few requests of the stop: {progress:?}"
    );
    let (people, events) = sample_arrivals(checkpoint.import_id(), checkpoint.line());
    let sent = emu.snapshot();
    assert_eq!(
        (
            sent.people.keys().cloned().collect::<BTreeSet<_>>(),
            sent.event_ids()
        ),
        (people, events),
        "what was in flight finished and is counted; nothing else was sent"
    );
    import.resume(&emu);
    assert_sample_arrived_once(&emu, 600);
}

/// Issue 24: Ctrl-C during a long 429 pause was honoured only when the
/// pause ended, up to a minute later.
#[test]
fn a_stop_during_a_long_429_pause_ends_the_import_within_a_second() {
    // One request per minute: the second is answered 429, Retry-After ~60 s,
    // and every worker waits for the pause.
    let emu = Arc::new(
        Emulator::start(
            Config::default()
                .track_limit(1)
                .window(Duration::from_secs(60)),
        )
        .unwrap(),
    );
    let import = StoppedImport::new("stop-pause");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped_at = Arc::new(Mutex::new(None));
    let watcher = std::thread::spawn({
        let (emu, stop, stopped_at) = (emu.clone(), stop.clone(), stopped_at.clone());
        move || {
            while emu.snapshot().status_count(429) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            // Well into the pause.
            std::thread::sleep(Duration::from_millis(300));
            *stopped_at.lock().unwrap() = Some(Instant::now());
            stop.store(true, Ordering::SeqCst);
        }
    });
    let failure = import
        .importer(client_with(&emu, DEFAULT_API_KEY, Unlimited::new()))
        .stop_when(stop)
        .build()
        .unwrap()
        .import_file(&import.input)
        .unwrap_err();
    let ended = Instant::now();
    watcher.join().unwrap();
    let took = ended - stopped_at.lock().unwrap().expect("the stop was asked");
    assert!(
        took < Duration::from_secs(1),
        "stopped {took:?} after the stop"
    );
    assert_eq!(failure.error, Error::Stopped);
    assert!(failure.summary.progress.checkpoint_line <= 3);
    let throttled = emu.snapshot().status_count(429);
    assert!(throttled <= 3, "only what was in flight: {throttled} × 429");
}

#[test]
fn a_stop_during_an_outage_ends_the_retries_instead_of_waiting_for_them() {
    let emu = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let import = StoppedImport::new("stop-outage");
    // From request 50 on the server answers 503, and a call that meets one
    // backs off for 3.75 s or more (10 retries: over a minute). The stop
    // comes once the server has answered a 503.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = std::thread::spawn({
        let (emu, stop) = (emu.clone(), stop.clone());
        move || {
            while emu.snapshot().status_count(503) == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::SeqCst);
        }
    });
    let slow_retries = RetryPolicy::builder()
        .base_delay(Duration::from_secs(5))
        .max_delay(Duration::from_secs(10))
        .max_retries(10)
        .build()
        .unwrap();
    let patient = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emu.url())
        .limiter(ApiClass::Track, OnRequest::outage_from(emu.clone(), 50))
        .retry_policy(slow_retries)
        .build()
        .unwrap();
    let started = Instant::now();
    let (failure, _) = import.stop(&emu, patient, stop);
    let took = started.elapsed();
    watcher.join().unwrap();
    assert!(
        took < Duration::from_millis(3_500),
        "no backoff waited out (the first is 3.75 s at least): {took:?}"
    );
    assert_eq!(failure.summary.progress.retried, 0, "nothing retried");
    emu.set_faults(Faults::default());
    import.resume(&emu);
}

#[test]
fn the_same_input_read_twice_from_a_reader_gives_its_events_the_same_ids() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("reader-ids");
    let (text, _) = sample(300);
    let import = |text: &str| {
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join("dead.ndjson"))
            .build()
            .unwrap()
            .import_reader(text.as_bytes(), None)
            .unwrap()
    };
    import(&text);
    let first = emu.snapshot();
    assert_eq!(first.events.len(), 120);
    import(&text);
    let second = emu.snapshot();
    assert_eq!(second.event_ids(), first.event_ids(), "the same ids");
    assert_eq!(second.duplicate_events, 120, "each one a repeat");
    // A changed line is another event; the others keep their ids.
    import(&text.replacen("\"line\":2}", "\"line\":-2}", 1));
    let third = emu.snapshot();
    assert_eq!(
        third.events.len(),
        121,
        "a new id for the changed event only"
    );
}

/// Issue 24: event ids came from the file's digest and the line number, so
/// a file fixed as its dead-letter hint says stored most events twice.
#[test]
fn a_fixed_file_imported_again_from_a_file_or_a_pipe_counts_every_event_once() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("fixed-file");
    let twin = r#"{"type":"person","action":"event","identifiers":{"id":"t"},"name":"clicked"}"#;
    let (sample, _) = sample(300);
    let text = format!("{twin}\n{sample}{twin}\n");
    let input = dir.join("input.ndjson");
    fs::write(&input, &text).unwrap();
    let import_file = |name: &str| {
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join(name))
            .build()
            .unwrap()
            .import_file(&input)
            .map(|summary| summary.progress.delivered)
            .map_err(|failure| failure.error)
    };
    let _ = import_file("first.ndjson");
    let first = emu.snapshot();
    assert_eq!(
        first.events.len(),
        122,
        "120 events and the twins, each its own"
    );
    // Fix the first broken line, drop another bad one (shifting every later
    // line), and import the file again: only the fixed line is new.
    let fixed = text
        .replacen(
            "{not json",
            r#"{"type":"person","action":"event","identifiers":{"id":"f"},"name":"fixed"}"#,
            1,
        )
        .replacen("{not json\n", "", 1);
    fs::write(&input, &fixed).unwrap();
    let _ = import_file("second.ndjson");
    let second = emu.snapshot();
    assert_eq!(second.events.len(), 123, "one new event: the fixed line");
    assert_eq!(second.duplicate_events, 122, "every other event a repeat");
    assert!(second.event_ids().is_superset(&first.event_ids()));
    // The same lines through a pipe get the same ids as from the file.
    let _ = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("third.ndjson"))
        .build()
        .unwrap()
        .import_reader(fixed.as_bytes(), None);
    let third = emu.snapshot();
    assert_eq!(
        third.event_ids(),
        second.event_ids(),
        "standard input alike"
    );
    assert_eq!(third.duplicate_events, 122 + 123);
}

/// Issue 24: appending lines to a file made `--resume` refuse it ("belongs
/// to import ..."). The twin after the checkpoint must not take the id of
/// the one before it: the lines skipped still count.
#[test]
fn lines_appended_to_a_file_are_sent_by_its_resume_and_twins_keep_apart() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("appended");
    let twin = r#"{"type":"person","action":"event","identifiers":{"id":"t"},"name":"clicked"}"#;
    let (sample, _) = sample(300);
    let mut lines: Vec<&str> = sample.lines().collect();
    lines[10] = twin; // line 11: an identify of the sample, now an event
    lines[160] = twin; // line 161
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    let input = dir.join("input.ndjson");
    let importer = || {
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("import.checkpoint"))
    };
    fs::write(&input, first_lines(&text, 150)).unwrap();
    importer().build().unwrap().import_file(&input).unwrap();
    // The last line without its end, then completed: the same line.
    fs::write(&input, text.trim_end()).unwrap();
    fs::write(&input, &text).unwrap();
    let summary = importer()
        .resume(true)
        .build()
        .unwrap()
        .import_file(&input)
        .unwrap();
    assert_eq!(summary.progress.skipped, 150);
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.duplicate_events, 0, "no event sent twice");
    let twins: Vec<_> = snapshot
        .events
        .iter()
        .filter(|event| event.person.as_deref() == Some("t"))
        .collect();
    assert_eq!(twins.len(), 2, "each twin stored: {twins:?}");
    assert_eq!(
        twins[1].id.as_deref(),
        Some(line_id("by-content", twin, 1).as_str())
    );
    assert_eq!(snapshot.events.len(), 122, "every event once");
}

/// Issue 24: 20 MB of random bytes after 1,000 good lines made an 82 MB
/// dead-letter file: the binary-input guard looked at the first lines only.
#[test]
fn random_bytes_after_good_lines_stop_the_import_before_they_fill_the_dead_letters() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("binary-tail");
    let (text, _) = sample(1_000);
    let mut input = text.into_bytes();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    input.extend((0..4_000_000).map(|_| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 56) as u8
    }));
    let failure = Importer::builder(client(&emu, DEFAULT_API_KEY))
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(&input[..], None)
        .unwrap_err();
    assert!(
        matches!(failure.error, Error::WrongFormat { .. }),
        "{}",
        failure.error
    );
    let dead = fs::metadata(dir.join("dead.ndjson")).map_or(0, |meta| meta.len());
    assert!(dead < 2_000_000, "{dead} bytes of dead letters");
    assert!(
        failure.summary.progress.bytes_read < 1_000_000,
        "stopped soon after the good lines: {:?}",
        failure.summary.progress
    );
}

fn first_lines(text: &str, n: usize) -> String {
    text.split_inclusive('\n').take(n).collect()
}

#[test]
fn resuming_with_other_input_before_the_checkpoint_is_refused_before_anything_is_sent() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("other-input");
    let (text, _) = sample(300);
    let importer = || {
        Importer::builder(client(&emu, DEFAULT_API_KEY))
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("import.checkpoint"))
    };
    importer()
        .build()
        .unwrap()
        .import_reader(first_lines(&text, 150).as_bytes(), None)
        .unwrap();
    let before = emu.snapshot().requests;
    let changed = text.replacen("\"u1\"", "\"someone else\"", 1);
    let failure = importer()
        .resume(true)
        .build()
        .unwrap()
        .import_reader(changed.as_bytes(), None)
        .unwrap_err();
    assert!(
        matches!(&failure.error, Error::Checkpoint { reason, .. } if reason.contains("not the ones it was kept for")),
        "{}",
        failure.error
    );
    assert_eq!(emu.snapshot().requests, before, "nothing sent");
    // The same input resumes, and sends only the rest.
    let summary = importer()
        .resume(true)
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    assert_eq!(summary.progress.skipped, 150);
    assert_sample_arrived_once(&emu, 300);
}
