//! Side-by-side benchmark of `RedisLimiter` and `TokenBucket`, in one run
//! (the machine is shared and noisy, so ratios matter, not absolute times).
//!
//! 1. Latency of one permit, p50 and p99, when nobody has to wait: what the
//!    shared budget costs per request (one round trip to Redis and one Lua
//!    script, against an uncontended mutex), at 1 and 4 threads; and of a
//!    refusal (`try_acquire` on an empty bucket).
//! 2. 8 threads at 200/s, burst 10, for 3 s: the rate each reaches, and the
//!    busiest second against its bound: 10 + 200 for the `TokenBucket`, 200
//!    for the `RedisLimiter`, which keeps "at most N in any window" (grant
//!    times are taken when `acquire` returns, so scheduling delays can add a
//!    permit or two).
//!
//! It starts its own `redis-server` on a free loopback port, or uses
//! `REDIS_URL` if set (the key `cio-ratelimit-bench:*` is overwritten).
//!
//! Run: `cargo run --release --features redis --example redis_bench`

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::{ApiClass, Limiter, RateLimit, TokenBucket, limit::RedisLimiter};

/// A `redis-server` of the benchmark's own; killed when dropped.
struct OwnRedis(Child);

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_redis() -> Result<(String, OwnRedis), String> {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start redis-server ({e}); install it or set REDIS_URL"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|line| line.contains("Ready to accept connections"));
    if !ready {
        return Err("redis-server exited before it was ready".into());
    }
    thread::spawn(move || lines.for_each(drop));
    Ok((format!("redis://127.0.0.1:{port}/0"), OwnRedis(child)))
}

fn redis(url: &str, name: &str, limit: RateLimit) -> RedisLimiter {
    RedisLimiter::builder(limit)
        .url(url)
        .workspace(format!("bench-{name}"))
        .class(ApiClass::Track)
        .key_prefix("cio-ratelimit-bench")
        .build()
        .expect("a valid Redis URL")
}

/// Latencies of `calls` calls of `op` on each of `threads` threads, sorted.
fn latencies(threads: usize, calls: usize, op: impl Fn() + Send + Sync) -> Vec<Duration> {
    let start = Barrier::new(threads);
    let all = Mutex::new(Vec::with_capacity(threads * calls));
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut mine = Vec::with_capacity(calls);
                start.wait();
                for _ in 0..calls {
                    let began = Instant::now();
                    op();
                    mine.push(began.elapsed());
                }
                all.lock().unwrap().extend(mine);
            });
        }
    });
    let mut all = all.into_inner().unwrap();
    all.sort_unstable();
    all
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn row(case: &str, bucket: &[Duration], redis: &[Duration]) {
    let (b50, b99) = (percentile(bucket, 0.5), percentile(bucket, 0.99));
    let (r50, r99) = (percentile(redis, 0.5), percentile(redis, 0.99));
    println!(
        "  {case:<30} {:>9.2} {:>9.2}   {:>9.1} {:>9.1}   {:>8.0}x {:>8.0}x",
        micros(b50),
        micros(b99),
        micros(r50),
        micros(r99),
        micros(r50) / micros(b50).max(0.001),
        micros(r99) / micros(b99).max(0.001),
    );
}

/// 8 threads acquiring for 3 s: (permits per second after the burst, busiest second).
fn steady(limiter: Arc<dyn Limiter>) -> (f64, usize) {
    let run_for = Duration::from_secs(3);
    let grants = Mutex::new(Vec::new());
    thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let start = Instant::now();
                while start.elapsed() < run_for {
                    limiter.acquire();
                    grants.lock().unwrap().push(Instant::now());
                }
            });
        }
    });
    let mut grants = grants.into_inner().unwrap();
    grants.sort_unstable();
    let span = grants[grants.len() - 1] - grants[0];
    let rate = (grants.len() - 10) as f64 / span.as_secs_f64();
    let window = Duration::from_secs(1);
    let (mut first, mut most) = (0, 0);
    for (last, t) in grants.iter().enumerate() {
        while t.duration_since(grants[first]) > window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    (rate, most)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _own) = match std::env::var("REDIS_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let (url, own) = start_redis()?;
            (url, Some(own))
        }
    };
    // A rate no caller ever waits for: the cost of the permit alone.
    let open = RateLimit::new(1e6, 1_000_000)?;
    let shown = url.rsplit('@').next().unwrap_or(&url);
    println!("RedisLimiter vs TokenBucket, Redis at {shown}; latency per call in µs");
    println!(
        "  {:<30} {:>9} {:>9}   {:>9} {:>9}   {:>9} {:>9}",
        "case", "bucket50", "bucket99", "redis50", "redis99", "ratio50", "ratio99"
    );

    let bucket = TokenBucket::from_limit(open);
    let shared = redis(&url, "open", open);
    shared.acquire(); // connect and load the script first
    for threads in [1, 4] {
        let b = latencies(threads, 200_000, || bucket.acquire());
        let r = latencies(threads, 20_000, || shared.acquire());
        row(&format!("acquire, {threads} thread(s), no wait"), &b, &r);
    }

    let empty = RateLimit::new(0.1, 1)?; // one permit, then none for 10 s
    let bucket = TokenBucket::from_limit(empty);
    let shared = redis(&url, "empty", empty);
    assert!(bucket.try_acquire() && shared.try_acquire());
    let b = latencies(1, 200_000, || assert!(!bucket.try_acquire()));
    let r = latencies(1, 20_000, || assert!(!shared.try_acquire()));
    row("try_acquire refused, 1 thread", &b, &r);

    let limit = RateLimit::new(200.0, 10)?;
    let (b_rate, b_most) = steady(Arc::new(TokenBucket::from_limit(limit)));
    let (r_rate, r_most) = steady(Arc::new(redis(&url, "steady", limit)));
    println!(
        "8 threads at 200/s burst 10 for 3 s (bound in any second: 210 for the bucket, 200 through Redis)"
    );
    println!("  TokenBucket   {b_rate:>7.1}/s   busiest second: {b_most}");
    println!(
        "  RedisLimiter  {r_rate:>7.1}/s   busiest second: {r_most}   rate ratio {:.3}",
        r_rate / b_rate
    );
    Ok(())
}
