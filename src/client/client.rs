//! `Client`: the blocking Customer.io client, and how to build one.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::client::base_url;
use crate::client::credentials::Secret;
use crate::error::{Error, Result};
use crate::limit::api_class::ApiClass;
use crate::limit::limiter::Limiter;
use crate::limit::rate_limit::RateLimit;
use crate::limit::sliding_window::SlidingWindow;
use crate::region::Region;
use crate::retry::attempt_gate::AttemptGate;
use crate::retry::policy::RetryPolicy;

/// A blocking Customer.io client for the Track, App and Pipelines APIs, rate
/// limited and retried.
///
/// Every call waits for a permit from its API class's limiter before every
/// attempt, retries included, and retries as its [`RetryPolicy`] says: a 429
/// pauses every caller that shares the limiter; 5xx, timeouts and resets back
/// off with jitter; calls that are not safe to repeat are not repeated.
///
/// ```no_run
/// use cio_ratelimit::{Client, Event, Region};
/// use serde_json::json;
///
/// let client = Client::builder("site-id", "track-api-key").region(Region::Eu).build()?;
/// client.identify("42", json!({"email": "ada@example.com", "plan": "pro"}))?;
/// client.track("42", &Event::new("upgraded").data(json!({"to": "pro"}))?)?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// # Threads and cloning
///
/// `Client` is `Send + Sync` and cheap to clone: clones share one HTTP
/// connection pool, the limiters, and the retry policy. Hand a clone to each
/// thread. What each call cost in retries and 429s is counted per call
/// ([`RetryStats::during`](crate::retry::RetryStats::during)), so two jobs sharing a
/// client each see only their own.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Clone)]
pub(crate) struct Inner {
    pub(crate) agent: ureq::Agent,
    pub(crate) site_id: Option<String>,
    pub(crate) track_auth: Option<Secret>,
    pub(crate) app_auth: Option<Secret>,
    pub(crate) pipelines_auth: Option<Secret>,
    pub(crate) region: Region,
    pub(crate) track_url: String,
    pub(crate) app_url: String,
    pub(crate) pipelines_url: String,
    pub(crate) limiters: [Arc<dyn Limiter>; 5],
    pub(crate) retry: RetryPolicy,
}

impl Client {
    /// Starts building a client for the workspace with this site id and
    /// Track API key. Add [`app_key`](ClientBuilder::app_key) for App API
    /// calls.
    pub fn builder(site_id: impl Into<String>, api_key: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new().track_credentials(site_id, api_key)
    }

    /// Starts building a client with no credentials yet: give it those of the
    /// APIs it calls, e.g. only an [`app_key`](ClientBuilder::app_key) for a
    /// program that sends transactional messages, or only a
    /// [`pipelines_key`](ClientBuilder::pipelines_key) for Pipelines calls.
    /// A call to an API whose credentials the client lacks fails with
    /// [`Error::MissingCredential`] before anything is sent.
    ///
    /// ```
    /// use cio_ratelimit::{Client, Error, Event};
    /// use cio_ratelimit::error::Credential;
    ///
    /// let client = Client::builder_without_credentials().app_key("app-api-key").build()?;
    /// let track = client.track("42", &Event::new("signed_up"));
    /// assert!(matches!(track, Err(Error::MissingCredential(Credential::TrackApiKey))));
    /// # Ok::<(), Error>(())
    /// ```
    pub fn builder_without_credentials() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// The limiter calls of this API class wait on.
    pub fn limiter(&self, class: ApiClass) -> &Arc<dyn Limiter> {
        &self.inner.limiters[class.index()]
    }

    /// The retry policy.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// This client (its connections, limiters, retry budget and counters),
    /// but its calls are not retried once `stop` is set: see
    /// [`RetryPolicy::stopping_when`].
    pub(crate) fn stopping_when(&self, stop: Arc<AtomicBool>) -> Client {
        let mut inner = Inner::clone(&self.inner);
        inner.retry = inner.retry.stopping_when(stop);
        Client {
            inner: Arc::new(inner),
        }
    }

