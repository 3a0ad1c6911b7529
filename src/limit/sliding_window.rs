//! `SlidingWindow`: at most N requests in any window W, as the server counts
//! them, learning the workspace's real N from its 429s.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limit::clock::{Clock, SystemClock, duration_nanos, nanos_since};
use crate::limit::learning::{Law, Learned, RateChange, Throttle};
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::RateLimit;

/// A limiter that keeps the server's promise: at most N requests in any
/// window W, where the server counts them, and learns the workspace's real N
/// from its 429s. The default limiter of [`Client`](crate::Client).
///
/// Customer.io counts requests in a sliding window. A rate of "N per W" here
/// means what it means there: no window of length W holds more than N
/// requests, so a limiter told the server's number runs at that number
/// without a 429. (A [`TokenBucket`](crate::TokenBucket) set to the same
/// rate grants `burst + rate × W` in a window, over the limit.)
///
/// ```
/// use cio_ratelimit::{Limiter, RateLimit, SlidingWindow};
/// use cio_ratelimit::limit::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let limiter = SlidingWindow::builder(RateLimit::new(100.0, 10)?)
///     .clock(clock.clone())
///     .build()?;
/// for _ in 0..1_000 {
///     limiter.acquire();
///     // ... send the request; when its answer comes:
///     limiter.answered();
/// }
/// // 100 in any 1 s window: the 1,000th went at 9.9 s.
/// assert_eq!(clock.elapsed(), Duration::from_millis(9_900));
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// # The window, and when a request counts
///
/// A [`RateLimit`] of `r` per second means `r` per 1 s window (for rates
/// below 1/s, 1 per `1/r` seconds: [`RateLimit::BROADCAST_TRIGGERS`] is 1 per
/// 10 s); [`window`](SlidingWindowBuilder::window) sets another. A permit is
/// granted only while fewer than N requests are counted.
///
/// The server counts arrivals, not sends: a request granted at t arrives
/// at t plus a delay that varies (a thread scheduled late, the network). If
/// the limiter counted it from its grant, a request delayed more than the
/// next window's first one would crowd that window: N + 1 arrivals, a 429.
/// So a request counts from its grant until its answer comes
/// ([`answered`](Limiter::answered)), and then for one window more. It
/// reached the server before its answer came, so no window of the server's
/// holds more than N, however late a thread was scheduled or a packet
/// delivered. [`Client`](crate::Client) reports every answer: its retry loop
/// calls `answered` after each attempt. The cost is the time from a
/// request's arrival to its answer (the server's handling and the way back;
/// under a millisecond against a local emulator, about half the round trip
/// over the internet): the steady throughput is N per W plus that.
///
/// A grant whose answer is never reported (a caller that uses the limiter
/// directly) counts for the window plus a margin after the grant: default
/// 2 % of the window (20 ms per second, at least 1 ms), which
/// [`margin`](SlidingWindowBuilder::margin) changes. That margin is the
/// jitter allowed between grant and arrival: on a busy two-core machine
/// sending to a local emulator (`examples/learning_bench/`), 10 ms let a
/// thread scheduled late put the 101st request into a 100-per-second window
/// several times a run, 20 ms a few times in ten runs, counting until the
/// answer not once.
///
/// When learning, a 429 that comes although the server had accepted no more
/// than N in the window shows the server counting over a longer window: an
/// answered request then counts 1 ms longer after its answer (doubling on
/// each such 429), and the margin doubles, both up to a tenth of the window.
///
/// Within the window, permits are paced N per W, with bursts of up to the
/// limit's [`burst`](RateLimit::burst), so that requests arrive spread out
/// rather than all at the start of a window.
///
/// # Learning the real limit
///
/// Customer.io publishes no fixed limit, and a workspace shares its budget
/// with every other integration. The configured N is a ceiling; the limiter
/// learns the real one (turn that off with
/// [`learning(false)`](SlidingWindowBuilder::learning)):
///
/// - On a 429 ([`throttled`](Limiter::throttled)) it looks at what the server
///   accepted in the trailing window: the calls that succeeded
///   ([`record_success`](Limiter::record_success)) in the last W, the
///   server's measured delivery, the way BBR measures rather than guesses.
///   - In the limiter's first window, or with a delivery under half of N
///     (the process sent less, or others took the room), the count is not a
///     measurement: N falls at most to 0.7 × N, so a late starter that
///     meets a full window never collapses.
///   - With a delivery of half to 93 % of N, the server admitted less than
///     the limiter sent (or a probe above the server's rate met the same
///     delivery): N becomes that delivery less 2 % headroom (rounded, at
///     least one permit), the server's rate, and holds for
///     [`probe_after`](SlidingWindowBuilder::probe_after) (default 12 s).
///     Alone against a 37/s workspace it settles at 36/s.
///   - With a delivery of 93 % of N or more, the limiter was sending its
///     whole N and the senders together were over: N falls to 0.6 × N.
///     Multiplicative cuts and equal growth make uncoordinated senders'
///     shares converge (Chiu & Jain).
///
///   Never below the floor (default N / 20). If the server had accepted the
///   whole limit, the limit was not too high: the margin widens instead.
///   Every caller is paused for the server's Retry-After.
/// - The 429s of one overload arrive together: after a change, 429s are not
///   counted again until the pause has ended and at least one window passed.
/// - Without a 429, N grows along CUBIC's curve (RFC 9438) around the last
///   maximum (the N before the cut, or the server's rate): from the second
///   window after the pause, quickly back toward it, slowly near it, then
///   above it ever faster (a permit 4 windows after reaching it, 20 after
///   10), one step a window, never above the ceiling. The curve depends on
///   time, not on N, so uncoordinated processes grow at the same pace, and
///   capacity a neighbour frees is taken back within seconds.
/// - Only 429s lower the rate. 5xx answers, timeouts and resets never do.
///
/// [`rate`](Limiter::rate) and [`rate_changes`](Limiter::rate_changes) tell
/// what it learned.
///
/// # Threads and cloning
///
/// `SlidingWindow` is `Send + Sync`. Clones share one window and one learned
/// rate: hand a clone to each thread, or to each client of the workspace.
#[derive(Clone)]
pub struct SlidingWindow {
    shared: Arc<Shared>,
}

