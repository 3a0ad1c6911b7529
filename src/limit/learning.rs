//! The control law that learns a workspace's real limit from its 429s, and
//! `RateChange`, how a limiter reports what it learned.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

/// The most rate changes a limiter remembers; older ones are forgotten.
const REMEMBERED_CHANGES: usize = 64;

/// The longest a learned rate is held before probing again, however often
/// probes have failed.
const LONGEST_HOLD: u64 = 300_000_000_000;

/// One change of a learning limiter's rate: when, from what, to what, and why.
///
/// Its `Display` is what a progress line shows, e.g.
/// `throttled at 37/s; now 36/s` or `probing: now 40/s`.
///
/// ```
/// use cio_ratelimit::{Limiter, ManualClock, RateLimit, SlidingWindow};
///
/// let clock = ManualClock::new();
/// let limiter = SlidingWindow::builder(RateLimit::new(50.0, 5)?).clock(clock.clone()).build()?;
/// for _ in 0..37 {
///     limiter.acquire();
///     limiter.record_success(); // the server accepted 37 ...
/// }
/// limiter.throttled(std::time::Duration::from_secs(1)); // ... then answered 429
/// let change = limiter.rate_changes()[0];
/// assert_eq!(change.to_string(), "throttled at 37/s; now 36/s"); // less 4 % headroom
/// assert_eq!(limiter.rate(), Some(36.0));
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateChange {
    /// When it changed, since the limiter was built.
    pub at: Duration,
    /// The rate before, in permits per second.
    pub from: f64,
    /// The rate after, in permits per second.
    pub to: f64,
    /// On a 429: what the server had accepted in the trailing window, per
    /// second. `None` when the limiter raised its rate to probe for more.
    pub throttled_at: Option<f64>,
}

impl fmt::Display for RateChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.throttled_at {
            Some(accepted) => write!(
                f,
                "throttled at {}/s; now {}/s",
                Shown(accepted),
                Shown(self.to)
            ),
            None => write!(f, "probing: now {}/s", Shown(self.to)),
        }
    }
}

/// A rate as people write it: `37`, `35.6`, `0.1`.
struct Shown(f64);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rounded = (self.0 * 10.0).round() / 10.0;
        if rounded == rounded.trunc() {
            write!(f, "{rounded:.0}")
        } else {
            write!(f, "{rounded:.1}")
        }
    }
}

/// What a 429 meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttle {
    /// The server accepted fewer than the limit: the limit is now what it
    /// accepted, less headroom.
    Lowered,
    /// The server had accepted the whole limit: the requests were not too
    /// many but arrived too close together.
    AtLimit,
    /// Not learning, or part of an overload already counted.
    Counted,
}

/// What the server accepted, less 4 %, rounded (at least one permit): room
/// for the server's window and the client's to disagree by twice the margin.
fn headroom(accepted: u32) -> u32 {
    let less = (f64::from(accepted) * 0.04).round() as u32;
    accepted.saturating_sub(less.max(1))
}

/// The settings of the law, in permits per window and nanoseconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Law {
    /// The configured limit: the law never goes above it.
    pub(crate) ceiling: u32,
    /// The law never goes below it.
    pub(crate) floor: u32,
    /// The server's window, over which accepted requests are counted.
    pub(crate) window: u64,
    /// How long a learned limit is held, without a 429, before probing above it.
    pub(crate) hold: u64,
    /// Whether 429s move the limit at all.
    pub(crate) learning: bool,
}

/// Where the law stands. Times are nanoseconds since the limiter's origin.
///
/// On a 429 the limit becomes what the server accepted in the trailing
/// window (measured, as BBR measures delivery, not guessed), less 4 %
/// headroom; if the server had accepted the whole limit, the limit stays
/// (the requests arrived too close together: the limiter widens its margin).
/// 429s of the same overload (until the pause ends, and at least one window)
/// count once. After `hold` without a 429 it probes: +1, +2, +4, ... per
/// window up to the ceiling. A 429 met while probing doubles the next hold,
/// up to 5 minutes; reaching the ceiling resets it.
#[derive(Debug)]
pub(crate) struct Learned {
    law: Law,
    /// Permits per window in force.
    limit: u32,
    /// Answers the server accepted in the last window, by when they came.
    accepted: VecDeque<u64>,
    quiet_until: u64,
    hold: u64,
    /// When probing may raise the limit next; `None` at the ceiling.
    probe_at: Option<u64>,
    step: u32,
    /// The limit the last 429 left: above it, a 429 means a probe failed.
    settled: u32,
    changes: VecDeque<RateChange>,
}

