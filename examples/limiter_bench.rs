//! Side-by-side benchmark of the limiter, in one run (the machine is shared
//! and noisy, so ratios matter, not absolute times).
//!
//! 1. `TokenBucket::try_acquire` ns/op against `governor`'s `check()` at 1, 2
//!    and 8 threads, as ratios. Both read `std::time::Instant`: governor is
//!    built without its `std` feature (which would bring futures crates into
//!    the workspace), so without its default clock, and is given one here.
//! 2. The most permits seen in any 1 s window with 1, 16 and 256 threads
//!    calling `acquire` at 80/s burst 10, against the bound of 90.
//!
//! Run: `cargo run --release --example limiter_bench`

use std::num::NonZeroU32;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::{RateLimit, TokenBucket};
use governor::{Quota, RateLimiter};

/// governor's clock on `std::time::Instant`, as its `std` feature's
/// `MonotonicClock` would be.
#[derive(Clone)]
struct MonotonicClock(Instant);

impl governor::clock::Clock for MonotonicClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.0.elapsed()
    }
}

const ROUNDS: usize = 5;
const OPS_PER_THREAD: u64 = 1_000_000;

/// ns per call of `op`, called `OPS_PER_THREAD` times on each of `threads` threads.
fn ns_per_op(threads: usize, op: impl Fn() -> bool + Send + Sync + 'static) -> f64 {
    let op = Arc::new(op);
    let start = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (op, start) = (op.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut granted = 0u64;
                for _ in 0..OPS_PER_THREAD {
                    granted += u64::from(op());
                }
                granted
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let granted: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = began.elapsed();
    std::hint::black_box(granted);
    elapsed.as_nanos() as f64 / (OPS_PER_THREAD * threads as u64) as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn compare_try_acquire(label: &str, rate: u32, burst: u32) {
    println!(
        "try_acquire at {rate}/s burst {burst} ({label}); median of {ROUNDS} rounds, {OPS_PER_THREAD} calls per thread"
    );
    println!("  threads  TokenBucket ns/op  governor ns/op  ratio (ours / governor)");
    for threads in [1, 2, 8] {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            // Alternate the two so that drift on a shared machine hits both.
            let bucket = TokenBucket::new(f64::from(rate), burst);
            ours.push(ns_per_op(threads, move || bucket.try_acquire()));
            let quota = Quota::per_second(NonZeroU32::new(rate).unwrap())
                .allow_burst(NonZeroU32::new(burst).unwrap());
            let governor = RateLimiter::direct_with_clock(quota, MonotonicClock(Instant::now()));
            theirs.push(ns_per_op(threads, move || governor.check().is_ok()));
        }
        let (ours, theirs) = (median(ours), median(theirs));
        println!(
            "  {threads:>7}  {ours:>17.1}  {theirs:>14.1}  {:>8.2}",
            ours / theirs
        );
    }
}

/// Runs `threads` threads calling `acquire` for `run_for` and returns the
/// grant instants, sorted.
fn grants(threads: usize, run_for: Duration) -> Vec<Instant> {
    let bucket = TokenBucket::from_limit(RateLimit::TRACK_API);
    let start = Arc::new(Barrier::new(threads));
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (bucket, start, tx) = (bucket.clone(), start.clone(), tx.clone());
            thread::spawn(move || {
                start.wait();
                let began = Instant::now();
                while began.elapsed() < run_for {
                    bucket.acquire();
                    let _ = tx.send(Instant::now());
                }
            })
        })
        .collect();
    drop(tx);
    handles.into_iter().for_each(|h| h.join().unwrap());
    let mut grants: Vec<Instant> = rx.iter().collect();
    grants.sort();
    grants
}

fn most_in_window(sorted: &[Instant], window: Duration) -> usize {
    let mut first = 0;
    let mut most = 0;
    for (last, t) in sorted.iter().enumerate() {
        while t.duration_since(sorted[first]) > window {
            first += 1;
        }
        most = most.max(last - first + 1);
    }
    most
}

fn main() {
    compare_try_acquire("mostly refused, the contended path", 80, 10);
    println!();
    compare_try_acquire("mostly granted", 1_000_000_000, 1_000);
    println!();
    let limit = RateLimit::TRACK_API;
    let bound = limit.max_in(Duration::from_secs(1));
    let run_for = Duration::from_secs(4);
    println!(
        "acquire at 80/s burst 10 for {run_for:?}: most permits in any 1 s window (bound {bound})"
    );
    println!("  threads  permits  max in 1 s  steady rate/s  of 80/s");
    for threads in [1, 16, 256] {
        let grants = grants(threads, run_for);
        let most = most_in_window(&grants, Duration::from_secs(1));
        // The steady rate, after the initial burst.
        let span = grants
            .last()
            .unwrap()
            .duration_since(grants[0])
            .as_secs_f64();
        let steady = (grants.len() - limit.burst() as usize) as f64 / span;
        println!(
            "  {threads:>7}  {:>7}  {most:>6} / {bound}  {steady:>13.2}  {:>6.2} %",
            grants.len(),
            100.0 * steady / 80.0
        );
        assert!(
            most as u64 <= bound,
            "{most} permits in one second, over the bound of {bound}"
        );
    }
}
