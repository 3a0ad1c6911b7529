//! `Dispatcher`: a fixed pool of worker threads draining a bounded crossbeam channel.

use std::any::Any;
use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::{Condvar, Mutex};

use crate::error::{Error, Result};
use crate::limit::limiter::Limiter;
use crate::queue::stats::{DispatcherStats, LatencyHistogram};
use crate::queue::ticket::{JobError, Outcome, Ticket};

/// How often `flush` looks up from its wait to see whether the dispatcher
/// closed meanwhile.
const TICK: Duration = Duration::from_millis(50);

/// One job in this many, per producer thread, has its latency measured:
/// reading the clock twice for every job would cost more than the rest of
/// the dispatcher's work.
const LATENCY_SAMPLE: u64 = 64;

/// Queued processing: `workers` threads run jobs from a bounded queue.
///
/// Jobs are plain data of type `J`; every worker runs them with the same
/// handler, `Fn(J) -> R`, where `R` is a `Result` (an `Err` counts as failed
/// in the stats), `()`, or any type implementing [`Outcome`]. Because jobs
/// are data, a shutdown can hand back the ones it did not run, for the caller
/// to keep. Submitting blocks while the
/// queue is full (backpressure); [`try_submit`](Dispatcher::try_submit) hands
/// the job back instead.
///
/// The dispatcher adds queueing and concurrency, not a rate: a dispatcher of
/// [`Client`](crate::Client) calls ([`DispatcherBuilder::build_for_client`])
/// is limited by the client's own limiters, so there is one budget in one
/// place. A dispatcher of other jobs can take a [`Limiter`] of its own.
///
/// ```
/// use cio_ratelimit::{Dispatcher, RateLimit, TokenBucket};
///
/// let dispatcher = Dispatcher::builder()
///     .workers(4)
///     .limiter(TokenBucket::from_limit(RateLimit::new(1_000.0, 50)?))
///     .build(|n: u64| n.checked_mul(2).ok_or("overflow"))?;
/// let tickets: Vec<_> = (0..100).map(|n| dispatcher.submit(n).unwrap()).collect();
/// let total: u64 = tickets.into_iter().map(|t| t.wait().unwrap().unwrap()).sum();
/// assert_eq!(total, 9_900);
/// dispatcher.close(); // stops intake, runs what is queued, joins the workers
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// # Shutting down
///
/// [`close`](Dispatcher::close) runs everything queued first;
/// [`shutdown_timeout`](Dispatcher::shutdown_timeout) waits at most a while and
/// returns the jobs it did not run. Dropping a dispatcher closes it, so queued
/// work is never dropped silently: a job submitted while `close` runs is run
/// by `close`, or at the latest when the dispatcher is dropped. A job that
/// panics fails its own ticket; the worker carries on.
///
/// # Threads and cloning
///
/// `Dispatcher` is `Send + Sync` when its jobs and results are `Send`: share it
/// by reference or in an `Arc` between producer threads.
pub struct Dispatcher<J, R> {
    shared: Arc<Shared<J, R>>,
    jobs: Sender<Message<J, R>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Held while sending control messages, so that their tokens go down
    /// the queue in the order they wait in [`Shared::controls`] and two sets
    /// of markers never interleave (each worker takes one marker of a set).
    markers: Mutex<()>,
    health: Mutex<Option<(Sender<()>, JoinHandle<()>)>>,
}

/// What travels down the queue: a job, or `None`, a token that says "take
/// the next [`Control`] from [`Shared::controls`]". A token queues behind
/// every job sent before it, which is what makes a control message mean
/// "all that came before".
///
/// Control messages wait beside the queue so that a job's message is an
/// `Option` of a plain pair, as small and as cheap to move as a plain
/// pool's `(job, Option<reply>)`. Measured draining a million queued no-op
/// jobs with one worker: 17–24 ns a job for either, 30–37 ns for an enum of
/// our own (even `Job(job, reply) | Leave`), which the compiler copies out
/// of the channel in pieces that stall the loads after them.
type Message<J, R> = Option<Envelope<J, R>>;

