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
/// The Pipelines API key (a source's write key) an emulator accepts unless
/// [`Config::pipelines_key`] says otherwise.
pub const DEFAULT_PIPELINES_KEY: &str = "emulator-pipelines-key";

/// A Customer.io data center, for the wrong-datacenter mode
/// ([`Config::wrong_datacenter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Datacenter {
    /// The United States: `track.customer.io`, `api.customer.io`.
    Us,
    /// The European Union: `track-eu.customer.io`, `api-eu.customer.io`.
    Eu,
}

impl Datacenter {
    /// The base URL of the Track API (`track`) or the App API in this data center.
    pub(crate) fn base_url(self, track: bool) -> &'static str {
        match (self, track) {
            (Datacenter::Us, true) => "https://track.customer.io",
            (Datacenter::Us, false) => "https://api.customer.io",
            (Datacenter::Eu, true) => "https://track-eu.customer.io",
            (Datacenter::Eu, false) => "https://api-eu.customer.io",
        }
    }
}

/// What the emulator keeps of what it accepted.
///
/// A long soak test or a demo sends millions of records; keeping each one's payload grows
/// without bound (about 1 GiB after a 1M-line import). [`Keep::Counts`] keeps the tallies and
/// the sets that decide what is a repeat, and drops the payloads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Keep {
    /// Everything: attributes, event data, devices, message bodies, Pipelines calls. The
    /// default, for tests that look at what arrived.
    #[default]
    All,
    /// Tallies only: people and objects by identifier with their counts and flags (no
    /// attributes or device objects, so App API lookups by email find a person only under
    /// the identifier they were recorded with), seen event and message ids (repeats are still
    /// detected), [`Snapshot::event_count`](crate::Snapshot::event_count) and
    /// [`Snapshot::pipelines_count`](crate::Snapshot::pipelines_count), but empty
    /// [`Snapshot::events`](crate::Snapshot::events) and
    /// [`Snapshot::pipelines`](crate::Snapshot::pipelines); merge, send and broadcast bodies
    /// are kept as `null`.
    Counts,
}

/// How a `429 Too Many Requests` answer tells the client when to come back.
///
/// Customer.io does not promise a `Retry-After` on every 429, and RFC 9110 allows two
/// forms, so a client must cope with all three; the emulator can produce each, and two
/// unhelpful answers a client must survive too: a zero and a date already past.
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
    /// `Retry-After: 0`, whatever the wait: a server that asks for no pause
    /// while it throttles.
    Zero,
    /// An HTTP-date a minute in the past: a server whose clock is behind.
    PastDate,
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
/// | [`pipelines_key`](Config::pipelines_key) | [`DEFAULT_PIPELINES_KEY`] |
/// | [`track_limit`](Config::track_limit) | 100 per [`window`](Config::window) (1 s) |
/// | [`transactional_limit`](Config::transactional_limit) | 100 per window (1 s) |
/// | [`app_limit`](Config::app_limit) | 10 per window (1 s) |
/// | [`pipelines_limit`](Config::pipelines_limit) | 100 per window (1 s) |
/// | [`broadcast_limit`](Config::broadcast_limit) | 1 per [`broadcast_window`](Config::broadcast_window) (10 s) |
/// | [`retry_after`](Config::retry_after) | [`RetryAfterStyle::Seconds`] |
/// | [`faults`](Config::faults) | none |
/// | [`latency`](Config::latency) | none |
/// | [`wrong_datacenter`](Config::wrong_datacenter) | off |
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
    pub(crate) pipelines_key: String,
    pub(crate) track: ClassLimit,
    pub(crate) transactional: ClassLimit,
    pub(crate) app: ClassLimit,
    pub(crate) broadcast: ClassLimit,
    pub(crate) pipelines: ClassLimit,
    pub(crate) retry_after: RetryAfterStyle,
    pub(crate) faults: Faults,
    pub(crate) latency: Duration,
    pub(crate) wrong_datacenter: Option<Datacenter>,
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
            pipelines_key: DEFAULT_PIPELINES_KEY.to_owned(),
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
            // Customer.io publishes no request rate for the Pipelines API; the
            // emulator keeps the Track API's.
            pipelines: ClassLimit {
                limit: 100,
                window: second,
            },
            retry_after: RetryAfterStyle::Seconds,
            faults: Faults::default(),
            latency: Duration::ZERO,
            wrong_datacenter: None,
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

    /// The Pipelines API key: the user name of HTTP Basic auth, with a blank password.
    pub fn pipelines_key(mut self, pipelines_key: impl Into<String>) -> Self {
        self.pipelines_key = pipelines_key.into();
        self
    }

    /// Pipelines API requests (`/v1/identify`, ..., `/v1/batch`) admitted per
    /// [`window`](Config::window); 0 means unlimited.
    pub fn pipelines_limit(mut self, limit: u32) -> Self {
        self.pipelines.limit = limit;
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

    /// The sliding window of the Track, transactional, other App API and Pipelines classes
    /// (default 1 s).
    ///
    /// # Panics
    ///
    /// If `window` is zero.
    pub fn window(mut self, window: Duration) -> Self {
        let window = nonzero_window("window", window);
        self.track.window = window;
        self.transactional.window = window;
        self.app.window = window;
        self.pipelines.window = window;
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

    /// Plays a workspace that lives in `home`, asked in the wrong data center: every Track and
    /// App API request is answered `301 Moved Permanently`, `wrong datacenter`, with a
    /// `Location` in `home`, as Customer.io answers a client configured for the other region.
    /// Nothing is recorded.
    pub fn wrong_datacenter(mut self, home: Datacenter) -> Self {
        self.wrong_datacenter = Some(home);
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
            .field("pipelines_key", &"<redacted>")
            .field("track", &self.track)
            .field("transactional", &self.transactional)
            .field("app", &self.app)
            .field("broadcast", &self.broadcast)
            .field("pipelines", &self.pipelines)
            .field("retry_after", &self.retry_after)
            .field("faults", &self.faults)
            .field("latency", &self.latency)
            .field("wrong_datacenter", &self.wrong_datacenter)
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
        assert_eq!(config.pipelines.window, Duration::from_millis(250));
        assert_eq!(config.broadcast.window, Duration::from_secs(10));
    }

    #[test]
    #[should_panic(expected = "longer than zero")]
    fn zero_window_is_refused() {
        let _ = Config::default().window(Duration::ZERO);
    }

    #[test]
    fn debug_hides_keys() {
        let config = Config::default()
            .api_key("s3cret")
            .app_key("t0ken")
            .pipelines_key("wr1te");
        let text = format!("{config:?}");
        assert!(
            !text.contains("s3cret") && !text.contains("t0ken") && !text.contains("wr1te"),
            "{text}"
        );
    }
}
