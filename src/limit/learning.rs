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

/// One change of a learning limiter's rate: when, from what, to what, and why.
///
/// Its `Display` is what a progress line shows, e.g.
/// `throttled at 37/s; now 36/s` or `probing: now 40/s`.
///
/// ```
/// use cio_ratelimit::{Limiter, RateLimit, SlidingWindow};
/// use cio_ratelimit::limit::ManualClock;
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
    /// The limit was lowered.
    Lowered,
    /// The server had accepted the whole limit: the requests were not too
    /// many but arrived too close together.
    AtLimit,
    /// Not learning, or part of an overload already counted.
    Counted,
}

/// β: a 429 that is not a measurement lowers the limit to β × the limit,
/// the decrease of CUBIC and of AWS's adaptive retry.
const DECREASE: f64 = 0.7;

/// How far above the peak probing has gone after `windows` windows: steps
/// of 1, 2, 4, ... up to `most` each.
fn probe_gain(most: u32, windows: u64) -> f64 {
    let most = f64::from(most.max(1));
    // The steps below `most` double: 1, 2, ..., then `most` each.
    let doubling = (most.log2().ceil() as u64).min(windows);
    2f64.powi(doubling as i32) - 1.0 + (windows - doubling) as f64 * most
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
    /// How long the limit holds at the rate the server last gave before
    /// probing above it.
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
/// A 429 lowers the limit to the server's measured delivery in the trailing
/// window, less 4 % headroom, when that window is a full one of the
/// limiter's life and the delivery is at least half the limit: a limiter
/// alone, throttled at 37/s, settles at 36/s. Otherwise (the limiter's
/// first window, or a delivery well below its limit) it lowers it at most
/// multiplicatively, to β × the limit (β = 0.7, as CUBIC and AWS's adaptive
/// retry), or to the delivery if that is higher: it never falls to the
/// floor on a count it had no time to make. If the server had accepted the
/// whole limit, the limit stays (the requests arrived too close together).
/// 429s of the same overload (until the pause ends, and at least one
/// window) count once.
///
/// Then the limit grows again by time since the pause ended, not by its
/// own size, so every uncoordinated limiter grows at the same absolute pace
/// (Chiu & Jain: additive or cubic increase with multiplicative decrease
/// converges to fair shares, multiplicative increase does not): it holds
/// for `hold` (twice that after a probe of its own met a 429: alone, the
/// limit is the server's rate, and probing above it costs a pause), then
/// probes above it, +1, +2, +4, ... per window, each step at most a
/// twentieth of the ceiling, up to the ceiling. Capacity a neighbour frees
/// is found within the hold and a few windows; a limiter whose probe made
/// others meet the 429s cannot run away with their share. After a cut in
/// the first window the limit probes one step sooner, and the next 429
/// measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Course {
    /// Permits per window in force.
    pub(crate) limit: u32,
    /// Until when a 429 belongs to the overload already counted.
    pub(crate) quiet_until: u64,
    /// When the hold began: the end of the last 429's pause.
    pub(crate) since: u64,
    /// Where probing starts from: the limit the last 429 left (one less
    /// after a cut in the first window). The ceiling until a 429.
    pub(crate) peak: u32,
    /// How long the limit holds before probing: the law's, or twice it
    /// after a probe of this limiter's own met a 429, back to the law's
    /// when a probe gets through or another's 429 comes.
    pub(crate) hold: u64,
}

impl Course {
    /// At the ceiling, never throttled.
    pub(crate) fn new(law: &Law) -> Course {
        Course {
            limit: law.ceiling,
            quiet_until: 0,
            since: 0,
            peak: law.ceiling,
            hold: law.hold,
        }
    }

