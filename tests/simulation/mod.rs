//! A deterministic simulation of uncoordinated learning limiters against a
//! strict sliding-window server, on one `ManualClock`: issue 20's scenarios,
//! judged at scale in well under a second of real time per scenario.
//!
//! Each simulated process is an import as `cio-ratelimit import --mode
//! single` runs it: a real [`SlidingWindow`] (learning, or at a fixed rate)
//! and `WORKERS` requests in flight at most, each going through the limiter
//! the way the client's retry loop does: `acquire`, send, `answered`, then
//! `record_success` or, on a 429, `throttled(Retry-After)` and again. A
//! request reaches the server `LATENCY` after its permit (plus a jitter of
//! up to `JITTER`; another latency with [`Scenario::latency`]) and its
//! answer comes back as long after. The server
//! admits at most its limit in any 1 s window, counting what it admitted, and
//! answers anything over it with a 429 and `Retry-After: 1` (whole seconds
//! until the window has room, at least 1, as `cio-emulator` does).
//!
//! Time moves in steps of a millisecond; every event falls on one. Nothing
//! is random but a seeded jitter, so a scenario always ends the same way.
//!
//! Used by `tests/learning_sim.rs`, which asserts issue 20's goals, and by
//! `examples/learning_sim.rs`, which prints the table.

// Each user takes its part of this module.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::time::Duration;

use cio_ratelimit::{
    Limiter, RateLimit, SlidingWindow,
    limit::{ManualClock, RateChange},
};

/// Milliseconds: the simulation's unit of time.
pub type Ms = u64;

/// How many requests one process has in flight at most (`--workers`).
pub const WORKERS: u32 = 10;
/// From a permit to the server, and from the server back, at least.
pub const LATENCY: Ms = 10;
/// Added to each leg, evenly between 0 and this.
pub const JITTER: Ms = 5;

/// One simulated process.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    /// When it starts.
    pub start: Ms,
    /// Lines it imports; `None`: it sends until `stop`.
    pub lines: Option<u64>,
    /// When it stops sending, if it has not finished.
    pub stop: Option<Ms>,
    /// `--rate`: its ceiling when learning.
    pub rate: f64,
    /// Whether it learns (`false`: `--fixed-rate`).
    pub learning: bool,
}

impl Process {
    /// A learning import of `lines` lines at `--rate rate`, starting at `start`.
    pub fn import(start: Ms, lines: u64, rate: f64) -> Process {
        Process {
            start,
            lines: Some(lines),
            stop: None,
            rate,
            learning: true,
        }
    }

    /// A learning process at `--rate rate` that sends from `start` to `stop`.
    pub fn sending(start: Ms, stop: Ms, rate: f64) -> Process {
        Process {
            start,
            lines: None,
            stop: Some(stop),
            rate,
            learning: true,
        }
    }

    /// The same at a fixed rate.
    pub fn fixed(self) -> Process {
        Process {
            learning: false,
            ..self
        }
    }
}

/// One scenario: the server's limit over time, the processes, and what to
/// measure.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    /// The server's limit per 1 s window, from each time on; the first at 0.
    pub server: Vec<(Ms, u32)>,
    pub processes: Vec<Process>,
    /// When the simulation ends, whatever is left.
    pub end: Ms,
    /// When capacity was freed (a neighbour stopped, the limit rose): the
    /// reclaim time is measured from it.
    pub freed_at: Option<Ms>,
    /// Jain's index is taken over the overlap, from this time on at the
    /// earliest.
    pub fair_from: Ms,
    /// The jitter's seed.
    pub seed: u64,
    /// Whether to print, at the end of each second, what each process had
    /// admitted and its rate (to stderr).
    pub each_second: bool,
    /// Each leg's latency at least, and the most jitter added to it.
    pub latency: (Ms, Ms),
}

