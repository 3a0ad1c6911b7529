//! `RedisLimiter` against a real `redis-server` that each test starts on a
//! free loopback port and kills at the end: the window guarantee across
//! threads and processes, a shared pause, timeouts that take nothing, Redis
//! going away and coming back, and the figures against cio-emulator.
//!
//! Without `redis-server` on the PATH these tests fail, unless
//! `CIO_SKIP_REDIS=1` asks to skip them (see `cio-test-kit`'s `RedisServer`).

#![cfg(feature = "redis")]

mod grant_stamps;
mod identifies;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{
    ApiClass, Client, Error, Limiter, RateLimit,
    limit::{Clock, RedisLimiter, RedisLimiterBuilder, WhenUnreachable},
};
use cio_test_kit::{Logged, RedisServer, capture_logs, logged};

use grant_stamps::most_surely_in_window;
use worker::Worker;

const MS: Duration = Duration::from_millis(1);
const PASSWORD: &str = "s3cret-redis-pw";

/// A plain connection, to look at or disturb the limiter's key.
fn connection(redis: &RedisServer) -> redis::Connection {
    let client = match redis.ca() {
        Some(ca) => redis::Client::build_with_tls(
            redis.url(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(ca).unwrap()),
            },
        ),
        None => redis::Client::open(redis.url()),
    };
    client.unwrap().get_connection().unwrap()
}

fn limiter(redis: &RedisServer, workspace: &str, rate: f64, burst: u32) -> RedisLimiterBuilder {
    capture_logs(log::LevelFilter::Info);
    RedisLimiter::builder(RateLimit::new(rate, burst).unwrap())
        .url(redis.url())
        .workspace(workspace)
        .class(ApiClass::Track)
}

/// The log lines so far that mention `port` (tests run side by side).
fn logged_about(port: u16) -> Vec<String> {
    let port = format!(":{port}/");
    logged()
        .iter()
        .map(Logged::to_string)
        .filter(|l| l.contains(&port))
        .collect()
}

/// The real clock, except that each sleep is first announced on a channel:
/// a caller that sleeps has reserved its slot.
#[derive(Debug, Clone)]
struct AnnouncingClock(mpsc::Sender<Duration>);

impl Clock for AnnouncingClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn sleep(&self, duration: Duration) {
        let _ = self.0.send(duration);
        thread::sleep(duration);
    }
}

/// Starts `redis_worker` with `params`, and defaults for those not given.
fn redis_worker_process(params: &[(&str, String)]) -> Worker {
    let mut all = vec![
        ("MODE", "identify".to_owned()),
        ("WHEN", "wait".to_owned()),
        ("PASSWORD", String::new()),
        ("PREFIX", String::new()),
        ("EMULATOR", String::new()),
    ];
    all.retain(|(name, _)| params.iter().all(|(given, _)| given != name));
    all.extend(params.iter().cloned());
    Worker::spawn("redis_worker", &all)
}

/// Permits per second after the first `burst`, counted over the longest
/// span the stamps allow (from the first stamp before `acquire` to the last
/// after): never more than the true rate.
fn rate_at_most(grants: &[(u64, u64)], burst: usize) -> (f64, f64) {
    let first = grants.iter().map(|&(asked, _)| asked).min().unwrap();
    let last = grants.iter().map(|&(_, granted)| granted).max().unwrap();
    let span = (last - first) as f64 / 1e6;
    ((grants.len() - burst) as f64 / span, span)
}

fn micros_since_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn an_idle_key_grants_its_burst_then_one_permit_per_interval() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis, "burst", 10.0, 5).build().unwrap();
    assert_eq!(limiter.key(), "cio-ratelimit:burst:track");
    for _ in 0..5 {
        assert!(limiter.try_acquire());
    }
    assert!(!limiter.try_acquire());
    let start = Instant::now();
    limiter.acquire();
    let waited = start.elapsed();
    assert!((80 * MS..300 * MS).contains(&waited), "{waited:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(limiter.key())
        .query(&mut connection(&redis))
        .unwrap();
    assert!(
        (59_000..=62_000).contains(&ttl),
        "the key expires a minute after what it holds stops counting: {ttl} ms"
    );
}

#[test]
fn threads_of_two_limiters_never_exceed_the_limit_in_any_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Two limiters with their own connections, as two processes would have.
    let limiters = [
        limiter(&redis, "threads", 80.0, 10).build().unwrap(),
        limiter(&redis, "threads", 80.0, 10).build().unwrap(),
    ];
    let run_for = Duration::from_millis(2_500);
    let (tx, rx) = mpsc::channel();
    thread::scope(|scope| {
        for i in 0..16 {
            let (limiter, tx) = (&limiters[i % 2], tx.clone());
            scope.spawn(move || {
                let start = Instant::now();
                while start.elapsed() < run_for {
                    let asked = micros_since_epoch();
                    limiter.acquire();
                    tx.send((asked, micros_since_epoch())).unwrap();
                }
            });
        }
    });
    drop(tx);
    let mut grants: Vec<(u64, u64)> = rx.iter().collect();
    grants.sort_unstable();
    let (rate, span) = rate_at_most(&grants, 10);
    let most = most_surely_in_window(&grants, 1_000_000);
    println!("16 threads, 2 limiters: {most} permits surely in the busiest second; {rate:.1}/s");
    // At most 80 in any window, the limiter's promise (not GCRA's burst + rate).
    assert!(most <= 80, "{most} permits surely in one second, bound 80");
    assert!((68.0..=80.5).contains(&rate), "{rate}/s over {span} s");
}

#[test]
fn processes_never_exceed_the_limit_in_any_second() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let mut workers: Vec<Worker> = (0..3)
        .map(|_| {
            redis_worker_process(&[
                ("MODE", "grants".to_owned()),
                ("REDIS", redis.url()),
                ("WORKSPACE", "processes".to_owned()),
                ("RATE", "40".to_owned()),
                ("BURST", "5".to_owned()),
                ("THREADS", "4".to_owned()),
                ("RUN_MS", "3000".to_owned()),
            ])
        })
        .collect();
    workers.iter().for_each(Worker::ready);
    workers.iter_mut().for_each(Worker::go);
    let mut grants: Vec<(u64, u64)> = workers
        .into_iter()
        .flat_map(|w| {
            let list: String = w.finish().get("grants");
            list.split(',')
                .map(|pair| {
                    let (asked, granted) = pair.split_once(':').unwrap();
                    (asked.parse().unwrap(), granted.parse().unwrap())
                })
                .collect::<Vec<_>>()
        })
        .collect();
    grants.sort_unstable();
    let (rate, span) = rate_at_most(&grants, 5);
    let most = most_surely_in_window(&grants, 1_000_000);
    println!(
        "3 processes x 4 threads at 40/s burst 5: {most} surely in the busiest second; {rate:.1}/s"
    );
    assert!(most <= 40, "{most} permits surely in one second, bound 40");
    assert!((34.0..=40.5).contains(&rate), "{rate}/s over {span} s");
}

