//! Side-by-side benchmark of `Client` against a local `cio-emulator`, in one
//! run (the machine is shared and noisy: compare the ratios).
//!
//! 1. identify throughput, sequential and from 8 threads, one client, the
//!    emulator's limit off (connection reuse must show: ≥ 2,000 requests/s).
//! 2. Per-call cost of `Client::identify` with an unlimited limiter against a
//!    bare ureq PUT of the same body to the same server: the ratio is the
//!    client's overhead (validation, JSON, limiter, retry loop). Goal ≤ 1.1.
//!
//! Run: `cargo run --release --example client_bench`

use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{ApiClass, Client, limit::Unlimited};
use serde_json::json;

const ROUNDS: usize = 7;
const CALLS: usize = 2_000;

fn client(url: &str) -> Client {
    Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(url)
        .limiter(ApiClass::Track, Unlimited::new())
        .build()
        .expect("valid client")
}

fn attributes(i: usize) -> serde_json::Value {
    json!({"email": format!("user{i}@example.com"), "plan": "pro", "seats": 3})
}

/// Requests per second for `threads` threads sharing one client.
fn throughput(client: &Client, threads: usize, calls_per_thread: usize) -> f64 {
    let started = Instant::now();
    thread::scope(|scope| {
        for t in 0..threads {
            scope.spawn(move || {
                for i in 0..calls_per_thread {
                    let id = t * calls_per_thread + i;
                    client
                        .identify(id.to_string(), attributes(id))
                        .expect("identify");
                }
            });
        }
    });
    (threads * calls_per_thread) as f64 / started.elapsed().as_secs_f64()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let emulator = Emulator::start(Config::default().track_limit(0)).expect("emulator starts");
    let url = emulator.url();
    let client = client(&url);

    throughput(&client, 1, 200); // warm the connection pool
    println!("identify throughput against cio-emulator, one client, median of {ROUNDS} rounds");
    let sequential = median((0..ROUNDS).map(|_| throughput(&client, 1, CALLS)).collect());
    let threaded = median(
        (0..ROUNDS)
            .map(|_| throughput(&client, 8, CALLS / 4))
            .collect(),
    );
    println!("  sequential   {sequential:>8.0} requests/s");
    println!(
        "  8 threads    {threaded:>8.0} requests/s   ({:.2}x sequential; goal >= 2000/s)",
        threaded / sequential
    );

    // The same agent settings the client uses, so that only the client's own work differs.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_connect(Some(Duration::from_secs(10)))
        .timeout_global(Some(Duration::from_secs(10)))
        .max_idle_connections(64)
        .max_idle_connections_per_host(32)
        .user_agent("cio-ratelimit/0.1.0")
        .build()
        .into();
    let auth = format!(
        "Basic {}",
        base64(&format!("{DEFAULT_SITE_ID}:{DEFAULT_API_KEY}"))
    );
    let bare_put = |i: usize| {
        let body = serde_json::to_vec(&attributes(i)).expect("json");
        let response = agent
            .put(format!("{url}/api/v1/customers/{i}"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .send(&body[..])
            .expect("put");
        assert_eq!(response.status(), 200);
        // Reading the answer returns the connection to the pool, as the client does.
        response.into_body().read_to_string().expect("body");
    };
    // A fresh client: the one above has a pool of 8 connections from its
    // threads, and rotating through idle server threads costs wake-ups that
    // a single-connection bare agent would not pay.
    let client = self::client(&url);
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Alternate call by call, so that drift on a shared machine hits both alike.
        let (mut ours_total, mut bare_total) = (Duration::ZERO, Duration::ZERO);
        let ours_call = |i: usize| {
            let started = Instant::now();
            client
                .identify(i.to_string(), attributes(i))
                .expect("identify");
            started.elapsed()
        };
        let bare_call = |i: usize| {
            let started = Instant::now();
            bare_put(i);
            started.elapsed()
        };
        for i in 0..CALLS {
            // Which goes first alternates too: the first of a pair finds the
            // server's thread idle longer, and waking it costs time.
            if i % 2 == 0 {
                ours_total += ours_call(i);
                bare_total += bare_call(i);
            } else {
                bare_total += bare_call(i);
                ours_total += ours_call(i);
            }
        }
        ours.push(ours_total.as_secs_f64() * 1e6 / CALLS as f64);
        bare.push(bare_total.as_secs_f64() * 1e6 / CALLS as f64);
    }
    let (ours, bare) = (median(ours), median(bare));
    println!("\nper call, sequential, median of {ROUNDS} rounds of {CALLS}");
    println!("  Client::identify (unlimited limiter)  {ours:>7.1} µs");
    println!("  bare ureq PUT, same body              {bare:>7.1} µs");
    println!(
        "  ratio                                 {:>7.3}   (goal <= 1.1)",
        ours / bare
    );
    let snapshot = emulator.snapshot();
    assert_eq!(
        snapshot.status_count(200),
        snapshot.requests,
        "every request succeeded"
    );
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63])
            } else {
                '='
            });
        }
    }
    out
}
