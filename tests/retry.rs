//! `RetryPolicy`: classification, backoff, 429 pauses, budgets, and logging.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cio_ratelimit::{
    Error, Limiter, RateLimit, RetryPolicy, TokenBucket,
    limit::ManualClock,
    retry::{Call, Failure, Jitter},
};
use cio_test_kit::{Logged, capture_logs, logged};

const SECOND: Duration = Duration::from_secs(1);

fn status(status: u16) -> Failure {
    Failure::Status {
        status,
        retry_after: None,
    }
}

fn throttled(retry_after: Option<Duration>) -> Failure {
    Failure::Status {
        status: 429,
        retry_after,
    }
}

/// A limiter that records what the retry loop asked of it.
#[derive(Debug, Default)]
struct Recorder {
    acquired: AtomicU32,
    answered: AtomicU32,
    pauses: Mutex<Vec<Duration>>,
}

impl Limiter for Recorder {
    fn acquire(&self) {
        self.acquired.fetch_add(1, Ordering::SeqCst);
    }
    fn try_acquire(&self) -> bool {
        self.acquire();
        true
    }
    fn acquire_timeout(&self, _: Duration) -> bool {
        self.acquire();
        true
    }
    fn pause_for(&self, duration: Duration) {
        self.pauses.lock().unwrap().push(duration);
    }
    fn answered(&self) {
        self.answered.fetch_add(1, Ordering::SeqCst);
    }
}

/// Answers attempts from a script; the last answer repeats.
fn script(
    answers: &[Result<&'static str, Failure>],
) -> impl FnMut() -> Result<&'static str, Failure> {
    let mut answers: VecDeque<_> = answers.iter().copied().collect();
    move || {
        if answers.len() > 1 {
            answers.pop_front().unwrap()
        } else {
            answers[0]
        }
    }
}

fn policy(clock: &ManualClock) -> RetryPolicy {
    RetryPolicy::builder().clock(clock.clone()).build().unwrap()
}

#[test]
fn a_three_second_throttle_with_retry_after_zero_draws_a_handful_of_requests() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(80.0, 10).unwrap(), clock.clone());
    let attempts = AtomicU32::new(0);
    let result = policy(&clock).run(&bucket, Call::safe("identify"), || {
        attempts.fetch_add(1, Ordering::SeqCst);
        if clock.elapsed() < 3 * SECOND {
            Err(throttled(Some(Duration::ZERO)))
        } else {
            Ok("done")
        }
    });
    assert_eq!(result, Ok("done"));
    // 429s at 0, 0.25, 0.75, 1.75 and 2.75 s; the attempt at 3.75 s goes through.
    assert_eq!(attempts.load(Ordering::SeqCst), 6);
    assert_eq!(clock.elapsed(), Duration::from_millis(3_750));
}

#[test]
fn every_attempt_takes_a_permit_and_transient_failures_back_off() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let result = policy(&clock).run(
        &limiter,
        Call::safe("identify"),
        script(&[
            Err(status(500)),
            Err(Failure::Timeout),
            Err(status(502)),
            Ok("done"),
        ]),
    );
    assert_eq!(result, Ok("done"));
    assert_eq!(limiter.acquired.load(Ordering::SeqCst), 4);
    assert_eq!(
        limiter.answered.load(Ordering::SeqCst),
        4,
        "every attempt's end is told, failed or not"
    );
    assert!(
        limiter.pauses.lock().unwrap().is_empty(),
        "errors and timeouts are not rate limits"
    );
    // Backoffs of 1, 2 and 4 s, each with up to 25 % jitter.
    assert!(
        clock.elapsed() >= 7 * SECOND && clock.elapsed() <= 7 * SECOND * 5 / 4,
        "{:?}",
        clock.elapsed()
    );
}

#[test]
fn retries_stop_after_max_retries_with_the_last_error() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let result = policy(&clock).run(
        &limiter,
        Call::safe("identify"),
        script(&[Err(status(503))]),
    );
    assert_eq!(result, Err(status(503)));
    assert_eq!(
        limiter.acquired.load(Ordering::SeqCst),
        5,
        "1 attempt + 4 retries"
    );
    assert_eq!(limiter.answered.load(Ordering::SeqCst), 5);
}

#[test]
fn a_permanent_failure_is_returned_after_one_attempt() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let result = policy(&clock).run(
        &limiter,
        Call::safe("identify"),
        script(&[Err(status(400))]),
    );
    assert_eq!(result, Err(status(400)));
    assert_eq!(limiter.acquired.load(Ordering::SeqCst), 1);
    assert_eq!(clock.elapsed(), Duration::ZERO);
}