/// The figure: four processes share one budget of 80/s, burst 10.
/// The emulator does not throttle, so it shows what they would have sent.
#[test]
fn four_processes_sharing_a_budget_stay_under_it_at_the_server_and_use_it_all() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let run_for = Duration::from_secs(8);
    let mut workers: Vec<Worker> = (0..4)
        .map(|i| {
            redis_worker_process(&[
                ("MODE", "identify".to_owned()),
                ("REDIS", redis.url()),
                ("WORKSPACE", DEFAULT_SITE_ID.to_owned()),
                ("RATE", "80".to_owned()),
                ("BURST", "10".to_owned()),
                ("THREADS", "2".to_owned()),
                ("RUN_MS", run_for.as_millis().to_string()),
                ("EMULATOR", emulator.url()),
                ("PREFIX", format!("p{i}-")),
            ])
        })
        .collect();
    workers.iter().for_each(Worker::ready);
    // Each worker's first requests (its warm-up) were slowed by connecting and
    // arrived late; let them leave the server's 1 s window before the run.
    thread::sleep(Duration::from_millis(1_100));
    let before = emulator.snapshot().classes["track"].requests;
    workers.iter_mut().for_each(Worker::go);
    // Timed from the first worker's start to the last one's last answer, as
    // the workers saw them: starting and exiting four processes on a loaded
    // machine is not part of the rate.
    let (mut first, mut last) = (u64::MAX, 0);
    let sent: Vec<u64> = workers
        .into_iter()
        .map(|w| {
            let report = w.finish();
            let began: u64 = report.get("began_us");
            let sending: u64 = report.get("sending_us");
            first = first.min(began);
            last = last.max(began + sending);
            report.get("sent")
        })
        .collect();
    let elapsed = (last - first) as f64 / 1e6;
    let snapshot = emulator.snapshot();
    let track = &snapshot.classes["track"];
    let total: u64 = sent.iter().sum();
    let combined = total as f64 / elapsed;
    println!(
        "4 processes sharing 80/s burst 10: busiest 1 s window at the server {}; combined {combined:.1}/s \
         ({total} in {elapsed:.2} s, per process {sent:?})",
        track.max_in_window
    );
    assert_eq!(track.requests - before, total, "one request per record");
    assert!(track.max_in_window <= 80, "{track:?}");
    // Nearly all of it, with margin for a loaded machine.
    assert!(combined >= 72.0, "{combined}/s");
    for (i, &n) in sent.iter().enumerate() {
        for k in 0..n {
            assert!(
                snapshot.people.contains_key(&format!("p{i}-{k}")),
                "p{i}-{k} lost"
            );
        }
    }
}

#[test]
fn a_pause_in_one_process_moves_every_waiting_caller_behind_it() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (announce, sleeps) = mpsc::channel();
    let waiting = limiter(&redis, "pause", 10.0, 1)
        .clock(AnnouncingClock(announce))
        .build()
        .unwrap();
    let other = limiter(&redis, "pause", 10.0, 1).build().unwrap();
    assert!(other.try_acquire());
    let waiter = thread::spawn(move || {
        waiting.acquire();
        Instant::now()
    });
    // The waiter has reserved the slot 100 ms out and sleeps; a 429 elsewhere:
    let first_sleep = sleeps.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(first_sleep <= 100 * MS, "{first_sleep:?}");
    let paused_at = Instant::now();
    other.pause_for(Duration::from_secs(1));
    assert!(!other.try_acquire(), "nobody is granted during the pause");
    let granted_at = waiter.join().unwrap();
    let after = granted_at.duration_since(paused_at);
    assert!((990 * MS..1_300 * MS).contains(&after), "{after:?}");
    // It slept again: the first sleep did not let it through.
    assert!(sleeps.try_iter().count() >= 1);
    // No burst after the pause: the next permit is one interval later.
    assert!(!other.try_acquire());
}

#[test]
fn a_pause_that_cannot_reach_redis_still_holds_this_process() {
    let Some(redis) = RedisServer::not_started(None) else {
        return;
    };
    let limiter = limiter(&redis, "local-pause", 100.0, 10)
        .when_unreachable(WhenUnreachable::FallBack { share: 1.0 })
        .build()
        .unwrap();
    limiter.pause_for(Duration::from_millis(300));
    assert!(!limiter.try_acquire());
    let start = Instant::now();
    limiter.acquire();
    assert!(start.elapsed() >= 250 * MS, "{:?}", start.elapsed());
}

#[test]
fn acquire_timeout_takes_nothing_when_it_cannot_be_served_in_time() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let limiter = limiter(&redis, "timeout", 2.0, 1).build().unwrap();
    let other = limiter.clone();
    let start = Instant::now();
    limiter.acquire();
    assert!(!limiter.acquire_timeout(100 * MS));
    assert!(
        start.elapsed() < 100 * MS,
        "refused at once: {:?}",
        start.elapsed()
    );
    // Had the refusal taken the slot at 500 ms, this would wait until 1 s.
    assert!(other.acquire_timeout(Duration::from_secs(2)));
    let granted = start.elapsed();
    assert!((450 * MS..800 * MS).contains(&granted), "{granted:?}");
}

#[test]
fn acquire_timeout_gives_its_slot_back_when_a_pause_outlasts_the_deadline() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (announce, sleeps) = mpsc::channel();
    let waiting = limiter(&redis, "timeout-pause", 2.0, 1)
        .clock(AnnouncingClock(announce))
        .build()
        .unwrap();
    let other = limiter(&redis, "timeout-pause", 2.0, 1).build().unwrap();
    assert!(other.try_acquire());
    let waiter = thread::spawn(move || waiting.acquire_timeout(800 * MS));
    sleeps.recv_timeout(Duration::from_secs(5)).unwrap(); // reserved the slot at 500 ms
    let paused_at = Instant::now();
    other.pause_for(Duration::from_secs(2));
    assert!(!waiter.join().unwrap(), "its slot moved past its deadline");
    // Its permit was given back: the next one is due right at the end of the pause.
    other.acquire();
    let after = paused_at.elapsed();
    assert!((1_990 * MS..2_300 * MS).contains(&after), "{after:?}");
}