/// Sent as a token down the queue, kept in [`Shared::controls`].
enum Control {
    /// Each worker takes one and waits there until all have: then every job
    /// queued before the markers has finished.
    Rendezvous(Arc<Rendezvous>),
    /// Sent once per worker at close, behind every job: the worker leaves.
    Leave,
}

/// A job and, boxed, where its result goes: `None` for a job fired and
/// forgotten, unless it is one whose latency is measured.
struct Envelope<J, R> {
    job: J,
    reply: Option<Box<Reply<R>>>,
}

type ResultSender<R> = Sender<std::result::Result<R, JobError>>;

/// Boxed, so that a job's message stays one word beside the job: a ticket
/// already costs a channel of its own, and one job in [`LATENCY_SAMPLE`]
/// is timed.
struct Reply<R> {
    ticket: Option<ResultSender<R>>,
    /// Nanoseconds after the dispatcher started, plus one (see
    /// [`Shared::now`]); 0 when the job is not timed.
    submitted_at: u64,
}

/// A job's ticket, if any, and its submit time (0: not timed).
fn unpack<R>(reply: Option<Box<Reply<R>>>) -> (Option<ResultSender<R>>, u64) {
    reply.map_or((None, 0), |reply| (reply.ticket, reply.submitted_at))
}

type Handler<J, R> = Arc<dyn Fn(J) -> R + Send + Sync>;

/// Keeps what each worker writes on cache lines of its own: shared lines made
/// every job pay for the other workers' writes.
#[repr(align(128))]
struct Padded<T>(T);

struct Shared<J, R> {
    /// Time zero for `Reply::submitted_at`.
    started: Instant,
    /// The handler, for jobs run by `close` or `drop` after the workers left;
    /// each worker holds it with its concrete type, so that a job's call can
    /// be inlined.
    handler: Handler<J, R>,
    /// `R`'s [`Outcome::is_failure`], kept so that closing on drop needs no bound on `R`.
    is_failure: fn(&R) -> bool,
    limiter: Option<Arc<dyn Limiter>>,
    queue: Receiver<Message<J, R>>,
    /// The control messages whose tokens are in the queue, in their order.
    controls: Mutex<VecDeque<Control>>,
    /// One tally per worker, written only by that worker, plus one last for
    /// jobs run by `close` or `drop` after the workers left.
    tallies: Box<[Padded<Tally>]>,
    /// No new jobs are accepted.
    closed: AtomicBool,
    /// `paused || abandon`: the one flag a worker reads before each job; the
    /// slow path ([`Shared::hold`]) sorts out which. Written under `pause_lock`.
    held: AtomicBool,
    /// Workers run nothing more: jobs they receive go to `leftovers`.
    abandon: AtomicBool,
    leftovers: Mutex<Leftovers<J>>,
    paused: AtomicBool,
    /// Guards the writes of `paused`, `abandon` and `held`, and the waits for a resume.
    pause_lock: Mutex<()>,
    resumed: Condvar,
    live_workers: AtomicUsize,
    abandoned: AtomicU64,
}

/// What one worker has done. Single writer: counts are bumped with a plain
/// load and store, no locked instruction.
struct Tally {
    done: AtomicU64,
    failed: AtomicU64,
    panicked: AtomicU64,
    busy: AtomicBool,
    latency: LatencyHistogram,
}

impl Tally {
    fn new() -> Tally {
        Tally {
            done: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            busy: AtomicBool::new(false),
            latency: LatencyHistogram::new(),
        }
    }
}

/// Bumps a counter that only the calling thread writes.
#[inline(always)]
fn bump(counter: &AtomicU64) {
    counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Release);
}

struct Leftovers<J> {
    jobs: Vec<J>,
    /// Taken by a shutdown: a worker that still holds a job runs it.
    collected: bool,
}

/// A meeting point for all workers (see [`Control::Rendezvous`]).
struct Rendezvous {
    expected: usize,
    state: Mutex<(usize, bool)>,
    changed: Condvar,
}

impl Rendezvous {
    fn new(expected: usize) -> Rendezvous {
        Rendezvous {
            expected,
            state: Mutex::new((0, false)),
            changed: Condvar::new(),
        }
    }

