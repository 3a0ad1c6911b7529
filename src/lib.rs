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
//! - [`Client`]: Track v1 (identify, track, anonymous and invite events,
//!   suppress, delete, devices, merge, manual segments, push metrics), Track
//!   v2 ([`Operation`], [`BatchPacker`], batches with per-item rejections as
//!   data), App API (transactional email, push, SMS, in-app and inbox
//!   messages, broadcast triggers; reads: people by email, a person's
//!   attributes and segments, segments and their members, people exports),
//!   the Pipelines API ([`PipelinesCall`], [`PipelinesBatchPacker`], strict
//!   mode always on, bad calls isolated from a batch), US and EU [`Region`]s.
//! - [`SlidingWindow`]: the client's default limiter. "N per W" means what
//!   the server means: at most N requests in any window W (with a margin for
//!   jitter), so a client told the workspace's limit gets no 429. It learns
//!   the real limit below the configured one from the server's 429s, by
//!   what the server accepted, and reports it ([`RateChange`]).
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
//!   ([`parse_retry_after`]), 429s that pause the shared limiter, and calls
//!   marked safe or unsafe to repeat. Retries take permits from the limiter
//!   like first attempts, so they cannot storm the server; an opt-in retry
//!   budget covers limiters that do not bound the rate. [`RetryStats`]
//!   counts what each call cost.
//! - [`Clock`], [`SystemClock`] and [`ManualClock`]: time is injected, so
//!   tests of timing logic are instant and deterministic.
//! - [`validate`]: Customer.io's size limits, checked before anything is sent.
//!
//! # Features
//!
//! - `redis` (off by default): `RedisLimiter`, `RedisLimiterBuilder` and
//!   `WhenUnreachable`, on the blocking client of the `redis` crate (no async
//!   runtime), with `rediss://` over rustls.
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
//! connection pool, its limiters and its retry policy; clones of a
//! [`TokenBucket`] share one bucket: hand a clone to each thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod error;
mod import;
mod limit;
mod queue;
mod retry;

pub use crate::client::validate;
pub use crate::client::{
    Batch, BatchPacker, BatchResponse, BroadcastTrigger, Client, ClientBuilder, Delivery, Device,
    Event, EventId, EventKind, Export, Identifier, Invalid, ItemError, MAX_SEGMENT_IDS_PER_REQUEST,
    Operation, PersonIdentifiers, PersonProfile, PipelinesBatch, PipelinesBatchPacker,
    PipelinesCall, PipelinesCallType, PipelinesUser, Platform, PushEvent, PushMetric, Region,
    Segment, SegmentMembers, TransactionalMessage,
};
pub use crate::error::{Credential, Error, Result, TimeoutKind, TransportKind};
pub use crate::import::{
    Checkpoint, DeadLetter, ImportFailure, ImportMode, ImportSummary, Importer, ImporterBuilder,
    Progress,
};
pub use crate::limit::{
    AdaptiveLimiter, AdaptiveLimiterBuilder, ApiClass, Clock, Limiter, ManualClock, NotUntil,
    RateChange, RateLimit, SlidingWindow, SlidingWindowBuilder, SystemClock, TokenBucket,
    Unlimited,
};
#[cfg(feature = "redis")]
pub use crate::limit::{RedisLimiter, RedisLimiterBuilder, WhenUnreachable};
pub use crate::queue::{
    CallTicket, ClientCall, ClientDispatcher, Dispatcher, DispatcherBuilder, DispatcherStats,
    JobError, Outcome, Reply, SubmitError, Ticket, TrySubmitError,
};
pub use crate::retry::{
    Call, Classify, Failure, Idempotency, Jitter, RetryPolicy, RetryPolicyBuilder, RetryStats,
    parse_retry_after,
};

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
