//! The limiter and the retry policy at work, against a simulated Customer.io
//! workspace that allows 100 requests in any 1 s window and fails 5 % of
//! requests with a 503.
//!
//! 1. 16 threads share one bucket at the Track API preset (80/s, burst 10):
//!    no 429s, every 503 retried, nothing lost.
//! 2. The same threads with the bucket set too fast (150/s): the server's 429s
//!    pause everyone who shares the bucket, and still nothing is lost.
//!
//! Run: `cargo run --release --example limiter_demo`

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::{
    RateLimit, RetryPolicy, TokenBucket,
    retry::{Call, Failure},
};
use parking_lot::Mutex;

const THREADS: u64 = 16;

/// A workspace with a strict sliding-window limit, like Customer.io's.
struct Workspace {
    limit: usize,
    arrivals: Mutex<VecDeque<Instant>>,
    all_arrivals: Mutex<Vec<Instant>>,
    accepted: AtomicU64,
    throttled: AtomicU64,
    failed: AtomicU64,
}

impl Workspace {
    fn new(limit: usize) -> Workspace {
        Workspace {
            limit,
            arrivals: Mutex::new(VecDeque::new()),
            all_arrivals: Mutex::new(Vec::new()),
            accepted: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            failed: AtomicU64::new(0),
        }
    }

    /// One request: 200, 429 with Retry-After, or (5 % of the time) 503.
    fn send(&self) -> Result<(), Failure> {
        let now = Instant::now();
        self.all_arrivals.lock().push(now);
        let mut window = self.arrivals.lock();
        while window
            .front()
            .is_some_and(|t| now - *t >= Duration::from_secs(1))
        {
            window.pop_front();
        }
        if window.len() >= self.limit {
            self.throttled.fetch_add(1, Ordering::Relaxed);
            let retry_after = Duration::from_secs(1) - (now - window[0]);
            return Err(Failure::Status {
                status: 429,
                retry_after: Some(retry_after.max(Duration::from_millis(100))),
            });
        }
        window.push_back(now);
        drop(window);
        if fastrand::u8(0..100) < 5 {
            self.failed.fetch_add(1, Ordering::Relaxed);
            return Err(Failure::Status {
                status: 503,
                retry_after: None,
            });
        }
        self.accepted.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn most_in_one_second(&self) -> usize {
        let mut arrivals = self.all_arrivals.lock().clone();
        arrivals.sort();
        let mut first = 0;
        let mut most = 0;
        for (last, t) in arrivals.iter().enumerate() {
            while *t - arrivals[first] >= Duration::from_secs(1) {
                first += 1;
            }
            most = most.max(last - first + 1);
        }
        most
    }
}

fn run(title: &str, bucket: TokenBucket, records: u64) {
    println!("{title}");
    let workspace = Arc::new(Workspace::new(100));
    let policy = RetryPolicy::builder()
        .base_delay(Duration::from_millis(200))
        .build()
        .expect("valid policy");
    let delivered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..THREADS)
        .map(|worker| {
            let (bucket, policy, workspace, delivered) = (
                bucket.clone(),
                policy.clone(),
                workspace.clone(),
                delivered.clone(),
            );
            thread::spawn(move || {
                for _ in (worker..records).step_by(THREADS as usize) {
                    if policy
                        .run(&bucket, Call::safe("identify"), || workspace.send())
                        .is_ok()
                    {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for handle in workers {
        handle.join().expect("worker panicked");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let sent = workspace.all_arrivals.lock().len();
    println!(
        "  delivered {}/{records} in {elapsed:.1} s ({:.1}/s); {sent} requests: {} 503s retried, {} 429s",
        delivered.load(Ordering::Relaxed),
        delivered.load(Ordering::Relaxed) as f64 / elapsed,
        workspace.failed.load(Ordering::Relaxed),
        workspace.throttled.load(Ordering::Relaxed),
    );
    println!(
        "  most requests the server saw in any 1 s window: {} (server limit 100)\n",
        workspace.most_in_one_second()
    );
}

fn main() {
    run(
        "1. 16 threads, one bucket at the Track API preset (80/s, burst 10), server limit 100/s:",
        TokenBucket::from_limit(RateLimit::TRACK_API),
        400,
    );
    run(
        "2. The same, with the bucket set too fast (150/s, burst 10): 429s pause every thread:",
        TokenBucket::new(150.0, 10),
        600,
    );
}
