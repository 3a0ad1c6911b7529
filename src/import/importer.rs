//! `Importer`: stream NDJSON operations into Customer.io, batched, resumable,
//! with every line delivered, dead-lettered, or still ahead of the checkpoint.

use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::client::client::Client;
use crate::client::operation::Operation;
use crate::error::{Error, Result};
use crate::import::api::ImportApi;
use crate::import::compressed::decompressed;
use crate::import::content_digest::ContentDigest;
#[cfg(feature = "csv")]
use crate::import::csv_rows::CsvOptions;
use crate::import::entry::Entry;
use crate::import::output_paths::{CheckpointLock, check_dead_letter};
use crate::import::progress::{ImportFailure, ImportSummary, Progress};
use crate::import::reader::{Item, Record};
use crate::import::run::Run;
use crate::import::settings::{ImportMode, ImportSettings};

/// Where dead letters go when the input has no file name to derive it from.
const DEFAULT_DEAD_LETTER: &str = "cio-import.dead-letter.ndjson";

/// Imports newline-delimited JSON: one Customer.io v2 operation per line (the
/// body `/api/v2/entity` takes), or one Pipelines call per line with
/// [`ImportApi::Pipelines`], in constant memory.
///
/// - Lines are validated, and sent byte for byte as they were read; events
///   without an `id` (and Pipelines calls without a `messageId`) get one
///   derived from the line itself (see "Event ids" below), so a retried,
///   resumed, repeated, fixed or extended import never counts one twice.
/// - Requests go through a [`Dispatcher`](crate::Dispatcher) of
///   [`ClientCall`](crate::queue::ClientCall)s, as a program's own would, and the
///   client isolates the items the server rejects ([`Client::send_batch`]).
/// - Bad input never stops the import: invalid JSON, invalid operations,
///   items over 32 KB, and items the server rejects (a 400, or a 207 item
///   error) go to the dead-letter file with their line number and reason.
/// - Refused credentials and the wrong region stop it at once; transient
///   failures that outlast the retries stop it with the checkpoint intact —
///   they never turn good lines into dead letters.
/// - Writes to one person reach Customer.io in input order, whatever the
///   workers, batches, retries and resumes, and a slow answer holds back
///   only the people it names (see "Per-person order" below).
/// - The checkpoint advances only over lines that are all done (the line
///   before the first one still waiting or in flight), so a resume after a
///   crash (even `kill -9`) loses nothing; it repeats what was in flight,
///   and what was delivered after the first line still open.
/// - In batch mode, what is packed goes out once the input has been quiet
///   for a second, so `tail -f log | cio-ratelimit import -` delivers each
///   line within about a second.
/// - Retries and 429s are counted per call: two imports sharing one
///   [`Client`] each report their own.
///
/// ```
/// use cio_ratelimit::{Client, Importer};
/// # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
/// # let dir = cio_test_kit::ScratchDir::new("import-doc");
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
///
/// # Event ids
///
/// An event without an `id` (a Pipelines call without a `messageId`) gets
/// one derived from three things: the line's own bytes (its end of line
/// aside), the number of identical lines before it in the input, and the
/// [`import_id`](ImporterBuilder::import_id) if one is set. Nothing else
/// counts: not the line's number, not the other lines, not whether the
/// input is a file, a pipe or standard input, nor whether it was gzipped.
/// So importing a file again after fixing its dead-lettered lines, after
/// appending lines to it, or after completing a truncated download, gives
/// every event that was already sent the id it had, and Customer.io stores
/// each one once.
///
/// The other side of the rule: the same line in two different files is the
/// same event. Give events a `timestamp` (or an `id`) when two identical
/// lines in different inputs are two events, or keep the imports apart with
/// an [`import_id`](ImporterBuilder::import_id) each.
///
/// To count the identical lines before each one, the importer remembers a
/// 64-bit digest of every line it gave an id: about 9 to 19 MB for a million
/// such lines, up to 28 MB while its table grows (identifies, and events
/// with their own `id`, cost nothing). A
/// resumed import reads the lines before its checkpoint for this, without
/// sending them.
///
/// # Resuming
///
/// A checkpoint keeps a digest of the input up to its line. A resume is
/// accepted when the input's lines up to there are the same (their ends of
/// line aside), whatever follows: lines appended since, or the rest of a
/// truncated gzip file, are sent; other input is refused with
/// [`Error::Checkpoint`] before anything is sent.
///
/// # Per-person order
///
/// An operation's person is its `identifiers` (`id`, else `email`, else
/// `cio_id`), a merge's `primary`, an anonymous event's `anonymous_id`; an
/// object's type and id count as a person too; a Pipelines call's `userId`,
/// else `anonymousId`. A merge also names its `secondary`, and an alias its
/// `previousId`: such a line waits for both people, and holds both.
///
/// A line waits only while an earlier line naming the same person is
/// unsettled: in a request not yet answered (retries and backoffs
/// included), or waiting itself. Lines naming no one never wait. Up to
/// [`workers`](ImporterBuilder::workers) requests are in flight at once,
/// each carrying any ready lines, oldest first (a person's consecutive
/// lines may share one, in order): an identify is never overtaken by the
/// next line's identify, nor a delete by the identify before it, and one
/// slow answer or one person's 503s delay that person alone.
///
/// Meanwhile the reader goes on, into a bounded window: at most
/// 8,000,000 lines past the checkpoint (a byte each), of which at most
/// 16 MiB of line text waits to be sent (about four times that in memory,
/// parsed). That is ~30 s of one stuck request at 50 requests/s in batch
/// mode with 150-byte lines; past it, the reader waits for the answers.
///
/// The limit: a person is matched by the identifier as written. One person
/// named by id on one line and by email on another gives two keys, and
/// nothing in the file says they are the same person, so those two lines
/// may reach Customer.io in either order. Name each person the same way
/// throughout a file when order matters.
pub struct Importer {
    pub(super) settings: ImportSettings,
}

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

    /// Starts building an importer that sends through `client` (its limiter
    /// for the [`ImportApi`] sets the rate; its retry policy the retries).
    pub fn builder(client: Client) -> ImporterBuilder {
        ImporterBuilder {
            importer: Importer {
                settings: ImportSettings {
                    client,
                    api: ImportApi::Track,
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
                    dry_run: false,
                    stop: None,
                    #[cfg(feature = "csv")]
                    csv: None,
                },
            },
        }
    }

    /// Imports a file. Unless set, the dead-letter file is `<path>.dead-letter.ndjson`.
    ///
    /// A path that is not a regular file (a FIFO, `/dev/stdin`, a shell's
    /// `<(zcat x.gz)`) is read once from start to end, as
    /// [`import_reader`](Importer::import_reader) reads, and its dead letters
    /// go where that method puts them unless set.
    /// Events without an `id` get theirs from their line (see "Event ids"
    /// on [`Importer`]), so importing the same file again, or a fixed or
    /// extended copy of it, repeats the same ids.
    ///
    /// Gzip input (feature `gzip`) is recognised by its magic bytes, whatever
    /// the file is called, and decompressed as it streams; standard input too.
    ///
    /// Before the input is read, the files it will write are checked: the
    /// dead-letter file (appended to) must not be the input, the checkpoint,
    /// a device or a folder, and the checkpoint's folder must be writable and
    /// its lock free, so no other import is using it.
    ///
    /// # Errors
    ///
    /// [`ImportFailure`]: why it stopped, and how far it got; with nothing
    /// sent when an output check failed.
    pub fn import_file(mut self, path: &Path) -> std::result::Result<ImportSummary, ImportFailure> {
        let opened = File::open(path).and_then(|file| Ok((file.metadata()?, file)));
        let (metadata, file) = match opened {
            Ok(opened) => opened,
            Err(err) => {
                return Err(failure_before_start(Error::io(
                    "open the input",
                    path,
                    &err,
                )));
            }
        };
        // A pipe, a FIFO or `/dev/stdin` is read as standard input is: from
        // where it is, with no size and no folder of its own to write beside.
        let (size, dead_letter_beside) = match metadata.is_file() {
            true => (Some(metadata.len()), true),
            false => (None, false),
        };
        if self.settings.dead_letter.is_none() {
            self.settings.dead_letter = Some(match dead_letter_beside {
                true => {
                    let mut name = path.file_name().unwrap_or_default().to_owned();
                    name.push(".dead-letter.ndjson");
                    path.with_file_name(name)
                }
                false => PathBuf::from(DEFAULT_DEAD_LETTER),
            });
        }
        let _lock = self
            .check_outputs(Some(path))
            .map_err(failure_before_start)?;
        self.run(BufReader::with_capacity(1 << 16, file), size)
    }

    /// Imports from any reader, e.g. standard input. `total_bytes`, when
    /// known, feeds the ETA. Unless set, the dead-letter file is
    /// `cio-import.dead-letter.ndjson` in the current directory. The files
    /// it will write are checked first, as for [`Importer::import_file`].
    ///
    /// An event without an `id` gets one from its line, as from a file (see
    /// "Event ids" on [`Importer`]): importing the same input again (from a
    /// pipe, say) repeats the same ids, and Customer.io stores none of them
    /// twice.
    ///
    /// # Errors
    ///
    /// [`ImportFailure`]: why it stopped, and how far it got.
    pub fn import_reader(
        mut self,
        input: impl BufRead,
        total_bytes: Option<u64>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        if self.settings.dead_letter.is_none() {
            self.settings.dead_letter = Some(PathBuf::from(DEFAULT_DEAD_LETTER));
        }
        let _lock = self.check_outputs(None).map_err(failure_before_start)?;
        self.run(input, total_bytes)
    }

    /// Imports operations from memory, such as people loaded from your
    /// database (the reference's `bulkImport(users)`): the same batching,
    /// per-person order, dead letters, checkpoint and summary as a file,
    /// with operation *n* (from 1) in the place of line *n*.
    ///
    /// The operations are taken from the iterator as they are sent, so it
    /// may stream from a database cursor in constant memory. Unless set, the
    /// dead-letter file is `cio-import.dead-letter.ndjson` in the current
    /// directory (operations are valid by construction: it holds those the
    /// server rejects). To resume after an outage, keep a
    /// [`checkpoint`](ImporterBuilder::checkpoint) and give the same
    /// operations in the same order: the first ones, up to the checkpoint's
    /// position, are skipped. Events keep the ids they were built with, so
    /// build them with ids derived from your data
    /// ([`Event::id_from_key`](crate::Event::id_from_key)) for a resumed or
    /// repeated import to count each event once.
    ///
    /// ```
    /// use cio_ratelimit::{Client, Importer, Operation};
    /// use serde_json::json;
    /// # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
    /// # let dir = cio_test_kit::ScratchDir::new("import-ops-doc");
    ///
    /// let client = Client::builder(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY)
    ///     .track_url(emulator.url())
    ///     .build()?;
    /// let users = [("1", "pro"), ("2", "free"), ("3", "pro")];
    /// let operations = users
    ///     .iter()
    ///     .map(|(id, plan)| Operation::identify(*id, json!({"plan": plan})))
    ///     .collect::<Result<Vec<_>, _>>()?;
    /// let summary = Importer::builder(client)
    ///     .dead_letter(dir.join("dead.ndjson"))
    ///     .build()?
    ///     .import_operations(operations)
    ///     .map_err(|failure| failure.error)?;
    /// assert_eq!(summary.progress.delivered, 3);
    /// # assert_eq!(emulator.snapshot().people["2"].attributes["plan"], "free");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`ImportFailure`]: why it stopped, and how far it got (its
    /// `checkpoint_line` is a position in the operations); with nothing
    /// sent, [`Error::InvalidConfig`] for an importer built for
    /// [`ImportApi::Pipelines`]: operations are Track v2 operations.
    pub fn import_operations(
        mut self,
        operations: impl IntoIterator<Item = Operation>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        if self.settings.api != ImportApi::Track {
            return Err(failure_before_start(Error::invalid(
                "api",
                "Pipelines for import_operations",
                "ImportApi::Track: operations are Track v2 operations",
            )));
        }
        if self.settings.dead_letter.is_none() {
            self.settings.dead_letter = Some(PathBuf::from(DEFAULT_DEAD_LETTER));
        }
        let _lock = self.check_outputs(None).map_err(failure_before_start)?;
        let (run, _, skip_to) = Run::begin(self.settings, None).map_err(failure_before_start)?;
        let mut operations = operations.into_iter().zip(1..);
        // The operations' own digest, so that a resume can tell others apart.
        let mut digest = ContentDigest::default();
        run.import(move || {
            Ok(operations.next().map(|(operation, line)| Record {
                line,
                bytes_read: operation.as_bytes().len() as u64,
                digest: {
                    digest.update(operation.as_bytes());
                    digest.update(b"\n");
                    digest
                },
                item: match line <= skip_to {
                    true => Item::Skipped,
                    false => Item::Entry(Entry::Track(operation)),
                },
            }))
        })
    }

    /// Checks the files the import will write before anything is read or
    /// sent, and holds the checkpoint's lock for as long as it is kept (a
    /// dry run writes no checkpoint, so it takes no lock).
    fn check_outputs(&self, input: Option<&Path>) -> Result<Option<CheckpointLock>> {
        let dead_letter = self
            .settings
            .dead_letter
            .as_deref()
            .expect("set by each import method");
        check_dead_letter(dead_letter, input, self.settings.checkpoint.as_deref())?;
        self.settings
            .checkpoint
            .as_deref()
            .filter(|_| !self.settings.dry_run)
            .map(CheckpointLock::acquire)
            .transpose()
    }

    fn run(
        self,
        input: impl BufRead,
        total_bytes: Option<u64>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        let (input, total_bytes) = match decompressed(input) {
            Ok((input, false)) => (input, total_bytes),
            Ok((input, true)) => (input, None),
            Err(err) => {
                return Err(failure_before_start(Error::io(
                    "read the input",
                    Path::new("-"),
                    &err,
                )));
            }
        };
        let (run, mut reader) = match Run::start(self.settings, input, total_bytes) {
            Ok(started) => started,
            Err(error) => return Err(failure_before_start(error)),
        };
        run.import(|| reader.next_record())
    }
}

