//! `TokenBucket`'s public behaviour, on a manual clock unless a test says otherwise.

use std::sync::mpsc;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::{
    Error, Limiter, RateLimit, TokenBucket,
    limit::{Clock, ManualClock},
};

mod grant_stamps;
use grant_stamps::most_surely_in_window;

const MS: Duration = Duration::from_millis(1);

fn bucket(rate: f64, burst: u32) -> (TokenBucket, ManualClock) {
    let clock = ManualClock::new();
    (
        TokenBucket::with_clock(RateLimit::new(rate, burst).unwrap(), clock.clone()),
        clock,
    )
}

#[test]
fn an_idle_bucket_grants_its_burst_then_one_permit_per_interval() {
    let (bucket, clock) = bucket(80.0, 10);
    for _ in 0..10 {
        assert!(bucket.try_acquire());
    }
    assert!(!bucket.try_acquire());
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time(),
        Duration::from_micros(12_500)
    );
    clock.advance(Duration::from_micros(12_499));
    assert!(!bucket.try_acquire());
    clock.advance(Duration::from_micros(1));
    assert!(bucket.try_acquire());
    assert!(!bucket.try_acquire());
}

#[test]
fn acquire_sleeps_until_the_permit_is_due() {
    let (bucket, clock) = bucket(80.0, 10);
    for _ in 0..10 {
        bucket.acquire();
    }
    assert_eq!(
        clock.elapsed(),
        Duration::ZERO,
        "the burst needs no waiting"
    );
    bucket.acquire();
    assert_eq!(clock.elapsed(), Duration::from_micros(12_500));
    for _ in 0..80 {
        bucket.acquire();
    }
    assert_eq!(clock.elapsed(), Duration::from_micros(12_500 * 81));
}

#[test]
fn a_steady_stream_gets_the_full_rate() {
    let (bucket, clock) = bucket(80.0, 10);
    for _ in 0..10_010 {
        bucket.acquire();
    }
    // 10 from the burst, then 10,000 at 80/s: 125 s exactly.
    let rate = 10_000.0 / clock.elapsed().as_secs_f64();
    assert!(rate >= 0.995 * 80.0, "{rate}/s");
    assert!(rate <= 80.0, "{rate}/s");
}

#[test]
fn a_refill_never_exceeds_the_burst() {
    let (bucket, clock) = bucket(80.0, 10);
    clock.advance(Duration::from_secs(3600));
    let granted = std::iter::from_fn(|| Some(bucket.try_acquire()))
        .take(100)
        .filter(|&ok| ok)
        .count();
    assert_eq!(granted, 10);
}

#[test]
fn acquire_timeout_takes_nothing_when_it_cannot_be_served_in_time() {
    let (bucket, clock) = bucket(80.0, 1);
    assert!(bucket.try_acquire());
    assert!(!bucket.acquire_timeout(12 * MS));
    assert_eq!(clock.elapsed(), Duration::ZERO, "a refusal returns at once");
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time(),
        Duration::from_micros(12_500),
        "nothing taken"
    );
    assert!(bucket.acquire_timeout(13 * MS));
    assert_eq!(clock.elapsed(), Duration::from_micros(12_500));
}

#[test]
fn acquire_n_grants_permits_together_and_refuses_more_than_the_burst_at_once() {
    let (bucket, clock) = bucket(10.0, 5);
    assert_eq!(
        bucket.acquire_n(6),
        Err(Error::BurstExceeded {
            requested: 6,
            burst: 5
        })
    );
    assert_eq!(clock.elapsed(), Duration::ZERO, "refused without waiting");
    bucket.acquire_n(0).unwrap();
    bucket.acquire_n(5).unwrap();
    assert_eq!(clock.elapsed(), Duration::ZERO);
    bucket.acquire_n(3).unwrap();
    assert_eq!(clock.elapsed(), 300 * MS, "three intervals of 100 ms");
    assert!(!bucket.try_acquire());
}