    /// A worker arrives and waits for the others (or a release).
    #[cold]
    fn arrive(&self) {
        let mut state = self.state.lock();
        state.0 += 1;
        self.changed.notify_all();
        while state.0 < self.expected && !state.1 {
            self.changed.wait(&mut state);
        }
    }

    /// Waits until every worker has arrived: `true`; or until released or
    /// `deadline`: `false`.
    fn wait(&self, deadline: Instant) -> bool {
        let mut state = self.state.lock();
        while state.0 < self.expected {
            if state.1 || self.changed.wait_until(&mut state, deadline).timed_out() {
                return state.0 >= self.expected;
            }
        }
        true
    }

    /// Lets waiting workers go without the others.
    fn release(&self) {
        self.state.lock().1 = true;
        self.changed.notify_all();
    }
}

/// A job handed back by [`Dispatcher::submit`]: the dispatcher is closed.
///
/// Its `Debug` does not require `J: Debug`.
#[derive(PartialEq, Eq)]
pub struct SubmitError<J>(pub J);

/// A job handed back by [`Dispatcher::try_submit`].
#[derive(PartialEq, Eq)]
pub enum TrySubmitError<J> {
    /// The queue is full.
    Full(J),
    /// The dispatcher is closed.
    Closed(J),
}

impl<J> TrySubmitError<J> {
    /// The job that was not queued.
    pub fn into_inner(self) -> J {
        match self {
            TrySubmitError::Full(job) | TrySubmitError::Closed(job) => job,
        }
    }
}

impl<J> fmt::Debug for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubmitError(..)")
    }
}

impl<J> fmt::Display for SubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the dispatcher is closed; the job was handed back")
    }
}

impl<J> std::error::Error for SubmitError<J> {}

impl<J> fmt::Debug for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "Full(..)",
            TrySubmitError::Closed(_) => "Closed(..)",
        })
    }
}

impl<J> fmt::Display for TrySubmitError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "the dispatcher's queue is full; the job was handed back",
            TrySubmitError::Closed(_) => "the dispatcher is closed; the job was handed back",
        })
    }
}

impl<J> std::error::Error for TrySubmitError<J> {}

/// Builds a [`Dispatcher`] of jobs `J` with results `R`: workers and queue
/// size, an optional limiter and health log. Concurrency and rate are
/// independent knobs. `J` and `R` come from the handler given to
/// [`build`](DispatcherBuilder::build).
///
/// Defaults: 10 workers, a queue of 1,000, no limiter, no health log.
pub struct DispatcherBuilder<J, R> {
    workers: usize,
    capacity: usize,
    limiter: Option<Arc<dyn Limiter>>,
    health_every: Option<Duration>,
    jobs: PhantomData<fn(J) -> R>,
}

impl<J, R> Default for DispatcherBuilder<J, R> {
    fn default() -> DispatcherBuilder<J, R> {
        DispatcherBuilder::new()
    }
}

impl<J, R> Clone for DispatcherBuilder<J, R> {
    fn clone(&self) -> Self {
        DispatcherBuilder {
            limiter: self.limiter.clone(),
            ..*self
        }
    }
}

impl<J, R> fmt::Debug for DispatcherBuilder<J, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DispatcherBuilder")
            .field("workers", &self.workers)
            .field("capacity", &self.capacity)
            .field("limiter", &self.limiter)
            .field("health_every", &self.health_every)
            .finish()
    }
}

impl<J, R> DispatcherBuilder<J, R> {
    /// The defaults above; the same as [`Dispatcher::builder`].
    pub fn new() -> DispatcherBuilder<J, R> {
        DispatcherBuilder {
            workers: 10,
            capacity: 1_000,
            limiter: None,
            health_every: None,
            jobs: PhantomData,
        }
    }

    /// Worker threads; default 10.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Jobs the queue holds before `submit` blocks; default 1,000.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    /// A limiter every job waits on before it runs: for jobs that do not go
    /// through a [`Client`](crate::Client) (whose calls have their own).
    pub fn limiter(mut self, limiter: impl Limiter + 'static) -> Self {
        self.limiter = Some(Arc::new(limiter));
        self
    }