#[test]
fn a_budget_lost_with_redis_data_starts_again() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (announce, sleeps) = mpsc::channel();
    let waiting = limiter(&redis, "lost", 5.0, 1)
        .clock(AnnouncingClock(announce))
        .build()
        .unwrap();
    assert!(waiting.try_acquire());
    let key = waiting.key().to_owned();
    let waiter = thread::spawn(move || {
        waiting.acquire();
        waiting
    });
    sleeps.recv_timeout(Duration::from_secs(5)).unwrap();
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .arg(format!("{key}:open"))
        .query(&mut connection(&redis))
        .unwrap();
    let waiting = waiter.join().unwrap();
    let open: i64 = redis::cmd("ZCARD")
        .arg(format!("{key}:open"))
        .query(&mut connection(&redis))
        .unwrap();
    assert_eq!(open, 1, "it was granted in the new log");
    assert!(!waiting.try_acquire(), "and paced from there");
}

#[test]
fn waiting_for_redis_blocks_until_it_comes_back_and_says_so_once() {
    let Some(mut redis) = RedisServer::not_started(Some(PASSWORD)) else {
        return;
    };
    let limiter = limiter(&redis, "wait", 100.0, 10).build().unwrap();
    assert!(!limiter.try_acquire(), "nothing without Redis");
    assert!(!limiter.acquire_timeout(50 * MS));
    assert!(limiter.is_unreachable());
    let (granted, was_granted) = mpsc::channel();
    let waiter = limiter.clone();
    thread::spawn(move || {
        waiter.acquire();
        granted.send(()).unwrap();
    });
    assert!(
        was_granted.recv_timeout(300 * MS).is_err(),
        "granted while Redis was away"
    );
    redis.restart();
    was_granted.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(!limiter.is_unreachable());
    let logs = logged_about(redis.port());
    let warnings: Vec<_> = logs.iter().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 1, "one warning per outage: {logs:?}");
    assert!(
        warnings[0].contains("unreachable") && warnings[0].contains("waiting"),
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|l| l.starts_with("INFO") && l.contains("reachable again")),
        "{logs:?}"
    );
    assert!(logs.iter().all(|l| !l.contains(PASSWORD)), "{logs:?}");
}

#[test]
fn falling_back_grants_a_share_locally_until_redis_comes_back() {
    let Some(mut redis) = RedisServer::not_started(None) else {
        return;
    };
    let limiter = limiter(&redis, "fallback", 20.0, 4)
        .when_unreachable(WhenUnreachable::FallBack { share: 0.5 })
        .build()
        .unwrap();
    // Half the rate and half the burst: 10/s, burst 2.
    assert!(limiter.try_acquire());
    assert!(limiter.try_acquire());
    assert!(!limiter.try_acquire());
    assert!(format!("{limiter:?}").contains("unreachable: true"));
    redis.restart();
    // The next attempt to reach Redis is at most a second away.
    let start = Instant::now();
    while limiter.is_unreachable() && start.elapsed() < Duration::from_secs(5) {
        limiter.acquire();
    }
    assert!(!limiter.is_unreachable());
    let exists: bool = redis::cmd("EXISTS")
        .arg(limiter.key())
        .query(&mut connection(&redis))
        .unwrap();
    assert!(exists, "permits come from Redis again");
    let logs = logged_about(redis.port());
    let warnings: Vec<_> = logs.iter().filter(|l| l.starts_with("WARN")).collect();
    assert_eq!(warnings.len(), 1, "{logs:?}");
    assert!(warnings[0].contains("falling back"), "{logs:?}");
    assert!(
        logs.iter().any(|l| l.contains("reachable again")),
        "{logs:?}"
    );
}

#[test]
fn a_key_that_holds_something_else_is_a_setting_to_fix() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let waits = limiter(&redis, "wrongtype", 10.0, 1).build().unwrap();
    let _: () = redis::cmd("SET")
        .arg(waits.key())
        .arg("not a hash")
        .query(&mut connection(&redis))
        .unwrap();
    assert!(!waits.try_acquire());
    assert!(matches!(
        Limiter::check(&waits),
        Err(Error::RedisRefused {
            setting: "redis_url",
            ..
        })
    ));
    let falls_back = limiter(&redis, "wrongtype", 10.0, 1)
        .when_unreachable(WhenUnreachable::FallBack { share: 1.0 })
        .build()
        .unwrap();
    assert!(
        !falls_back.try_acquire(),
        "a setting to fix is no outage to fall back through"
    );
    let logs = logged_about(redis.port());
    assert!(logs.iter().any(|l| l.contains("WRONGTYPE")), "{logs:?}");
}

/// Issue 24: a wrong password, `NOAUTH` or a database Redis does not have
/// used to count as an outage, and the limiter waited for it forever.
#[test]
fn a_redis_that_refuses_the_limiter_fails_at_once_in_every_mode() {
    let Some(redis) = RedisServer::with_password(PASSWORD) else {
        return;
    };
    let port = redis.port();
    let urls = [
        (
            format!("redis://:{PASSWORD}-wrong@127.0.0.1:{port}/0"),
            "a wrong password",
        ),
        (format!("redis://127.0.0.1:{port}/0"), "no password: NOAUTH"),
        (
            format!("redis://:{PASSWORD}@127.0.0.1:{port}/99"),
            "a database Redis does not have",
        ),
    ];
    let modes = [
        WhenUnreachable::Wait,
        WhenUnreachable::WaitAtMost(Duration::from_secs(60)),
        WhenUnreachable::FallBack { share: 0.5 },
    ];
    for (url, what) in &urls {
        for when in modes {
            capture_logs(log::LevelFilter::Info);
            let limiter = RedisLimiter::builder(RateLimit::TRACK_API)
                .url(url)
                .workspace("refused")
                .when_unreachable(when)
                .build()
                .unwrap();
            let connected = limiter.connect();
            assert!(
                matches!(
                    connected,
                    Err(Error::RedisRefused {
                        setting: "redis_url",
                        ..
                    })
                ),
                "{what}, {when:?}: {connected:?}"
            );
            let error = connected.unwrap_err();
            assert!(!error.is_transient(), "{error}");
            assert!(!error.to_string().contains(PASSWORD), "{error}");
            // Nobody waits for a setting to change: the caller is let go
            // without a permit, and its check says why.
            let (told, checked) = mpsc::channel();
            let start = Instant::now();
            thread::spawn(move || {
                limiter.acquire();
                let _ = told.send(Limiter::check(&limiter));
            });
            let checked = checked
                .recv_timeout(Duration::from_secs(3))
                .unwrap_or_else(|_| panic!("{what}, {when:?}: still waiting after 3 s"));
            assert!(
                matches!(checked, Err(Error::RedisRefused { .. })),
                "{what}, {when:?}: {checked:?}"
            );
            assert!(start.elapsed() < Duration::from_secs(2), "{what}");
        }
    }
}

