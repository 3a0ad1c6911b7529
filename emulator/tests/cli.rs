//! The `cio-emulator` binary: URL on the first line, flags, exit codes.

mod client;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use client::{Client, basic};

/// Kills the child when dropped, so that a failing test leaves no server behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cio-emulator"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let running = Running(child);
    let mut first_line = String::new();
    BufReader::new(stdout).read_line(&mut first_line).unwrap();
    (running, first_line.trim_end().to_owned())
}

#[test]
fn prints_its_url_first_and_serves_with_the_given_flags() {
    let (_running, url) = spawn(&[
        "--site-id",
        "s",
        "--api-key",
        "k",
        "--track-limit",
        "2",
        "--retry-after",
        "none",
    ]);
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    let client = Client::with_url(&url);
    let auth = basic("s", "k");
    let statuses: Vec<u16> = (0..3)
        .map(|_| {
            client
                .send("PUT", "/api/v1/customers/1", Some(&auth), "{}")
                .unwrap()
                .status
        })
        .collect();
    assert_eq!(&statuses[..2], [200, 200]);
    // The third is throttled unless a second passed (a very loaded machine).
    let third = client
        .send("PUT", "/api/v1/customers/1", Some(&auth), "{}")
        .unwrap();
    if third.status == 429 {
        assert_eq!(third.retry_after, None);
    }
    let snapshot = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
    assert_eq!(snapshot.json["classes"]["track"]["limit"], 2);
}

#[test]
fn keep_counts_serves_without_keeping_payloads() {
    let (_running, url) = spawn(&["--keep", "counts"]);
    let client = Client::with_url(&url);
    let body = r#"{"plan":"pro"}"#;
    assert_eq!(client.track("PUT", "/api/v1/customers/1", body).status, 200);
    let snapshot = client.send("GET", "/_emulator/snapshot", None, "").unwrap();
    assert_eq!(snapshot.json["people"]["1"]["identify_count"], 1);
    assert_eq!(
        snapshot.json["people"]["1"]["attributes"],
        serde_json::json!({})
    );
    let (_running, url) = spawn(&["--keep", "everything"]);
    assert_eq!(url, "", "refused");
}

#[test]
fn fault_flags_reach_the_server() {
    let (_running, url) = spawn(&["--error-before-store", "1"]);
    let client = Client::with_url(&url);
    assert_eq!(client.track("PUT", "/api/v1/customers/1", "{}").status, 500);
}

#[test]
fn bad_arguments_exit_with_2_and_say_why() {
    for args in [
        &["--drop-connection", "2"][..],
        &["--no-such-flag"],
        &["--retry-after", "sometimes"],
        &["--port", "not-a-port"],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_cio-emulator"))
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        assert!(!output.stderr.is_empty());
    }
}

#[test]
fn help_exits_with_0() {
    let output = Command::new(env!("CARGO_BIN_EXE_cio-emulator"))
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--track-limit",
        "--retry-after",
        "--drop-connection",
        "--latency-ms",
    ] {
        assert!(help.contains(flag), "{flag} missing from:\n{help}");
    }
}

#[test]
fn a_port_in_use_exits_with_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = Command::new(env!("CARGO_BIN_EXE_cio-emulator"))
        .args(["--port", &port])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let message = String::from_utf8(output.stderr).unwrap();
    assert!(message.contains("cannot listen"), "{message}");
}