impl ImporterBuilder {
    /// What the lines are: [`ImportApi::Track`] v2 operations (the default)
    /// or [`ImportApi::Pipelines`] calls. The client needs that API's
    /// credentials, and its limiter for that API sets the rate.
    pub fn api(mut self, api: ImportApi) -> Self {
        self.importer.settings.api = api;
        self
    }

    /// [`ImportMode::Batch`] (the default) or [`ImportMode::Single`].
    pub fn mode(mut self, mode: ImportMode) -> Self {
        self.importer.settings.mode = mode;
        self
    }

    /// Requests on the wire at once; default [`Importer::DEFAULT_WORKERS`].
    /// A request waiting out a backoff (after a 5xx or a reset) holds no
    /// place: up to twice as many requests may be under way, the rest
    /// of them waiting. The client's limiter sets the rate whatever this is;
    /// more workers keep it up when answers are slow.
    pub fn workers(mut self, workers: usize) -> Self {
        self.importer.settings.workers = workers;
        self
    }

    /// Where dead letters go (NDJSON: `{"line", "reason", "original"}`).
    pub fn dead_letter(mut self, path: impl Into<PathBuf>) -> Self {
        self.importer.settings.dead_letter = Some(path.into());
        self
    }

    /// Keeps a checkpoint in this file, so that the import can resume.
    pub fn checkpoint(mut self, path: impl Into<PathBuf>) -> Self {
        self.importer.settings.checkpoint = Some(path.into());
        self
    }

