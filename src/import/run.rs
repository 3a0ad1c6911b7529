//! One import in progress: lines from the reader wait in the order window
//! until no earlier line of their person is unsettled, are packed into
//! requests, go through the queue as `ClientCall`s, and the ledger settles
//! them in input order.

use std::borrow::Cow;
use std::io::{self, BufRead};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::Select;
use parking_lot::Mutex;

use crate::client::rejection::rejected_item;
use crate::client::validate::MAX_BATCH_BYTES;
use crate::error::{Error, Result, TransportKind};
use crate::import::checkpoint::{Checkpoint, ResumePoint};
use crate::import::content_digest::ContentDigest;
use crate::import::dead_letter::DeadLetters;
use crate::import::entry::{BatchItem, Entry, Packer};
use crate::import::format_check::FormatCheck;
use crate::import::input::Input;
use crate::import::ledger::{CheckpointFile, Ledger, Rejected};
use crate::import::order_window::{OrderWindow, PersonKey, person_key};
use crate::import::progress::{ImportFailure, ImportSummary, Progress};
use crate::import::reader::{IDS_BY_CONTENT, Item, NdjsonReader, Record};
use crate::import::settings::{ImportMode, ImportSettings, ProgressCallback};
use crate::import::timer::with_timer;
use crate::limit::clock::SystemClock;
use crate::queue::client_call::{ClientCall, Reply};
use crate::queue::dispatcher::Dispatcher;
use crate::queue::ticket::{JobError, Outcome, Ticket};
use crate::retry::attempt_gate::AttemptGate;
use crate::retry::stats::RetryStats;

/// A batch mode import sends what it has packed at most this long after
/// the input went quiet (`tail -f log | cio-ratelimit import -`).
const FLUSH_AFTER: Duration = Duration::from_secs(1);

/// The timer ticks this often at most (more often if progress is reported
/// more often): it notices a quiet input by a tick that saw no new record,
/// and flushes `FLUSH_AFTER - TICK` after it, so within `FLUSH_AFTER` of
/// the last record. The records themselves never read the clock.
const TICK: Duration = Duration::from_millis(200);

/// Or at least this far apart.
const MIN_TICK: Duration = Duration::from_millis(10);

/// Answers are looked for after this many records (and on every tick): a
/// request is answered in milliseconds, and records come by the hundred
/// thousand a second.
const POLL_EVERY: u64 = 32;

/// The order window holds at most this many lines past the checkpoint
/// (settled or not, each costs the ledger a byte): the reader goes on past
/// one slow request for ~5,000,000 lines, what 50 requests/s of batches of
/// 150-byte lines carry in 30 s.
const WINDOW_LINES: u64 = 8_000_000;

/// And at most this many bytes of lines waiting to be sent (about four
/// times as much memory, parsed): a person named on many lines, whose
/// request is slow, makes their lines wait here.
const WINDOW_BYTES: usize = 16 << 20;

/// Requests under way per worker: a worker's place on the wire is taken by
/// attempts only, so while some requests wait out a backoff (a 5xx, a reset)
/// others use the places. 7 % of requests failing at 100 requests/s with a
/// 1 s backoff keep ~8 requests in backoff: with --workers 10, 12 others
/// may go meanwhile.
const CALLS_PER_WORKER: usize = 2;

/// Dead letters waiting for the lines before them to be settled: at this
/// size the reader waits for the answers, so that a file of bad lines does
/// not pile them up in memory.
const MAX_HELD_DEAD_BYTES: usize = 1 << 20;

/// A call the import made, handed back with what came of it and what it
/// cost; the call itself only when the dead letters need what it sent.
struct Sent {
    call: Option<ClientCall>,
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
            Err(error) => match (&self.call, rejected_item(0, &error)) {
                (Some(ClientCall::Entity(_) | ClientCall::Pipelines(_)), Some(item)) => vec![item],
                _ => return Err(error),
            },
        };
        let sent = |index| match &self.call {
            Some(ClientCall::Batch(batch)) => batch.item(index).map(Cow::Borrowed),
            Some(ClientCall::PipelinesBatch(batch)) => batch.item(index).map(Cow::Borrowed),
            Some(ClientCall::Entity(operation)) => Some(Cow::Borrowed(operation.as_bytes())),
            Some(ClientCall::Pipelines(call)) => Some(call.to_bytes()),
            _ => None,
        };
        Ok(items
            .into_iter()
            .map(|item| Rejected {
                index: item.index,
                reason: format!("rejected by Customer.io: {}", item.explanation()),
                original: String::from_utf8_lossy(&sent(item.index).unwrap_or_default())
                    .into_owned(),
            })
            .collect())
    }
}

