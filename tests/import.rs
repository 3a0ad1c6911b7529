//! `Importer` against `cio-emulator`: every line delivered once, dead-lettered
//! with a reason, or still ahead of the checkpoint — even when the server fails.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Faults};
use cio_ratelimit::{
    ApiClass, Checkpoint, Client, Credential, DeadLetter, Error, EventId, ImportMode, Importer,
    Limiter, RateLimit, RetryPolicy, TokenBucket, Unlimited,
};
use serde_json::json;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cio-import-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn client(emu: &Emulator, api_key: &str) -> Client {
    client_with(
        emu,
        api_key,
        TokenBucket::from_limit(RateLimit::new(5_000.0, 100).unwrap()),
    )
}

fn client_with(emu: &Emulator, api_key: &str, limiter: impl Limiter + 'static) -> Client {
    Client::builder(DEFAULT_SITE_ID, api_key)
        .track_url(emu.url())
        .limiter(ApiClass::Track, limiter)
        .retry_policy(
            RetryPolicy::builder()
                .base_delay(Duration::from_millis(2))
                .max_delay(Duration::from_millis(10))
                .max_retries(2)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
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

fn dead_letters(path: &Path) -> Vec<DeadLetter> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// The event ids an import with `import_id` derives for the event lines of `sample(n)`.
fn expected_event_ids(import_id: &str, n: u64) -> BTreeSet<String> {
    (1..=n)
        .filter(|line| line % 10 != 0 && line % 2 == 0)
        .map(|line| EventId::from_key(&format!("{import_id}:{line}")).to_string())
        .collect()
}

#[test]
fn every_valid_line_arrives_once_and_bad_lines_are_dead_lettered_with_reasons() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = scratch("basic");
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
    let letters = dead_letters(&dir.join("dead.ndjson"));
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
    let dir = scratch("single");
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
    let letters = dead_letters(&dir.join("dead.ndjson"));
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
    let dir = scratch("207");
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
    let letters = dead_letters(&dir.join("dead.ndjson"));
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
    let dir = scratch("odd");
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
    let letters = dead_letters(&dir.join("dead.ndjson"));
    assert_eq!(letters[0].line, 5);
    assert!(
        letters[0].reason.contains("longer than"),
        "{}",
        letters[0].reason
    );
}

/// A limiter that lets everything through (pauses aside) and calls `hook`
/// with each request's number before it goes: a test can make the server fail
/// at a known request, or make one request fail, whatever the timing.
struct OnRequest {
    hook: Box<dyn Fn(u64) + Send + Sync>,
    seen: AtomicU64,
    inner: Unlimited,
}

impl OnRequest {
    fn new(hook: impl Fn(u64) + Send + Sync + 'static) -> OnRequest {
        OnRequest {
            hook: Box::new(hook),
            seen: AtomicU64::new(0),
            inner: Unlimited::new(),
        }
    }
}

impl std::fmt::Debug for OnRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnRequest")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl Limiter for OnRequest {
    fn acquire(&self) {
        (self.hook)(self.seen.fetch_add(1, Ordering::SeqCst) + 1);
        self.inner.acquire();
    }
    fn try_acquire(&self) -> bool {
        self.acquire();
        true
    }
    fn acquire_timeout(&self, _: Duration) -> bool {
        self.acquire();
        true
    }
    fn pause_for(&self, duration: Duration) {
        self.inner.pause_for(duration)
    }
}

#[test]
fn a_server_that_goes_down_stops_the_import_with_the_checkpoint_intact_then_resume_loses_nothing() {
    let emu = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let dir = scratch("resume");
    let (text, bad) = sample(3_000);
    let input = dir.join("input.ndjson");
    fs::write(&input, &text).unwrap();
    let importer = |client: Client| {
        Importer::builder(client)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("import.checkpoint"))
            .max_batch_bytes(6_000)
    };
    // From the 20th request on, the server answers 503 to everything.
    let failing = importer(client_with(
        &emu,
        DEFAULT_API_KEY,
        OnRequest::new({
            let emu = emu.clone();
            move |n| {
                if n == 20 {
                    emu.set_faults(Faults::default().unavailable(1.0));
                }
            }
        }),
    ));
    let failure = failing.build().unwrap().import_file(&input).unwrap_err();
    assert!(
        matches!(failure.error, Error::Status { status: 503, .. }),
        "{}",
        failure.error
    );
    assert!(failure.error.is_transient());
    let checkpoint = Checkpoint::load(&dir.join("import.checkpoint")).unwrap();
    assert_eq!(checkpoint.line(), failure.summary.progress.checkpoint_line);
    assert!(
        checkpoint.line() >= 500 && checkpoint.line() < 3_000,
        "{checkpoint:?}"
    );
    // Every line up to the checkpoint is accounted for, and no good line was dead-lettered.
    let letters = dead_letters(&dir.join("dead.ndjson"));
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
    let letters = dead_letters(&dir.join("dead.ndjson"));
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
    let dir = scratch("401");
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
    let dir = scratch("refused");
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
    let dir = scratch("progress");
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
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = scratch("held");
    let (text, _) = sample(3_000);
    let failure = Importer::builder(client_with(
        &emu,
        DEFAULT_API_KEY,
        // The fifth request fails on purpose.
        OnRequest::new(|n| assert!(n != 5, "request {n} fails on purpose")),
    ))
    .dead_letter(dir.join("dead.ndjson"))
    .checkpoint(dir.join("import.checkpoint"))
    .max_batch_bytes(6_000)
    .workers(4)
    .build()
    .unwrap()
    .import_reader(text.as_bytes(), None)
    .unwrap_err();
    let checkpoint = Checkpoint::load(&dir.join("import.checkpoint")).unwrap();
    // Four chunks settled at most: the fifth request failed.
    assert_eq!(
        checkpoint.delivered() + checkpoint.dead_lettered(),
        checkpoint.line(),
        "{}",
        failure.error
    );
    assert!(
        checkpoint.line() < 300,
        "the checkpoint passed the failed chunk: {checkpoint:?}"
    );
}