/// Issue 24: while Redis was away, the first SIGTERM was ignored.
#[test]
fn a_stop_ends_every_wait_within_a_second() {
    let Some(redis) = RedisServer::not_started(None) else {
        return;
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (announce, sleeps) = mpsc::channel();
    let away = limiter(&redis, "stop", 10.0, 1)
        .clock(AnnouncingClock(announce))
        .stop_when(stop.clone())
        .build()
        .unwrap();
    let (told, checked) = mpsc::channel();
    thread::spawn(move || {
        away.acquire();
        let _ = told.send(Limiter::check(&away));
    });
    // It waits for Redis: it sleeps, and sleeps again.
    for _ in 0..3 {
        sleeps.recv_timeout(Duration::from_secs(5)).unwrap();
    }
    assert!(checked.try_recv().is_err(), "granted while Redis was away");
    let asked = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let checked = checked.recv_timeout(Duration::from_secs(5)).unwrap();
    let took = asked.elapsed();
    assert_eq!(checked, Err(Error::Stopped));
    assert!(took < Duration::from_secs(1), "{took:?}");

    // A long pause, with Redis there, ends as soon.
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (announce, sleeps) = mpsc::channel();
    let paused = limiter(&redis, "stop-pause", 10.0, 1)
        .clock(AnnouncingClock(announce))
        .stop_when(stop.clone())
        .build()
        .unwrap();
    paused.pause_for(Duration::from_secs(60));
    let (told, checked) = mpsc::channel();
    thread::spawn(move || {
        paused.acquire();
        let _ = told.send(Limiter::check(&paused));
    });
    sleeps.recv_timeout(Duration::from_secs(5)).unwrap();
    let asked = Instant::now();
    stop.store(true, Ordering::SeqCst);
    let checked = checked.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(checked, Err(Error::Stopped));
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
}

#[test]
fn the_password_never_appears_in_debug_errors_or_logs() {
    let Some(redis) = RedisServer::with_password(PASSWORD) else {
        return;
    };
    let builder = limiter(&redis, "secret", 10.0, 1);
    let builder_debug = format!("{builder:?}");
    let limiter = builder.build().unwrap();
    assert!(limiter.try_acquire());
    let wrong = RedisLimiter::builder(RateLimit::TRACK_API)
        .url(format!(
            "redis://:{PASSWORD}-wrong@127.0.0.1:{}/0",
            redis.port()
        ))
        .workspace("secret")
        .class(ApiClass::Track)
        .when_unreachable(WhenUnreachable::FallBack { share: 0.5 })
        .build()
        .unwrap();
    assert!(
        !wrong.try_acquire(),
        "refused by Redis: nothing to fall back for"
    );
    let refused = wrong.connect().unwrap_err();
    let bad_url = RedisLimiter::builder(RateLimit::TRACK_API)
        .url(format!("redis://:{PASSWORD}@127.0.0.1:notaport"))
        .workspace("secret")
        .class(ApiClass::Track)
        .build()
        .unwrap_err();
    let texts = [
        builder_debug,
        format!("{limiter:?}"),
        format!("{wrong:?}"),
        format!("{bad_url:?} {bad_url}"),
        logged_about(redis.port()).join("\n"),
        format!("{refused:?} {refused}"),
    ];
    for text in &texts {
        assert!(!text.contains(PASSWORD), "{text}");
    }
    assert!(texts[1].contains("redis://127.0.0.1:"), "{}", texts[1]);
    assert!(
        texts[4].contains("AuthenticationFailed"),
        "the refusal was logged: {}",
        texts[4]
    );
}

#[test]
fn invalid_settings_are_refused_with_the_setting_named() {
    let setting = |builder: RedisLimiterBuilder| match builder.build() {
        Err(Error::InvalidConfig { setting, .. }) => setting,
        other => panic!("{other:?}"),
    };
    let builder = |url: &str, workspace: &str| {
        RedisLimiter::builder(RateLimit::TRACK_API)
            .url(url)
            .workspace(workspace)
            .class(ApiClass::Track)
    };
    let url = "redis://127.0.0.1:6379";
    assert_eq!(setting(builder("http://127.0.0.1", "w")), "redis_url");
    assert_eq!(
        setting(builder("rediss://127.0.0.1/#insecure", "w")),
        "redis_url",
        "certificate checks cannot be turned off"
    );
    let ca = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".to_vec();
    assert_eq!(
        setting(builder(url, "w").trust_ca(ca.clone())),
        "redis_url",
        "a CA needs rediss://"
    );
    assert_eq!(
        setting(builder("rediss://127.0.0.1", "w").trust_ca(b"not a certificate".to_vec())),
        "trust_ca"
    );
    assert_eq!(
        setting(builder("rediss://127.0.0.1", "w").trust_ca(ca)),
        "trust_ca",
        "a PEM block that is no certificate"
    );
    assert!(builder("rediss://127.0.0.1:6380/0", "w").build().is_ok());
    assert_eq!(setting(builder(url, " ")), "workspace");
    let unnamed = RedisLimiter::builder(RateLimit::TRACK_API);
    assert_eq!(
        setting(unnamed.workspace("w")),
        "redis_url",
        "the URL is required"
    );
    let unnamed = RedisLimiter::builder(RateLimit::TRACK_API);
    assert_eq!(
        setting(unnamed.url(url)),
        "workspace",
        "so is the workspace"
    );
    assert_eq!(setting(builder(url, "w").key_prefix("")), "key_prefix");
    assert_eq!(
        setting(builder(url, "w").timeout(Duration::ZERO)),
        "timeout"
    );
    for share in [0.0, -0.5, 1.5, f64::NAN] {
        let fallback = builder(url, "w").when_unreachable(WhenUnreachable::FallBack { share });
        assert_eq!(setting(fallback), "share");
    }
    assert_eq!(setting(builder(url, "w").window(Duration::ZERO)), "window");
    assert_eq!(
        setting(builder(url, "w").window(10 * MS)),
        "window",
        "under one permit at 80/s"
    );
    assert_eq!(
        setting(builder(url, "w").probe_after(Duration::ZERO)),
        "probe_after"
    );
    let built = builder(url, "w").key_prefix("jobs").build().unwrap();
    assert_eq!(built.key(), "jobs:w:track");
    assert_eq!(built.limit(), RateLimit::TRACK_API);
}

#[test]
fn tls_redis_with_a_private_ca_shares_one_budget() {
    let Some(redis) = RedisServer::with_tls() else {
        return;
    };
    let ca = std::fs::read(redis.ca().unwrap()).unwrap();
    // Three per 15 s, so that the burst is the whole window's.
    let tls = |ca: &[u8]| {
        limiter(&redis, "tls", 0.2, 3)
            .window(Duration::from_secs(15))
            .trust_ca(ca.to_vec())
            .build()
            .unwrap()
    };
    let (one, other) = (tls(&ca), tls(&ca));
    assert!(
        format!("{one:?}").contains("rediss://127.0.0.1:"),
        "{one:?}"
    );
    // Connected first, so that slow TLS handshakes cannot let a permit accrue.
    one.connect().unwrap();
    other.connect().unwrap();
    let granted = (0..4)
        .filter(|i| {
            if i % 2 == 0 {
                one.try_acquire()
            } else {
                other.try_acquire()
            }
        })
        .count();
    assert_eq!(granted, 3, "the burst is shared over TLS");
    let open: i64 = redis::cmd("ZCARD")
        .arg(format!("{}:open", one.key()))
        .query(&mut connection(&redis))
        .unwrap();
    assert_eq!(open, 3, "the log lives in the TLS Redis");

    // Without the private CA, the system's roots do not trust the server:
    // a setting to fix, not an outage to wait out.
    let untrusting = limiter(&redis, "tls", 0.2, 3).build().unwrap();
    assert!(!untrusting.try_acquire());
    assert!(matches!(
        untrusting.connect(),
        Err(Error::RedisRefused {
            setting: "trust_ca",
            ..
        })
    ));
    let logs = logged_about(redis.port()).join("\n");
    assert!(logs.contains("rediss://127.0.0.1"), "{logs}");
    assert!(
        logs.to_lowercase().contains("certificate") || logs.contains("UnknownIssuer"),
        "{logs}"
    );
}

#[test]
fn settings_that_differ_are_refused_naming_both_unless_adopted() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let first = limiter(&redis, "settings", 80.0, 10).build().unwrap();
    first.connect().unwrap();
    let recorded: String = redis::cmd("GET")
        .arg(format!("{}:settings", first.key()))
        .query(&mut connection(&redis))
        .unwrap();
    assert_eq!(recorded, "rate=80/s burst=10 window=1s");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(format!("{}:settings", first.key()))
        .query(&mut connection(&redis))
        .unwrap();
    assert!(
        (29_000..=30_000).contains(&ttl),
        "they live as long as the last lease on them: {ttl} ms"
    );
    let same = limiter(&redis, "settings", 80.0, 10).build().unwrap();
    same.connect().unwrap();

    let other = limiter(&redis, "settings", 50.0, 5).build().unwrap();
    let refused = other.connect().unwrap_err();
    let text = refused.to_string();
    assert!(
        text.contains("rate=80/s burst=10 window=1s")
            && text.contains("rate=50/s burst=5 window=1s"),
        "names both: {text}"
    );
    assert!(!refused.is_transient());
    assert!(!other.try_acquire(), "a refused limiter grants nothing");
    assert_eq!(Limiter::check(&other), Err(refused));

    // Used without connect(): refused at first contact all the same.
    let lazy = limiter(&redis, "settings", 50.0, 5).build().unwrap();
    lazy.acquire();
    assert!(matches!(
        Limiter::check(&lazy),
        Err(Error::SharedSettingsMismatch { .. })
    ));

    let adopting = limiter(&redis, "settings", 50.0, 5)
        .adopt_shared_settings(true)
        .build()
        .unwrap();
    adopting.connect().unwrap();
    assert_eq!(adopting.limit(), RateLimit::new(80.0, 10).unwrap());
    assert!(Limiter::check(&adopting).is_ok());

    let longer = limiter(&redis, "settings", 80.0, 10)
        .window(Duration::from_secs(2))
        .build()
        .unwrap();
    let refused = longer.connect().unwrap_err().to_string();
    assert!(
        refused.contains("window=2s"),
        "the window is a setting: {refused}"
    );
}

