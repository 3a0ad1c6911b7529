//! `Importer`: stream NDJSON operations into Customer.io, batched, resumable,
//! with every line delivered, dead-lettered, or still ahead of the checkpoint.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::batch::BatchPacker;
use crate::client::client::Client;
use crate::client::event_id::EventId;
use crate::client::item_error::ItemError;
use crate::client::validate;
use crate::error::{Error, Result, TransportKind};
use crate::import::checkpoint::Checkpoint;
use crate::import::dead_letter::DeadLetters;
use crate::import::ledger::{CheckpointFile, Chunk, ChunkId, Ledger, Rejected};
use crate::import::progress::{ImportFailure, ImportSummary, Progress};
use crate::import::reader::{Item, NdjsonReader, content_id};
use crate::limit::clock::SystemClock;
use crate::queue::client_call::{ClientCall, Reply};
use crate::queue::dispatcher::Dispatcher;
use crate::queue::ticket::{JobError, Outcome, Ticket};
use crate::retry::stats::RetryStats;

/// How lines become requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Lines are packed into `/api/v2/batch` requests (under 500 KB each):
    /// thousands of lines per request, so a 50 requests/s budget moves
    /// hundreds of thousands of lines a second.
    #[default]
    Batch,
    /// One `/api/v2/entity` request per line.
    Single,
}

/// A chunk closes once its dead letters reach this size, so that a file of
/// bad lines does not pile them up in memory.
const MAX_CHUNK_DEAD_BYTES: usize = 1 << 20;

/// Imports newline-delimited JSON: one Customer.io v2 operation per line (the
/// body `/api/v2/entity` takes), in constant memory.
///
/// - Lines are validated, and sent byte for byte as they were read; events
///   without an `id` get one derived from the import and the line number, so
///   a retried or resumed import never counts an event twice.
/// - Requests go through a [`Dispatcher`](crate::Dispatcher) of
///   [`ClientCall`]s, as a program's own would, and the client isolates the
///   items the server rejects ([`Client::send_batch`]).
/// - Bad input never stops the import: invalid JSON, invalid operations,
///   items over 32 KB, and items the server rejects (a 400, or a 207 item
///   error) go to the dead-letter file with their line number and reason.
/// - Refused credentials and the wrong region stop it at once; transient
///   failures that outlast the retries stop it with the checkpoint intact —
///   they never turn good lines into dead letters.
/// - The checkpoint advances only over a contiguous prefix of lines that are
///   done, so a resume after a crash (even `kill -9`) loses nothing and
///   repeats only what was in flight.
/// - Retries and 429s are counted per call: two imports sharing one
///   [`Client`] each report their own.
///
/// ```
/// use cio_ratelimit::{Client, Importer};
/// # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
/// # let dir = std::env::temp_dir().join(format!("cio-import-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
///
/// let client = Client::builder(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY)
///     .track_url(emulator.url())
///     .build()?;
/// let input = concat!(
///     r#"{"type":"person","action":"identify","identifiers":{"id":"1"},"attributes":{"plan":"pro"}}"#, "\n",
///     r#"{"type":"person","action":"event","identifiers":{"id":"1"},"name":"signed_up"}"#, "\n",
///     "not json\n",
/// );
/// let summary = Importer::builder(client)
///     .dead_letter(dir.join("dead.ndjson"))
///     .progress(|p| eprintln!("{p}"))
///     .build()?
///     .import_reader(input.as_bytes(), None)
///     .map_err(|failure| failure.error)?;
/// assert_eq!((summary.progress.delivered, summary.progress.dead_lettered), (2, 1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Importer {
    client: Client,
    mode: ImportMode,
    workers: usize,
    dead_letter: Option<PathBuf>,
    checkpoint: Option<PathBuf>,
    resume: bool,
    import_id: Option<String>,
    progress: Option<ProgressCallback>,
    progress_every: Duration,
    checkpoint_every: Duration,
    max_batch_bytes: Option<usize>,
}

type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// Builds an [`Importer`].
pub struct ImporterBuilder {
    importer: Importer,
}

// An import ends once, with the counts it reached: returning them by value
// beats boxing them for the caller.
#[allow(clippy::result_large_err)]
impl Importer {
    /// Requests in flight at once unless [`workers`](ImporterBuilder::workers) says otherwise.
    pub const DEFAULT_WORKERS: usize = 4;

