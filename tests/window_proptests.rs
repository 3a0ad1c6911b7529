//! Property tests of `SlidingWindow`'s promise, on a manual clock: a request
//! counts from its grant until its answer and a window more (or the window
//! and the margin, never answered), and never more than N count at a grant;
//! nothing during a pause, a learned limit between the floor and the
//! ceiling, and the full rate for a steady caller.

use std::collections::VecDeque;
use std::time::Duration;

use cio_ratelimit::{Limiter, RateLimit, SlidingWindow, limit::ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    TryAcquire,
    Acquire,
    AcquireTimeout(Duration),
    Pause(Duration),
    Success,
    Answered,
    Throttled(Duration),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..2_000_000).prop_map(|us| Op::Advance(Duration::from_micros(us))),
        4 => Just(Op::TryAcquire),
        4 => Just(Op::Acquire),
        2 => (0u64..500_000).prop_map(|us| Op::AcquireTimeout(Duration::from_micros(us))),
        1 => (0u64..3_000_000).prop_map(|us| Op::Pause(Duration::from_micros(us))),
        4 => Just(Op::Success),
        4 => Just(Op::Answered),
        1 => (0u64..2_000_000).prop_map(|us| Op::Throttled(Duration::from_micros(us))),
    ]
}

/// A rate, a burst, whether it learns, and what happens to it.
fn scenario() -> impl Strategy<Value = (f64, u32, bool, Vec<Op>)> {
    (
        0.5f64..500.0,
        1u32..50,
        any::<bool>(),
        prop::collection::vec(op(), 1..300),
    )
}