    /// Logs the health line ([`DispatcherStats`]'s `Display`) with
    /// `log::info!` every `interval`.
    pub fn health_log(mut self, interval: Duration) -> Self {
        self.health_every = Some(interval);
        self
    }

    /// Starts the workers, each running jobs with `handler`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for zero workers, a zero capacity or a zero
    /// health interval.
    pub fn build(self, handler: impl Fn(J) -> R + Send + Sync + 'static) -> Result<Dispatcher<J, R>>
    where
        J: Send + 'static,
        R: Outcome + Send + 'static,
    {
        if self.workers == 0 {
            return Err(Error::invalid("workers", 0, "at least 1"));
        }
        if self.capacity == 0 {
            return Err(Error::invalid("capacity", 0, "at least 1"));
        }
        if self.health_every.is_some_and(|every| every.is_zero()) {
            return Err(Error::invalid("health_log", "0s", "an interval above zero"));
        }
        let (jobs, queue) = crossbeam_channel::bounded(self.capacity);
        let handler = Arc::new(handler);
        let shared = Arc::new(Shared {
            started: Instant::now(),
            handler: handler.clone(),
            is_failure: <R as Outcome>::is_failure,
            limiter: self.limiter,
            queue,
            controls: Mutex::new(VecDeque::new()),
            tallies: (0..=self.workers).map(|_| Padded(Tally::new())).collect(),
            closed: AtomicBool::new(false),
            held: AtomicBool::new(false),
            abandon: AtomicBool::new(false),
            leftovers: Mutex::new(Leftovers {
                jobs: Vec::new(),
                collected: false,
            }),
            paused: AtomicBool::new(false),
            pause_lock: Mutex::new(()),
            resumed: Condvar::new(),
            live_workers: AtomicUsize::new(self.workers),
            abandoned: AtomicU64::new(0),
        });
        let workers = (0..self.workers)
            .map(|n| {
                let (shared, handler) = (shared.clone(), handler.clone());
                thread::Builder::new()
                    .name(format!("cio-dispatch-{n}"))
                    .spawn(move || shared.work(n, &*handler))
                    .expect("spawning a worker thread")
            })
            .collect();
        let health = self.health_every.map(|every| {
            let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
            let shared = shared.clone();
            let logger = thread::Builder::new()
                .name("cio-dispatch-health".into())
                .spawn(move || {
                    while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                        log::info!("dispatcher: {}", shared.stats());
                    }
                })
                .expect("spawning the health logger");
            (stop, logger)
        });
        Ok(Dispatcher {
            shared,
            jobs,
            workers: Mutex::new(workers),
            markers: Mutex::new(()),
            health: Mutex::new(health),
        })
    }
}

