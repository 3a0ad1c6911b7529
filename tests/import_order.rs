//! Per-person order: operations that name the same person reach the server in
//! input order, whatever the workers, batches, retries (5xx and 429) and
//! resumes. Each line carries its line number; the emulator's records say in
//! which order they arrived.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Faults, Snapshot};
use cio_ratelimit::{
    ApiClass, Checkpoint, Client, ImportMode, Importer, Limiter, RetryPolicy, Unlimited,
};
use serde_json::json;

mod on_request;
mod scripted;
use on_request::OnRequest;
use scripted::Scripted;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cio-order-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// An emulator that fails a request in five with a 500 or a 503 (some after
/// storing it), and answers 429 past `limit` requests in 100 ms.
fn flaky_emulator(seed: u64, limit: u32) -> Emulator {
    let faults = Faults::default()
        .seed(seed)
        .error_before_store(0.08)
        .error_after_store(0.08)
        .unavailable(0.04);
    Emulator::start(
        Config::default()
            .track_limit(limit)
            .window(Duration::from_millis(100))
            .faults(faults),
    )
    .unwrap()
}

/// A client without a rate of its own (the emulator's 429s set it) that
/// retries quickly and long enough to outlast the faults.
fn client(emulator: &Emulator) -> Client {
    client_with(&emulator.url(), Unlimited::new(), 100)
}

