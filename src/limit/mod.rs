//! The limit room: how many requests may go out, and when.
//!
//! # Overview
//!
//! - [`Limiter`]: the trait everything that sends waits on, one permit per
//!   request; [`Unlimited`] grants everything but honours a pause.
//! - [`SlidingWindow`]: at most N requests in any window W, as the server
//!   counts them, learning the workspace's real N from its 429s; the
//!   client's default. [`RateChange`] reports what it learned.
//! - [`TokenBucket`]: a blocking GCRA bucket, at most `burst + rate × T`
//!   permits in any window T, served in arrival order.
//! - [`RedisLimiter`] (feature `redis`, in [`redis`], with a
//!   [guide](redis::guide)): one budget shared by every process that points
//!   at the same Redis key, learning the workspace's limit once for all of
//!   them with `SlidingWindow`'s law.
//! - [`RateLimit`]: a validated rate, with presets for Customer.io's limits;
//!   [`ApiClass`]: the budgets Customer.io keeps apart.
//! - [`Clock`], [`SystemClock`], [`ManualClock`]: time is injected, so
//!   timing logic is tested without sleeping.
//!
//! # Building a limiter
//!
//! Every limiter is built from a validated [`RateLimit`]:
//! `new(limit)`, `with_clock(limit, clock)` or `builder(limit)` when it has
//! more to set ([`SlidingWindow`] has all three, [`RedisLimiter`] a builder).
//! [`TokenBucket::new`] keeps its `(rate, burst)` arguments, so its
//! [`RateLimit`] forms are [`TokenBucket::from_limit`] and
//! [`TokenBucket::with_clock`]. [`Unlimited`] has no limit: `new()` and
//! `with_clock(clock)`.
//!
//! ```
//! use cio_ratelimit::limit::ManualClock;
//! use cio_ratelimit::{RateLimit, SlidingWindow, TokenBucket};
//! use std::time::Duration;
//!
//! let clock = ManualClock::new();
//! let window = SlidingWindow::builder(RateLimit::TRACK_API)
//!     .window(Duration::from_secs(10))
//!     .clock(clock.clone())
//!     .build()?;
//! let bucket = TokenBucket::with_clock(RateLimit::new(80.0, 10)?, clock);
//! assert!(bucket.try_acquire());
//! # let _ = window;
//! # Ok::<(), cio_ratelimit::Error>(())
//! ```
//!
//! Inherent methods mean what the [`Limiter`] methods of the same name mean.
//! Where a limiter always has a rate, `rate_per_sec` says it as a number
//! ([`TokenBucket::rate_per_sec`], [`RedisLimiter::rate_per_sec`]) where
//! [`Limiter::rate`] says an `Option`; [`TokenBucket::acquire_now`] takes a
//! permit or says how long until one ([`NotUntil`]).
//!
//! This room depends on nothing else in the crate but [`Error`](crate::Error).
//! The retry loop, the client, the queue and the importer all wait here.

pub(crate) mod api_class;
pub(crate) mod clock;
pub(crate) mod learning;
pub(crate) mod limiter;
pub(crate) mod rate_limit;
#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub mod redis;
pub(crate) mod sliding_window;
pub(crate) mod token_bucket;

pub use api_class::ApiClass;
pub use clock::{Clock, ManualClock, SystemClock};
pub use learning::RateChange;
pub use limiter::{Limiter, Unlimited};
pub use rate_limit::RateLimit;
#[cfg(feature = "redis")]
pub use redis::{RedisLimiter, RedisLimiterBuilder, WhenUnreachable};
pub use sliding_window::{SlidingWindow, SlidingWindowBuilder};
pub use token_bucket::{NotUntil, TokenBucket};
