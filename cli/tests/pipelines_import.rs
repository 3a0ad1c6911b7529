//! `cio-ratelimit import FILE --api pipelines`, run as a process against
//! `cio-emulator`: what arrived, with which `messageId`s, what was
//! dead-lettered, and the exit codes.

mod command;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use cio_emulator::{Config, DEFAULT_PIPELINES_KEY, Emulator, Snapshot};
use cio_test_kit::{RedisServer, ScratchDir, dead_letter_lines, dead_letters, write_lines};
use serde_json::Value;

use command::{cio_ratelimit, import};

/// `n` calls, one person each (`u{line}`), identifies and tracks in turn;
/// every `bad`-th line is a track without its `event`, refused before
/// sending, and the one after it a page with a timestamp only the server
/// refuses (strict mode). Returns the people whose calls are good.
fn write_pipelines_calls(path: &Path, n: u64, bad: Option<u64>) -> Vec<String> {
    let mut text = String::new();
    let mut good = Vec::new();
    for line in 1..=n {
        let user = format!("u{line}");
        let (call, sent) = match bad.map(|every| line % every) {
            Some(0) => (format!(r#"{{"type":"track","userId":"{user}"}}"#), false),
            Some(1) if line > 1 => (
                format!(r#"{{"type":"page","userId":"{user}","timestamp":"last week"}}"#),
                false,
            ),
            _ if line % 2 == 1 => (
                format!(r#"{{"type":"identify","userId":"{user}","traits":{{"line":{line}}}}}"#),
                true,
            ),
            _ => (
                format!(r#"{{"type":"track","userId":"{user}","event":"seen"}}"#),
                true,
            ),
        };
        if sent {
            good.push(user);
        }
        text.push_str(&call);
        text.push('\n');
    }
    fs::write(path, text).unwrap();
    good.sort();
    good
}

/// Each stored call's `messageId`, by its person, checking that it came in
/// strict mode with a `messageId`.
fn message_ids(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .pipelines
        .iter()
        .map(|call| {
            assert!(call.strict, "{call:?}");
            let id = call.message_id.clone().expect("every call has a messageId");
            assert_eq!(id.len(), 26, "{call:?}");
            (call.user_id.clone().unwrap(), id)
        })
        .collect()
}

#[test]
fn the_contract_command_delivers_the_good_calls_and_dead_letters_the_rest_with_exit_1() {
    for mode in ["batch", "single"] {
        let emu = Emulator::start(Config::default().pipelines_limit(0)).unwrap();
        let dir = ScratchDir::new(&format!("contract-{mode}"));
        let input = dir.join("calls.ndjson");
        let good = write_pipelines_calls(&input, 400, Some(100));
        let dead = dir.join("dead.ndjson");
        // Only the Pipelines key: no Track or App credentials anywhere.
        let outcome = cio_ratelimit(&[
            "import",
            input.to_str().unwrap(),
            "--api",
            "pipelines",
            "--pipelines-url",
            &emu.url(),
            "--pipelines-key",
            DEFAULT_PIPELINES_KEY,
            "--dead-letter",
            dead.to_str().unwrap(),
            "--json",
            "--mode",
            mode,
            "--rate",
            "1000",
        ])
        .run();
        outcome.assert_code(1);
        let json = outcome.json();
        assert_eq!(
            (json["delivered"].as_u64(), json["dead_lettered"].as_u64()),
            (Some(393), Some(7)),
            "{mode}"
        );
        let snapshot = emu.snapshot();
        let arrived = message_ids(&snapshot);
        assert_eq!(arrived.keys().cloned().collect::<Vec<_>>(), good, "{mode}");
        let letters: Vec<Value> = dead_letters(&dead);
        assert_eq!(
            dead_letter_lines(&dead),
            [100, 101, 200, 201, 300, 301, 400],
            "{mode}"
        );
        for letter in &letters {
            let reason = letter["reason"].as_str().unwrap();
            match letter["line"].as_u64().unwrap() % 100 {
                0 => assert!(reason.contains("\"event\""), "{reason}"),
                _ => assert!(
                    reason.starts_with("rejected by Customer.io") && reason.contains("timestamp"),
                    "{reason}"
                ),
            }
        }
        let requests = snapshot.classes["pipelines"].requests;
        match mode {
            "single" => assert_eq!(requests, 396, "a request per call sent"),
            // One batch of 396, and about 2·log2(396) halves for each of the 3
            // calls the server refuses.
            _ => assert!(requests <= 1 + 2 * 3 * 9, "{requests} requests"),
        }
    }
}

#[test]
fn a_resumed_import_repeats_the_message_ids_so_nothing_counts_twice() {
    let first_server = Emulator::start(Config::default().pipelines_limit(0)).unwrap();
    let dir = ScratchDir::new("resume");
    let input = dir.join("calls.ndjson");
    let good = write_pipelines_calls(&input, 1_500, None);
    let checkpoint = dir.join("calls.checkpoint");
    let import_file = |server: &Emulator| {
        import(server, &input)
            .api("pipelines")
            .mode("single")
            .rate(500)
            .checkpoint(&checkpoint)
            .progress_every(200)
            .max_retries(1)
    };
    let mut child = import_file(&first_server).spawn();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("progress:") {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "ended early");
    }
    first_server.shutdown();
    assert_eq!(
        child.wait().unwrap().code(),
        Some(3),
        "unavailable: resume later"
    );
    let before = message_ids(&first_server.snapshot());
    assert!(before.len() < good.len(), "stopped before the end");

    let second_server = Emulator::start(Config::default().pipelines_limit(0)).unwrap();
    import_file(&second_server).resume().run().assert_code(0);
    let after = message_ids(&second_server.snapshot());
    let mut people: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    people.sort();
    people.dedup();
    assert_eq!(people, good, "every call reached one server or the other");
    let repeated: Vec<&String> = after.keys().filter(|p| before.contains_key(*p)).collect();
    assert!(repeated.len() < 300, "only in-flight work was sent again");
    for person in repeated {
        assert_eq!(
            before[person], after[person],
            "{person}: the same messageId"
        );
    }

    // The whole file again, batched: the calls the second server has come
    // with the same messageIds and count once; the rest are stored.
    import(&second_server, &input)
        .api("pipelines")
        .run()
        .assert_code(0);
    let snapshot = second_server.snapshot();
    assert_eq!(snapshot.pipelines_duplicates, after.len() as u64);
    let stored: Vec<String> = message_ids(&snapshot).into_keys().collect();
    assert_eq!(stored, good);
    assert_eq!(snapshot.pipelines.len(), good.len(), "nothing stored twice");
}

#[test]
fn a_wrong_key_exits_2_naming_the_pipelines_key_without_showing_it() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("401");
    let input = dir.join("calls.ndjson");
    write_pipelines_calls(&input, 2_000, None);
    let key_file = dir.join("key.txt");
    fs::write(&key_file, "pk-wrong-0123456789\n").unwrap();
    let outcome = cio_ratelimit(&[
        "import",
        input.to_str().unwrap(),
        "--api",
        "pipelines",
        "--mode",
        "single",
        "--pipelines-url",
        &emu.url(),
        "--pipelines-key-file",
        key_file.to_str().unwrap(),
    ])
    .run();
    outcome.assert_code(2);
    assert!(outcome.elapsed < Duration::from_secs(10), "{outcome:?}");
    assert!(outcome.stderr.contains("Pipelines API key"), "{outcome:?}");
    command::assert_no_piece_of("pk-wrong-0123456789", &outcome.all_output());
    assert!(
        emu.snapshot().requests <= 10,
        "{:?}",
        emu.snapshot().requests
    );
    assert!(!dir.join("calls.ndjson.dead-letter.ndjson").exists());
}

#[test]
fn without_a_pipelines_key_or_with_csv_input_it_exits_2_before_sending() {
    let dir = ScratchDir::new("usage");
    let input = dir.join("calls.ndjson");
    write_pipelines_calls(&input, 10, None);
    // Track credentials are not Pipelines credentials.
    let emu = Emulator::start(Config::default()).unwrap();
    let outcome = import(&emu, &input)
        .api("pipelines")
        .env_remove("CUSTOMERIO_PIPELINES_API_KEY")
        .run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("CUSTOMERIO_PIPELINES_API_KEY"),
        "{outcome:?}"
    );
    let csv = dir.join("people.csv");
    fs::write(&csv, "id,plan\n1,pro\n").unwrap();
    let outcome = import(&emu, &csv).api("pipelines").run();
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("CSV"), "{outcome:?}");
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn the_embedded_emulator_imports_the_pipelines_sample() {
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/sample-pipelines.ndjson"
    );
    let outcome = cio_ratelimit(&[
        "import",
        sample,
        "--api",
        "pipelines",
        "--emulator",
        "--json",
    ])
    .run();
    outcome.assert_code(0);
    let json = outcome.json();
    assert_eq!(json["delivered"], 1_000);
    assert_eq!(json["emulator"]["pipelines"], 1_000);
    assert_eq!(
        json["emulator"]["classes"]["pipelines"]["requests"],
        json["requests"]
    );
}

#[test]
fn the_pipelines_limiter_learns_a_lower_limit_from_429s_and_everything_arrives_once() {
    let emu = Emulator::start(Config::default().pipelines_limit(20)).unwrap();
    let dir = ScratchDir::new("learning");
    let input = dir.join("calls.ndjson");
    let good = write_pipelines_calls(&input, 80, None);
    let outcome = import(&emu, &input)
        .api("pipelines")
        .mode("single")
        .rate(40)
        .json()
        .run();
    outcome.assert_code(0);
    let json = outcome.json();
    let snapshot = emu.snapshot();
    assert!(snapshot.classes["pipelines"].throttled > 0, "{json}");
    assert_eq!(json["throttled"], snapshot.throttled);
    let in_force = json["rate"]["in_force"].as_f64().unwrap();
    assert!((10.0..=20.0).contains(&in_force), "learned: {json}");
    assert_eq!(json["rate"]["changes"][0]["from"], 40.0);
    let stored: Vec<String> = message_ids(&snapshot).into_keys().collect();
    assert_eq!(stored, good);
    assert_eq!(snapshot.pipelines.len(), 80, "a 429 stores nothing");
}

#[test]
fn two_pipelines_imports_sharing_a_redis_budget_stay_within_it_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().pipelines_limit(0)).unwrap();
    let dir = ScratchDir::new("redis");
    let url = redis.url();
    let imports: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let input = dir.join(format!("{name}.ndjson"));
            write_lines(
                &input,
                (1..=80).map(|n| format!(r#"{{"type":"identify","userId":"{name}{n}"}}"#)),
            );
            import(&emu, &input)
                .api("pipelines")
                .mode("single")
                .rate(40)
                .burst(4)
                .redis_url(&url)
                .spawn()
        })
        .collect();
    for mut import in imports {
        assert!(import.wait().unwrap().success());
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.pipelines.len(), 160, "everything arrived");
    // One Pipelines budget of 40/s burst 4 for both: at most 44 in any second.
    let pipelines = &snapshot.classes["pipelines"];
    assert!(pipelines.max_in_window <= 44, "{pipelines:?}");
    assert!(
        pipelines.max_in_window >= 30,
        "both were sending: {pipelines:?}"
    );
}

#[test]
fn a_pipelines_dry_run_needs_no_key_checks_every_call_and_sends_nothing() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("dry-run");
    let input = dir.join("calls.ndjson");
    // Every 5th line is a track without its event: refused before sending.
    write_pipelines_calls(&input, 20, Some(5));
    let dead_letter = dir.join("dead.ndjson");
    let outcome = cio_ratelimit(&[
        "import",
        input.to_str().unwrap(),
        "--api",
        "pipelines",
        "--dry-run",
        "--pipelines-url",
        &emu.url(),
        "--dead-letter",
        dead_letter.to_str().unwrap(),
        "--json",
    ])
    .run();
    outcome.assert_code(1);
    assert_eq!(dead_letter_lines(&dead_letter), [5, 10, 15, 20]);
    assert_eq!(outcome.json()["requests"], 0);
    assert_eq!(emu.snapshot().requests, 0, "a dry run sends nothing");
}
