//! `cio-ratelimit import`: a file of NDJSON v2 operations into Customer.io,
//! through the library's `Importer`.

use std::io::{self, IsTerminal};
use std::sync::{Arc, Mutex};

use cio_ratelimit::{
    AdaptiveLimiter, ApiClass, ClientBuilder, ImportMode, Importer, RateLimit, RedisLimiter,
    WhenUnreachable,
};

use crate::args::{Import, ModeArg};
use crate::calls::Receipt;
use crate::credentials::{Api, Credentials};
use crate::embedded::Embedded;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Output;
use crate::progress::ProgressDisplay;

/// The rate imports use unless told otherwise: Customer.io's bulk-import preset.
const DEFAULT_RATE: f64 = 50.0;

/// The Track limiter the flags ask for: a Redis budget shared with other
/// processes, an adaptive rate, or a token bucket of this process's own.
fn with_limiter(
    builder: ClientBuilder,
    import: &Import,
    limit: RateLimit,
    site_id: &str,
) -> Result<ClientBuilder, Error> {
    if let Some(url) = &import.redis_url {
        let when_unreachable = match import.redis_fallback {
            Some(share) => WhenUnreachable::FallBack { share },
            None => WhenUnreachable::Wait,
        };
        let redis = RedisLimiter::builder(url.as_str(), site_id, ApiClass::Track, limit)
            .when_unreachable(when_unreachable)
            .build()?;
        log::info!("sharing {} requests/s through Redis", limit.per_second());
        Ok(builder.limiter(ApiClass::Track, redis))
    } else if import.adaptive {
        let adaptive = AdaptiveLimiter::new(limit, limit.per_second() / 10.0)?;
        Ok(builder.limiter(ApiClass::Track, adaptive))
    } else {
        Ok(builder.rate_limit(ApiClass::Track, limit))
    }
}

/// Runs the import and reports it; exit 0 when every line was delivered, 1
/// when some were dead-lettered.
///
/// # Errors
///
/// [`Error::Import`] when it stopped before the end (how far it got is in
/// there), or any error setting it up.
pub fn run(import: &Import, output: &mut Output) -> Result<Exit, Error> {
    let global = &import.global;
    let embedded = global.emulator.then(Embedded::start).transpose()?;
    let (builder, site_id) = match &embedded {
        Some(embedded) => (
            embedded.client_builder(global)?,
            cio_emulator::DEFAULT_SITE_ID.to_owned(),
        ),
        None => {
            let credentials = Credentials::from_args(global, Api::Track)?;
            let site_id = credentials
                .site_id()
                .expect("Track credentials were resolved")
                .to_owned();
            (credentials.client_builder(global)?, site_id)
        }
    };
    let rate = import.rate.unwrap_or(DEFAULT_RATE);
    let burst = import.burst.unwrap_or(((rate / 10.0) as u32).max(1));
    let limit = RateLimit::new(rate, burst)?;
    let client = with_limiter(builder, import, limit, &site_id)?
        .max_idle_connections(usize::from(import.workers))
        .build()?;
    let display = Arc::new(Mutex::new(ProgressDisplay::new(
        io::stderr().is_terminal(),
        import.progress_every,
    )));
    let mut importer = Importer::builder(client)
        .mode(match import.mode {
            ModeArg::Batch => ImportMode::Batch,
            ModeArg::Single => ImportMode::Single,
        })
        .workers(usize::from(import.workers))
        .resume(import.resume)
        .progress({
            let display = display.clone();
            move |progress| display.lock().expect("the display lock").update(progress)
        });
    if let Some(path) = &import.dead_letter {
        importer = importer.dead_letter(path);
    }
    if let Some(path) = &import.checkpoint {
        importer = importer.checkpoint(path);
    }
    let importer = importer.build()?;
    log::info!(
        "importing {} at {rate} requests/s, burst {burst}",
        import.input.display()
    );
    let result = if import.input.as_os_str() == "-" {
        importer.import_reader(io::stdin().lock(), None)
    } else {
        importer.import_file(&import.input)
    };
    display.lock().expect("the display lock").finish();
    if let Some(embedded) = embedded {
        output.arrived(embedded.finish());
    }
    match result {
        Ok(summary) => {
            let exit = if summary.all_delivered() {
                Exit::Success
            } else {
                Exit::DeadLettered
            };
            output.success(&Receipt::Imported(Box::new(summary)))?;
            Ok(exit)
        }
        Err(failure) => Err(Error::Import {
            failure: Box::new(failure),
            resumable: import.checkpoint.is_some(),
        }),
    }
}
