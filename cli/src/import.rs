//! `cio-ratelimit import`: a file of NDJSON v2 operations (or, with `--api
//! pipelines`, Pipelines calls) into Customer.io, through the library's
//! `Importer`.

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use cio_ratelimit::{
    ApiClass, ClientBuilder, Importer, RateLimit,
    import::{CsvOptions, ImportApi, ImportMode, ImportSummary},
    limit::{RedisLimiter, WhenUnreachable},
};

use crate::args::{ApiArg, FormatArg, Import, ModeArg};
use crate::calls::Receipt;
use crate::credentials::{Api, Credentials};
use crate::embedded::Embedded;
use crate::error::{Error, Stopped};
use crate::exit::Exit;
use crate::metrics::{self, MetricsFile};
use crate::output::Output;
use crate::progress::ProgressDisplay;
use crate::rate::RateReport;
use crate::resume_command::resume_command;
use crate::signals::StopSignals;
use crate::stoppable_stdin::StoppableStdin;

/// What `--api` means to the library: what the lines are, whose limiter
/// sets the rate, its preset, and which credentials the import needs.
struct Target {
    api: ImportApi,
    class: ApiClass,
    preset: RateLimit,
    credentials: Api,
}

impl Target {
    fn of(api: ApiArg) -> Target {
        match api {
            ApiArg::Track => Target {
                api: ImportApi::Track,
                class: ApiClass::Track,
                preset: RateLimit::BULK_IMPORT,
                credentials: Api::Track,
            },
            ApiArg::Pipelines => Target {
                api: ImportApi::Pipelines,
                class: ApiClass::Pipelines,
                preset: RateLimit::PIPELINES_API,
                credentials: Api::Pipelines,
            },
        }
    }
}

/// The limiter the flags ask for, for the API imported to: a Redis budget
/// shared with other processes, or a sliding window of this process's own;
/// either learns the workspace's limit from its 429s (unless
/// `--fixed-rate`), the Redis one once for every process sharing it.
fn with_limiter(
    builder: ClientBuilder,
    import: &Import,
    shared: SharedBudget<'_>,
) -> Result<ClientBuilder, Error> {
    let SharedBudget { limit, class, .. } = shared;
    // A dry run sends nothing, so it shares no budget either.
    if let Some(url) = import.redis_url.as_ref().filter(|_| !import.dry_run) {
        let redis = redis_limiter(url, import, shared)?;
        log::info!(
            "sharing {} requests/s through Redis",
            redis.limit().per_second()
        );
        Ok(builder.limiter(class, redis))
    } else {
        // `--adaptive` is the default; it stays accepted for old scripts.
        Ok(builder
            .rate_limit(class, limit)
            .learning(!import.fixed_rate))
    }
}

/// What the import's budget is: its limit, for which API class and
/// workspace, and the flag that stops the import (and its waits for Redis).
#[derive(Clone, Copy)]
struct SharedBudget<'a> {
    limit: RateLimit,
    class: ApiClass,
    workspace: &'a str,
    stop: Option<&'a Arc<AtomicBool>>,
}

