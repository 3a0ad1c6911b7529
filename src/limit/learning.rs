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
/// assert_eq!(change.to_string(), "throttled at 37/s; now 36/s"); // less 2 % headroom
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

/// β for a guess: a 429 that is not a measurement (the limiter's first
/// window, or a delivery well below its limit) lowers the limit to β × the
/// limit at most, the decrease of CUBIC and of AWS's adaptive retry.
const GUESS_DECREASE: f64 = 0.7;

/// β for congestion: a 429 that came while the limiter was sending its
/// whole limit (a full window's delivery of at least [`CONGESTED`] of it)
/// says the senders together were over, not that this one was: it lowers
/// the limit to β × the limit. Deeper than CUBIC's 0.7, because a 429
/// also pauses its sender for a whole Retry-After: fewer, deeper cuts cost
/// fewer pauses, and shares converge in fewer of them.
const CONGESTION_DECREASE: f64 = 0.6;

/// A delivery of at least this share of the limit, in a full window of
/// the limiter's life, is a measurement; below it, a guess (the process
/// sent less, or others took the room).
const MEASURED: f64 = 0.5;

/// A measured delivery of at least this share of the limit means the
/// limiter was sending its whole limit when the 429 came: congestion.
/// (A limiter paced at N per window, each counted until its answer and
/// a window more, delivers about 97 % of N.)
const CONGESTED: f64 = 0.93;

/// CUBIC's C, in permits per window per window³: how fast the limit
/// leaves the last maximum behind. At 0.02 it is one permit above it 4
/// windows after reaching it, 20 after 10: slow where 429s are likely,
/// fast once the room is clearly there.
const CUBIC: f64 = 0.02;

/// Windows after the pause before the curve leaves the cut: the limit
/// first rises in the second window after the pause.
const REGROW_AFTER: f64 = 1.0;

/// What the server accepted, less 2 %, rounded (at least one permit): room
/// for the server's window and the client's to disagree by the margin.
fn headroom(accepted: u32) -> u32 {
    let less = (f64::from(accepted) * 0.02).round() as u32;
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
/// A 429 says one of three things, told apart by what the server accepted
/// in the trailing window (its delivery) against the limit:
///
/// - **A guess** (the limiter's first window, or a delivery under half
///   the limit: it had no time to make a count, or others took the room):
///   the limit falls to β × the limit (β = 0.7, as CUBIC and AWS's adaptive
///   retry), or to the delivery if that is higher. It never falls to the
///   floor on a count it had no time to make.
/// - **The server's rate** (a delivery of half to 93 % of the limit: the
///   server admitted less than the limiter sent; or a probe above a
///   maximum the server had measured met that same delivery): the limit
///   falls to the delivery, less 2 % headroom. A limiter alone, throttled
///   at 37/s, settles at 36/s, and holds it for `hold` (the builders'
///   `probe_after`).
/// - **Congestion** (a delivery of 93 % or more: the limiter was sending its
///   whole limit, and the senders together were over): the limit falls to
///   0.6 × the limit, multiplicatively, so that uncoordinated senders'
///   shares converge (Chiu & Jain).
///
/// If the server had accepted the whole limit, the limit stays (the
/// requests arrived too close together). 429s of the same overload (until
/// the pause ends, and at least one window) count once.
///
/// Then the limit grows along CUBIC's curve (RFC 9438) around the last
/// maximum `peak`: the limit before a guess or a congestion cut (lowered
/// halfway to the cut when it is lower than the one before, CUBIC's fast
/// convergence, which gives a newcomer room), or the delivery the server
/// measured. After a cut it rises from the second window after the pause,
/// quickly toward the maximum, slowly near it, then above it ever faster:
/// a permit 4 windows after reaching it, 20 after 10. (At the server's
/// rate it reaches the maximum only after `hold`.) The curve depends on
/// time since the pause, not on the limit, so every uncoordinated limiter
/// grows at the same absolute pace; capacity a neighbour frees is taken
/// back within seconds. One step a window at most, never above the
/// ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Course {
    /// Permits per window in force.
    pub(crate) limit: u32,
    /// Until when a 429 belongs to the overload already counted.
    pub(crate) quiet_until: u64,
    /// When the curve began: the end of the last 429's pause.
    pub(crate) since: u64,
    /// The last maximum, around which the limit grows. The ceiling until a
    /// 429.
    pub(crate) peak: u32,
    /// How long after `since` the curve reaches `peak`: the middle of its
    /// flat part.
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
            hold: 0,
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
        let (limit, delivered) = (f64::from(before), f64::from(measured));
        let reading = Reading::of(self, before, measured, young);
        let cut = |beta: f64| (limit * beta).floor() as u32;
        let (next, mut peak) = match reading {
            Reading::Guess => (cut(GUESS_DECREASE).max(headroom(measured)), limit),
            Reading::ServersRate => (headroom(measured), delivered),
            Reading::Congestion => (cut(CONGESTION_DECREASE), limit),
        };
        let next = next.min(before.saturating_sub(1)).max(law.floor);
        if reading != Reading::ServersRate && before < self.peak {
            // Fast convergence: below the last maximum, this limiter's
            // share shrinks; it makes room for whoever took it.
            peak = limit * (1.0 + CONGESTION_DECREASE) / 2.0;
        }
        let peak = peak.max(f64::from(next));
        // Windows until the curve reaches the peak: where the cubic through
        // `next` at the start has its middle, after the regrowth delay or
        // the hold.
        let flat = match reading {
            Reading::ServersRate => law.hold as f64 / law.window as f64,
            Reading::Guess | Reading::Congestion => REGROW_AFTER,
        };
        let reach = ((peak - f64::from(next)) / CUBIC).cbrt() + flat;
        self.peak = peak.round() as u32;
        self.hold = (reach * law.window as f64) as u64;
        self.since = resume;
        self.limit = next;
        Throttle::Lowered
    }

    /// The limit the course grows to by `now`, without a 429.
    fn grown(&self, law: &Law, now: u64) -> u32 {
        let Some(elapsed) = now.checked_sub(self.since) else {
            return self.limit;
        };
        // One step a window: a rate change shows once a window at most.
        let windows = (elapsed / law.window) as f64;
        let middle = self.hold as f64 / law.window as f64;
        let grown = f64::from(self.peak) + CUBIC * (windows - middle).powi(3);
        (grown.floor().max(0.0) as u32).clamp(law.floor, law.ceiling)
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
        self.limit = grown;
        true
    }
}

