//! One budget shared through Redis by every process, on every machine, that
//! sends to a workspace, and what they learn of its limit.
//!
//! # Overview
//!
//! - [`RedisLimiter`]: the [`Limiter`](crate::Limiter) that keeps
//!   [`SlidingWindow`](crate::SlidingWindow)'s promise across processes; built
//!   with [`RedisLimiter::builder`] from a [`RateLimit`](crate::RateLimit).
//! - [`RedisLimiterBuilder`]: where the Redis, the workspace and the class are
//!   given, checked without connecting.
//! - [`WhenUnreachable`]: wait for Redis, wait a bounded time, or fall back to
//!   a local share of the rate while it is away.
//! - [`guide`]: how it works, TLS, learning together, shared settings, and
//!   what happens when Redis refuses or cannot be reached.
//!
//! # When should I use this?
//!
//! When more than one process sends to one workspace at once: two jobs, or
//! one job on several machines. A single process needs no Redis: a
//! [`SlidingWindow`](crate::SlidingWindow) shared by its threads keeps the
//! same promise.
//!
//! Inside, one file per concern: `builder` (the settings), `limiter` (the
//! handle and the [`Limiter`](crate::Limiter) it is), `permits` (the
//! reserve/sleep protocol), `settings` (shared-settings negotiation and
//! leases), `shared_learning` (what 429s taught, written compare-and-set),
//! `link` (the connections, timeouts and outages), and the Lua scripts
//! `limiter.lua` and `settings.lua` that Redis runs atomically.

mod builder;
pub mod guide;
mod limiter;
mod link;
mod permits;
mod settings;
mod shared_learning;
mod when_unreachable;

pub use builder::RedisLimiterBuilder;
pub use limiter::RedisLimiter;
pub use when_unreachable::WhenUnreachable;
