//! Credentials from flags, files and the environment; what happens without
//! them or with wrong ones; and that a key is never printed, anywhere.

mod command;

use std::time::Duration;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_SITE_ID, Emulator};
use cio_test_kit::ScratchDir;

use command::{against, assert_no_piece_of, base64, cio_ratelimit};

/// A key distinctive enough that finding any 8 characters of it in output
/// means it leaked.
const FAKE_KEY: &str = "fake-key-7c1e9d42b8a6f03e";

fn emulator() -> Emulator {
    Emulator::start(Config::default()).unwrap()
}

/// A file `key` holding `contents`, in `dir`.
fn key_file(dir: &ScratchDir, contents: &str) -> std::path::PathBuf {
    let path = dir.join("key");
    std::fs::write(&path, contents).unwrap();
    path
}

#[test]
fn without_credentials_the_error_says_how_to_set_them_and_mentions_the_emulator() {
    let outcome = cio_ratelimit(&["identify", "42"]).run();
    outcome.assert_code(2);
    for needle in [
        "--site-id",
        "CUSTOMERIO_SITE_ID",
        "CUSTOMERIO_TRACK_API_KEY",
        "--api-key-file",
        "--emulator",
    ] {
        assert!(outcome.stderr.contains(needle), "{needle}: {outcome:?}");
    }
    assert!(outcome.stdout.is_empty());

    let app = cio_ratelimit(&["trigger-broadcast", "9"])
        .env("CUSTOMERIO_SITE_ID", "s")
        .env("CUSTOMERIO_TRACK_API_KEY", "k")
        .run();
    app.assert_code(2);
    for needle in ["CUSTOMERIO_APP_API_KEY", "--app-key-file", "--emulator"] {
        assert!(app.stderr.contains(needle), "{needle}: {app:?}");
    }
}

#[test]
fn flags_and_key_files_work_without_the_environment() {
    let emulator = emulator();
    let url = emulator.url();
    let dir = ScratchDir::new("track");
    let key_file = key_file(&dir, &format!("{DEFAULT_API_KEY}\n"));
    cio_ratelimit(&[
        "identify",
        "42",
        "--site-id",
        DEFAULT_SITE_ID,
        "--api-key-file",
        key_file.to_str().unwrap(),
        "--track-url",
        &url,
    ])
    .run()
    .assert_code(0);
    cio_ratelimit(&[
        "suppress",
        "42",
        "--site-id",
        DEFAULT_SITE_ID,
        "--api-key",
        DEFAULT_API_KEY,
        "--track-url",
        &url,
    ])
    .run()
    .assert_code(0);
    assert!(emulator.snapshot().people["42"].suppressed);
    std::fs::remove_dir_all(key_file.parent().unwrap()).unwrap();
}

#[test]
fn app_calls_need_only_the_app_key() {
    let emulator = emulator();
    let dir = ScratchDir::new("app");
    let key_file = key_file(&dir, DEFAULT_APP_KEY);
    cio_ratelimit(&[
        "send-email",
        "--message-id",
        "7",
        "--to",
        "a@b.c",
        "--person-id",
        "1",
        "--app-key-file",
        key_file.to_str().unwrap(),
        "--app-url",
        &emulator.url(),
    ])
    .run()
    .assert_code(0);
    assert_eq!(emulator.snapshot().sends.len(), 1);
    std::fs::remove_dir_all(key_file.parent().unwrap()).unwrap();
}

#[test]
fn a_missing_or_empty_key_file_is_fatal_and_says_which() {
    let dir = ScratchDir::new("empty");
    let empty = key_file(&dir, " \n");
    let outcome = cio_ratelimit(&[
        "delete",
        "42",
        "--site-id",
        "s",
        "--api-key-file",
        empty.to_str().unwrap(),
    ])
    .run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("--api-key-file") && outcome.stderr.contains("empty"),
        "{outcome:?}"
    );
    std::fs::remove_dir_all(empty.parent().unwrap()).unwrap();
    let outcome = cio_ratelimit(&[
        "delete",
        "42",
        "--site-id",
        "s",
        "--api-key-file",
        "/nonexistent/cio-key",
    ])
    .run();
    outcome.assert_code(2);
    assert!(
        outcome
            .stderr
            .contains("cannot read --api-key-file /nonexistent/cio-key"),
        "{outcome:?}"
    );
}