fn limiter(rate: f64, burst: u32, learning: bool, clock: &ManualClock) -> SlidingWindow {
    SlidingWindow::builder(RateLimit::new(rate, burst).unwrap())
        .learning(learning)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// Grant times, when each grant's answer came, and pauses, in nanoseconds
/// on the manual clock.
#[derive(Default)]
struct Outcome {
    grants: Vec<u64>,
    answers: Vec<Option<u64>>,
    /// Grants without an answer, oldest first.
    open: VecDeque<usize>,
    /// Whether any answer was reported.
    reported: bool,
    pauses: Vec<(u64, u64)>,
}

impl Outcome {
    fn granted(&mut self, at: u64) {
        self.open.push_back(self.grants.len());
        self.grants.push(at);
        self.answers.push(None);
    }

    /// An answer goes to the oldest grant still counted without one.
    fn answered(&mut self, at: u64, span: u64) {
        self.reported = true;
        while self
            .open
            .front()
            .is_some_and(|&i| self.grants[i] + span <= at)
        {
            self.open.pop_front();
        }
        if let Some(i) = self.open.pop_front() {
            self.answers[i] = Some(at);
        }
    }
}

fn run(limiter: &SlidingWindow, clock: &ManualClock, ops: &[Op]) -> Outcome {
    let now = || clock.elapsed().as_nanos() as u64;
    let (ceiling, floor) = (limiter.per_window(), limiter.per_window().div_ceil(20));
    let span = (limiter.window() + limiter.margin()).as_nanos() as u64;
    let mut outcome = Outcome::default();
    for op in ops {
        match *op {
            Op::Advance(d) => clock.advance(d),
            Op::TryAcquire => {
                if limiter.try_acquire() {
                    outcome.granted(now());
                }
            }
            Op::Acquire => {
                limiter.acquire();
                outcome.granted(now());
            }
            Op::AcquireTimeout(d) => {
                let before = now();
                if limiter.acquire_timeout(d) {
                    outcome.granted(now());
                    assert!(
                        now() - before <= d.as_nanos() as u64,
                        "served after its deadline"
                    );
                } else if !outcome.reported {
                    assert_eq!(now(), before, "no answer expected: a refusal must not wait");
                } else {
                    // An answer might have come from another thread: it
                    // looked for one, until the deadline at the latest.
                    assert!(
                        now() - before <= d.as_nanos() as u64,
                        "refused after its deadline"
                    );
                }
            }
            Op::Answered => {
                limiter.answered();
                outcome.answered(now(), span);
            }
            Op::Pause(d) => {
                limiter.pause_for(d);
                outcome.pauses.push((now(), now() + d.as_nanos() as u64));
            }
            Op::Success => limiter.record_success(),
            Op::Throttled(d) => {
                limiter.throttled(d);
                outcome.pauses.push((now(), now() + d.as_nanos() as u64));
            }
        }
        let limit = limiter.per_window();
        assert!(
            floor <= limit && limit <= ceiling,
            "{limit} outside {floor}..={ceiling}"
        );
    }
    outcome
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At each grant, fewer than the configured N earlier requests still
    /// count (with the window and margin it started with), learning or not.
    /// So whenever in [grant, answer] each request reached the server, no
    /// window W there holds more than N.
    #[test]
    fn never_more_than_n_in_any_window((rate, burst, learning, ops) in scenario()) {
        let clock = ManualClock::new();
        let limiter = limiter(rate, burst, learning, &clock);
        let n = limiter.per_window() as usize;
        let window = limiter.window().as_nanos() as u64;
        let span = (limiter.window() + limiter.margin()).as_nanos() as u64;
        let Outcome { grants, answers, .. } = run(&limiter, &clock, &ops);
        prop_assert!(grants.windows(2).all(|w| w[0] <= w[1]));
        for (r, &t) in grants.iter().enumerate() {
            let counted = (0..r)
                .filter(|&j| match answers[j] {
                    Some(answer) if answer <= t => t < answer + window,
                    // Not answered by t: it counts until the span ends.
                    _ => t < grants[j] + span,
                })
                .count();
            prop_assert!(counted < n, "{} requests counted at the grant at {}, limit {}", counted, t, n);
        }
    }

    /// Nothing is granted inside a pause, whether a 429 or a caller asked for it.
    #[test]
    fn nothing_is_granted_during_a_pause((rate, burst, learning, ops) in scenario()) {
        let clock = ManualClock::new();
        let limiter = limiter(rate, burst, learning, &clock);
        let Outcome { grants, pauses, .. } = run(&limiter, &clock, &ops);
        for &(start, end) in &pauses {
            for &t in &grants {
                prop_assert!(!(start < t && t < end), "granted at {} inside pause {}..{}", t, start, end);
            }
        }
    }

    /// A caller that keeps asking gets N per W + margin, at the limit in force.
    #[test]
    fn a_steady_caller_gets_the_limit_in_force((rate, burst, learning, ops) in scenario()) {
        let clock = ManualClock::new();
        let limiter = limiter(rate, burst, learning, &clock);
        run(&limiter, &clock, &ops);
        let n = limiter.per_window();
        // Past any pause and whatever the window holds, then measure.
        for _ in 0..=n {
            limiter.acquire();
        }
        let span = limiter.window() + limiter.margin();
        let start = clock.elapsed();
        let windows = 3;
        for _ in 0..windows * n {
            limiter.acquire();
        }
        let took = clock.elapsed() - start;
        // Intervals are whole nanoseconds, rounded up: a nanosecond a permit.
        let rounding = Duration::from_nanos(u64::from(windows * n));
        prop_assert!(took <= span * windows + rounding, "{:?} for {} windows of {}", took, windows, n);
        prop_assert!(took >= span * (windows - 1), "{:?} for {} windows of {}", took, windows, n);
    }
}

#[test]
fn clones_share_one_window_and_one_learned_rate_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SlidingWindow>();
    let clock = ManualClock::new();
    let limiter = limiter(10.0, 10, false, &clock);
    let clone = limiter.clone();
    std::thread::spawn(move || {
        for _ in 0..10 {
            assert!(clone.try_acquire());
        }
    })
    .join()
    .unwrap();
    assert!(!limiter.try_acquire(), "the clone took the whole window");
    let learning = self::limiter(50.0, 5, true, &clock);
    learning.clone().throttled(Duration::from_secs(1));
    assert_eq!(
        learning.rate(),
        Some(35.0),
        "nothing accepted in its first window: 0.7 × 50, seen by every clone"
    );
    assert!(
        format!("{learning:?}").contains("per_window: 35"),
        "{learning:?}"
    );
}
