//! One HTTP exchange with Customer.io: send, classify the answer, map errors.

use std::io;
use std::time::SystemTime;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::client::client::Client;
use crate::error::{Credential, Error, Result, TimeoutKind, TransportKind};
use crate::limit::api_class::ApiClass;
use crate::retry::policy::Call;
use crate::retry::retry_after::parse_retry_after;

/// The HTTP methods Customer.io's APIs use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Put,
    Post,
    Delete,
}

/// A request to send, with its limiter class and retry safety.
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub(crate) class: ApiClass,
    pub(crate) call: Call<'a>,
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) body: Option<Vec<u8>>,
}

/// A successful answer: its status (200, 207, ...) and body.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) body: String,
}

impl Client {
    /// Reads an App API resource (`GET path`, query included) on the App
    /// limiter; a read is always safe to repeat.
    pub(crate) fn read<T: DeserializeOwned>(&self, name: &str, path: String) -> Result<T> {
        self.app_json(Call::safe(name), Method::Get, path, None)
    }

    /// Sends an App API request on the App limiter and reads its JSON answer.
    pub(crate) fn app_json<T: DeserializeOwned>(
        &self,
        call: Call<'_>,
        method: Method,
        path: String,
        body: Option<&Value>,
    ) -> Result<T> {
        let answer = self.send(&Request {
            class: ApiClass::App,
            call,
            method,
            path,
            body: body
                .map(|body| serde_json::to_vec(body).expect("a JSON value always serializes")),
        })?;
        parse_answer(answer.status, &answer.body)
    }

    /// Sends `request` through its class's limiter and the retry policy.
    pub(crate) fn send(&self, request: &Request<'_>) -> Result<Answer> {
        self.send_reading(request, Ok)
    }

    /// [`send`](Client::send), reading each answer with `read` inside the
    /// retry loop, so that an answer `read` cannot trust is retried like
    /// any other transient failure.
    pub(crate) fn send_reading<T>(
        &self,
        request: &Request<'_>,
        read: impl Fn(Answer) -> Result<T>,
    ) -> Result<T> {
        let limiter = self.limiter(request.class);
        // A stop asked while the request waits for its first permit (behind
        // a 429 pause) leaves it unsent, for the import's resume.
        let stopped = || Some(Error::Stopped);
        self.inner.retry.run_unless_stopped(
            limiter,
            request.call,
            || {
                // A limiter that gave up granted nothing: fail without sending.
                limiter.check()?;
                self.attempt(request).and_then(&read)
            },
            stopped,
        )
    }

    /// One attempt: no limiter, no retry.
    fn attempt(&self, request: &Request<'_>) -> Result<Answer> {
        let inner = &self.inner;
        let (base, auth, credential) = match request.class {
            ApiClass::Track => (&inner.track_url, &inner.track_auth, Credential::TrackApiKey),
            ApiClass::Pipelines => (
                &inner.pipelines_url,
                &inner.pipelines_auth,
                Credential::PipelinesApiKey,
            ),
            _ => (&inner.app_url, &inner.app_auth, Credential::AppApiKey),
        };
        let auth = auth.as_ref().ok_or(Error::MissingCredential(credential))?;
        let url = format!("{base}{}", request.path);
        let body = request.body.as_deref().unwrap_or_default();
        let with_headers = |builder| with_headers(builder, auth.header_value(), request.class);
        let sent = match request.method {
            Method::Put => with_headers(inner.agent.put(&url)).send(body),
            Method::Post => with_headers(inner.agent.post(&url)).send(body),
            Method::Get => inner
                .agent
                .get(&url)
                .header("authorization", auth.header_value())
                .call(),
            Method::Delete => inner
                .agent
                .delete(&url)
                .header("authorization", auth.header_value())
                .call(),
        };
        let mut response = sent.map_err(transport_error)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                parse_retry_after(value, SystemTime::now(), inner.retry.max_retry_after())
            });
        let location = response
            .headers()
            .get("location")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(transport_error)?;
        match status {
            200..=299 => Ok(Answer { status, body: text }),
            301 | 308 => Err(Error::WrongRegion {
                use_region: location
                    .as_deref()
                    .map(|to| {
                        if to.contains("-eu.") {
                            crate::Region::Eu
                        } else {
                            crate::Region::Us
                        }
                    })
                    .filter(|region| *region != inner.region)
                    .unwrap_or(inner.region.other()),
            }),
            401 | 403 => Err(Error::Unauthorized { status, credential }),
            _ => Err(Error::Status {
                status,
                message: error_message(&text),
                retry_after,
            }),
        }
    }
}

/// The headers of a request with a body. Pipelines requests also carry
/// `X-Strict-Mode: 1`: without it the Pipelines API answers 200 to a call
/// that fails validation and drops it, so a bad call would be lost silently.
fn with_headers(
    builder: ureq::RequestBuilder<ureq::typestate::WithBody>,
    auth: &str,
    class: ApiClass,
) -> ureq::RequestBuilder<ureq::typestate::WithBody> {
    let builder = builder
        .header("authorization", auth)
        .header("content-type", "application/json");
    if class == ApiClass::Pipelines {
        builder.header("x-strict-mode", "1")
    } else {
        builder
    }
}