    /// The server answered 429 at `now`, asked for a pause of `pause`, and
    /// had accepted `measured` answers in the window before, a window that
    /// is `young` if it began before the limiter did (the count is then
    /// what there was time to make, not a measurement): what it means for
    /// the limit, which is lowered in place.
    pub(crate) fn throttled(
        &mut self,
        law: &Law,
        now: u64,
        pause: u64,
        measured: u32,
        young: bool,
    ) -> Throttle {
        if !law.learning || now < self.quiet_until {
            return Throttle::Counted;
        }
        let resume = now.saturating_add(pause);
        self.quiet_until = resume.max(now.saturating_add(law.window));
        let before = self.limit;
        if measured >= before {
            return Throttle::AtLimit;
        }
        let decreased = (f64::from(before) * DECREASE).floor() as u32;
        let delivered = headroom(measured);
        // A full window's delivery not far below the limit is the server's
        // answer; anything else only says the limit was too high.
        let next = if !young && measured >= before / 2 {
            delivered
        } else {
            decreased.max(delivered)
        };
        let next = next.min(before.saturating_sub(1)).max(law.floor);
        let probing = before > self.peak;
        if young {
            // A guess, not a measurement: the next 429 measures.
            self.peak = next.saturating_sub(1).max(law.floor);
        } else {
            self.peak = next;
            self.hold = if probing {
                law.hold.saturating_mul(2)
            } else {
                law.hold
            };
        }
        self.since = resume;
        self.limit = next;
        Throttle::Lowered
    }

    /// The limit the course grows to by `now`, without a 429.
    fn grown(&self, law: &Law, now: u64) -> u32 {
        let Some(elapsed) = now.checked_sub(self.since) else {
            return self.peak;
        };
        // One step a window: a rate change shows once a window at most.
        let windows = elapsed / law.window;
        let held = self.hold.div_ceil(law.window);
        let grown = if windows < held {
            f64::from(self.peak)
        } else {
            f64::from(self.peak) + probe_gain(law.ceiling.div_ceil(20), windows - held + 1)
        };
        (grown.floor() as u32).clamp(law.floor, law.ceiling)
    }