#[test]
fn settings_recorded_before_the_window_was_still_match() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let probe = limiter(&redis, "old-settings", 80.0, 10).build().unwrap();
    let settings = format!("{}:settings", probe.key());
    // As a process of the previous release records them.
    let _: () = redis::cmd("SET")
        .arg(&settings)
        .arg("rate=80/s burst=10")
        .arg("PX")
        .arg(60_000)
        .query(&mut connection(&redis))
        .unwrap();
    let same = limiter(&redis, "old-settings", 80.0, 10).build().unwrap();
    same.connect().unwrap();
    assert!(same.try_acquire());
    let other_window = limiter(&redis, "old-settings", 80.0, 10)
        .window(Duration::from_secs(2))
        .build()
        .unwrap();
    assert!(
        matches!(
            other_window.connect(),
            Err(Error::SharedSettingsMismatch { .. })
        ),
        "the old text means the default window, 1 s"
    );
    let adopting = limiter(&redis, "old-settings", 40.0, 4)
        .adopt_shared_settings(true)
        .build()
        .unwrap();
    adopting.connect().unwrap();
    assert_eq!(adopting.settings(), "rate=80/s burst=10 window=1s");
}

#[test]
fn waiting_at_most_a_while_lets_callers_go_and_fails_their_requests() {
    let Some(mut redis) = RedisServer::not_started(None) else {
        return;
    };
    let limiter = limiter(&redis, "wait-at-most", 100.0, 10)
        .when_unreachable(WhenUnreachable::WaitAtMost(200 * MS))
        .build()
        .unwrap();
    assert!(matches!(
        limiter.connect(),
        Err(Error::RedisUnreachable { .. })
    ));
    assert!(Limiter::check(&limiter).is_ok(), "still within the wait");
    let start = Instant::now();
    limiter.acquire();
    let waited = start.elapsed();
    assert!(
        (150 * MS..3_000 * MS).contains(&waited),
        "let go once the wait is over: {waited:?}"
    );
    let error = Limiter::check(&limiter).unwrap_err();
    assert!(
        matches!(error, Error::RedisUnreachable { .. }) && error.is_transient(),
        "{error:?}"
    );
    assert!(limiter.unreachable_for().unwrap() >= 200 * MS);

    // A client fails its requests without sending them.
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emulator.url())
        .limiter(ApiClass::Track, limiter.clone())
        .retry_policy(
            cio_ratelimit::RetryPolicy::builder()
                .max_retries(0)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let sent = client.identify(
        cio_ratelimit::Identifier::id("1"),
        serde_json::json!({"plan": "pro"}),
    );
    assert!(
        matches!(sent, Err(Error::RedisUnreachable { .. })),
        "{sent:?}"
    );
    assert_eq!(
        emulator.snapshot().requests,
        0,
        "nothing reached the server"
    );

    redis.restart();
    let start = Instant::now();
    while Limiter::check(&limiter).is_err() && start.elapsed() < Duration::from_secs(5) {
        limiter.acquire();
    }
    assert!(Limiter::check(&limiter).is_ok(), "Redis is back");
}

