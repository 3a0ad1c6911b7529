//! `cio-ratelimit relay`: a local endpoint that speaks Customer.io's Track
//! API (and the Pipelines API, given a Pipelines key), so that apps in any
//! language point their official client's URL at it and get answers at
//! local speed, a durable spool, and delivery at the workspace's learned
//! limit through the library's `Importer`.
//!
//! ```text
//! caller ─► endpoint (credentials? checks? room?) ─► spool writer (one write + one fsync
//!           for every call that came meanwhile) ─► 200
//! spool segment ─► drain (the Importer, in rounds, with a checkpoint a segment) ─► Customer.io
//! ```
//!
//! The spool is the relay's only state: `kill -9` and a start on the same
//! `--spool` go on from each segment's checkpoint, and events the caller
//! gave no id carry one derived from their place in the spool, so what is
//! sent again is counted once.

mod call_body;
mod drain;
mod endpoint;
mod health;
mod pipelines_calls;
mod spool;
mod spool_writer;
mod track_calls;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cio_ratelimit::RateLimit;

use crate::args::{ApiArg, Relay};
use crate::credentials::{Api, Credentials};
use crate::error::Error;
use crate::exit::Exit;
use crate::import::{BudgetFlags, SharedBudget, Target, with_limiter};
use crate::metrics::{self, MetricsFile};
use crate::relay::drain::Drain;
use crate::relay::endpoint::{Endpoint, Expected};
use crate::relay::health::{Health, RateSource, Stats};
use crate::relay::spool::{Spool, Stream};
use crate::relay::spool_writer::SpoolWriter;
use crate::signals::StopSignals;

/// The smallest and largest segment: a quarter of `--max-spool`, within these.
/// Each drain round re-reads its segment up to the checkpoint (the importer's
/// resume), so a segment stays small enough for that to be cheap.
const MIN_SEGMENT_BYTES: u64 = 16 * 1024;
const MAX_SEGMENT_BYTES: u64 = 1024 * 1024;
/// How often the main thread looks at the stop flag, the progress line and the metrics.
const TICK: Duration = Duration::from_millis(100);

