//! Send data to Customer.io from blocking programs as fast as the workspace's
//! rate limits allow, never faster, and lose nothing.
//!
//! ```
//! use cio_ratelimit::{Client, Event, Identifier};
//! use serde_json::json;
//! # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
//! # let (site_id, api_key, url) = (cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY, emulator.url());
//!
//! // One client per workspace; clone it into every thread.
//! let client = Client::builder(site_id, api_key)
//!     .track_url(url) // a local cio-emulator here; Customer.io's US host by default
//!     .build()?;
//!
//! client.identify("42", json!({"email": "ada@example.com", "plan": "pro"}))?;
//! client.track(Identifier::email("ada@example.com"), &Event::new("upgraded").data(json!({"to": "pro"}))?)?;
//! # assert_eq!(emulator.snapshot().people["42"].attributes["plan"], "pro");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Every call waits for a permit from its API class's limiter — before every
//! attempt, retries included — so the workspace's budget holds however many
//! threads send. A 429 pauses everyone who shares the limiter and teaches it
//! the workspace's real limit; 5xx, timeouts and dropped connections back off
//! with jitter; a transactional message is never sent twice unless you opt
//! in; every event carries an id so that a retry is counted once.
//!
//! The root names what a program starts with. The rest lives in five rooms,
//! public modules each using only the ones after it, whose pages go deeper:
//! [`import`] ([`Importer`]) → [`queue`] ([`Dispatcher`]) → [`client`]
//! ([`Client`] and what its calls carry) → [`retry`] ([`RetryPolicy`]) →
//! [`limit`] ([`SlidingWindow`], [`TokenBucket`]); [`error`] is a leaf every
//! room uses. The sections below walk through them from the top down.
//!
//! # The client
//!
//! [`Client`] speaks Track v1 (identify, track, anonymous and invite events,
//! suppress, delete, devices, merge, manual segments, push metrics), Track v2
//! ([`Operation`], [`BatchPacker`](client::BatchPacker), batches whose rejected items come back as
//! data), the App API (transactional email, push, SMS, in-app and inbox
//! messages, broadcast triggers; people by email, a person's attributes and
//! segments, segments and their members, people exports) and the Pipelines
//! API ([`PipelinesCall`], [`PipelinesBatchPacker`](client::PipelinesBatchPacker), strict mode always on).
//! Give it the credentials of the APIs you call; a call whose credentials it
//! lacks fails with [`Error::MissingCredential`] before anything is sent.
//!
//! ```
//! use cio_ratelimit::{Client, Identifier, TransactionalMessage};
//! # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
//!
//! // A program that only sends transactional messages needs only the App key.
//! let client = Client::builder_without_credentials()
//!     .app_key(cio_emulator::DEFAULT_APP_KEY)
//!     .app_url(emulator.url())
//!     .build()?;
//! let delivery = client.send_email(&TransactionalMessage::new(7, Identifier::email("ada@example.com")))?;
//! assert!(!delivery.delivery_id.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Input that breaks Customer.io's size limits is refused with
//! [`Error::Invalid`] before it is sent ([`client::validate`] has the limits).
//!
//! # Limiters
//!
//! Customer.io counts requests in a sliding window and publishes no fixed
//! limit. A [`SlidingWindow`] keeps the server's own promise — at most N
//! requests in any window — and, by default, learns the workspace's real N
//! from its 429s, never going above the configured rate. It is what a
//! [`Client`] uses for each [`ApiClass`] unless told otherwise.
//! [`TokenBucket`] keeps the classic contract instead (at most
//! `burst + rate × T` in any window T); `limit::RedisLimiter` (feature `redis`)
//! shares one budget between processes, and what they learn. All of them take a validated
//! [`RateLimit`] and an injected [`Clock`](limit::Clock), so timing logic is tested on a
//! [`ManualClock`](limit::ManualClock) without sleeping:
//!
//! ```
//! use cio_ratelimit::limit::ManualClock;
//! use cio_ratelimit::{Limiter, RateLimit, TokenBucket};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let bucket = TokenBucket::with_clock(RateLimit::new(10.0, 2)?, clock.clone());
//! for _ in 0..12 {
//!     bucket.acquire(); // sleeps on the manual clock: instant
//! }
//! // A burst of 2 at once, then one every 100 ms.
//! assert!(clock.elapsed() >= Duration::from_millis(900) && clock.elapsed() <= Duration::from_secs(1));
//! assert!(!bucket.try_acquire());
//! # Ok::<(), cio_ratelimit::Error>(())
//! ```
//!
//! # Retries
//!
//! [`RetryPolicy`] is the blocking retry loop every client call runs in:
//! a permit before every attempt, exponential backoff with jitter after
//! 5xx, timeouts and resets, `Retry-After` in both RFC 9110 forms on a 429
//! (which pauses the shared limiter, so every thread backs off together),
//! and calls marked safe or unsafe to repeat ([`Call`](retry::Call)). It runs your own
//! calls too:
//!
//! ```
//! use cio_ratelimit::RetryPolicy;
//! use cio_ratelimit::limit::{ManualClock, Unlimited};
//! use cio_ratelimit::retry::{Call, Failure};
//!
//! let clock = ManualClock::new();
//! let policy = RetryPolicy::builder().clock(clock.clone()).build()?;
//! let mut answers = vec![Ok("done"), Err(Failure::Timeout), Err(Failure::Timeout)];
//! let result = policy.run(&Unlimited::new(), Call::safe("my call"), || answers.pop().unwrap());
//! assert_eq!(result, Ok("done"));
//! # Ok::<(), cio_ratelimit::Error>(())
//! ```
//!
//! [`RetryStats::during`](retry::RetryStats::during) counts the requests, retries and 429s of the calls
//! one piece of work made, whoever else shares the client.
//!
//! # The queue
//!
//! [`Dispatcher`] is a fixed pool of worker threads fed by a bounded
//! crossbeam channel: submit jobs, get a [`Ticket`](queue::Ticket) for each, feel
//! backpressure when the queue is full, and shut down without losing a job.
//! It knows nothing of HTTP: give it [`ClientCall`](queue::ClientCall)s and it runs them on a
//! [`Client`] (whose limiters still set the pace), or any closure.
//!
//! ```
//! use cio_ratelimit::Dispatcher;
//!
//! let dispatcher = Dispatcher::builder().workers(4).build(|n: u64| Ok::<_, String>(n * 2))?;
//! let tickets: Vec<_> = (0..10).map(|n| dispatcher.submit(n).unwrap()).collect();
//! let doubled: u64 = tickets.into_iter().map(|t| t.wait().unwrap().unwrap()).sum();
//! assert_eq!(doubled, 90);
//! dispatcher.close(); // runs what is queued, then joins the workers
//! # Ok::<(), cio_ratelimit::Error>(())
//! ```
//!
//! # Imports
//!
//! [`Importer`] streams NDJSON (one v2 operation a line, or one Pipelines
//! call with [`ImportApi::Pipelines`](import::ImportApi::Pipelines)) in constant memory, packs lines into
//! batch requests, sends them through the queue, dead-letters bad lines with
//! their reason, and keeps a [`Checkpoint`](import::Checkpoint) that only advances over lines the
//! server acknowledged: a crash or an outage loses nothing, and a resume
//! repeats the same event ids (and `messageId`s).
//!
//! ```
//! use cio_ratelimit::{Client, Importer};
//! # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
//! # let dir = cio_test_kit::ScratchDir::new("crate-doc");
//!
//! let client = Client::builder(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY)
//!     .track_url(emulator.url())
//!     .build()?;
//! let input = concat!(
//!     r#"{"type":"person","action":"identify","identifiers":{"id":"1"},"attributes":{"plan":"pro"}}"#, "\n",
//!     "not json\n",
//! );
//! let summary = Importer::builder(client)
//!     .dead_letter(dir.join("dead.ndjson"))
//!     .build()?
//!     .import_reader(input.as_bytes(), None)
//!     .map_err(|failure| failure.error)?;
//! assert_eq!((summary.progress.delivered, summary.progress.dead_lettered), (1, 1));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The `cio-ratelimit` command (crate `cio-ratelimit-cli`) wraps it:
//! `cio-ratelimit import people.ndjson --checkpoint people.checkpoint`.
//!
//! # Testing against the emulator
//!
//! The `cio-emulator` crate is a local Customer.io: the Track, App and
//! Pipelines endpoints, their auth, size limits, error bodies, sliding-window
//! rate limits and seeded faults, recording what it accepted. Point a client
//! at it and assert on what arrived, not on what the client says it sent:
//!
//! ```
//! use cio_emulator::{Config, Emulator, DEFAULT_API_KEY, DEFAULT_SITE_ID};
//! use cio_ratelimit::Client;
//! use serde_json::json;
//!
//! let emulator = Emulator::start(Config::default().track_limit(5))?; // 5 requests per second
//! let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY).track_url(emulator.url()).build()?;
//! for id in 0..3 {
//!     client.identify(id.to_string(), json!({"plan": "pro"}))?;
//! }
//! assert_eq!(emulator.snapshot().people.len(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Features
//!
//! All off by default; the default build depends on ureq, serde, serde_json,
//! parking_lot, crossbeam-channel, fastrand, log and httpdate only.
//!
//! - `redis`: `limit::RedisLimiter`, its builder and `WhenUnreachable`, one
//!   budget shared by every process, on the blocking client of the `redis`
//!   crate (no async runtime), with `rediss://` over rustls.
//! - `csv`: CSV input for imports, one person per row (`import::CsvOptions`,
//!   `ImporterBuilder::csv`), on the `csv` crate.
//! - `gzip`: gzip-compressed input for imports, recognised by its magic
//!   bytes and decompressed as it streams, on `flate2` (pure Rust).
//!
//! # Errors
//!
//! One [`Error`] enum with structured variants, and [`Result`]: bad input
//! ([`Invalid`](error::Invalid), nothing sent), the server's status with its message and
//! `Retry-After`, refused credentials (never retried), the wrong region,
//! timeouts and transport failures. [`Error::is_transient`] tells whether
//! trying again later may help. An invalid configuration cannot be built:
//! builders validate and name the setting at fault. No error or `Debug`
//! output contains an API key, and neither does any line this crate logs
//! (but see [Logging](#logging) for what the HTTP crate below it logs).
//!
//! # Logging
//!
//! The crate logs through the [`log`](https://docs.rs/log) facade: retries
//! and 429s at `warn`, rate changes at `info`, none of them with a key.
//! The HTTP stack under it, ureq-proto 0.7, logs every byte it sends and
//! receives at **`trace` level, target `ureq_proto::util`**, in rows of 16
//! bytes, and the `Authorization` header is among those bytes: the Basic
//! value (base64 of `site_id:api_key`), the App API's Bearer key, the
//! Pipelines key. A library cannot keep another crate's records from the
//! logger the application installs, so **an application that logs at
//! `trace` must drop records whose target starts with `ureq_proto` at
//! `trace` level.** With `env_logger`, name that target at a lower level,
//! as in `RUST_LOG=trace,ureq_proto=debug`; with a logger of your own, leave
//! those records out in `enabled` and `log`:
//!
//! ```
//! use log::{Level, Log, Metadata, Record};
//!
//! /// ureq-proto's `trace` records are raw bytes on the wire, credentials
//! /// included.
//! fn raw_bytes(metadata: &Metadata<'_>) -> bool {
//!     metadata.level() == Level::Trace && metadata.target().starts_with("ureq_proto")
//! }
//!
//! struct Stderr;
//!
//! impl Log for Stderr {
//!     fn enabled(&self, metadata: &Metadata<'_>) -> bool {
//!         !raw_bytes(metadata)
//!     }
//!     fn log(&self, record: &Record<'_>) {
//!         if self.enabled(record.metadata()) {
//!             eprintln!("{} {}: {}", record.level(), record.target(), record.args());
//!         }
//!     }
//!     fn flush(&self) {}
//! }
//!
//! log::set_logger(&Stderr).expect("no logger yet");
//! log::set_max_level(log::LevelFilter::Trace);
//! ```
//!
//! Below `trace` nothing needs filtering. The `cio-ratelimit` command
//! applies this filter whatever `RUST_LOG` says.
//!
//! # Threads
//!
//! [`Client`], every limiter, [`RetryPolicy`] and [`Dispatcher`] are
//! `Send + Sync` (a `Dispatcher` when its jobs and results are `Send`).
//! Clones of a [`Client`] share one connection pool, its limiters and its
//! retry policy; clones of a limiter share one budget: hand a clone to each
//! thread. An [`Importer`] is `Send`: one import, run by one thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod client;
pub mod error;
pub mod import;
pub mod limit;
pub mod queue;
mod region;
pub mod retry;