    /// This client, but each attempt waits for a place in `gate` first and
    /// holds it until answered: see [`RetryPolicy::gated_by`].
    pub(crate) fn gated_by(&self, gate: Arc<AttemptGate>) -> Client {
        let mut inner = Inner::clone(&self.inner);
        inner.retry = inner.retry.gated_by(gate);
        Client {
            inner: Arc::new(inner),
        }
    }

    /// The region the client was built for.
    pub fn region(&self) -> Region {
        self.inner.region
    }

    /// The Track API base URL requests go to.
    pub fn track_url(&self) -> &str {
        &self.inner.track_url
    }

    /// The App API base URL requests go to.
    pub fn app_url(&self) -> &str {
        &self.inner.app_url
    }

    /// The Pipelines API base URL requests go to (calls go to `/v1/...` under it).
    pub fn pipelines_url(&self) -> &str {
        &self.inner.pipelines_url
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.inner;
        f.debug_struct("Client")
            .field("site_id", &inner.site_id)
            .field("api_key", &inner.track_auth.as_ref().map(|_| "<redacted>"))
            .field("app_key", &inner.app_auth.as_ref().map(|_| "<redacted>"))
            .field(
                "pipelines_key",
                &inner.pipelines_auth.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &inner.region)
            .field("track_url", &inner.track_url)
            .field("app_url", &inner.app_url)
            .field("pipelines_url", &inner.pipelines_url)
            .field("limiters", &inner.limiters)
            .field("retry", &inner.retry)
            .finish()
    }
}

/// Builds a [`Client`]; [`build`](ClientBuilder::build) checks everything.
///
/// Defaults: region US, 10 s connect and overall timeouts, one learning
/// [`SlidingWindow`] per [`ApiClass`] with its preset limit as the ceiling,
/// and [`RetryPolicy::default`].
///
/// # Learning the workspace's limit
///
/// Customer.io publishes no fixed limit and a workspace shares its budget
/// with its other integrations, so by default each class's limiter takes its
/// rate from the server's 429s, never above the configured one (see
/// [`SlidingWindow`]). [`learning(false)`](ClientBuilder::learning) keeps
/// every rate exactly as configured:
///
/// ```
/// use cio_ratelimit::{ApiClass, Client, RateLimit};
///
/// let client = Client::builder("site-id", "track-api-key")
///     .rate_limit(ApiClass::Track, RateLimit::new(100.0, 10)?) // 100 in any 1 s
///     .learning(false)
///     .build()?;
/// assert_eq!(client.limiter(ApiClass::Track).rate(), Some(100.0));
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
pub struct ClientBuilder {
    track: Option<(String, String)>,
    app_key: Option<String>,
    pipelines_key: Option<String>,
    region: Region,
    track_url: Option<String>,
    app_url: Option<String>,
    pipelines_url: Option<String>,
    allow_http: bool,
    connect_timeout: Duration,
    timeout: Duration,
    max_idle_connections: usize,
    limiters: [Option<Choice>; 5],
    learning: bool,
    retry: Option<RetryPolicy>,
}

/// A class's limiter as given to the builder: ready, or a limit to build one
/// from when the builder knows whether to learn.
enum Choice {
    Limiter(Arc<dyn Limiter>),
    Limit(RateLimit),
}

impl Default for ClientBuilder {
    fn default() -> ClientBuilder {
        ClientBuilder::new()
    }
}

impl ClientBuilder {
    /// A builder with no credentials and the defaults above; the same as
    /// [`Client::builder_without_credentials`].
    pub fn new() -> ClientBuilder {
        ClientBuilder {
            track: None,
            app_key: None,
            pipelines_key: None,
            region: Region::Us,
            track_url: None,
            app_url: None,
            pipelines_url: None,
            allow_http: false,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(10),
            max_idle_connections: 32,
            limiters: [None, None, None, None, None],
            learning: true,
            retry: None,
        }
    }

