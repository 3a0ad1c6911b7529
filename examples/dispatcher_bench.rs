//! Side-by-side benchmark of the dispatcher's overhead per job, in one run:
//! no-op jobs through `Dispatcher` (with an `Unlimited` limiter) against a
//! plain crossbeam-channel worker pool written here, the same number of
//! workers and the same queue size. Goal: a ratio ≤ 1.3.
//!
//! Run: `cargo run --release --example dispatcher_bench`

use std::hint::black_box;
use std::thread;
use std::time::Instant;

use cio_ratelimit::{Dispatcher, Unlimited};

const JOBS: u64 = 1_000_000;
const ROUNDS: usize = 10;
const WORKERS: usize = 4;
const CAPACITY: usize = 1_000;

/// The baseline: a bounded channel, `WORKERS` threads, nothing else.
fn plain_pool(with_results: bool) -> f64 {
    let (jobs, queue) =
        crossbeam_channel::bounded::<(u64, Option<crossbeam_channel::Sender<u64>>)>(CAPACITY);
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("plain-pool-{n}"))
                .spawn(move || {
                    for (job, reply) in queue {
                        let result = black_box(job);
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                    }
                })
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    if with_results {
        let tickets: Vec<_> = (0..JOBS)
            .map(|job| {
                let (reply, result) = crossbeam_channel::bounded(1);
                jobs.send((job, Some(reply))).unwrap();
                result
            })
            .collect();
        for ticket in tickets {
            black_box(ticket.recv().unwrap());
        }
    } else {
        for job in 0..JOBS {
            jobs.send((job, None)).unwrap();
        }
    }
    drop(jobs);
    for worker in workers {
        worker.join().unwrap();
    }
    started.elapsed().as_nanos() as f64 / JOBS as f64
}

fn dispatcher(with_results: bool) -> f64 {
    let dispatcher = Dispatcher::builder()
        .workers(WORKERS)
        .capacity(CAPACITY)
        .limiter(Unlimited::new())
        .build(|job: u64| {
            black_box(job);
        })
        .unwrap();
    let started = Instant::now();
    if with_results {
        let tickets: Vec<_> = (0..JOBS)
            .map(|job| dispatcher.submit(job).unwrap())
            .collect();
        for ticket in tickets {
            ticket.wait().unwrap();
        }
    } else {
        for job in 0..JOBS {
            dispatcher.execute(job).unwrap();
        }
    }
    dispatcher.close();
    started.elapsed().as_nanos() as f64 / JOBS as f64
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    println!(
        "no-op jobs, {WORKERS} workers, queue {CAPACITY}, {JOBS} jobs, {ROUNDS} rounds; \
         medians, and the median of each round's ratio"
    );
    println!("  mode                    Dispatcher ns/job  plain pool ns/job  ratio (goal <= 1.3)");
    // `dispatcher_bench fire` or `dispatcher_bench ticket` runs one mode (for a profiler).
    let only = std::env::args().nth(1);
    for (label, mode, with_results) in [
        ("fire and forget", "fire", false),
        ("with a ticket per job", "ticket", true),
    ] {
        if only.as_deref().is_some_and(|only| only != mode) {
            continue;
        }
        let (mut ours, mut plain, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Pairs, in alternating order: whichever pool runs second in a pair
            // finds the caches and the CPU's clock warmed by the first, and
            // drift on a shared machine hits both sides of a pair alike.
            let (a, b) = if round % 2 == 0 {
                let a = dispatcher(with_results);
                (a, plain_pool(with_results))
            } else {
                let b = plain_pool(with_results);
                (dispatcher(with_results), b)
            };
            ours.push(a);
            plain.push(b);
            ratios.push(a / b);
        }
        let ratio = median(ratios);
        let (ours, plain) = (median(ours), median(plain));
        println!("  {label:<22}  {ours:>17.0}  {plain:>17.0}  {ratio:>6.2}");
    }
}
