//! What a `RedisLimiter` does while Redis cannot be reached.

use std::time::Duration;

/// What a [`RedisLimiter`](super::RedisLimiter) does while Redis cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub enum WhenUnreachable {
    /// Grant nothing until Redis answers again: waiting callers try it every
    /// 50 ms at first, backing off to once a second. The shared budget is
    /// never overspent; the job stalls for as long as Redis is away (or
    /// until its [stop flag](super::RedisLimiterBuilder::stop_when) is set). The
    /// default. A Redis that refuses the limiter is not waited for, in any
    /// mode: see [`Error::RedisRefused`](crate::Error::RedisRefused).
    Wait,
    /// Grant from a local [`TokenBucket`](crate::TokenBucket) at `share` of the rate and of the
    /// burst (at least 1) until Redis answers again; meanwhile one caller at
    /// a time tries Redis again, every 50 ms at first, backing off to once a
    /// second. Give each process its part of the workspace, e.g. 0.25 for one
    /// of four processes, so that together they stay under the limit. Redis
    /// does not know what was granted locally: in the moments around the
    /// switch back, a window may hold both.
    FallBack {
        /// This process's part of the rate, in (0, 1].
        share: f64,
    },
    /// Like [`Wait`](WhenUnreachable::Wait), but only this long from the
    /// first failure: past it, every caller is let go at once without a
    /// permit and [`Limiter::check`](crate::Limiter::check) fails with
    /// [`Error::RedisUnreachable`](crate::Error::RedisUnreachable), so a `Client` fails its requests, as
    /// transient errors, without sending them, until Redis answers again.
    /// For jobs that must end (and be resumed) rather than hang through a
    /// long outage. Code that takes permits itself must call `check` after
    /// `acquire`, on the same thread, as the client does, or it would send
    /// without a permit; `check` fails for a caller let go even if Redis
    /// came back since.
    WaitAtMost(Duration),
}
