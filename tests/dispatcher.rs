//! `Dispatcher`: nothing lost, nothing run twice, the rate held, shutdown,
//! panics and backpressure.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Faults};
use cio_ratelimit::{
    Client, Dispatcher, Error, Event, RateLimit, RetryPolicy, TokenBucket,
    queue::{ClientCall, JobError, Reply, SubmitError, TrySubmitError},
};
use serde_json::json;

#[test]
fn eight_producers_times_ten_thousand_jobs_none_lost_none_twice() {
    const PRODUCERS: u64 = 8;
    const JOBS: u64 = 10_000;
    let runs: Arc<Vec<AtomicU64>> =
        Arc::new((0..PRODUCERS * JOBS).map(|_| AtomicU64::new(0)).collect());
    let dispatcher = {
        let runs = runs.clone();
        Dispatcher::builder()
            .workers(10)
            .capacity(64)
            .build(move |job: u64| {
                runs[job as usize].fetch_add(1, Ordering::Relaxed);
            })
    }
    .unwrap();
    thread::scope(|scope| {
        for producer in 0..PRODUCERS {
            let dispatcher = &dispatcher;
            scope.spawn(move || {
                for n in 0..JOBS {
                    let job = producer * JOBS + n;
                    // Half with tickets, half fire-and-forget.
                    if n % 2 == 0 {
                        dispatcher.submit(job).unwrap();
                    } else {
                        dispatcher.execute(job).unwrap();
                    }
                }
            });
        }
    });
    dispatcher.flush();
    let counts: Vec<u64> = runs.iter().map(|r| r.load(Ordering::Relaxed)).collect();
    assert!(
        counts.iter().all(|&c| c == 1),
        "lost: {}, repeated: {}",
        counts.iter().filter(|&&c| c == 0).count(),
        counts.iter().filter(|&&c| c > 1).count()
    );
    let stats = dispatcher.stats();
    assert_eq!(
        (
            stats.submitted,
            stats.done,
            stats.failed,
            stats.queued,
            stats.in_flight
        ),
        (80_000, 80_000, 0, 0, 0)
    );
}

#[test]
fn ten_workers_through_an_80_per_second_limiter_hold_the_rate() {
    let (tx, grants) = mpsc::channel();
    let tx = Mutex::new(tx);
    // Taken before the bucket exists: its permits accrue from a later moment.
    let origin = Instant::now();
    let dispatcher = Dispatcher::builder()
        .workers(10)
        .limiter(TokenBucket::from_limit(RateLimit::TRACK_API))
        .build(move |_: u32| {
            tx.lock().unwrap().send(Instant::now()).unwrap();
        })
        .unwrap();
    for job in 0..250 {
        dispatcher.execute(job).unwrap();
    }
    dispatcher.close();
    let mut grants: Vec<Instant> = grants.try_iter().collect();
    grants.sort();
    assert_eq!(grants.len(), 250);
    // Never faster: the bucket (burst 10, then one every 12.5 ms) lets the
    // k-th job run no earlier than origin + (k + 1 - 10) × 12.5 ms. A job
    // stamps after its permit, never before, so a loaded machine can only
    // make this easier to meet (1 ms allows for rounding).
    let interval = Duration::from_secs_f64(1.0 / 80.0);
    for (k, &ran) in grants.iter().enumerate() {
        let due = origin + interval * (k + 1).saturating_sub(10) as u32;
        assert!(
            ran + Duration::from_millis(1) >= due,
            "job {k} ran {:?} before its permit was due",
            due - ran
        );
    }
    // Not slower either, with margin for a loaded machine: the 240 after the
    // burst take 3 s at 80/s.
    let took = grants[249].duration_since(origin).as_secs_f64();
    let rate = 240.0 / took;
    assert!(rate >= 0.85 * 80.0, "{rate}/s over {took} s");
}

#[test]
fn a_panicking_job_fails_its_own_ticket_and_the_worker_carries_on() {
    let dispatcher = Dispatcher::builder()
        .workers(1)
        .build(|n: u32| {
            assert!(n != 2, "job {n} goes wrong");
            Ok::<u32, String>(n)
        })
        .unwrap();
    let tickets: Vec<_> = (0..5).map(|n| dispatcher.submit(n).unwrap()).collect();
    let results: Vec<_> = tickets.into_iter().map(|t| t.wait()).collect();
    assert_eq!(results[1], Ok(Ok(1)));
    assert_eq!(
        results[2],
        Err(JobError::Panicked("job 2 goes wrong".into()))
    );
    assert_eq!(results[4], Ok(Ok(4)), "the one worker survived");
    let stats = dispatcher.stats();
    assert_eq!((stats.done, stats.failed, stats.panicked), (4, 1, 1));
}

#[test]
fn err_results_count_as_failed() {
    let dispatcher = Dispatcher::builder()
        .workers(2)
        .build(|n: u32| if n.is_multiple_of(2) { Ok(n) } else { Err(n) })
        .unwrap();
    for n in 0..10 {
        dispatcher.execute(n).unwrap();
    }
    dispatcher.flush();
    let stats = dispatcher.stats();
    assert_eq!((stats.done, stats.failed), (5, 5));
}