    /// Starts building an importer that sends through `client` (its Track
    /// limiter sets the rate; its retry policy the retries).
    pub fn builder(client: Client) -> ImporterBuilder {
        ImporterBuilder {
            importer: Importer {
                client,
                mode: ImportMode::Batch,
                workers: Importer::DEFAULT_WORKERS,
                dead_letter: None,
                checkpoint: None,
                resume: false,
                import_id: None,
                progress: None,
                progress_every: Duration::from_millis(200),
                checkpoint_every: Duration::from_millis(250),
                max_batch_bytes: None,
            },
        }
    }

    /// Imports a file. Unless set, the dead-letter file is `<path>.dead-letter.ndjson`
    /// and the import id is derived from the file's size and first 64 KB, so
    /// importing the same file again repeats the same event ids.
    ///
    /// # Errors
    ///
    /// [`ImportFailure`]: why it stopped, and how far it got.
    pub fn import_file(mut self, path: &Path) -> std::result::Result<ImportSummary, ImportFailure> {
        let opened = File::open(path).and_then(|file| Ok((file.metadata()?.len(), file)));
        let (size, mut file) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                return Err(failure_before_start(Error::io(
                    "open the input",
                    path,
                    &err,
                )));
            }
        };
        if self.dead_letter.is_none() {
            let mut name = path.file_name().unwrap_or_default().to_owned();
            name.push(".dead-letter.ndjson");
            self.dead_letter = Some(path.with_file_name(name));
        }
        if self.import_id.is_none() {
            match content_id(&mut file, size) {
                Ok(id) => self.import_id = Some(id),
                Err(err) => {
                    return Err(failure_before_start(Error::io(
                        "read the input",
                        path,
                        &err,
                    )));
                }
            }
        }
        self.run(BufReader::with_capacity(1 << 16, file), Some(size))
    }

    /// Imports from any reader, e.g. standard input. `total_bytes`, when
    /// known, feeds the ETA. Unless set, the dead-letter file is
    /// `cio-import.dead-letter.ndjson` in the current directory and the import
    /// id is random (a resume takes it from the checkpoint).
    ///
    /// # Errors
    ///
    /// [`ImportFailure`]: why it stopped, and how far it got.
    pub fn import_reader(
        mut self,
        input: impl BufRead,
        total_bytes: Option<u64>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        if self.dead_letter.is_none() {
            self.dead_letter = Some(PathBuf::from("cio-import.dead-letter.ndjson"));
        }
        self.run(input, total_bytes)
    }

    fn run(
        self,
        input: impl BufRead,
        total_bytes: Option<u64>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        let (mut run, mut reader) = match Run::start(self, input, total_bytes) {
            Ok(started) => started,
            Err(error) => return Err(failure_before_start(error)),
        };
        let outcome = run.read_all(&mut reader).and_then(|()| run.finish());
        run.end(outcome)
    }
}

impl ImporterBuilder {
    /// [`ImportMode::Batch`] (the default) or [`ImportMode::Single`].
    pub fn mode(mut self, mode: ImportMode) -> Self {
        self.importer.mode = mode;
        self
    }

    /// Requests in flight at once; default [`Importer::DEFAULT_WORKERS`]. The
    /// client's limiter sets the rate whatever this is; more workers keep it
    /// up when requests are slow or back off after failures.
    pub fn workers(mut self, workers: usize) -> Self {
        self.importer.workers = workers;
        self
    }

    /// Where dead letters go (NDJSON: `{"line", "reason", "original"}`).
    pub fn dead_letter(mut self, path: impl Into<PathBuf>) -> Self {
        self.importer.dead_letter = Some(path.into());
        self
    }