/// Regression: a caller let go just as Redis came back used to pass
/// `check` and send without a permit.
#[test]
fn a_caller_let_go_without_a_permit_fails_its_check_even_once_redis_is_back() {
    let Some(mut redis) = RedisServer::not_started(None) else {
        return;
    };
    let limiter = limiter(&redis, "let-go", 100.0, 10)
        .when_unreachable(WhenUnreachable::WaitAtMost(100 * MS))
        .build()
        .unwrap();
    limiter.acquire(); // let go without a permit
    redis.restart();
    // Another thread reaches Redis: the outage is over for everyone.
    let other = limiter.clone();
    thread::spawn(move || {
        let start = Instant::now();
        while other.connect().is_err() {
            assert!(start.elapsed() < Duration::from_secs(5), "Redis is back");
            thread::sleep(20 * MS);
        }
    })
    .join()
    .unwrap();
    assert!(limiter.unreachable_for().is_none());
    let error = Limiter::check(&limiter).unwrap_err();
    assert!(
        matches!(error, Error::RedisUnreachable { .. }),
        "this caller has no permit: {error:?}"
    );
    limiter.acquire();
    assert!(Limiter::check(&limiter).is_ok(), "the next permit is real");
}

/// Compile-only: the limiter crosses threads and works where any `Limiter` does.
#[test]
fn redis_limiters_are_send_sync_limiters() {
    fn assert_send_sync<T: Send + Sync + Clone + Limiter>() {}
    assert_send_sync::<RedisLimiter>();
}

/// Redis killed and restarted mid-run: the processes that wait send nothing
/// meanwhile, those that fall back carry on at their share, and nothing is lost.
#[test]
fn redis_restarted_mid_run_loses_nothing() {
    let Some(mut redis) = RedisServer::with_password(PASSWORD) else {
        return;
    };
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let modes = ["wait", "wait", "fallback", "fallback"];
    let mut workers: Vec<Worker> = modes
        .iter()
        .enumerate()
        .map(|(i, mode)| {
            redis_worker_process(&[
                ("MODE", "identify".to_owned()),
                ("REDIS", redis.url()),
                ("WORKSPACE", "restart".to_owned()),
                ("RATE", "80".to_owned()),
                ("BURST", "10".to_owned()),
                ("THREADS", "2".to_owned()),
                ("RUN_MS", "7000".to_owned()),
                ("EMULATOR", emulator.url()),
                ("PREFIX", format!("r{i}-")),
                ("WHEN", (*mode).to_owned()),
                ("PASSWORD", PASSWORD.to_owned()),
            ])
        })
        .collect();
    workers.iter().for_each(Worker::ready);
    workers.iter_mut().for_each(Worker::go);
    let start = Instant::now();
    thread::sleep(Duration::from_secs(2));
    redis.stop();
    let down_at = start.elapsed();
    thread::sleep(Duration::from_secs(2));
    redis.restart();
    let up_at = start.elapsed();
    let reports: Vec<_> = workers.into_iter().map(Worker::finish).collect();
    let snapshot = emulator.snapshot();
    println!(
        "Redis down from {down_at:.1?} to {up_at:.1?}; busiest 1 s at the server {}",
        snapshot.classes["track"].max_in_window
    );
    for (i, (report, mode)) in reports.iter().zip(modes).enumerate() {
        let sent: u64 = report.get("sent");
        let during: u64 = report.get("during_outage");
        println!("  {mode}: sent {sent}, {during} while Redis was away");
        assert_eq!(report.get::<u64>("warnings"), 1, "{report:?}");
        assert_eq!(report.get::<u64>("recoveries"), 1, "{report:?}");
        assert!(!report.get::<bool>("leaked"), "{report:?}");
        if mode == "wait" {
            assert!(during <= 2, "only what was in flight: {report:?}");
        } else {
            // A quarter of 80/s for the 2 s outage, and up to 1 s more
            // until the next attempt finds Redis back.
            assert!((15..=90).contains(&during), "{report:?}");
        }
        for k in 0..sent {
            assert!(
                snapshot.people.contains_key(&format!("r{i}-{k}")),
                "r{i}-{k} lost"
            );
        }
    }
}

/// What a worker saw of Redis's outages, through its log.
struct Outages {
    password: String,
    taken: &'static AtomicU64,
    warnings: AtomicU64,
    recoveries: AtomicU64,
    taken_at_warning: AtomicU64,
    taken_at_recovery: AtomicU64,
    leaked: std::sync::atomic::AtomicBool,
}

impl log::Log for Outages {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        let line = record.args().to_string();
        if !self.password.is_empty() && line.contains(&self.password) {
            self.leaked.store(true, Ordering::SeqCst);
        }
        let taken = self.taken.load(Ordering::SeqCst);
        if record.level() == log::Level::Warn && line.contains("unreachable") {
            self.warnings.fetch_add(1, Ordering::SeqCst);
            self.taken_at_warning.store(taken, Ordering::SeqCst);
        }
        if line.contains("reachable again") {
            self.recoveries.fetch_add(1, Ordering::SeqCst);
            self.taken_at_recovery.store(taken, Ordering::SeqCst);
        }
    }
    fn flush(&self) {}
}

/// A limiter that counts the 429s it is told of.
#[derive(Debug)]
struct Counting(RedisLimiter, Arc<AtomicU64>);

impl Limiter for Counting {
    fn acquire(&self) {
        self.0.acquire()
    }
    fn try_acquire(&self) -> bool {
        self.0.try_acquire()
    }
    fn acquire_timeout(&self, timeout: Duration) -> bool {
        self.0.acquire_timeout(timeout)
    }
    fn pause_for(&self, duration: Duration) {
        self.0.pause_for(duration)
    }
    fn record_success(&self) {
        self.0.record_success()
    }
    fn check(&self) -> Result<(), Error> {
        Limiter::check(&self.0)
    }
    fn throttled(&self, pause: Duration) {
        self.1.fetch_add(1, Ordering::Relaxed);
        Limiter::throttled(&self.0, pause)
    }
}

fn learned_generation(redis: &RedisServer, limiter: &RedisLimiter) -> Option<i64> {
    redis::cmd("HGET")
        .arg(format!("{}:rate", limiter.key()))
        .arg("gen")
        .query(&mut connection(redis))
        .unwrap()
}