struct Shared {
    clock: Arc<dyn Clock>,
    origin: Instant,
    ceiling: RateLimit,
    state: Mutex<State>,
}

/// Times are nanoseconds since `Shared::origin`.
#[derive(Debug)]
struct State {
    /// Grants whose answer has not come, oldest first. Each is counted in
    /// every window until an answer comes, or for `span` after it was
    /// granted if none does (a caller that never reports answers).
    open: VecDeque<u64>,
    /// When the answers still counted came, oldest first; at most twice the
    /// ceiling's count. Each is counted for `window + slack` after it came.
    answers: VecDeque<u64>,
    /// The pacer's theoretical arrival time (GCRA): when it is next empty.
    tat: u64,
    paused_until: u64,
    /// The window plus the margin: how long an unanswered grant is counted.
    span: u64,
    margin: u64,
    /// How much longer than the window an answer is counted: zero until a
    /// 429 shows the server counts a request later than its answer.
    slack: u64,
    /// Whether any answer was reported. Until one is, nobody is expected to
    /// report them, and a waiter does not look for one.
    reported: bool,
    learned: Learned,
}

/// When a permit can next be granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Earliest {
    /// At this time, whatever answers come meanwhile.
    At(u64),
    /// At this time at the latest; an answer that comes sooner may free a
    /// permit sooner, so a waiter looks again before then.
    AtOrSooner(u64),
}

/// How often a waiter held only by unanswered grants looks again.
const ANSWER_POLL: u64 = 1_000_000;

impl State {
    /// Nanoseconds between permits at the limit in force, rounded up.
    fn interval(&self) -> u64 {
        self.learned
            .law()
            .window
            .div_ceil(u64::from(self.learned.limit()))
    }

