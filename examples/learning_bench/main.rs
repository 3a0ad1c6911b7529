//! Issue 11's scenarios against `cio-emulator` with strict sliding windows,
//! the learning limiter beside the fixed-rate one, in one run.
//!
//! Each scenario imports NDJSON lines in single mode (one request per line,
//! four workers, as `cio-ratelimit import --mode single` does) into an
//! emulator whose Track API admits at most `server` requests in any 1 s, and
//! prints, for the learning limiter (the default) and the fixed-rate one
//! (`--fixed-rate`): the time, the time ÷ ideal, the 429s and their share of
//! the requests, and the rate achieved as a share of the server's capacity
//! (or of the configured rate, when the server does not limit).
//!
//! Ideal: the lines ÷ the lower of the server's rate and the configured one,
//! plus, where the configured rate is above the server's, the one pause the
//! first 429 asks for (1 s; for an HTTP-date, up to 1 s more).
//!
//! The rows "sharing Redis" give each process its own `RedisLimiter` (its
//! own connections, as separate processes would have) on one key of a
//! `redis-server` the bench starts on a free port: one budget at `--rate`
//! for all three, learning together or fixed. They need the `redis` feature
//! and `redis-server` on the PATH, and are skipped with a note otherwise.
//!
//! The rows F1–F4 (`fleet.rs`) are issue 20's: real `cio-ratelimit import`
//! processes side by side, uncoordinated, against one strict 100/s window,
//! as `tests/simulation/` simulates them. They need the CLI built beside
//! this example (`cargo build --release -p cio-ratelimit-cli`); `--cli
//! LABEL=PATH` (repeatable) runs other builds of it side by side instead,
//! e.g. one of `main`.
//!
//! Run: `cargo run --release --features redis --example learning_bench
//! [-- SCENARIO-NUMBER...]` (a few minutes; the machine is shared and noisy,
//! so compare the columns), or `-- fleet [ROW-NUMBER...] [--cli
//! LABEL=PATH...]` for the F rows only (about three minutes a build).
//! `FLEET_LOGS=DIR` keeps each import's progress lines, its rate changes
//! among them, in `DIR/import-N.log`.

mod fleet;

use std::io::Cursor;
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, RetryAfterStyle};
use cio_ratelimit::{ApiClass, Client, Importer, RateLimit, import::ImportMode};
use cio_test_kit::RedisServer;
use serde_json::json;

/// One row of the table.
struct Scenario {
    name: &'static str,
    /// The server's limit per 1 s window; 0: unlimited.
    server: u32,
    retry_after: RetryAfterStyle,
    /// `--rate` of each process.
    rate: f64,
    processes: usize,
    /// Whether the processes share one budget at `rate` through Redis.
    shared: bool,
    /// Lines in all; each process imports its share.
    lines: u64,
}

impl Scenario {
    const fn new(
        name: &'static str,
        server: u32,
        retry_after: RetryAfterStyle,
        rate: f64,
        processes: usize,
        lines: u64,
    ) -> Scenario {
        Scenario {
            name,
            server,
            retry_after,
            rate,
            processes,
            shared: false,
            lines,
        }
    }

    /// The same, the processes sharing one budget through Redis.
    const fn sharing_redis(self) -> Scenario {
        Scenario {
            shared: true,
            ..self
        }
    }

    /// The rate the lines can go at: the server's, or all processes' together.
    fn capacity(&self) -> f64 {
        let asked = if self.shared {
            self.rate
        } else {
            self.rate * self.processes as f64
        };
        if self.server == 0 {
            asked
        } else {
            asked.min(f64::from(self.server))
        }
    }

    fn ideal(&self) -> Duration {
        let pause = if self.server > 0
            && (self.processes == 1 || self.shared)
            && self.rate > f64::from(self.server)
        {
            1.0
        } else {
            0.0
        };
        Duration::from_secs_f64(self.lines as f64 / self.capacity() + pause)
    }
}

