//! The strict sliding window per class: 429 with Retry-After in three styles, and the counts.

mod client;

use std::time::{Duration, Instant, SystemTime};

use cio_emulator::{Config, Emulator, RetryAfterStyle};
use client::Client;

const IDENTIFY: &str = "/api/v1/customers/1";

#[test]
fn the_request_over_the_limit_gets_429_with_retry_after_seconds() {
    // A long window, so that a loaded machine cannot slide it during the test.
    let config = Config::default()
        .track_limit(3)
        .window(Duration::from_secs(30));
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let statuses: Vec<u16> = (0..5)
        .map(|_| client.track("PUT", IDENTIFY, "{}").status)
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let throttled = client.track("PUT", IDENTIFY, "{}");
    let seconds: u64 = throttled.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=30).contains(&seconds), "{seconds}");
    assert!(
        throttled.json["meta"]["errors"][0]
            .as_str()
            .unwrap()
            .contains("Too Many Requests")
    );
    // Both Track APIs share the class.
    let v2 = client.track("POST", "/api/v2/batch", r#"{"batch":[]}"#);
    assert_eq!(v2.status, 429);
    assert_eq!(v2.json["errors"][0]["reason"], "rate_limited");

    let snapshot = emulator.snapshot();
    let track = &snapshot.classes["track"];
    assert_eq!((track.requests, track.admitted, track.throttled), (7, 3, 4));
    assert_eq!((track.limit, track.window_ms), (3, 30_000));
    assert_eq!(track.max_in_window, 7);
    assert_eq!(snapshot.throttled, 4);
    assert_eq!(snapshot.status_count(429), 4);
    assert_eq!(snapshot.people["1"].identify_count, 3);
}

#[test]
fn retry_after_counts_whole_seconds_until_the_window_frees() {
    // A 2 s window: the second request comes well inside it however slow
    // the machine, and the Retry-After it gets is checked against bounds
    // taken from the stamps around both requests, not a fixed value.
    let window = Duration::from_secs(2);
    let config = Config::default().track_limit(1).window(window);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let started = Instant::now();
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
    // The first request was admitted between `started` and now.
    let first_answered = Instant::now();
    let throttled = client.track("PUT", IDENTIFY, "{}");
    // ... and the second answered between `first_answered` and now.
    let throttled_answered = Instant::now();
    assert_eq!(throttled.status, 429, "inside the window");
    // Whole seconds until the window frees, at least 1: between what is left
    // when counted from the earliest and the latest moments possible.
    let whole = |left: Duration| (left.as_secs_f64().ceil() as u64).max(1);
    let least = whole(window.saturating_sub(throttled_answered - started));
    let most = whole(window.saturating_sub(throttled_answered - first_answered));
    let retry_after: u64 = throttled.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(
        (least..=most).contains(&retry_after),
        "Retry-After {retry_after}, not in {least}..={most}"
    );
    // Once the window has slid past the first request, there is room again.
    let window_free = first_answered + window + Duration::from_millis(50);
    std::thread::sleep(window_free.saturating_duration_since(Instant::now()));
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
}

#[test]
fn retry_after_can_be_an_http_date() {
    let config = Config::default()
        .app_limit(1)
        .window(Duration::from_secs(20))
        .retry_after(RetryAfterStyle::HttpDate);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let before = SystemTime::now();
    assert_eq!(client.app("GET", "/v1/anything", "").status, 404);
    let throttled = client.app("GET", "/v1/anything", "");
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.json["errors"][0]["status"], "429");
    let date = httpdate::parse_http_date(throttled.retry_after.as_deref().unwrap()).unwrap();
    // The window frees 20 s after the first request, rounded up to a whole second.
    assert!(date >= before + Duration::from_secs(19), "{date:?}");
    assert!(
        date <= SystemTime::now() + Duration::from_secs(21),
        "{date:?}"
    );
}

#[test]
fn retry_after_can_be_absent() {
    let config = Config::default()
        .transactional_limit(1)
        .window(Duration::from_secs(20))
        .retry_after(RetryAfterStyle::Absent);
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let body = r#"{"transactional_message_id":1,"identifiers":{"id":"1"}}"#;
    assert_eq!(client.app("POST", "/v1/send/push", body).status, 200);
    let throttled = client.app("POST", "/v1/send/push", body);
    assert_eq!(throttled.status, 429);
    assert_eq!(throttled.retry_after, None);
}

