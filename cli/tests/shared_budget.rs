//! `import --redis-url`, `--adaptive` (the default: learning the
//! workspace's limit) and `--fixed-rate`: several processes, one workspace
//! budget.

mod command;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, Emulator};
use cio_test_kit::{RedisServer, ScratchDir, write_lines};
use serde_json::json;

use command::{finish_within, import};

/// `n` identifies of people `{prefix}0..n`.
fn write_identifies(path: &Path, prefix: &str, n: u32) {
    write_lines(
        path,
        (0..n).map(|i| {
            json!({"type": "person", "action": "identify", "identifiers": {"id": format!("{prefix}{i}")}})
        }),
    );
}

#[test]
fn two_imports_sharing_a_redis_learn_the_limit_once_and_both_finish() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(40)).unwrap();
    let dir = ScratchDir::new("redis-learn");
    let url = redis.url();
    let outcomes: Vec<_> = thread::scope(|scope| {
        let imports: Vec<_> = ["a", "b"]
            .iter()
            .map(|name| {
                let input = dir.join(format!("{name}.ndjson"));
                write_identifies(&input, name, 80);
                let (url, emu) = (&url, &emu);
                scope.spawn(move || {
                    import(emu, &input)
                        .mode("single")
                        .rate(80)
                        .redis_url(url)
                        .json()
                        .run()
                })
            })
            .collect();
        imports.into_iter().map(|i| i.join().unwrap()).collect()
    });
    for outcome in &outcomes {
        outcome.assert_code(0);
    }
    let snapshot = emu.snapshot();
    println!(
        "two imports at 80/s sharing Redis against 40/s: {} × 429 in {} requests",
        snapshot.throttled, snapshot.requests
    );
    assert_eq!(snapshot.people.len(), 160, "both finished, nothing lost");
    // Together at 80/s against 40/s: without learning, dozens of 429s.
    assert!(
        snapshot.throttled <= 6,
        "{} × 429 for both together",
        snapshot.throttled
    );
    for outcome in &outcomes {
        let json = outcome.json();
        let in_force = json["rate"]["in_force"].as_f64().unwrap();
        assert!((20.0..40.0).contains(&in_force), "learned: {json}");
        let first = &json["rate"]["changes"][0];
        assert_eq!(first["from"], 80.0, "{json}");
        assert!(first["throttled_at"].as_f64().unwrap() <= 42.0, "{json}");
    }
}

#[test]
fn an_adaptive_import_backs_off_under_a_lower_limit_and_delivers_everything() {
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = ScratchDir::new("adaptive");
    let input = dir.join("input.ndjson");
    write_identifies(&input, "p", 120);
    let outcome = import(&emu, &input)
        .mode("single")
        .rate(40)
        .arg("--adaptive")
        .json()
        .run();
    outcome.assert_code(0);
    let json = outcome.json();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 120);
    assert!(
        json["throttled"].as_u64().unwrap() > 0,
        "the server's limit was found: {json}"
    );
    assert_eq!(json["throttled"], snapshot.throttled);
    // The rate it learned, and how: at most what the server accepted.
    let in_force = json["rate"]["in_force"].as_f64().unwrap();
    assert!((10.0..=20.0).contains(&in_force), "{json}");
    let first = &json["rate"]["changes"][0];
    assert_eq!(first["from"], 40.0);
    assert!(first["throttled_at"].as_f64().unwrap() <= 21.0, "{json}");
    let text = first["text"].as_str().unwrap();
    assert!(text.starts_with("throttled at "), "{text}");
    // Each change was shown as it happened.
    assert!(
        outcome.stderr.contains(&format!("rate: {text}")),
        "{}",
        outcome.stderr
    );
}