#[test]
fn one_process_learns_the_workspace_limit_and_the_other_follows_without_429s() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emulator = Emulator::start(Config::default().track_limit(40)).unwrap();
    let process = |throttled: &Arc<AtomicU64>| {
        // Each its own limiter, and so its own connections: as two processes.
        let limiter = limiter(&redis, "learn-once", 100.0, 10).build().unwrap();
        let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
            .track_url(emulator.url())
            .limiter(
                ApiClass::Track,
                Counting(limiter.clone(), throttled.clone()),
            )
            .build()
            .unwrap();
        (limiter, client)
    };
    let (a_throttled, b_throttled) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (a, a_client) = process(&a_throttled);
    let (b, b_client) = process(&b_throttled);

    // A alone, at 100/s against 40/s: throttled in its first window, it
    // lowers the rate to 70/s at most; throttled again, it learns.
    identifies::from_threads(&a_client, "a", 120, 2);
    assert!(a_throttled.load(Ordering::Relaxed) >= 2);
    let learned = a.rate_per_sec();
    assert!(
        (30.0..40.0).contains(&learned),
        "what the server accepted, less 2 %: {learned}/s"
    );
    let changes = a.rate_changes();
    assert_eq!(
        (changes[0].from, changes[0].to),
        (100.0, 70.0),
        "{changes:?}"
    );
    assert!(changes[0].throttled_at.is_some(), "{}", changes[0]);

    // B has sent nothing: its first permit brings it the learned rate.
    assert_eq!(b.rate_per_sec(), 100.0);
    b.acquire();
    assert_eq!(b.rate_per_sec(), learned);
    let seen = b.rate_changes();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0].from, seen[0].to), (100.0, learned));

    // Together, at the shared rate: no 429 for B, few if any for A.
    let before = emulator.snapshot().classes["track"].throttled;
    thread::scope(|scope| {
        scope.spawn(|| identifies::from_threads(&a_client, "a2", 40, 2));
        scope.spawn(|| identifies::from_threads(&b_client, "b", 40, 2));
    });
    let snapshot = emulator.snapshot();
    assert_eq!(b_throttled.load(Ordering::Relaxed), 0, "B never met a 429");
    assert!(
        snapshot.classes["track"].throttled - before <= 1,
        "{} × 429 once learned",
        snapshot.classes["track"].throttled - before
    );
    assert_eq!(snapshot.people.len(), 200, "nothing lost");
}

#[test]
fn concurrent_429s_in_two_processes_count_once() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let build = || limiter(&redis, "count-once", 100.0, 100).build().unwrap();
    let (a, b) = (build(), build());
    for limiter in [&a, &b] {
        for _ in 0..30 {
            limiter.acquire();
            limiter.record_success();
        }
    }
    // The next permit tells Redis of the last successes.
    a.acquire();
    b.acquire();
    let barrier = std::sync::Barrier::new(2);
    thread::scope(|scope| {
        for limiter in [&a, &b] {
            let barrier = &barrier;
            scope.spawn(move || {
                barrier.wait();
                Limiter::throttled(limiter, Duration::ZERO);
            });
        }
    });
    assert_eq!(learned_generation(&redis, &a), Some(1), "stored once");
    for limiter in [&a, &b] {
        let changes = limiter.rate_changes();
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(
            (changes[0].throttled_at, changes[0].to),
            (Some(60.0), 70.0),
            "the shared delivery, 60 in the window; in the first window, 0.7 × 100 at most"
        );
    }
    // Later 429s of the same overload count once too.
    Limiter::throttled(&a, Duration::ZERO);
    assert_eq!(learned_generation(&redis, &a), Some(1));
    assert_eq!((a.rate_per_sec(), b.rate_per_sec()), (70.0, 70.0));
}

#[test]
fn probing_back_up_is_shared_and_stops_at_the_configured_rate() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // 10 per 100 ms windows, so that probing takes a few hundred ms.
    let build = || {
        limiter(&redis, "probe", 100.0, 10)
            .window(100 * MS)
            .probe_after(200 * MS)
            .build()
            .unwrap()
    };
    let (a, b) = (build(), build());
    // Past the first window, what the server accepted is a measurement.
    thread::sleep(110 * MS);
    for _ in 0..5 {
        a.acquire();
        a.record_success();
    }
    a.acquire();
    Limiter::throttled(&a, Duration::ZERO);
    assert_eq!(
        a.rate_per_sec(),
        40.0,
        "5 per window accepted, less one: 4 per 100 ms"
    );
    // A keeps sending; after the hold, probing raises the shared rate along
    // the curve: back to the measured 5 per window, then above it, up to
    // the ceiling.
    let start = Instant::now();
    while a.rate_per_sec() < 100.0 && start.elapsed() < Duration::from_secs(5) {
        a.acquire();
        a.record_success();
    }
    assert_eq!(a.rate_per_sec(), 100.0, "back at the configured rate");
    let probes: Vec<f64> = a.rate_changes()[1..].iter().map(|c| c.to).collect();
    assert_eq!(
        probes.first(),
        Some(&50.0),
        "the measured rate first: {probes:?}"
    );
    assert_eq!(probes.last(), Some(&100.0), "never above it: {probes:?}");
    // Rising (the curve's shape is the law's unit tests': here a late
    // thread may skip a window).
    assert!(probes.windows(2).all(|w| w[0] < w[1]), "{probes:?}");
    assert!(
        a.rate_changes()[1..]
            .iter()
            .all(|c| c.throttled_at.is_none())
    );
    // B did not probe on its own: it sees where A's probes left the rate.
    b.acquire();
    assert_eq!(b.rate_per_sec(), 100.0);
    let generations = 1 + i64::try_from(probes.len()).unwrap();
    assert_eq!(learned_generation(&redis, &b), Some(generations));
}

/// A 429 pauses, then lowers the rate: callers already waiting are laid
/// out again at the longer interval, and none of them inside the pause.
#[test]
fn waiting_callers_stay_behind_a_pause_when_the_learned_rate_drops() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (slept, sleeps) = mpsc::channel();
    // Another process, whose callers announce that they sleep.
    let waiter = limiter(&redis, "pause-then-learn", 20.0, 5)
        .clock(AnnouncingClock(slept))
        .build()
        .unwrap();
    let limiter = limiter(&redis, "pause-then-learn", 20.0, 5)
        .build()
        .unwrap();
    for _ in 0..10 {
        limiter.acquire();
        limiter.record_success();
    }
    let granted: Vec<Duration> = thread::scope(|scope| {
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let waiter = &waiter;
                scope.spawn(move || {
                    waiter.acquire();
                    Instant::now()
                })
            })
            .collect();
        // Every waiter has reserved its slot and sleeps.
        for _ in 0..8 {
            sleeps.recv_timeout(Duration::from_secs(5)).unwrap();
        }
        let paused = Instant::now();
        Limiter::throttled(&limiter, Duration::from_secs(1));
        assert!(
            limiter.rate_per_sec() < 20.0,
            "learned: {}",
            limiter.rate_per_sec()
        );
        threads
            .into_iter()
            .map(|thread| thread.join().unwrap().saturating_duration_since(paused))
            .collect()
    });
    for at in &granted {
        assert!(
            *at >= 990 * MS,
            "granted {at:?} into a 1 s pause: {granted:?}"
        );
    }
}

