//! Runs the real `cio-ratelimit` binary as a process, in an environment
//! without Customer.io credentials or `RUST_LOG` unless a test sets them.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cio_emulator::{
    DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Emulator,
};
use serde_json::Value;

/// A `cio-ratelimit` command line to run.
pub struct Run {
    command: Command,
    stdin: Option<String>,
}

/// How a run ended.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    /// From spawning to exit.
    pub elapsed: Duration,
}

/// `cio-ratelimit ARGS`, with no credentials anywhere.
pub fn cio_ratelimit(args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cio-ratelimit"));
    command.args(args);
    for var in [
        "CUSTOMERIO_SITE_ID",
        "CUSTOMERIO_TRACK_API_KEY",
        "CUSTOMERIO_APP_API_KEY",
        "CUSTOMERIO_PIPELINES_API_KEY",
        "RUST_LOG",
    ] {
        command.env_remove(var);
    }
    Run {
        command,
        stdin: None,
    }
}

/// `cio-ratelimit ARGS --track-url URL --app-url URL --pipelines-url URL`
/// against `emulator`, with its default credentials in the environment.
pub fn against(emulator: &Emulator, args: &[&str]) -> Run {
    against_url(&emulator.url(), args)
}

/// `cio-ratelimit ARGS --track-url URL --app-url URL --pipelines-url URL`,
/// with an emulator's default credentials in the environment.
pub fn against_url(url: &str, args: &[&str]) -> Run {
    let mut run = cio_ratelimit(args);
    run.command
        .args(["--track-url", url, "--app-url", url, "--pipelines-url", url])
        .env("CUSTOMERIO_SITE_ID", DEFAULT_SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", DEFAULT_API_KEY)
        .env("CUSTOMERIO_APP_API_KEY", DEFAULT_APP_KEY)
        .env("CUSTOMERIO_PIPELINES_API_KEY", DEFAULT_PIPELINES_KEY);
    run
}

impl Run {
    /// Sets an environment variable.
    pub fn env(mut self, name: &str, value: &str) -> Run {
        self.command.env(name, value);
        self
    }

    /// Removes an environment variable.
    pub fn env_remove(mut self, name: &str) -> Run {
        self.command.env_remove(name);
        self
    }

    /// Runs it through `sh` with `ulimit -f blocks` and SIGXFSZ ignored: a
    /// write past that size (512- or 1024-byte blocks, as the shell counts)
    /// fails as on a full disk, with no root and no small filesystem.
    // Not every test binary that shares this kit needs it.
    #[allow(dead_code)]
    pub fn with_file_size_limit(self, blocks: u32) -> Run {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "ulimit -f {blocks} && trap '' XFSZ && exec \"$0\" \"$@\""
            ))
            .arg(self.command.get_program())
            .args(self.command.get_args());
        for (name, value) in self.command.get_envs() {
            match value {
                Some(value) => command.env(name, value),
                None => command.env_remove(name),
            };
        }
        Run {
            command,
            stdin: self.stdin,
        }
    }

    /// Runs it in `dir`.
    #[allow(dead_code)]
    pub fn current_dir(mut self, dir: &std::path::Path) -> Run {
        self.command.current_dir(dir);
        self
    }

    /// Feeds `text` to standard input (otherwise it is empty).
    pub fn stdin(mut self, text: &str) -> Run {
        self.stdin = Some(text.to_owned());
        self
    }

    /// Starts it with standard error piped, for a test that watches it run
    /// (and may kill it).
    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cio-ratelimit starts")
    }

    /// Runs to the end.
    pub fn run(mut self) -> Outcome {
        let start = Instant::now();
        let mut child = self
            .command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cio-ratelimit starts");
        let mut stdin = child.stdin.take().unwrap();
        if let Some(text) = &self.stdin {
            stdin.write_all(text.as_bytes()).unwrap();
        }
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        Outcome {
            code: output.status.code().expect("exited, not killed"),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
            elapsed: start.elapsed(),
        }
    }
}

impl Outcome {
    /// Standard output as the one JSON object `--json` prints.
    pub fn json(&self) -> Value {
        assert_eq!(
            self.stdout.trim_end().lines().count(),
            1,
            "not one line: {self:?}"
        );
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| panic!("{error}: {self:?}"))
    }

    /// Asserts the exit code, showing everything when it is wrong.
    pub fn assert_code(&self, code: i32) -> &Outcome {
        assert_eq!(self.code, code, "{self:?}");
        self
    }

    /// Standard output and standard error together.
    pub fn all_output(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Standard base64, to look for an `Authorization: Basic` value in output.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            text.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    text
}

/// Asserts that no 8 consecutive characters of `secret` appear in `text`,
/// so that neither the secret nor a piece of it leaked.
pub fn assert_no_piece_of(secret: &str, text: &str) {
    for window in secret.as_bytes().windows(8) {
        let piece = std::str::from_utf8(window).unwrap();
        assert!(
            !text.contains(piece),
            "{piece:?} of a secret leaked:\n{text}"
        );
    }
}
