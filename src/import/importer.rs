//! `Importer`: stream NDJSON operations into Customer.io, batched, resumable,
//! with every line delivered, dead-lettered, or still ahead of the checkpoint.

use std::collections::VecDeque;
use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::client::batch::{Batch, BatchPacker};
use crate::client::client::Client;
use crate::client::event_id::EventId;
use crate::client::operation::{Operation, lacks_event_id};
use crate::client::validate;
use crate::error::{Error, Result, TransportKind};
use crate::import::checkpoint::Checkpoint;
use crate::import::dead_letter::{DeadLetter, DeadLetters};
use crate::import::progress::{ImportFailure, ImportSummary, Progress};
use crate::queue::dispatcher::Dispatcher;
use crate::queue::ticket::{JobError, Ticket};
use crate::retry::policy::RetryStats;

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

/// Lines longer than this are dead-lettered unread past this point: no item
/// can be over 32 KB anyway, and memory stays bounded.
const MAX_LINE_BYTES: usize = 1 << 20;
/// A chunk closes once its dead letters reach this size, so that a file of
/// bad lines does not pile them up in memory.
const MAX_CHUNK_DEAD_BYTES: usize = 1 << 20;

/// Imports newline-delimited JSON: one Customer.io v2 operation per line (the
/// body `/api/v2/entity` takes), in constant memory.
///
/// - Lines are validated; events without an `id` get one derived from the
///   import and the line number, so a retried or resumed import never counts
///   an event twice.
/// - Bad input never stops the import: invalid JSON, invalid operations,
///   items over 32 KB, and items the server rejects (a 400, or a 207 item
///   error) go to the dead-letter file with their line number and reason.
/// - Refused credentials and the wrong region stop it at once; transient
///   failures that outlast the retries stop it with the checkpoint intact —
///   they never turn good lines into dead letters.
/// - The checkpoint advances only over a contiguous prefix of lines that are
///   done, so a resume after a crash (even `kill -9`) loses nothing and
///   repeats only what was in flight.
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
    /// Starts building an importer that sends through `client` (its Track
    /// limiter sets the rate; its retry policy the retries).
    pub fn builder(client: Client) -> ImporterBuilder {
        ImporterBuilder {
            importer: Importer {
                client,
                mode: ImportMode::Batch,
                workers: 4,
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
        let mut run = match Run::start(self, total_bytes) {
            Ok(run) => run,
            Err(error) => return Err(failure_before_start(error)),
        };
        let outcome = run.read_all(input).and_then(|()| run.finish());
        run.end(outcome)
    }
}

impl ImporterBuilder {
    /// [`ImportMode::Batch`] (the default) or [`ImportMode::Single`].
    pub fn mode(mut self, mode: ImportMode) -> Self {
        self.importer.mode = mode;
        self
    }

    /// Requests in flight at once; default 4. The client's limiter sets the
    /// rate whatever this is.
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
    /// [`Error::InvalidConfig`] for zero workers, or `resume` without a checkpoint.
    pub fn build(self) -> Result<Importer> {
        let importer = self.importer;
        if importer.workers == 0 {
            return Err(Error::invalid("workers", 0, "at least 1"));
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

/// What a worker sends for one chunk of lines.
enum Job {
    Batch(Batch),
    Single(Operation),
}

/// An item the server refused: its index in the request, why, and what was sent.
struct Rejection {
    index: usize,
    reason: String,
    sent: String,
}

type JobResult = std::result::Result<Vec<Rejection>, Error>;

/// Statuses that mean "this content is wrong", not "the request failed".
fn rejects_content(error: &Error) -> Option<String> {
    match error {
        Error::Status {
            status: status @ (400 | 413 | 422),
            message,
            ..
        } => Some(format!(
            "rejected by Customer.io (HTTP {status}): {message}"
        )),
        _ => None,
    }
}

impl Job {
    /// Sends the chunk: a batch, falling back to one request per item when
    /// the server refuses the whole batch, so that only bad items are
    /// dead-lettered.
    fn send(self, client: &Client) -> JobResult {
        match self {
            Job::Single(operation) => match client.send_entity(&operation) {
                Ok(()) => Ok(Vec::new()),
                Err(error) => match rejects_content(&error) {
                    Some(reason) => Ok(vec![Rejection {
                        index: 0,
                        reason,
                        sent: String::from_utf8_lossy(&operation.to_bytes()).into_owned(),
                    }]),
                    None => Err(error),
                },
            },
            Job::Batch(batch) => match client.send_batch(&batch) {
                Ok(response) if response.all_accepted() => Ok(Vec::new()),
                Ok(response) => {
                    let items = batch_items(&batch);
                    Ok(response
                        .rejected
                        .into_iter()
                        .map(|item| Rejection {
                            index: item.index,
                            sent: items
                                .get(item.index)
                                .map(Value::to_string)
                                .unwrap_or_default(),
                            reason: format!(
                                "rejected by Customer.io: {}{}{}",
                                item.reason,
                                item.field
                                    .map(|field| format!(" ({field})"))
                                    .unwrap_or_default(),
                                if item.message.is_empty() {
                                    String::new()
                                } else {
                                    format!(": {}", item.message)
                                }
                            ),
                        })
                        .collect())
                }
                Err(error) if rejects_content(&error).is_some() => {
                    let mut rejections = Vec::new();
                    for (index, item) in batch_items(&batch).into_iter().enumerate() {
                        let sent = item.to_string();
                        let rejected = match Operation::from_json_any_size(item) {
                            Ok(operation) => match client.send_entity(&operation) {
                                Ok(()) => None,
                                Err(error) => Some(rejects_content(&error).ok_or(error)?),
                            },
                            Err(invalid) => Some(invalid.to_string()),
                        };
                        if let Some(reason) = rejected {
                            rejections.push(Rejection {
                                index,
                                reason,
                                sent,
                            });
                        }
                    }
                    Ok(rejections)
                }
                Err(error) => Err(error),
            },
        }
    }
}

/// The items of a batch this crate packed (only on the rare paths that need them).
fn batch_items(batch: &Batch) -> Vec<Value> {
    serde_json::from_slice::<Value>(batch.body())
        .ok()
        .and_then(|mut body| body.get_mut("batch").map(Value::take))
        .and_then(|items| match items {
            Value::Array(items) => Some(items),
            _ => None,
        })
        .unwrap_or_default()
}

/// Lines in input order, up to `last_line`, that travel and finish together.
struct Chunk {
    last_line: u64,
    /// The line of each item in the request, in order.
    item_lines: Vec<u64>,
    /// Bad lines in the chunk's range, found before sending.
    dead: Vec<DeadLetter>,
    dead_bytes: usize,
    ticket: Option<Ticket<JobResult>>,
}

impl Chunk {
    fn new() -> Chunk {
        Chunk {
            last_line: 0,
            item_lines: Vec::new(),
            dead: Vec::new(),
            dead_bytes: 0,
            ticket: None,
        }
    }
}

/// One import in progress.
struct Run {
    client: Client,
    mode: ImportMode,
    import_id: String,
    checkpoint_path: Option<PathBuf>,
    dead_letter_path: PathBuf,
    dead_letters: DeadLetters,
    dispatcher: Dispatcher<Job, JobResult>,
    packer: BatchPacker,
    chunk: Chunk,
    pending: VecDeque<Chunk>,
    progress: Progress,
    /// Counts from the checkpoint a resume started from.
    resumed: (u64, u64),
    skip_to: u64,
    retries_at_start: RetryStats,
    started: Instant,
    callback: Option<ProgressCallback>,
    progress_every: Duration,
    last_progress: Instant,
    checkpoint_every: Duration,
    last_checkpoint: Instant,
    stored_line: u64,
    /// A chunk failed: nothing after it may be settled, or the checkpoint
    /// would pass its lines.
    chunk_failed: bool,
}

impl Run {
    fn start(importer: Importer, total_bytes: Option<u64>) -> Result<Run> {
        let dead_letter_path = importer
            .dead_letter
            .clone()
            .expect("set by import_file or import_reader");
        let (import_id, skip_to, dead_letters, resumed) = match (
            &importer.checkpoint,
            importer.resume,
        ) {
            (Some(path), true) => {
                let checkpoint = Checkpoint::load(path)?;
                if let Some(id) = importer
                    .import_id
                    .as_ref()
                    .filter(|id| **id != checkpoint.import_id)
                {
                    return Err(Error::Checkpoint {
                        path: path.clone(),
                        reason: format!(
                            "it belongs to import {:?}, not {id:?}: resume with the same input",
                            checkpoint.import_id
                        ),
                    });
                }
                let letters = DeadLetters::resume(&dead_letter_path, checkpoint.line)?;
                (
                    checkpoint.import_id,
                    checkpoint.line,
                    letters,
                    (checkpoint.delivered, checkpoint.dead_lettered),
                )
            }
            (Some(path), false) if path.exists() => {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    reason: "a checkpoint from an earlier import is there: resume it, or delete it to start over"
                        .into(),
                });
            }
            _ => {
                let id = importer
                    .import_id
                    .clone()
                    .unwrap_or_else(|| EventId::new().to_string());
                (id, 0, DeadLetters::start(&dead_letter_path), (0, 0))
            }
        };
        let client = importer.client.clone();
        let sender = importer.client;
        let dispatcher = Dispatcher::builder()
            .workers(importer.workers)
            .capacity(importer.workers * 2)
            .build(move |job: Job| job.send(&sender))?;
        let packer = match importer.max_batch_bytes {
            Some(bytes) => BatchPacker::with_limits(bytes, validate::MAX_ITEM_BYTES),
            None => BatchPacker::new(),
        };
        let now = Instant::now();
        Ok(Run {
            retries_at_start: client.retry_policy().stats(),
            client,
            mode: importer.mode,
            import_id,
            checkpoint_path: importer.checkpoint,
            dead_letter_path,
            dead_letters,
            dispatcher,
            packer,
            chunk: Chunk::new(),
            pending: VecDeque::new(),
            progress: Progress {
                total_bytes,
                checkpoint_line: skip_to,
                ..Progress::default()
            },
            resumed,
            skip_to,
            started: now,
            callback: importer.progress,
            progress_every: importer.progress_every,
            last_progress: now,
            checkpoint_every: importer.checkpoint_every,
            last_checkpoint: now,
            stored_line: skip_to,
            chunk_failed: false,
        })
    }

    /// Reads every line, queueing chunks and settling those that are done.
    fn read_all(&mut self, mut input: impl BufRead) -> Result<()> {
        let mut buffer = Vec::with_capacity(4096);
        let mut line_number = 0u64;
        loop {
            buffer.clear();
            let (read, complete) = read_line(&mut input, &mut buffer)
                .map_err(|err| Error::io("read the input", Path::new("-"), &err))?;
            if read == 0 {
                return Ok(());
            }
            line_number += 1;
            if line_number <= self.skip_to {
                self.progress.skipped += 1;
                continue;
            }
            self.progress.lines_read += 1;
            self.progress.bytes_read += read as u64;
            self.take_line(line_number, &buffer, complete)?;
            self.settle_done()?;
        }
    }

    /// Validates one line and adds it to the current chunk.
    fn take_line(&mut self, line: u64, raw: &[u8], complete: bool) -> Result<()> {
        let text = trim(raw);
        if !complete {
            return self.dead_letter(
                line,
                format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                text,
            );
        }
        if text.iter().all(u8::is_ascii_whitespace) {
            self.chunk.last_line = line;
            return Ok(());
        }
        match self.prepare(line, text) {
            Ok((operation, bytes)) => self.add_item(line, operation, bytes),
            Err(reason) => self.dead_letter(line, reason, text),
        }
    }

    /// A line as an operation and the bytes to send for it, or why it is bad.
    fn prepare(
        &self,
        line: u64,
        text: &[u8],
    ) -> std::result::Result<(Operation, Option<Vec<u8>>), String> {
        let mut value: Value =
            serde_json::from_slice(text).map_err(|err| format!("invalid JSON: {err}"))?;
        let add_id = lacks_event_id(&value);
        if add_id && let Value::Object(object) = &mut value {
            let id = EventId::from_key(&format!("{}:{line}", self.import_id));
            object.insert("id".into(), Value::String(id.to_string()));
        }
        let operation =
            Operation::from_json_any_size(value).map_err(|invalid| invalid.to_string())?;
        // Send the line as it came unless it had to change.
        let bytes = add_id.then(|| operation.to_bytes());
        let size = bytes.as_ref().map_or(text.len(), Vec::len);
        validate::item_size(size).map_err(|invalid| invalid.to_string())?;
        Ok((operation, bytes))
    }

    fn add_item(&mut self, line: u64, operation: Operation, bytes: Option<Vec<u8>>) -> Result<()> {
        match self.mode {
            ImportMode::Single => {
                self.close_chunk(line - 1, None)?;
                self.chunk.item_lines.push(line);
                self.close_chunk(line, Some(Job::Single(operation)))
            }
            ImportMode::Batch => {
                let repeatable = operation.action() != "merge";
                let pushed = match &bytes {
                    Some(bytes) => self.packer.push_bytes(bytes, repeatable),
                    None => self.packer.push_bytes(&operation.to_bytes(), repeatable),
                };
                match pushed {
                    Err(invalid) => {
                        self.dead_letter(line, invalid.to_string(), &operation.to_bytes())
                    }
                    Ok(Some(full)) => {
                        self.close_chunk(line - 1, Some(Job::Batch(full)))?;
                        self.chunk.item_lines.push(line);
                        self.chunk.last_line = line;
                        Ok(())
                    }
                    Ok(None) => {
                        self.chunk.item_lines.push(line);
                        self.chunk.last_line = line;
                        Ok(())
                    }
                }
            }
        }
    }

    fn dead_letter(&mut self, line: u64, reason: String, original: &[u8]) -> Result<()> {
        self.chunk.dead_bytes += reason.len() + original.len();
        self.chunk
            .dead
            .push(DeadLetter::new(line, reason, original));
        self.chunk.last_line = line;
        if self.chunk.dead_bytes >= MAX_CHUNK_DEAD_BYTES {
            let batch = self.packer.finish().map(Job::Batch);
            self.close_chunk(line, batch)?;
        }
        Ok(())
    }

    /// Ends the current chunk at `last_line` and queues its request, if any.
    fn close_chunk(&mut self, last_line: u64, job: Option<Job>) -> Result<()> {
        let mut chunk = std::mem::replace(&mut self.chunk, Chunk::new());
        chunk.last_line = chunk.last_line.max(last_line);
        self.chunk.last_line = chunk.last_line;
        if chunk.item_lines.is_empty() && chunk.dead.is_empty() && job.is_none() {
            // Only blank lines: they are done as soon as what came before is.
            if let Some(previous) = self.pending.back_mut() {
                previous.last_line = chunk.last_line;
                return Ok(());
            }
        }
        if let Some(job) = job {
            self.progress.requests += 1;
            let ticket = self
                .dispatcher
                .submit(job)
                .map_err(|_| transport("the import's senders stopped"))?;
            chunk.ticket = Some(ticket);
        }
        self.pending.push_back(chunk);
        Ok(())
    }

    /// Settles the chunks at the front that are done, without waiting.
    fn settle_done(&mut self) -> Result<()> {
        while let Some(front) = self.pending.front() {
            let result = match &front.ticket {
                None => Ok(Vec::new()),
                Some(ticket) => match ticket.try_wait() {
                    None => break,
                    Some(result) => flatten(result),
                },
            };
            let chunk = self.pending.pop_front().expect("front exists");
            self.settle_or_fail(chunk, result)?;
        }
        self.report(false)
    }

    /// Settles a chunk that succeeded; remembers one that failed.
    fn settle_or_fail(&mut self, chunk: Chunk, result: JobResult) -> Result<()> {
        match result {
            Ok(rejections) => self.settle(chunk, rejections),
            Err(error) => {
                self.chunk_failed = true;
                Err(error)
            }
        }
    }

    /// Writes a finished chunk's dead letters in line order and moves the checkpoint.
    fn settle(&mut self, chunk: Chunk, rejections: Vec<Rejection>) -> Result<()> {
        let mut rejected: Vec<DeadLetter> = rejections
            .into_iter()
            .map(|rejection| {
                let line = chunk
                    .item_lines
                    .get(rejection.index)
                    .copied()
                    .unwrap_or(chunk.last_line);
                DeadLetter::new(line, rejection.reason, rejection.sent.as_bytes())
            })
            .collect();
        let delivered = chunk.item_lines.len() as u64 - rejected.len() as u64;
        rejected.extend(chunk.dead);
        rejected.sort_by_key(|letter| letter.line);
        for letter in &rejected {
            self.dead_letters.write(letter)?;
        }
        self.progress.delivered += delivered;
        self.progress.dead_lettered += rejected.len() as u64;
        self.progress.checkpoint_line = chunk.last_line;
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.store_checkpoint()?;
        }
        Ok(())
    }

    fn store_checkpoint(&mut self) -> Result<()> {
        self.last_checkpoint = Instant::now();
        let Some(path) = &self.checkpoint_path else {
            return Ok(());
        };
        if self.progress.checkpoint_line == self.stored_line {
            return Ok(());
        }
        // Dead letters first: the checkpoint must never pass a line whose
        // dead letter is not on disk.
        self.dead_letters.flush()?;
        Checkpoint {
            version: 1,
            import_id: self.import_id.clone(),
            line: self.progress.checkpoint_line,
            delivered: self.resumed.0 + self.progress.delivered,
            dead_lettered: self.resumed.1 + self.progress.dead_lettered,
        }
        .store(path)?;
        self.stored_line = self.progress.checkpoint_line;
        Ok(())
    }

    /// Sends what is left and waits for every chunk.
    fn finish(&mut self) -> Result<()> {
        let last = self.packer.finish().map(Job::Batch);
        let last_line = self.chunk.last_line;
        self.close_chunk(last_line, last)?;
        while let Some(chunk) = self.pending.pop_front() {
            let result = match &chunk.ticket {
                None => Ok(Vec::new()),
                Some(ticket) => {
                    // Wait in slices, so that progress keeps being reported.
                    loop {
                        if let Some(result) = ticket.wait_timeout(self.progress_every) {
                            break flatten(result);
                        }
                        self.report(false)?;
                    }
                }
            };
            self.settle_or_fail(chunk, result)?;
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
            // Queued chunks are not sent; running ones finish.
            self.dispatcher.shutdown_timeout(Duration::ZERO);
            // When the error was not a chunk's (a file, say), the chunks
            // before it may still settle; after a failed chunk, none may.
            while let Some(mut chunk) = self.pending.pop_front().filter(|_| !self.chunk_failed) {
                let result = match chunk.ticket.take() {
                    None => Ok(Vec::new()),
                    Some(ticket) => flatten(ticket.wait()),
                };
                if let Err(err) = self.settle_or_fail(chunk, result) {
                    error.get_or_insert(err);
                    break;
                }
            }
            // Chunks after the failed one are not acknowledged and the
            // checkpoint stays before them; any still running finish on
            // their own threads.
            self.pending.clear();
        }
        if let Err(err) = self.store_checkpoint() {
            error.get_or_insert(err);
        }
        let _ = self.report(true);
        let summary = ImportSummary {
            progress: self.progress.clone(),
            dead_letter_file: (self.dead_letters.written() > 0 || self.resumed.1 > 0)
                .then(|| self.dead_letter_path.clone()),
        };
        match error {
            None => Ok(summary),
            Some(error) => Err(ImportFailure { error, summary }),
        }
    }

    fn report(&mut self, last: bool) -> Result<()> {
        if !last && self.last_progress.elapsed() < self.progress_every {
            return Ok(());
        }
        self.last_progress = Instant::now();
        let retries = self.client.retry_policy().stats();
        self.progress.retried = retries.retries - self.retries_at_start.retries;
        self.progress.throttled = retries.throttled - self.retries_at_start.throttled;
        self.progress.elapsed = self.started.elapsed();
        if let Some(callback) = &mut self.callback {
            callback(&self.progress);
        }
        if self.last_checkpoint.elapsed() >= self.checkpoint_every {
            self.store_checkpoint()?;
        }
        Ok(())
    }
}

/// A job's result, with a panicked or abandoned job as an error.
fn flatten(result: std::result::Result<JobResult, JobError>) -> JobResult {
    result.unwrap_or_else(|err| Err(transport(&format!("the import's sender failed: {err}"))))
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

/// Reads one line (without its end) into `buffer`, keeping at most
/// `MAX_LINE_BYTES`: returns the bytes consumed and whether the whole line fit.
fn read_line(input: &mut impl BufRead, buffer: &mut Vec<u8>) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut complete = true;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok((consumed, complete));
        }
        let (part, found) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buffer.len());
        if part.len() > room {
            complete = false;
        }
        buffer.extend_from_slice(&part[..part.len().min(room)]);
        let used = part.len();
        input.consume(used);
        consumed += used;
        if found {
            return Ok((consumed, complete));
        }
    }
}

