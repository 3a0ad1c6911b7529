//! `cio-ratelimit pipelines ...`, run as a process against an emulator: what arrived, what was
//! printed, credentials, and the exit codes of the other single calls.

mod command;

use cio_emulator::{Config, DEFAULT_PIPELINES_KEY, Emulator, Faults};
use cio_test_kit::ScratchDir;
use serde_json::{Value, json};

use command::{against, cio_ratelimit};

fn emulator() -> Emulator {
    Emulator::start(Config::default()).unwrap()
}

#[test]
fn each_subcommand_sends_its_call_in_strict_mode_with_a_message_id() {
    let emulator = emulator();
    let runs: [&[&str]; 6] = [
        &[
            "pipelines",
            "identify",
            "42",
            "--traits",
            r#"{"plan":"pro"}"#,
        ],
        &[
            "pipelines",
            "track",
            "42",
            "paid",
            "--properties",
            r#"{"total":3}"#,
        ],
        &["pipelines", "page", "v1", "Pricing", "--anonymous"],
        &["pipelines", "screen", "42", "Home"],
        &["pipelines", "group", "42", "acme"],
        &["pipelines", "alias", "42", "v1"],
    ];
    for args in runs {
        against(&emulator, args).run().assert_code(0);
    }
    let snapshot = emulator.snapshot();
    let kinds: Vec<&str> = snapshot.pipelines.iter().map(|c| c.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["identify", "track", "page", "screen", "group", "alias"]
    );
    for call in &snapshot.pipelines {
        assert!(call.strict);
        assert_eq!(call.message_id.as_deref().map(str::len), Some(26));
    }
    assert_eq!(snapshot.pipelines[0].body["traits"]["plan"], "pro");
    assert_eq!(snapshot.pipelines[2].anonymous_id.as_deref(), Some("v1"));
}

#[test]
fn a_message_id_key_makes_running_again_count_once_and_is_printed() {
    let emulator = emulator();
    let args = [
        "pipelines",
        "track",
        "42",
        "paid",
        "--id-key",
        "order-7",
        "--json",
    ];
    let first = against(&emulator, &args).run();
    first.assert_code(0);
    against(&emulator, &args).run().assert_code(0);
    let printed: Value = serde_json::from_str(&first.stdout).unwrap();
    assert_eq!(printed["ok"], true);
    assert_eq!(printed["command"], "pipelines");
    let message_id = printed["pipelines"]["messageId"].as_str().unwrap();
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.pipelines.len(), 1);
    assert_eq!(snapshot.pipelines_duplicates, 1);
    assert_eq!(
        snapshot.pipelines[0].message_id.as_deref(),
        Some(message_id)
    );
}

#[test]
fn a_call_the_server_refuses_in_strict_mode_exits_2_with_its_reason() {
    let emulator = emulator();
    let outcome = against(
        &emulator,
        &["pipelines", "identify", "1", "--timestamp", "yesterday"],
    )
    .run();
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("400"), "{}", outcome.stderr);
    assert!(outcome.stderr.contains("timestamp"), "{}", outcome.stderr);
    assert_eq!(emulator.snapshot().pipelines_dropped, 0);
}

#[test]
fn bad_input_is_refused_before_sending() {
    let emulator = emulator();
    let big = json!({"bio": "x".repeat(33_000)}).to_string();
    for args in [
        vec!["pipelines", "identify", "1", "--traits", "[1]"],
        vec!["pipelines", "identify", "1", "--traits", big.as_str()],
        vec!["pipelines", "group", "1", ""],
    ] {
        let outcome = against(&emulator, &args).run();
        outcome.assert_code(2);
        assert!(
            outcome.stderr.contains("not sent") || outcome.stderr.contains("nothing was sent"),
            "{args:?}: {}",
            outcome.stderr
        );
    }
    assert_eq!(emulator.snapshot().requests, 0);
}

#[test]
fn the_key_comes_from_a_flag_a_file_or_the_environment_and_is_required() {
    let emulator = emulator();
    let url = emulator.url();
    let call = [
        "pipelines",
        "identify",
        "1",
        "--pipelines-url",
        url.as_str(),
    ];
    let missing = cio_ratelimit(&call).run();
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("CUSTOMERIO_PIPELINES_API_KEY"),
        "{}",
        missing.stderr
    );
    let dir = ScratchDir::new("pipelines-key");
    let file = dir.join("key");
    std::fs::write(&file, format!("{DEFAULT_PIPELINES_KEY}\n")).unwrap();
    let path = file.to_str().unwrap();
    let with_file: Vec<&str> = call
        .iter()
        .copied()
        .chain(["--pipelines-key-file", path])
        .collect();
    cio_ratelimit(&with_file).run().assert_code(0);
    let with_flag: Vec<&str> = call
        .iter()
        .copied()
        .chain(["--pipelines-key", DEFAULT_PIPELINES_KEY])
        .collect();
    cio_ratelimit(&with_flag).run().assert_code(0);
    cio_ratelimit(&call)
        .env("CUSTOMERIO_PIPELINES_API_KEY", DEFAULT_PIPELINES_KEY)
        .run()
        .assert_code(0);
    std::fs::write(&file, "k".repeat(10_000)).unwrap();
    let too_big = cio_ratelimit(&with_file).run();
    too_big.assert_code(2);
    assert!(too_big.stderr.contains("4096"), "{}", too_big.stderr);
    std::fs::remove_file(&file).unwrap();
    assert_eq!(
        emulator.snapshot().pipelines.len(),
        3,
        "one call per run with a key"
    );
}

#[test]
fn a_wrong_key_exits_2_and_names_the_pipelines_key() {
    let emulator = emulator();
    let outcome = against(&emulator, &["pipelines", "identify", "1"])
        .env("CUSTOMERIO_PIPELINES_API_KEY", "wrong")
        .run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("Pipelines API key"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.stderr.contains("wrong"), "{}", outcome.stderr);
}

#[test]
fn plain_http_to_a_remote_host_is_refused() {
    let outcome = cio_ratelimit(&[
        "pipelines",
        "identify",
        "1",
        "--pipelines-key",
        "k",
        "--pipelines-url",
        "http://cdp.example.com",
    ])
    .run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("pipelines_url"),
        "{}",
        outcome.stderr
    );
}

#[test]
fn unavailable_after_retries_exits_3() {
    let emulator =
        Emulator::start(Config::default().faults(Faults::default().unavailable(1.0))).unwrap();
    let outcome = against(
        &emulator,
        &["pipelines", "track", "1", "e", "--max-retries", "1"],
    )
    .run();
    outcome.assert_code(3);
}

#[test]
fn emulator_mode_needs_no_credentials_and_shows_what_arrived() {
    let outcome = cio_ratelimit(&["pipelines", "track", "42", "signed_up", "--emulator"]).run();
    outcome.assert_code(0);
    assert!(
        outcome
            .stdout
            .starts_with("sent Pipelines track for 42 (messageId "),
        "{}",
        outcome.stdout
    );
    assert!(
        outcome.stdout.contains("pipelines track for 42"),
        "{}",
        outcome.stdout
    );
}
