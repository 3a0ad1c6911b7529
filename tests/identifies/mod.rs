//! Identify calls from several threads at once, as a single-mode import
//! makes them: the load the learning and shared-budget tests put on a
//! client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::Client;
use serde_json::json;

/// Identifies people `{prefix}-0 .. {prefix}-{count - 1}` from `threads`
/// threads taking the next number in turn; returns how long it took.
///
/// # Panics
///
/// If a call fails.
pub fn from_threads(client: &Client, prefix: &str, count: u64, threads: usize) -> Duration {
    let next = AtomicU64::new(0);
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= count {
                        break;
                    }
                    client
                        .identify(format!("{prefix}-{n}"), json!({"n": n}))
                        .unwrap_or_else(|error| panic!("{prefix}-{n}: {error}"));
                }
            });
        }
    });
    started.elapsed()
}
