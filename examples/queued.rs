//! Queued processing against a local `cio-emulator`: identifies and events
//! for 10,000 users are queued on a `Dispatcher` whose 10 workers drain them
//! through the client's own Track limiter. The dispatcher logs its health
//! line every second; the final stats and what the emulator received are
//! printed at the end.
//!
//! Customer.io's default is 80 requests/s, which would take four minutes
//! here; the example runs the emulator with a 1,000/s limit and the client
//! at 900/s burst 50, so it finishes in about 25 s. Pass a rate to change it:
//! `cargo run --release --example queued -- 80`.

use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{ApiClass, Client, Dispatcher, Event, RateLimit};
use serde_json::json;

/// Prints the dispatcher's `log::info!` health lines to stderr.
struct HealthLines;

impl log::Log for HealthLines {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        // ureq-proto logs raw request bytes, the Authorization header
        // included, at trace level (see the crate docs' "Logging"): keep
        // them out even if the level here is raised.
        let raw_bytes =
            metadata.level() == log::Level::Trace && metadata.target().starts_with("ureq_proto");
        metadata.level() <= log::Level::Info && !raw_bytes
    }
    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            eprintln!("[{}] {}", record.level(), record.args());
        }
    }
    fn flush(&self) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    log::set_logger(&HealthLines).map_err(|err| err.to_string())?;
    log::set_max_level(log::LevelFilter::Info);
    let rate: f64 = std::env::args()
        .nth(1)
        .map(|r| r.parse())
        .transpose()?
        .unwrap_or(900.0);
    let emulator = Emulator::start(Config::default().track_limit(1_000))?;
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emulator.url())
        .rate_limit(ApiClass::Track, RateLimit::new(rate, 50)?)
        .build()?;
    let dispatcher = Dispatcher::builder()
        .workers(10)
        .capacity(1_000)
        .health_log(Duration::from_secs(1))
        .build_for_client(client)?;

    println!("queueing identifies and events for 10,000 users at {rate}/s ...");
    let started = Instant::now();
    for user in 0..10_000 {
        let id = format!("user-{user}");
        dispatcher.identify(
            id.clone(),
            json!({"email": format!("{id}@example.com"), "plan": "pro"}),
        )?;
        dispatcher.track(
            id,
            Event::new("signed_up").id_from_key(&format!("signed_up/{user}")),
        )?;
    }
    dispatcher.close();
    let elapsed = started.elapsed();

    let stats = dispatcher.stats();
    let snapshot = emulator.snapshot();
    let track = &snapshot.classes["track"];
    println!("\nfinal stats: {stats}");
    println!(
        "{} calls in {:.1} s: {:.0}/s; the emulator stored {} people and {} events, answered {} 429s; \
         most requests in any 1 s window: {} (limit {})",
        stats.done,
        elapsed.as_secs_f64(),
        stats.done as f64 / elapsed.as_secs_f64(),
        snapshot.people.len(),
        snapshot.events.len(),
        snapshot.throttled,
        track.max_in_window,
        track.limit,
    );
    Ok(())
}