/// The line without its end of line (`\n` or `\r\n`).
fn trim(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// An import id from a file's size and first 64 KB: the same file gives the
/// same id (so a re-import repeats event ids), a changed one another.
fn content_id(file: &mut File, size: u64) -> io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut head = Vec::with_capacity(1 << 16);
    file.by_ref().take(1 << 16).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let mut key = size.to_string().into_bytes();
    key.push(b':');
    key.extend_from_slice(&head);
    Ok(format!(
        "file-{}",
        EventId::from_key(&String::from_utf8_lossy(&key))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_whole_or_cut_at_the_limit() {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("a\r\nb\n{long}\nlast");
        let mut reader = BufReader::with_capacity(7, input.as_bytes());
        let mut lines = Vec::new();
        loop {
            let mut buffer = Vec::new();
            let (read, complete) = read_line(&mut reader, &mut buffer).unwrap();
            if read == 0 {
                break;
            }
            lines.push((trim(&buffer).len(), complete, read));
        }
        assert_eq!(
            lines,
            vec![
                (1, true, 3),
                (1, true, 2),
                (MAX_LINE_BYTES, false, MAX_LINE_BYTES + 11),
                (4, true, 4)
            ]
        );
    }

    #[test]
    fn content_ids_follow_the_content() {
        let dir = std::env::temp_dir().join(format!("cio-import-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.ndjson");
        std::fs::write(&path, "one\n").unwrap();
        let id = |path: &Path| {
            content_id(
                &mut File::open(path).unwrap(),
                std::fs::metadata(path).unwrap().len(),
            )
        };
        let first = id(&path).unwrap();
        assert_eq!(first, id(&path).unwrap());
        std::fs::write(&path, "two\n").unwrap();
        assert_ne!(first, id(&path).unwrap());
    }
}
