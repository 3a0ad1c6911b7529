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
//! - `SIM_SEEDS=8` runs each scenario with 8 jitter seeds instead and prints
//!   the means, the worst spread and the worst reclaim: one run of a
//!   chaotic system is one sample.

#[path = "../tests/simulation/mod.rs"]
mod simulation;

use simulation::Outcome;

fn main() {
    let only: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|arg| arg.parse().ok())
        .collect();
    let trace = std::env::var_os("SIM_TRACE").is_some();
    let seeds: Option<u64> = std::env::var("SIM_SEEDS").ok().and_then(|v| v.parse().ok());
    if seeds.is_none() {
        println!("{}", simulation::TABLE_HEAD);
    }
    for (n, scenario) in simulation::scenarios().into_iter().enumerate() {
        if !only.is_empty() && !only.contains(&n) {
            continue;
        }
        if let Some(seeds) = seeds {
            let outcomes: Vec<Outcome> = (1..=seeds)
                .map(|seed| simulation::run(&scenario.clone().seeded(seed * 7_919)))
                .collect();
            summarise(&scenario.name, scenario.freed_at.is_some(), &outcomes);
            continue;
        }
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

/// One line for a scenario run with several seeds.
fn summarise(name: &str, freed: bool, outcomes: &[Outcome]) {
    let mean = |f: fn(&Outcome) -> f64| -> f64 {
        outcomes.iter().map(f).sum::<f64>() / outcomes.len() as f64
    };
    let worst_spread = outcomes.iter().map(Outcome::spread).fold(0.0, f64::max);
    // Never reclaimed counts as forever.
    let worst_reclaim = outcomes
        .iter()
        .filter(|_| freed)
        .map(|o| o.reclaim.map_or(f64::INFINITY, |ms| ms as f64 / 1000.0))
        .fold(0.0, f64::max);
    println!(
        "{name}: utilisation {:.1} %, 429s {:.2} %, Jain {:.3}, spread {:.2} (worst {worst_spread:.2}), reclaim worst {worst_reclaim:.1} s",
        mean(|o| o.utilisation * 100.0),
        mean(|o| o.throttled_share * 100.0),
        mean(|o| o.fairness.unwrap_or(1.0)),
        mean(Outcome::spread),
    );
}
