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
//! threads send. A 429 pauses everyone who shares the limiter; 5xx, timeouts
//! and dropped connections back off with jitter; a transactional email is
//! never sent twice unless you opt in; every event carries an id so that a
//! retry is counted once.
//!
//! # What is in the crate
//!
//! - [`Client`]: Track v1 (identify, track, anonymous events, suppress,
//!   delete, devices, merge), Track v2 ([`Operation`], [`BatchPacker`],
//!   batches with per-item rejections as data), App API (transactional email
//!   and push, broadcast triggers), US and EU [`Region`]s.
//! - [`TokenBucket`]: a blocking GCRA limiter guarded by a `parking_lot`
//!   mutex. In any window of length T it grants at most `burst + rate × T`
//!   permits, for any number of threads, in the order they asked.
//! - [`AdaptiveLimiter`]: a token bucket that lowers its rate on each 429
//!   (×0.7) and climbs back (CUBIC) while calls succeed, so processes that
//!   share nothing settle under the workspace's limit.
//! - `RedisLimiter` (feature `redis`): the same GCRA as [`TokenBucket`], kept
//!   in Redis, so that every process and machine of a workspace shares one
//!   budget and one pause.
//! - [`RateLimit`]: validated rates with presets for Customer.io's limits.
//! - [`Limiter`]: what everything that sends accepts; [`Unlimited`] for tests.
//! - [`RetryPolicy`]: exponential backoff with jitter, `Retry-After`
//!   ([`parse_retry_after`]), 429s that pause the shared limiter, a retry
//!   budget against retry storms, and calls marked safe or unsafe to repeat.
//! - [`Clock`], [`SystemClock`] and [`ManualClock`]: time is injected, so
//!   tests of timing logic are instant and deterministic.
//! - [`validate`]: Customer.io's size limits, checked before anything is sent.
//!
//! # Features
//!
//! - `redis` (off by default): `RedisLimiter`, `RedisLimiterBuilder` and
//!   `WhenUnreachable`, on the blocking client of the `redis` crate (no async
//!   runtime).
//!
//! # Errors
//!
//! One [`Error`] enum with structured variants, and [`Result`]: bad input
//! ([`Invalid`], nothing sent), the server's status with its message and
//! `Retry-After`, refused credentials (never retried), the wrong region,
//! timeouts and transport failures. [`Error::is_transient`] tells whether
//! trying again later may help. An invalid configuration cannot be built:
//! builders validate and name the setting at fault. No error, `Debug` output
//! or log line ever contains an API key.
//!
//! # Threads
//!
//! Every type here is `Send + Sync`. Clones of a [`Client`] share one
//! connection pool, its limiters and its retry budget; clones of a
//! [`TokenBucket`] share one bucket: hand a clone to each thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod adaptive;
mod app;
mod batch;
mod checkpoint;
mod client;
mod client_call;
mod clock;
mod credentials;
mod dead_letter;
mod device;
mod dispatcher;
mod dispatcher_stats;
mod error;
mod event;
mod event_id;
mod identifier;
mod import;
mod import_progress;
mod limiter;
mod operation;
mod rate_limit;
#[cfg(feature = "redis")]
mod redis_limiter;
#[cfg(feature = "redis")]
mod redis_link;
mod region;
mod request;
mod retry;
mod retry_after;
mod retry_budget;
mod ticket;
mod token_bucket;
mod track;
pub mod validate;

pub use crate::adaptive::{AdaptiveLimiter, AdaptiveLimiterBuilder};
pub use crate::app::{BroadcastTrigger, Delivery, TransactionalMessage};
pub use crate::batch::{Batch, BatchPacker, BatchResponse, ItemError};
pub use crate::checkpoint::Checkpoint;
pub use crate::client::{ApiClass, Client, ClientBuilder};
pub use crate::client_call::{CallTicket, ClientCall, ClientDispatcher, Reply};
pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::dead_letter::DeadLetter;
pub use crate::device::{Device, Platform};
pub use crate::dispatcher::{Dispatcher, DispatcherBuilder, SubmitError, TrySubmitError};
pub use crate::dispatcher_stats::DispatcherStats;
pub use crate::error::{Credential, Error, Result, TimeoutKind, TransportKind};
pub use crate::event::{Event, EventKind};
pub use crate::event_id::EventId;
pub use crate::identifier::Identifier;
pub use crate::import::{ImportMode, Importer, ImporterBuilder};
pub use crate::import_progress::{ImportFailure, ImportSummary, Progress};
pub use crate::limiter::{Limiter, Unlimited};
pub use crate::operation::Operation;
pub use crate::rate_limit::RateLimit;
#[cfg(feature = "redis")]
pub use crate::redis_limiter::{RedisLimiter, RedisLimiterBuilder, WhenUnreachable};
pub use crate::region::Region;
pub use crate::retry::{
    Call, Classify, Decision, Failure, Idempotency, Jitter, RetryPolicy, RetryPolicyBuilder,
    RetryStats,
};
pub use crate::retry_after::parse_retry_after;
pub use crate::ticket::{JobError, Outcome, Ticket};
pub use crate::token_bucket::{NotUntil, TokenBucket};
pub use crate::validate::Invalid;

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
