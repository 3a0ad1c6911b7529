//! The control law that learns a workspace's real limit from its 429s, and
//! `RateChange`, how a limiter reports what it learned.

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::limit::clock::duration_nanos;
use crate::limit::rate_limit::RateLimit;

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

impl Law {
    /// The law for `limit` (its rate is the ceiling) counted over `window`
    /// (default 1 s, or `1 / rate` for rates below 1 per second), with a
    /// `floor` in permits per second (default a twentieth of the ceiling)
    /// and a hold of `probe_after` before probing.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a window too short for
    /// one permit at the rate (zero, or under `1 / rate`), a floor that is
    /// not a positive rate or is above the configured rate, or a zero
    /// `probe_after`.
    pub(crate) fn new(
        limit: RateLimit,
        window: Option<Duration>,
        floor: Option<f64>,
        probe_after: Duration,
        learning: bool,
    ) -> Result<Law> {
        let rate = limit.per_second();
        // A rate slower than one a year gets one a year.
        let chosen =
            window.unwrap_or_else(|| Duration::from_secs_f64((1.0 / rate).clamp(1.0, 3.2e7)));
        if chosen.is_zero() {
            return Err(Error::invalid("window", "0s", "more than zero"));
        }
        if window.is_some() && rate * chosen.as_secs_f64() + 1e-9 < 1.0 {
            return Err(Error::invalid(
                "window",
                format_args!("{chosen:?}"),
                "long enough for one permit at the rate: at least 1 / rate",
            ));
        }
        let per_window = |rate: f64| {
            let permits = (rate * chosen.as_secs_f64() + 1e-9).floor();
            permits.clamp(1.0, f64::from(u32::MAX)) as u32
        };
        let ceiling = per_window(rate);
        let floor = match floor {
            None => ceiling.div_ceil(20),
            Some(floor) if floor.is_finite() && floor > 0.0 && floor <= rate => per_window(floor),
            Some(floor) => {
                return Err(Error::invalid(
                    "floor",
                    floor,
                    "a rate above 0 and no higher than the configured rate",
                ));
            }
        };
        if probe_after.is_zero() {
            return Err(Error::invalid("probe_after", "0s", "more than zero"));
        }
        Ok(Law {
            ceiling,
            floor,
            window: duration_nanos(chosen),
            hold: duration_nanos(probe_after),
            learning,
        })
    }

    /// `permits` per window, per second.
    pub(crate) fn per_second(&self, permits: u32) -> f64 {
        f64::from(permits) * 1e9 / self.window as f64
    }
}

/// Where the law stands, apart from what the server accepted: all that
/// processes sharing one budget must share to learn once. Times are
/// nanoseconds on the clock the caller measures `now` with.
///
/// On a 429 the limit becomes what the server accepted in the trailing
/// window (measured, as BBR measures delivery, not guessed), less 4 %
/// headroom; if the server had accepted the whole limit, the limit stays
/// (the requests arrived too close together). 429s of the same overload
/// (until the pause ends, and at least one window) count once. After `hold`
/// without a 429 it probes: +1, +2, +4, ... per window up to the ceiling. A
/// 429 met while probing doubles the next hold, up to 5 minutes; reaching
/// the ceiling resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Course {
    /// Permits per window in force.
    pub(crate) limit: u32,
    /// Until when a 429 belongs to the overload already counted.
    pub(crate) quiet_until: u64,
    pub(crate) hold: u64,
    /// When probing may raise the limit next; `None` at the ceiling.
    pub(crate) probe_at: Option<u64>,
    pub(crate) step: u32,
    /// The limit the last 429 left: above it, a 429 means a probe failed.
    pub(crate) settled: u32,
}

impl Course {
    /// At the ceiling, never throttled.
    pub(crate) fn new(law: &Law) -> Course {
        Course {
            limit: law.ceiling,
            quiet_until: 0,
            hold: law.hold,
            probe_at: None,
            step: 1,
            settled: law.ceiling,
        }
    }