    /// Raises the limit along the course if it is time. Returns whether it
    /// rose.
    pub(crate) fn probe(&mut self, law: &Law, now: u64) -> bool {
        if !law.learning || self.limit >= law.ceiling {
            return false;
        }
        let grown = self.grown(law, now);
        if grown <= self.limit {
            return false;
        }
        if grown > self.peak.saturating_add(1) && self.limit > self.peak {
            // A probe got through a window: the next one need not wait
            // long. The climb goes on where it is.
            self.since = self
                .since
                .saturating_add(self.hold - law.hold.min(self.hold));
            self.hold = law.hold;
        }
        self.limit = grown;
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
        let young = now < self.law.window;
        let throttle = self
            .course
            .throttled(&self.law, now, pause, measured, young);
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

    /// `n` answers accepted evenly over the window ending at `end` (or
    /// since the limiter began, if that is later).
    fn accept(learned: &mut Learned, n: u64, end: u64) {
        let start = end.saturating_sub(SECOND);
        for i in 0..n {
            learned.accepted(start + (i + 1) * (end - start) / n);
        }
    }

    #[test]
    fn a_429_in_a_full_window_sets_the_limit_to_what_the_server_accepted() {
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
    fn a_429_in_the_first_window_or_far_below_the_limit_lowers_it_by_beta_at_most() {
        // A late starter meets a window its neighbours filled: 2 accepted.
        let mut learned = Learned::new(law());
        accept(&mut learned, 2, SECOND / 2);
        assert_eq!(learned.throttled(SECOND / 2, SECOND), Throttle::Lowered);
        assert_eq!(learned.limit(), 35, "0.7 × 50, not the floor");
        assert_eq!(
            learned.changes()[0].to_string(),
            "throttled at 2/s; now 35/s"
        );
        // In the first window, a delivery above β × the limit is taken.
        let mut learned = Learned::new(law());
        accept(&mut learned, 40, SECOND / 2);
        learned.throttled(SECOND / 2, 0);
        assert_eq!(learned.limit(), 38, "40, less 4 %");
        // A full window, but well below the limit: only β.
        let mut learned = Learned::new(law());
        accept(&mut learned, 10, 3 * SECOND);
        learned.throttled(3 * SECOND, 0);
        assert_eq!(learned.limit(), 35);
        // Again: 35 → 24, then 16, ... multiplicatively, never at once.
        accept(&mut learned, 10, 5 * SECOND);
        learned.throttled(5 * SECOND, 0);
        assert_eq!(learned.limit(), 24);
    }

    #[test]
    fn the_limit_never_rises_on_a_429_nor_falls_below_the_floor() {
        let mut learned = Learned::new(Law { floor: 40, ..law() });
        assert_eq!(learned.throttled(SECOND, 0), Throttle::Lowered);
        assert_eq!(learned.limit(), 40, "0.7 × 50 is below the floor");
        let mut learned = Learned::new(law());
        (learned.course.limit, learned.course.peak) = (30, 30);
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

    /// The limit after an answer accepted at each of `seconds`.
    fn limits(learned: &mut Learned, seconds: std::ops::Range<u64>) -> Vec<u32> {
        seconds
            .map(|s| {
                learned.accepted(s * SECOND);
                learned.limit()
            })
            .collect()
    }

    #[test]
    fn it_holds_then_probes_in_growing_steps_never_above() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 37, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND); // 36, held from 3 s, the pause's end
        assert_eq!(limits(&mut learned, 3..13), [36; 10]);
        // Then up by 1, 2, then 3 (a twentieth of the ceiling) a window.
        assert_eq!(limits(&mut learned, 13..20), [37, 39, 42, 45, 48, 50, 50]);
        let last = *learned.changes().last().unwrap();
        assert_eq!(last.to_string(), "probing: now 50/s");
    }

    #[test]
    fn uncoordinated_limiters_grow_at_the_same_absolute_pace() {
        // Two limiters throttled together, one at 42, one at 18: after the
        // hold both gain the same per window, whatever their size.
        let (mut big, mut small) = (Learned::new(law()), Learned::new(law()));
        (big.course.limit, big.course.peak) = (42, 42);
        (small.course.limit, small.course.peak) = (18, 18);
        accept(&mut big, 41, 2 * SECOND);
        accept(&mut small, 17, 2 * SECOND);
        big.throttled(2 * SECOND, 0);
        small.throttled(2 * SECOND, 0);
        let big_limits = limits(&mut big, 2..18);
        let small_limits = limits(&mut small, 2..18);
        assert_eq!(
            (big_limits[0], small_limits[0]),
            (39, 16),
            "41 and 17, less 4 %"
        );
        // From the end of the hold (12 s): +1, +2, +3 for both.
        let gained =
            |limits: &[u32]| -> Vec<u32> { limits[10..13].iter().map(|l| l - limits[0]).collect() };
        assert_eq!(gained(&big_limits), [1, 3, 6]);
        assert_eq!(gained(&small_limits), [1, 3, 6]);
    }

    #[test]
    fn a_probe_of_its_own_that_meets_a_429_doubles_the_next_hold() {
        let mut learned = Learned::new(law());
        (learned.course.limit, learned.course.peak) = (40, 37);
        accept(&mut learned, 37, 2 * SECOND);
        learned.throttled(2 * SECOND, 0);
        assert_eq!((learned.limit(), learned.course.hold), (36, 20 * SECOND));
        assert_eq!(limits(&mut learned, 2..22), [36; 20], "held 20 s, not 10");
        assert_eq!(limits(&mut learned, 22..24), [37, 39]);
        // That probe got through a window: the hold is the law's again,
        // and the climb goes on where it is.
        assert_eq!(learned.course.hold, 10 * SECOND);
        assert_eq!(limits(&mut learned, 24..26), [42, 45]);
        // At its limit, not probing, it meets a 429 another's probe drew:
        // the law's hold.
        let mut learned = Learned::new(law());
        let course = &mut learned.course;
        (course.limit, course.peak, course.hold) = (40, 40, 20 * SECOND);
        accept(&mut learned, 39, 3 * SECOND);
        learned.throttled(3 * SECOND, 0);
        assert_eq!((learned.limit(), learned.course.hold), (37, 10 * SECOND));
    }

    #[test]
    fn after_a_cut_in_the_first_window_the_next_429_measures() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 20, SECOND / 2);
        learned.throttled(SECOND / 2, SECOND);
        assert_eq!(learned.limit(), 35);
        accept(&mut learned, 30, 3 * SECOND);
        learned.throttled(3 * SECOND, SECOND);
        assert_eq!(learned.limit(), 29, "30, less 4 %");
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