impl Scenario {
    /// `processes` at `--rate rate` against a server of `limit` per second.
    pub fn new(name: impl Into<String>, limit: u32, processes: Vec<Process>) -> Scenario {
        let end = processes
            .iter()
            .map(|p| p.stop.unwrap_or(0).max(p.start))
            .max()
            .unwrap_or(0)
            .max(600_000);
        Scenario {
            name: name.into(),
            server: vec![(0, limit)],
            processes,
            end,
            freed_at: None,
            fair_from: 0,
            seed: 0x9E37_79B9_7F4A_7C15,
            each_second: false,
            latency: (LATENCY, JITTER),
        }
    }

    /// The server's limit becomes `limit` at `at`.
    pub fn limit_from(mut self, at: Ms, limit: u32) -> Scenario {
        self.server.push((at, limit));
        self
    }

    /// Capacity is freed at `at`: measure how long until it is taken back.
    pub fn freed_at(mut self, at: Ms) -> Scenario {
        self.freed_at = Some(at);
        self
    }

    /// The same with another seed for the jitter.
    pub fn seeded(mut self, seed: u64) -> Scenario {
        self.seed = seed.max(1);
        self
    }

    /// The same with each leg taking `latency` plus a jitter of up to
    /// `jitter` (default `LATENCY` and `JITTER`): how the law fares with
    /// answers slower or faster than the default.
    pub fn latency(mut self, latency: Ms, jitter: Ms) -> Scenario {
        self.latency = (latency, jitter);
        self
    }

    /// Prints, at the end of each second, what each process had admitted
    /// and its rate: where the capacity went.
    pub fn each_second(mut self) -> Scenario {
        self.each_second = true;
        self
    }

    /// Jain's index counts from `at` on.
    pub fn fair_from(mut self, at: Ms) -> Scenario {
        self.fair_from = at;
        self
    }

    fn limit_at(&self, at: Ms) -> u32 {
        self.server
            .iter()
            .rev()
            .find(|(from, _)| *from <= at)
            .map_or(0, |(_, limit)| *limit)
    }
}

/// What a scenario came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub name: String,
    /// Requests admitted ÷ what the server could admit to those sending
    /// (its limit, or the sum of their rates if lower), from the first
    /// start to the last finish.
    pub utilisation: f64,
    /// 429s ÷ requests.
    pub throttled_share: f64,
    pub requests: u64,
    pub throttled: u64,
    /// Jain's index of what each process had admitted over the overlap of
    /// the learning processes (from `fair_from`); `None` with one.
    pub fairness: Option<f64>,
    /// From `freed_at` until the processes still sending had 90 % of what
    /// the server could admit them in a 1 s window; `None` if never (or
    /// nothing was freed).
    pub reclaim: Option<Ms>,
    /// How long each process took, start to finish (or to its stop).
    pub took: Vec<Ms>,
    /// Each process's rate at the end, per second.
    pub rates: Vec<f64>,
    /// Each process's rate changes, as its progress lines showed them.
    pub changes: Vec<Vec<RateChange>>,
}

impl Outcome {
    /// The slowest process's time ÷ the fastest's, among imports.
    pub fn spread(&self) -> f64 {
        let most = self.took.iter().copied().max().unwrap_or(0) as f64;
        let least = self.took.iter().copied().min().unwrap_or(0).max(1) as f64;
        most / least
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fairness = self
            .fairness
            .map_or_else(|| "-".to_owned(), |j| format!("{j:.3}"));
        let reclaim = match self.reclaim {
            Some(ms) => format!("{:.1} s", ms as f64 / 1000.0),
            None => "-".to_owned(),
        };
        let took: Vec<String> = self
            .took
            .iter()
            .map(|ms| format!("{:.1}", *ms as f64 / 1000.0))
            .collect();
        let took = if took.len() > 4 {
            format!("{:.2} ×", self.spread())
        } else {
            took.join(" / ")
        };
        write!(
            f,
            "| {} | {:.1} % | {:.2} % | {} | {} | {} |",
            self.name,
            self.utilisation * 100.0,
            self.throttled_share * 100.0,
            fairness,
            reclaim,
            took,
        )
    }
}