#[test]
fn a_wrong_track_key_fails_at_once_naming_the_credential_but_not_showing_it() {
    let emulator = emulator();
    let outcome = against(&emulator, &["identify", "42", "--json", "-vv"])
        .env("CUSTOMERIO_TRACK_API_KEY", FAKE_KEY)
        .run();
    outcome.assert_code(2);
    assert!(
        outcome.elapsed < Duration::from_secs(5),
        "a 401 is never retried: {outcome:?}"
    );
    assert!(
        outcome.stderr.contains("Track API site id and API key"),
        "{outcome:?}"
    );
    assert_eq!(outcome.json()["error"]["exit_code"], 2);
    let snapshot = emulator.snapshot();
    assert_eq!(
        (snapshot.requests, snapshot.status_count(401)),
        (1, 1),
        "one attempt, refused, not retried"
    );
    let basic = base64(format!("{DEFAULT_SITE_ID}:{FAKE_KEY}").as_bytes());
    assert_no_piece_of(FAKE_KEY, &outcome.all_output());
    assert_no_piece_of(&basic, &outcome.all_output());
}

#[test]
fn a_wrong_app_key_is_named_as_the_app_key() {
    let emulator = emulator();
    let outcome = against(&emulator, &["trigger-broadcast", "9"])
        .env("CUSTOMERIO_APP_API_KEY", FAKE_KEY)
        .run();
    outcome.assert_code(2);
    assert!(outcome.stderr.contains("App API key"), "{outcome:?}");
    assert_no_piece_of(FAKE_KEY, &outcome.all_output());
}

#[test]
fn keys_stay_out_of_the_most_verbose_logs() {
    // At trace level ureq-proto dumps every byte it sends, Authorization
    // header included; the CLI's logger drops those lines.
    let emulator = emulator();
    for key in [DEFAULT_API_KEY, FAKE_KEY] {
        let outcome = against(&emulator, &["identify", "42", "-vvv"])
            .env("CUSTOMERIO_TRACK_API_KEY", key)
            .env("RUST_LOG", "trace")
            .run();
        assert!(outcome.stderr.contains("trace:"), "{outcome:?}");
        let basic = base64(format!("{DEFAULT_SITE_ID}:{key}").as_bytes());
        assert_no_piece_of(key, &outcome.all_output());
        assert_no_piece_of(&basic, &outcome.all_output());
        assert!(
            !outcome.stderr.to_ascii_lowercase().contains("authoriz"),
            "{outcome:?}"
        );
    }
}

#[test]
fn usage_errors_do_not_echo_a_key() {
    let outcome = cio_ratelimit(&[
        "delete",
        "42",
        "--api-key",
        FAKE_KEY,
        "--api-key-file",
        "/tmp/key",
    ])
    .run();
    outcome.assert_code(2);
    assert_no_piece_of(FAKE_KEY, &outcome.all_output());
}

/// Regression: `--track-url https://u:pw@host` showed `pw` on standard error and in `--json`.
#[test]
fn a_password_inside_a_url_is_not_shown() {
    const PASSWORD: &str = "url-pa55word-secret";
    for flag in ["--track-url", "--app-url"] {
        let url = format!("https://user:{PASSWORD}@proxy.example.com");
        for json in [false, true] {
            let mut args = vec![
                "delete",
                "1",
                "--site-id",
                "s",
                "--api-key",
                "k",
                flag,
                &url,
                "-vv",
            ];
            if json {
                args.push("--json");
            }
            let outcome = cio_ratelimit(&args).run();
            outcome.assert_code(2);
            assert!(
                outcome.all_output().contains("***@proxy.example.com"),
                "{outcome:?}"
            );
            assert_no_piece_of(PASSWORD, &outcome.all_output());
        }
    }
}