#[test]
fn pause_for_stops_every_grant_and_resumes_without_a_burst() {
    let (bucket, clock) = bucket(10.0, 5);
    bucket.pause_for(Duration::from_secs(2));
    assert!(!bucket.try_acquire());
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time(),
        Duration::from_secs(2)
    );
    bucket.acquire();
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
    bucket.acquire();
    assert_eq!(
        clock.elapsed(),
        Duration::from_millis(2_100),
        "steady rate after a pause, no burst"
    );
}

#[test]
fn a_shorter_pause_does_not_cut_a_longer_one_short() {
    let (bucket, clock) = bucket(10.0, 1);
    bucket.pause_for(Duration::from_secs(5));
    bucket.pause_for(Duration::from_secs(1));
    bucket.acquire();
    assert_eq!(clock.elapsed(), Duration::from_secs(5));
}

#[test]
fn set_rate_applies_to_the_next_permit() {
    let (bucket, clock) = bucket(80.0, 1);
    bucket.acquire();
    bucket.set_rate(4.0);
    assert_eq!(bucket.rate_per_sec(), 4.0);
    bucket.acquire();
    assert_eq!(clock.elapsed(), 250 * MS);
    bucket.acquire();
    assert_eq!(clock.elapsed(), 500 * MS);
}

#[test]
fn invalid_values_are_refused_with_the_setting_named() {
    assert!(matches!(
        TokenBucket::try_new(f64::NAN, 10),
        Err(Error::InvalidConfig {
            setting: "rate_per_sec",
            ..
        })
    ));
    assert!(matches!(
        TokenBucket::try_new(-80.0, 10),
        Err(Error::InvalidConfig {
            setting: "rate_per_sec",
            ..
        })
    ));
    assert!(matches!(
        TokenBucket::try_new(80.0, 0),
        Err(Error::InvalidConfig {
            setting: "burst",
            ..
        })
    ));
    let bucket = TokenBucket::new(80.0, 10);
    assert!(bucket.try_set_rate(0.0).is_err());
    assert_eq!(
        bucket.rate_per_sec(),
        80.0,
        "a refused rate changes nothing"
    );
}

#[test]
#[should_panic(expected = "rate_per_sec")]
fn new_panics_on_a_zero_rate() {
    TokenBucket::new(0.0, 10);
}

#[test]
#[should_panic(expected = "rate_per_sec")]
fn new_panics_on_an_infinite_rate() {
    TokenBucket::new(f64::INFINITY, 10);
}

#[test]
#[should_panic(expected = "burst")]
fn new_panics_on_a_zero_burst() {
    TokenBucket::new(80.0, 0);
}

#[test]
#[should_panic(expected = "rate_per_sec")]
fn set_rate_panics_on_a_negative_rate() {
    TokenBucket::new(80.0, 10).set_rate(-1.0);
}

#[test]
fn clones_share_one_bucket() {
    let (bucket, _clock) = bucket(1.0, 3);
    let clone = bucket.clone();
    assert!(bucket.try_acquire());
    assert!(clone.try_acquire());
    assert!(bucket.try_acquire());
    assert!(!clone.try_acquire());
    clone.pause_for(Duration::from_secs(60));
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time(),
        Duration::from_secs(60)
    );
}

#[test]
fn presets_build_buckets_with_their_limits() {
    let bucket = TokenBucket::from_limit(RateLimit::BROADCAST_TRIGGERS);
    assert_eq!((bucket.rate_per_sec(), bucket.burst()), (0.1, 1));
    assert!(bucket.try_acquire());
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time().as_secs(),
        9,
        "10 s less a moment"
    );
}

#[test]
fn debug_shows_the_limit() {
    let text = format!("{:?}", TokenBucket::new(80.0, 10));
    assert!(
        text.contains("rate_per_sec: 80.0") && text.contains("burst: 10"),
        "{text}"
    );
}

/// Compile-only: the bucket and the trait object can cross threads.
#[test]
fn limiters_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<TokenBucket>();
    assert_send_sync::<cio_ratelimit::limit::Unlimited>();
    assert_send_sync::<Arc<dyn Limiter>>();
    assert_send_sync::<ManualClock>();
}

