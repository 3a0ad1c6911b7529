//! The relay's HTTP endpoint: one thread accepts, one thread serves each
//! keep-alive connection (the emulator's small HTTP/1.1 server), and every
//! request is answered here: credentials first (401, nothing kept), then
//! Customer.io's checks (its status and error shape, nothing kept), then the
//! spool's room (429 with Retry-After), and 200 once the call is on disk.

use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cio_emulator::http::{Connection, Request, Response};
use serde_json::json;

use crate::relay::health::Health;
use crate::relay::pipelines_calls;
use crate::relay::spool_writer::{Refused, SpoolWriter, Spooled};
use crate::relay::track_calls::{self, Version};

/// The HTTP Basic credentials a caller must send: the ones the relay
/// forwards with.
#[derive(Clone)]
pub struct Expected {
    /// `site_id:api_key`, for the Track API.
    pub track: Option<(String, String)>,
    /// `pipelines_key:` (a blank password), for the Pipelines API.
    pub pipelines: Option<String>,
}

impl Expected {
    /// The credentials callers must send.
    pub fn new(track: Option<(&str, &str)>, pipelines: Option<&str>) -> Expected {
        Expected {
            track: track.map(|(user, password)| (user.to_owned(), password.to_owned())),
            pipelines: pipelines.map(str::to_owned),
        }
    }

    fn allows_track(&self, request: &Request) -> bool {
        self.track
            .as_ref()
            .is_some_and(|(site_id, api_key)| request.has_basic_credentials(site_id, api_key))
    }

    fn allows_pipelines(&self, request: &Request) -> bool {
        self.pipelines
            .as_ref()
            .is_some_and(|key| request.has_basic_credentials(key, ""))
    }
}

/// Everything a request's answer depends on.
pub struct Endpoint {
    /// The credentials callers must send.
    pub expected: Expected,
    /// Where checked calls go.
    pub writer: SpoolWriter,
    /// Counts and `/health`.
    pub health: Health,
    /// Above this many spool bytes, calls are answered 429.
    pub max_spool: u64,
    /// Set once the relay stops: calls are answered 503.
    pub closing: Arc<AtomicBool>,
}

impl Endpoint {
    /// The answer to one request.
    pub fn answer(&self, request: &Request) -> Response {
        let (method, path) = (request.method.as_str(), request.path.as_str());
        if path == "/health" && method == "GET" {
            return Response::json(200, &self.health.to_json());
        }
        if let Some(version) = Version::of(path) {
            if !self.expected.allows_track(request) {
                return version.unauthorized();
            }
            let checked = match track_calls::check(method, path, &request.body) {
                Ok(checked) => checked,
                Err(response) => return response,
            };
            let errors = checked.errors;
            return match self.keep(checked.items) {
                Err(refusal) => {
                    refusal.answer(|status, reason, message| version.error(status, reason, message))
                }
                Ok(()) if errors.is_empty() => Response::json(200, &json!({})),
                Ok(()) => Response::json(207, &json!({ "errors": errors })),
            };
        }
        if pipelines_calls::is_pipelines(path) && self.expected.pipelines.is_some() {
            if !self.expected.allows_pipelines(request) {
                return pipelines_calls::error(
                    401,
                    "unauthorized",
                    "Unauthorized request: use HTTP Basic auth with the Pipelines key the relay was started with as the user name and a blank password",
                );
            }
            let strict = request
                .header("x-strict-mode")
                .is_some_and(|value| value.trim() == "1" || value.eq_ignore_ascii_case("true"));
            let calls = match pipelines_calls::check(method, path, &request.body, strict) {
                Ok(calls) => calls,
                Err(response) => return response,
            };
            return match self.keep(calls) {
                Ok(()) => Response::json(200, &json!({})),
                Err(refusal) => refusal.answer(pipelines_calls::error),
            };
        }
        pipelines_calls::error(
            404,
            "not_found",
            &format!("the relay does not take {method} {path}"),
        )
    }

    /// Keeps the calls, once they are on disk; or says why not.
    fn keep(&self, items: Vec<Spooled>) -> Result<(), Refusal> {
        if items.is_empty() {
            return Ok(());
        }
        if self.closing.load(Ordering::SeqCst) {
            return Err(Refusal::Stopping);
        }
        if self.health.spool.bytes() >= self.max_spool {
            self.health.stats.refused_full();
            return Err(Refusal::Full);
        }
        let count = items.len() as u64;
        self.writer.append(items).map_err(|refused| match refused {
            Refused::Stopping => Refusal::Stopping,
            Refused::Disk(problem) => Refusal::Disk(problem),
        })?;
        self.health.stats.accepted(count);
        Ok(())
    }
}

/// Why a valid call was not kept.
enum Refusal {
    Full,
    Stopping,
    Disk(String),
}

impl Refusal {
    fn answer(self, error: impl Fn(u16, &str, &str) -> Response) -> Response {
        match self {
            Refusal::Full => error(
                429,
                "rate_limited",
                "the relay's spool is full (--max-spool): try again after Retry-After",
            )
            .with_header("Retry-After", "1".into()),
            Refusal::Stopping => error(503, "unavailable", "the relay is stopping")
                .with_header("Retry-After", "1".into()),
            Refusal::Disk(problem) => error(
                503,
                "unavailable",
                &format!("the relay cannot write its spool: {problem}"),
            ),
        }
    }
}

/// Accepts connections on `listener` until `stop` is set (then woken by a
/// connection to `address`), serving each on a thread of its own.
///
/// # Errors
///
/// The operating system's, if the thread cannot start.
pub fn serve(
    listener: TcpListener,
    endpoint: Arc<Endpoint>,
    stop: Arc<AtomicBool>,
) -> io::Result<JoinHandle<()>> {
    thread::Builder::new()
        .name("relay-accept".into())
        .spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else {
                    // Out of file descriptors, or the caller gave up: don't spin.
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let endpoint = Arc::clone(&endpoint);
                let spawned = thread::Builder::new()
                    .name("relay-connection".into())
                    .spawn(move || serve_connection(stream, &endpoint));
                if let Err(error) = spawned {
                    log::warn!("cannot serve a connection: {error}");
                }
            }
        })
}

/// Wakes the accepting thread, blocked in `accept`, so that it sees the stop.
pub fn wake(address: SocketAddr) {
    let address = match address.ip().is_unspecified() {
        true => SocketAddr::from(([127, 0, 0, 1], address.port())),
        false => address,
    };
    let _ = TcpStream::connect_timeout(&address, Duration::from_secs(1));
}

fn serve_connection(stream: TcpStream, endpoint: &Endpoint) {
    let mut connection = Connection::new(stream);
    loop {
        let request = match connection.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                if let Some(response) = error.response() {
                    let _ = connection.write_response(&response, true);
                }
                return;
            }
        };
        let response = endpoint.answer(&request);
        let close = !request.keep_alive || endpoint.closing.load(Ordering::SeqCst);
        if connection.write_response(&response, close).is_err() || close {
            return;
        }
    }
}