/// The table's head, for [`Outcome`]'s rows.
pub const TABLE_HEAD: &str = "| scenario | utilisation | 429s | Jain (overlap) | reclaim | took (s), or slowest ÷ fastest |\n|---|---|---|---|---|---|";

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// Process `.0`'s request reaches the server.
    Arrives(usize),
    /// The server's answer reaches process `.0`: admitted, or a 429 asking
    /// for a pause of `.1` ms.
    Answered(usize, Option<Ms>),
}

struct Running {
    process: Process,
    limiter: Option<SlidingWindow>,
    /// Lines not yet sent, or waiting to be sent again after a 429.
    to_send: u64,
    in_flight: u32,
    admitted: u64,
    finished: Option<Ms>,
    /// Admitted per millisecond of the last second, for the reclaim.
    admitted_at: VecDeque<Ms>,
    /// Admitted over the overlap measured for fairness.
    fair_admitted: u64,
}

/// The strict sliding window: admitted arrivals of the last second.
struct Server {
    admitted: VecDeque<Ms>,
}

impl Server {
    fn arrive(&mut self, now: Ms, limit: u32) -> bool {
        while self.admitted.front().is_some_and(|&at| at + 1_000 <= now) {
            self.admitted.pop_front();
        }
        if self.admitted.len() < limit as usize {
            self.admitted.push_back(now);
            true
        } else {
            false
        }
    }
}

/// A small deterministic generator for the jitter (xorshift), up to its
/// most.
struct Jitter(u64, Ms);

impl Jitter {
    fn next(&mut self) -> Ms {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % (self.1 + 1)
    }
}

/// `scenario` run once with each of `seeds` jitter seeds (1, 2, ... scaled
/// apart): one run of a chaotic system is one sample. `SIM_SEEDS=N` and the
/// goals asserted on a mean use these.
pub fn run_seeds(scenario: &Scenario, seeds: u64) -> Vec<Outcome> {
    (1..=seeds)
        .map(|seed| run(&scenario.clone().seeded(seed * 7_919)))
        .collect()
}