const SCENARIOS: [Scenario; 11] = [
    Scenario::new(
        "--rate 100, server 100/s",
        100,
        RetryAfterStyle::Seconds,
        100.0,
        1,
        1_000,
    ),
    Scenario::new(
        "default 50/s, server 37/s, seconds",
        37,
        RetryAfterStyle::Seconds,
        50.0,
        1,
        500,
    ),
    Scenario::new(
        "--rate 80, server 20/s, HTTP-date",
        20,
        RetryAfterStyle::HttpDate,
        80.0,
        1,
        300,
    ),
    Scenario::new(
        "--rate 80, server 20/s, absent",
        20,
        RetryAfterStyle::Absent,
        80.0,
        1,
        300,
    ),
    Scenario::new(
        "--rate 100, server 37/s, HTTP-date",
        37,
        RetryAfterStyle::HttpDate,
        100.0,
        1,
        500,
    ),
    Scenario::new(
        "--rate 100, server 60/s, seconds",
        60,
        RetryAfterStyle::Seconds,
        100.0,
        1,
        900,
    ),
    Scenario::new(
        "--rate 100, server 60/s, absent",
        60,
        RetryAfterStyle::Absent,
        100.0,
        1,
        900,
    ),
    Scenario::new(
        "3 × --rate 80, server 100/s",
        100,
        RetryAfterStyle::Seconds,
        80.0,
        3,
        2_100,
    ),
    Scenario::new(
        "--rate 100, server unlimited",
        0,
        RetryAfterStyle::Seconds,
        100.0,
        1,
        1_000,
    ),
    Scenario::new(
        "3 sharing Redis at 80/s, server 100/s",
        100,
        RetryAfterStyle::Seconds,
        80.0,
        3,
        1_200,
    )
    .sharing_redis(),
    Scenario::new(
        "3 sharing Redis at 80/s, server 40/s",
        40,
        RetryAfterStyle::Seconds,
        80.0,
        3,
        600,
    )
    .sharing_redis(),
];

/// What one run of a scenario did, as the emulator saw it.
struct Outcome {
    took: Duration,
    requests: u64,
    throttled: u64,
    delivered: u64,
}

fn run(scenario: &Scenario, learning: bool, redis: Option<&str>) -> Outcome {
    let emulator = Emulator::start(
        Config::default()
            .track_limit(scenario.server)
            .retry_after(scenario.retry_after),
    )
    .expect("the emulator starts");
    let share = scenario.lines / scenario.processes as u64;
    // A key of this run's own: the learning limiter's runs never meet the other's.
    let workspace = format!("{} {learning}", scenario.name);
    let started = Instant::now();
    thread::scope(|scope| {
        for process in 0..scenario.processes {
            let (emulator, workspace) = (&emulator, &workspace);
            scope.spawn(move || {
                let limit = RateLimit::new(scenario.rate, (scenario.rate / 10.0).max(1.0) as u32)
                    .expect("a valid rate");
                let builder =
                    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY).base_url(emulator.url());
                let client = match redis {
                    Some(url) => builder.limiter(
                        ApiClass::Track,
                        shared_limiter(url, workspace, limit, learning),
                    ),
                    None => builder
                        .rate_limit(ApiClass::Track, limit)
                        .learning(learning),
                }
                .build()
                .expect("a valid client");
                let lines = fleet::identify_lines(process, share);
                Importer::builder(client)
                    .mode(ImportMode::Single)
                    .workers(4)
                    .build()
                    .expect("a valid importer")
                    .import_reader(Cursor::new(lines), None)
                    .expect("the import finishes");
            });
        }
    });
    let took = started.elapsed();
    let snapshot = emulator.snapshot();
    Outcome {
        took,
        requests: snapshot.requests,
        throttled: snapshot.throttled,
        delivered: snapshot.people.len() as u64,
    }
}

