//! Tickets: the result of one queued job, to wait for when you need it.

use std::fmt;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, TryRecvError};

/// Why a queued job produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JobError {
    /// The job panicked; the message is the panic's, if it was text. The
    /// worker thread carries on with the next job.
    Panicked(String),
    /// The job was never run: the dispatcher shut down first and handed it
    /// back from [`shutdown_timeout`](crate::Dispatcher::shutdown_timeout).
    Abandoned,
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Panicked(message) => write!(f, "the job panicked: {message}"),
            JobError::Abandoned => {
                f.write_str("the job was not run: the dispatcher shut down first")
            }
        }
    }
}

impl std::error::Error for JobError {}

/// The result of one job submitted to a [`Dispatcher`](crate::Dispatcher).
///
/// Waiting is optional: drop the ticket and the job still runs.
pub struct Ticket<R> {
    result: Receiver<Result<R, JobError>>,
}

impl<R> Ticket<R> {
    pub(crate) fn new(result: Receiver<Result<R, JobError>>) -> Ticket<R> {
        Ticket { result }
    }

    /// Blocks until the job has run, and returns its result.
    ///
    /// # Errors
    ///
    /// [`JobError::Panicked`] if the job panicked, [`JobError::Abandoned`] if
    /// it was never run.
    pub fn wait(self) -> Result<R, JobError> {
        self.result.recv().unwrap_or(Err(JobError::Abandoned))
    }

    /// The result if the job has run, without blocking. A result is handed
    /// out once; asking again gives `Err(JobError::Abandoned)`.
    pub fn try_wait(&self) -> Option<Result<R, JobError>> {
        match self.result.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(JobError::Abandoned)),
        }
    }

    /// The channel the result comes on, to wait for the first of several
    /// tickets with a [`crossbeam_channel::Select`].
    pub(crate) fn receiver(&self) -> &Receiver<Result<R, JobError>> {
        &self.result
    }

    /// Blocks at most `timeout` for the result; `None` if the job has not run by then.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<Result<R, JobError>> {
        match self.result.recv_timeout(timeout) {
            Ok(result) => Some(result),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Err(JobError::Abandoned)),
        }
    }
}

impl<R> fmt::Debug for Ticket<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("ready", &!self.result.is_empty())
            .finish()
    }
}

/// Whether a job's result counts as a failure in
/// [`DispatcherStats::failed`](crate::queue::DispatcherStats::failed).
///
/// Implemented for `Result` (an `Err` is a failure), `()` (never), and a
/// pair whose first half is an `Outcome` (a result with, say, what the call
/// cost beside it).
pub trait Outcome {
    /// Whether this result is a failure.
    fn is_failure(&self) -> bool;
}

impl<T, E> Outcome for Result<T, E> {
    fn is_failure(&self) -> bool {
        self.is_err()
    }
}

impl Outcome for () {
    fn is_failure(&self) -> bool {
        false
    }
}

impl<R: Outcome, S> Outcome for (R, S) {
    fn is_failure(&self) -> bool {
        self.0.is_failure()
    }
}
