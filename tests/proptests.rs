//! Property tests of the limiter's guarantee, on a manual clock.

use std::time::Duration;

use cio_ratelimit::{Limiter, RateLimit, TokenBucket, limit::ManualClock};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(Duration),
    TryAcquire,
    Acquire,
    AcquireN(u32),
    AcquireTimeout(Duration),
    Pause(Duration),
}

fn op(burst: u32) -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..2_000_000).prop_map(|us| Op::Advance(Duration::from_micros(us))),
        4 => Just(Op::TryAcquire),
        4 => Just(Op::Acquire),
        1 => (0..=burst + 1).prop_map(Op::AcquireN),
        2 => (0u64..500_000).prop_map(|us| Op::AcquireTimeout(Duration::from_micros(us))),
        1 => (0u64..3_000_000).prop_map(|us| Op::Pause(Duration::from_micros(us))),
    ]
}

fn scenario() -> impl Strategy<Value = (f64, u32, Vec<Op>)> {
    (0.5f64..2_000.0, 1u32..20).prop_flat_map(|(rate, burst)| {
        (
            Just(rate),
            Just(burst),
            prop::collection::vec(op(burst), 1..300),
        )
    })
}

/// What a run of operations did, in nanoseconds on the manual clock.
struct Outcome {
    /// `(grant time, permits)`, in the order granted.
    grants: Vec<(u64, u64)>,
    /// `(start, end)` of every pause.
    pauses: Vec<(u64, u64)>,
}

fn run(rate: f64, burst: u32, ops: &[Op]) -> Outcome {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(rate, burst).unwrap(), clock.clone());
    let now = || clock.elapsed().as_nanos() as u64;
    let mut grants = Vec::new();
    let mut pauses = Vec::new();
    for op in ops {
        match *op {
            Op::Advance(d) => clock.advance(d),
            Op::TryAcquire => {
                if bucket.try_acquire() {
                    grants.push((now(), 1));
                }
            }
            Op::Acquire => {
                bucket.acquire();
                grants.push((now(), 1));
            }
            Op::AcquireN(n) => match bucket.acquire_n(n) {
                Ok(()) if n > 0 => grants.push((now(), u64::from(n))),
                Ok(()) => {}
                Err(_) => assert!(n > burst, "acquire_n({n}) refused with burst {burst}"),
            },
            Op::AcquireTimeout(d) => {
                let before = now();
                if Limiter::acquire_timeout(&bucket, d) {
                    grants.push((now(), 1));
                    assert!(
                        now() - before <= d.as_nanos() as u64,
                        "served after its deadline"
                    );
                } else {
                    assert_eq!(now(), before, "a refusal must not wait");
                }
            }
            Op::Pause(d) => {
                bucket.pause_for(d);
                pauses.push((now(), now() + d.as_nanos() as u64));
            }
        }
    }
    Outcome { grants, pauses }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// In any window [t_i, t_j], at most `burst + rate × (t_j − t_i)` permits.
    #[test]
    fn never_more_than_burst_plus_rate_times_window((rate, burst, ops) in scenario()) {
        let grants = run(rate, burst, &ops).grants;
        for i in 0..grants.len() {
            let mut permits = 0;
            for &(t, n) in &grants[i..] {
                permits += n;
                let window = (t - grants[i].0) as f64 / 1e9;
                let bound = f64::from(burst) + rate * window;
                prop_assert!(
                    permits as f64 <= bound + 1e-9,
                    "{} permits in {}s, bound {}", permits, window, bound
                );
            }
        }
    }

    /// Grants come in time order, and none falls inside a pause.
    #[test]
    fn nothing_is_granted_during_a_pause((rate, burst, ops) in scenario()) {
        let Outcome { grants, pauses } = run(rate, burst, &ops);
        prop_assert!(grants.windows(2).all(|w| w[0].0 <= w[1].0));
        for &(start, end) in &pauses {
            for &(t, _) in &grants {
                prop_assert!(!(start < t && t < end), "granted at {} inside pause {}..{}", t, start, end);
            }
        }
    }

    /// A caller that keeps asking gets the full rate, whatever came before.
    #[test]
    fn a_steady_caller_gets_the_rate((rate, burst, ops) in scenario()) {
        let clock = ManualClock::new();
        let bucket = TokenBucket::with_clock(RateLimit::new(rate, burst).unwrap(), clock.clone());
        for op in &ops {
            if let Op::Advance(d) = op { clock.advance(*d) } else { bucket.acquire() }
        }
        // Take whatever the bucket has saved up, then measure the steady rate.
        for _ in 0..=burst {
            bucket.acquire();
        }
        let start = clock.elapsed();
        let permits = 200;
        for _ in 0..permits {
            bucket.acquire();
        }
        let achieved = f64::from(permits) / (clock.elapsed() - start).as_secs_f64();
        prop_assert!(achieved >= 0.995 * rate && achieved <= rate * (1.0 + 1e-9), "{} of {}", achieved, rate);
    }
}
