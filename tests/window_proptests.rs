//! Property tests of `SlidingWindow`'s promise, on a manual clock: never more
//! than N grants in any window W + margin, nothing during a pause, a learned
//! limit between the floor and the ceiling, and the full rate for a steady
//! caller.

use std::time::Duration;

use cio_ratelimit::{Limiter, ManualClock, RateLimit, SlidingWindow};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    TryAcquire,
    Acquire,
    AcquireTimeout(Duration),
    Pause(Duration),
    Success,
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

/// Grant times and pauses, in nanoseconds on the manual clock.
struct Outcome {
    grants: Vec<u64>,
    pauses: Vec<(u64, u64)>,
}

fn run(limiter: &SlidingWindow, clock: &ManualClock, ops: &[Op]) -> Outcome {
    let now = || clock.elapsed().as_nanos() as u64;
    let (ceiling, floor) = (limiter.per_window(), limiter.per_window().div_ceil(20));
    let mut grants = Vec::new();
    let mut pauses = Vec::new();
    for op in ops {
        match *op {
            Op::Advance(d) => clock.advance(d),
            Op::TryAcquire => {
                if limiter.try_acquire() {
                    grants.push(now());
                }
            }
            Op::Acquire => {
                limiter.acquire();
                grants.push(now());
            }
            Op::AcquireTimeout(d) => {
                let before = now();
                if limiter.acquire_timeout(d) {
                    grants.push(now());
                    assert!(
                        now() - before <= d.as_nanos() as u64,
                        "served after its deadline"
                    );
                } else {
                    assert_eq!(now(), before, "a refusal must not wait");
                }
            }
            Op::Pause(d) => {
                limiter.pause_for(d);
                pauses.push((now(), now() + d.as_nanos() as u64));
            }
            Op::Success => limiter.record_success(),
            Op::Throttled(d) => {
                limiter.throttled(d);
                pauses.push((now(), now() + d.as_nanos() as u64));
            }
        }
        let limit = limiter.per_window();
        assert!(
            floor <= limit && limit <= ceiling,
            "{limit} outside {floor}..={ceiling}"
        );
    }
    Outcome { grants, pauses }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// No window of length W + margin (the margin it started with) holds
    /// more than the configured N, learning or not.
    #[test]
    fn never_more_than_n_in_any_window((rate, burst, learning, ops) in scenario()) {
        let clock = ManualClock::new();
        let limiter = limiter(rate, burst, learning, &clock);
        let n = limiter.per_window() as usize;
        let span = (limiter.window() + limiter.margin()).as_nanos() as u64;
        let grants = run(&limiter, &clock, &ops).grants;
        prop_assert!(grants.windows(2).all(|w| w[0] <= w[1]));
        // The fullest window ends at a grant: count back from each one.
        let mut first = 0;
        for (end, &t) in grants.iter().enumerate() {
            while grants[first] + span <= t {
                first += 1;
            }
            let inside = end - first + 1;
            prop_assert!(inside <= n, "{} grants in the window ending at {}, limit {}", inside, t, n);
        }
    }

    /// Nothing is granted inside a pause, whether a 429 or a caller asked for it.
    #[test]
    fn nothing_is_granted_during_a_pause((rate, burst, learning, ops) in scenario()) {
        let clock = ManualClock::new();
        let limiter = limiter(rate, burst, learning, &clock);
        let Outcome { grants, pauses } = run(&limiter, &clock, &ops);
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
        Some(3.0),
        "nothing accepted: the floor, 50 / 20, seen by every clone"
    );
    assert!(
        format!("{learning:?}").contains("per_window: 3"),
        "{learning:?}"
    );
}