impl<J, R> Dispatcher<J, R>
where
    J: Send + 'static,
    R: Outcome + Send + 'static,
{
    /// Starts from the defaults: 10 workers, a queue of 1,000, no limiter.
    /// The job and result types come from the handler given to
    /// [`build`](DispatcherBuilder::build).
    pub fn builder() -> DispatcherBuilder<J, R> {
        DispatcherBuilder::new()
    }

    /// Queues `job`, blocking while the queue is full, and returns its ticket.
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the job, if the dispatcher is closed.
    pub fn submit(&self, job: J) -> std::result::Result<Ticket<R>, SubmitError<J>> {
        let (reply, result) = crossbeam_channel::bounded(1);
        self.enqueue(job, Some(reply)).map_err(SubmitError)?;
        Ok(Ticket::new(result))
    }

    /// Queues `job` without a ticket ("fire and forget"), blocking while the
    /// queue is full. Its outcome shows only in [`stats`](Dispatcher::stats).
    ///
    /// # Errors
    ///
    /// [`SubmitError`] with the job, if the dispatcher is closed.
    pub fn execute(&self, job: J) -> std::result::Result<(), SubmitError<J>> {
        self.enqueue(job, None).map_err(SubmitError)
    }

    /// Queues `job` if there is room now.
    ///
    /// # Errors
    ///
    /// [`TrySubmitError::Full`] or [`TrySubmitError::Closed`], with the job.
    pub fn try_submit(&self, job: J) -> std::result::Result<Ticket<R>, TrySubmitError<J>> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(TrySubmitError::Closed(job));
        }
        let (reply, result) = crossbeam_channel::bounded(1);
        match self.jobs.try_send(self.shared.message(job, Some(reply))) {
            Ok(()) => Ok(Ticket::new(result)),
            Err(TrySendError::Full(message)) => Err(TrySubmitError::Full(into_job(message))),
            Err(TrySendError::Disconnected(message)) => {
                Err(TrySubmitError::Closed(into_job(message)))
            }
        }
    }

    fn enqueue(
        &self,
        job: J,
        reply: Option<Sender<std::result::Result<R, JobError>>>,
    ) -> std::result::Result<(), J> {
        if self.shared.closed.load(Ordering::SeqCst) {
            return Err(job);
        }
        self.jobs
            .send(self.shared.message(job, reply))
            .map_err(|err| into_job(err.into_inner()))
    }

    /// Counts and latency percentiles, now.
    pub fn stats(&self) -> DispatcherStats {
        self.shared.stats()
    }

    /// Blocks until every job submitted before the call has finished. Returns
    /// at once on a closed dispatcher (closing waits for the work itself), and
    /// waits for [`resume`](Dispatcher::resume) on a paused one.
    pub fn flush(&self) {
        if self.shared.closed.load(Ordering::SeqCst) {
            return;
        }
        let rendezvous = self.send_markers(None);
        while !rendezvous.wait(Instant::now() + TICK) {
            if self.shared.live_workers.load(Ordering::SeqCst) == 0 {
                return; // closed meanwhile: close ran what was queued
            }
        }
    }

    /// Workers take no new job until [`resume`](Dispatcher::resume); jobs
    /// already running finish. Submitting still queues (and blocks when full).
    pub fn pause(&self) {
        self.shared.set_flag(&self.shared.paused, true);
    }

    /// Lets workers take jobs again.
    pub fn resume(&self) {
        self.shared.resume();
    }

    /// Stops intake, runs everything already queued, and joins the workers.
    /// Submitting afterwards hands the job back. Calling it again does nothing.
    pub fn close(&self) {
        self.close_and_join();
    }

    /// Stops intake and waits at most `timeout` for the queue to drain. Jobs
    /// not started by then are returned, unrun, for the caller to keep (their
    /// tickets end with [`JobError::Abandoned`]); jobs still running are left
    /// to finish on their threads.
    pub fn shutdown_timeout(&self, timeout: Duration) -> Vec<J> {
        let deadline = Instant::now() + timeout;
        let shared = &self.shared;
        shared.closed.store(true, Ordering::SeqCst);
        shared.resume();
        let rendezvous = self.send_markers(Some(deadline));
        if rendezvous.wait(deadline) {
            self.close_and_join();
            return Vec::new();
        }
        shared.set_flag(&shared.abandon, true);
        rendezvous.release();
        let mut unrun = Vec::new();
        while let Some(message) = shared.next_queued() {
            match message {
                Some(envelope) => unrun.push(shared.give_back(envelope)),
                None => shared.release_control(),
            }
        }
        {
            let mut leftovers = shared.leftovers.lock();
            leftovers.collected = true;
            unrun.append(&mut leftovers.jobs);
        }
        // Idle workers are told to leave (as many as the queue holds; the
        // rest when the dispatcher is dropped and the queue disconnects);
        // busy ones leave after their job. Neither is joined.
        let workers = std::mem::take(&mut *self.workers.lock());
        {
            let _in_order = self.markers.lock();
            for _ in &workers {
                if !self.send_control(Control::Leave, Some(Instant::now())) {
                    break;
                }
            }
        }
        log::warn!(
            "dispatcher shut down after {timeout:?}: {} jobs handed back unrun, {} still running",
            unrun.len(),
            shared.stats().in_flight
        );
        self.stop_health_log();
        unrun
    }

    /// Queues one rendezvous marker per worker, behind every job queued so
    /// far; gives up sending at `deadline`.
    fn send_markers(&self, deadline: Option<Instant>) -> Arc<Rendezvous> {
        let workers = self.shared.tallies.len() - 1;
        let rendezvous = Arc::new(Rendezvous::new(workers));
        let _one_set_at_a_time = self.markers.lock();
        for _ in 0..workers {
            if !self.send_control(Control::Rendezvous(rendezvous.clone()), deadline) {
                break;
            }
        }
        rendezvous
    }
}