    /// How long after it came an answer counts.
    fn counted_for(&self) -> u64 {
        self.learned.law().window.saturating_add(self.slack)
    }

    /// Forgets what no window at or after `now` counts: unanswered grants
    /// older than the span, answers older than the window and the slack.
    fn expire(&mut self, now: u64) {
        while self
            .open
            .front()
            .is_some_and(|&granted| granted.saturating_add(self.span) <= now)
        {
            self.open.pop_front();
        }
        let counted_for = self.counted_for();
        while self
            .answers
            .front()
            .is_some_and(|&at| at.saturating_add(counted_for) <= now)
        {
            self.answers.pop_front();
        }
    }

    /// The earliest time a permit can be granted, at or after `now`, if no
    /// answer comes meanwhile. Call [`expire`](State::expire) first.
    fn earliest(&self, now: u64, burst: u32) -> Earliest {
        let limit = self.learned.limit();
        let interval = self.interval();
        let tolerance = interval.saturating_mul(u64::from(burst.min(limit)) - 1);
        let paced = now
            .max(self.paused_until)
            .max(self.tat.saturating_sub(tolerance));
        // Each request is counted until it leaves the window: an answered
        // one `window + slack` after its answer, an unanswered one when its
        // answer comes (or after the span). A permit is free once fewer than
        // the limit are counted: once `excess` of them have left.
        let counted_for = self.counted_for();
        let answered = self
            .answers
            .iter()
            .map(|&at| at.saturating_add(counted_for));
        let unanswered = self
            .open
            .iter()
            .map(|&granted| granted.saturating_add(self.span));
        let answer_may_come = |leaves| {
            if self.reported {
                Earliest::AtOrSooner(leaves)
            } else {
                Earliest::At(leaves)
            }
        };
        let counted = self.answers.len() + self.open.len();
        let Some(excess) = (counted + 1).checked_sub(limit as usize) else {
            return Earliest::At(paced);
        };
        // The excess-th of the two sorted lists of leaving times, merged.
        let (mut answered, mut unanswered) = (answered.peekable(), unanswered.peekable());
        let mut leaves = Earliest::At(0);
        for _ in 0..excess {
            leaves = match (answered.peek().copied(), unanswered.peek().copied()) {
                (Some(a), Some(u)) if u < a => {
                    unanswered.next();
                    answer_may_come(u)
                }
                (Some(a), _) => {
                    answered.next();
                    Earliest::At(a)
                }
                (None, Some(u)) => {
                    unanswered.next();
                    answer_may_come(u)
                }
                (None, None) => break,
            };
        }
        match leaves {
            Earliest::At(at) => Earliest::At(paced.max(at)),
            Earliest::AtOrSooner(at) if at <= paced => Earliest::At(paced),
            Earliest::AtOrSooner(at) => Earliest::AtOrSooner(at),
        }
    }

    fn grant(&mut self, now: u64) {
        self.open.push_back(now);
        self.tat = self.tat.max(now).saturating_add(self.interval());
    }

    /// An answer came: the oldest unanswered grant is answered. (Answers are
    /// matched to grants in order, not to their own grant: each request
    /// arrived before its answer came, so the k-th answer to come came no
    /// sooner than the k-th arrival, and counting the answers counts no
    /// fewer requests in any window than the server does.)
    fn answered(&mut self, now: u64) {
        self.reported = true;
        self.expire(now);
        self.open.pop_front();
        // Twice the most that may be counted: no answer still counted is dropped.
        if self.answers.len() >= 2 * self.learned.law().ceiling as usize {
            self.answers.pop_front();
        }
        self.answers.push_back(now);
    }