/// Runs `scenario` to its end, or until every import has finished.
pub fn run(scenario: &Scenario) -> Outcome {
    let clock = ManualClock::new();
    let mut running: Vec<Running> = scenario
        .processes
        .iter()
        .map(|process| Running {
            process: *process,
            limiter: None,
            to_send: process.lines.unwrap_or(u64::MAX),
            in_flight: 0,
            admitted: 0,
            finished: None,
            admitted_at: VecDeque::new(),
            fair_admitted: 0,
        })
        .collect();
    let mut events: BinaryHeap<Reverse<(Ms, u64, Event)>> = BinaryHeap::new();
    let mut sequence = 0u64;
    let mut server = Server {
        admitted: VecDeque::new(),
    };
    let (latency, most) = scenario.latency;
    let mut jitter = Jitter(scenario.seed, most);
    let (mut requests, mut throttled) = (0u64, 0u64);
    let mut capacity = 0f64;
    let mut reclaim = None;
    // The overlap of the learning processes, for fairness.
    let learners: Vec<usize> = (0..running.len())
        .filter(|&i| running[i].process.learning)
        .collect();
    let overlap_start = learners
        .iter()
        .map(|&i| running[i].process.start)
        .max()
        .unwrap_or(0)
        .max(scenario.fair_from);
    let mut overlap_end: Option<Ms> = None;

    let mut now: Ms = 0;
    while now < scenario.end {
        let limit = scenario.limit_at(now);
        // The answers and arrivals of this millisecond, in order.
        while let Some(Reverse((at, _, _))) = events.peek() {
            if *at > now {
                break;
            }
            let Reverse((_, _, event)) = events.pop().expect("peeked");
            match event {
                Event::Arrives(i) => {
                    requests += 1;
                    let admitted = server.arrive(now, limit);
                    let pause = (!admitted).then_some(1_000);
                    if !admitted {
                        throttled += 1;
                    }
                    let back = now + latency + jitter.next();
                    sequence += 1;
                    events.push(Reverse((back, sequence, Event::Answered(i, pause))));
                }
                Event::Answered(i, pause) => {
                    let run = &mut running[i];
                    run.in_flight -= 1;
                    let limiter = run.limiter.as_ref().expect("started");
                    limiter.answered();
                    match pause {
                        None => {
                            limiter.record_success();
                            run.admitted += 1;
                            run.admitted_at.push_back(now);
                            if now >= overlap_start && overlap_end.is_none_or(|end| now < end) {
                                run.fair_admitted += 1;
                            }
                        }
                        Some(ms) => {
                            limiter.throttled(Duration::from_millis(ms));
                            // Sent again (a process without a line count
                            // has u64::MAX to send).
                            run.to_send = run.to_send.saturating_add(1);
                        }
                    }
                    let done = run.process.lines.is_some_and(|lines| run.admitted >= lines);
                    if done && run.finished.is_none() {
                        run.finished = Some(now);
                    }
                }
            }
        }
        // Who sends in this millisecond, and what the server could admit them.
        let mut asked = 0.0;
        let mut any = false;
        let count = running.len();
        for k in 0..count {
            // Rotated, so that no process is always first.
            let i = (k + now as usize) % count;
            let run = &mut running[i];
            let p = run.process;
            if now < p.start || run.finished.is_some() {
                continue;
            }
            if p.stop.is_some_and(|stop| now >= stop) {
                if run.finished.is_none() {
                    run.finished = Some(p.stop.expect("stops"));
                }
                continue;
            }
            any = true;
            asked += p.rate;
            let limiter = run.limiter.get_or_insert_with(|| {
                SlidingWindow::builder(RateLimit::new(p.rate, 10).expect("a valid rate"))
                    .learning(p.learning)
                    .clock(clock.clone())
                    .build()
                    .expect("valid settings")
            });
            while run.in_flight < WORKERS && run.to_send > 0 && limiter.try_acquire() {
                run.in_flight += 1;
                if run.to_send != u64::MAX {
                    run.to_send -= 1;
                }
                sequence += 1;
                let at = now + latency + jitter.next();
                events.push(Reverse((at, sequence, Event::Arrives(i))));
            }
        }
        if any {
            capacity += f64::from(limit).min(asked) / 1000.0;
        }
        if scenario.each_second && now % 1_000 == 999 {
            print_second(now + 1, capacity, &running);
        }
        // The overlap of the learners ends when the first of them stops.
        if overlap_end.is_none()
            && now > overlap_start
            && learners.iter().any(|&i| running[i].finished.is_some())
        {
            overlap_end = Some(now);
        }
        // Reclaim: what those sending had admitted in the last second.
        if let Some(freed) = scenario.freed_at
            && reclaim.is_none()
            && now >= freed + 1_000
        {
            let mut sum = 0;
            let mut asked = 0.0;
            for run in &mut running {
                while run.admitted_at.front().is_some_and(|&at| at + 1_000 <= now) {
                    run.admitted_at.pop_front();
                }
                if run.finished.is_none() && now >= run.process.start {
                    sum += run.admitted_at.len();
                    asked += run.process.rate;
                }
            }
            if asked > 0.0 && sum as f64 >= 0.9 * f64::from(limit).min(asked) {
                reclaim = Some(now - freed);
            }
        }
        for run in &mut running {
            if run.admitted_at.len() > 4_096 {
                while run.admitted_at.front().is_some_and(|&at| at + 1_000 <= now) {
                    run.admitted_at.pop_front();
                }
            }
        }
        let all_done = running
            .iter()
            .all(|r| r.finished.is_some() && r.in_flight == 0);
        if all_done {
            break;
        }
        now += 1;
        clock.advance(Duration::from_millis(1));
    }
    let admitted: u64 = running.iter().map(|r| r.admitted).sum();
    let fair: Vec<f64> = learners
        .iter()
        .map(|&i| running[i].fair_admitted as f64)
        .collect();
    let fairness = (fair.len() > 1).then(|| jain(&fair));
    let took = running
        .iter()
        .map(|r| r.finished.unwrap_or(now) - r.process.start)
        .collect();
    let rates = running
        .iter()
        .map(|r| r.limiter.as_ref().and_then(|l| l.rate()).unwrap_or(0.0))
        .collect();
    let changes = running
        .iter()
        .map(|r| {
            r.limiter
                .as_ref()
                .map(|l| l.rate_changes())
                .unwrap_or_default()
        })
        .collect();
    Outcome {
        name: scenario.name.clone(),
        utilisation: admitted as f64 / capacity.max(1.0),
        throttled_share: throttled as f64 / requests.max(1) as f64,
        requests,
        throttled,
        fairness,
        reclaim,
        took,
        rates,
        changes,
    }
}

