//! A strict sliding window per rate class, and the exact "most arrivals in any window" count.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::ClassLimit;
use crate::snapshot::ClassStats;

/// The classes of requests Customer.io limits separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Class {
    /// Track API v1 and v2.
    Track,
    /// App API `/v1/send/*`.
    Transactional,
    /// Other App API calls.
    App,
    /// App API broadcast triggers.
    Broadcast,
    /// Pipelines API calls and batches.
    Pipelines,
}

impl Class {
    pub(crate) const ALL: [Class; 5] = [
        Class::Track,
        Class::Transactional,
        Class::App,
        Class::Broadcast,
        Class::Pipelines,
    ];

    /// The key in [`Snapshot::classes`](crate::Snapshot::classes).
    pub(crate) fn name(self) -> &'static str {
        match self {
            Class::Track => "track",
            Class::Transactional => "transactional",
            Class::App => "app",
            Class::Broadcast => "broadcast",
            Class::Pipelines => "pipelines",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

/// A strict sliding window: at most `limit` admitted requests in any half-open interval
/// `(t - window, t]`. It also keeps every arrival of the last window, so that the most arrivals
/// in any window is exact, not sampled: that maximum is always reached by a window ending at
/// an arrival, so checking at each arrival is enough.
#[derive(Debug)]
pub(crate) struct RateWindow {
    limit: ClassLimit,
    admitted: VecDeque<Instant>,
    arrivals: VecDeque<Instant>,
    stats: ClassStats,
}

impl RateWindow {
    pub(crate) fn new(limit: ClassLimit) -> Self {
        RateWindow {
            limit,
            admitted: VecDeque::new(),
            arrivals: VecDeque::new(),
            stats: ClassStats {
                limit: limit.limit,
                window_ms: duration_ms(limit.window),
                ..ClassStats::default()
            },
        }
    }

    /// Counts a request that arrived at `now`, whatever happens to it next.
    pub(crate) fn arrive(&mut self, now: Instant) {
        forget_before(&mut self.arrivals, now, self.limit.window);
        self.arrivals.push_back(now);
        self.stats.requests += 1;
        self.stats.max_in_window = self.stats.max_in_window.max(self.arrivals.len() as u64);
    }

    /// Admits a request at `now` if the window has room, or tells how long until it has.
    pub(crate) fn admit(&mut self, now: Instant) -> Result<(), Duration> {
        if self.limit.limit == 0 {
            self.stats.admitted += 1;
            return Ok(());
        }
        forget_before(&mut self.admitted, now, self.limit.window);
        if self.admitted.len() < self.limit.limit as usize {
            self.admitted.push_back(now);
            self.stats.admitted += 1;
            return Ok(());
        }
        self.stats.throttled += 1;
        // Room comes back when the oldest admitted request leaves the window.
        let oldest = self.admitted[0];
        Err((oldest + self.limit.window).saturating_duration_since(now))
    }

    pub(crate) fn stats(&self) -> ClassStats {
        self.stats.clone()
    }

    pub(crate) fn reset(&mut self) {
        *self = RateWindow::new(self.limit);
    }
}

/// Drops instants that are no longer inside `(now - window, now]`.
fn forget_before(instants: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while let Some(&first) = instants.front() {
        if first + window <= now {
            instants.pop_front();
        } else {
            break;
        }
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(limit: u32, ms: u64) -> RateWindow {
        RateWindow::new(ClassLimit {
            limit,
            window: Duration::from_millis(ms),
        })
    }

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn admits_up_to_the_limit_then_says_how_long_to_wait() {
        let start = Instant::now();
        let mut w = window(3, 1000);
        assert!(w.admit(at(start, 0)).is_ok());
        assert!(w.admit(at(start, 100)).is_ok());
        assert!(w.admit(at(start, 200)).is_ok());
        assert_eq!(w.admit(at(start, 300)), Err(Duration::from_millis(700)));
        // The first admitted request leaves the window at exactly 1000 ms.
        assert_eq!(w.admit(at(start, 999)), Err(Duration::from_millis(1)));
        assert!(w.admit(at(start, 1000)).is_ok());
        assert!(w.admit(at(start, 1050)).is_err());
        let stats = w.stats();
        assert_eq!((stats.admitted, stats.throttled), (4, 3));
    }

    #[test]
    fn refused_requests_do_not_take_room() {
        let start = Instant::now();
        let mut w = window(1, 1000);
        assert!(w.admit(at(start, 0)).is_ok());
        for ms in (100..1000).step_by(100) {
            assert!(w.admit(at(start, ms)).is_err());
        }
        assert!(w.admit(at(start, 1000)).is_ok());
    }

    #[test]
    fn zero_means_unlimited() {
        let start = Instant::now();
        let mut w = window(0, 1000);
        for _ in 0..10_000 {
            assert!(w.admit(start).is_ok());
        }
        assert_eq!(w.stats().admitted, 10_000);
    }

    #[test]
    fn max_in_window_is_exact() {
        let start = Instant::now();
        let mut w = window(2, 1000);
        // 3 in (0, 1000], then a burst of 4 at 1500..1800: the window (800, 1800] holds 5
        // arrivals (900 + the four), but no window holds 6.
        for ms in [0, 500, 900, 1500, 1600, 1700, 1800] {
            w.arrive(at(start, ms));
        }
        assert_eq!(w.stats().max_in_window, 5);
        assert_eq!(w.stats().requests, 7);
    }

    #[test]
    fn an_arrival_exactly_one_window_later_is_in_a_new_window() {
        let start = Instant::now();
        let mut w = window(1, 1000);
        w.arrive(at(start, 0));
        w.arrive(at(start, 1000));
        assert_eq!(w.stats().max_in_window, 1);
        w.arrive(at(start, 1999));
        assert_eq!(w.stats().max_in_window, 2);
    }

    #[test]
    fn reset_forgets_everything_but_the_limit() {
        let start = Instant::now();
        let mut w = window(1, 1000);
        w.arrive(start);
        assert!(w.admit(start).is_ok());
        w.reset();
        assert_eq!(
            w.stats(),
            ClassStats {
                limit: 1,
                window_ms: 1000,
                ..ClassStats::default()
            }
        );
        assert!(w.admit(start).is_ok());
    }
}