#[test]
fn a_full_queue_blocks_submit_and_try_submit_hands_the_job_back() {
    // One worker, held inside job 1 until the gate opens; a queue of 2.
    let (started, job_started) = mpsc::channel();
    let (open_gate, gate) = mpsc::channel::<()>();
    let gate = Mutex::new(gate);
    let dispatcher = Arc::new(
        Dispatcher::builder()
            .workers(1)
            .capacity(2)
            .build(move |n: u32| {
                started.send(n).unwrap();
                if n == 1 {
                    gate.lock().unwrap().recv().unwrap();
                }
                Ok::<u32, String>(n)
            })
            .unwrap(),
    );
    let first = dispatcher.submit(1).unwrap();
    assert_eq!(job_started.recv().unwrap(), 1);
    dispatcher.submit(2).unwrap();
    dispatcher.submit(3).unwrap();
    assert!(matches!(
        dispatcher.try_submit(4),
        Err(TrySubmitError::Full(4))
    ));
    assert_eq!(dispatcher.stats().queued, 2);
    let (returned, submitted) = mpsc::channel();
    let producer = {
        let dispatcher = dispatcher.clone();
        thread::spawn(move || {
            let ticket = dispatcher.submit(4).unwrap();
            returned.send(()).unwrap();
            ticket.wait().unwrap()
        })
    };
    assert!(
        submitted.recv_timeout(Duration::from_millis(200)).is_err(),
        "submit blocked while full"
    );
    open_gate.send(()).unwrap();
    submitted
        .recv_timeout(Duration::from_secs(10))
        .expect("submit returned once there was room");
    assert_eq!(producer.join().unwrap(), Ok(4));
    assert_eq!(first.wait(), Ok(Ok(1)));
}

#[test]
fn pause_holds_queued_jobs_until_resume() {
    let dispatcher = Dispatcher::builder()
        .workers(2)
        .build(Ok::<u32, String>)
        .unwrap();
    dispatcher.pause();
    let tickets: Vec<_> = (0..20).map(|n| dispatcher.submit(n).unwrap()).collect();
    assert!(
        tickets
            .iter()
            .all(|t| t.wait_timeout(Duration::from_millis(20)).is_none())
    );
    assert_eq!(dispatcher.stats().done, 0);
    dispatcher.resume();
    let results: Vec<u32> = tickets
        .into_iter()
        .map(|t| t.wait().unwrap().unwrap())
        .collect();
    assert_eq!(results, (0..20).collect::<Vec<_>>());
}

#[test]
fn close_runs_what_is_queued_then_hands_new_jobs_back() {
    let ran = Arc::new(AtomicU64::new(0));
    let dispatcher = {
        let ran = ran.clone();
        Dispatcher::builder().workers(2).build(move |_: u32| {
            ran.fetch_add(1, Ordering::SeqCst);
        })
    }
    .unwrap();
    dispatcher.pause();
    for n in 0..50 {
        dispatcher.execute(n).unwrap();
    }
    dispatcher.close(); // resumes, drains, joins
    assert_eq!(ran.load(Ordering::SeqCst), 50);
    assert_eq!(dispatcher.submit(7).unwrap_err(), SubmitError(7));
    assert!(matches!(
        dispatcher.try_submit(8),
        Err(TrySubmitError::Closed(8))
    ));
    dispatcher.close(); // again: nothing to do
}

#[test]
fn dropping_a_dispatcher_runs_its_queued_jobs() {
    let ran = Arc::new(AtomicU64::new(0));
    {
        let ran = ran.clone();
        let dispatcher = Dispatcher::builder()
            .workers(1)
            .build(move |_: u32| {
                ran.fetch_add(1, Ordering::SeqCst);
            })
            .unwrap();
        dispatcher.pause();
        for n in 0..30 {
            dispatcher.execute(n).unwrap();
        }
    }
    assert_eq!(ran.load(Ordering::SeqCst), 30);
}

#[test]
fn shutdown_under_load_returns_every_unrun_job_and_loses_none() {
    const JOBS: u32 = 400;
    let (finished, completions) = mpsc::channel();
    let finished = Mutex::new(finished);
    let dispatcher = Arc::new(
        Dispatcher::builder()
            .workers(2)
            .capacity(50)
            .build(move |n: u32| {
                thread::sleep(Duration::from_millis(2)); // the work itself
                finished.lock().unwrap().send(n).unwrap();
            })
            .unwrap(),
    );
    let start = Arc::new(Barrier::new(2));
    let producer = {
        let (dispatcher, start) = (dispatcher.clone(), start.clone());
        thread::spawn(move || {
            let mut refused = Vec::new();
            for n in 0..JOBS {
                if n == 100 {
                    start.wait(); // the queue is busy now
                }
                if let Err(SubmitError(job)) = dispatcher.execute(n) {
                    refused.push(job);
                }
            }
            refused
        })
    };
    start.wait();
    let unrun = dispatcher.shutdown_timeout(Duration::from_millis(30));
    let refused = producer.join().unwrap();
    let not_run: HashSet<u32> = unrun.iter().chain(&refused).copied().collect();
    assert_eq!(
        not_run.len(),
        unrun.len() + refused.len(),
        "a job handed back twice"
    );
    assert!(!unrun.is_empty(), "the queue was not drained in 30 ms");
    // Jobs still running at the deadline finish on their own threads.
    let expected_runs = JOBS as usize - not_run.len();
    let ran: HashSet<u32> = (0..expected_runs)
        .map(|_| {
            completions
                .recv_timeout(Duration::from_secs(10))
                .expect("a running job finished")
        })
        .collect();
    assert!(
        completions
            .recv_timeout(Duration::from_millis(100))
            .is_err(),
        "an unrun job ran"
    );
    assert!(
        ran.is_disjoint(&not_run),
        "a job both ran and was handed back"
    );
    assert_eq!(
        ran.len() + not_run.len(),
        JOBS as usize,
        "every job ran or came back"
    );
    assert_eq!(dispatcher.stats().abandoned, unrun.len() as u64);
}