/// A typed answer from a 2xx body; a body that does not parse is reported
/// with what went wrong, never taken for an empty answer.
pub(crate) fn parse_answer<T: DeserializeOwned>(status: u16, body: &str) -> Result<T> {
    serde_json::from_str(body).map_err(|err| Error::Unreadable {
        status,
        message: format!("the answer: {err}"),
    })
}

/// Customer.io's message from any of its error body shapes: Track v1
/// `{"meta":{"errors":[..]}}` or `{"meta":{"error":..}}`, Track v2
/// `{"errors":[{"reason","message"}]}`, App `{"errors":[{"detail"}]}`;
/// otherwise the start of the body.
pub(crate) fn error_message(body: &str) -> String {
    let Ok(json) = serde_json::from_str::<Value>(body) else {
        return body.trim().chars().take(200).collect();
    };
    let text = |value: &Value| match value {
        Value::String(text) => Some(text.clone()),
        Value::Object(object) => ["message", "detail", "reason"]
            .iter()
            .find_map(|key| object.get(*key).and_then(Value::as_str).map(str::to_owned)),
        _ => None,
    };
    let errors = json
        .pointer("/meta/errors")
        .or_else(|| json.get("errors"))
        .and_then(Value::as_array)
        .map(|errors| {
            errors
                .iter()
                .filter_map(text)
                .collect::<Vec<_>>()
                .join("; ")
        });
    errors
        .filter(|joined| !joined.is_empty())
        .or_else(|| json.pointer("/meta/error").and_then(text))
        .or_else(|| json.get("error").and_then(text))
        .unwrap_or_else(|| body.trim().chars().take(200).collect())
}

/// Maps ureq's errors to ours, keeping what the retry loop needs to know.
pub(crate) fn transport_error(error: ureq::Error) -> Error {
    let kind = match &error {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            return Error::Timeout(TimeoutKind::Connect);
        }
        ureq::Error::Timeout(_) => return Error::Timeout(TimeoutKind::Request),
        ureq::Error::Io(io) => match io.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                return Error::Timeout(TimeoutKind::Request);
            }
            io::ErrorKind::ConnectionRefused => TransportKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::NotConnected => TransportKind::ConnectionReset,
            _ => TransportKind::Other,
        },
        // No connection was made: the request never left.
        ureq::Error::ConnectionFailed => TransportKind::ConnectionRefused,
        // The server closed or garbled the connection mid-answer.
        ureq::Error::Protocol(_) => TransportKind::ConnectionReset,
        ureq::Error::HostNotFound => TransportKind::HostNotFound,
        ureq::Error::Tls(_) | ureq::Error::Rustls(_) | ureq::Error::TlsRequired => {
            TransportKind::Tls
        }
        _ => TransportKind::Other,
    };
    Error::Transport {
        kind,
        message: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_that_does_not_parse_is_unreadable_not_empty() {
        #[derive(Debug, serde::Deserialize)]
        struct Answer {
            #[allow(dead_code)]
            results: Vec<u32>,
        }
        assert!(parse_answer::<Answer>(200, r#"{"results": [1]}"#).is_ok());
        for body in ["", "<html>", r#"{"results": "none"}"#] {
            let error = parse_answer::<Answer>(200, body).unwrap_err();
            assert!(
                matches!(error, Error::Unreadable { status: 200, .. }),
                "{body}: {error:?}"
            );
        }
    }

    #[test]
    fn messages_come_from_every_error_shape() {
        assert_eq!(
            error_message(r#"{"meta":{"errors":["bad id","too long"]}}"#),
            "bad id; too long"
        );
        assert_eq!(
            error_message(r#"{"meta":{"error":"wrong datacenter"}}"#),
            "wrong datacenter"
        );
        assert_eq!(
            error_message(r#"{"errors":[{"reason":"invalid","message":"no name"}]}"#),
            "no name"
        );
        assert_eq!(
            error_message(r#"{"errors":[{"detail":"not found","status":"404"}]}"#),
            "not found"
        );
        assert_eq!(
            error_message("<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(error_message(&"x".repeat(500)).len(), 200);
        assert_eq!(error_message(""), "");
    }

    #[test]
    fn refused_and_reset_connections_are_told_apart() {
        let refused = transport_error(ureq::Error::Io(io::ErrorKind::ConnectionRefused.into()));
        assert!(matches!(
            refused,
            Error::Transport {
                kind: TransportKind::ConnectionRefused,
                ..
            }
        ));
        let reset = transport_error(ureq::Error::Io(io::ErrorKind::UnexpectedEof.into()));
        assert!(matches!(
            reset,
            Error::Transport {
                kind: TransportKind::ConnectionReset,
                ..
            }
        ));
        assert_eq!(
            transport_error(ureq::Error::Timeout(ureq::Timeout::Global)),
            Error::Timeout(TimeoutKind::Request)
        );
        assert_eq!(
            transport_error(ureq::Error::Timeout(ureq::Timeout::Connect)),
            Error::Timeout(TimeoutKind::Connect)
        );
    }
}