/// A clock whose `sleep` really blocks until the test moves time past the
/// sleeper's wake-up time: many threads, and still no real waiting.
#[derive(Debug, Clone)]
struct SteppedClock {
    origin: Instant,
    inner: Arc<(Mutex<SteppedTime>, Condvar)>,
}

#[derive(Debug, Default)]
struct SteppedTime {
    now: Duration,
    /// Wake-up times of the threads asleep.
    sleeping: Vec<Duration>,
    /// Threads that have finished their work.
    done: usize,
}

impl SteppedClock {
    fn new() -> SteppedClock {
        SteppedClock {
            origin: Instant::now(),
            inner: Arc::default(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.inner.0.lock().unwrap().now
    }

    /// Moves time forward, then waits until every thread it woke has either
    /// gone back to sleep or finished: each step is observed on its own.
    fn advance(&self, by: Duration, threads: usize) {
        let (time, changed) = &*self.inner;
        time.lock().unwrap().now += by;
        changed.notify_all();
        self.settle(threads);
    }

    /// Waits (on the condvar, not a timer) until all `threads` are asleep
    /// with a wake-up time still ahead, or done.
    fn settle(&self, threads: usize) {
        let (time, changed) = &*self.inner;
        let mut time = time.lock().unwrap();
        while time.sleeping.len() + time.done != threads
            || time.sleeping.iter().any(|&w| w <= time.now)
        {
            time = changed.wait(time).unwrap();
        }
    }

    fn finish(&self) {
        self.inner.0.lock().unwrap().done += 1;
        self.inner.1.notify_all();
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Instant {
        self.origin + self.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        let (time, changed) = &*self.inner;
        let mut time = time.lock().unwrap();
        let wake = time.now + duration;
        time.sleeping.push(wake);
        changed.notify_all();
        while time.now < wake {
            time = changed.wait(time).unwrap();
        }
        let me = time.sleeping.iter().position(|&w| w == wake).unwrap();
        time.sleeping.swap_remove(me);
        changed.notify_all();
    }
}

/// Starts `n` threads one after another, each calling `acquire` once the
/// previous one is asleep, and reports `(thread, grant time)` in grant order.
fn queue_waiters(
    bucket: &TokenBucket,
    clock: &SteppedClock,
    n: usize,
) -> (
    mpsc::Receiver<(usize, Duration)>,
    Vec<thread::JoinHandle<()>>,
) {
    let (tx, rx) = mpsc::channel();
    let mut handles = Vec::new();
    for i in 0..n {
        let (bucket, thread_clock, tx) = (bucket.clone(), clock.clone(), tx.clone());
        handles.push(thread::spawn(move || {
            bucket.acquire();
            let _ = tx.send((i, thread_clock.elapsed()));
            thread_clock.finish();
        }));
        clock.settle(i + 1);
    }
    (rx, handles)
}

#[test]
fn waiting_callers_are_served_in_arrival_order() {
    let clock = SteppedClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(10.0, 1).unwrap(), clock.clone());
    bucket.acquire(); // empty the bucket: everyone below must wait
    let (grants, handles) = queue_waiters(&bucket, &clock, 8);
    for _ in 0..8 {
        clock.advance(100 * MS, 8);
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    let order: Vec<(usize, Duration)> = grants.try_iter().collect();
    let expected: Vec<(usize, Duration)> = (0..8).map(|i| (i, 100 * MS * (i as u32 + 1))).collect();
    assert_eq!(order, expected);
}

#[test]
fn a_pause_moves_waiting_callers_behind_it_in_their_order() {
    let clock = SteppedClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(10.0, 1).unwrap(), clock.clone());
    bucket.acquire();
    let (grants, handles) = queue_waiters(&bucket, &clock, 4);
    // Slots were 100..400 ms. A 429 at 0 asks for 1 s of silence.
    bucket.pause_for(Duration::from_secs(1));
    for _ in 0..14 {
        clock.advance(100 * MS, 4);
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    let order: Vec<(usize, Duration)> = grants.try_iter().collect();
    let expected: Vec<(usize, Duration)> =
        (0..4).map(|i| (i, 100 * MS * (i as u32 + 10))).collect();
    assert_eq!(
        order, expected,
        "nobody inside the pause, same order, same spacing"
    );
}

#[test]
fn set_rate_rescales_callers_already_waiting() {
    let clock = SteppedClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(10.0, 1).unwrap(), clock.clone());
    bucket.acquire();
    let (grants, handles) = queue_waiters(&bucket, &clock, 3);
    bucket.set_rate(5.0); // slots at 100, 200, 300 ms become 200, 400, 600 ms
    for _ in 0..6 {
        clock.advance(100 * MS, 3);
    }
    handles.into_iter().for_each(|h| h.join().unwrap());
    let order: Vec<(usize, Duration)> = grants.try_iter().collect();
    assert_eq!(order, vec![(0, 200 * MS), (1, 400 * MS), (2, 600 * MS)]);
}

#[test]
fn acquire_timeout_gives_up_when_a_pause_outlasts_its_deadline() {
    let clock = SteppedClock::new();
    let bucket = TokenBucket::with_clock(RateLimit::new(10.0, 1).unwrap(), clock.clone());
    bucket.acquire();
    let waiter = {
        let (bucket, clock) = (bucket.clone(), clock.clone());
        thread::spawn(move || {
            let granted = bucket.acquire_timeout(500 * MS);
            clock.finish();
            granted
        })
    };
    clock.settle(1);
    bucket.pause_for(Duration::from_secs(2));
    clock.advance(100 * MS, 1);
    assert!(!waiter.join().unwrap());
    // Its permit was given back: the next one is due right after the pause.
    assert_eq!(
        bucket.acquire_now().unwrap_err().wait_time(),
        Duration::from_millis(1_900)
    );
}

/// Real threads and real time: ≥ 64 threads hammering one bucket never see
/// more than `burst + rate` permits in any 1 s window.
///
/// A stamp taken after `acquire` returns may come late on a loaded machine,
/// and late stamps bunch up; so each permit is known only to lie between a
/// stamp taken before `acquire` and one taken after it. A window holds more
/// than 90 permits for certain only when more than 90 of those intervals fit
/// inside it: that is what is checked, and what a limiter letting too many
/// through fails (its callers hardly wait, so their intervals are short).
#[test]
fn many_real_threads_never_exceed_burst_plus_rate_in_any_second() {
    const THREADS: usize = 64;
    // Taken before the bucket exists: its permits accrue from a later moment.
    let origin = Instant::now();
    let bucket = TokenBucket::new(80.0, 10);
    let run_for = Duration::from_millis(2_500);
    let start = Arc::new(Barrier::new(THREADS));
    let (tx, rx) = mpsc::channel();
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (bucket, start, tx) = (bucket.clone(), start.clone(), tx.clone());
            thread::spawn(move || {
                start.wait();
                let begin = Instant::now();
                while begin.elapsed() < run_for {
                    let asked = Instant::now();
                    bucket.acquire();
                    let _ = tx.send((asked, Instant::now()));
                }
            })
        })
        .collect();
    drop(tx);
    handles.into_iter().for_each(|h| h.join().unwrap());
    let mut grants: Vec<(Instant, Instant)> = rx.iter().collect();
    grants.sort();
    let most = most_surely_in_window(&grants, Duration::from_secs(1));
    assert!(most <= 90, "{most} permits surely in one second, bound 90");
    // The k-th permit is due no earlier than origin + (k + 1 - 10) / 80 s:
    // the k-th earliest stamp taken after `acquire` is no earlier (1 ms for
    // rounding).
    let mut after: Vec<Instant> = grants.iter().map(|&(_, granted)| granted).collect();
    after.sort();
    for (k, &granted) in after.iter().enumerate() {
        let due = origin + Duration::from_secs_f64((k + 1).saturating_sub(10) as f64 / 80.0);
        assert!(
            granted + Duration::from_millis(1) >= due,
            "permit {k} came {:?} early",
            due - granted
        );
    }
    // Rough throughput check with a wide margin; exact rates are checked on
    // the manual clock.
    let span = after.last().unwrap().duration_since(origin).as_secs_f64();
    let rate = (after.len() - 10) as f64 / span;
    assert!(rate >= 64.0, "{rate}/s over {span} s");
}
