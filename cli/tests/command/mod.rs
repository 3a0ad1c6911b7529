//! Runs the real `cio-ratelimit` binary as a process, in an environment
//! without Customer.io credentials or `RUST_LOG` unless a test sets them.
//! `import(&emulator, input)` starts an import command line that the flags'
//! methods finish: `import(&emu, &input).mode("single").rate(500).json().run()`.
//!
//! The CLI's tests alone share it, so it lives here rather than in
//! `cio-test-kit`: `CARGO_BIN_EXE_cio-ratelimit` names the binary only to the
//! CLI's own tests.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::thread;
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

/// `cio-ratelimit import INPUT` against `emulator`, with its default
/// credentials in the environment; the flags' methods add the rest.
pub fn import(emulator: &Emulator, input: impl AsRef<OsStr>) -> Run {
    import_at(&emulator.url(), input)
}

/// `cio-ratelimit import INPUT` against the server at `url` (an emulator's
/// or a scripted one), with an emulator's default credentials.
pub fn import_at(url: &str, input: impl AsRef<OsStr>) -> Run {
    against_url(url, &["import"]).arg(input)
}

impl Run {
    /// Adds an argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Run {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<A: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = A>) -> Run {
        self.command.args(args);
        self
    }

    /// `--json`: the summary as one JSON object on standard output.
    pub fn json(self) -> Run {
        self.arg("--json")
    }

    /// `--mode MODE`: `batch` or `single`.
    pub fn mode(self, mode: &str) -> Run {
        self.args(["--mode", mode])
    }

    /// `--rate N` requests per second.
    pub fn rate(self, rate: u32) -> Run {
        self.arg("--rate").arg(rate.to_string())
    }

    /// `--burst N`.
    pub fn burst(self, burst: u32) -> Run {
        self.arg("--burst").arg(burst.to_string())
    }

    /// `--workers N`.
    pub fn workers(self, workers: u32) -> Run {
        self.arg("--workers").arg(workers.to_string())
    }

    /// `--max-retries N`.
    pub fn max_retries(self, retries: u32) -> Run {
        self.arg("--max-retries").arg(retries.to_string())
    }

    /// `--progress-every N` lines.
    pub fn progress_every(self, lines: u32) -> Run {
        self.arg("--progress-every").arg(lines.to_string())
    }

    /// `--checkpoint PATH`.
    pub fn checkpoint(self, path: impl AsRef<OsStr>) -> Run {
        self.arg("--checkpoint").arg(path)
    }

    /// `--resume`.
    pub fn resume(self) -> Run {
        self.arg("--resume")
    }

    /// `--dead-letter PATH`.
    pub fn dead_letter(self, path: impl AsRef<OsStr>) -> Run {
        self.arg("--dead-letter").arg(path)
    }

    /// `--api API`: `track` or `pipelines`.
    pub fn api(self, api: &str) -> Run {
        self.args(["--api", api])
    }

    /// `--redis-url URL`.
    pub fn redis_url(self, url: &str) -> Run {
        self.args(["--redis-url", url])
    }

    /// `--fixed-rate`.
    pub fn fixed_rate(self) -> Run {
        self.arg("--fixed-rate")
    }

    /// `--metrics-file PATH`.
    pub fn metrics_file(self, path: impl AsRef<OsStr>) -> Run {
        self.arg("--metrics-file").arg(path)
    }

    /// The arguments so far, after the program.
    pub fn arguments(&self) -> Vec<String> {
        self.command
            .get_args()
            .map(|arg| arg.to_string_lossy().into_owned())
            .collect()
    }

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

/// Waits for `child` (started by [`Run::spawn`]) at most `limit`; kills it
/// and fails if it is still running then. Its standard error is read as it
/// comes, so a chatty child never blocks on a full pipe.
pub fn finish_within(mut child: Child, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut stderr = child.stderr.take().unwrap();
    let reader = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stdout = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut stdout)
                .unwrap();
            return Outcome {
                code: status.code().expect("exited, not killed"),
                stdout,
                stderr: reader.join().unwrap(),
                elapsed: start.elapsed(),
            };
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("still running after {limit:?}: {}", reader.join().unwrap());
        }
        thread::sleep(Duration::from_millis(20));
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