pub use crate::client::{
    Client, ClientBuilder, Event, Identifier, Operation, PipelinesCall, TransactionalMessage,
};
pub use crate::error::{Error, Result};
pub use crate::import::Importer;
pub use crate::limit::{ApiClass, Limiter, RateLimit, SlidingWindow, TokenBucket};
pub use crate::queue::Dispatcher;
pub use crate::region::Region;
pub use crate::retry::RetryPolicy;

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// What "# Threads" in the crate docs promises, checked at compile time.
#[allow(dead_code)]
fn _ensure_thread_promises() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send_sync::<SlidingWindow>();
    send_sync::<TokenBucket>();
    send_sync::<limit::Unlimited>();
    send_sync::<RetryPolicy>();
    send_sync::<Dispatcher<u64, u64>>();
    send_sync::<queue::ClientDispatcher>();
    send::<Importer>();
}

/// The `TokenBucket` methods programs and the CLI rely on keep their exact
/// signatures, checked at compile time; `Clone` shares the bucket (a test
/// in `tests/token_bucket.rs` checks that).
#[allow(dead_code)]
fn _ensure_token_bucket_contract() {
    let _: fn(f64, u32) -> TokenBucket = TokenBucket::new;
    let _: fn(f64, u32) -> Result<TokenBucket> = TokenBucket::try_new;
    let _: fn(&TokenBucket) = TokenBucket::acquire;
    let _: fn(&TokenBucket) -> bool = TokenBucket::try_acquire;
    let _: fn(&TokenBucket, std::time::Duration) = TokenBucket::pause_for;
    let _: fn(&TokenBucket) -> TokenBucket = TokenBucket::clone;
    let _: fn(RateLimit) -> TokenBucket = TokenBucket::from_limit;
}