    /// The workspace's site id and Track API key, needed for Track API calls.
    pub fn track_credentials(
        mut self,
        site_id: impl Into<String>,
        api_key: impl Into<String>,
    ) -> Self {
        self.track = Some((site_id.into(), api_key.into()));
        self
    }

    /// The App API key, needed for transactional sends and broadcasts.
    pub fn app_key(mut self, app_key: impl Into<String>) -> Self {
        self.app_key = Some(app_key.into());
        self
    }

    /// The Pipelines API key: the write key of a Customer.io API source
    /// (Data Pipelines), needed for Pipelines calls. It is sent as the user
    /// name of HTTP Basic auth with a blank password.
    pub fn pipelines_key(mut self, key: impl Into<String>) -> Self {
        self.pipelines_key = Some(key.into());
        self
    }

    /// The workspace's region; default [`Region::Us`].
    pub fn region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// Sends Track API calls to this base URL instead of the region's, e.g.
    /// a `cio-emulator` or a proxy.
    pub fn track_url(mut self, url: impl Into<String>) -> Self {
        self.track_url = Some(url.into());
        self
    }

    /// Sends App API calls to this base URL instead of the region's.
    pub fn app_url(mut self, url: impl Into<String>) -> Self {
        self.app_url = Some(url.into());
        self
    }

    /// Sends Pipelines API calls to this base URL instead of the region's;
    /// calls go to `/v1/...` under it.
    pub fn pipelines_url(mut self, url: impl Into<String>) -> Self {
        self.pipelines_url = Some(url.into());
        self
    }

    /// Sends every API to one base URL, as a `cio-emulator` serves them.
    pub fn base_url(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.track_url(url.clone())
            .app_url(url.clone())
            .pipelines_url(url)
    }

    /// Allows plain `http://` URLs to hosts other than loopback. Off by
    /// default: keys would cross the network in clear.
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// How long connecting may take; default 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long one attempt may take in all, connecting to reading the
    /// answer; default 10 s. Every request is bounded by it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Idle connections kept for reuse per host; default 32. Raise it for
    /// more threads than that.
    pub fn max_idle_connections(mut self, connections: usize) -> Self {
        self.max_idle_connections = connections;
        self
    }

    /// Uses `limiter` for one API class: share a limiter between clients, or
    /// pass one shared between processes.
    pub fn limiter(mut self, class: ApiClass, limiter: impl Limiter + 'static) -> Self {
        self.limiters[class.index()] = Some(Choice::Limiter(Arc::new(limiter)));
        self
    }

    /// Uses a [`SlidingWindow`] at `limit` for one API class: at most
    /// `limit.per_second()` calls in any 1 s window, learning the
    /// workspace's real limit below it unless
    /// [`learning`](ClientBuilder::learning) is off.
    pub fn rate_limit(mut self, class: ApiClass, limit: RateLimit) -> Self {
        self.limiters[class.index()] = Some(Choice::Limit(limit));
        self
    }

    /// Whether the limiters this builder makes (the presets, and those of
    /// [`rate_limit`](ClientBuilder::rate_limit)) learn the workspace's real
    /// limit from its 429s; default `true`. Off, their rates stay as
    /// configured and a 429 only pauses. Limiters given with
    /// [`limiter`](ClientBuilder::limiter) are used as they are.
    pub fn learning(mut self, learning: bool) -> Self {
        self.learning = learning;
        self
    }

