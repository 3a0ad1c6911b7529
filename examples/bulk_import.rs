//! Import from memory (the reference's `bulkImport(users)`): 50,000 users,
//! as a program would load them from its database, are turned into
//! identifies and a `signed_up` event each and handed to
//! `Importer::import_operations` as a lazy iterator, so they are built as
//! they are sent. Batched, in per-person order, checkpointed by position:
//! stop it half way and run it again, and it resumes where it stopped.
//!
//! Runs against a local `cio-emulator` at Customer.io's default 50 batch
//! requests/s: `cargo run --release --example bulk_import`.

use std::time::Instant;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{Client, Event, Importer, Operation};
use serde_json::json;

/// A user as a program might hold one.
struct User {
    id: u64,
    email: String,
    plan: &'static str,
    signed_up_at: i64,
}

/// The program's users, loaded lazily (from a database cursor, say).
fn users() -> impl Iterator<Item = User> {
    (1..=50_000).map(|id| User {
        id,
        email: format!("user{id}@example.com"),
        plan: if id % 10 == 0 { "pro" } else { "free" },
        signed_up_at: 1_700_000_000 + id as i64,
    })
}

/// A user's writes: their attributes, then the event, in this order.
fn operations(user: User) -> [Operation; 2] {
    let person = user.id.to_string();
    let identify = Operation::identify(
        person.as_str(),
        json!({"email": user.email, "plan": user.plan}),
    )
    .expect("valid attributes");
    // An id derived from the data: a resumed or repeated import counts it once.
    let event = Event::new("signed_up")
        .timestamp(user.signed_up_at)
        .id_from_key(&format!("signed_up/{}", user.id));
    let event = Operation::event(person.as_str(), &event).expect("a valid event");
    [identify, event]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emulator = Emulator::start(Config::default())?;
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emulator.url())
        .build()?;
    let dir = std::env::temp_dir().join(format!("cio-bulk-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let started = Instant::now();
    let summary = Importer::builder(client)
        .dead_letter(dir.join("dead.ndjson"))
        .checkpoint(dir.join("users.checkpoint"))
        .build()?
        .import_operations(users().flat_map(operations))
        .map_err(|failure| failure.error)?;

    let snapshot = emulator.snapshot();
    println!(
        "{} operations delivered in {:.2} s ({} requests); the emulator has {} people and {} events",
        summary.progress.delivered,
        started.elapsed().as_secs_f64(),
        summary.progress.requests,
        snapshot.people.len(),
        snapshot.event_count,
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
