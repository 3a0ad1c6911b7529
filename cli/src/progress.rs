//! How an import's progress shows: a bar on a terminal, otherwise a line
//! every N lines done — never repeated while the count stalls.

use std::time::Duration;

use cio_ratelimit::{import::Progress, limit::RateChange};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::rate::RateReport;

/// Where progress goes, chosen once at the start.
pub enum ProgressDisplay {
    /// A bar on standard error: percent and ETA by bytes read, and the
    /// counts people care about.
    Bar(Option<ProgressBar>),
    /// A line on standard error each time another `every` lines are done.
    Lines {
        /// Lines between two reports.
        every: u64,
        /// The count that triggers the next report.
        next: u64,
    },
}

impl ProgressDisplay {
    /// A bar when standard error is a terminal, else lines every `every` lines.
    pub fn new(terminal: bool, every: u64) -> ProgressDisplay {
        if terminal {
            ProgressDisplay::Bar(None)
        } else {
            ProgressDisplay::Lines { every, next: every }
        }
    }

    /// Shows a progress report, with the rate in force.
    pub fn update(&mut self, progress: &Progress, rate: &RateReport) {
        match self {
            ProgressDisplay::Bar(bar) => {
                let bar = bar.get_or_insert_with(|| new_bar(progress.total_bytes));
                bar.set_position(progress.bytes_read);
                bar.set_message(counts(progress, rate));
            }
            ProgressDisplay::Lines { every, next } => {
                let done = progress.delivered + progress.dead_lettered;
                if done >= *next {
                    eprintln!("cio-ratelimit: progress: {}", counts(progress, rate));
                    *next = (done / *every + 1) * *every;
                }
            }
        }
    }

    /// Shows a change of the rate as it happens, on a line of its own:
    /// `cio-ratelimit: rate: throttled at 37/s; now 35/s (after 0.8 s)`.
    pub fn rate_changed(&mut self, change: &RateChange) {
        let line = format!(
            "cio-ratelimit: rate: {change} (after {:.1} s)",
            change.at.as_secs_f64()
        );
        match self {
            ProgressDisplay::Bar(Some(bar)) => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    /// Leaves the bar, complete, on the screen.
    pub fn finish(&mut self) {
        if let ProgressDisplay::Bar(Some(bar)) = self {
            bar.finish();
        }
    }
}

fn new_bar(total_bytes: Option<u64>) -> ProgressBar {
    let (bar, template) = match total_bytes {
        Some(total) => (
            ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr()),
            "{spinner} {elapsed_precise} [{bar:30}] {percent:>3}% ETA {eta} {msg}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {elapsed_precise} {msg}",
        ),
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// `11990 sent, 10 dead-lettered, 3 retried, 1 throttled, 95 lines/s, limit 35/s
/// (throttled at 37/s; now 35/s)`.
fn counts(progress: &Progress, rate: &RateReport) -> String {
    let mut counts = format!(
        "{} sent, {} dead-lettered, {} retried, {} throttled, {:.0} lines/s",
        progress.delivered,
        progress.dead_lettered,
        progress.retried,
        progress.throttled,
        progress.lines_per_second()
    );
    if let Some(line) = rate.line() {
        counts.push_str(", limit ");
        counts.push_str(&line);
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(delivered: u64) -> Progress {
        Progress {
            delivered,
            ..Progress::default()
        }
    }

    fn no_rate() -> RateReport {
        RateReport {
            in_force: None,
            changes: Vec::new(),
        }
    }

    #[test]
    fn the_counts_end_with_the_rate_in_force_and_its_last_change() {
        let rate = RateReport {
            in_force: Some(35.0),
            changes: vec![RateChange {
                at: Duration::from_secs(1),
                from: 50.0,
                to: 35.0,
                throttled_at: Some(37.0),
            }],
        };
        let line = counts(&done(10), &rate);
        assert!(
            line.ends_with(", limit 35/s (throttled at 37/s; now 35/s)"),
            "{line}"
        );
        assert!(!counts(&done(10), &no_rate()).contains("limit"));
    }

    #[test]
    fn lines_come_once_per_step_and_not_again_while_stalled() {
        let mut display = ProgressDisplay::new(false, 100);
        let mut reported = Vec::new();
        for delivered in [10, 99, 100, 100, 100, 150, 420, 420, 499, 500] {
            let before = match &display {
                ProgressDisplay::Lines { next, .. } => *next,
                ProgressDisplay::Bar(_) => unreachable!(),
            };
            display.update(&done(delivered), &no_rate());
            if let ProgressDisplay::Lines { next, .. } = &display
                && *next != before
            {
                reported.push(delivered);
            }
        }
        assert_eq!(reported, vec![100, 420, 500]);
    }
}