/// `--fixed-rate` alone and with `--redis-url`, side by side (each against
/// a 20/s workspace of its own, at 40/s): the 429s pause it, and its rate
/// stays 40/s, changed never and shown never. Without redis-server and with
/// `CIO_SKIP_REDIS=1`, the import alone.
#[test]
fn a_fixed_rate_import_keeps_its_rate_and_still_pauses_on_429s_alone_or_sharing_a_redis() {
    let redis = RedisServer::start();
    let dir = ScratchDir::new("fixed");
    let input = dir.join("input.ndjson");
    write_identifies(&input, "p", 50);
    thread::scope(|scope| {
        let alone = scope.spawn(|| {
            let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
            let import = import(&emu, &input).mode("single").rate(40);
            (import.fixed_rate().json().run(), emu.snapshot())
        });
        let shared = redis.as_ref().map(|redis| {
            scope.spawn(|| {
                let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
                let import = import(&emu, &input).mode("single").rate(40);
                let import = import.redis_url(&redis.url());
                (import.fixed_rate().json().run(), emu.snapshot())
            })
        });
        for (outcome, snapshot) in [Some(alone), shared]
            .into_iter()
            .flatten()
            .map(|import| import.join().unwrap())
        {
            outcome.assert_code(0);
            let json = outcome.json();
            assert_eq!(snapshot.people.len(), 50);
            assert!(json["throttled"].as_u64().unwrap() > 0, "{json}");
            assert_eq!(json["rate"]["in_force"], 40.0);
            assert_eq!(json["rate"]["changes"], json!([]));
            assert!(!outcome.stderr.contains("rate: "), "{}", outcome.stderr);
        }
    });
}

#[test]
fn an_import_shares_a_tls_redis_trusting_a_private_ca() {
    let dir = ScratchDir::new("tls");
    let Some(redis) = RedisServer::with_tls() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let input = dir.join("people.ndjson");
    write_identifies(&input, "tls", 20);
    let ca = redis.ca().unwrap();
    let url = redis.url();
    let import = || import(&emu, &input).mode("single").redis_url(&url);
    let outcome = import().arg("--redis-ca").arg(ca).run();
    outcome.assert_code(0);
    assert_eq!(emu.snapshot().people.len(), 20);

    // The system's roots do not know the private CA: a setting to fix, at
    // once, whatever the wait (issue 24: it used to wait for it).
    let outcome = finish_within(import().spawn(), Duration::from_secs(10));
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("rediss://127.0.0.1") && outcome.stderr.contains("--redis-ca"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.elapsed < Duration::from_secs(3), "{outcome:?}");
    let missing = dir.join("no-such-ca.pem");
    let outcome = import().arg("--redis-ca").arg(&missing).run();
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("--redis-ca"), "{}", outcome.stderr);
    assert_eq!(emu.snapshot().people.len(), 20, "nothing more arrived");
}

#[test]
fn imports_at_another_rate_on_the_same_key_are_refused_unless_they_adopt_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("settings");
    let url = redis.url();
    let import = |name: &str, rate: u32, lines: u32, adopt: bool| {
        let input = dir.join(format!("{name}.ndjson"));
        write_identifies(&input, name, lines);
        let import = import(&emu, &input)
            .mode("single")
            .rate(rate)
            .redis_url(&url);
        if adopt {
            import.arg("--redis-adopt")
        } else {
            import
        }
    };
    // The first shares the key at 40/s for a while.
    let first = import("first", 40, 200, false).spawn();
    let start = Instant::now();
    while emu.snapshot().people.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the first is sending"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let refused = import("second", 20, 10, false).run();
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("rate=40/s burst=4")
            && refused.stderr.contains("rate=20/s burst=2"),
        "names both: {}",
        refused.stderr
    );
    assert!(
        emu.snapshot()
            .people
            .keys()
            .all(|id| id.starts_with("first")),
        "the refused import sent nothing"
    );
    import("third", 20, 10, true).run().assert_code(0);
    assert!(emu.snapshot().people.contains_key("third9"));
    finish_within(first, Duration::from_secs(30)).assert_code(0);

    // Issue 24: once every sharer has exited, another rate is accepted at
    // once (the settings used to outlive them by a minute).
    import("fourth", 20, 10, false).run().assert_code(0);
    assert!(emu.snapshot().people.contains_key("fourth9"));
}

/// Issue 24: a Redis URL that can never work (a wrong password, a
/// database Redis does not have) waited forever; it is a setting to fix.
#[test]
fn a_redis_url_that_can_never_work_exits_2_at_once_naming_it() {
    let Some(redis) = RedisServer::with_password("s3cret-redis-pw") else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("refused");
    let input = dir.join("people.ndjson");
    write_identifies(&input, "p", 10);
    let port = redis.port();
    for url in [
        format!("redis://:not-the-s3cret@127.0.0.1:{port}/0"),
        format!("redis://127.0.0.1:{port}/0"),
        format!("redis://:s3cret-redis-pw@127.0.0.1:{port}/99"),
    ] {
        let import = import(&emu, &input).redis_url(&url);
        let outcome = finish_within(import.spawn(), Duration::from_secs(20));
        println!("{url}: exit {} after {:?}", outcome.code, outcome.elapsed);
        outcome.assert_code(2);
        assert!(outcome.elapsed < Duration::from_secs(3), "{outcome:?}");
        assert!(outcome.stderr.contains("--redis-url"), "{}", outcome.stderr);
        assert!(
            !outcome.stderr.contains("s3cret"),
            "no password shown: {}",
            outcome.stderr
        );
    }
    assert_eq!(emu.snapshot().requests, 0, "nothing was sent");
}

