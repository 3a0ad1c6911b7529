//! Issue 20's simulator: uncoordinated learning limiters (real
//! `SlidingWindow`s on one `ManualClock`) against a strict sliding-window
//! server, one row per scenario: utilisation, 429 share, Jain's fairness
//! index over the overlap, the time to reclaim freed capacity, and how long
//! each process took. Deterministic; well under a second of real time in
//! all, built with `--release`.
//!
//! The engine and the scenarios are in `tests/simulation/mod.rs`, on which
//! `tests/learning_sim.rs` asserts issue 20's goals.
//!
//! Run: `cargo run --release --example learning_sim [-- SCENARIO-NUMBER...]`
//!
//! - `SIM_TRACE=1` also prints the first three processes' rate changes, as
//!   their progress lines would show them.
//! - `SIM_SECONDS=1` also prints, at the end of each second, what each
//!   process had admitted and its rate (to stderr): where the capacity went.
//! - `SIM_SEEDS=8` runs each scenario with 8 jitter seeds instead and prints
//!   each figure's mean and its worst: one run of a chaotic system is one
//!   sample.
//! - `SIM_LATENCY=50` gives each leg of a request 50 ms (plus a jitter of up
//!   to half that) instead of 10 ms (plus up to 5): the law against a far
//!   server, or (`SIM_LATENCY=1`) one on the same machine, as
//!   `learning_bench`'s processes and their emulator are.

#[path = "../tests/simulation/mod.rs"]
mod simulation;

use simulation::Outcome;

fn main() {
    let only: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let trace = std::env::var_os("SIM_TRACE").is_some();
    let each_second = std::env::var_os("SIM_SECONDS").is_some();
    let seeds: Option<u64> = std::env::var("SIM_SEEDS").ok().and_then(|v| v.parse().ok());
    let latency: Option<u64> = std::env::var("SIM_LATENCY")
        .ok()
        .and_then(|v| v.parse().ok());
    match seeds {
        None => println!("{}", simulation::TABLE_HEAD),
        Some(seeds) => println!(
            "{seeds} seeds; each cell: mean (worst)\n| scenario | utilisation | 429s | Jain | slowest ÷ fastest | reclaim |\n|---|---|---|---|---|---|"
        ),
    }
    for (n, scenario) in simulation::scenarios().into_iter().enumerate() {
        if !only.is_empty() && !only.contains(&n) {
            continue;
        }
        let scenario = match latency {
            Some(ms) => scenario.latency(ms, ms.div_ceil(2)),
            None => scenario,
        };
        if let Some(seeds) = seeds {
            let outcomes = simulation::run_seeds(&scenario, seeds);
            summarise(&scenario.name, scenario.freed_at.is_some(), &outcomes);
            continue;
        }
        let scenario = if each_second {
            scenario.each_second()
        } else {
            scenario
        };
        let outcome = simulation::run(&scenario);
        println!("{outcome}");
        if trace {
            for (i, changes) in outcome.changes.iter().enumerate().take(3) {
                let shown: Vec<String> = changes
                    .iter()
                    .map(|c| format!("{:.1}s {c}", c.at.as_secs_f64()))
                    .collect();
                println!("    {i}: {}", shown.join(", "));
            }
        }
    }
}

/// One line for a scenario run with several seeds: each figure's mean, and
/// its worst over the seeds in brackets.
fn summarise(name: &str, freed: bool, outcomes: &[Outcome]) {
    let mean = |f: &dyn Fn(&Outcome) -> f64| -> f64 {
        outcomes.iter().map(f).sum::<f64>() / outcomes.len() as f64
    };
    let least = |f: &dyn Fn(&Outcome) -> f64| outcomes.iter().map(f).fold(f64::INFINITY, f64::min);
    let most = |f: &dyn Fn(&Outcome) -> f64| outcomes.iter().map(f).fold(0.0, f64::max);
    let utilisation = |o: &Outcome| o.utilisation * 100.0;
    let throttled = |o: &Outcome| o.throttled_share * 100.0;
    let fairness = |o: &Outcome| o.fairness.unwrap_or(1.0);
    let spread = |o: &Outcome| o.spread();
    // Never reclaimed (within the scenario) counts as forever.
    let reclaim = |o: &Outcome| o.reclaim.map_or(f64::INFINITY, |ms| ms as f64 / 1000.0);
    let seconds = |s: f64| {
        if s.is_finite() {
            format!("{s:.1} s")
        } else {
            "never".to_owned()
        }
    };
    let reclaimed = if freed {
        format!("{} ({})", seconds(mean(&reclaim)), seconds(most(&reclaim)))
    } else {
        "-".to_owned()
    };
    println!(
        "| {name} | {:.1} % ({:.1} %) | {:.2} % ({:.2} %) | {:.3} ({:.3}) | {:.2} ({:.2}) | {reclaimed} |",
        mean(&utilisation),
        least(&utilisation),
        mean(&throttled),
        most(&throttled),
        mean(&fairness),
        least(&fairness),
        mean(&spread),
        most(&spread),
    );
}