#[test]
fn tickets_of_jobs_handed_back_say_abandoned() {
    let dispatcher = Dispatcher::builder()
        .workers(1)
        .build(Ok::<u32, String>)
        .unwrap();
    dispatcher.pause();
    let ticket = dispatcher.submit(1).unwrap();
    let unrun = dispatcher.shutdown_timeout(Duration::ZERO);
    // shutdown resumes the pool, so the job may have started in the meantime.
    match ticket.wait() {
        Ok(Ok(1)) => assert!(unrun.is_empty()),
        Err(JobError::Abandoned) => assert_eq!(unrun, vec![1]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_settings_are_refused() {
    for (builder, setting) in [
        (Dispatcher::builder().workers(0), "workers"),
        (Dispatcher::builder().capacity(0), "capacity"),
        (
            Dispatcher::builder().health_log(Duration::ZERO),
            "health_log",
        ),
    ] {
        let err = builder.build(|_: u32| ()).unwrap_err();
        assert!(
            matches!(err, Error::InvalidConfig { setting: s, .. } if s == setting),
            "{err}"
        );
    }
}

#[test]
fn stats_report_latency_percentiles_and_the_health_line() {
    let dispatcher = Dispatcher::builder().workers(2).build(|_: u32| ()).unwrap();
    for n in 0..100 {
        dispatcher.execute(n).unwrap();
    }
    dispatcher.flush();
    let stats = dispatcher.stats();
    assert!(stats.latency_p50 > Duration::ZERO && stats.latency_p50 <= stats.latency_p90);
    assert!(stats.latency_p90 <= stats.latency_p99);
    let line = stats.to_string();
    assert!(
        line.starts_with("queued 0 in flight 0 done 100 failed 0 latency p50 "),
        "{line}"
    );
}

#[test]
fn client_calls_queue_through_the_clients_own_limiter_and_report_retries() {
    let faults = Faults::default().seed(4).unavailable(0.2);
    let emu = Emulator::start(Config::default().track_limit(0).faults(faults)).unwrap();
    let policy = RetryPolicy::builder()
        .base_delay(Duration::from_millis(2))
        .max_delay(Duration::from_millis(10))
        .max_retries(10)
        .retry_budget(1.0, Duration::from_secs(10), 100)
        .build()
        .unwrap();
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emu.url())
        .rate_limit(
            cio_ratelimit::ApiClass::Track,
            RateLimit::new(2_000.0, 50).unwrap(),
        )
        .retry_policy(policy)
        .build()
        .unwrap();
    let retries = client.retry_policy().clone();
    let dispatcher = Dispatcher::builder()
        .workers(4)
        .build_for_client(client)
        .unwrap();
    let tickets: Vec<_> = (0..100)
        .map(|i| dispatcher.identify(i.to_string(), json!({"i": i})).unwrap())
        .collect();
    for i in 0..100 {
        dispatcher
            .track(i.to_string(), Event::new("queued"))
            .unwrap();
    }
    let refused = dispatcher.identify("x", json!([1, 2])).unwrap();
    assert!(matches!(refused.wait(), Ok(Err(Error::Invalid(_)))));
    assert!(
        tickets
            .into_iter()
            .all(|t| matches!(t.wait(), Ok(Ok(Reply::Done))))
    );
    dispatcher.flush();
    let stats = dispatcher.stats();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 100);
    assert_eq!(snapshot.events_named("queued").count(), 100);
    assert_eq!(stats.done, 200);
    // The dispatcher knows nothing of retries; the client's policy counts them.
    assert_eq!(
        retries.stats().retries,
        snapshot.status_count(503),
        "every 503 was retried once"
    );
    dispatcher.close();
    assert!(matches!(
        dispatcher.delete("1"),
        Err(SubmitError(ClientCall::Delete(_)))
    ));
}

#[test]
fn dispatchers_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Dispatcher<u32, ()>>();
    assert_send_sync::<cio_ratelimit::queue::ClientDispatcher>();
    assert_send_sync::<cio_ratelimit::queue::Ticket<u32>>();
}
