//! Per-person order: operations that name the same person reach the server in
//! input order, whatever the workers, batches, retries (5xx and 429) and
//! resumes. Each line carries its line number; the emulator's records say in
//! which order they arrived.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Faults, Snapshot};
use cio_ratelimit::{
    ApiClass, Client, Importer, Limiter, RetryPolicy,
    import::{Checkpoint, ImportMode},
    limit::Unlimited,
};
use proptest::prelude::*;
use serde_json::{Value, json};

mod fickle;
mod on_request;
mod quick_client;
mod scripted;
use cio_test_kit::ScratchDir;
use fickle::{Answer, Fickle};
use on_request::OnRequest;
use quick_client::{quick_retries, track_client};
use scripted::Scripted;

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
    let retries = quick_retries(max_retries).max_retry_after(Duration::from_millis(20));
    track_client(url, DEFAULT_API_KEY, limiter, retries)
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
    let dir = ScratchDir::new("batch");
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
    let dir = ScratchDir::new("single");
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
    let dir = ScratchDir::new("resume");
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

/// A person named once, early, in a file of someone else's lines: they go
/// with the first requests (the oldest ready lines go first), not at the end
/// of the input, so they do not hold the checkpoint back for the rest of the file.
#[test]
fn a_person_named_once_is_sent_without_waiting_for_the_end_of_the_input() {
    // A server that answers 200 to everything and keeps the bodies in order.
    let server = Scripted::start(&[]);
    let dir = ScratchDir::new("seldom");
    let identify = |who: &str, line: u64| {
        format!(
            "{{\"type\":\"person\",\"action\":\"identify\",\"identifiers\":{{\"id\":\"{who}\"}},\"attributes\":{{\"line\":{line}}}}}\n"
        )
    };
    // Four people named once, before the busy one.
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

/// The line a test operation carries, and whom it names (`None`: a delivery).
fn line_and_person(operation: &Value) -> (u64, Option<String>) {
    let line = operation["attributes"]["line"]
        .as_u64()
        .expect("a test line");
    let person = match operation["type"].as_str() {
        Some("person") => operation["identifiers"]["id"].as_str().map(str::to_owned),
        _ => None,
    };
    (line, person)
}

/// `people[i]` on line `i + 1`: an identify (or, on every third line, an
/// event) of that person, or a delivery event naming no one for `None`.
fn lines_naming(people: &[Option<String>]) -> String {
    let mut text = String::new();
    for (index, who) in people.iter().enumerate() {
        let line = index as u64 + 1;
        let entry = match who {
            None => json!({"type": "delivery", "action": "event", "name": "opened",
                "identifiers": {"id": format!("d{line}")}, "attributes": {"line": line}}),
            Some(who) if line.is_multiple_of(3) => json!({"type": "person", "action": "event",
                "identifiers": {"id": who}, "name": "seen", "attributes": {"line": line}}),
            Some(who) => json!({"type": "person", "action": "identify",
                "identifiers": {"id": who}, "attributes": {"line": line}}),
        };
        text.push_str(&entry.to_string());
        text.push('\n');
    }
    text
}

/// Each person's lines, in the order the server accepted them: every line
/// of `lines` exactly once, and no person's lines out of file order.
fn assert_each_line_once_and_each_person_in_order(accepted: &[Value], lines: u64) {
    let arrived: Vec<(u64, Option<String>)> = accepted.iter().map(line_and_person).collect();
    let mut seen = BTreeSet::new();
    let doubled: Vec<u64> = arrived
        .iter()
        .filter(|(line, _)| !seen.insert(*line))
        .map(|(line, _)| *line)
        .collect();
    assert!(doubled.is_empty(), "lines accepted twice: {doubled:?}");
    let lost: Vec<u64> = (1..=lines).filter(|line| !seen.contains(line)).collect();
    assert!(lost.is_empty(), "lines never accepted: {lost:?}");
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (line, person) in &arrived {
        if let Some(person) = person {
            let before = last.insert(person, *line).unwrap_or(0);
            assert!(
                before < *line,
                "{person}'s line {line} arrived after their line {before}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Against a server that answers each request late, with a 503, or not
    /// at all, at random, and an input where one person has 30 % of the
    /// lines and one line in ten names no one: every line arrives once,
    /// each person's in file order, and the checkpoint never passes a line
    /// the server has not accepted.
    #[test]
    fn each_persons_lines_arrive_once_and_in_order_whatever_the_answers(
        seed in any::<u64>(),
        lines in 150u64..400,
        single in any::<bool>(),
        workers in 1usize..7,
        max_batch_bytes in 300usize..3_000,
    ) {
        let mut rng = fastrand::Rng::with_seed(seed);
        let people: Vec<Option<String>> = (0..lines)
            .map(|_| match rng.f64() {
                roll if roll < 0.3 => Some("hot".to_owned()),
                roll if roll < 0.4 => None,
                _ => Some(format!("p{}", rng.u32(..20))),
            })
            .collect();
        let dice = Mutex::new(fastrand::Rng::with_seed(seed ^ 0x5eed));
        let server = Fickle::start(move |_| {
            let mut dice = dice.lock().unwrap();
            match dice.f64() {
                roll if roll < 0.10 => Answer::Refuse(503),
                roll if roll < 0.15 => Answer::Drop,
                _ => Answer::Accept(Duration::from_millis(dice.u64(..15))),
            }
        });
        let accepted = server.accepted_handle();
        let passed_unaccepted = Arc::new(Mutex::new(Vec::new()));
        let seen_by_callback = passed_unaccepted.clone();
        let dir = ScratchDir::new(&format!("fickle-{seed}"));
        let mode = if single { ImportMode::Single } else { ImportMode::Batch };
        let summary = Importer::builder(client_with(server.url(), Unlimited::new(), 200))
            .mode(mode)
            .workers(workers)
            .max_batch_bytes(max_batch_bytes)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(dir.join("checkpoint"))
            .progress(move |progress| {
                let accepted: BTreeSet<u64> = accepted
                    .lock()
                    .unwrap()
                    .iter()
                    .map(|operation| line_and_person(operation).0)
                    .collect();
                if let Some(line) =
                    (1..=progress.checkpoint_line).find(|line| !accepted.contains(line))
                {
                    seen_by_callback.lock().unwrap().push((progress.checkpoint_line, line));
                }
            })
            .build()
            .unwrap()
            .import_reader(lines_naming(&people).as_bytes(), None)
            .unwrap();
        prop_assert_eq!(summary.progress.delivered, lines);
        prop_assert_eq!(Checkpoint::load(&dir.join("checkpoint")).unwrap().line(), lines);
        prop_assert!(
            passed_unaccepted.lock().unwrap().is_empty(),
            "the checkpoint passed lines the server had not accepted (checkpoint, line): {:?}",
            passed_unaccepted.lock().unwrap()
        );
        assert_each_line_once_and_each_person_in_order(&server.accepted(), lines);
        let _ = fs::remove_dir_all(&dir);
    }
}

/// One person's requests are answered 503 for 10 s; everyone else's go
/// through. Returns the server (with what it accepted and when the first of
/// the stuck person's lines was) after importing `lines` lines in `mode`.
fn import_beside_a_person_refused_for_10_s(mode: ImportMode, lines: u64) -> (Fickle, u64) {
    const REFUSED_FOR: Duration = Duration::from_secs(10);
    let started = Instant::now();
    // The people who shared a refused request with the stuck one.
    let held = Arc::new(Mutex::new(BTreeSet::new()));
    let held_by_server = held.clone();
    let server = Fickle::start(move |operations| {
        let names_stuck = operations
            .iter()
            .any(|operation| operation["identifiers"]["id"] == "stuck");
        if names_stuck && started.elapsed() < REFUSED_FOR {
            let mut held = held_by_server.lock().unwrap();
            held.extend(operations.iter().filter_map(|op| line_and_person(op).1));
            return Answer::Refuse(503);
        }
        Answer::Accept(Duration::ZERO)
    });
    let people: Vec<Option<String>> = (0..lines)
        .map(|line| match line % 40 {
            7 => Some("stuck".to_owned()),
            _ => Some(format!("p{}", line % 97)),
        })
        .collect();
    let dir = ScratchDir::new(&format!("stuck-{mode:?}"));
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(server.url())
        .limiter(ApiClass::Track, Unlimited::new())
        .retry_policy(
            RetryPolicy::builder()
                .base_delay(Duration::from_millis(50))
                .max_delay(Duration::from_millis(200))
                .max_retries(1_000)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let summary = Importer::builder(client)
        .mode(mode)
        .workers(4)
        .max_batch_bytes(1_000)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_reader(lines_naming(&people).as_bytes(), None)
        .unwrap();
    assert_eq!(summary.progress.delivered, lines);
    assert!(
        started.elapsed() >= REFUSED_FOR,
        "the stuck person's lines went through only after the 503s"
    );
    let accepted = server.accepted();
    assert_each_line_once_and_each_person_in_order(&accepted, lines);
    let first_stuck = accepted
        .iter()
        .position(|operation| line_and_person(operation).1.as_deref() == Some("stuck"))
        .expect("the stuck person arrived");
    // Everyone who never shared a refused request with the stuck person was
    // delivered in full before the stuck person's first line got through.
    let held = held.lock().unwrap().clone();
    let free_people: BTreeSet<String> = people
        .iter()
        .flatten()
        .filter(|who| !held.contains(*who))
        .cloned()
        .collect();
    let late: Vec<u64> = accepted[first_stuck..]
        .iter()
        .map(line_and_person)
        .filter(|(_, who)| who.as_ref().is_some_and(|who| free_people.contains(who)))
        .map(|(line, _)| line)
        .collect();
    assert!(
        late.is_empty(),
        "lines of people not held by the 503s waited for them: {late:?}"
    );
    let _ = fs::remove_dir_all(&dir);
    (server, free_people.len() as u64)
}

#[test]
fn one_persons_503s_for_10_s_hold_back_only_that_person_in_single_mode() {
    let (_, free) = import_beside_a_person_refused_for_10_s(ImportMode::Single, 1_200);
    assert_eq!(
        free, 97,
        "every other person went on; only the stuck one waited"
    );
}

#[test]
fn one_persons_503s_for_10_s_hold_back_only_the_people_in_their_batch() {
    let (_, free) = import_beside_a_person_refused_for_10_s(ImportMode::Batch, 4_000);
    assert!(
        free >= 80,
        "most people shared no batch with the stuck person: {free} of 97 went on"
    );
}