fn client_with(url: &str, limiter: impl Limiter + 'static, max_retries: u32) -> Client {
    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(url)
        .limiter(ApiClass::Track, limiter)
        .retry_policy(
            RetryPolicy::builder()
                .base_delay(Duration::from_millis(1))
                .max_delay(Duration::from_millis(5))
                .max_retry_after(Duration::from_millis(20))
                .max_retries(max_retries)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

/// The person on `line`, at random (but the same in every run): one
/// person's lines fall in many batches, some of them next to each other.
fn person(line: u64, people: u64) -> String {
    format!(
        "p{}",
        (line.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % people
    )
}

/// The lines of an import: `lines` lines, each an identify or an event of
/// one of `people` carrying its line number; then the first `deleted`
/// people are deleted.
#[derive(Clone, Copy)]
struct Input {
    lines: u64,
    people: u64,
    deleted: u64,
}

impl Input {
    fn text(self) -> String {
        let Input {
            lines,
            people,
            deleted,
        } = self;
        let mut text = String::new();
        for line in 1..=lines {
            let who = person(line, people);
            let entry = if line % 3 == 0 {
                json!({"type": "person", "action": "event", "identifiers": {"id": who},
                "name": "seen", "attributes": {"line": line}})
            } else {
                json!({"type": "person", "action": "identify", "identifiers": {"id": who},
                "attributes": {"line": line}})
            };
            text.push_str(&entry.to_string());
            text.push('\n');
        }
        for n in 0..deleted {
            let who = format!("p{n}");
            text.push_str(
                &json!({"type": "person", "action": "delete", "identifiers": {"id": who}})
                    .to_string(),
            );
            text.push('\n');
        }
        text
    }
}

/// Checks what the emulator received of `input`: each person's events
/// arrived in line order, each person left ends with their last identify,
/// and each deleted person stays deleted.
fn assert_in_order(snapshot: &Snapshot, input: Input) {
    let Input {
        lines,
        people,
        deleted,
    } = input;
    let mut arrived: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in &snapshot.events {
        arrived
            .entry(event.person.as_deref().unwrap())
            .or_default()
            .push(event.data["line"].as_u64().unwrap());
    }
    let overtaken: Vec<_> = arrived
        .iter()
        .filter(|(_, lines)| lines.windows(2).any(|pair| pair[0] > pair[1]))
        .collect();
    assert!(overtaken.is_empty(), "events out of order: {overtaken:?}");
    assert_eq!(snapshot.event_count, lines / 3, "every event arrived");

    let mut last_identify = BTreeMap::new();
    for line in (1..=lines).filter(|line| line % 3 != 0) {
        last_identify.insert(person(line, people), line);
    }
    let stale: Vec<_> = last_identify
        .iter()
        .filter(|(who, _)| who[1..].parse::<u64>().unwrap() >= deleted)
        .filter(|&(who, &line)| snapshot.people[who].attributes["line"] != line)
        .map(|(who, line)| (who, line, &snapshot.people[who].attributes["line"]))
        .collect();
    assert!(
        stale.is_empty(),
        "people left with stale attributes (person, last line, received): {stale:?}"
    );
    let revived: Vec<_> = (0..deleted)
        .map(|n| format!("p{n}"))
        .filter(|who| snapshot.people.contains_key(who))
        .collect();
    assert!(
        revived.is_empty(),
        "identifies that arrived after the delete: {revived:?}"
    );
}

#[test]
fn one_persons_batched_writes_arrive_in_file_order_through_faults_and_429s() {
    let emulator = flaky_emulator(11, 50);
    let dir = scratch("batch");
    let input = Input {
        lines: 6_000,
        people: 300,
        deleted: 30,
    };
    let summary = Importer::builder(client(&emulator))
        .workers(4)
        .max_batch_bytes(2_000)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(input.text().as_bytes(), None)
        .unwrap();
    assert_eq!(summary.progress.delivered, input.lines + input.deleted);
    let snapshot = emulator.snapshot();
    assert!(
        snapshot.status_count(500) > 0 && snapshot.status_count(503) > 0 && snapshot.throttled > 0,
        "the faults fired: {:?}",
        snapshot.status_counts
    );
    assert!(
        summary.progress.requests > 300,
        "many batches raced: {}",
        summary.progress.requests
    );
    assert_in_order(&snapshot, input);
}

#[test]
fn one_persons_writes_arrive_in_file_order_in_single_mode() {
    let emulator = flaky_emulator(12, 100);
    let dir = scratch("single");
    let input = Input {
        lines: 900,
        people: 12,
        deleted: 4,
    };
    let summary = Importer::builder(client(&emulator))
        .mode(ImportMode::Single)
        .workers(4)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(input.text().as_bytes(), None)
        .unwrap();
    assert_eq!(summary.progress.delivered, input.lines + input.deleted);
    let snapshot = emulator.snapshot();
    assert!(
        snapshot.status_count(500) > 0 && snapshot.throttled > 0,
        "{:?}",
        snapshot.status_counts
    );
    assert_in_order(&snapshot, input);
}

#[test]
fn one_persons_writes_stay_in_order_across_a_stop_and_a_resume() {
    let emulator = Arc::new(Emulator::start(Config::default().track_limit(0)).unwrap());
    let dir = scratch("resume");
    let input = Input {
        lines: 3_000,
        people: 100,
        deleted: 10,
    };
    let path = dir.join("input.ndjson");
    fs::write(&path, input.text()).unwrap();
    let importer = |client| {
        Importer::builder(client)
            .workers(4)
            .max_batch_bytes(2_000)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("checkpoint"))
    };
    // From the 100th request on, the server answers 503 to everything.
    let failing = OnRequest::outage_from(emulator.clone(), 100);
    let failure = importer(client_with(&emulator.url(), failing, 2))
        .build()
        .unwrap()
        .import_file(&path)
        .unwrap_err();
    assert!(failure.error.is_transient(), "{}", failure.error);
    let stopped_at = Checkpoint::load(&dir.join("checkpoint")).unwrap().line();
    assert!(stopped_at > 0 && stopped_at < 3_000, "{stopped_at}");

    emulator.set_faults(Faults::default());
    let summary = importer(client(&emulator))
        .resume(true)
        .build()
        .unwrap()
        .import_file(&path)
        .unwrap();
    assert_eq!(summary.progress.skipped, stopped_at);
    assert_in_order(&emulator.snapshot(), input);
}

/// A person named once, early, in a file of someone else's lines: their lane
/// sends them once 100,000 lines (25,000 a lane) have gone by, not at the end of the input,
/// so they do not hold the checkpoint back for the rest of the file.
#[test]
fn a_person_named_once_is_sent_without_waiting_for_the_end_of_the_input() {
    // A server that answers 200 to everything and keeps the bodies in order.
    let server = Scripted::start(&[]);
    let dir = scratch("seldom");
    let identify = |who: &str, line: u64| {
        format!(
            "{{\"type\":\"person\",\"action\":\"identify\",\"identifiers\":{{\"id\":\"{who}\"}},\"attributes\":{{\"line\":{line}}}}}\n"
        )
    };
    // Four people named once cover the lanes the busy one is not in.
    let mut text: String = (1..=4)
        .map(|line| identify(&format!("once{line}"), line))
        .collect();
    for line in 5..=130_000 {
        text.push_str(&identify("busy", line));
    }
    let summary = Importer::builder(client_with(server.url(), Unlimited::new(), 0))
        .workers(4)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(text.as_bytes(), None)
        .unwrap();
    assert_eq!(summary.progress.delivered, 130_000);
    let requests = server.received();
    let carrying = |text: &str| {
        requests
            .iter()
            .position(|request| String::from_utf8_lossy(&request.body).contains(text))
            .unwrap()
    };
    let late_busy_line = carrying("\"line\":125000}");
    for once in 1..=4 {
        assert!(
            carrying(&format!("\"once{once}\"")) < late_busy_line,
            "once{once} went after the busy person's line 125,000"
        );
    }
}
