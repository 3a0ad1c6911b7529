//! Issue 20's goals, asserted on the simulator in `tests/simulation/`:
//! uncoordinated learning `SlidingWindow`s against a strict sliding-window
//! server, on a manual clock (each scenario runs in well under a second).
//! `examples/learning_sim.rs` prints the same scenarios as a table.
//!
//! Goals the law does not reach yet are kept as ignored tests that say the
//! figure measured, so that the gap stays in view; a regression test beside
//! each holds what it reaches today.

mod simulation;

use simulation::{Outcome, Scenario, run, run_seeds, scenarios};

/// The scenario whose name starts with `prefix`.
fn scenario(prefix: &str) -> Scenario {
    scenarios()
        .into_iter()
        .find(|s| s.name.starts_with(prefix))
        .unwrap_or_else(|| panic!("no scenario {prefix:?}"))
}

/// The scenario whose name starts with `prefix`, run.
fn outcome(prefix: &str) -> Outcome {
    run(&scenario(prefix))
}

/// The scenario whose name starts with `prefix`, run with the jitter seeds
/// `SIM_SEEDS=8` uses: one run of a chaotic system is one sample.
fn outcomes(prefix: &str) -> Vec<Outcome> {
    run_seeds(&scenario(prefix), 8)
}

/// The mean utilisation of `outcomes`, and the rows, for a failure message.
fn mean_utilisation(outcomes: &[Outcome]) -> (f64, String) {
    let mean = outcomes.iter().map(|o| o.utilisation).sum::<f64>() / outcomes.len() as f64;
    let rows: Vec<String> = outcomes.iter().map(ToString::to_string).collect();
    (mean, rows.join("\n"))
}

#[test]
fn told_the_right_number_it_meets_no_429() {
    let told = outcome("told right");
    assert_eq!(told.throttled, 0, "{told}");
    assert!(told.utilisation >= 0.97, "{told}");
}

#[test]
fn slow_answers_leave_the_workers_too_few_for_the_rate() {
    // 10 workers, each request 2 × (50 ms + up to 25 ms) in flight: about
    // 80 requests a second at most (Little's law), whatever the limiter
    // allows. The simulator honours the latency it is given.
    let slow = run(&scenario("told right").latency(50, 25));
    assert_eq!(slow.throttled, 0, "{slow}");
    assert!(slow.utilisation < 0.85, "{slow}");
    assert!(slow.utilisation > 0.7, "{slow}");
}

#[test]
fn throttled_alone_it_takes_at_most_1_1_times_the_ideal() {
    // 900 lines at 60/s, plus the first 429's pause of 1 s: 16 s.
    let alone = outcome("alone");
    let took = alone.took[0] as f64 / 1000.0;
    assert!(took <= 16.0 * 1.10, "{took} s: {alone}");
    // One 429 in the first window, one that measures; no probe failed.
    let changes = &alone.changes[0];
    assert!(
        changes[0]
            .to_string()
            .starts_with("throttled at 60/s; now 70/s"),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.to_string() == "throttled at 60/s; now 59/s"),
        "{changes:?}"
    );
}

#[test]
fn three_staggered_imports_finish_together_with_few_429s() {
    let staggered = outcome("3 staggered");
    assert!(staggered.spread() <= 1.6, "{staggered}");
    assert!(staggered.throttled_share <= 0.02, "{staggered}");
    // What it reaches today (81 %; the law before issue 20: 79 %, 1.73 ×;
    // the one before this: 78 %).
    assert!(staggered.utilisation >= 0.80, "{staggered}");
}

#[test]
#[ignore = "issue 20's goal, not reached: 81.4 % of capacity measured, the mean over 8 seeds (80.3 % worst)"]
fn three_staggered_imports_use_87_percent_of_capacity() {
    let (mean, rows) = mean_utilisation(&outcomes("3 staggered"));
    assert!(mean >= 0.87, "mean {:.1} %:\n{rows}", mean * 100.0);
}

#[test]
fn three_imports_started_together_share_evenly() {
    let together = outcome("3 together");
    assert!(together.spread() <= 1.3, "{together}");
    assert!(together.fairness.unwrap() >= 0.95, "{together}");
    assert!(together.utilisation >= 0.86, "{together}");
}

#[test]
fn three_imports_started_together_use_90_percent_of_capacity() {
    // Issue 20's goal, on the mean over 8 seeds (90.7 %; 89.4 % at worst).
    let (mean, rows) = mean_utilisation(&outcomes("3 together"));
    assert!(mean >= 0.90, "mean {:.1} %:\n{rows}", mean * 100.0);
}

#[test]
fn capacity_a_neighbour_frees_is_taken_back_within_10_s() {
    // One seed: 6.6 s. Over 24 seeds (`SIM_SEEDS=24`): 8.2 s mean, 8.7 s
    // at worst. Only at this latency (10 ms a leg): there the survivors'
    // last 429 reads as congestion (26 of 27/s) and they regrow at once;
    // with 1–3 ms (`SIM_LATENCY=1`) it reads as the server's rate (26 of
    // 28/s), they hold it 12 s, and take it back in 13.4–13.7 s.
    let freed = outcome("fixed 50/s neighbour stops");
    let reclaim = freed.reclaim.expect("taken back");
    assert!(reclaim <= 10_000, "{freed}");
    // The fixed-rate neighbour never learned anything.
    assert!(freed.changes[0].is_empty());
    assert_eq!(freed.rates[0], 50.0);
}

#[test]
fn when_the_server_s_limit_changes_they_follow_it_down_and_up_again() {
    let changed = outcome("server 100/s → 50/s");
    assert!(changed.fairness.unwrap() >= 0.9, "{changed}");
    assert!(changed.throttled_share <= 0.02, "{changed}");
    // Down to about a third of 50 each by 30 s, then probing back up.
    let total: f64 = changed.rates.iter().sum();
    assert!(total > 60.0, "{:?}: {changed}", changed.rates);
}

#[test]
fn ten_processes_converge_to_fair_shares() {
    // One seed: 0.979. Over 24 seeds: 0.93 mean, 0.78 worst; with 1–3 ms
    // a leg (`SIM_LATENCY=1`), 0.86–0.88 mean.
    let ten = outcome("10 learning");
    assert!(ten.fairness.unwrap() >= 0.9, "{ten}");
    assert!(ten.utilisation >= 0.8, "{ten}");
}

#[test]
fn rate_changes_show_as_progress_lines_do() {
    let three = outcome("3 learning");
    for changes in &three.changes {
        assert!(!changes.is_empty());
        for change in changes {
            let shown = change.to_string();
            let throttled = shown.starts_with("throttled at ") && shown.contains("/s; now ");
            let probing = shown.starts_with("probing: now ");
            assert!(throttled || probing, "{shown}");
            assert!(shown.ends_with("/s"), "{shown}");
        }
    }
}

#[test]
fn the_simulation_is_deterministic() {
    let (a, b) = (outcome("3 staggered"), outcome("3 staggered"));
    assert_eq!(
        (a.took, a.requests, a.throttled),
        (b.took, b.requests, b.throttled)
    );
}