impl<J, R> Dispatcher<J, R> {
    /// Queues `control`'s token behind every job queued so far, giving up at
    /// `deadline`: `false`, and the control is taken back. The caller holds
    /// `markers`, so tokens queue in the order their controls wait.
    fn send_control(&self, control: Control, deadline: Option<Instant>) -> bool {
        let controls = &self.shared.controls;
        // In place before its token is sent, so the worker that takes the
        // token finds it. Each token taken takes one control, first in first
        // out: until its token is sent, nobody takes this one, the last.
        controls.lock().push_back(control);
        let sent = match deadline {
            None => self.jobs.send(None).is_ok(),
            Some(deadline) => self.jobs.send_deadline(None, deadline).is_ok(),
        };
        if !sent {
            controls.lock().pop_back();
        }
        sent
    }

    /// Closes intake, lets the workers drain the queue, joins them, and runs
    /// any job that slipped in while they were leaving.
    fn close_and_join(&self) {
        let shared = &self.shared;
        shared.closed.store(true, Ordering::SeqCst);
        shared.resume();
        let workers = std::mem::take(&mut *self.workers.lock());
        if !workers.is_empty() && !shared.queue.is_empty() {
            log::info!(
                "dispatcher closing: running the {} jobs queued first",
                shared.queue.len()
            );
        }
        {
            let _in_order = self.markers.lock();
            for _ in &workers {
                // The receiver lives in `shared`, so the queue never disconnects.
                self.send_control(Control::Leave, None);
            }
        }
        for worker in workers {
            // A worker never panics: jobs run under catch_unwind.
            let _ = worker.join();
        }
        shared.run_stragglers();
        self.stop_health_log();
    }

    fn stop_health_log(&self) {
        if let Some((stop, logger)) = self.health.lock().take() {
            drop(stop);
            let _ = logger.join();
        }
    }
}

/// The job of a message this dispatcher sent as a job.
fn into_job<J, R>(message: Message<J, R>) -> J {
    match message {
        Some(envelope) => envelope.job,
        None => unreachable!("a job was sent, not a control token"),
    }
}

impl<J, R> Shared<J, R> {
    /// The message for a job: timed for one job in [`LATENCY_SAMPLE`] per
    /// producer thread.
    fn message(&self, job: J, ticket: Option<ResultSender<R>>) -> Message<J, R> {
        thread_local! {
            static SUBMITTED: Cell<u64> = const { Cell::new(0) };
        }
        let sampled = SUBMITTED.with(|count| {
            let n = count.get();
            count.set(n.wrapping_add(1));
            n % LATENCY_SAMPLE == 0
        });
        let reply = if sampled {
            Some(self.timed(ticket))
        } else {
            ticket.map(|ticket| {
                Box::new(Reply {
                    ticket: Some(ticket),
                    submitted_at: 0,
                })
            })
        };
        Some(Envelope { job, reply })
    }

    #[cold]
    fn timed(&self, ticket: Option<ResultSender<R>>) -> Box<Reply<R>> {
        Box::new(Reply {
            ticket,
            submitted_at: self.now(),
        })
    }

    /// The control message whose token was just taken; `None` only if the
    /// tokens and controls were out of step, which `send_control` prevents.
    fn next_control(&self) -> Option<Control> {
        self.controls.lock().pop_front()
    }

    /// Takes the next control message, when nobody is there to act on it:
    /// a rendezvous lets its waiters go.
    fn release_control(&self) {
        if let Some(Control::Rendezvous(rendezvous)) = self.next_control() {
            rendezvous.release();
        }
    }

    /// Nanoseconds since `started`, plus one (0 means "not sampled"). Cold:
    /// read for one job in [`LATENCY_SAMPLE`].
    #[cold]
    fn now(&self) -> u64 {
        nanos(self.started.elapsed()) + 1
    }

    fn resume(&self) {
        self.set_flag(&self.paused, false);
        self.resumed.notify_all();
    }