/// `--redis-url` and its flags: a limiter that has recorded (or adopted)
/// its settings beside the shared state, or the reason it may not share it.
fn redis_limiter(
    url: &str,
    import: &Import,
    shared: SharedBudget<'_>,
) -> Result<RedisLimiter, Error> {
    let SharedBudget {
        limit,
        class,
        workspace,
        stop,
    } = shared;
    // Waiting for as long as Redis is away is the default: the shared budget
    // is never overspent and the job carries on by itself. A scheduler that
    // needs the job to end says how long with --redis-wait.
    let when_unreachable = match (import.redis_fallback, import.redis_wait) {
        (Some(share), _) => WhenUnreachable::FallBack { share },
        (None, Some(wait)) => WhenUnreachable::WaitAtMost(wait),
        (None, None) => WhenUnreachable::Wait,
    };
    let mut builder = RedisLimiter::builder(limit)
        .url(url)
        .workspace(workspace)
        .class(class)
        .when_unreachable(when_unreachable)
        .adopt_shared_settings(import.redis_adopt)
        .learning(!import.fixed_rate);
    if let Some(path) = &import.redis_ca {
        let pem = std::fs::read(path).map_err(|error| Error::File {
            flag: "--redis-ca",
            path: path.clone(),
            problem: error.to_string(),
        })?;
        builder = builder.trust_ca(pem);
    }
    if let Some(stop) = stop {
        // A signal ends every wait for Redis, as it ends the import.
        builder = builder.stop_when(Arc::clone(stop));
    }
    let redis = builder.build()?;
    match redis.connect() {
        // Logged by the limiter, which waits or falls back as configured.
        Ok(()) | Err(cio_ratelimit::Error::RedisUnreachable { .. }) => Ok(redis),
        // A password, database or certificate to fix: waiting would not help.
        Err(cio_ratelimit::Error::RedisRefused {
            url,
            setting,
            reason,
        }) => Err(Error::RedisRefused {
            flag: match setting {
                "trust_ca" => "--redis-ca",
                _ => "--redis-url",
            },
            url,
            reason,
        }),
        Err(error) => Err(error.into()),
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
    if import.format() == FormatArg::Ndjson {
        let csv_flags = [
            (import.id_column.is_some(), "--id-column"),
            (import.csv_strings, "--csv-strings"),
        ];
        if let Some((_, flag)) = csv_flags.into_iter().find(|(given, _)| *given) {
            return Err(Error::CsvOnly { flag });
        }
    }
    let global = &import.global;
    let target = Target::of(import.api);
    let embedded = global.emulator.then(Embedded::start).transpose()?;
    let (builder, site_id) = match &embedded {
        Some(embedded) => (
            embedded.client_builder(global)?,
            Some(cio_emulator::DEFAULT_SITE_ID.to_owned()),
        ),
        None => {
            let credentials = if import.dry_run {
                Credentials::dry_run()
            } else {
                Credentials::from_args(global, target.credentials)?
            };
            let site_id = credentials.site_id().map(str::to_owned);
            (credentials.client_builder(global)?, site_id)
        }
    };
    // A Track budget is the site's; Pipelines calls carry no site id, so
    // every Pipelines import through one Redis shares one budget.
    let workspace = match target.api {
        ImportApi::Track => site_id.expect("Track credentials were resolved"),
        ImportApi::Pipelines => "pipelines".to_owned(),
    };
    // The API's preset, or its burst for the rate given.
    let limit = match (import.rate, import.burst) {
        (None, None) => target.preset,
        (Some(rate), None) => RateLimit::at(rate)?,
        (rate, Some(burst)) => RateLimit::new(rate.unwrap_or(target.preset.per_second()), burst)?,
    };
    // From here on, SIGINT and SIGTERM stop the import cleanly, and end
    // any wait for Redis.
    let signals = StopSignals::install()
        .inspect_err(|error| log::warn!("a signal will not stop the import cleanly: {error}"))
        .ok();
    let stop = signals.as_ref().map(StopSignals::flag);
    let shared = SharedBudget {
        limit,
        class: target.class,
        workspace: &workspace,
        stop: stop.as_ref(),
    };
    let client = with_limiter(builder, import, shared)?
        .max_idle_connections(usize::from(import.workers))
        .build()?;
    let limiter = client.limiter(target.class).clone();
    let rate_in_force = {
        let limiter = limiter.clone();
        move || limiter.rate().unwrap_or(limit.per_second())
    };
    let metrics = match &import.metrics_file {
        Some(path) => Some(MetricsFile::create(path, rate_in_force())?),
        None => None,
    };
    let metrics = Arc::new(Mutex::new(metrics));
    let display = Arc::new(Mutex::new(ProgressDisplay::new(
        io::stderr().is_terminal(),
        import.progress_every,
    )));
    // Each change of the rate is shown once, as the progress reports find it.
    let mut shown_until = None;
    let mut importer = Importer::builder(client)
        .api(target.api)
        .mode(match import.mode {
            ModeArg::Batch => ImportMode::Batch,
            ModeArg::Single => ImportMode::Single,
        })
        .workers(usize::from(import.workers))
        .resume(import.resume)
        .dry_run(import.dry_run)
        .progress({
            let display = display.clone();
            let metrics = metrics.clone();
            let rate_in_force = rate_in_force.clone();
            let limiter = limiter.clone();
            move |progress| {
                let rate = RateReport::of(&limiter);
                let mut display = display.lock().expect("the display lock");
                for change in rate.changes.iter().filter(|c| Some(c.at) > shown_until) {
                    display.rate_changed(change);
                }
                shown_until = rate.changes.last().map(|change| change.at).or(shown_until);
                display.update(progress, &rate);
                if let Some(metrics) = metrics.lock().expect("the metrics lock").as_mut() {
                    metrics.update(progress, rate_in_force());
                }
            }
        });
    if import.format() == FormatArg::Csv {
        let mut options = CsvOptions::new().strings(import.csv_strings);
        if let Some(column) = &import.id_column {
            options = options.id_column(column);
        }
        importer = importer.csv(options);
    }
    if let Some(path) = &import.dead_letter {
        importer = importer.dead_letter(path);
    }
    if let Some(path) = &import.checkpoint {
        importer = importer.checkpoint(path);
    }
    if let Some(signals) = &signals {
        importer = importer.stop_when(signals.flag());
    }
    let importer = importer.build()?;
    log::info!(
        "importing {} at {} requests/s, burst {}",
        import.input.display(),
        limit.per_second(),
        limit.burst()
    );
    let result = match (import.input.as_os_str() == "-", &signals) {
        (true, Some(signals)) => {
            let stdin = StoppableStdin::new(signals.flag()).map_err(|source| Error::Stdin {
                flag: "import -",
                source,
            })?;
            importer.import_reader(stdin, None)
        }
        (true, None) => importer.import_reader(io::stdin().lock(), None),
        (false, _) => importer.import_file(&import.input),
    };
    display.lock().expect("the display lock").finish();
    if let Some(metrics) = metrics.lock().expect("the metrics lock").as_mut() {
        let (progress, ended) = match &result {
            Ok(summary) => (&summary.progress, exit_of(summary)),
            Err(failure) => (&failure.summary.progress, Exit::of(&failure.error)),
        };
        let state = metrics::State {
            rate: rate_in_force(),
            ended: Some(ended),
        };
        metrics.finish(progress, state);
    }
    output.rate(RateReport::of(&limiter));
    if let Some(embedded) = embedded {
        output.arrived(embedded.finish());
    }
    match result {
        Ok(summary) => {
            let exit = exit_of(&summary);
            let summary = Box::new(summary);
            output.success(&if import.dry_run {
                Receipt::Checked(summary)
            } else {
                Receipt::Imported(summary)
            })?;
            Ok(exit)
        }
        Err(failure) => {
            // A checkpoint asked for may never have been written (nothing
            // settled yet, or a full disk): only one on disk resumes.
            let resumable = import.checkpoint.as_ref().is_some_and(|path| path.exists());
            let stopped = signals
                .as_ref()
                .and_then(StopSignals::received)
                .filter(|_| failure.error == cio_ratelimit::Error::Stopped)
                .map(|signal| Stopped {
                    signal,
                    resume_command: resume_command(
                        std::env::args_os(),
                        resumable,
                        &suggested_checkpoint(&import.input),
                    ),
                    from_stdin: streamed(&import.input),
                });
            Err(Error::Import {
                failure: Box::new(failure),
                resumable,
                stopped,
            })
        }
    }
}

/// Whether the input is read as a stream: standard input, or a path that
/// is not a regular file (a FIFO, `/dev/stdin`, `<(zcat x.gz)`).
fn streamed(input: &Path) -> bool {
    input.as_os_str() == "-" || std::fs::metadata(input).is_ok_and(|meta| !meta.is_file())
}

/// Where to keep a checkpoint, for an import that kept none: beside the
/// input, or in the current folder for a stream.
fn suggested_checkpoint(input: &Path) -> PathBuf {
    if streamed(input) {
        return PathBuf::from("cio-import.checkpoint");
    }
    let mut name = input.as_os_str().to_owned();
    name.push(".checkpoint");
    PathBuf::from(name)
}

/// How a finished import ends the process.
fn exit_of(summary: &ImportSummary) -> Exit {
    if summary.all_delivered() {
        Exit::Success
    } else {
        Exit::DeadLettered
    }
}
