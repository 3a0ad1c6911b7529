//! Delivers a stream of the spool through the library's `Importer`, oldest
//! segment first, in rounds: a round imports a segment from its checkpoint
//! to the end of what is durable, following it while calls come for up to
//! a second (less once calls stop coming), then finishes (what is packed goes out, every answer settles,
//! the checkpoint is stored). A segment the writer has left, delivered to
//! its end, is deleted with its checkpoint. A round that fails (Customer.io
//! down past the retries) is tried again after a pause, from the checkpoint.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cio_ratelimit::import::ImportApi;
use cio_ratelimit::{Client, Importer};

use crate::relay::health::Stats;
use crate::relay::spool::{Spool, Stream};

/// How long a round follows a growing segment before it finishes (a round
/// re-reads its segment up to the checkpoint, so rounds are not too short).
const ROUND: Duration = Duration::from_secs(1);
/// A round that has read everything finishes once no call came for this long:
/// what is packed goes out at once, not when a batch fills or the round ends.
/// Short, so that the last calls of a burst are delivered soon after it: while
/// calls come, fsyncs are a millisecond or two apart and the round goes on.
const QUIET: Duration = Duration::from_millis(25);
/// How often a wait looks at the spool and the stop flag.
const CHECK_EVERY: Duration = Duration::from_millis(50);
/// The pause after a failed round, doubled each time up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(1);
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// One stream's delivery.
pub struct Drain {
    /// The spool.
    pub spool: Arc<Spool>,
    /// Which stream.
    pub stream: Stream,
    /// The client to send with (its limiter sets the rate).
    pub client: Client,
    /// Requests on the wire at once.
    pub workers: usize,
    /// Set by a signal: the round under way finishes what it sent, and the drain ends.
    pub stop: Arc<AtomicBool>,
    /// Where the counts go.
    pub stats: Arc<Stats>,
}

/// How a round ended.
enum Round {
    /// The segment is delivered to its end and will not grow.
    Finished,
    /// Everything read was settled; the segment may grow.
    CaughtUp,
    /// The stop flag ended it.
    Stopped,
}

impl Drain {
    /// Starts delivering on a thread of its own, until the stop flag is set.
    ///
    /// # Errors
    ///
    /// The operating system's, if the thread cannot start.
    pub fn start(self) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name(format!("relay-drain-{}", self.stream.name()))
            .spawn(move || self.run())
    }

    fn run(&self) {
        let mut pause = FIRST_PAUSE;
        while !self.stop.load(Ordering::SeqCst) {
            let Some((number, _)) = self.spool.next_for(self.stream, CHECK_EVERY * 4) else {
                continue;
            };
            match self.round(number) {
                Ok(Round::Finished) => {
                    if let Err(error) = self.spool.delete(self.stream, number) {
                        log::error!("cannot delete a delivered spool segment: {error}");
                        self.pause(MAX_PAUSE);
                    }
                    pause = FIRST_PAUSE;
                }
                Ok(Round::CaughtUp) => {
                    self.stats.failed(None);
                    pause = FIRST_PAUSE;
                }
                Ok(Round::Stopped) => return,
                Err(error) => {
                    log::warn!(
                        "delivering the spool's {} calls: {error}; trying again in {} s",
                        self.stream.name(),
                        pause.as_secs()
                    );
                    self.stats.failed(Some(error.to_string()));
                    self.pause(pause);
                    pause = (pause * 2).min(MAX_PAUSE);
                }
            }
        }
    }

    /// Sleeps for `pause`, or until the stop flag is set.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while Instant::now() < until && !self.stop.load(Ordering::SeqCst) {
            thread::sleep(CHECK_EVERY);
        }
    }

    /// Imports segment `number` from its checkpoint on.
    fn round(&self, number: u64) -> Result<Round, String> {
        let path = self.spool.segment_path(self.stream, number);
        let checkpoint = self.spool.checkpoint_path(self.stream, number);
        let file = File::open(&path)
            .map_err(|error| format!("cannot open {}: {error}", path.display()))?;
        let position = Arc::new(AtomicU64::new(0));
        let reached_end = Arc::new(AtomicBool::new(false));
        let reader = SegmentReader {
            file,
            spool: Arc::clone(&self.spool),
            number,
            position: Arc::clone(&position),
            reached_end: Arc::clone(&reached_end),
            stop: Arc::clone(&self.stop),
            started: Instant::now(),
            last_data: Instant::now(),
        };
        let (stream, stats, spool) = (
            self.stream,
            Arc::clone(&self.stats),
            Arc::clone(&self.spool),
        );
        let importer = Importer::builder(self.client.clone())
            .api(match self.stream {
                Stream::Track => ImportApi::Track,
                Stream::Pipelines => ImportApi::Pipelines,
            })
            .workers(self.workers)
            .dead_letter(self.spool.dead_letter_path(self.stream))
            .resume(checkpoint.exists())
            .checkpoint(checkpoint)
            .stop_when(Arc::clone(&self.stop))
            .progress(move |progress| {
                stats.round(stream, progress);
                spool.settled(number, progress.checkpoint_line);
            })
            .build()
            .map_err(|error| error.to_string())?;
        let result = importer.import_reader(BufReader::with_capacity(1 << 16, reader), None);
        let progress = match &result {
            Ok(summary) => &summary.progress,
            Err(failure) => &failure.summary.progress,
        };
        self.stats.round_ended(self.stream, progress);
        self.spool.settled(number, progress.checkpoint_line);
        match result {
            Ok(_) if self.stop.load(Ordering::SeqCst) => Ok(Round::Stopped),
            Ok(_) => {
                self.spool.drained(number, position.load(Ordering::SeqCst));
                match reached_end.load(Ordering::SeqCst) {
                    true => Ok(Round::Finished),
                    false => Ok(Round::CaughtUp),
                }
            }
            Err(failure) if failure.error == cio_ratelimit::Error::Stopped => Ok(Round::Stopped),
            Err(failure) => Err(failure.error.to_string()),
        }
    }
}

/// A segment as the importer reads it: up to what is durable, following
/// the writer for one round.
struct SegmentReader {
    file: File,
    spool: Arc<Spool>,
    number: u64,
    position: Arc<AtomicU64>,
    /// Set when the segment is closed and read to its end.
    reached_end: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    started: Instant,
    /// When the last bytes were read.
    last_data: Instant,
}

impl Read for SegmentReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let Some(readable) = self.spool.readable(self.number) else {
                return Ok(0);
            };
            let position = self.position.load(Ordering::SeqCst);
            if position < readable.durable {
                let want = usize::try_from(readable.durable - position)
                    .unwrap_or(usize::MAX)
                    .min(buf.len());
                let read = self.file.read(&mut buf[..want])?;
                if read > 0 {
                    self.position.fetch_add(read as u64, Ordering::SeqCst);
                    self.last_data = Instant::now();
                    return Ok(read);
                }
            } else if self.stop.load(Ordering::SeqCst) {
                return Ok(0);
            } else if readable.closed {
                self.reached_end.store(true, Ordering::SeqCst);
                return Ok(0);
            } else if self.started.elapsed() >= ROUND || self.last_data.elapsed() >= QUIET {
                return Ok(0);
            }
            self.spool.wait(CHECK_EVERY.min(QUIET));
        }
    }
}