/// Serves until SIGINT or SIGTERM, then stops accepting, writes and fsyncs
/// what it took, lets the requests in flight to Customer.io finish, and
/// returns [`Exit::Stopped`] (130 or 143) with the spool intact.
///
/// # Errors
///
/// Missing credentials, a spool another relay holds, an address that
/// cannot be bound, a limiter that cannot be set up.
pub fn run(relay: &Relay) -> Result<Exit, Error> {
    let global = &relay.global;
    if global.emulator {
        return Err(Error::Relay {
            problem: "--emulator is not for the relay: start `cio-ratelimit emulator --port N` \
                      and give the relay --track-url http://127.0.0.1:N"
                .into(),
        });
    }
    // Track credentials, or a Pipelines key alone for a Pipelines relay.
    let credentials = Credentials::from_args(global, Api::Track).or_else(|track_error| {
        Credentials::from_args(global, Api::Pipelines).map_err(|_| track_error)
    })?;
    let expected = Expected::new(credentials.track_basic(), credentials.pipelines_basic());
    let spool = Arc::new(Spool::open(&relay.spool)?);
    let signals = StopSignals::install()
        .inspect_err(|error| log::warn!("a signal will not stop the relay cleanly: {error}"))
        .ok();
    let stop = signals
        .as_ref()
        .map_or_else(|| Arc::new(AtomicBool::new(false)), StopSignals::flag);
    let stats = Arc::new(Stats::default());
    let mut rates = Vec::new();
    let mut drains = Vec::new();
    for (stream, api) in [
        (Stream::Track, ApiArg::Track),
        (Stream::Pipelines, ApiArg::Pipelines),
    ] {
        let workspace = match stream {
            Stream::Track => credentials.site_id().map(str::to_owned),
            Stream::Pipelines => credentials
                .pipelines_basic()
                .map(|_| "pipelines".to_owned()),
        };
        let Some(workspace) = workspace else {
            continue;
        };
        let target = Target::of(api);
        let limit = match relay.rate {
            Some(rate) => RateLimit::at(rate)?,
            None => target.preset,
        };
        let shared = SharedBudget {
            limit,
            class: target.class,
            workspace: &workspace,
            stop: Some(&stop),
        };
        let flags = BudgetFlags {
            redis_url: relay.redis_url.as_deref(),
            redis_fallback: None,
            redis_wait: None,
            redis_ca: relay.redis_ca.as_deref(),
            redis_adopt: false,
            fixed_rate: relay.fixed_rate,
        };
        let client = with_limiter(credentials.clone().client_builder(global)?, &flags, shared)?
            .max_idle_connections(usize::from(relay.workers))
            .build()?;
        rates.push((
            stream,
            RateSource {
                limiter: client.limiter(target.class).clone(),
                limit,
            },
        ));
        drains.push(Drain {
            spool: Arc::clone(&spool),
            stream,
            client,
            workers: usize::from(relay.workers),
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
        });
    }
    let health = Health {
        spool: Arc::clone(&spool),
        stats: Arc::clone(&stats),
        rates,
    };
    let mut metrics = match &relay.metrics_file {
        Some(path) => Some(MetricsFile::create(path, health.rate())?),
        None => None,
    };
    let listener = TcpListener::bind(relay.listen).map_err(|error| Error::Relay {
        problem: format!("cannot listen on {}: {error}", relay.listen),
    })?;
    let address = listener.local_addr().map_err(|error| Error::Relay {
        problem: format!("cannot listen on {}: {error}", relay.listen),
    })?;
    let thread_error = |error: std::io::Error| Error::Relay {
        problem: format!("cannot start a thread: {error}"),
    };
    let segment_bytes = (relay.max_spool / 4).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES);
    let writer_stop = Arc::new(AtomicBool::new(false));
    let (writer, writer_thread) =
        SpoolWriter::start(Arc::clone(&spool), Arc::clone(&writer_stop), segment_bytes)
            .map_err(thread_error)?;
    let closing = Arc::new(AtomicBool::new(false));
    let endpoint = Arc::new(Endpoint {
        expected,
        writer: writer.clone(),
        health: health.clone(),
        max_spool: relay.max_spool,
        closing: Arc::clone(&closing),
    });
    let acceptor = endpoint::serve(listener, endpoint, Arc::clone(&stop)).map_err(thread_error)?;
    let drains = drains
        .into_iter()
        .map(Drain::start)
        .collect::<Result<Vec<_>, _>>()
        .map_err(thread_error)?;
    eprintln!(
        "cio-ratelimit: relay listening on http://{address} (spool {}, {} calls waiting)",
        spool.dir().display(),
        spool.waiting().0
    );
    let mut last_line = (Instant::now(), String::new());
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(TICK);
        if last_line.0.elapsed() >= relay.progress_secs {
            let line = health.line();
            if line != last_line.1 {
                eprintln!("cio-ratelimit: {line}");
            }
            last_line = (Instant::now(), line);
        }
        if let Some(metrics) = metrics.as_mut() {
            metrics.update(&stats.progress(), health.rate());
        }
    }
    // Stop accepting; what was handed to the writer is written and fsynced;
    // the drains finish the requests they sent.
    closing.store(true, Ordering::SeqCst);
    endpoint::wake(address);
    let _ = acceptor.join();
    writer.close();
    writer_stop.store(true, Ordering::SeqCst);
    let _ = writer_thread.join();
    for drain in drains {
        let _ = drain.join();
    }
    let signal = signals.as_ref().and_then(StopSignals::received);
    let exit = signal.map_or(Exit::Success, Exit::Stopped);
    if let Some(metrics) = metrics.as_mut() {
        let state = metrics::State {
            rate: health.rate(),
            ended: Some(exit),
        };
        metrics.finish(&stats.progress(), state);
    }
    eprintln!(
        "cio-ratelimit: {}; stopped{}: the spool keeps what waits, a relay started on it delivers it",
        health.line(),
        signal.map_or(String::new(), |signal| format!(" on {}", signal.name()))
    );
    Ok(exit)
}