/// What the order window holds of a line: the entry itself in single mode,
/// only what a batch takes of it in batch mode.
enum Held {
    Entry(Entry),
    Item(BatchItem),
}

/// A request the server has not answered: the lines it carries, in request
/// order, and the people they name.
struct InFlight {
    lines: Vec<u64>,
    people: Vec<PersonKey>,
    ticket: Ticket<Sent>,
}

/// One import in progress: entries wait in the order window until they are
/// ready, ready entries go out in requests (up to one per worker at a time),
/// and the ledger settles their lines in input order.
pub(super) struct Run {
    mode: ImportMode,
    window: OrderWindow<Held>,
    /// Packs batches; in single mode, checks nothing and packs nothing.
    packer: Packer,
    /// A batch mode request goes once this many bytes are ready (or the
    /// input is quiet, or ends).
    request_bytes: usize,
    /// Requests under way at most: on the wire (`workers` of them at most)
    /// or waiting out a backoff.
    calls: usize,
    in_flight: Vec<InFlight>,
    dispatcher: Dispatcher<ClientCall, Sent>,
    ledger: Ledger,
    progress: Progress,
    dead_letter_path: PathBuf,
    started: Instant,
    callback: Option<ProgressCallback>,
    progress_every: Duration,
    last_progress: Instant,
    /// The checkpoint resumed from: the input must reach its line, with
    /// the same digest, or it is not the input the checkpoint was kept for.
    resumed_at: Option<ResumePoint>,
    /// The last line read.
    last_line: u64,
    /// Records taken, and how many the timer saw at the tick that last saw
    /// a new one, when: the input is quiet since then.
    taken: u64,
    taken_seen: (u64, Instant),
    /// What stopped the timer's work; the reader stops at its next record.
    timer_failed: Option<Error>,
    /// A dry run: requests are packed, never sent.
    dry_run: bool,
    /// Once set, no further line is read.
    stop: Option<Arc<AtomicBool>>,
    format_check: FormatCheck,
}

impl Run {
    /// Starts an import of `input`: the run, and the records it reads.
    pub(super) fn start<R: BufRead>(
        importer: ImportSettings,
        input: R,
        total_bytes: Option<u64>,
    ) -> Result<(Run, Input<R>)> {
        #[cfg(feature = "csv")]
        let csv = importer.csv.clone();
        let api = importer.api;
        let (run, import_id, skip_to) = Run::begin(importer, total_bytes)?;
        #[cfg(feature = "csv")]
        if let Some(options) = csv {
            let rows = crate::import::csv_rows::CsvRows::new(input, &options).map_err(|err| {
                Error::io(
                    "read the CSV header of",
                    Path::new("the input"),
                    &std::io::Error::new(std::io::ErrorKind::InvalidData, err.to_string()),
                )
            })?;
            return Ok((
                run,
                Input::Csv {
                    rows,
                    skip_to,
                    digest: ContentDigest::default(),
                },
            ));
        }
        Ok((
            run,
            Input::Ndjson(NdjsonReader::new(input, import_id, skip_to).for_api(api)),
        ))
    }

