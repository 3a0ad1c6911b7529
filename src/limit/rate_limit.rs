//! A rate and a burst, validated, with presets for Customer.io's documented limits.

use std::time::Duration;

use crate::error::{Error, Result};

/// A validated rate limit: a steady rate of permits per second and a burst.
///
/// `burst` is the most permits an idle limiter grants at once. A limiter built
/// from a `RateLimit` grants, in any window of length T, at most
/// `burst + per_second × T` permits.
///
/// The presets follow Customer.io's documented limits with headroom, so that
/// no 1 s window can exceed the server's limit; every one can be overridden:
///
/// ```
/// use cio_ratelimit::RateLimit;
///
/// let track = RateLimit::TRACK_API;
/// assert_eq!((track.per_second(), track.burst()), (80.0, 10));
///
/// // A workspace with a raised limit:
/// let raised = RateLimit::new(400.0, 40)?;
/// assert_eq!(raised.max_in(std::time::Duration::from_secs(1)), 440);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    per_second: f64,
    burst: u32,
}

impl RateLimit {
    /// Track API calls (identify, events, devices, batches): 80/s, burst 10.
    /// Customer.io allows about 100/s per workspace; no 1 s window goes above 90.
    pub const TRACK_API: RateLimit = RateLimit::preset(80.0, 10);

    /// Transactional App API sends (`/v1/send/email`, `/v1/send/push`): 80/s,
    /// burst 10, under the same ~100/s workspace limit.
    pub const TRANSACTIONAL_API: RateLimit = RateLimit::preset(80.0, 10);

    /// Other App API calls: 8/s, burst 2 (Customer.io allows 10/s).
    pub const APP_API: RateLimit = RateLimit::preset(8.0, 2);

    /// Broadcast triggers (`/v1/campaigns/{id}/triggers`): 1 per 10 s, burst 1,
    /// exactly Customer.io's limit.
    pub const BROADCAST_TRIGGERS: RateLimit = RateLimit::preset(0.1, 1);

    /// Pipelines API calls (`/v1/identify`, ..., `/v1/batch`): 50/s, burst 5.
    /// Customer.io's Pipelines API reference gives payload limits (32 KB a
    /// call, 500 KB a batch) but no request rate, so this preset stays well
    /// under the Track API's ~100/s fair use; raise it, and let a learning
    /// [`SlidingWindow`](crate::SlidingWindow) find the workspace's rate.
    pub const PIPELINES_API: RateLimit = RateLimit::preset(50.0, 5);

    /// Bulk imports: 50/s, burst 5, leaving room for the workspace's live traffic.
    pub const BULK_IMPORT: RateLimit = RateLimit::preset(50.0, 5);

    const fn preset(per_second: f64, burst: u32) -> RateLimit {
        assert!(per_second.is_finite() && per_second > 0.0 && burst > 0);
        RateLimit { per_second, burst }
    }

    /// A rate limit of `per_second` permits per second with bursts of up to `burst`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `per_second` is not finite or not positive,
    /// or `burst` is 0.
    pub fn new(per_second: f64, burst: u32) -> Result<RateLimit> {
        check_rate(per_second)?;
        if burst == 0 {
            return Err(Error::invalid("burst", burst, "at least 1"));
        }
        Ok(RateLimit { per_second, burst })
    }

    /// `per_second` with the burst the presets allow: a tenth of a second's
    /// worth of permits, at least 1.
    ///
    /// ```
    /// use cio_ratelimit::RateLimit;
    ///
    /// assert_eq!(RateLimit::at(200.0)?.burst(), 20);
    /// assert_eq!(RateLimit::at(50.0)?, RateLimit::BULK_IMPORT);
    /// assert_eq!(RateLimit::at(0.5)?.burst(), 1);
    /// # Ok::<(), cio_ratelimit::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `per_second` is not finite or not positive.
    pub fn at(per_second: f64) -> Result<RateLimit> {
        check_rate(per_second)?;
        RateLimit::new(per_second, ((per_second / 10.0) as u32).max(1))
    }

    /// This limit with another rate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `per_second` is not finite or not positive.
    pub fn with_rate(self, per_second: f64) -> Result<RateLimit> {
        RateLimit::new(per_second, self.burst)
    }

    /// This limit with another burst.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] if `burst` is 0.
    pub fn with_burst(self, burst: u32) -> Result<RateLimit> {
        RateLimit::new(self.per_second, burst)
    }

    /// Permits per second.
    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// The most permits granted at once by an idle limiter.
    pub fn burst(&self) -> u32 {
        self.burst
    }

    /// The most permits granted in any window of length `window`:
    /// `burst + per_second × window`, rounded down.
    pub fn max_in(&self, window: Duration) -> u64 {
        let steady = (self.per_second * window.as_secs_f64()).floor();
        u64::from(self.burst).saturating_add(steady as u64)
    }
}

/// Rejects rates a limiter cannot honour.
pub(crate) fn check_rate(per_second: f64) -> Result<()> {
    if per_second.is_finite() && per_second > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "rate_per_sec",
            per_second,
            "a finite number of permits per second greater than 0",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_stay_under_customer_io_limits_in_every_second() {
        let second = Duration::from_secs(1);
        assert!(RateLimit::TRACK_API.max_in(second) <= 90);
        assert!(RateLimit::TRANSACTIONAL_API.max_in(second) <= 90);
        assert!(RateLimit::APP_API.max_in(second) <= 10);
        assert!(RateLimit::BROADCAST_TRIGGERS.max_in(Duration::from_secs(10)) <= 2);
        assert_eq!(
            RateLimit::BROADCAST_TRIGGERS.max_in(Duration::from_millis(9_999)),
            1
        );
        assert_eq!(RateLimit::BULK_IMPORT.max_in(second), 55);
        assert!(RateLimit::PIPELINES_API.max_in(second) <= 60);
    }

    #[test]
    fn invalid_rates_and_bursts_are_refused_with_the_setting_named() {
        for rate in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let err = RateLimit::new(rate, 1).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidConfig {
                        setting: "rate_per_sec",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let err = RateLimit::new(1.0, 0).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    setting: "burst",
                    ..
                }
            ),
            "{err}"
        );
        assert!(RateLimit::TRACK_API.with_rate(-3.0).is_err());
        assert_eq!(RateLimit::TRACK_API.with_burst(1).unwrap().burst(), 1);
    }
}