/// Issue 24: `--redis-wait 2` stopped after 19.6 s, retrying with warnings
/// that blamed Customer.io's connection.
#[test]
fn redis_wait_means_that_many_seconds_and_the_warnings_name_redis() {
    let Some(redis) = RedisServer::not_started(None) else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("redis-wait-seconds");
    let input = dir.join("people.ndjson");
    write_identifies(&input, "p", 20);
    let url = redis.url();
    let import = import(&emu, &input)
        .mode("single")
        .redis_url(&url)
        .args(["--redis-wait", "2"]);
    let outcome = finish_within(import.spawn(), Duration::from_secs(30));
    println!(
        "--redis-wait 2: exit {} after {:?}",
        outcome.code, outcome.elapsed
    );
    outcome.assert_code(3);
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&outcome.elapsed),
        "{outcome:?}"
    );
    assert!(outcome.stderr.contains("Redis"), "{}", outcome.stderr);
    assert!(
        !outcome.stderr.contains("connection refused"),
        "nothing blames Customer.io: {}",
        outcome.stderr
    );
    assert_eq!(emu.snapshot().requests, 0);
}

/// Issue 24: while Redis was away, the first SIGTERM or Ctrl-C was ignored
/// (the import's requests waited for Redis, whatever the stop).
#[test]
fn a_signal_ends_a_wait_for_redis_within_a_second() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("redis-signal");
    let input = dir.join("people.ndjson");
    write_identifies(&input, "p", 400);
    let url = redis.url();
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let checkpoint = dir.join(format!("checkpoint-{signal}"));
        let before = emu.snapshot().requests;
        let mut child = import(&emu, &input)
            .mode("single")
            .rate(20)
            .redis_url(&url)
            .checkpoint(&checkpoint)
            .spawn();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let (said, saying) = mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = said.send(std::mem::take(&mut line));
            }
        });
        // It is sending; then Redis goes away, and once it says so, its
        // requests wait for Redis.
        let start = Instant::now();
        while emu.snapshot().requests < before + 5 {
            assert!(start.elapsed() < Duration::from_secs(10), "it is sending");
            thread::sleep(Duration::from_millis(10));
        }
        redis.stop();
        let mut seen = String::new();
        while !seen.contains("unreachable") {
            seen.push_str(&saying.recv_timeout(Duration::from_secs(10)).unwrap());
        }
        let killed = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let asked = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if asked.elapsed() > Duration::from_secs(10) {
                child.kill().unwrap();
                panic!("SIG{signal} ignored while waiting for Redis: {seen}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let took = asked.elapsed();
        // The reader ends with the process.
        while let Ok(line) = saying.recv_timeout(Duration::from_secs(5)) {
            seen.push_str(&line);
        }
        println!("SIG{signal} while waiting for Redis: exit after {took:?}");
        assert_eq!(status.code(), Some(code), "{seen}");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert!(seen.contains(&format!("stopped by SIG{signal}")), "{seen}");
        redis.restart();
    }
}