    /// A 429 although the server had accepted no more than the limit: it
    /// counts requests over a longer window than this limiter does. Doubles
    /// the margin and the slack, up to a tenth of the window.
    fn widen_margin(&mut self) {
        let window = self.learned.law().window;
        let widen = |now: u64| {
            now.saturating_mul(2)
                .max(1_000_000)
                .min(window / 10)
                .max(now)
        };
        let (margin, slack) = (widen(self.margin), widen(self.slack));
        if (margin, slack) != (self.margin, self.slack) {
            log::info!(
                "rate limit: the server counts over a longer window; requests now count \
                 {:?} longer after their answer, {:?} after their grant when unanswered",
                Duration::from_nanos(slack),
                Duration::from_nanos(margin)
            );
            self.margin = margin;
            self.slack = slack;
            self.span = window.saturating_add(margin);
        }
    }
}

/// Builds a [`SlidingWindow`]; [`build`](SlidingWindowBuilder::build) checks
/// the settings.
///
/// ```
/// use cio_ratelimit::{RateLimit, SlidingWindow};
/// use std::time::Duration;
///
/// // 20 per 2 s, told exactly: no learning, a 5 ms margin.
/// let limiter = SlidingWindow::builder(RateLimit::new(10.0, 1)?)
///     .window(Duration::from_secs(2))
///     .margin(Duration::from_millis(5))
///     .learning(false)
///     .build()?;
/// assert_eq!(limiter.per_window(), 20);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
pub struct SlidingWindowBuilder {
    limit: RateLimit,
    window: Option<Duration>,
    margin: Option<Duration>,
    learning: bool,
    floor: Option<f64>,
    probe_after: Duration,
    clock: Arc<dyn Clock>,
}

impl SlidingWindowBuilder {
    /// The server's window; default 1 s, or `1 / rate` for rates below 1 per
    /// second. The limit per window is the rate times the window, rounded
    /// down.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = Some(window);
        self
    }

    /// How much longer than the window a grant whose answer is never
    /// reported counts, for the jitter between grant and arrival; default 2 %
    /// of the window, at least 1 ms. (A request whose answer is reported
    /// counts until then and a window more: see [`SlidingWindow`].)
    pub fn margin(mut self, margin: Duration) -> Self {
        self.margin = Some(margin);
        self
    }

    /// Whether 429s teach the limiter the workspace's real limit; default
    /// `true`. Off, the limit stays as configured and a 429 only pauses.
    pub fn learning(mut self, learning: bool) -> Self {
        self.learning = learning;
        self
    }

    /// The lowest rate learning may set, in permits per second; default a
    /// twentieth of the configured rate (at least 1 per window).
    pub fn floor(mut self, rate_per_sec: f64) -> Self {
        self.floor = Some(rate_per_sec);
        self
    }

    /// How long the server's rate, learned from a 429, holds without a 429
    /// before the limiter probes above it; default 12 s. (After congestion
    /// the limit grows back from the second window: see [`SlidingWindow`].)
    pub fn probe_after(mut self, hold: Duration) -> Self {
        self.probe_after = hold;
        self
    }

    /// The clock; default [`SystemClock`]. Pass a
    /// [`ManualClock`](crate::limit::ManualClock) to test code that uses it.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Checks the settings and builds the limiter, at the configured rate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a window too short for
    /// one permit at the rate (zero, or under `1 / rate`), a margin
    /// longer than the window, a floor that is not a positive rate or is
    /// above the configured rate, or a zero `probe_after`.
    pub fn build(self) -> Result<SlidingWindow> {
        let law = Law::new(
            self.limit,
            self.window,
            self.floor,
            self.probe_after,
            self.learning,
        )?;
        let window = Duration::from_nanos(law.window);
        let margin = self
            .margin
            .unwrap_or_else(|| (window / 50).max(Duration::from_millis(1)));
        if margin > window {
            return Err(Error::invalid(
                "margin",
                format_args!("{margin:?}"),
                "no longer than the window",
            ));
        }
        let ceiling = law.ceiling;
        let origin = self.clock.now();
        Ok(SlidingWindow {
            shared: Arc::new(Shared {
                clock: self.clock,
                origin,
                ceiling: self.limit,
                state: Mutex::new(State {
                    open: VecDeque::with_capacity(ceiling.min(4096) as usize),
                    answers: VecDeque::with_capacity(ceiling.min(4096) as usize),
                    tat: 0,
                    paused_until: 0,
                    span: duration_nanos(window + margin),
                    margin: duration_nanos(margin),
                    slack: 0,
                    reported: false,
                    learned: Learned::new(law),
                }),
            }),
        })
    }
}

