//! How many small requests per second the emulator serves on loopback, so that a benchmark of
//! a client never measures the emulator instead.
//!
//! ```text
//! cargo run --release -p cio-emulator --example emulator_bench [-- --requests 40000] [--memory-lines 1000000]
//! ```
//!
//! Then the memory an emulator holds after an import of `--memory-lines` lines (half identifies
//! with attributes, half events with data and an id; 1,000 a `/api/v2/batch` request), with
//! `--keep all` and `--keep counts` side by side: each runs in a process of its own (this
//! example, started again), whose resident set size (`VmRSS`, Linux) is read before and after.
//!
//! Rate limits are switched off. Each scenario drives N keep-alive connections from a few
//! threads: a thread writes one request on each of its connections, then reads the answers,
//! so N requests are in flight at once. The client is a minimal hand-written HTTP/1.1 client
//! over `std::net::TcpStream`, so that it costs as little CPU as possible: on a 2-core machine
//! it shares the cores with the emulator.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, Emulator, Keep};

/// Set in the environment of the process that serves for a memory run: `all` or `counts`.
const SERVE: &str = "CIO_EMULATOR_BENCH_SERVE";

/// `Authorization` for the default site ID and Track API key.
const TRACK_AUTH: &str = "Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5";
/// Target from the issue: the emulator must never be the bottleneck of a client benchmark.
const TARGET: f64 = 5_000.0;

/// One kind of request to repeat.
struct Workload {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    body: String,
}

