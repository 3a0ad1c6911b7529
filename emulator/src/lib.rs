//! A local Customer.io-compatible server for tests, demos and offline work.
//!
//! `cio-emulator` answers like Customer.io's Track API (v1 and v2), App API and Pipelines API — endpoints,
//! auth, size limits, error bodies and rate limits — and records everything it accepted, so
//! that a test can send real HTTP and then check what arrived. Nothing here can reach
//! Customer.io. It is blocking and thread-based: no async runtime.
//!
//! # Quick example
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpStream;
//! use cio_emulator::{Config, Emulator};
//!
//! let emulator = Emulator::start(Config::default())?;
//!
//! // Identify person 42 with HTTP Basic auth `emulator-site-id:emulator-api-key`.
//! let body = r#"{"email":"ada@example.com","plan":"pro"}"#;
//! let mut stream = TcpStream::connect(("127.0.0.1", emulator.port()))?;
//! write!(
//!     stream,
//!     "PUT /api/v1/customers/42 HTTP/1.1\r\nHost: localhost\r\n\
//!      Authorization: Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5\r\n\
//!      Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
//!     body.len()
//! )?;
//! let mut answer = String::new();
//! stream.read_to_string(&mut answer)?;
//! assert!(answer.starts_with("HTTP/1.1 200 OK"));
//!
//! let snapshot = emulator.snapshot();
//! assert_eq!(snapshot.people["42"].attributes["plan"], "pro");
//! assert_eq!(snapshot.status_count(200), 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Point a client at [`Emulator::url`] for the Track, App and Pipelines APIs. The defaults
//! accept site ID [`DEFAULT_SITE_ID`], Track API key [`DEFAULT_API_KEY`], App API key
//! [`DEFAULT_APP_KEY`] and Pipelines API key [`DEFAULT_PIPELINES_KEY`]. The `cio-emulator` binary ([`run_cli`]) serves the same thing from a
//! shell and prints its URL as its first line.
//!
//! # Endpoints
//!
//! | API | endpoints |
//! |---|---|
//! | Track v1 | `PUT`/`DELETE /api/v1/customers/{id}`, `POST …/{id}/events`, `POST /api/v1/events` (anonymous, needs `anonymous_id`), `POST …/{id}/suppress`, `…/unsuppress`, `PUT …/{id}/devices`, `DELETE …/{id}/devices/{token}`, `POST /api/v1/merge_customers` |
//! | Track v2 | `POST /api/v2/entity` (one operation), `POST /api/v2/batch` (`{"batch": [op, …]}`) |
//! | App | `POST /v1/send/email`, `POST /v1/send/push`, `POST /v1/campaigns/{id}/triggers` |
//! | Pipelines | `POST /v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias`, `/v1/batch` (`{"batch": [call, …]}`, each call with its `type`) |
//! | admin | `GET /_emulator/snapshot` (the [`Snapshot`] as JSON), `POST /_emulator/reset` |
//!
//! A v1 path identifier may be an id, an email or `cio_<cio_id>`, percent-encoded. A v2 person
//! operation needs exactly one of `identifiers.id`, `.email`, `.cio_id`; its actions are
//! `identify`, `delete`, `event`, `screen`, `page`, `add_device`, `delete_device`, `suppress`,
//! `unsuppress`, `merge`, `add_relationships` and `delete_relationships`. Object and delivery
//! operations, and relationships, are validated and acknowledged but not recorded. Any other
//! App API path (`/v1/...`) is authenticated, counted in the `app` rate class and answered 404.
//!
//! # Limits
//!
//! Customer.io's documented limits, each inclusive unless said otherwise: identifiers and
//! attribute names ≤ 150 bytes; attribute values ≤ 1000 bytes (a string's length, otherwise
//! its JSON text); ≤ 300 attributes per call; event names ≤ 100 bytes; event data ≤ 100,000
//! bytes of JSON; a `/api/v2/entity` body and each batch item ≤ 32,768 bytes; a batch body
//! < 500,000 bytes. A Pipelines request and each call in a batch ≤ 32,768 bytes; a Pipelines
//! batch ≤ 500,000 bytes. A request over a limit, or with malformed JSON, gets a 400; a batch item
//! over a limit gets an entry in a 207 answer while the other items are stored.
//!
//! A Pipelines call needs a non-empty `userId` or `anonymousId`; a track call an `event`, a
//! group call a `groupId`, an alias call a `previousId`; `traits`, `properties` and `context`
//! must be objects, and a `timestamp` an ISO 8601 date and time. Like Customer.io, the Pipelines API is permissive by default: a call that
//! fails validation is answered 200 and dropped (counted in [`Snapshot::pipelines_dropped`]).
//! With `X-Strict-Mode: 1` it gets a 400, and a batch holding one is refused whole. A call
//! whose `messageId` was seen before is acknowledged and not stored again.
//!
//! # Rate limits
//!
//! Each class has a strict sliding window: `track` (100 per second by default), `transactional`
//! (`/v1/send/*`, 100/s), `app` (other App API calls, 10/s), `broadcast` (1 per 10 s) and
//! `pipelines` (100/s: Customer.io publishes no number). Auth
//! is checked first (a 401 is not admitted), then the window: a request that would exceed it
//! gets `429` with `Retry-After` in whole seconds (or an HTTP-date, or none: see
//! [`RetryAfterStyle`]). [`Snapshot::classes`] counts arrivals, admissions and 429s per class,
//! and the most requests that arrived in any one window, computed exactly.
//!
//! # Faults
//!
//! [`Faults`] injects 500s before or after storing, 503s, dropped connections and slow
//! answers, reproducibly from a seed; [`Config::latency`] adds a fixed delay to every
//! request. [`Emulator::set_faults`] changes them mid-run. Faults never touch admin routes.
//!
//! # Errors
//!
//! Error bodies follow each API: Track v1 `{"meta":{"error":"…","errors":["…"]}}` (both of
//! Customer.io's shapes at once), Track v2 `{"errors":[{"reason":"…","field":"…","message":"…"}]}`
//! (207 items add `batch_index`), App API `{"errors":[{"detail":"…","status":"401"}]}`.
//!
//! # Memory
//!
//! By default ([`Keep::All`]) everything accepted is kept, payloads included: about 1 GiB
//! after a 1M-line import. [`Config::keep`]`(`[`Keep::Counts`]`)` (`--keep counts`) keeps
//! the tallies and the sets that detect repeats, not payloads: about 140 MiB for the same
//! import (`emulator_bench` measures both), for long soak tests and demos.
//!
//! # Threads
//!
//! One thread accepts connections and one thread serves each keep-alive connection; the
//! records are behind a lock held only to apply a request's changes. [`Emulator`] is
//! `Send + Sync`. Dropping it shuts it down and joins every thread.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod app_api;
mod auth;
mod cli;
mod config;
mod faults;
pub mod http;
mod pipelines;
mod rate_window;
mod records;
mod routes;
mod server;
mod service;
mod shutdown;
mod snapshot;
mod track_v1;
mod track_v2;
mod validate;

pub use cli::run_cli;
pub use config::{
    Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Datacenter,
    Keep, RetryAfterStyle,
};
pub use faults::Faults;
pub use server::Emulator;
pub use snapshot::{
    Broadcast, ClassStats, DeliveryMetric, Event, Export, Object, Person, PipelinesCall,
    Relationship, Segment, SentMessage, Snapshot,
};
