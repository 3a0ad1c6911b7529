//! What the relay has done, for `GET /health`, the progress line and
//! `--metrics-file`: calls accepted and refused, lines waiting in the spool
//! and the oldest one's age, lines delivered and dead-lettered, the rate in
//! force, and the last delivery error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use cio_ratelimit::import::Progress;
use cio_ratelimit::{Limiter, RateLimit};
use serde_json::{Value, json};

use crate::relay::spool::{Spool, Stream};

/// One stream's delivery counts: of the rounds that ended, and of the one under way.
#[derive(Debug, Default)]
struct Delivery {
    ended: Progress,
    round: Progress,
}

/// The relay's counters, shared by its threads.
#[derive(Debug)]
pub struct Stats {
    started: Instant,
    accepted: AtomicU64,
    refused_full: AtomicU64,
    delivery: [Mutex<Delivery>; 2],
    last_error: Mutex<Option<String>>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            started: Instant::now(),
            accepted: AtomicU64::default(),
            refused_full: AtomicU64::default(),
            delivery: Default::default(),
            last_error: Mutex::default(),
        }
    }
}

impl Stats {
    /// `calls` calls (or batch items) were kept.
    pub fn accepted(&self, calls: u64) {
        self.accepted.fetch_add(calls, Ordering::Relaxed);
    }

    /// A call was answered 429: the spool was full.
    pub fn refused_full(&self) {
        self.refused_full.fetch_add(1, Ordering::Relaxed);
    }

    /// A drain round's progress so far.
    pub fn round(&self, stream: Stream, progress: &Progress) {
        self.delivery(stream).round = progress.clone();
    }

    /// A drain round ended with these counts.
    pub fn round_ended(&self, stream: Stream, progress: &Progress) {
        let mut delivery = self.delivery(stream);
        delivery.round = Progress::default();
        add(&mut delivery.ended, progress);
    }

    /// Delivery failed for now (it is tried again): the error, for `/health`.
    pub fn failed(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = error;
    }

    fn delivery(&self, stream: Stream) -> std::sync::MutexGuard<'_, Delivery> {
        self.delivery[stream as usize]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every stream's counts together, as an import reports them.
    pub fn progress(&self) -> Progress {
        let mut total = Progress {
            elapsed: self.started.elapsed(),
            ..Progress::default()
        };
        for stream in [Stream::Track, Stream::Pipelines] {
            let delivery = self.delivery(stream);
            add(&mut total, &delivery.ended);
            add(&mut total, &delivery.round);
        }
        total
    }
}

/// A stream's limiter, and the rate it starts at.
#[derive(Clone)]
pub struct RateSource {
    /// The limiter its client sends through.
    pub limiter: Arc<dyn Limiter>,
    /// The configured limit.
    pub limit: RateLimit,
}

impl RateSource {
    /// Requests per second in force now.
    pub fn rate(&self) -> f64 {
        self.limiter.rate().unwrap_or(self.limit.per_second())
    }
}

/// Reads the spool and the counters into `/health` and the progress line.
#[derive(Clone)]
pub struct Health {
    /// The spool.
    pub spool: Arc<Spool>,
    /// The counters.
    pub stats: Arc<Stats>,
    /// The Track API's rate, and the Pipelines API's when it has a key.
    pub rates: Vec<(Stream, RateSource)>,
}

impl Health {
    /// The rate in force for the Track API (else the first configured).
    pub fn rate(&self) -> f64 {
        self.rates.first().map_or(0.0, |(_, source)| source.rate())
    }

    /// `GET /health`'s body.
    pub fn to_json(&self) -> Value {
        let (lines_waiting, oldest) = self.spool.waiting();
        let progress = self.stats.progress();
        let rates: serde_json::Map<String, Value> = self
            .rates
            .iter()
            .map(|(stream, source)| (stream.name().to_owned(), json!(source.rate())))
            .collect();
        json!({
            "status": "ok",
            "accepted": self.stats.accepted.load(Ordering::Relaxed),
            "refused_spool_full": self.stats.refused_full.load(Ordering::Relaxed),
            "spool_bytes": self.spool.bytes(),
            "spool_fsyncs": self.spool.fsyncs(),
            "lines_waiting": lines_waiting,
            "oldest_waiting_seconds": oldest.map(age_seconds),
            "delivered": progress.delivered,
            "dead_lettered": progress.dead_lettered,
            "requests": progress.requests,
            "throttled": progress.throttled,
            "rate": self.rate(),
            "rates": rates,
            "last_error": *self.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    /// The progress line.
    pub fn line(&self) -> String {
        let health = self.to_json();
        let oldest = match health["oldest_waiting_seconds"].as_f64() {
            Some(age) => format!(", oldest {age:.1} s"),
            None => String::new(),
        };
        format!(
            "relay: {} accepted, {} waiting ({} bytes{oldest}), {} delivered, {} dead-lettered, {:.1} requests/s",
            health["accepted"],
            health["lines_waiting"],
            health["spool_bytes"],
            health["delivered"],
            health["dead_lettered"],
            self.rate(),
        )
    }
}

/// Adds `counts` to `total`.
fn add(total: &mut Progress, counts: &Progress) {
    total.lines_read += counts.lines_read;
    total.delivered += counts.delivered;
    total.dead_lettered += counts.dead_lettered;
    total.requests += counts.requests;
    total.retried += counts.retried;
    total.throttled += counts.throttled;
    total.bytes_read += counts.bytes_read;
}

fn age_seconds(when: SystemTime) -> f64 {
    let age = SystemTime::now()
        .duration_since(when)
        .unwrap_or_default()
        .as_secs_f64();
    (age * 1000.0).round() / 1000.0
}