/// A limiter of one process sharing the Redis at `url`, on the key of
/// `workspace`.
#[cfg(feature = "redis")]
fn shared_limiter(
    url: &str,
    workspace: &str,
    limit: RateLimit,
    learning: bool,
) -> cio_ratelimit::limit::RedisLimiter {
    cio_ratelimit::limit::RedisLimiter::builder(limit)
        .url(url)
        .workspace(workspace)
        .learning(learning)
        .build()
        .expect("a valid Redis limiter")
}

#[cfg(not(feature = "redis"))]
fn shared_limiter(_: &str, _: &str, _: RateLimit, _: bool) -> cio_ratelimit::limit::Unlimited {
    unreachable!("the Redis rows are skipped without the redis feature")
}

/// A `redis-server` of the bench's own, on a free loopback port, or why
/// the rows that share one are skipped.
fn redis_server() -> Result<(RedisServer, String), &'static str> {
    if !cfg!(feature = "redis") {
        return Err("built without --features redis");
    }
    let server = RedisServer::start().ok_or("redis-server is not on the PATH")?;
    let url = server.url();
    Ok((server, url))
}

/// A single `identify` while the server answers 429 with `Retry-After: 0`
/// for 3 s: the requests it sends.
fn zero_retry_after(learning: bool) -> u64 {
    let emulator = Emulator::start(Config::default().retry_after(RetryAfterStyle::Zero))
        .expect("the emulator starts");
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(emulator.url())
        .learning(learning)
        .build()
        .expect("a valid client");
    emulator.throttle_for(Duration::from_secs(3));
    client.identify("42", json!({})).expect("it gets through");
    emulator.snapshot().requests
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let chosen: Vec<usize> = args.iter().filter_map(|arg| arg.parse().ok()).collect();
    let binaries = fleet::binaries(&args);
    if args.iter().any(|arg| arg == "fleet") {
        fleet::run_all(&chosen, &binaries);
        return;
    }
    println!(
        "| # | scenario | ideal | limiter | time | time ÷ ideal | 429s | 429 share | rate ÷ capacity |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut redis = None;
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let number = index + 1;
        if !chosen.is_empty() && !chosen.contains(&number) {
            continue;
        }
        let ideal = scenario.ideal();
        let url = if scenario.shared {
            match redis.get_or_insert_with(redis_server) {
                Ok((_, url)) => Some(url.as_str()),
                Err(why) => {
                    println!(
                        "| {number} | {} | skipped: {why} | | | | | | |",
                        scenario.name
                    );
                    continue;
                }
            }
        } else {
            None
        };
        for (learning, limiter) in [(true, "learning"), (false, "fixed-rate")] {
            let outcome = run(scenario, learning, url);
            assert_eq!(
                outcome.delivered, scenario.lines,
                "{}: lines lost",
                scenario.name
            );
            let achieved = scenario.lines as f64 / outcome.took.as_secs_f64();
            println!(
                "| {number} | {} | {:.1} s | {limiter} | {:.1} s | {:.2} | {} | {:.1} % | {:.1} % |",
                scenario.name,
                ideal.as_secs_f64(),
                outcome.took.as_secs_f64(),
                outcome.took.as_secs_f64() / ideal.as_secs_f64(),
                outcome.throttled,
                100.0 * outcome.throttled as f64 / outcome.requests as f64,
                100.0 * achieved / scenario.capacity(),
            );
        }
    }
    let number = SCENARIOS.len() + 1;
    if chosen.is_empty() || chosen.contains(&number) {
        for (learning, limiter) in [(true, "learning"), (false, "fixed-rate")] {
            println!(
                "| {number} | one identify, 429 with Retry-After: 0 for 3 s | a few | {limiter} | | | {} requests | | |",
                zero_retry_after(learning)
            );
        }
    }
    if chosen.is_empty() {
        fleet::run_all(&[], &binaries);
    }
}
