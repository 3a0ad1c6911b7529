//! How an emulator is set up: port, credentials, rate limits, Retry-After style, faults, latency.

use std::fmt;
use std::time::Duration;

use crate::faults::Faults;

/// The Track API site ID an emulator accepts unless [`Config::site_id`] says otherwise.
pub const DEFAULT_SITE_ID: &str = "emulator-site-id";
/// The Track API key an emulator accepts unless [`Config::api_key`] says otherwise.
pub const DEFAULT_API_KEY: &str = "emulator-api-key";
/// The App API key an emulator accepts unless [`Config::app_key`] says otherwise.
pub const DEFAULT_APP_KEY: &str = "emulator-app-key";

/// What the emulator keeps of what it accepted.
///
/// A long soak test or a demo sends millions of records; keeping each one's payload grows
/// without bound (about 1 GB after a 1M-line import). [`Keep::Counts`] keeps the tallies and
/// the sets that decide what is a repeat, and drops the payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Everything: attributes, event data, devices, message bodies. The default, for tests
    /// that look at what arrived.
    #[default]
    All,
    /// Tallies only: people by identifier with their counts and flags (no attributes or
    /// device objects), seen event ids (repeats are still detected) and
    /// [`Snapshot::event_count`](crate::Snapshot::event_count), but an empty
    /// [`Snapshot::events`](crate::Snapshot::events); merge, send and broadcast bodies are
    /// kept as `null`.
    Counts,
}

/// How a `429 Too Many Requests` answer tells the client when to come back.
///
/// Customer.io does not promise a `Retry-After` on every 429, and RFC 9110 allows two
/// forms, so a client must cope with all three; the emulator can produce each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RetryAfterStyle {
    /// `Retry-After: 3`: whole seconds, at least 1, until the window has room again.
    #[default]
    Seconds,
    /// `Retry-After: Sun, 06 Nov 1994 08:49:37 GMT`: the moment the window has room again,
    /// rounded up to the next whole second.
    HttpDate,
    /// No `Retry-After` header at all.
    Absent,
}

/// One rate class's budget: at most `limit` admitted requests in any `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassLimit {
    /// Admitted requests per window; 0 means unlimited.
    pub(crate) limit: u32,
    /// The sliding window's length.
    pub(crate) window: Duration,
}

/// How an [`Emulator`](crate::Emulator) is set up: a consuming builder.
///
/// The defaults follow Customer.io's documented, conservative limits:
///
/// | setting | default |
/// |---|---|
/// | [`port`](Config::port) | 0 (any free port on 127.0.0.1) |
/// | [`site_id`](Config::site_id) / [`api_key`](Config::api_key) | [`DEFAULT_SITE_ID`] / [`DEFAULT_API_KEY`] |
/// | [`app_key`](Config::app_key) | [`DEFAULT_APP_KEY`] |
/// | [`track_limit`](Config::track_limit) | 100 per [`window`](Config::window) (1 s) |
/// | [`transactional_limit`](Config::transactional_limit) | 100 per window (1 s) |
/// | [`app_limit`](Config::app_limit) | 10 per window (1 s) |
/// | [`broadcast_limit`](Config::broadcast_limit) | 1 per [`broadcast_window`](Config::broadcast_window) (10 s) |
/// | [`retry_after`](Config::retry_after) | [`RetryAfterStyle::Seconds`] |
/// | [`faults`](Config::faults) | none |
/// | [`latency`](Config::latency) | none |
///
/// A limit of 0 means unlimited. `Debug` never shows the keys.
///
/// ```
/// use std::time::Duration;
/// use cio_emulator::{Config, Faults, RetryAfterStyle};
///
/// let config = Config::default()
///     .track_limit(1000)
///     .window(Duration::from_millis(500))
///     .retry_after(RetryAfterStyle::HttpDate)
///     .faults(Faults::default().seed(7).drop_connection(0.1));
/// # let _ = config;
/// ```
#[derive(Clone)]
pub struct Config {
    pub(crate) port: u16,
    pub(crate) site_id: String,
    pub(crate) api_key: String,
    pub(crate) app_key: String,
    pub(crate) track: ClassLimit,
    pub(crate) transactional: ClassLimit,
    pub(crate) app: ClassLimit,
    pub(crate) broadcast: ClassLimit,
    pub(crate) retry_after: RetryAfterStyle,
    pub(crate) faults: Faults,
    pub(crate) latency: Duration,
    pub(crate) keep: Keep,
}

impl Default for Config {
    fn default() -> Self {
        let second = Duration::from_secs(1);
        Config {
            port: 0,
            site_id: DEFAULT_SITE_ID.to_owned(),
            api_key: DEFAULT_API_KEY.to_owned(),
            app_key: DEFAULT_APP_KEY.to_owned(),
            track: ClassLimit {
                limit: 100,
                window: second,
            },
            transactional: ClassLimit {
                limit: 100,
                window: second,
            },
            app: ClassLimit {
                limit: 10,
                window: second,
            },
            broadcast: ClassLimit {
                limit: 1,
                window: Duration::from_secs(10),
            },
            retry_after: RetryAfterStyle::Seconds,
            faults: Faults::default(),
            latency: Duration::ZERO,
            keep: Keep::All,
        }
    }
}

