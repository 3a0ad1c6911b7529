//! Shared-settings negotiation: every process records the rate, burst and
//! window it uses beside the shared state and holds a lease on them; one
//! whose settings differ is refused, or adopts the others'.

use std::time::{Duration, Instant};

use crate::error::Error;
use crate::limit::clock::Clock;
use crate::limit::learning::{Course, Law};
use crate::limit::rate_limit::RateLimit;

use super::limiter::{RedisLimiter, Schedule, Shared};

/// How often a process renews its lease on the shared settings while it
/// uses the key.
pub(super) const SETTINGS_REFRESH: Duration = Duration::from_secs(10);

/// How long a lease on the shared settings lasts unless renewed: how long
/// they outlive a process that died without giving its lease back.
const LEASE: Duration = Duration::from_secs(30);

pub(super) struct Settings {
    /// When this process records its settings again; `None`: before its
    /// first contact with Redis.
    pub(super) next: Option<Instant>,
    /// The other settings recorded at the key, when they were refused.
    pub(super) refused: Option<String>,
}

/// The settings as recorded in Redis, e.g. `rate=80/s burst=10 window=1s`:
/// exact, so that equal settings compare equal, and readable in `redis-cli`.
pub(super) fn settings_text(limit: RateLimit, law: &Law) -> String {
    format!(
        "rate={}/s burst={} window={}s",
        limit.per_second(),
        limit.burst(),
        Duration::from_nanos(law.window).as_secs_f64()
    )
}

/// Reads [`settings_text`] back: the limit, and the window if it says one
/// (text recorded before the window was, `rate=80/s burst=10`, does not).
fn parse_settings(text: &str) -> Option<(RateLimit, Option<Duration>)> {
    let (rate, rest) = text.strip_prefix("rate=")?.split_once("/s burst=")?;
    let (burst, window) = match rest.split_once(" window=") {
        Some((burst, window)) => {
            let seconds: f64 = window.strip_suffix('s')?.parse().ok()?;
            (burst, Some(Duration::try_from_secs_f64(seconds).ok()?))
        }
        None => (rest, None),
    };
    let limit = RateLimit::new(rate.parse().ok()?, burst.parse().ok()?).ok()?;
    Some((limit, window))
}

impl RedisLimiter {
    /// Records this process's settings when due (or `now`), adopting or
    /// refusing others'. `Err` if Redis failed (already logged).
    pub(super) fn register(&self, now: bool) -> std::result::Result<(), ()> {
        let shared = &self.shared;
        let due = shared.clock.now();
        if !now && shared.settings.lock().next.is_some_and(|next| due < next) {
            return Ok(());
        }
        let schedule = *shared.schedule.read();
        let ours = settings_text(schedule.limit, &schedule.law);
        let (key, sharers) = settings_keys(&shared.key);
        let recorded = shared
            .link
            .register(&key, &sharers, &shared.sharer, &ours, LEASE)?;
        let mut settings = shared.settings.lock();
        settings.next = Some(due + SETTINGS_REFRESH);
        settings.refused = None;
        if recorded == ours {
            return Ok(());
        }
        let theirs = parse_settings(&recorded).and_then(|(limit, window)| {
            let law = Law::new(limit, window, None, shared.probe_after, shared.learning);
            Some((limit, law.ok()?))
        });
        match theirs {
            // The same settings, as a process recorded them before the
            // window was part of the text.
            Some((limit, law)) if limit == schedule.limit && law.window == schedule.law.window => {}
            Some((limit, law)) if shared.adopt => {
                log::warn!(
                    "Redis key {} is shared at {recorded}; adopting it instead of {ours}",
                    shared.key
                );
                *shared.schedule.write() = Schedule::new(limit, law);
                let mut following = shared.following.lock();
                (following.generation, following.course) = (0, Course::new(&law));
                // Record them as ours at once, keeping them alive.
                settings.next = None;
            }
            _ => settings.refused = Some(recorded),
        }
        Ok(())
    }

    /// The error a refused process fails with.
    pub(super) fn refusal(&self) -> Option<Error> {
        let shared = &self.shared;
        let refused = shared.settings.lock().refused.clone()?;
        Some(Error::SharedSettingsMismatch {
            key: shared.key.clone(),
            shared: refused,
            ours: self.settings(),
        })
    }
}

/// The keys of the settings and of the leases on them, beside `key`.
fn settings_keys(key: &str) -> (String, String) {
    (format!("{key}:settings"), format!("{key}:sharers"))
}

impl Drop for Shared {
    /// The last clone gives the lease on the shared settings back: once
    /// every sharer has, another rate may use the key at once.
    fn drop(&mut self) {
        let settings = self.settings.get_mut();
        if settings.next.is_none() || settings.refused.is_some() || self.link.is_down() {
            return;
        }
        let (key, sharers) = settings_keys(&self.key);
        self.link.release(&key, &sharers, &self.sharer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn law(limit: RateLimit) -> Law {
        Law::new(limit, None, None, Duration::from_secs(20), true).unwrap()
    }

    #[test]
    fn settings_read_back_with_or_without_the_window() {
        let limit = RateLimit::new(80.0, 10).unwrap();
        let text = settings_text(limit, &law(limit));
        assert_eq!(text, "rate=80/s burst=10 window=1s");
        assert_eq!(
            parse_settings(&text),
            Some((limit, Some(Duration::from_secs(1))))
        );
        assert_eq!(parse_settings("rate=80/s burst=10"), Some((limit, None)));
        let slow = RateLimit::new(0.4, 1).unwrap();
        let text = settings_text(slow, &law(slow));
        assert_eq!(text, "rate=0.4/s burst=1 window=2.5s");
        assert_eq!(
            parse_settings(&text),
            Some((slow, Some(Duration::from_millis(2_500))))
        );
        for garbage in [
            "",
            "rate=80/s",
            "rate=x/s burst=10",
            "rate=80/s burst=10 window=1",
            "rate=80/s burst=10 window=-1s",
            "rate=80/s burst=0",
        ] {
            assert_eq!(parse_settings(garbage), None, "{garbage:?}");
        }
    }
}