/// What a counted 429 says, by the delivery against the limit: the three
/// cases of [`Course`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// The first window, or a delivery under [`MEASURED`] of the limit.
    Guess,
    /// A delivery from [`MEASURED`] to [`CONGESTED`] of the limit, or a
    /// probe above a measured maximum that met that same delivery.
    ServersRate,
    /// A delivery of [`CONGESTED`] of the limit or more.
    Congestion,
}

impl Reading {
    /// What a 429 at `before` permits, with `measured` delivered, says to
    /// `course`.
    fn of(course: &Course, before: u32, measured: u32, young: bool) -> Reading {
        let share = f64::from(measured) / f64::from(before);
        // Probing above a maximum the server had measured, and met with the
        // same delivery: the maximum was the server's rate, not a share.
        let confirmed = before > course.peak && measured <= course.peak;
        if young || share < MEASURED {
            Reading::Guess
        } else if share < CONGESTED || confirmed {
            Reading::ServersRate
        } else {
            Reading::Congestion
        }
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

    /// A limiter at `limit`, its last maximum `peak`.
    fn at(limit: u32, peak: u32) -> Learned {
        let mut learned = Learned::new(law());
        (learned.course.limit, learned.course.peak) = (limit, peak);
        learned
    }

    #[test]
    fn a_429_at_the_servers_rate_sets_the_limit_to_what_it_accepted() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 20, SECOND); // an older window: forgotten
        accept(&mut learned, 37, 2 * SECOND);
        assert_eq!(learned.throttled(2 * SECOND, SECOND), Throttle::Lowered);
        assert_eq!(learned.limit(), 36, "37, less 2 % headroom");
        assert_eq!(learned.course.peak, 37, "the server's rate is the maximum");
        let change = learned.changes()[0];
        assert_eq!((change.from, change.to), (50.0, 36.0));
        assert_eq!(change.throttled_at, Some(37.0));
        assert_eq!(change.to_string(), "throttled at 37/s; now 36/s");
    }

    #[test]
    fn a_guess_lowers_the_limit_by_beta_at_most() {
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
        assert_eq!(learned.limit(), 39, "40, less 2 %");
        // A full window, but well below the limit: only β.
        let mut learned = Learned::new(law());
        accept(&mut learned, 10, 3 * SECOND);
        learned.throttled(3 * SECOND, 0);
        assert_eq!(learned.limit(), 35);
        // Again (before it grows back): 35 → 24, multiplicatively, never
        // at once.
        accept(&mut learned, 10, 4 * SECOND);
        learned.throttled(4 * SECOND, 0);
        assert_eq!(learned.limit(), 24);
    }

    #[test]
    fn congestion_lowers_the_limit_multiplicatively() {
        // Sending its whole limit (48 of 50 delivered) when the 429 came:
        // the senders together were over.
        let mut learned = Learned::new(law());
        accept(&mut learned, 48, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND);
        assert_eq!(learned.limit(), 30, "0.6 × 50");
        assert_eq!(learned.course.peak, 50, "it grows back toward 50");
        // Cut again (before it grew back) below that maximum, it makes room:
        // the maximum it grows back to is halfway between its limit and the
        // cut.
        accept(&mut learned, 29, 4 * SECOND);
        learned.throttled(4 * SECOND, SECOND);
        assert_eq!(learned.limit(), 18, "0.6 × 30");
        assert_eq!(learned.course.peak, 24, "(30 + 18) / 2");
    }

    #[test]
    fn a_probe_that_meets_the_same_delivery_confirms_the_servers_rate() {
        // Alone: the server's rate was 37, the limiter probed to 40 and the
        // server still admitted 37. That is no share to cut by 0.6.
        let mut learned = at(40, 37);
        accept(&mut learned, 37, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND);
        assert_eq!(learned.limit(), 36, "37, less 2 %");
        assert_eq!(learned.course.peak, 37);
        assert!(learned.course.hold > 10 * SECOND, "held again");
        // A prober whose delivery grew with it was sharing: congestion.
        let mut learned = at(40, 30);
        accept(&mut learned, 39, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND);
        assert_eq!(learned.limit(), 24, "0.6 × 40");
    }

    #[test]
    fn the_limit_never_rises_on_a_429_nor_falls_below_the_floor() {
        let mut learned = Learned::new(Law { floor: 40, ..law() });
        assert_eq!(learned.throttled(SECOND, 0), Throttle::Lowered);
        assert_eq!(learned.limit(), 40, "0.7 × 50 is below the floor");
        let mut learned = at(30, 30);
        accept(&mut learned, 45, SECOND);
        assert_eq!(learned.throttled(SECOND, 0), Throttle::AtLimit);
        assert_eq!(learned.limit(), 30);
        assert!(learned.changes().is_empty());
    }

    #[test]
    fn headroom_is_two_percent_and_at_least_one() {
        let cases = [
            (100, 98),
            (60, 59),
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
    fn at_the_servers_rate_it_holds_then_probes_ever_faster_never_above() {
        let mut learned = Learned::new(law());
        accept(&mut learned, 37, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND); // 36, the curve from 3 s
        // Held for the hold (10 s) and more: the curve is flat near 37.
        assert_eq!(limits(&mut learned, 3..17), [36; 14]);
        // Then the measured 37, and above it in growing steps, to 50.
        assert_eq!(
            limits(&mut learned, 17..27),
            [37, 37, 37, 37, 38, 40, 42, 44, 48, 50]
        );
        assert_eq!(limits(&mut learned, 27..40), [50; 13], "never above");
        let last = *learned.changes().last().unwrap();
        assert_eq!(last.to_string(), "probing: now 50/s");
    }

    #[test]
    fn after_congestion_it_regrows_within_two_windows() {
        let mut learned = at(40, 40);
        accept(&mut learned, 39, 2 * SECOND);
        learned.throttled(2 * SECOND, SECOND); // 24, the curve from 3 s
        let grown = limits(&mut learned, 3..20);
        assert_eq!(&grown[..2], [24, 24], "the window after the pause");
        assert!(grown[2] > 24, "rising in the second: {grown:?}");
        // Quickly toward the last maximum, slowly near it, then above it.
        assert!(grown[6] >= 34, "{grown:?}");
        assert!(grown.windows(2).all(|w| w[0] <= w[1]), "{grown:?}");
        assert!(grown.iter().any(|&l| l > 40), "{grown:?}");
    }

    #[test]
    fn above_its_last_maximum_every_limiter_gains_the_same_whatever_its_size() {
        // Two limiters whose curves reach their maxima, 42 and 18, at the
        // same time: above them, both gain the same per window (Chiu & Jain:
        // equal gains and multiplicative cuts make shares converge).
        let gains = |peak: u32| -> Vec<u32> {
            let mut learned = at(peak, peak);
            learned.course.hold = 3 * SECOND;
            limits(&mut learned, 3..9)
                .iter()
                .map(|l| l - peak)
                .collect()
        };
        assert_eq!(gains(42), gains(18));
        assert_eq!(gains(18), [0, 0, 0, 0, 1, 2]);
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