    /// Continues after the line the checkpoint names, with its import id.
    ///
    /// The checkpoint keeps a digest of the input up to its line: a resume
    /// whose input differs there stops with [`Error::Checkpoint`] before
    /// anything is sent, rather than skip lines that were never sent.
    /// (Checkpoints written before digests were kept are resumed unchecked.)
    pub fn resume(mut self, resume: bool) -> Self {
        self.importer.settings.resume = resume;
        self
    }

    /// A name that keeps this import's event ids apart from other imports':
    /// events without an `id` derive theirs from it, their line, and the
    /// identical lines before it (see "Event ids" on [`Importer`]). Without
    /// one, two imports give the same line the same id. A resume must give
    /// the one its checkpoint was kept with, or none.
    pub fn import_id(mut self, import_id: impl Into<String>) -> Self {
        self.importer.settings.import_id = Some(import_id.into());
        self
    }

    /// Called with a [`Progress`] report a few times a second, and at the end.
    pub fn progress(mut self, callback: impl FnMut(&Progress) + Send + 'static) -> Self {
        self.importer.settings.progress = Some(Box::new(callback));
        self
    }

    /// Packs batch bodies up to this size instead of Customer.io's limit,
    /// e.g. for shorter requests on a slow link.
    pub fn max_batch_bytes(mut self, bytes: usize) -> Self {
        self.importer.settings.max_batch_bytes = Some(bytes);
        self
    }