/// A keep-alive connection that reads length-delimited answers.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    fn open(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Reads one answer and returns its status.
    fn read_answer(&mut self) -> io::Result<u16> {
        loop {
            if let Some(head_end) = find(&self.buffer, b"\r\n\r\n") {
                let head = std::str::from_utf8(&self.buffer[..head_end])
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                let status = head
                    .get(9..12)
                    .and_then(|code| code.parse().ok())
                    .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "status line"))?;
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                let total = head_end + 4 + length;
                if self.buffer.len() >= total {
                    self.buffer.drain(..total);
                    return Ok(status);
                }
            }
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buffer.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Sends `requests` requests of `workload` over `connections` connections driven by
/// `threads` threads; returns requests per second.
fn run(port: u16, workload: &Workload, connections: usize, threads: usize, requests: usize) -> f64 {
    let request = format!(
        "{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {TRACK_AUTH}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
        workload.method,
        workload.path,
        workload.body.len(),
        workload.body
    )
    .into_bytes();
    let per_thread_connections = connections / threads;
    let rounds = requests / connections;
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..threads {
            let request = &request;
            scope.spawn(move || {
                let mut mine: Vec<Connection> = (0..per_thread_connections)
                    .map(|_| Connection::open(port).expect("connect"))
                    .collect();
                for _ in 0..rounds {
                    for connection in &mut mine {
                        connection.stream.write_all(request).expect("write");
                    }
                    for connection in &mut mine {
                        let status = connection.read_answer().expect("read");
                        assert_eq!(status, 200, "{}", workload.name);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    (rounds * per_thread_connections * threads) as f64 / elapsed
}

/// The memory run's server: an emulator keeping `keep`, its port on standard output, until
/// standard input closes.
fn serve(keep: &str) -> io::Result<()> {
    let keep = if keep == "counts" {
        Keep::Counts
    } else {
        Keep::All
    };
    let emulator = Emulator::start(Config::default().track_limit(0).keep(keep))?;
    println!("{}", emulator.port());
    io::stdout().flush()?;
    io::copy(&mut io::stdin(), &mut io::sink())?;
    Ok(())
}

/// A process's resident set size in MiB, from `/proc` (Linux only).
fn rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// What a memory run measured.
struct Memory {
    before: Option<f64>,
    after: Option<f64>,
    seconds: f64,
}

/// Imports `lines` lines into a server process keeping `keep`, and measures it.
fn memory(keep: &str, lines: usize) -> io::Result<Memory> {
    let mut server: Child = Command::new(std::env::current_exe()?)
        .env(SERVE, keep)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let mut port = String::new();
    BufReader::new(server.stdout.take().expect("piped")).read_line(&mut port)?;
    let port: u16 = port.trim().parse().expect("the server prints its port");
    let pid = server.id();
    let before = rss_mib(pid);
    let started = Instant::now();
    let mut connection = Connection::open(port)?;
    for first in (0..lines).step_by(1000) {
        let items: Vec<String> = (first..(first + 1000).min(lines))
            .map(|i| if i % 2 == 0 {
                format!(
                    r#"{{"type":"person","action":"identify","identifiers":{{"id":"person-{i}"}},"attributes":{{"email":"person-{i}@example.com","plan":"pro","seats":{i}}}}}"#
                )
            } else {
                format!(
                    r#"{{"type":"person","action":"event","identifiers":{{"id":"person-{}"}},"name":"signed_up","id":"event-{i}","attributes":{{"page":"/pricing","n":{i}}}}}"#,
                    i - 1
                )
            })
            .collect();
        let body = format!(r#"{{"batch":[{}]}}"#, items.join(","));
        let request = format!(
            "POST /api/v2/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {TRACK_AUTH}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        connection.stream.write_all(request.as_bytes())?;
        assert_eq!(connection.read_answer()?, 200, "batch at line {first}");
    }
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_mib(pid);
    drop(server.stdin.take());
    server.wait()?;
    Ok(Memory {
        before,
        after,
        seconds,
    })
}

fn main() -> io::Result<()> {
    if let Ok(keep) = std::env::var(SERVE) {
        return serve(&keep);
    }
    let mut requests = 40_000;
    let mut memory_lines = 1_000_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--requests", Some(n)) => requests = n.parse().expect("--requests N"),
            ("--memory-lines", Some(n)) => memory_lines = n.parse().expect("--memory-lines N"),
            _ => {
                eprintln!("usage: emulator_bench [--requests N] [--memory-lines N]");
                std::process::exit(2);
            }
        }
    }

    let config = Config::default()
        .track_limit(0)
        .transactional_limit(0)
        .app_limit(0)
        .broadcast_limit(0);
    let emulator = Emulator::start(config)?;
    let port = emulator.port();
    let cores = thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "cio-emulator bench: {} ({cores} cores), rate limits off, {requests} requests per run",
        emulator.url()
    );

    let batch: Vec<String> = (0..10)
        .map(|i| {
            format!(
                r#"{{"type":"person","action":"event","identifiers":{{"id":"{i}"}},"name":"bench","attributes":{{"n":{i}}}}}"#
            )
        })
        .collect();
    let workloads = [
        Workload {
            name: "identify (PUT /api/v1/customers/{id})",
            method: "PUT",
            path: "/api/v1/customers/bench-person",
            body: r#"{"email":"bench@example.com","plan":"pro"}"#.to_owned(),
        },
        Workload {
            name: "event (POST /api/v1/customers/{id}/events)",
            method: "POST",
            path: "/api/v1/customers/bench-person/events",
            body: r#"{"name":"bench","data":{"n":1}}"#.to_owned(),
        },
        Workload {
            name: "batch of 10 events (POST /api/v2/batch)",
            method: "POST",
            path: "/api/v2/batch",
            body: format!(r#"{{"batch":[{}]}}"#, batch.join(",")),
        },
    ];
    let shapes = [(1, 1), (8, 2), (32, 4)];

    println!(
        "{:<46} {:>11} {:>7} {:>10} {:>9}",
        "workload", "connections", "threads", "req/s", "vs 5000"
    );
    let mut slowest_concurrent = f64::INFINITY;
    for workload in &workloads {
        let mut sent = 0;
        for (connections, threads) in shapes {
            let rate = run(port, workload, connections, threads, requests);
            sent += (requests / connections) * connections;
            if connections > 1 {
                slowest_concurrent = slowest_concurrent.min(rate);
            }
            println!(
                "{:<46} {connections:>11} {threads:>7} {rate:>10.0} {:>8.1}x",
                workload.name,
                rate / TARGET
            );
        }
        // Every request was answered 200 by the emulator: the numbers are real answers.
        let snapshot = emulator.snapshot();
        assert_eq!(snapshot.requests, sent as u64);
        assert_eq!(snapshot.status_count(200), sent as u64);
        emulator.reset();
    }
    println!(
        "slowest run with concurrent connections: {slowest_concurrent:.0} req/s ({})",
        if slowest_concurrent >= TARGET {
            "meets the 5000 req/s target"
        } else {
            "BELOW the 5000 req/s target"
        }
    );
    drop(emulator);

    if memory_lines > 0 {
        println!(
            "\nmemory after importing {memory_lines} lines (1,000 per /api/v2/batch request):"
        );
        println!(
            "{:<14} {:>12} {:>12} {:>10} {:>9}",
            "--keep", "RSS before", "RSS after", "seconds", "vs all"
        );
        let all = memory("all", memory_lines)?;
        let counts = memory("counts", memory_lines)?;
        let mib = |value: Option<f64>| value.map_or("n/a".to_owned(), |v| format!("{v:.0} MiB"));
        for (keep, run) in [("all", &all), ("counts", &counts)] {
            let ratio = match (run.after, all.after) {
                (Some(run), Some(all)) => format!("{:.2}x", run / all),
                _ => "n/a".to_owned(),
            };
            println!(
                "{keep:<14} {:>12} {:>12} {:>10.1} {ratio:>9}",
                mib(run.before),
                mib(run.after),
                run.seconds
            );
        }
    }
    Ok(())
}
