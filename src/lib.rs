//! Send data to Customer.io from blocking programs as fast as the workspace's
//! rate limits allow, never faster, and lose nothing.
//!
//! ```
//! use cio_ratelimit::{Call, Failure, RateLimit, RetryPolicy, TokenBucket};
//!
//! // One bucket per workspace and API class, shared by every thread.
//! let track = TokenBucket::from_limit(RateLimit::TRACK_API); // 80/s, burst 10
//! let policy = RetryPolicy::default();
//!
//! // Every attempt, retries included, waits for a permit; a 429 pauses
//! // everyone who shares the bucket; 5xx and timeouts back off with jitter.
//! let delivered = policy.run(&track, Call::safe("identify"), || {
//!     // ... send the request here ...
//!     Ok::<_, Failure>("200 OK")
//! });
//! assert_eq!(delivered, Ok("200 OK"));
//! ```
//!
//! # What is in the crate
//!
//! - [`TokenBucket`]: a blocking GCRA limiter guarded by a `parking_lot`
//!   mutex. In any window of length T it grants at most `burst + rate × T`
//!   permits, for any number of threads, in the order they asked.
//! - [`RateLimit`]: validated rates with presets for Customer.io's limits.
//! - [`Limiter`]: what everything that sends accepts; [`Unlimited`] for tests.
//! - [`RetryPolicy`]: exponential backoff with jitter, `Retry-After`
//!   ([`parse_retry_after`]), 429s that pause the shared limiter, a retry
//!   budget against retry storms, and calls marked safe or unsafe to repeat.
//! - [`Clock`], [`SystemClock`] and [`ManualClock`]: time is injected, so
//!   tests of timing logic are instant and deterministic.
//!
//! # Errors
//!
//! One [`Error`] enum with structured variants, and [`Result`]. An invalid
//! configuration cannot be built: constructors validate and name the setting
//! at fault.
//!
//! # Threads
//!
//! Every type here is `Send + Sync`. Clones of a [`TokenBucket`] share one
//! bucket, and clones of a [`RetryPolicy`] share one retry budget: hand a
//! clone to each thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod clock;
mod error;
mod limiter;
mod rate_limit;
mod retry;
mod retry_after;
mod retry_budget;
mod token_bucket;

pub use crate::clock::{Clock, ManualClock, SystemClock};
pub use crate::error::{Error, Result};
pub use crate::limiter::{Limiter, Unlimited};
pub use crate::rate_limit::RateLimit;
pub use crate::retry::{
    Call, Classify, Decision, Failure, Idempotency, Jitter, RetryPolicy, RetryPolicyBuilder,
};
pub use crate::retry_after::parse_retry_after;
pub use crate::token_bucket::{NotUntil, TokenBucket};

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
