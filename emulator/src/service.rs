//! The way every Customer.io API request goes: count its arrival, latency, auth, the rate
//! window, faults, the API's handler, and count its answer.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use serde_json::json;

use crate::app_api;
use crate::auth::Credentials;
use crate::config::{Config, Datacenter, RetryAfterStyle};
use crate::faults::{FaultDice, Faults};
use crate::http::{Request, Response};
use crate::pipelines;
use crate::rate_window::{Class, RateWindow};
use crate::records::Records;
use crate::routes::{self, Api, Route};
use crate::shutdown::Shutdown;
use crate::snapshot::Snapshot;
use crate::track_v1;
use crate::track_v2;

/// What to do with a connection after a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Send this answer.
    Respond(Response),
    /// Close the connection without any answer (the `drop_connection` fault).
    Drop,
}

/// The emulated Customer.io workspace: credentials, rate windows, faults and records.
pub(crate) struct Service {
    credentials: Credentials,
    retry_after: RetryAfterStyle,
    latency: Duration,
    wrong_datacenter: Option<Datacenter>,
    records: Records,
    /// One per [`Class`], indexed by [`Class::index`].
    windows: [Mutex<RateWindow>; 5],
    faults: Mutex<FaultDice>,
    /// Every API request is answered 429 until then ([`Emulator::throttle_for`](crate::Emulator::throttle_for)).
    throttled_until: Mutex<Option<Instant>>,
}

impl Service {
    pub(crate) fn new(config: &Config) -> Self {
        let window = |class: Class| {
            let limit = match class {
                Class::Track => config.track,
                Class::Transactional => config.transactional,
                Class::App => config.app,
                Class::Broadcast => config.broadcast,
                Class::Pipelines => config.pipelines,
            };
            Mutex::new(RateWindow::new(limit))
        };
        Service {
            credentials: Credentials {
                site_id: config.site_id.clone(),
                api_key: config.api_key.clone(),
                app_key: config.app_key.clone(),
                pipelines_key: config.pipelines_key.clone(),
            },
            retry_after: config.retry_after,
            latency: config.latency,
            wrong_datacenter: config.wrong_datacenter,
            records: Records::new(config.keep),
            windows: Class::ALL.map(window),
            faults: Mutex::new(FaultDice::new(config.faults.clone())),
            throttled_until: Mutex::new(None),
        }
    }

    /// Answers one request. Sleeps (latency, slow answers) end early when `shutdown` fires.
    pub(crate) fn answer(&self, request: &Request, shutdown: &Shutdown) -> Reply {
        let route = routes::route(&request.method, &request.path);
        if route.api == Api::Admin {
            return Reply::Respond(self.admin(&request.method, &request.path));
        }
        self.records.arrived();
        if let Some(class) = route.class {
            self.windows[class.index()].lock().arrive(Instant::now());
        }
        if !self.latency.is_zero() {
            shutdown.sleep(self.latency);
        }
        let reply = self.api_reply(route, request, shutdown);
        match &reply {
            Reply::Respond(response) => self.records.answered(response.status),
            Reply::Drop => self.records.dropped(),
        }
        reply
    }

    /// The admin routes: `GET /_emulator/snapshot` and `POST /_emulator/reset`. No auth, no
    /// rate limit, no faults, not counted.
    fn admin(&self, method: &str, path: &str) -> Response {
        match (method, path) {
            ("GET", "/_emulator/snapshot") => Response::json(200, &self.snapshot()),
            ("GET", _) if path.starts_with("/_emulator/exports/") => {
                let id = path.trim_start_matches("/_emulator/exports/").parse().ok();
                match id.and_then(|id| self.records.export_file(id)) {
                    Some(csv) => Response {
                        status: 200,
                        headers: Vec::new(),
                        body: csv.into_bytes(),
                    },
                    None => Api::Admin.not_found(method, path),
                }
            }
            ("POST", "/_emulator/reset") => {
                self.reset();
                Response::json(200, &json!({}))
            }
            _ => Api::Admin.not_found(method, path),
        }
    }

