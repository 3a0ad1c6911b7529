//! Worker processes: a test runs its own binary again, as a separate process
//! that runs one `#[ignore]`d worker test, to show that something holds across
//! processes and not only across threads.
//!
//! The parent starts workers with [`Worker::spawn`], waits until each is
//! [`ready`](Worker::ready), starts them together with [`go`](Worker::go) and
//! collects what they [`report`]ed with [`finish`](Worker::finish). A worker
//! test returns at once unless [`params`] says it is the worker asked for.

use std::collections::HashMap;
use std::fmt::Display;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::Client;
use serde_json::json;

/// Names the worker test a process is to run; its parameters follow as `CIO_TEST_PARAM_*`.
const ROLE: &str = "CIO_TEST_WORKER";
const PARAM: &str = "CIO_TEST_PARAM_";
/// What a worker's own lines start with, among the test harness's.
const MARK: &str = "worker: ";

/// A worker process, seen from the test that started it.
pub struct Worker {
    test: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    reader: thread::JoinHandle<()>,
}

impl Worker {
    /// Runs the worker test `test` of this binary in a new process, with `params`.
    pub fn spawn(test: &str, params: &[(&str, String)]) -> Worker {
        let mut command = Command::new(std::env::current_exe().expect("the test binary's path"));
        command
            .args([test, "--exact", "--nocapture", "--include-ignored"])
            .args(["--test-threads", "1"])
            .env(ROLE, test)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (name, value) in params {
            command.env(format!("{PARAM}{name}"), value);
        }
        let mut child = command.spawn().expect("the worker starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take().expect("piped stdin");
        let (tx, lines) = mpsc::channel();
        let reader = thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The harness's "test name ... " may precede the first line.
                if let Some((_, own)) = line.split_once(MARK) {
                    let _ = tx.send(own.to_owned());
                }
            }
        });
        Worker {
            test: test.to_owned(),
            child,
            stdin,
            lines,
            reader,
        }
    }

    /// Blocks until the worker has set up and waits for [`go`](Worker::go).
    pub fn ready(&self) {
        match self.lines.recv_timeout(Duration::from_secs(60)) {
            Ok(line) if line.trim() == "ready" => {}
            other => panic!("{}: expected ready, got {other:?}", self.test),
        }
    }

    /// Lets the worker start.
    pub fn go(&mut self) {
        writeln!(self.stdin, "go").expect("the worker reads its stdin");
    }

    /// Waits for the worker to pass, and returns what it reported.
    pub fn finish(self) -> Reports {
        let Worker {
            test,
            mut child,
            lines,
            reader,
            ..
        } = self;
        let status = child.wait().expect("the worker runs");
        reader.join().expect("the reader thread");
        let reports: HashMap<String, String> = lines
            .try_iter()
            .filter_map(|line| {
                let (key, value) = line.split_once(' ')?;
                Some((key.to_owned(), value.to_owned()))
            })
            .collect();
        assert!(status.success(), "{test} failed ({status}): {reports:?}");
        Reports(reports)
    }
}

/// What a worker reported, by key.
#[derive(Debug)]
pub struct Reports(HashMap<String, String>);

impl Reports {
    /// The value reported under `key`, parsed.
    pub fn get<T: std::str::FromStr>(&self, key: &str) -> T {
        let text = self
            .0
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {self:?}"));
        text.parse()
            .unwrap_or_else(|_| panic!("{key} does not parse: {text}"))
    }
}

/// The worker's parameters if this process is the worker `test`; `None` in
/// an ordinary test run, where the worker test then does nothing.
pub fn params(test: &str) -> Option<Params> {
    (std::env::var(ROLE).ok()? == test).then_some(Params)
}

/// A worker's parameters.
pub struct Params;

impl Params {
    /// The parameter `name`, parsed.
    pub fn get<T: std::str::FromStr>(&self, name: &str) -> T {
        let text = std::env::var(format!("{PARAM}{name}"))
            .unwrap_or_else(|_| panic!("parameter {name} not set"));
        text.parse()
            .unwrap_or_else(|_| panic!("parameter {name} does not parse: {text}"))
    }

    /// Says the worker is ready, then blocks until the parent says go.
    pub fn ready_and_wait(&self) {
        report("ready", "");
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .expect("the parent writes go");
    }
}

/// Tells the parent `key` is `value`.
pub fn report(key: &str, value: impl Display) {
    println!("{MARK}{key} {value}");
}

/// How many records [`identify_for`] has taken so far in this process.
pub static TAKEN: AtomicU64 = AtomicU64::new(0);

/// Identifies people `{prefix}0`, `{prefix}1`, … from `threads` threads
/// until `run_for` has passed; returns how many, all acknowledged (a failure
/// panics). Numbers are taken in order, so the people are exactly
/// `{prefix}0 .. {prefix}{n-1}`. Call it once per process.
pub fn identify_for(client: &Client, prefix: &str, threads: usize, run_for: Duration) -> u64 {
    let next = &TAKEN;
    let start = Instant::now();
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while start.elapsed() < run_for {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    client
                        .identify(format!("{prefix}{n}"), json!({ "n": n }))
                        .unwrap_or_else(|err| panic!("{prefix}{n}: {err}"));
                }
            });
        }
    });
    next.load(Ordering::SeqCst)
}