impl fmt::Debug for SlidingWindowBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlidingWindowBuilder")
            .field("limit", &self.limit)
            .field("window", &self.window)
            .field("margin", &self.margin)
            .field("learning", &self.learning)
            .field("floor", &self.floor)
            .field("probe_after", &self.probe_after)
            .finish_non_exhaustive()
    }
}

impl SlidingWindow {
    /// A learning limiter at `limit`, per 1 s window, on the real clock.
    pub fn new(limit: RateLimit) -> SlidingWindow {
        SlidingWindow::with_clock(limit, SystemClock)
    }

    /// [`new`](SlidingWindow::new) on the given clock.
    pub fn with_clock(limit: RateLimit, clock: impl Clock + 'static) -> SlidingWindow {
        SlidingWindow::builder(limit)
            .clock(clock)
            .build()
            .expect("the defaults are valid for any RateLimit")
    }

    /// Starts building a limiter with `limit` as its rate (the ceiling, when
    /// learning) and its burst.
    pub fn builder(limit: RateLimit) -> SlidingWindowBuilder {
        SlidingWindowBuilder {
            limit,
            window: None,
            margin: None,
            learning: true,
            floor: None,
            probe_after: Duration::from_secs(12),
            clock: Arc::new(SystemClock),
        }
    }

    /// The configured limit: the ceiling when learning.
    pub fn ceiling(&self) -> RateLimit {
        self.shared.ceiling
    }

    /// Permits per window in force.
    pub fn per_window(&self) -> u32 {
        self.shared.state.lock().learned.limit()
    }

    /// The server's window.
    pub fn window(&self) -> Duration {
        Duration::from_nanos(self.law().window)
    }

    /// How much longer than the window a grant whose answer has not come is
    /// counted.
    pub fn margin(&self) -> Duration {
        Duration::from_nanos(self.shared.state.lock().margin)
    }

    /// Whether 429s teach it the workspace's limit.
    pub fn is_learning(&self) -> bool {
        self.law().learning
    }

    fn law(&self) -> Law {
        self.shared.state.lock().learned.law()
    }

    fn now(&self) -> u64 {
        nanos_since(self.shared.origin, self.shared.clock.now())
    }

    /// Grants a permit at once if one is free, or says when one will be.
    fn take_at(&self, now: u64) -> std::result::Result<(), Earliest> {
        let shared = &self.shared;
        let mut state = shared.state.lock();
        state.expire(now);
        match state.earliest(now, shared.ceiling.burst()) {
            Earliest::At(at) if at <= now => {
                state.grant(now);
                Ok(())
            }
            later => Err(later),
        }
    }

    /// Waits for a permit until `deadline` (`None`: as long as it takes).
    /// Waiters look again when they wake: a pause or another caller may
    /// have taken their turn, or an answer freed a permit sooner.
    fn take(&self, deadline: Option<u64>) -> bool {
        loop {
            let now = self.now();
            let wake = match self.take_at(now) {
                Ok(()) => return true,
                Err(Earliest::At(at)) if deadline.is_some_and(|deadline| at > deadline) => {
                    return false;
                }
                Err(Earliest::At(at)) => at,
                Err(Earliest::AtOrSooner(at)) => match deadline {
                    Some(deadline) if now >= deadline => return false,
                    Some(deadline) => at.min(now + ANSWER_POLL).min(deadline),
                    None => at.min(now + ANSWER_POLL),
                },
            };
            self.shared.clock.sleep(Duration::from_nanos(wake - now));
        }
    }
}

