//! Side-by-side benchmark of the dispatcher's overhead per job, in one run:
//! no-op jobs through `Dispatcher` (with an `Unlimited` limiter) against a
//! plain crossbeam-channel worker pool written here, the same number of
//! workers and the same queue size, each counting the jobs it ran (checked
//! against the jobs sent). Goal: a ratio ≤ 1.3.
//!
//! Wall time is what the goal is about. The CPU time both pools used (all
//! threads, from `/proc/self/stat`, on Linux) is printed beside it: on a
//! shared machine it moves less with the other load than wall time does.
//!
//! Run: `cargo run --release --example dispatcher_bench` (add `fire` or
//! `ticket` to run one mode, for a profiler).

use std::hint::black_box;
use std::thread;
use std::time::{Duration, Instant};

use cio_ratelimit::{Dispatcher, limit::Unlimited};

const JOBS: u64 = 1_000_000;
/// Rounds (pairs) per mode. A fire-and-forget pair takes a fifth of a
/// second and its ratio swings with the machine's other load, so it gets
/// three times the pairs: the median of more pairs moves less.
const FIRE_ROUNDS: usize = 30;
/// A ticket pair takes seconds and swings less.
const TICKET_ROUNDS: usize = 10;
const WORKERS: usize = 4;
const CAPACITY: usize = 1_000;

/// The baseline: a bounded channel, `WORKERS` threads each counting the jobs
/// it ran, nothing else.
fn plain_pool(with_results: bool) -> f64 {
    let (jobs, queue) =
        crossbeam_channel::bounded::<(u64, Option<crossbeam_channel::Sender<u64>>)>(CAPACITY);
    let workers: Vec<_> = (0..WORKERS)
        .map(|n| {
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("plain-pool-{n}"))
                .spawn(move || {
                    let mut done = 0u64;
                    for (job, reply) in queue {
                        let result = black_box(job);
                        if let Some(reply) = reply {
                            let _ = reply.send(result);
                        }
                        done += 1;
                    }
                    done
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
    let done: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    let elapsed = started.elapsed();
    assert_eq!(done, JOBS);
    elapsed.as_nanos() as f64 / JOBS as f64
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
    let elapsed = started.elapsed();
    assert_eq!(dispatcher.stats().done, JOBS);
    elapsed.as_nanos() as f64 / JOBS as f64
}

/// CPU time this process has used so far, all its threads (live and
/// joined), from `/proc/self/stat` in USER_HZ ticks (1/100 s on Linux);
/// `None` elsewhere.
fn cpu_used() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command (which is in parentheses): utime and stime
    // are the 12th and 13th.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some(Duration::from_millis((user + system) * 10))
}

/// Runs `pool`: its wall ns/job, and the CPU it used, added to `cpu`.
fn measured(cpu: &mut Option<Duration>, pool: impl FnOnce() -> f64) -> f64 {
    let before = cpu_used();
    let ns_per_job = pool();
    *cpu = match (*cpu, before, cpu_used()) {
        (Some(sum), Some(before), Some(after)) => Some(sum + (after - before)),
        _ => None,
    };
    ns_per_job
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    println!(
        "no-op jobs, {WORKERS} workers, queue {CAPACITY}, {JOBS} jobs, {FIRE_ROUNDS} rounds \
         (tickets: {TICKET_ROUNDS}); medians, and the median of each round's ratio"
    );
    println!(
        "  mode                    Dispatcher ns/job  plain pool ns/job  ratio (goal <= 1.3)  \
         CPU ns/job: Dispatcher  plain  ratio"
    );
    let only = std::env::args().nth(1);
    for (label, mode, with_results, rounds) in [
        ("fire and forget", "fire", false, FIRE_ROUNDS),
        ("with a ticket per job", "ticket", true, TICKET_ROUNDS),
    ] {
        if only.as_deref().is_some_and(|only| only != mode) {
            continue;
        }
        let (mut ours, mut plain, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        let (mut our_cpu, mut plain_cpu) = (Some(Duration::ZERO), Some(Duration::ZERO));
        for round in 0..rounds {
            // Pairs, in alternating order: whichever pool runs second in a pair
            // finds the caches and the CPU's clock warmed by the first, and
            // drift on a shared machine hits both sides of a pair alike.
            let mut run_ours = || measured(&mut our_cpu, || dispatcher(with_results));
            let mut run_plain = || measured(&mut plain_cpu, || plain_pool(with_results));
            let (a, b) = if round % 2 == 0 {
                let a = run_ours();
                (a, run_plain())
            } else {
                let b = run_plain();
                (run_ours(), b)
            };
            ours.push(a);
            plain.push(b);
            ratios.push(a / b);
        }
        let ratio = median(ratios);
        let (ours, plain) = (median(ours), median(plain));
        print!("  {label:<22}  {ours:>17.0}  {plain:>17.0}  {ratio:>19.2}");
        if let (Some(our_cpu), Some(plain_cpu)) = (our_cpu, plain_cpu) {
            let per_job = |cpu: Duration| cpu.as_nanos() as f64 / (JOBS * rounds as u64) as f64;
            let (our_cpu, plain_cpu) = (per_job(our_cpu), per_job(plain_cpu));
            let cpu_ratio = our_cpu / plain_cpu;
            print!("  {our_cpu:>22.0}  {plain_cpu:>5.0}  {cpu_ratio:>5.2}");
        }
        println!();
    }
}
