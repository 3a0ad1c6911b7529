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

/// What a caller must send as HTTP Basic credentials.
#[derive(Clone)]
pub struct Expected {
    /// `Basic base64(site_id:api_key)`'s token, for the Track API.
    pub track: Option<String>,
    /// `Basic base64(pipelines_key:)`'s token, for the Pipelines API.
    pub pipelines: Option<String>,
}

impl Expected {
    /// The tokens for these credentials.
    pub fn new(track: Option<(&str, &str)>, pipelines: Option<&str>) -> Expected {
        Expected {
            track: track.map(|(user, password)| base64(format!("{user}:{password}").as_bytes())),
            pipelines: pipelines.map(|key| base64(format!("{key}:").as_bytes())),
        }
    }

    fn allows(expected: Option<&String>, request: &Request) -> bool {
        let Some(expected) = expected else {
            return false;
        };
        let Some((scheme, token)) = request
            .header("authorization")
            .and_then(|value| value.trim().split_once(' '))
        else {
            return false;
        };
        scheme.eq_ignore_ascii_case("basic")
            && token.trim().trim_end_matches('=') == expected.trim_end_matches('=')
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
            if !Expected::allows(self.expected.track.as_ref(), request) {
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
            if !Expected::allows(self.expected.pipelines.as_ref(), request) {
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

/// Standard base64 with padding, as HTTP Basic credentials are written.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let bits = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for place in 0..4 {
            if place <= chunk.len() {
                text.push(char::from(
                    ALPHABET[(bits >> (18 - 6 * place)) as usize & 63],
                ));
            } else {
                text.push('=');
            }
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("site:key", "c2l0ZTprZXk="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }
}