    /// The retry policy; default [`RetryPolicy::default`].
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Checks the settings and builds the client.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: an empty site id or key,
    /// a malformed URL, plain `http://` to a host other than loopback without
    /// [`allow_http`](ClientBuilder::allow_http), or a zero timeout.
    pub fn build(self) -> Result<Client> {
        if let Some((site_id, api_key)) = &self.track {
            if site_id.trim().is_empty() {
                return Err(Error::invalid("site_id", "\"\"", "the workspace's site id"));
            }
            if api_key.trim().is_empty() {
                return Err(Error::invalid(
                    "api_key",
                    "\"\"",
                    "the workspace's Track API key",
                ));
            }
        }
        if self
            .app_key
            .as_deref()
            .is_some_and(|key| key.trim().is_empty())
        {
            return Err(Error::invalid("app_key", "\"\"", "an App API key"));
        }
        if self
            .pipelines_key
            .as_deref()
            .is_some_and(|key| key.trim().is_empty())
        {
            return Err(Error::invalid(
                "pipelines_key",
                "\"\"",
                "a Pipelines API key (a source's write key)",
            ));
        }
        if self.track.is_none() && self.app_key.is_none() && self.pipelines_key.is_none() {
            return Err(Error::invalid(
                "credentials",
                "none",
                "Track credentials, an App API key, a Pipelines API key, or several",
            ));
        }
        if self.timeout.is_zero() {
            return Err(Error::invalid("timeout", "0s", "more than zero"));
        }
        if self.connect_timeout.is_zero() {
            return Err(Error::invalid("connect_timeout", "0s", "more than zero"));
        }
        let track_url = base_url::base_url(
            "track_url",
            self.track_url.as_deref().unwrap_or(self.region.track_url()),
            self.allow_http,
        )?;
        let app_url = base_url::base_url(
            "app_url",
            self.app_url.as_deref().unwrap_or(self.region.app_url()),
            self.allow_http,
        )?;
        let pipelines_url = base_url::base_url(
            "pipelines_url",
            self.pipelines_url
                .as_deref()
                .unwrap_or(self.region.pipelines_url()),
            self.allow_http,
        )?;
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(self.connect_timeout))
            .timeout_global(Some(self.timeout))
            .max_idle_connections(self.max_idle_connections.max(1) * 2)
            .max_idle_connections_per_host(self.max_idle_connections.max(1))
            .user_agent(concat!("cio-ratelimit/", env!("CARGO_PKG_VERSION")))
            .build();
        let [track, transactional, app, broadcast, pipelines] = self.limiters;
        let learning = self.learning;
        let or_preset = |choice: Option<Choice>, class: ApiClass| -> Arc<dyn Limiter> {
            let limit = match choice {
                Some(Choice::Limiter(limiter)) => return limiter,
                Some(Choice::Limit(limit)) => limit,
                None => class.default_limit(),
            };
            let window = SlidingWindow::builder(limit)
                .learning(learning)
                .build()
                .expect("the defaults are valid for any RateLimit");
            Arc::new(window)
        };
        Ok(Client {
            inner: Arc::new(Inner {
                agent: ureq::Agent::new_with_config(config),
                track_auth: self
                    .track
                    .as_ref()
                    .map(|(site_id, api_key)| Secret::basic(site_id, api_key)),
                app_auth: self.app_key.as_deref().map(Secret::bearer),
                pipelines_auth: self.pipelines_key.as_deref().map(Secret::pipelines),
                site_id: self.track.map(|(site_id, _)| site_id),
                region: self.region,
                track_url,
                app_url,
                pipelines_url,
                limiters: [
                    or_preset(track, ApiClass::Track),
                    or_preset(transactional, ApiClass::Transactional),
                    or_preset(app, ApiClass::App),
                    or_preset(broadcast, ApiClass::Broadcast),
                    or_preset(pipelines, ApiClass::Pipelines),
                ],
                retry: self.retry.unwrap_or_default(),
            }),
        })
    }
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("site_id", &self.track.as_ref().map(|(site_id, _)| site_id))
            .field("api_key", &self.track.as_ref().map(|_| "<redacted>"))
            .field("app_key", &self.app_key.as_ref().map(|_| "<redacted>"))
            .field(
                "pipelines_key",
                &self.pipelines_key.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("track_url", &self.track_url)
            .field("app_url", &self.app_url)
            .field("pipelines_url", &self.pipelines_url)
            .field("timeout", &self.timeout)
            .field("learning", &self.learning)
            .finish_non_exhaustive()
    }
}