impl Limiter for SlidingWindow {
    fn acquire(&self) {
        self.take(None);
    }

    fn try_acquire(&self) -> bool {
        self.take_at(self.now()).is_ok()
    }

    fn acquire_timeout(&self, timeout: Duration) -> bool {
        let deadline = self.now().saturating_add(duration_nanos(timeout));
        self.take(Some(deadline))
    }

    /// Grants nothing to anyone for `duration` from now; after it, permits
    /// resume paced, without a burst. A shorter pause never shortens a longer
    /// one. It does not change the rate: see [`throttled`](Limiter::throttled).
    fn pause_for(&self, duration: Duration) {
        let now = self.now();
        let until = now.saturating_add(duration_nanos(duration));
        let shared = &self.shared;
        let mut state = shared.state.lock();
        if until > state.paused_until {
            state.paused_until = until;
            let burst = u64::from(shared.ceiling.burst().min(state.learned.limit()));
            let tolerance = state.interval().saturating_mul(burst - 1);
            state.tat = state.tat.max(until.saturating_add(tolerance));
        }
    }

    /// The oldest grant still unanswered stops counting until its answer
    /// and counts for one window from now instead.
    fn answered(&self) {
        let now = self.now();
        self.shared.state.lock().answered(now);
    }

    fn record_success(&self) {
        let now = self.now();
        self.shared.state.lock().learned.accepted(now);
    }

    fn throttled(&self, pause: Duration) {
        let now = self.now();
        let mut state = self.shared.state.lock();
        if state.learned.throttled(now, duration_nanos(pause)) == Throttle::AtLimit {
            state.widen_margin();
        }
        drop(state);
        self.pause_for(pause);
    }

    fn rate(&self) -> Option<f64> {
        Some(self.shared.state.lock().learned.rate())
    }

    fn rate_changes(&self) -> Vec<RateChange> {
        self.shared.state.lock().learned.changes()
    }
}