    fn api_reply(&self, route: Route, request: &Request, shutdown: &Shutdown) -> Reply {
        let (method, path) = (request.method.as_str(), request.path.as_str());
        if let Some(home) = self.wrong_datacenter
            && matches!(route.api, Api::TrackV1 | Api::TrackV2 | Api::App)
        {
            let track = route.api != Api::App;
            let location = format!("{}{path}", home.base_url(track));
            let response = route.api.error(301, "wrong_datacenter", "wrong datacenter");
            return Reply::Respond(response.with_header("Location", location));
        }
        let authorization = request.header("authorization");
        let authorized = match route.api {
            Api::TrackV1 | Api::TrackV2 => self.credentials.track_allows(authorization),
            Api::App => self.credentials.app_allows(authorization),
            Api::Pipelines => self.credentials.pipelines_allows(authorization),
            Api::Admin | Api::Unknown => {
                return Reply::Respond(route.api.not_found(method, path));
            }
        };
        if !authorized {
            return Reply::Respond(route.api.unauthorized());
        }
        let now = Instant::now();
        if let Some(class) = route.class {
            let until = *self.throttled_until.lock();
            if let Some(wait) = until.and_then(|until| until.checked_duration_since(now)) {
                return Reply::Respond(self.too_many_requests(route.api, class, wait));
            }
            if let Err(wait) = self.windows[class.index()].lock().admit(now) {
                return Reply::Respond(self.too_many_requests(route.api, class, wait));
            }
        }
        let roll = self.faults.lock().roll();
        if roll.drop_connection {
            return Reply::Drop;
        }
        if roll.unavailable {
            let message = "Service Unavailable (injected by the emulator)";
            return Reply::Respond(route.api.error(503, "unavailable", message));
        }
        if roll.error_before_store {
            return Reply::Respond(internal_error(route.api, "before"));
        }
        let body = request.body.as_slice();
        let mut response = match route.api {
            Api::TrackV1 => track_v1::handle(request, &self.records),
            Api::TrackV2 => track_v2::handle(method, path, body, &self.records),
            Api::Pipelines => {
                let strict = request.header("x-strict-mode") == Some("1");
                pipelines::handle(method, path, body, strict, &self.records)
            }
            _ => app_api::handle(request, &self.records),
        };
        if roll.error_after_store && response.is_success() {
            response = internal_error(route.api, "after");
        }
        if let Some(delay) = roll.slow {
            shutdown.sleep(delay);
        }
        Reply::Respond(response)
    }

    fn too_many_requests(&self, api: Api, class: Class, wait: Duration) -> Response {
        let message = format!("Too Many Requests: over the {} rate limit", class.name());
        let response = api.error(429, "rate_limited", &message);
        match self.retry_after {
            RetryAfterStyle::Seconds => {
                let seconds = ceil_seconds(wait).max(1);
                response.with_header("Retry-After", seconds.to_string())
            }
            RetryAfterStyle::HttpDate => {
                let at = SystemTime::now() + wait;
                let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
                let whole = UNIX_EPOCH + Duration::from_secs(ceil_seconds(since_epoch));
                response.with_header("Retry-After", httpdate::fmt_http_date(whole))
            }
            RetryAfterStyle::Absent => response,
            RetryAfterStyle::Zero => response.with_header("Retry-After", "0".into()),
            RetryAfterStyle::PastDate => {
                let past = SystemTime::now() - Duration::from_secs(60);
                response.with_header("Retry-After", httpdate::fmt_http_date(past))
            }
        }
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        let mut snapshot = self.records.snapshot();
        for class in Class::ALL {
            let stats = self.windows[class.index()].lock().stats();
            snapshot.classes.insert(class.name().to_owned(), stats);
        }
        snapshot
    }

    pub(crate) fn reset(&self) {
        self.records.reset();
        for window in &self.windows {
            window.lock().reset();
        }
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *self.faults.lock() = FaultDice::new(faults);
    }

    pub(crate) fn throttle_for(&self, duration: Duration) {
        *self.throttled_until.lock() = Some(Instant::now() + duration);
    }
}

fn internal_error(api: Api, when: &str) -> Response {
    let message = format!("Internal Server Error (injected by the emulator, {when} storing)");
    api.error(500, "internal", &message)
}

fn ceil_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
        assert_eq!(ceil_seconds(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_seconds(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_seconds(Duration::ZERO), 0);
    }
}
