//! The retry room: what a failed attempt means, and whether to try again.
//!
//! # Overview
//!
//! - [`RetryPolicy`]: the blocking retry loop. It takes a permit from a
//!   [`Limiter`](crate::Limiter) before every attempt, backs off with jitter
//!   after transient failures, and pauses the shared limiter on a 429.
//! - [`Failure`] and [`Classify`]: how an attempt failed. One table says
//!   what each failure means (retry, pause, reject the content, or stop);
//!   the loop, [`Error::is_transient`](crate::Error::is_transient) and the
//!   importer all ask it.
//! - [`RetryStats`]: attempts, retries and 429s, counted per call.
//! - [`Call`] and [`Idempotency`]: whether a call may be repeated.
//! - [`parse_retry_after`]: both RFC 9110 forms of `Retry-After`.
//!
//! This room uses the limit room and nothing above it: it knows nothing of
//! HTTP clients, queues or imports.

pub(crate) mod attempt_gate;
pub(crate) mod budget;
pub(crate) mod classify;
pub(crate) mod policy;
pub(crate) mod retry_after;
pub(crate) mod stats;

pub use classify::{Classify, Failure};
pub use policy::{Call, Idempotency, Jitter, RetryPolicy, RetryPolicyBuilder};
pub use retry_after::parse_retry_after;
pub use stats::RetryStats;