#[test]
fn broadcasts_default_to_one_per_ten_seconds() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    assert_eq!(
        client.app("POST", "/v1/campaigns/1/triggers", "").status,
        200
    );
    let throttled = client.app("POST", "/v1/campaigns/2/triggers", "");
    assert_eq!(throttled.status, 429);
    let seconds: u64 = throttled.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=10).contains(&seconds), "{seconds}");
    // Other classes are not affected.
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
    let broadcast = &emulator.snapshot().classes["broadcast"];
    assert_eq!((broadcast.limit, broadcast.window_ms), (1, 10_000));
    assert_eq!((broadcast.admitted, broadcast.throttled), (1, 1));
    assert_eq!(emulator.snapshot().broadcasts.len(), 1);
}

#[test]
fn broadcast_window_is_configurable() {
    let config = Config::default()
        .broadcast_limit(2)
        .broadcast_window(Duration::from_secs(60));
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    let statuses: Vec<u16> = (0..3)
        .map(|_| client.app("POST", "/v1/campaigns/1/triggers", "").status)
        .collect();
    assert_eq!(statuses, [200, 200, 429]);
    let seconds: u64 = client
        .app("POST", "/v1/campaigns/1/triggers", "")
        .retry_after
        .unwrap()
        .parse()
        .unwrap();
    assert!((30..=60).contains(&seconds), "{seconds}");
}

#[test]
fn default_limits_are_customerio_documented_ones() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let classes = emulator.snapshot().classes;
    let limits: Vec<(&str, u32, u64)> = classes
        .iter()
        .map(|(name, stats)| (name.as_str(), stats.limit, stats.window_ms))
        .collect();
    assert_eq!(
        limits,
        [
            ("app", 10, 1000),
            ("broadcast", 1, 10_000),
            ("pipelines", 100, 1000),
            ("track", 100, 1000),
            ("transactional", 100, 1000),
        ]
    );
}

#[test]
fn zero_means_unlimited() {
    let emulator = Emulator::start(Config::default().track_limit(0)).unwrap();
    let client = Client::new(&emulator);
    for _ in 0..300 {
        assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
    }
    let track = &emulator.snapshot().classes["track"];
    assert_eq!((track.admitted, track.throttled), (300, 0));
}

#[test]
fn max_in_window_counts_every_arrival_from_many_threads() {
    let config = Config::default()
        .track_limit(10)
        .window(Duration::from_secs(30));
    let emulator = Emulator::start(config).unwrap();
    let url = emulator.url();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let url = url.clone();
            scope.spawn(move || {
                let client = Client::with_url(&url);
                for _ in 0..25 {
                    client.track("PUT", IDENTIFY, "{}");
                }
            });
        }
    });
    let snapshot = emulator.snapshot();
    let track = &snapshot.classes["track"];
    assert_eq!(track.requests, 100);
    assert_eq!(track.admitted, 10, "never more than the limit in a window");
    assert_eq!(track.throttled, 90);
    assert_eq!(track.max_in_window, 100);
    assert_eq!(snapshot.status_count(200), 10);
}

#[test]
fn reset_clears_the_windows() {
    let config = Config::default()
        .track_limit(1)
        .window(Duration::from_secs(30));
    let emulator = Emulator::start(config).unwrap();
    let client = Client::new(&emulator);
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 429);
    emulator.reset();
    assert_eq!(emulator.snapshot().classes["track"].requests, 0);
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
}

#[test]
fn throttle_for_answers_429_to_everything_until_it_ends() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::new(&emulator);
    emulator.throttle_for(Duration::from_secs(30));
    let throttled = client.track("PUT", IDENTIFY, "{}");
    assert_eq!(throttled.status, 429);
    let seconds: u64 = throttled.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((29..=30).contains(&seconds), "{seconds}");
    assert_eq!(client.app("POST", "/v1/send/email", "{}").status, 429);
    emulator.throttle_for(Duration::ZERO);
    assert_eq!(client.track("PUT", IDENTIFY, "{}").status, 200);
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot.throttled, 2);
    assert_eq!(snapshot.people["1"].identify_count, 1);
}

#[test]
fn retry_after_can_ask_for_no_pause_or_a_date_already_past() {
    for (style, check) in [
        (
            RetryAfterStyle::Zero,
            (|value: &str| value == "0") as fn(&str) -> bool,
        ),
        (RetryAfterStyle::PastDate, |value: &str| {
            httpdate::parse_http_date(value).unwrap() < SystemTime::now()
        }),
    ] {
        let emulator = Emulator::start(Config::default().retry_after(style)).unwrap();
        emulator.throttle_for(Duration::from_secs(30));
        let throttled = Client::new(&emulator).track("PUT", IDENTIFY, "{}");
        assert_eq!(throttled.status, 429);
        let value = throttled.retry_after.unwrap();
        assert!(check(&value), "{style:?}: {value}");
    }
}