    /// Starts an import, whatever its input: the run, the import's id, and
    /// the line it starts after (0, or where a resumed import stopped).
    pub(super) fn begin(
        importer: ImportSettings,
        total_bytes: Option<u64>,
    ) -> Result<(Run, String, u64)> {
        let dead_letter_path = importer
            .dead_letter
            .clone()
            .expect("set by each import method");
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
                if let Some(api) = checkpoint.api().filter(|&api| api != importer.api) {
                    return Err(Error::Checkpoint {
                        path: path.clone(),
                        reason: format!(
                            "it belongs to an import to the {api}, not the {}: resume it sending to the same API",
                            importer.api
                        ),
                    });
                }
                Some(checkpoint)
            }
            (Some(path), false) if path.exists() && !importer.dry_run => {
                return Err(Error::Checkpoint {
                    path: path.clone(),
                    reason: "a checkpoint from an earlier import is there: resume it, or delete it to start over"
                        .into(),
                });
            }
            _ => None,
        };
        let resumed_at = resumed
            .as_ref()
            .zip(importer.checkpoint.as_deref())
            .map(|(checkpoint, path)| checkpoint.resume_point(path));
        let digest_at_start = resumed
            .as_ref()
            .and_then(Checkpoint::digest)
            .unwrap_or_default();
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
                    .unwrap_or_else(|| IDS_BY_CONTENT.to_owned()),
                0,
                (0, 0),
                DeadLetters::start(&dead_letter_path),
            ),
        };
        // Once a stop is asked, what fails is left for the resume, not
        // retried: the stop waits for the attempts under way, not for backoffs.
        let client = match &importer.stop {
            Some(stop) => importer.client.stopping_when(stop.clone()),
            None => importer.client,
        };
        // `workers` attempts on the wire at once; a call sleeping out a
        // backoff holds no place, so more calls than that may be under way.
        let client = client.gated_by(Arc::new(AttemptGate::new(importer.workers)));
        let calls = importer.workers * CALLS_PER_WORKER;
        let dispatcher = Dispatcher::builder().workers(calls).capacity(calls).build(
            move |call: ClientCall| {
                let (result, stats) = RetryStats::during(|| call.run(&client));
                // A batch all accepted is dropped here, not after it is settled.
                let rejected = match &result {
                    Ok(Reply::Batch(response)) => !response.all_accepted(),
                    Ok(_) => false,
                    Err(_) => true,
                };
                Sent {
                    call: rejected.then_some(call),
                    result,
                    stats,
                }
            },
        )?;
        let packer = Packer::new(importer.api, importer.max_batch_bytes)?;
        let request_bytes = match importer.mode {
            ImportMode::Single => 1,
            ImportMode::Batch => importer
                .max_batch_bytes
                .unwrap_or(MAX_BATCH_BYTES)
                .min(MAX_BATCH_BYTES - 1),
        };
        let checkpoint = importer.checkpoint.filter(|_| !importer.dry_run);
        let checkpoint = checkpoint.map(|path| CheckpointFile {
            path,
            import_id: import_id.clone(),
            api: importer.api,
            before,
        });
        let ledger = Ledger::new(
            dead_letters,
            checkpoint,
            (skip_to, digest_at_start),
            Arc::new(SystemClock),
            importer.checkpoint_every,
        );
        let now = Instant::now();
        let run = Run {
            mode: importer.mode,
            window: OrderWindow::default(),
            packer,
            request_bytes,
            calls,
            in_flight: Vec::new(),
            dispatcher,
            ledger,
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
            resumed_at,
            last_line: 0,
            taken: 0,
            taken_seen: (0, now),
            timer_failed: None,
            dry_run: importer.dry_run,
            stop: importer.stop,
            format_check: FormatCheck::default(),
        };
        Ok((run, import_id, skip_to))
    }

    /// Carries out the import: reads records with `next_record` on this
    /// thread, while a timer thread reports progress and sends what is
    /// packed once the input has been quiet (a reader blocked on a pipe
    /// cannot), then sends what is left and waits for every answer.
    #[allow(clippy::result_large_err)]
    pub(super) fn import(
        self,
        mut next_record: impl FnMut() -> io::Result<Option<Record>>,
    ) -> std::result::Result<ImportSummary, ImportFailure> {
        let stop = self.stop.clone();
        let stopping = move || {
            stop.as_ref()
                .is_some_and(|stop| stop.load(Ordering::SeqCst))
        };
        let run = Mutex::new(self);
        let read = with_timer(&run, TICK, Run::tick, || {
            while !stopping() {
                match next_record() {
                    Ok(Some(record)) => run.lock().take(record)?,
                    // An input that ends, or fails (a gzip stream cut
                    // short), because of the stop (a reader watching the
                    // same flag) is a stopped import, not a finished one.
                    Ok(None) | Err(_) if stopping() => break,
                    Ok(None) => return Ok(()),
                    Err(err) => return Err(Error::io("read the input", Path::new("-"), &err)),
                }
            }
            Err(Error::Stopped)
        });
        let mut run = run.into_inner();
        let outcome = read
            .and_then(|()| run.timer_failed.take().map_or(Ok(()), Err))
            .and_then(|()| run.check_the_input_reached_the_checkpoint())
            .and_then(|()| run.finish());
        let outcome = match outcome {
            // What the window holds was read and may come before lines
            // already delivered: send it, so that the checkpoint passes
            // every line taken and a resume repeats none.
            Err(Error::Stopped) => run.finish().and(Err(Error::Stopped)),
            outcome => outcome,
        };
        run.end(outcome)
    }

    /// A resumed import's input must reach the checkpoint's line, or it is
    /// not the input the checkpoint was kept for.
    fn check_the_input_reached_the_checkpoint(&self) -> Result<()> {
        match &self.resumed_at {
            Some(resumed) => resumed.check_end(self.last_line),
            None => Ok(()),
        }
    }

    /// The timer's tick while the input is read: once the input has been
    /// quiet for `FLUSH_AFTER - TICK`, sends what is ready; settles what
    /// was answered, and reports progress. Returns when it is due again.
    fn tick(&mut self) -> Duration {
        if self.taken != self.taken_seen.0 {
            self.taken_seen = (self.taken, Instant::now());
        }
        if self.timer_failed.is_none() {
            let quiet = self.taken_seen.1.elapsed() >= FLUSH_AFTER - TICK;
            let ticked = self
                .poll()
                .and_then(|()| self.send_ready(quiet))
                .and_then(|()| self.report(false));
            // The reader stops at its next record.
            self.timer_failed = ticked.err();
        }
        TICK.min(self.progress_every).max(MIN_TICK)
    }

    /// Takes one record: counts it, and sends, holds, dead-letters or passes it.
    fn take(&mut self, record: Record) -> Result<()> {
        if let Some(error) = self.timer_failed.take() {
            return Err(error);
        }
        self.taken += 1;
        let (line, digest) = (record.line, record.digest);
        self.last_line = line;
        if let Some(resumed) = &self.resumed_at {
            resumed.check_line(line, digest)?;
        }
        if !matches!(record.item, Item::Skipped) {
            self.progress.lines_read += 1;
            self.progress.bytes_read += record.bytes_read;
        }
        self.format_check.count(&record.item)?;
        match record.item {
            // Settled by an earlier run: the ledger starts after it.
            Item::Skipped => self.progress.skipped += 1,
            Item::Blank => self.ledger.pass(line, digest)?,
            Item::Bad { reason, original } => self.ledger.dead(line, digest, reason, &original)?,
            Item::Entry(entry) => self.hold(line, digest, entry)?,
        }
        if self.taken.is_multiple_of(POLL_EVERY) {
            self.poll()?;
        }
        self.send_ready(false)?;
        self.make_room()
    }

    /// Puts `entry` in the order window, to go once no earlier line of its
    /// person is unsettled; dead-letters it if no batch can take it.
    fn hold(&mut self, line: u64, digest: ContentDigest, entry: Entry) -> Result<()> {
        if self.mode == ImportMode::Batch
            && let Err(invalid) = self.packer.check(&entry)
        {
            return self
                .ledger
                .dead(line, digest, invalid.to_string(), &entry.as_bytes());
        }
        self.ledger.open(line, digest);
        if self.dry_run {
            // Nothing goes out: the line is settled as if it was taken.
            return self.ledger.acknowledge(&[line], Vec::new());
        }
        let (first, second) = entry.people();
        let people = (
            first.map(|person| person_key(&person)),
            second.map(|person| person_key(&person)),
        );
        let (held, bytes) = match self.mode {
            ImportMode::Single => {
                let bytes = entry.as_bytes().len();
                (Held::Entry(entry), bytes)
            }
            ImportMode::Batch => {
                let item = entry.into_batch_item();
                let bytes = item.len();
                (Held::Item(item), bytes)
            }
        };
        self.window.push(line, held, bytes, people);
        Ok(())
    }

    /// Sends ready lines while fewer than `calls` requests are under way:
    /// full requests only, or whatever is ready when `all`.
    fn send_ready(&mut self, all: bool) -> Result<()> {
        while self.in_flight.len() < self.calls
            && (self.window.ready_bytes() >= self.request_bytes || all && self.window.has_ready())
        {
            if !self.send_one()? {
                break;
            }
        }
        Ok(())
    }

    /// Sends one request of the oldest ready lines; `false` if none is ready.
    fn send_one(&mut self) -> Result<bool> {
        let packer = &mut self.packer;
        let mut count = 0;
        let taken = self.window.take(|pending| {
            count += 1;
            match &pending.item {
                Held::Entry(_) => count == 1,
                Held::Item(item) => packer.add_if_it_fits(item),
            }
        });
        let Some(taken) = taken else {
            return Ok(false);
        };
        let lines = taken.lines.iter().map(|pending| pending.line).collect();
        let call = match taken.lines.into_iter().next().map(|pending| pending.item) {
            Some(Held::Entry(entry)) => entry.into_call(),
            Some(Held::Item(_)) => self.packer.finish().expect("a request has lines"),
            None => unreachable!("a request has lines"),
        };
        let ticket = self
            .dispatcher
            .submit(call)
            .map_err(|_| transport("the import's senders stopped"))?;
        self.in_flight.push(InFlight {
            lines,
            people: taken.people,
            ticket,
        });
        Ok(true)
    }

    /// Waits while the reader is ahead of what can go: a full request is
    /// ready and every worker is busy (the rate sets the pace), or the
    /// window is full (a slow request holds the checkpoint back).
    fn make_room(&mut self) -> Result<()> {
        loop {
            let window_full = self.ledger.unsettled() >= WINDOW_LINES
                || self.window.held_bytes() >= WINDOW_BYTES
                || self.ledger.held_dead_bytes() >= MAX_HELD_DEAD_BYTES;
            if window_full {
                // Nothing more is read until an answer comes: send what is ready.
                self.send_ready(true)?;
            } else if self.window.ready_bytes() < self.request_bytes {
                return Ok(());
            }
            if self.in_flight.len() < self.calls && !window_full {
                return Ok(());
            }
            if self.in_flight.is_empty() {
                // Nothing to wait for: every line read is settled or ready.
                return Ok(());
            }
            self.wait_for_an_answer();
            self.poll()?;
            self.send_ready(false)?;
            self.report(false)?;
        }
    }

    /// Blocks until a request in flight is answered, or `progress_every`
    /// has passed; at once when none is in flight.
    fn wait_for_an_answer(&self) {
        let mut select = Select::new();
        for request in &self.in_flight {
            select.recv(request.ticket.receiver());
        }
        if !self.in_flight.is_empty() {
            // Readiness is all: the answer is taken with `try_wait`.
            let _ = select.ready_timeout(self.progress_every);
        }
    }

    /// Settles the requests that are answered, without waiting: their
    /// people's next lines are ready.
    fn poll(&mut self) -> Result<()> {
        let mut index = 0;
        while index < self.in_flight.len() {
            let Some(result) = self.in_flight[index].ticket.try_wait() else {
                index += 1;
                continue;
            };
            let request = self.in_flight.swap_remove(index);
            self.settle(&request.lines, result)?;
            self.window.settled(&request.people);
        }
        Ok(())
    }

    /// Counts what a request cost and hands its answer to the ledger.
    fn settle(&mut self, lines: &[u64], sent: std::result::Result<Sent, JobError>) -> Result<()> {
        let rejected = sent
            .map_err(|err| transport(&format!("the import's sender failed: {err}")))
            .and_then(|sent| {
                self.progress.requests += sent.stats.requests;
                self.progress.retried += sent.stats.retries;
                self.progress.throttled += sent.stats.throttled;
                sent.rejected()
            });
        // A failed request's lines are never acknowledged: the checkpoint
        // stays before them, and their people's later lines are not sent.
        self.ledger.acknowledge(lines, rejected?)
    }

    /// Sends everything held and waits for every answer.
    fn finish(&mut self) -> Result<()> {
        loop {
            self.send_ready(true)?;
            if self.in_flight.is_empty() {
                debug_assert_eq!(self.window.held_lines(), 0, "a held line waits for no one");
                return Ok(());
            }
            self.wait_for_an_answer();
            self.poll()?;
            self.report(false)?;
        }
    }

    /// Wraps up: on failure, stops the senders and settles what finished
    /// before the failed chunk; then stores the checkpoint and reports.
    #[allow(clippy::result_large_err)]
    fn end(mut self, outcome: Result<()>) -> std::result::Result<ImportSummary, ImportFailure> {
        let mut error = outcome.err();
        // A clean stop has already had every answer.
        if error.as_ref().is_some_and(|error| *error != Error::Stopped) {
            // Queued requests are not sent, nor are held lines; running ones
            // finish. The ledger settles no line after a failed request's.
            self.dispatcher.shutdown_timeout(Duration::ZERO);
            for request in std::mem::take(&mut self.in_flight) {
                if let Err(err) = self.settle(&request.lines, request.ticket.wait()) {
                    error.get_or_insert(err);
                }
            }
        }
        // Once a stop is asked, a call that fails is not retried: that is
        // the stop, and the resume sends its lines.
        let stop_asked = self
            .stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst));
        if stop_asked && error.as_ref().is_some_and(Error::is_transient) {
            error = Some(Error::Stopped);
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