    /// Reads and validates the whole input and writes the dead-letter file,
    /// but sends nothing: the client is never called, so placeholder
    /// credentials will do (`Client::builder("-", "-")`).
    ///
    /// The summary's [`delivered`](Progress::delivered) counts the lines
    /// that would have been sent (the CLI's `--json` says `"valid"`, with
    /// `"checked"` and `"sent": 0`) (items over 32 KB and invalid lines are
    /// dead-lettered as in a real import; only the server's own refusals
    /// cannot be foreseen). No checkpoint is written or locked; with
    /// [`resume`](Self::resume), the checkpoint is read, and only the lines
    /// after it are checked.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.importer.settings.dry_run = dry_run;
        self
    }

    /// Stops the import cleanly once `stop` is set (by a signal handler,
    /// say): no further line is taken; the lines already taken are sent
    /// (a line waiting for an earlier line of its person goes once that one
    /// is answered) and every request's attempt under way finishes, bounded by the
    /// client's timeout. Nothing is retried once the stop is asked, and a
    /// backoff under way ends, as does a wait for a permit behind a 429
    /// pause (within 50 ms, however long the pause): a request that fails
    /// or is left unsent leaves its lines after the checkpoint. The checkpoint is stored, and the import returns an
    /// [`ImportFailure`] whose error is [`Error::Stopped`], with the counts
    /// so far. Resume it with [`resume`](Self::resume): nothing is lost, and
    /// only the lines of requests that failed during the stop are sent
    /// again.
    ///
    /// The flag is checked before each line is read: once the whole input
    /// is read, the import finishes its last requests and returns its
    /// summary as usual.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicBool, Ordering};
    /// use cio_ratelimit::{Client, Error, Importer};
    /// # let dir = cio_test_kit::ScratchDir::new("stop-doc");
    ///
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let importer = Importer::builder(Client::builder("site", "key").build()?)
    ///     .dead_letter(dir.join("dead.ndjson"))
    ///     .stop_when(stop.clone())
    ///     .build()?;
    /// stop.store(true, Ordering::SeqCst); // e.g. from a SIGTERM handler
    /// let input = r#"{"type":"person","action":"identify","identifiers":{"id":"1"}}"#;
    /// let failure = importer.import_reader(input.as_bytes(), None).unwrap_err();
    /// assert_eq!(failure.error, Error::Stopped);
    /// assert_eq!(failure.summary.progress.lines_read, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn stop_when(mut self, stop: Arc<AtomicBool>) -> Self {
        self.importer.settings.stop = Some(stop);
        self
    }

    /// Reads the input as CSV, one person per row, each an `identify`
    /// (feature `csv`). A row's line is the line it starts on, for dead
    /// letters and the checkpoint alike. Track API only: [`build`](Self::build)
    /// refuses CSV with [`ImportApi::Pipelines`].
    #[cfg(feature = "csv")]
    #[cfg_attr(docsrs, doc(cfg(feature = "csv")))]
    pub fn csv(mut self, options: CsvOptions) -> Self {
        self.importer.settings.csv = Some(options);
        self
    }

    /// Checks the settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: zero workers, `resume`
    /// without a checkpoint, an empty import id, a zero `max_batch_bytes`,
    /// or CSV input for the Pipelines API.
    pub fn build(self) -> Result<Importer> {
        let importer = self.importer;
        #[cfg(feature = "csv")]
        if importer.settings.csv.is_some() && importer.settings.api == ImportApi::Pipelines {
            return Err(Error::invalid(
                "api",
                "Pipelines with CSV input",
                "NDJSON input, one Pipelines call with its \"type\" per line",
            ));
        }
        if importer.settings.workers == 0 {
            return Err(Error::invalid("workers", 0, "at least 1"));
        }
        if importer.settings.max_batch_bytes == Some(0) {
            return Err(Error::invalid("max_batch_bytes", 0, "more than zero"));
        }
        if importer.settings.resume && importer.settings.checkpoint.is_none() {
            return Err(Error::invalid(
                "resume",
                true,
                "a checkpoint file to resume from",
            ));
        }
        if importer
            .settings
            .import_id
            .as_deref()
            .is_some_and(str::is_empty)
        {
            return Err(Error::invalid("import_id", "\"\"", "a non-empty id"));
        }
        Ok(importer)
    }
}

impl fmt::Debug for Importer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Importer")
            .field("api", &self.settings.api)
            .field("mode", &self.settings.mode)
            .field("workers", &self.settings.workers)
            .field("dead_letter", &self.settings.dead_letter)
            .field("checkpoint", &self.settings.checkpoint)
            .field("resume", &self.settings.resume)
            .field("dry_run", &self.settings.dry_run)
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for ImporterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.importer.fmt(f)
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