impl Config {
    /// The port to listen on, on 127.0.0.1. 0 (the default) picks any free port;
    /// [`Emulator::url`](crate::Emulator::url) tells which.
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// The Track API site ID (the user name of HTTP Basic auth).
    pub fn site_id(mut self, site_id: impl Into<String>) -> Self {
        self.site_id = site_id.into();
        self
    }

    /// The Track API key (the password of HTTP Basic auth).
    pub fn api_key(mut self, api_key: impl Into<String>) -> Self {
        self.api_key = api_key.into();
        self
    }

    /// The App API key (`Authorization: Bearer <app_key>`).
    pub fn app_key(mut self, app_key: impl Into<String>) -> Self {
        self.app_key = app_key.into();
        self
    }

    /// Track API requests (v1 and v2) admitted per [`window`](Config::window); 0 means unlimited.
    pub fn track_limit(mut self, limit: u32) -> Self {
        self.track.limit = limit;
        self
    }

    /// Transactional sends (`/v1/send/*`) admitted per [`window`](Config::window); 0 means unlimited.
    pub fn transactional_limit(mut self, limit: u32) -> Self {
        self.transactional.limit = limit;
        self
    }

    /// Other App API calls admitted per [`window`](Config::window); 0 means unlimited.
    pub fn app_limit(mut self, limit: u32) -> Self {
        self.app.limit = limit;
        self
    }

    /// Broadcast triggers (`POST /v1/campaigns/{id}/triggers`) admitted per
    /// [`broadcast_window`](Config::broadcast_window); 0 means unlimited.
    pub fn broadcast_limit(mut self, limit: u32) -> Self {
        self.broadcast.limit = limit;
        self
    }

    /// The sliding window of broadcast triggers (default 10 s).
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    pub fn broadcast_window(mut self, window: Duration) -> Self {
        self.broadcast.window = nonzero_window("broadcast_window", window);
        self
    }

    /// The sliding window of the Track, transactional and other App API classes (default 1 s).
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    pub fn window(mut self, window: Duration) -> Self {
        let window = nonzero_window("window", window);
        self.track.window = window;
        self.transactional.window = window;
        self.app.window = window;
        self
    }

    /// How 429 answers carry `Retry-After`.
    pub fn retry_after(mut self, style: RetryAfterStyle) -> Self {
        self.retry_after = style;
        self
    }

    /// The faults to inject from the start; [`Emulator::set_faults`](crate::Emulator::set_faults)
    /// replaces them at run time.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// A fixed extra delay before every Customer.io API request is handled (not admin routes).
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// What to keep of what was accepted; default [`Keep::All`].
    pub fn keep(mut self, keep: Keep) -> Self {
        self.keep = keep;
        self
    }
}

fn nonzero_window(setting: &str, window: Duration) -> Duration {
    assert!(
        !window.is_zero(),
        "Config::{setting}: a rate window must be longer than zero"
    );
    window
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("port", &self.port)
            .field("site_id", &self.site_id)
            .field("api_key", &"<redacted>")
            .field("app_key", &"<redacted>")
            .field("track", &self.track)
            .field("transactional", &self.transactional)
            .field("app", &self.app)
            .field("broadcast", &self.broadcast)
            .field("retry_after", &self.retry_after)
            .field("faults", &self.faults)
            .field("latency", &self.latency)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_customerio_documented_limits() {
        let config = Config::default();
        assert_eq!(config.track.limit, 100);
        assert_eq!(config.transactional.limit, 100);
        assert_eq!(config.app.limit, 10);
        assert_eq!(config.broadcast.limit, 1);
        assert_eq!(config.broadcast.window, Duration::from_secs(10));
        assert_eq!(config.track.window, Duration::from_secs(1));
        assert_eq!(config.site_id, DEFAULT_SITE_ID);
    }

    #[test]
    fn window_sets_the_three_per_second_classes_but_not_broadcasts() {
        let config = Config::default().window(Duration::from_millis(250));
        assert_eq!(config.track.window, Duration::from_millis(250));
        assert_eq!(config.transactional.window, Duration::from_millis(250));
        assert_eq!(config.app.window, Duration::from_millis(250));
        assert_eq!(config.broadcast.window, Duration::from_secs(10));
    }

    #[test]
    #[should_panic(expected = "longer than zero")]
    fn zero_window_is_refused() {
        let _ = Config::default().window(Duration::ZERO);
    }

    #[test]
    fn debug_hides_keys() {
        let text = format!("{:?}", Config::default().api_key("s3cret").app_key("t0ken"));
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken"),
            "{text}"
        );
    }
}