    /// The server answered 429 at `now`, asked for a pause of `pause`, and
    /// had accepted `measured` answers in the window before: what it means
    /// for the limit, which is lowered in place.
    pub(crate) fn throttled(&mut self, law: &Law, now: u64, pause: u64, measured: u32) -> Throttle {
        if !law.learning || now < self.quiet_until {
            return Throttle::Counted;
        }
        let resume = now.saturating_add(pause);
        self.quiet_until = resume.max(now.saturating_add(law.window));
        if measured >= self.limit {
            return Throttle::AtLimit;
        }
        let next = headroom(measured).max(law.floor);
        if self.limit > self.settled {
            self.hold = self.hold.saturating_mul(2).min(LONGEST_HOLD);
        }
        self.probe_at = Some(resume.saturating_add(self.hold));
        self.step = 1;
        self.settled = next;
        self.limit = next;
        Throttle::Lowered
    }

    /// Raises the limit by the next step if it is time to probe. Returns
    /// whether it rose.
    pub(crate) fn probe(&mut self, law: &Law, now: u64) -> bool {
        if !law.learning || self.probe_at.is_none_or(|at| now < at) {
            return false;
        }
        let next = self.limit.saturating_add(self.step).min(law.ceiling);
        self.step = self.step.saturating_mul(2);
        if next == law.ceiling {
            self.probe_at = None;
            self.hold = law.hold;
        } else {
            self.probe_at = Some(now.saturating_add(law.window));
        }
        self.limit = next;
        true
    }
}

/// The last [`REMEMBERED_CHANGES`] rate changes, each logged as it comes.
#[derive(Debug, Default)]
pub(crate) struct Changes(VecDeque<RateChange>);

impl Changes {
    pub(crate) fn push(&mut self, change: RateChange) {
        // Info, not a warning: the 429 that caused it is already warned of.
        log::info!("rate limit: {change}");
        if self.0.len() == REMEMBERED_CHANGES {
            self.0.pop_front();
        }
        self.0.push_back(change);
    }

    pub(crate) fn to_vec(&self) -> Vec<RateChange> {
        self.0.iter().copied().collect()
    }
}

/// The law in one process: the [`Course`], and the answers the server
/// accepted in the last window, by when they came (nanoseconds since the
/// limiter's origin).
#[derive(Debug)]
pub(crate) struct Learned {
    law: Law,
    course: Course,
    accepted: VecDeque<u64>,
    changes: Changes,
}

impl Learned {
    pub(crate) fn new(law: Law) -> Learned {
        Learned {
            law,
            course: Course::new(&law),
            accepted: VecDeque::new(),
            changes: Changes::default(),
        }
    }

    /// Permits per window in force.
    pub(crate) fn limit(&self) -> u32 {
        self.course.limit
    }

    pub(crate) fn law(&self) -> Law {
        self.law
    }

    /// The rate in force, in permits per second.
    pub(crate) fn rate(&self) -> f64 {
        self.law.per_second(self.course.limit)
    }

    pub(crate) fn changes(&self) -> Vec<RateChange> {
        self.changes.to_vec()
    }

    /// The server accepted a request at `now`. Returns whether the limit rose.
    pub(crate) fn accepted(&mut self, now: u64) -> bool {
        if !self.law.learning {
            return false;
        }
        self.forget_before(now);
        self.accepted.push_back(now);
        let from = self.course.limit;
        let rose = self.course.probe(&self.law, now);
        if rose {
            self.record(now, from, None);
        }
        rose
    }

    /// The server answered 429 at `now` and asked for a pause of `pause`
    /// nanoseconds: what it means for the limit.
    pub(crate) fn throttled(&mut self, now: u64, pause: u64) -> Throttle {
        self.forget_before(now);
        let measured = u32::try_from(self.accepted.len()).unwrap_or(u32::MAX);
        let from = self.course.limit;
        let throttle = self.course.throttled(&self.law, now, pause, measured);
        if throttle == Throttle::Lowered {
            self.record(now, from, Some(self.law.per_second(measured)));
        }
        throttle
    }

    fn record(&mut self, now: u64, from: u32, throttled_at: Option<f64>) {
        self.changes.push(RateChange {
            at: Duration::from_nanos(now),
            from: self.law.per_second(from),
            to: self.law.per_second(self.course.limit),
            throttled_at,
        });
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
        learned.course.limit = 30;
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
        assert_eq!(learned.course.hold, 10 * SECOND);
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