/// One line to stderr at `now`: the capacity so far, then for each process
/// what it had admitted (`x` once it finished) and its rate.
fn print_second(now: Ms, capacity: f64, running: &[Running]) {
    let processes: Vec<String> = running
        .iter()
        .map(|run| {
            let done = if run.finished.is_some() { 'x' } else { ' ' };
            let rate = run.limiter.as_ref().and_then(|l| l.rate()).unwrap_or(0.0);
            format!("{:>5}{done} {rate:>3.0}/s", run.admitted)
        })
        .collect();
    eprintln!(
        "{:>4} s  capacity {capacity:>6.0}  admitted, rate: {}",
        now / 1_000,
        processes.join(" | ")
    );
}

/// Jain's fairness index: 1 when all are equal, 1/n when one has everything.
pub fn jain(shares: &[f64]) -> f64 {
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    if squares == 0.0 {
        return 1.0;
    }
    sum * sum / (shares.len() as f64 * squares)
}

/// Issue 20's scenarios: `(scenario, what it shows)`.
pub fn scenarios() -> Vec<Scenario> {
    let mut all = vec![
        Scenario::new(
            "alone: --rate 100, server 60/s, 900 lines",
            60,
            vec![Process::import(0, 900, 100.0)],
        ),
        Scenario::new(
            "alone for 60 s: --rate 100, server 60/s",
            60,
            vec![Process::sending(0, 60_000, 100.0)],
        ),
        Scenario::new(
            "told right: --rate 100, server 100/s, 1,000 lines",
            100,
            vec![Process::import(0, 1_000, 100.0)],
        ),
        Scenario::new(
            "3 staggered 1.5 s: --rate 80, server 100/s, 900 lines each",
            100,
            (0..3)
                .map(|i| Process::import(i * 1_500, 900, 80.0))
                .collect(),
        ),
        Scenario::new(
            "3 together: --rate 80, server 100/s, 700 lines each",
            100,
            (0..3).map(|_| Process::import(0, 700, 80.0)).collect(),
        ),
        Scenario::new(
            "fixed 50/s neighbour stops at 20 s; 2 learning at 80, server 100/s",
            100,
            vec![
                Process::sending(0, 20_000, 50.0).fixed(),
                Process::sending(0, 40_000, 80.0),
                Process::sending(500, 40_000, 80.0),
            ],
        )
        .freed_at(20_000),
        Scenario::new(
            "server 100/s → 50/s at 15 s → 100/s at 30 s; 3 learning at 80",
            100,
            (0..3)
                .map(|i| Process::sending(i * 300, 45_000, 80.0))
                .collect(),
        )
        .limit_from(15_000, 50)
        .limit_from(30_000, 100)
        .freed_at(30_000),
    ];
    all.push(Scenario::new(
        "10 imports 0.1 s apart: --rate 80, server 100/s, 300 lines each",
        100,
        (0..10)
            .map(|i| Process::import(i * 100, 300, 80.0))
            .collect(),
    ));
    for n in [1u64, 3, 10, 50] {
        all.push(
            Scenario::new(
                format!("{n} learning at 80, 0.1 s apart, server 100/s, 60 s"),
                100,
                (0..n)
                    .map(|i| Process::sending(i * 100, 60_000, 80.0))
                    .collect(),
            )
            .fair_from(30_000),
        );
    }
    all
}
