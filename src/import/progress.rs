//! How an import is going, and how it ended.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;

/// A progress report, handed to the callback given to
/// [`ImporterBuilder::progress`](crate::import::ImporterBuilder::progress) as the
/// import goes (a few times a second at most) and once at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Lines read from the input in this run (after any skipped on resume).
    pub lines_read: u64,
    /// Lines the server acknowledged.
    pub delivered: u64,
    /// Lines written to the dead-letter file, with their reason.
    pub dead_lettered: u64,
    /// Lines skipped because an earlier run had done them (`--resume`).
    pub skipped: u64,
    /// Requests sent: every attempt of every batch or single operation,
    /// retries and items resent one by one included (requests still in
    /// flight are counted when they finish).
    pub requests: u64,
    /// Retries after transient failures, in this import's calls only.
    pub retried: u64,
    /// 429s this import's calls met (each paused every sender).
    pub throttled: u64,
    /// Bytes of input read, for a rate or an ETA.
    pub bytes_read: u64,
    /// The input's size when known (a file), for an ETA.
    pub total_bytes: Option<u64>,
    /// Time since the import started.
    pub elapsed: Duration,
    /// The last line of the contiguous prefix that is done: where a resume
    /// would start after.
    pub checkpoint_line: u64,
}

impl Progress {
    /// Lines delivered per second so far.
    pub fn lines_per_second(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.delivered as f64 / seconds
        } else {
            0.0
        }
    }

    /// Time left, judged from the bytes read so far, if the size is known.
    pub fn eta(&self) -> Option<Duration> {
        let total = self.total_bytes?;
        if self.bytes_read == 0 || self.elapsed.is_zero() {
            return None;
        }
        let left = total.saturating_sub(self.bytes_read) as f64;
        Some(Duration::from_secs_f64(
            left * self.elapsed.as_secs_f64() / self.bytes_read as f64,
        ))
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} lines read, {} delivered, {} dead-lettered, {} requests, {} retried, {} throttled, {:.0} lines/s",
            self.lines_read,
            self.delivered,
            self.dead_lettered,
            self.requests,
            self.retried,
            self.throttled,
            self.lines_per_second()
        )
    }
}

/// How a finished import went: the last [`Progress`], and where the dead
/// letters are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    /// The final counts.
    pub progress: Progress,
    /// The dead-letter file, if any line went there.
    pub dead_letter_file: Option<PathBuf>,
}

impl ImportSummary {
    /// Whether every line read was delivered (nothing dead-lettered).
    pub fn all_delivered(&self) -> bool {
        self.progress.dead_lettered == 0
    }
}

/// An import that stopped before the end: why, and how far it got. The
/// checkpoint (if one was kept) covers exactly the lines done, so a resume
/// loses nothing.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportFailure {
    /// What stopped it. [`Error::is_transient`] tells whether resuming later
    /// may succeed (the server was unavailable) or something must be fixed
    /// first (credentials, region, files).
    pub error: Error,
    /// The counts when it stopped.
    pub summary: ImportSummary,
}

impl fmt::Display for ImportFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "import stopped after line {}: {}",
            self.summary.progress.checkpoint_line, self.error
        )
    }
}

impl std::error::Error for ImportFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