impl Learned {
    pub(crate) fn new(law: Law) -> Learned {
        Learned {
            law,
            limit: law.ceiling,
            accepted: VecDeque::new(),
            quiet_until: 0,
            hold: law.hold,
            probe_at: None,
            step: 1,
            settled: law.ceiling,
            changes: VecDeque::new(),
        }
    }

    /// Permits per window in force.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    pub(crate) fn law(&self) -> Law {
        self.law
    }

    /// The rate in force, in permits per second.
    pub(crate) fn rate(&self) -> f64 {
        self.per_second(self.limit)
    }

    pub(crate) fn changes(&self) -> Vec<RateChange> {
        self.changes.iter().copied().collect()
    }

    /// The server accepted a request at `now`. Returns whether the limit rose.
    pub(crate) fn accepted(&mut self, now: u64) -> bool {
        if !self.law.learning {
            return false;
        }
        self.forget_before(now);
        self.accepted.push_back(now);
        self.probe(now)
    }

    /// The server answered 429 at `now` and asked for a pause of `pause`
    /// nanoseconds: what it means for the limit.
    pub(crate) fn throttled(&mut self, now: u64, pause: u64) -> Throttle {
        if !self.law.learning || now < self.quiet_until {
            return Throttle::Counted;
        }
        self.forget_before(now);
        let resume = now.saturating_add(pause);
        self.quiet_until = resume.max(now.saturating_add(self.law.window));
        let measured = u32::try_from(self.accepted.len()).unwrap_or(u32::MAX);
        if measured >= self.limit {
            return Throttle::AtLimit;
        }
        let next = headroom(measured).max(self.law.floor);
        self.hold = if self.limit > self.settled {
            self.hold.saturating_mul(2).min(LONGEST_HOLD)
        } else {
            self.hold
        };
        self.probe_at = Some(resume.saturating_add(self.hold));
        self.step = 1;
        self.settled = next;
        self.record(now, next, Some(self.per_second(measured)));
        Throttle::Lowered
    }

    /// Raises the limit by the next step if it is time to probe.
    fn probe(&mut self, now: u64) -> bool {
        let Some(at) = self.probe_at else {
            return false;
        };
        if now < at {
            return false;
        }
        let next = self.limit.saturating_add(self.step).min(self.law.ceiling);
        self.step = self.step.saturating_mul(2);
        if next == self.law.ceiling {
            self.probe_at = None;
            self.hold = self.law.hold;
        } else {
            self.probe_at = Some(now.saturating_add(self.law.window));
        }
        self.record(now, next, None);
        true
    }

    fn record(&mut self, now: u64, next: u32, throttled_at: Option<f64>) {
        let change = RateChange {
            at: Duration::from_nanos(now),
            from: self.rate(),
            to: self.per_second(next),
            throttled_at,
        };
        // Info, not a warning: the 429 that caused it is already warned of.
        log::info!("rate limit: {change}");
        if self.changes.len() == REMEMBERED_CHANGES {
            self.changes.pop_front();
        }
        self.changes.push_back(change);
        self.limit = next;
    }

    fn forget_before(&mut self, now: u64) {
        while self
            .accepted
            .front()
            .is_some_and(|&at| at.saturating_add(self.law.window) <= now)
        {
            self.accepted.pop_front();
        }
    }

    fn per_second(&self, permits: u32) -> f64 {
        f64::from(permits) * 1e9 / self.law.window as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: u64 = 1_000_000_000;

    fn law() -> Law {
        Law {
            ceiling: 50,
            floor: 3,
            window: SECOND,
            hold: 10 * SECOND,
            learning: true,
        }
    }

    /// `n` answers accepted evenly over the window ending at `end`.
    fn accept(learned: &mut Learned, n: u64, end: u64) {
        for i in 0..n {
            learned.accepted(end - SECOND + (i + 1) * SECOND / n);
        }
    }

    #[test]
    fn a_429_sets_the_limit_to_what_the_server_accepted_in_the_window() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 20, SECOND); // an older window: forgotten
        accept(&mut learned, 37, 2 * SECOND);
        assert_eq!(learned.throttled(2 * SECOND, SECOND), Throttle::Lowered);
        assert_eq!(learned.limit(), 36, "37, less 4 % headroom");
        let change = learned.changes()[0];
        assert_eq!((change.from, change.to), (50.0, 36.0));
        assert_eq!(change.throttled_at, Some(37.0));
        assert_eq!(change.to_string(), "throttled at 37/s; now 36/s");
    }

    #[test]
    fn the_limit_never_rises_on_a_429_nor_falls_below_the_floor() {
        let mut learned = Learned::new(law());
        assert_eq!(learned.throttled(SECOND, 0), Throttle::Lowered);
        assert_eq!(learned.limit(), 3, "nothing accepted: the floor");
        let mut learned = Learned::new(law());
        learned.limit = 30;
        accept(&mut learned, 45, SECOND);
        assert_eq!(learned.throttled(SECOND, 0), Throttle::AtLimit);
        assert_eq!(learned.limit(), 30);
        assert!(learned.changes().is_empty());
    }

    #[test]
    fn headroom_is_four_percent_and_at_least_one() {
        let cases = [
            (100, 96),
            (60, 58),
            (37, 36),
            (33, 32),
            (20, 19),
            (5, 4),
            (1, 0),
            (0, 0),
        ];
        for (accepted, limit) in cases {
            assert_eq!(headroom(accepted), limit, "{accepted}");
        }
    }

    #[test]
    fn a_burst_of_429s_from_one_overload_counts_once() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 40, SECOND);
        assert_eq!(learned.throttled(SECOND, 3 * SECOND), Throttle::Lowered);
        let counted = Throttle::Counted;
        assert_eq!(
            learned.throttled(2 * SECOND, 0),
            counted,
            "within the pause"
        );
        assert_eq!(learned.throttled(4 * SECOND - 1, 0), counted);
        assert_eq!(
            learned.throttled(4 * SECOND, 0),
            Throttle::Lowered,
            "a new overload"
        );
        let mut learned = Learned::new(law());
        accept(&mut learned, 50, SECOND);
        assert_eq!(learned.throttled(SECOND, 0), Throttle::AtLimit);
        assert_eq!(
            learned.throttled(2 * SECOND - 1, 0),
            counted,
            "within one window"
        );
        assert!(learned.changes().is_empty());
    }

    #[test]
    fn after_the_hold_it_probes_up_faster_and_faster_to_the_ceiling_never_above() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 20, SECOND);
        learned.throttled(SECOND, SECOND); // resume at 2 s, probe at 12 s
        accept(&mut learned, 19, 12 * SECOND - 1);
        assert_eq!(learned.limit(), 19, "held");
        let mut limits = Vec::new();
        for s in 12..20 {
            learned.accepted(s * SECOND);
            limits.push(learned.limit());
        }
        assert_eq!(limits, [20, 22, 26, 34, 50, 50, 50, 50]);
        let last = *learned.changes().last().unwrap();
        assert_eq!(last.to_string(), "probing: now 50/s");
    }

    #[test]
    fn a_failed_probe_doubles_the_hold_and_reaching_the_ceiling_resets_it() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 20, SECOND);
        learned.throttled(SECOND, 0); // probe at 11 s
        learned.accepted(11 * SECOND);
        assert_eq!(learned.limit(), 20);
        accept(&mut learned, 19, 12 * SECOND);
        assert_eq!(learned.throttled(12 * SECOND, 0), Throttle::Lowered);
        assert_eq!(learned.limit(), 18);
        learned.accepted(31 * SECOND);
        assert_eq!(learned.limit(), 18, "the hold is now 20 s");
        learned.accepted(32 * SECOND);
        assert_eq!(learned.limit(), 19);
        for s in 33..40 {
            learned.accepted(s * SECOND);
        }
        assert_eq!(learned.limit(), 50);
        assert_eq!(learned.hold, 10 * SECOND);
    }

    #[test]
    fn without_learning_nothing_moves() {
        let mut learned = Learned::new(Law {
            learning: false,
            ..law()
        });
        assert_eq!(learned.throttled(SECOND, 0), Throttle::Counted);
        assert!(!learned.accepted(2 * SECOND));
        assert_eq!(learned.limit(), 50);
        assert!(learned.changes().is_empty());
    }

    #[test]
    fn rates_show_as_people_write_them() {
        assert_eq!(Shown(37.0).to_string(), "37");
        assert_eq!(Shown(35.63).to_string(), "35.6");
        assert_eq!(Shown(0.1).to_string(), "0.1");
    }
}