    /// Keeps a checkpoint in this file, so that the import can resume.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.importer.checkpoint = Some(path.into());
        self
    }

    /// Continues after the line the checkpoint names, with its import id.
    pub fn resume(mut self, resume: bool) -> Self {
        self.importer.resume = resume;
        self
    }

    /// The id events without one derive theirs from (with their line number).
    pub fn import_id(mut self, import_id: impl Into<String>) -> Self {
        self.importer.import_id = Some(import_id.into());
        self
    }

    /// Called with a [`Progress`] report a few times a second, and at the end.
    pub fn progress(mut self, callback: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.importer.progress = Some(Box::new(callback));
        self
    }

    /// Packs batch bodies up to this size instead of Customer.io's limit,
    /// e.g. for shorter requests on a slow link.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.importer.max_batch_bytes = Some(bytes);
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: zero workers, `resume`
    /// without a checkpoint, an empty import id, or a zero `max_batch_bytes`.
    pub fn build(self) -> Result<Importer> {
        let importer = self.importer;
        if importer.workers == 0 {
            return Err(Error::invalid("workers", 0, "at least 1"));
        }
        if importer.max_batch_bytes == Some(0) {
            return Err(Error::invalid("max_batch_bytes", 0, "more than zero"));
        }
        if importer.resume && importer.checkpoint.is_none() {
            return Err(Error::invalid(
                "resume",
                true,
                "a checkpoint file to resume from",
            ));
        }
        if importer.import_id.as_deref().is_some_and(str::is_empty) {
            return Err(Error::invalid("import_id", "\"\"", "a non-empty id"));
        }
        Ok(importer)
    }
}

impl fmt::Debug for Importer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Importer")
            .field("mode", &self.mode)
            .field("workers", &self.workers)
            .field("dead_letter", &self.dead_letter)
            .field("checkpoint", &self.checkpoint)
            .field("resume", &self.resume)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ImporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.importer.fmt(f)
    }
}

/// A call the import made, handed back with what came of it and what it cost.
struct Sent {
    call: ClientCall,
    result: Result<Reply>,
    stats: RetryStats,
}

impl Outcome for Sent {
    fn is_failure(&self) -> bool {
        self.result.is_err()
    }
}

impl Sent {
    /// The items the server rejected, for the dead-letter file; `Err` when
    /// the call failed as a whole.
    fn rejected(self) -> Result<Vec<Rejected>> {
        let items = match self.result {
            Ok(Reply::Batch(response)) => response.rejected,
            Ok(_) => Vec::new(),
            // One operation alone: the server refused its content.
            Err(error) => match (&self.call, ItemError::from_error(0, &error)) {
                (ClientCall::Entity(_), Some(item)) => vec![item],
                _ => return Err(error),
            },
        };
        let sent = |index| match &self.call {
            ClientCall::Batch(batch) => batch.item(index),
            ClientCall::Entity(operation) => Some(operation.as_bytes()),
            _ => None,
        };
        Ok(items
            .into_iter()
            .map(|item| Rejected {
                index: item.index,
                reason: format!("rejected by Customer.io: {}", item.explanation()),
                original: String::from_utf8_lossy(sent(item.index).unwrap_or_default())
                    .into_owned(),
            })
            .collect())
    }
}

/// One import in progress: lines are read into chunks, each chunk's request
/// goes through the queue, and the ledger settles the chunks in order.
struct Run {
    mode: ImportMode,
    packer: BatchPacker,
    /// The chunk being filled.
    chunk: Chunk,
    dispatcher: Dispatcher<ClientCall, Sent>,
    /// Requests sent and not yet settled, in input order.
    in_flight: VecDeque<(ChunkId, Ticket<Sent>)>,
    ledger: Ledger,
    /// A chunk failed: nothing after it may be settled.
    chunk_failed: bool,
    progress: Progress,
    dead_letter_path: PathBuf,
    started: Instant,
    callback: Option<ProgressCallback>,
    progress_every: Duration,
    last_progress: Instant,
}