#[test]
fn a_429_pauses_the_shared_limiter_and_does_not_spend_max_retries() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let policy = RetryPolicy::builder()
        .max_retries(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut answers = vec![Err(throttled(Some(2 * SECOND))); 6];
    answers.push(Err(status(500)));
    answers.push(Ok("done"));
    let result = policy.run(&limiter, Call::safe("identify"), script(&answers));
    assert_eq!(result, Ok("done"));
    assert_eq!(*limiter.pauses.lock().unwrap(), vec![2 * SECOND; 6]);
    assert_eq!(limiter.acquired.load(Ordering::SeqCst), 8);
}

#[test]
fn a_429_makes_the_next_attempt_wait_for_the_pause_on_a_real_bucket() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(80.0, 10).unwrap(), clock.clone());
    let result = policy(&clock).run(
        &bucket,
        Call::safe("identify"),
        script(&[Err(throttled(Some(3 * SECOND))), Ok("done")]),
    );
    assert_eq!(result, Ok("done"));
    assert_eq!(
        clock.elapsed(),
        3 * SECOND,
        "the retry waited in acquire(), for the pause"
    );
}

#[test]
fn endless_429s_give_up_at_the_throttle_deadline() {
    let clock = ManualClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(80.0, 10).unwrap(), clock.clone());
    let result = policy(&clock).run(
        &bucket,
        Call::safe("identify"),
        script(&[Err(throttled(Some(50 * SECOND)))]),
    );
    assert_eq!(result, Err(throttled(Some(50 * SECOND))));
    let waited = clock.elapsed();
    assert!(
        waited <= Duration::from_secs(300) && waited >= Duration::from_secs(250),
        "{waited:?}"
    );
}

#[test]
fn a_zero_throttle_deadline_never_retries_a_429_but_still_pauses() {
    let limiter = Recorder::default();
    let result = RetryPolicy::never().run(
        &limiter,
        Call::safe("x"),
        script(&[Err(throttled(Some(SECOND)))]),
    );
    assert_eq!(result, Err(throttled(Some(SECOND))));
    assert_eq!(limiter.acquired.load(Ordering::SeqCst), 1);
    assert_eq!(*limiter.pauses.lock().unwrap(), vec![SECOND]);
}

#[test]
fn the_retry_budget_stops_a_retry_storm() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let policy = RetryPolicy::builder()
        .clock(clock.clone())
        .base_delay(Duration::from_millis(1))
        .retry_budget(0.2, Duration::from_secs(3600), 0)
        .build()
        .unwrap();
    for _ in 0..100 {
        let _ = policy.run(
            &limiter,
            Call::safe("identify"),
            script(&[Err(status(500))]),
        );
    }
    let attempts = limiter.acquired.load(Ordering::SeqCst);
    assert_eq!(attempts, 100 + 20, "retries add at most 20 % to 100 calls");
}

#[test]
fn invalid_settings_are_refused_with_the_setting_named() {
    let setting = |result: cio_ratelimit::Result<RetryPolicy>| match result {
        Err(Error::InvalidConfig { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        setting(RetryPolicy::builder().base_delay(Duration::ZERO).build()),
        "base_delay"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .base_delay(10 * SECOND)
                .max_delay(SECOND)
                .build()
        ),
        "max_delay"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .jitter(Jitter::Proportional(1.5))
                .build()
        ),
        "jitter"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .jitter(Jitter::Proportional(f64::NAN))
                .build()
        ),
        "jitter"
    );
    assert_eq!(
        setting(RetryPolicy::builder().retry_budget(-0.1, SECOND, 0).build()),
        "retry_budget share"
    );
    assert_eq!(
        setting(
            RetryPolicy::builder()
                .retry_budget(0.2, Duration::ZERO, 0)
                .build()
        ),
        "retry_budget window"
    );
}

#[test]
fn each_retry_logs_one_warning_with_attempt_delay_and_status() {
    capture_logs(log::LevelFilter::Warn);
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let _ = policy(&clock).run(
        &limiter,
        Call::safe("logged_call"),
        script(&[Err(status(503)), Err(throttled(Some(SECOND))), Ok("done")]),
    );
    let lines: Vec<String> = logged()
        .iter()
        .map(Logged::to_string)
        .filter(|l| l.contains("logged_call"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].starts_with("WARN logged_call: HTTP 503; retry 1/4 in "),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains("throttled (429)") && lines[1].contains("1s"),
        "{}",
        lines[1]
    );
}

#[test]
fn policies_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RetryPolicy>();
}

#[test]
fn stats_count_retries_429s_and_calls_given_up_across_clones() {
    let clock = ManualClock::new();
    let limiter = Recorder::default();
    let policy = policy(&clock);
    let clone = policy.clone();
    let _ = policy.run(
        &limiter,
        Call::safe("a"),
        script(&[Err(status(500)), Err(throttled(None)), Ok("ok")]),
    );
    let _ = clone.run(&limiter, Call::safe("b"), script(&[Err(status(400))]));
    assert_eq!(
        policy.stats(),
        cio_ratelimit::retry::RetryStats {
            requests: 4,
            retries: 1,
            throttled: 1,
            gave_up: 1
        }
    );
}