impl fmt::Debug for SlidingWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        let law = state.learned.law();
        f.debug_struct("SlidingWindow")
            .field("per_window", &state.learned.limit())
            .field("window", &Duration::from_nanos(law.window))
            .field("margin", &Duration::from_nanos(state.margin))
            .field("slack", &Duration::from_nanos(state.slack))
            .field("ceiling", &law.ceiling)
            .field("floor", &law.floor)
            .field("learning", &law.learning)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::ManualClock;

    const MS: u64 = 1_000_000;

    fn limiter(rate: f64, burst: u32, clock: &ManualClock) -> SlidingWindow {
        SlidingWindow::builder(RateLimit::new(rate, burst).unwrap())
            .clock(clock.clone())
            .build()
            .unwrap()
    }

    /// The most grants in any half-open window `(t - len, t]`.
    fn most_in_any(grants: &[u64], len: u64) -> usize {
        (0..grants.len())
            .map(|end| {
                grants[..=end]
                    .iter()
                    .filter(|&&g| g + len > grants[end])
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn never_more_than_n_in_any_window_plus_margin_and_n_per_window_steady() {
        let clock = ManualClock::new();
        let limiter = limiter(100.0, 100, &clock);
        let mut grants = Vec::new();
        for _ in 0..1_000 {
            limiter.acquire();
            grants.push(clock.elapsed().as_nanos() as u64);
        }
        assert_eq!(most_in_any(&grants, 1_020 * MS), 100);
        // The whole burst goes at once, then a window + margin between each hundred.
        assert_eq!(grants[99], 0);
        assert_eq!(grants[100], 1_020 * MS);
        assert_eq!(clock.elapsed(), Duration::from_millis(9 * 1_020));
    }

    #[test]
    fn a_small_burst_spreads_grants_over_the_window() {
        let clock = ManualClock::new();
        let limiter = limiter(100.0, 10, &clock);
        for _ in 0..10 {
            assert!(limiter.try_acquire());
        }
        assert!(!limiter.try_acquire());
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_millis(10), "1 s / 100");
    }

    #[test]
    fn answered_requests_go_at_n_per_window_exactly() {
        let clock = ManualClock::new();
        let limiter = limiter(100.0, 10, &clock);
        let mut answers = Vec::new();
        for _ in 0..1_000 {
            limiter.acquire();
            limiter.answered(); // an answer at once: the request arrived by now
            answers.push(clock.elapsed().as_nanos() as u64);
        }
        assert_eq!(most_in_any(&answers, 1_000 * MS), 100);
        // No margin: 100 per 1 s, the last of the 1,000 at 9.9 s.
        assert_eq!(clock.elapsed(), Duration::from_millis(9_900));
    }

    #[test]
    fn a_request_answered_late_counts_until_its_answer_so_the_window_cannot_overfill() {
        // Ten go at once; nine are answered at once, one only 300 ms later
        // (say its thread was descheduled before it sent it). It may have
        // arrived at 300 ms: the tenth permit of the next window waits until
        // 1.3 s, where counting from the grant would have given it at 1.02 s,
        // 11 in the server's window (0.3 s, 1.3 s].
        let clock = ManualClock::new();
        let limiter = limiter(10.0, 10, &clock);
        for _ in 0..10 {
            limiter.acquire();
        }
        for _ in 0..9 {
            limiter.answered();
        }
        clock.advance(Duration::from_millis(300));
        limiter.answered();
        let mut grants = Vec::new();
        for _ in 0..10 {
            limiter.acquire();
            grants.push(clock.elapsed());
            limiter.answered();
        }
        assert_eq!(grants[..9], [Duration::from_secs(1); 9]);
        assert_eq!(grants[9], Duration::from_millis(1_300));
    }

    #[test]
    fn an_unanswered_grant_counts_until_its_answer_and_a_waiter_sees_the_answer() {
        let clock = ManualClock::new();
        let limiter = limiter(2.0, 2, &clock);
        limiter.acquire();
        limiter.acquire();
        // Until an answer is reported, none is expected: a waiter that
        // cannot be served in time is refused at once.
        assert!(!limiter.acquire_timeout(Duration::from_millis(500)));
        assert_eq!(clock.elapsed(), Duration::ZERO);
        limiter.answered();
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_secs(1), "answered at 0");
        limiter.acquire();
        assert_eq!(
            clock.elapsed(),
            Duration::from_millis(1_020),
            "the unanswered grant leaves the window and the margin after it"
        );
        // Two unanswered now, and answers are reported: a waiter that gives
        // up at 0.5 s gives up then, having looked for one every millisecond.
        let start = clock.elapsed();
        assert!(!limiter.acquire_timeout(Duration::from_millis(500)));
        assert_eq!(clock.elapsed(), start + Duration::from_millis(500));
        // Answered at 1.5 s, they count until 2.5 s; a grant that is never
        // answered counts for the window and the 20 ms margin after it.
        limiter.answered();
        limiter.answered();
        limiter.acquire();
        assert_eq!(clock.elapsed(), start + Duration::from_millis(1_500));
        limiter.acquire();
        assert_eq!(clock.elapsed(), start + Duration::from_millis(1_500));
        limiter.acquire();
        assert_eq!(
            clock.elapsed(),
            start + Duration::from_millis(1_500 + 1_020),
            "never answered: the window and the margin after the grant"
        );
    }

    #[test]
    fn a_pause_holds_everyone_and_then_resumes_without_a_burst() {
        let clock = ManualClock::new();
        let limiter = limiter(100.0, 10, &clock);
        limiter.pause_for(Duration::from_secs(2));
        limiter.pause_for(Duration::from_secs(1)); // never shortens it
        assert!(!limiter.try_acquire());
        assert!(!limiter.acquire_timeout(Duration::from_secs(1)));
        assert_eq!(
            clock.elapsed(),
            Duration::ZERO,
            "a refused timeout waits for nothing"
        );
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_secs(2));
        assert!(!limiter.try_acquire(), "no burst after a pause");
        assert_eq!(limiter.rate(), Some(100.0), "a pause alone changes no rate");
    }

    #[test]
    fn a_429_cuts_to_what_was_accepted_and_the_window_holds_it() {
        let clock = ManualClock::new();
        let limiter = limiter(50.0, 50, &clock);
        for _ in 0..37 {
            limiter.acquire();
            limiter.record_success();
        }
        limiter.acquire(); // the 38th: throttled
        limiter.throttled(Duration::ZERO);
        assert_eq!(limiter.per_window(), 36, "37, less 4 % headroom");
        assert_eq!(limiter.rate(), Some(36.0));
        // The window already holds 38 grants: nothing until the first leaves it.
        assert!(!limiter.try_acquire());
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_millis(1_020));
    }

    #[test]
    fn a_429_with_no_more_than_the_limit_accepted_widens_the_margin() {
        let clock = ManualClock::new();
        let limiter = limiter(10.0, 10, &clock);
        for _ in 0..10 {
            limiter.acquire();
            limiter.record_success();
        }
        limiter.throttled(Duration::ZERO);
        assert_eq!(limiter.per_window(), 10, "the server had taken all ten");
        assert_eq!(limiter.margin(), Duration::from_millis(40));
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_millis(1_040));
        // An answered request counts 1 ms past the window now, then 2 ms.
        let answered_at = clock.elapsed();
        limiter.answered();
        for _ in 0..9 {
            assert!(limiter.try_acquire());
            limiter.answered();
        }
        limiter.acquire();
        assert_eq!(clock.elapsed(), answered_at + Duration::from_millis(1_001));
        for _ in 0..8 {
            clock.advance(Duration::from_secs(2));
            for _ in 0..10 {
                limiter.record_success();
            }
            limiter.throttled(Duration::ZERO);
        }
        assert_eq!(limiter.per_window(), 10);
        assert_eq!(
            limiter.margin(),
            Duration::from_millis(100),
            "a tenth at most"
        );
    }

    #[test]
    fn without_learning_a_429_only_pauses() {
        let clock = ManualClock::new();
        let limiter = SlidingWindow::builder(RateLimit::new(50.0, 5).unwrap())
            .learning(false)
            .clock(clock.clone())
            .build()
            .unwrap();
        limiter.record_success();
        limiter.throttled(Duration::from_secs(1));
        assert_eq!(limiter.per_window(), 50);
        assert!(limiter.rate_changes().is_empty());
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_secs(1));
    }

    #[test]
    fn slow_rates_get_a_window_long_enough_for_one_permit() {
        let clock = ManualClock::new();
        let limiter = SlidingWindow::with_clock(RateLimit::BROADCAST_TRIGGERS, clock.clone());
        assert_eq!(
            (limiter.per_window(), limiter.window()),
            (1, Duration::from_secs(10))
        );
        limiter.acquire();
        limiter.acquire();
        assert_eq!(clock.elapsed(), Duration::from_millis(10_200));
    }

    #[test]
    fn bad_settings_are_refused_with_the_setting_named() {
        let limit = RateLimit::new(10.0, 1).unwrap();
        let setting = |builder: SlidingWindowBuilder| match builder.build() {
            Err(Error::InvalidConfig { setting, .. }) => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            setting(SlidingWindow::builder(limit).window(Duration::ZERO)),
            "window"
        );
        let window = SlidingWindow::builder(limit).window(Duration::from_millis(99));
        assert_eq!(setting(window), "window", "under one permit at 10/s");
        assert_eq!(
            setting(SlidingWindow::builder(limit).margin(Duration::from_secs(2))),
            "margin"
        );
        for floor in [0.0, -1.0, f64::NAN, 11.0] {
            assert_eq!(setting(SlidingWindow::builder(limit).floor(floor)), "floor");
        }
        assert_eq!(
            setting(SlidingWindow::builder(limit).probe_after(Duration::ZERO)),
            "probe_after"
        );
    }
}