impl Run {
    fn start<R: BufRead>(
        importer: Importer,
        input: R,
        total_bytes: Option<u64>,
    ) -> Result<(Run, NdjsonReader<R>)> {
        let dead_letter_path = importer
            .dead_letter
            .clone()
            .expect("set by import_file or import_reader");
        let resumed = match (&importer.checkpoint, importer.resume) {
            (Some(path), true) => {
                let checkpoint = Checkpoint::load(path)?;
                if let Some(id) = importer
                    .import_id
                    .as_ref()
                    .filter(|id| *id != checkpoint.import_id())
                {
                    return Err(Error::Checkpoint {
                        path: path.clone(),
                        reason: format!(
                            "it belongs to import {:?}, not {id:?}: resume with the same input",
                            checkpoint.import_id()
                        ),
                    });
                }
                Some(checkpoint)
            }
            (Some(path), false) if path.exists() => {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    reason: "a checkpoint from an earlier import is there: resume it, or delete it to start over"
                        .into(),
                });
            }
            _ => None,
        };
        let (import_id, skip_to, before, dead_letters) = match resumed {
            Some(checkpoint) => (
                checkpoint.import_id().to_owned(),
                checkpoint.line(),
                (checkpoint.delivered(), checkpoint.dead_lettered()),
                DeadLetters::resume(&dead_letter_path, checkpoint.line())?,
            ),
            None => (
                importer
                    .import_id
                    .clone()
                    .unwrap_or_else(|| EventId::new().to_string()),
                0,
                (0, 0),
                DeadLetters::start(&dead_letter_path)?,
            ),
        };
        let client = importer.client;
        let dispatcher = Dispatcher::builder()
            .workers(importer.workers)
            .capacity(importer.workers * 2)
            .build(move |call: ClientCall| {
                let (result, stats) = RetryStats::during(|| call.run(&client));
                Sent {
                    call,
                    result,
                    stats,
                }
            })?;
        let packer = match importer.max_batch_bytes {
            Some(bytes) => BatchPacker::with_limits(bytes, validate::MAX_ITEM_BYTES)?,
            None => BatchPacker::new(),
        };
        let checkpoint = importer.checkpoint.map(|path| CheckpointFile {
            path,
            import_id: import_id.clone(),
            before,
        });
        let ledger = Ledger::new(
            dead_letters,
            checkpoint,
            skip_to,
            Arc::new(SystemClock),
            importer.checkpoint_every,
        );
        let now = Instant::now();
        let run = Run {
            mode: importer.mode,
            packer,
            chunk: Chunk::default(),
            dispatcher,
            in_flight: VecDeque::new(),
            ledger,
            chunk_failed: false,
            progress: Progress {
                total_bytes,
                checkpoint_line: skip_to,
                ..Progress::default()
            },
            dead_letter_path,
            started: now,
            callback: importer.progress,
            progress_every: importer.progress_every,
            last_progress: now,
        };
        Ok((run, NdjsonReader::new(input, import_id, skip_to)))
    }

    /// Reads every line, sending chunks and settling those that are done.
    fn read_all(&mut self, reader: &mut NdjsonReader<impl BufRead>) -> Result<()> {
        while let Some(record) = reader
            .next_record()
            .map_err(|err| Error::io("read the input", Path::new("-"), &err))?
        {
            let line = record.line;
            if !matches!(record.item, Item::Skipped) {
                self.progress.lines_read += 1;
                self.progress.bytes_read += record.bytes_read;
            }
            match record.item {
                Item::Skipped => {
                    self.progress.skipped += 1;
                    self.chunk.pass(line);
                }
                Item::Blank => self.chunk.pass(line),
                Item::Bad { reason, original } => self.dead_letter(line, reason, &original)?,
                Item::Operation(operation) => match self.mode {
                    ImportMode::Single => {
                        self.close_chunk(None)?;
                        self.chunk.add_item(line);
                        self.close_chunk(Some(ClientCall::Entity(operation)))?;
                    }
                    ImportMode::Batch => match self.packer.push(&operation) {
                        Err(invalid) => {
                            self.dead_letter(line, invalid.to_string(), operation.as_bytes())?
                        }
                        Ok(full) => {
                            if let Some(full) = full {
                                self.close_chunk(Some(ClientCall::Batch(full)))?;
                            }
                            self.chunk.add_item(line);
                        }
                    },
                },
            }
            self.settle_done()?;
        }
        Ok(())
    }

    fn dead_letter(&mut self, line: u64, reason: String, original: &[u8]) -> Result<()> {
        self.chunk.add_dead(line, reason, original);
        if self.chunk.dead_bytes() >= MAX_CHUNK_DEAD_BYTES {
            let batch = self.packer.finish().map(ClientCall::Batch);
            self.close_chunk(batch)?;
        }
        Ok(())
    }

    /// Ends the current chunk and sends its request, if any.
    fn close_chunk(&mut self, call: Option<ClientCall>) -> Result<()> {
        let chunk = std::mem::take(&mut self.chunk);
        if chunk.is_empty() && call.is_none() {
            return Ok(());
        }
        let id = self.ledger.open(chunk, call.is_some())?;
        if let Some(call) = call {
            let ticket = self
                .dispatcher
                .submit(call)
                .map_err(|_| transport("the import's senders stopped"))?;
            self.in_flight.push_back((id, ticket));
        }
        Ok(())
    }

    /// Settles the requests at the front that are done, without waiting.
    fn settle_done(&mut self) -> Result<()> {
        while let Some(result) = self.in_flight.front().and_then(|(_, t)| t.try_wait()) {
            let (id, _) = self.in_flight.pop_front().expect("the front exists");
            self.settle(id, result)?;
        }
        self.report(false)
    }

    /// Counts what a request cost and hands its answer to the ledger.
    fn settle(&mut self, id: ChunkId, sent: std::result::Result<Sent, JobError>) -> Result<()> {
        let rejected = sent
            .map_err(|err| transport(&format!("the import's sender failed: {err}")))
            .and_then(|sent| {
                self.progress.requests += sent.stats.requests;
                self.progress.retried += sent.stats.retries;
                self.progress.throttled += sent.stats.throttled;
                sent.rejected()
            });
        match rejected {
            Ok(rejected) => self.ledger.acknowledge(id, rejected),
            Err(error) => {
                self.ledger.fail(id);
                self.chunk_failed = true;
                Err(error)
            }
        }
    }

    /// Sends what is left and waits for every request.
    fn finish(&mut self) -> Result<()> {
        let last = self.packer.finish().map(ClientCall::Batch);
        self.close_chunk(last)?;
        while let Some((id, ticket)) = self.in_flight.pop_front() {
            // Wait in slices, so that progress keeps being reported.
            let result = loop {
                if let Some(result) = ticket.wait_timeout(self.progress_every) {
                    break result;
                }
                self.report(false)?;
            };
            self.settle(id, result)?;
            self.report(false)?;
        }
        Ok(())
    }

    /// Wraps up: on failure, stops the senders and settles what finished
    /// before the failed chunk; then stores the checkpoint and reports.
    #[allow(clippy::result_large_err)]
    fn end(mut self, outcome: Result<()>) -> std::result::Result<ImportSummary, ImportFailure> {
        let mut error = outcome.err();
        if error.is_some() {
            // Queued requests are not sent; running ones finish.
            self.dispatcher.shutdown_timeout(Duration::ZERO);
            // When the error was not a request's (a file, say), the requests
            // before it may still settle; after a failed one, none may.
            while let Some((id, ticket)) = self.in_flight.pop_front().filter(|_| !self.chunk_failed)
            {
                if let Err(err) = self.settle(id, ticket.wait()) {
                    error.get_or_insert(err);
                }
            }
        }
        if let Err(err) = self.ledger.store_checkpoint() {
            error.get_or_insert(err);
        }
        let _ = self.report(true);
        let summary = ImportSummary {
            progress: self.progress.clone(),
            dead_letter_file: self
                .ledger
                .has_dead_letters()
                .then(|| self.dead_letter_path.clone()),
        };
        match error {
            None => Ok(summary),
            Some(error) => Err(ImportFailure { error, summary }),
        }
    }

    fn report(&mut self, last: bool) -> Result<()> {
        self.progress.delivered = self.ledger.delivered();
        self.progress.dead_lettered = self.ledger.dead_lettered();
        self.progress.checkpoint_line = self.ledger.line();
        if !last && self.last_progress.elapsed() < self.progress_every {
            return Ok(());
        }
        self.last_progress = Instant::now();
        self.progress.elapsed = self.started.elapsed();
        if let Some(callback) = &mut self.callback {
            callback(&self.progress);
        }
        self.ledger.store_checkpoint_if_due()
    }
}

fn transport(message: &str) -> Error {
    Error::Transport {
        kind: TransportKind::Other,
        message: message.to_owned(),
    }
}

fn failure_before_start(error: Error) -> ImportFailure {
    ImportFailure {
        error,
        summary: ImportSummary {
            progress: Progress::default(),
            dead_letter_file: None,
        },
    }
}