    /// Sets `paused` or `abandon`, and `held` to match.
    fn set_flag(&self, flag: &AtomicBool, value: bool) {
        let _lock = self.pause_lock.lock();
        flag.store(value, Ordering::SeqCst);
        let held = self.paused.load(Ordering::SeqCst) || self.abandon.load(Ordering::SeqCst);
        self.held.store(held, Ordering::SeqCst);
    }

    /// The slow path before a job, when `held` is set: waits out a pause,
    /// and keeps the job in `leftovers` if the dispatcher is abandoning its
    /// queue. The envelope comes back if the job should run.
    #[cold]
    #[inline(never)]
    fn hold(&self, envelope: Envelope<J, R>) -> Option<Envelope<J, R>> {
        self.wait_while_paused();
        if self.abandon.load(Ordering::SeqCst) {
            let mut leftovers = self.leftovers.lock();
            if !leftovers.collected {
                let job = self.give_back(envelope);
                leftovers.jobs.push(job);
                return None;
            }
        }
        Some(envelope)
    }

    fn wait_while_paused(&self) {
        if !self.paused.load(Ordering::SeqCst) {
            return;
        }
        let mut lock = self.pause_lock.lock();
        while self.paused.load(Ordering::SeqCst) {
            self.resumed.wait(&mut lock);
        }
    }

    /// Takes an unrun job back out of its envelope; its ticket ends Abandoned.
    fn give_back(&self, envelope: Envelope<J, R>) -> J {
        if let (Some(ticket), _) = unpack(envelope.reply) {
            let _ = ticket.send(Err(JobError::Abandoned));
        }
        self.abandoned.fetch_add(1, Ordering::SeqCst);
        envelope.job
    }

    /// Worker `index`'s life: take jobs until told to leave (a message), or
    /// until the dispatcher is dropped (the queue disconnects).
    ///
    /// Generic over the handler and `R`, so that the per-job path makes no
    /// indirect call of its own: the handler, `is_failure` and the counting
    /// are inlined.
    fn work(&self, index: usize, handler: &impl Fn(J) -> R)
    where
        R: Outcome,
    {
        let tally = &self.tallies[index].0;
        // Blocking without a deadline: a deadline reads the clock on every
        // wait, which costs more than the rest of a small job's handling.
        while let Ok(message) = self.queue.recv() {
            let Some(mut envelope) = message else {
                match self.next_control() {
                    Some(Control::Rendezvous(rendezvous)) => rendezvous.arrive(),
                    Some(Control::Leave) => break,
                    None => {}
                }
                continue;
            };
            if self.held.load(Ordering::SeqCst) {
                match self.hold(envelope) {
                    Some(held) => envelope = held,
                    None => continue,
                }
            }
            self.run(tally, envelope, handler, R::is_failure, bump);
        }
        self.live_workers.fetch_sub(1, Ordering::SeqCst);
    }

    /// The next message, if one is queued: for the drains at close and
    /// shutdown. Not `try_recv`: as a second caller of crossbeam's
    /// `start_recv`, it kept LLVM from inlining that into the `recv` the
    /// workers call for every job (perf showed it as a symbol of its own).
    /// On an empty queue this spins a few microseconds before it gives up.
    fn next_queued(&self) -> Option<Message<J, R>> {
        self.queue.recv_deadline(Instant::now()).ok()
    }

    /// Runs the jobs left in the queue on this thread, once the workers are
    /// gone: they were submitted while the dispatcher was closing.
    fn run_stragglers(&self) {
        let tally = &self.tallies[self.tallies.len() - 1].0;
        let count = |counter: &AtomicU64| {
            counter.fetch_add(1, Ordering::SeqCst);
        };
        while let Some(message) = self.next_queued() {
            match message {
                Some(envelope) => self.run(tally, envelope, &*self.handler, self.is_failure, count),
                None => self.release_control(),
            }
        }
    }

