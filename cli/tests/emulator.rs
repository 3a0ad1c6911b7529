//! `--emulator` (a call against an emulator started for it, then what it
//! received) and `cio-ratelimit emulator` (one in the foreground).

mod command;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use cio_emulator::{DEFAULT_API_KEY, DEFAULT_SITE_ID};

use command::{against_url, cio_ratelimit};

#[test]
fn emulator_runs_the_call_without_credentials_and_prints_what_arrived() {
    let outcome = cio_ratelimit(&[
        "identify",
        "42",
        "--attributes",
        r#"{"plan":"pro"}"#,
        "--emulator",
    ])
    .run();
    outcome.assert_code(0);
    assert_eq!(
        outcome.stdout,
        "identified id=42\nemulator received 1 request (200 ×1)\n  person 42: {\"plan\":\"pro\"}\n"
    );
}

#[test]
fn emulator_json_carries_what_arrived() {
    let outcome = cio_ratelimit(&[
        "send-email",
        "--message-id",
        "7",
        "--to",
        "ada@example.com",
        "--person-email",
        "ada@example.com",
        "--emulator",
        "--json",
    ])
    .run();
    outcome.assert_code(0);
    let json = outcome.json();
    assert_eq!(json["ok"], true);
    assert_eq!(
        json["delivery_id"],
        json["emulator"]["sends"][0]["delivery_id"]
    );
    assert_eq!(json["emulator"]["requests"], 1);
    assert_eq!(
        json["emulator"]["sends"][0]["body"]["to"],
        "ada@example.com"
    );
}

#[test]
fn emulator_shows_that_refused_input_sent_nothing() {
    let outcome = cio_ratelimit(&["track", "42", "", "--emulator"]).run();
    outcome.assert_code(2);
    assert_eq!(outcome.stdout, "emulator received 0 requests\n");
    assert!(
        outcome.stderr.starts_with("cio-ratelimit: not sent: "),
        "{outcome:?}"
    );
}

/// Kills the foreground emulator when dropped, so a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_emulator_subcommand_serves_with_its_own_flags() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cio-ratelimit"))
        .args([
            "emulator",
            "--site-id",
            "s",
            "--api-key",
            "k",
            "--port",
            "0",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _running = Running(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url).unwrap();
    let url = url.trim_end();
    assert!(url.starts_with("http://127.0.0.1:"), "{url:?}");

    // Its credentials are the ones passed through, not the defaults.
    against_url(url, &["identify", "42"])
        .env("CUSTOMERIO_SITE_ID", "s")
        .env("CUSTOMERIO_TRACK_API_KEY", "k")
        .run()
        .assert_code(0);
    against_url(url, &["identify", "42"])
        .env("CUSTOMERIO_SITE_ID", DEFAULT_SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", DEFAULT_API_KEY)
        .run()
        .assert_code(2);
}

#[test]
fn the_emulator_subcommand_passes_help_and_exit_codes_through() {
    let help = cio_ratelimit(&["emulator", "--help"]).run();
    help.assert_code(0);
    assert!(help.stdout.contains("--track-limit"), "{help:?}");
    cio_ratelimit(&["emulator", "--no-such-flag"])
        .run()
        .assert_code(2);
}
