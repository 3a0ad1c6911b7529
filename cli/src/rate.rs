//! The rate in force and how it changed, as an import shows them: in the
//! progress, in the summary line and in `--json`.

use std::sync::Arc;

use cio_ratelimit::{Limiter, limit::RateChange};
use serde_json::{Value, json};

/// What a limiter says of its rate at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct RateReport {
    /// The rate in force, in requests per second, if the limiter has one.
    pub in_force: Option<f64>,
    /// Every change, oldest first.
    pub changes: Vec<RateChange>,
}

impl RateReport {
    /// What `limiter` says now.
    pub fn of(limiter: &Arc<dyn Limiter>) -> RateReport {
        RateReport {
            in_force: limiter.rate(),
            changes: limiter.rate_changes(),
        }
    }

    /// `35/s` and, once the rate has changed, `(throttled at 37/s; now 35/s)`.
    pub fn line(&self) -> Option<String> {
        let rate = self.in_force?;
        let mut line = format!("{}/s", shown(rate));
        if let Some(last) = self.changes.last() {
            line.push_str(&format!(" ({last})"));
        }
        Some(line)
    }

    /// `{"in_force": 37.0, "changes": [{"at_seconds", "from", "to", "throttled_at", "text"}]}`.
    pub fn to_json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|change| {
                json!({
                    "at_seconds": change.at.as_secs_f64(),
                    "from": change.from,
                    "to": change.to,
                    "throttled_at": change.throttled_at,
                    "text": change.to_string(),
                })
            })
            .collect();
        json!({"in_force": self.in_force, "changes": changes})
    }
}

/// A rate as people write it: `37`, `35.6`.
fn shown(rate: f64) -> String {
    let text = format!("{rate:.1}");
    text.strip_suffix(".0").map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn report() -> RateReport {
        RateReport {
            in_force: Some(35.0),
            changes: vec![RateChange {
                at: Duration::from_millis(800),
                from: 50.0,
                to: 35.0,
                throttled_at: Some(37.0),
            }],
        }
    }

    #[test]
    fn the_line_shows_the_rate_and_the_last_change() {
        assert_eq!(
            report().line().as_deref(),
            Some("35/s (throttled at 37/s; now 35/s)")
        );
        let steady = RateReport {
            in_force: Some(35.6),
            changes: Vec::new(),
        };
        assert_eq!(steady.line().as_deref(), Some("35.6/s"));
        let none = RateReport {
            in_force: None,
            changes: Vec::new(),
        };
        assert_eq!(none.line(), None);
    }

    #[test]
    fn json_lists_every_change() {
        let json = report().to_json();
        assert_eq!(json["in_force"], 35.0);
        assert_eq!(json["changes"][0]["throttled_at"], 37.0);
        assert_eq!(json["changes"][0]["text"], "throttled at 37/s; now 35/s");
        assert_eq!(json["changes"][0]["at_seconds"], 0.8);
    }
}