/// One budget for two processes: at most the rate in any second at the
/// server, with the budget used, while both were sending. Issue 24: `--rate
/// 90 --burst 30 --redis-url` put 120 requests into one second.
#[test]
fn imports_sharing_a_redis_never_put_more_than_the_rate_into_a_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("redis-burst");
    let url = redis.url();
    let imports: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let input = dir.join(format!("{name}.ndjson"));
            write_identifies(&input, name, 150);
            import(&emu, &input)
                .mode("single")
                .rate(90)
                .burst(30)
                .redis_url(&url)
                .spawn()
        })
        .collect();
    for import in imports {
        finish_within(import, Duration::from_secs(30)).assert_code(0);
    }
    let snapshot = emu.snapshot();
    let track = &snapshot.classes["track"];
    println!(
        "--rate 90 --burst 30, two imports through Redis: busiest 1 s window at the server {}",
        track.max_in_window
    );
    assert_eq!(snapshot.people.len(), 300);
    assert!(track.max_in_window <= 90, "{track:?}");
    assert!(track.max_in_window >= 80, "the budget was used: {track:?}");
    // Both were sending at the same time: the emulator numbers people (hex
    // cio_ids) in the order they arrived, and each import's arrivals fall in
    // large part while the other's were arriving too.
    let arrived = |prefix: char| -> Vec<u64> {
        snapshot
            .people
            .iter()
            .filter(|(id, _)| id.starts_with(prefix))
            .map(|(_, person)| u64::from_str_radix(&person.cio_id[1..], 16).unwrap())
            .collect()
    };
    let (a, b) = (arrived('a'), arrived('b'));
    let span = |order: &[u64]| (*order.iter().min().unwrap(), *order.iter().max().unwrap());
    let ((a_first, a_last), (b_first, b_last)) = (span(&a), span(&b));
    let (from, to) = (a_first.max(b_first), a_last.min(b_last));
    let during = |order: &[u64]| order.iter().filter(|n| (from..=to).contains(*n)).count();
    assert!(
        from < to && during(&a) >= 50 && during(&b) >= 50,
        "the imports overlapped for {} of a's and {} of b's 150 (arrivals {from}..={to})",
        during(&a),
        during(&b)
    );
}

/// Issue 24: at `--rate` equal to the workspace's limit, imports sharing a
/// Redis drew 9 × 429 and ran at about half the limit.
#[test]
fn imports_sharing_a_redis_at_the_workspace_limit_run_at_it_without_429s() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(100)).unwrap();
    let dir = ScratchDir::new("redis-at-limit");
    let url = redis.url();
    let per_import = 400;
    let imports: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let input = dir.join(format!("{name}.ndjson"));
            write_identifies(&input, name, per_import);
            import(&emu, &input)
                .mode("single")
                .rate(100)
                .redis_url(&url)
                .spawn()
        })
        .collect();
    // Timed from the first arrival: the processes' start-up is not the rate.
    let start = Instant::now();
    while emu.snapshot().requests == 0 {
        assert!(start.elapsed() < Duration::from_secs(10), "nothing arrived");
        thread::sleep(Duration::from_millis(2));
    }
    let first = Instant::now();
    for import in imports {
        finish_within(import, Duration::from_secs(60)).assert_code(0);
    }
    let elapsed = first.elapsed().as_secs_f64();
    let snapshot = emu.snapshot();
    let admitted = snapshot.classes["track"].admitted;
    let rate = admitted as f64 / elapsed;
    println!(
        "two imports at --rate 100 through Redis against 100/s: {} × 429, {admitted} admitted \
         in {elapsed:.2} s: {rate:.1}/s ({rate:.1} % of the limit)",
        snapshot.throttled
    );
    assert_eq!(snapshot.people.len(), 2 * per_import as usize);
    assert!(snapshot.throttled <= 3, "{} × 429", snapshot.throttled);
    assert!(rate >= 95.0, "{rate:.1}/s");
}

#[test]
fn redis_wait_stops_an_import_with_exit_3_and_its_checkpoint_to_resume_from() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("redis-wait");
    let input = dir.join("people.ndjson");
    write_identifies(&input, "p", 300);
    let checkpoint = dir.join("checkpoint");
    let url = redis.url();
    let import_file = || {
        import(&emu, &input)
            .mode("single")
            .rate(100)
            .redis_url(&url)
            .args(["--redis-wait", "0.5"])
            .max_retries(1)
            .checkpoint(&checkpoint)
    };
    let import = import_file().spawn();
    let start = std::time::Instant::now();
    while emu.snapshot().people.len() < 50 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the import is sending"
        );
        thread::sleep(Duration::from_millis(10));
    }
    redis.stop();
    let output = import.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("unreachable") && stderr.contains("--resume"),
        "{stderr}"
    );
    let arrived = emu.snapshot().people.len();
    assert!(arrived < 300, "stopped before the end: {arrived}");
    let stored = fs::read_to_string(&checkpoint).expect("the checkpoint is written");
    assert!(stored.contains("\"line\""), "{stored}");

    redis.restart();
    let resumed = import_file().resume().run();
    resumed.assert_code(0);
    assert_eq!(
        emu.snapshot().people.len(),
        300,
        "everything arrived after the resume"
    );
}
