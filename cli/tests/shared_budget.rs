//! `import --redis-url`, `--adaptive` (the default: learning the
//! workspace's limit) and `--fixed-rate`: several processes, one workspace
//! budget.

mod command;

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use cio_emulator::{Config, Emulator};
use cio_test_redis::RedisServer;
use serde_json::json;

use command::against;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cio-cli-shared-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` identifies of people `{prefix}0..n`.
fn write_input(path: &Path, prefix: &str, n: u32) {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type": "person", "action": "identify", "identifiers": {"id": format!("{prefix}{i}")}})
            )
        })
        .collect();
    fs::write(path, text).unwrap();
}

#[test]
fn two_imports_sharing_a_redis_budget_stay_within_it_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = scratch("redis");
    let url = redis.url();
    let imports: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let input = dir.join(format!("{name}.ndjson"));
            write_input(&input, name, 120);
            let args = [
                "import",
                input.to_str().unwrap(),
                "--mode",
                "single",
                "--rate",
                "40",
                "--burst",
                "4",
                "--redis-url",
                &url,
            ];
            against(&emu, &args).spawn()
        })
        .collect();
    for mut import in imports {
        assert!(import.wait().unwrap().success());
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 240, "everything arrived");
    // One budget of 40/s burst 4 for both: at most 44 in any second (80 apart).
    let track = &snapshot.classes["track"];
    assert!(track.max_in_window <= 44, "{track:?}");
    assert!(track.max_in_window >= 30, "both were sending: {track:?}");
}

#[test]
fn two_imports_sharing_a_redis_learn_the_limit_once_and_both_finish() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(40)).unwrap();
    let dir = scratch("redis-learn");
    let url = redis.url();
    let outcomes: Vec<_> = thread::scope(|scope| {
        let imports: Vec<_> = ["a", "b"]
            .iter()
            .map(|name| {
                let input = dir.join(format!("{name}.ndjson"));
                write_input(&input, name, 80);
                let (url, emu) = (&url, &emu);
                scope.spawn(move || {
                    let args = [
                        "import",
                        input.to_str().unwrap(),
                        "--mode",
                        "single",
                        "--rate",
                        "80",
                        "--redis-url",
                        url,
                        "--json",
                    ];
                    against(emu, &args).run()
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
fn a_fixed_rate_import_sharing_a_redis_keeps_its_rate() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = scratch("redis-fixed");
    let input = dir.join("input.ndjson");
    write_input(&input, "p", 40);
    let url = redis.url();
    let args = [
        "import",
        input.to_str().unwrap(),
        "--mode",
        "single",
        "--rate",
        "40",
        "--redis-url",
        &url,
        "--fixed-rate",
        "--json",
    ];
    let outcome = against(&emu, &args).run();
    outcome.assert_code(0);
    let json = outcome.json();
    assert_eq!(emu.snapshot().people.len(), 40);
    assert!(json["throttled"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["rate"]["in_force"], 40.0);
    assert_eq!(json["rate"]["changes"], json!([]));
}

#[test]
fn an_adaptive_import_backs_off_under_a_lower_limit_and_delivers_everything() {
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = scratch("adaptive");
    let input = dir.join("input.ndjson");
    write_input(&input, "p", 120);
    let outcome = against(
        &emu,
        &[
            "import",
            input.to_str().unwrap(),
            "--mode",
            "single",
            "--rate",
            "40",
            "--adaptive",
            "--json",
        ],
    )
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

#[test]
fn a_fixed_rate_import_keeps_its_rate_and_still_pauses_on_429s() {
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = scratch("fixed");
    let input = dir.join("input.ndjson");
    write_input(&input, "p", 50);
    let args = [
        "import",
        input.to_str().unwrap(),
        "--mode",
        "single",
        "--rate",
        "40",
        "--fixed-rate",
        "--json",
    ];
    let outcome = against(&emu, &args).run();
    outcome.assert_code(0);
    let json = outcome.json();
    assert_eq!(emu.snapshot().people.len(), 50);
    assert!(json["throttled"].as_u64().unwrap() > 0, "{json}");
    assert_eq!(json["rate"]["in_force"], 40.0);
    assert_eq!(json["rate"]["changes"], json!([]));
    assert!(!outcome.stderr.contains("rate: "), "{}", outcome.stderr);
}

#[test]
fn an_import_shares_a_tls_redis_trusting_a_private_ca() {
    let dir = scratch("tls");
    let Some(redis) = RedisServer::with_tls() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let input = dir.join("people.ndjson");
    write_input(&input, "tls", 20);
    let ca = redis.ca().unwrap();
    let url = redis.url();
    let args = [
        "import",
        input.to_str().unwrap(),
        "--mode",
        "single",
        "--redis-url",
        &url,
    ];
    let outcome = against(
        &emu,
        &[&args[..], &["--redis-ca", ca.to_str().unwrap()]].concat(),
    )
    .run();
    outcome.assert_code(0);
    assert_eq!(emu.snapshot().people.len(), 20);

    // The system's roots do not know the private CA: nothing is sent, and
    // --redis-wait ends the wait.
    let outcome = against(
        &emu,
        &[&args[..], &["--redis-wait", "0.5", "--max-retries", "0"]].concat(),
    )
    .run();
    outcome.assert_code(3);
    assert!(
        outcome.stderr.contains("rediss://127.0.0.1"),
        "{}",
        outcome.stderr
    );
    let missing = dir.join("no-such-ca.pem");
    let outcome = against(
        &emu,
        &[&args[..], &["--redis-ca", missing.to_str().unwrap()]].concat(),
    )
    .run();
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
    let dir = scratch("settings");
    let url = redis.url();
    let import = |name: &str, rate: &str, adopt: bool| {
        let input = dir.join(format!("{name}.ndjson"));
        write_input(&input, name, 10);
        let mut args = vec![
            "import",
            input.to_str().unwrap(),
            "--rate",
            rate,
            "--redis-url",
            &url,
        ];
        if adopt {
            args.push("--redis-adopt");
        }
        against(&emu, &args).run()
    };
    import("first", "40", false).assert_code(0);
    let refused = import("second", "20", false);
    refused.assert_code(2);
    assert!(
        refused.stderr.contains("rate=40/s burst=4")
            && refused.stderr.contains("rate=20/s burst=2"),
        "names both: {}",
        refused.stderr
    );
    assert_eq!(
        emu.snapshot().people.len(),
        10,
        "the refused import sent nothing"
    );
    import("third", "20", true).assert_code(0);
    assert_eq!(emu.snapshot().people.len(), 20);
}

#[test]
fn redis_wait_stops_an_import_with_exit_3_and_its_checkpoint_to_resume_from() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = scratch("redis-wait");
    let input = dir.join("people.ndjson");
    write_input(&input, "p", 300);
    let checkpoint = dir.join("checkpoint");
    let url = redis.url();
    let args = [
        "import",
        input.to_str().unwrap(),
        "--mode",
        "single",
        "--rate",
        "100",
        "--redis-url",
        &url,
        "--redis-wait",
        "0.5",
        "--max-retries",
        "1",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ];
    let import = against(&emu, &args).spawn();
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
    let resumed = against(&emu, &[&args[..], &["--resume"]].concat()).run();
    resumed.assert_code(0);
    assert_eq!(
        emu.snapshot().people.len(),
        300,
        "everything arrived after the resume"
    );
}