    #[inline(always)]
    fn run(
        &self,
        tally: &Tally,
        envelope: Envelope<J, R>,
        handler: &(impl Fn(J) -> R + ?Sized),
        is_failure: impl Fn(&R) -> bool,
        count: impl Fn(&AtomicU64),
    ) {
        tally.busy.store(true, Ordering::Relaxed);
        if let Some(limiter) = &self.limiter {
            limiter.acquire();
        }
        let Envelope { job, reply } = envelope;
        let result = catch_unwind(AssertUnwindSafe(move || handler(job)));
        let (ticket, submitted_at) = unpack(reply);
        if submitted_at > 0 {
            self.record_latency(tally, submitted_at);
        }
        let result = match result {
            Ok(value) => {
                count(if is_failure(&value) {
                    &tally.failed
                } else {
                    &tally.done
                });
                Ok(value)
            }
            Err(panic) => {
                count(&tally.panicked);
                count(&tally.failed);
                Err(JobError::Panicked(panic_message(&*panic)))
            }
        };
        tally.busy.store(false, Ordering::Relaxed);
        if let Some(ticket) = ticket {
            // The ticket may have been dropped: nobody is waiting, and that is fine.
            let _ = ticket.send(result);
        }
    }

    /// Cold, like [`Shared::now`]: for one job in [`LATENCY_SAMPLE`].
    #[cold]
    fn record_latency(&self, tally: &Tally, submitted_at: u64) {
        let latency = self.now().saturating_sub(submitted_at);
        tally.latency.record(Duration::from_nanos(latency));
    }

    fn stats(&self) -> DispatcherStats {
        let sum = |counter: fn(&Tally) -> &AtomicU64| -> u64 {
            self.tallies
                .iter()
                .map(|t| counter(&t.0).load(Ordering::Acquire))
                .sum()
        };
        let histograms: Vec<&LatencyHistogram> =
            self.tallies.iter().map(|t| &t.0.latency).collect();
        let quantile = |q| LatencyHistogram::quantile_of(&histograms, q);
        let (done, failed) = (sum(|t| &t.done), sum(|t| &t.failed));
        let queued = self.queue.len();
        let in_flight = self
            .tallies
            .iter()
            .filter(|t| t.0.busy.load(Ordering::Relaxed))
            .count();
        let abandoned = self.abandoned.load(Ordering::SeqCst);
        DispatcherStats {
            queued,
            in_flight,
            submitted: done + failed + abandoned + (queued + in_flight) as u64,
            done,
            failed,
            panicked: sum(|t| &t.panicked),
            abandoned,
            latency_p50: quantile(0.50),
            latency_p90: quantile(0.90),
            latency_p99: quantile(0.99),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cold]
fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_owned()
    }
}

impl<J, R> Drop for Dispatcher<J, R> {
    /// Closes the dispatcher: everything queued runs before the workers are
    /// joined, and so does anything submitted while it was closing (no
    /// producer can be left now). Use [`Dispatcher::shutdown_timeout`] to
    /// bound the wait.
    fn drop(&mut self) {
        self.close_and_join();
    }
}

impl<J, R> fmt::Debug for Dispatcher<J, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dispatcher")
            .field("workers", &(self.shared.tallies.len() - 1))
            .field("capacity", &self.jobs.capacity())
            .field("closed", &self.shared.closed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_travels_in_as_few_bytes_as_in_a_plain_pool() {
        // Every byte of a message is written into the queue by one core and
        // read out by another: dispatcher_bench compares with this pair.
        assert_eq!(
            std::mem::size_of::<Message<u64, ()>>(),
            std::mem::size_of::<(u64, Option<Sender<u64>>)>()
        );
    }

    #[test]
    fn workers_are_held_while_paused_or_abandoning_and_only_then() {
        let dispatcher = Dispatcher::builder().workers(1).build(|_: u64| ()).unwrap();
        let shared = &dispatcher.shared;
        let held = || shared.held.load(Ordering::SeqCst);
        assert!(!held());
        dispatcher.pause();
        assert!(held());
        dispatcher.resume();
        assert!(!held());
        // A shutdown that gives up abandons the queue; a resume afterwards
        // must not let workers run what it handed back.
        dispatcher.pause();
        shared.set_flag(&shared.abandon, true);
        dispatcher.resume();
        assert!(held(), "still abandoning after a resume");
    }
}