#[test]
fn a_fixed_rate_limiter_keeps_its_rate_and_learns_nothing() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let fixed = limiter(&redis, "fixed", 100.0, 100)
        .learning(false)
        .build()
        .unwrap();
    assert!(!fixed.is_learning());
    for _ in 0..30 {
        fixed.acquire();
        fixed.record_success();
    }
    Limiter::throttled(&fixed, Duration::ZERO);
    assert_eq!(fixed.rate_per_sec(), 100.0);
    assert!(fixed.rate_changes().is_empty());
    assert_eq!(learned_generation(&redis, &fixed), None, "nothing stored");

    // Beside a process that learned, it keeps its own rate.
    let learning = limiter(&redis, "fixed", 100.0, 100).build().unwrap();
    learning.acquire();
    Limiter::throttled(&learning, Duration::ZERO);
    assert!(
        learning.rate_per_sec() < 100.0,
        "{}",
        learning.rate_per_sec()
    );
    fixed.acquire();
    assert_eq!(fixed.rate_per_sec(), 100.0);
    assert!(fixed.rate_changes().is_empty());
}

/// Issue 24: the settings outlived every sharer by a minute, so a new rate
/// was refused for a minute after every process had stopped.
#[test]
fn shared_settings_go_with_the_last_sharer() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let first = limiter(&redis, "lease", 80.0, 10).build().unwrap();
    let second = limiter(&redis, "lease", 80.0, 10).build().unwrap();
    first.connect().unwrap();
    second.connect().unwrap();
    assert!(second.try_acquire());
    let another_rate = || limiter(&redis, "lease", 50.0, 5).build().unwrap().connect();
    assert!(matches!(
        another_rate(),
        Err(Error::SharedSettingsMismatch { .. })
    ));
    drop(first);
    assert!(
        matches!(another_rate(), Err(Error::SharedSettingsMismatch { .. })),
        "the second still shares the key"
    );
    drop(second);
    assert_eq!(another_rate(), Ok(()), "accepted once every sharer is gone");
}

/// Issue 24: `--rate 90 --burst 30` through Redis put 120 requests into
/// one second at the server (`burst + rate`); the log in Redis keeps it at
/// 90, as `SlidingWindow` does in one process.
#[test]
fn a_burst_never_puts_more_than_the_limit_into_a_window_at_the_server() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    // Two limiters and two clients, as two processes would have.
    let clients: Vec<Client> = (0..2)
        .map(|_| {
            let limiter = limiter(&redis, "burst-window", 90.0, 30).build().unwrap();
            limiter.connect().unwrap();
            Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
                .track_url(emulator.url())
                .limiter(ApiClass::Track, limiter)
                .build()
                .unwrap()
        })
        .collect();
    let run_for = Duration::from_millis(2_500);
    let sent = AtomicU64::new(0);
    thread::scope(|scope| {
        for t in 0..8 {
            let (client, sent) = (&clients[t % 2], &sent);
            scope.spawn(move || {
                let start = Instant::now();
                while start.elapsed() < run_for {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    client
                        .identify(
                            cio_ratelimit::Identifier::id(format!("w{n}")),
                            serde_json::json!({}),
                        )
                        .unwrap();
                }
            });
        }
    });
    let track = &emulator.snapshot().classes["track"];
    println!(
        "rate 90, burst 30, two limiters: busiest 1 s window at the server {} of {} requests",
        track.max_in_window, track.requests
    );
    assert!(track.max_in_window <= 90, "{track:?}");
    assert!(track.max_in_window >= 80, "the budget was used: {track:?}");
}

#[test]
#[ignore = "a worker process of the multi-process tests above"]
fn redis_worker() {
    let Some(params) = worker::params("redis_worker") else {
        return;
    };
    let when = match params.get::<String>("WHEN").as_str() {
        "fallback" => WhenUnreachable::FallBack { share: 0.25 },
        _ => WhenUnreachable::Wait,
    };
    let outages: &'static Outages = Box::leak(Box::new(Outages {
        password: params.get("PASSWORD"),
        taken: &worker::TAKEN,
        warnings: AtomicU64::new(0),
        recoveries: AtomicU64::new(0),
        taken_at_warning: AtomicU64::new(0),
        taken_at_recovery: AtomicU64::new(0),
        leaked: Default::default(),
    }));
    log::set_logger(outages).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let limit = RateLimit::new(params.get("RATE"), params.get("BURST")).unwrap();
    let limiter = RedisLimiter::builder(limit)
        .url(params.get::<String>("REDIS"))
        .workspace(params.get::<String>("WORKSPACE"))
        .class(ApiClass::Track)
        .when_unreachable(when)
        .build()
        .unwrap();
    let threads: usize = params.get("THREADS");
    let run_for = Duration::from_millis(params.get("RUN_MS"));
    if params.get::<String>("MODE") == "grants" {
        limiter.acquire(); // connect and load the script before the start
        params.ready_and_wait();
        let grants = Arc::new(Mutex::new(Vec::new()));
        thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let start = Instant::now();
                    while start.elapsed() < run_for {
                        let asked = micros_since_epoch();
                        limiter.acquire();
                        let granted = micros_since_epoch();
                        grants.lock().unwrap().push(format!("{asked}:{granted}"));
                    }
                });
            }
        });
        worker::report("grants", grants.lock().unwrap().join(","));
        return;
    }
    let prefix: String = params.get("PREFIX");
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .base_url(params.get::<String>("EMULATOR"))
        .limiter(ApiClass::Track, limiter)
        .build()
        .unwrap();
    // Open a connection per thread to both servers before the start, so that
    // the first requests after it are not slowed by connecting.
    thread::scope(|scope| {
        for t in 0..threads {
            let (client, prefix) = (&client, &prefix);
            scope.spawn(move || {
                client
                    .identify(format!("{prefix}warm-up-{t}"), serde_json::json!({}))
                    .unwrap();
            });
        }
    });
    params.ready_and_wait();
    let began = micros_since_epoch();
    let sent = worker::identify_for(&client, &prefix, threads, run_for);
    // Before the process reports and exits: a parent that timed the run
    // from outside would count those too.
    worker::report("sending_us", micros_since_epoch() - began);
    worker::report("began_us", began);
    worker::report("sent", sent);
    worker::report("warnings", outages.warnings.load(Ordering::SeqCst));
    worker::report("recoveries", outages.recoveries.load(Ordering::SeqCst));
    worker::report("leaked", outages.leaked.load(Ordering::SeqCst));
    let during = outages.taken_at_recovery.load(Ordering::SeqCst)
        - outages
            .taken_at_warning
            .load(Ordering::SeqCst)
            .min(outages.taken_at_recovery.load(Ordering::SeqCst));
    worker::report("during_outage", during);
}
