//! The blocking retry loop: backoff with jitter, Retry-After, a shared pause on 429.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::limit::clock::{Clock, SystemClock};
use crate::limit::limiter::Limiter;
use crate::retry::attempt_gate::AttemptGate;
use crate::retry::budget::RetryBudget;
use crate::retry::classify::{Classify, Failure, Verdict};
use crate::retry::stats::RetryStats;

/// Whether a call may be sent twice.
///
/// Customer.io deduplicates events by their `id`, and identify, delete,
/// suppress and device calls land in the same state however often they are
/// sent: those are [`Safe`](Idempotency::Safe). A transactional send or a
/// broadcast trigger sent twice reaches people twice: those are
/// [`Unsafe`](Idempotency::Unsafe), and are retried only when the server
/// certainly did not act on them (429, connection refused) unless the policy
/// opts in with [`RetryPolicyBuilder::retry_unsafe`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Repeating the call has the same effect as sending it once.
    Safe,
    /// Repeating the call may repeat its effect.
    Unsafe,
}

/// One call as the retry loop sees it: a name for the log and whether it may
/// be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call<'a> {
    name: &'a str,
    idempotency: Idempotency,
}

impl<'a> Call<'a> {
    /// A call that may be repeated, named `name` in log lines.
    pub fn safe(name: &'a str) -> Call<'a> {
        Call {
            name,
            idempotency: Idempotency::Safe,
        }
    }

    /// A call that must not be repeated unless the server certainly did not act on it.
    pub fn unsafe_to_repeat(name: &'a str) -> Call<'a> {
        Call {
            name,
            idempotency: Idempotency::Unsafe,
        }
    }

    /// The call's name, as it appears in log lines.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Whether the call may be repeated.
    pub fn idempotency(&self) -> Idempotency {
        self.idempotency
    }
}

/// How backoff delays are randomised, so that clients don't retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Jitter {
    /// `delay + random(0 ..= share × delay)`; `share` in `0.0..=1.0`.
    Proportional(f64),
    /// `random(0 ..= delay)` ("full jitter").
    Full,
}

/// What the retry loop does after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// The server is throttling the workspace: pause the shared limiter for
    /// this long, then try again. Not counted against `max_retries`.
    Throttle(Duration),
    /// A transient failure: wait this long, then try again.
    Retry(Duration),
    /// Stop and return the error.
    GiveUp,
}

/// How calls are retried: backoff, jitter, Retry-After, safety, and budgets.
///
/// Every attempt, retries included, takes a permit from the limiter, so the
/// rate holds however many retries there are.
///
/// - **429** pauses the shared limiter for the server's `Retry-After` (or the
///   backoff when there is none), so every thread backs off together, and
///   tells it the server throttled ([`Limiter::throttled`]), so that a
///   learning limiter takes its rate from the server's. A `Retry-After` of 0,
///   or a date already past, still pauses: 250 ms, then 500 ms, then 1 s
///   within one call (a quarter of the base delay, doubling to it). These
///   retries are bounded by a total wait (`throttle_deadline`, default
///   5 minutes), not by `max_retries`, and do not spend the retry budget.
/// - **408, 500, 502, 503, 504, timeouts, resets and refused connections**
///   are retried after `min(base × 2^n, max_delay)` plus jitter, at most
///   `max_retries` times. A timeout is not a rate limit: nobody else is paused.
/// - **Retries take permits** from the same limiter as first attempts, so
///   they can never push the rate above the limiter's: a failing server sees
///   the configured rate, not a storm. There is no separate retry budget
///   unless you ask for one ([`retry_budget`](RetryPolicyBuilder::retry_budget)),
///   for calls whose limiter does not bound the rate (an
///   [`Unlimited`](crate::limit::Unlimited) one, say).
/// - **Other statuses** (400, 401, 403, 404, 422, ...) are never retried.
/// - [`Unsafe`](Idempotency::Unsafe) calls are retried only on 429 and
///   refused connections unless [`retry_unsafe`](RetryPolicyBuilder::retry_unsafe) is set.
///
/// Each retry logs one `log::warn!` line: the call's name, attempt n/max,
/// the delay and the failure; never a URL, header or key.
///
/// ```
/// use cio_ratelimit::{RateLimit, RetryPolicy, TokenBucket};
/// use cio_ratelimit::retry::{Call, Failure};
/// use cio_ratelimit::limit::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let policy = RetryPolicy::builder().clock(clock.clone()).build()?;
/// let limiter = TokenBucket::with_clock(RateLimit::new(80.0, 10)?, clock.clone());
///
/// let mut answers = vec![Ok("sent"), Err(Failure::Status { status: 503, retry_after: None })];
/// let result = policy.run(&limiter, Call::safe("identify"), || answers.pop().unwrap());
/// assert_eq!(result, Ok("sent"));
/// assert!(clock.elapsed() >= Duration::from_secs(1)); // one backoff of 1 s + jitter
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
///
/// # Threads and cloning
///
/// `RetryPolicy` is `Send + Sync`. Clones share one retry budget (if any) and
/// one set of counters ([`stats`](RetryPolicy::stats)).
#[derive(Clone)]
pub struct RetryPolicy {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    jitter: Jitter,
    max_retry_after: Duration,
    throttle_deadline: Duration,
    retry_unsafe: bool,
    clock: Arc<dyn Clock>,
    budget: Option<RetryBudget>,
    counters: Arc<Counters>,
    /// Once set, a failed attempt is not retried: see
    /// [`stopping_when`](RetryPolicy::stopping_when).
    stop: Option<Arc<AtomicBool>>,
    /// Each attempt holds a place here: see [`gated_by`](RetryPolicy::gated_by).
    gate: Option<Arc<AttemptGate>>,
}

/// How often a backoff looks at the stop flag while it sleeps.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Totals over every call of a policy and its clones.
#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
    gave_up: AtomicU64,
}

/// Builds a [`RetryPolicy`]; every setting is checked by [`build`](RetryPolicyBuilder::build).
#[derive(Debug, Clone)]
pub struct RetryPolicyBuilder {
    max_retries: u32,
    base_delay: Duration,
    max_delay: Duration,
    jitter: Jitter,
    max_retry_after: Duration,
    throttle_deadline: Duration,
    retry_unsafe: bool,
    /// Share, window and allowance of an opted-in retry budget.
    budget: Option<(f64, Duration, u32)>,
    clock: Option<Arc<dyn Clock>>,
}

impl Default for RetryPolicyBuilder {
    fn default() -> RetryPolicyBuilder {
        RetryPolicyBuilder::new()
    }
}

impl RetryPolicyBuilder {
    /// The defaults of [`RetryPolicy::default`]; the same as [`RetryPolicy::builder`].
    pub fn new() -> RetryPolicyBuilder {
        RetryPolicyBuilder {
            max_retries: 4,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: Jitter::Proportional(0.25),
            max_retry_after: Duration::from_secs(60),
            throttle_deadline: Duration::from_secs(300),
            retry_unsafe: false,
            budget: None,
            clock: None,
        }
    }

    /// Retries after transient failures (not 429s), default 4.
    pub fn max_retries(mut self, max_retries: u32) -> Self {
        self.max_retries = max_retries;
        self
    }

    /// The first backoff delay, doubled on each retry; default 1 s.
    pub fn base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// The longest backoff delay before jitter, default 60 s.
    pub fn max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// How delays are randomised; default `Jitter::Proportional(0.25)`.
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.jitter = jitter;
        self
    }

    /// The longest `Retry-After` honoured; longer ones are clamped. Default 60 s.
    pub fn max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// How long one call may keep waiting on 429s, counted from the first
    /// one, before it gives up; default 5 minutes. Zero: never retry a 429
    /// (the limiter is still paused).
    pub fn throttle_deadline(mut self, throttle_deadline: Duration) -> Self {
        self.throttle_deadline = throttle_deadline;
        self
    }

    /// Retry [`Unsafe`](Idempotency::Unsafe) calls like safe ones; default
    /// `false`. Only for callers who accept that a message may be sent twice.
    pub fn retry_unsafe(mut self, retry_unsafe: bool) -> Self {
        self.retry_unsafe = retry_unsafe;
        self
    }

    /// Adds a retry budget: retries of transient failures may add at most
    /// `share` (0.0–1.0, e.g. 0.2) to the requests over a sliding `window`
    /// (e.g. 10 s), plus `min_retries` per window so that a quiet program can
    /// still retry. A call the budget refuses gives up at once, with a
    /// warning, before its `max_retries` are spent.
    ///
    /// Off by default: every retry already takes a permit from the call's
    /// limiter, so retries cannot raise the rate above the limiter's. A
    /// budget is for calls whose limiter does not bound the rate.
    pub fn retry_budget(mut self, share: f64, window: Duration, min_retries: u32) -> Self {
        self.budget = Some((share, window, min_retries));
        self
    }

    /// The clock used to wait and measure; default [`SystemClock`].
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Checks the settings and builds the policy.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] naming the setting: a zero base delay, a
    /// maximum delay below the base, a jitter share outside 0.0–1.0, or a
    /// retry budget with a share outside 0.0–1.0 or a zero window.
    pub fn build(self) -> Result<RetryPolicy> {
        if self.base_delay.is_zero() {
            return Err(Error::invalid(
                "base_delay",
                format_args!("{:?}", self.base_delay),
                "more than zero",
            ));
        }
        if self.max_delay < self.base_delay {
            return Err(Error::invalid(
                "max_delay",
                format_args!("{:?}", self.max_delay),
                "at least base_delay",
            ));
        }
        if let Jitter::Proportional(share) = self.jitter
            && !(0.0..=1.0).contains(&share)
        {
            return Err(Error::invalid(
                "jitter",
                share,
                "a share between 0.0 and 1.0",
            ));
        }
        if let Some((share, window, _)) = self.budget {
            if !(0.0..=1.0).contains(&share) {
                return Err(Error::invalid(
                    "retry_budget share",
                    share,
                    "a share between 0.0 and 1.0",
                ));
            }
            if window.is_zero() {
                return Err(Error::invalid(
                    "retry_budget window",
                    "0s",
                    "more than zero",
                ));
            }
        }
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        Ok(RetryPolicy {
            max_retries: self.max_retries,
            base_delay: self.base_delay,
            max_delay: self.max_delay,
            jitter: self.jitter,
            max_retry_after: self.max_retry_after,
            throttle_deadline: self.throttle_deadline,
            retry_unsafe: self.retry_unsafe,
            counters: Arc::default(),
            stop: None,
            gate: None,
            budget: self.budget.map(|(share, window, min_retries)| {
                RetryBudget::new(share, window, min_retries, clock.clone())
            }),
            clock,
        })
    }
}

impl Default for RetryPolicy {
    /// 4 retries, 1 s base doubling to 60 s, 25 % jitter, Retry-After up to
    /// 60 s, 5 minutes of 429s, unsafe calls not retried, no retry budget
    /// (retries take permits from the limiter like first attempts).
    fn default() -> RetryPolicy {
        RetryPolicyBuilder::new()
            .build()
            .expect("the default retry policy is valid")
    }
}

impl RetryPolicy {
    /// Starts from the defaults (see [`RetryPolicy::default`]).
    pub fn builder() -> RetryPolicyBuilder {
        RetryPolicyBuilder::new()
    }

    /// A policy that never retries anything; a 429 still pauses the limiter,
    /// so the next call waits.
    pub fn never() -> RetryPolicy {
        RetryPolicy::builder()
            .max_retries(0)
            .throttle_deadline(Duration::ZERO)
            .build()
            .expect("a policy without retries is valid")
    }

    /// Retries after transient failures.
    pub fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// The longest `Retry-After` honoured; pass it to
    /// [`parse_retry_after`](crate::retry::parse_retry_after) as the ceiling.
    pub fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The clock this policy waits on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What the retry loop has done so far, over all calls of this policy and
    /// its clones, whoever made them. For the calls you made, see
    /// [`RetryStats::during`].
    pub fn stats(&self) -> RetryStats {
        RetryStats {
            requests: self.counters.requests.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            throttled: self.counters.throttled.load(Ordering::Relaxed),
            gave_up: self.counters.gave_up.load(Ordering::Relaxed),
        }
    }

    /// The backoff before retry number `retry` (0 for the first), jitter included.
    fn backoff(&self, retry: u32) -> Duration {
        let doubled = self.base_delay.as_secs_f64() * 2f64.powi(retry.min(1_000) as i32);
        let delay = doubled.min(self.max_delay.as_secs_f64());
        let jittered = match self.jitter {
            Jitter::Proportional(share) => delay + delay * share * fastrand::f64(),
            Jitter::Full => delay * fastrand::f64(),
        };
        Duration::from_secs_f64(jittered)
    }

    /// The shortest pause after the `throttles`-th 429 of a call (0 for the
    /// first): a quarter of the base delay, doubling up to the base delay, so
    /// 250 ms, 500 ms, then 1 s by default. A `Retry-After` of 0 or a date
    /// already past still pauses this long: a 3 s throttle draws a handful
    /// of requests, not dozens.
    pub(crate) fn throttle_floor(&self, throttles: u32) -> Duration {
        self.base_delay / 4 * 2u32.pow(throttles.min(2))
    }

    /// What to do after a failed attempt. `retries` transient retries and
    /// `throttles` 429s have happened in this call so far.
    fn decide(
        &self,
        failure: Failure,
        idempotency: Idempotency,
        retries: u32,
        throttles: u32,
    ) -> Decision {
        let repeatable = idempotency == Idempotency::Safe || self.retry_unsafe;
        let transient = match failure.verdict() {
            Verdict::Pause(retry_after) => {
                return Decision::Throttle(match retry_after {
                    Some(wait) => wait
                        .min(self.max_retry_after)
                        .max(self.throttle_floor(throttles)),
                    None => self.backoff(throttles),
                });
            }
            Verdict::Retry {
                after,
                may_have_acted,
            } if repeatable || !may_have_acted => after.map(|wait| wait.min(self.max_retry_after)),
            Verdict::Retry { .. }
            | Verdict::Unavailable
            | Verdict::RejectContent
            | Verdict::Fatal => {
                return Decision::GiveUp;
            }
        };
        if retries >= self.max_retries {
            return Decision::GiveUp;
        }
        Decision::Retry(transient.unwrap_or_else(|| self.backoff(retries)))
    }

    /// Counts into the policy's totals and the caller's [`RetryStats::during`].
    fn count(&self, change: RetryStats) {
        let counters = &self.counters;
        for (counter, n) in [
            (&counters.requests, change.requests),
            (&counters.retries, change.retries),
            (&counters.throttled, change.throttled),
            (&counters.gave_up, change.gave_up),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
        RetryStats::record(change);
    }

    /// Runs `attempt` until it succeeds or the policy gives up, taking a
    /// permit from `limiter` before every attempt.
    ///
    /// # Errors
    ///
    /// The last attempt's error, when it is not retryable, when `max_retries`
    /// or the retry budget is spent, or when 429s outlast the throttle deadline.
    pub fn run<T, E: Classify>(
        &self,
        limiter: &dyn Limiter,
        call: Call<'_>,
        attempt: impl FnMut() -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.run_unless_stopped(limiter, call, attempt, || None)
    }

    /// [`run`](RetryPolicy::run), but once a stop is asked (see
    /// [`stopping_when`](RetryPolicy::stopping_when)) while the first
    /// attempt waits for its permit (a 429 pause under way, say), the wait
    /// ends with the error `stopped` gives, if it gives one, and nothing is
    /// sent. Later attempts end their waits with the last attempt's error.
    pub(crate) fn run_unless_stopped<T, E: Classify>(
        &self,
        limiter: &dyn Limiter,
        call: Call<'_>,
        attempt: impl FnMut() -> std::result::Result<T, E>,
        stopped: impl FnOnce() -> Option<E>,
    ) -> std::result::Result<T, E> {
        let result = self.attempts(limiter, call, attempt, stopped);
        if result.is_err() {
            self.count(RetryStats {
                gave_up: 1,
                ..RetryStats::default()
            });
        }
        result
    }

    fn attempts<T, E: Classify>(
        &self,
        limiter: &dyn Limiter,
        call: Call<'_>,
        mut attempt: impl FnMut() -> std::result::Result<T, E>,
        stopped_first: impl FnOnce() -> Option<E>,
    ) -> std::result::Result<T, E> {
        if let Some(budget) = &self.budget {
            budget.record_request();
        }
        let mut retries = 0;
        let mut throttles = 0;
        let mut throttled_since: Option<Instant> = None;
        let mut last_error: Option<E> = None;
        let mut stopped_first = Some(stopped_first);
        loop {
            // The place is taken before the permit, as a worker would be.
            let place = self.gate.as_deref().map(AttemptGate::enter);
            if !self.acquire_unless_stopped(limiter) {
                let error = match last_error.take() {
                    Some(error) => Some(error),
                    None => stopped_first.take().and_then(|stopped| stopped()),
                };
                match error {
                    Some(error) => {
                        log::info!("{}: not sent: a stop was asked", call.name);
                        return Err(error);
                    }
                    // Nothing to fail with: wait for the permit as ever.
                    None => limiter.acquire(),
                }
            }
            self.count(RetryStats {
                requests: 1,
                ..RetryStats::default()
            });
            let outcome = attempt();
            limiter.answered();
            let error = match outcome {
                Ok(value) => {
                    limiter.record_success();
                    return Ok(value);
                }
                Err(error) => error,
            };
            let failure = error.failure();
            let stopped = |error| {
                log::info!("{}: {failure}; not retried: a stop was asked", call.name);
                Err(error)
            };
            match self.decide(failure, call.idempotency, retries, throttles) {
                Decision::GiveUp => return Err(error),
                Decision::Throttle(wait) => {
                    // The workspace is throttled, whether or not this call goes
                    // on: everyone pauses, and a learning limiter lowers its rate.
                    // The place is given back only once the pause is set, so
                    // that no call waiting for it goes out in between.
                    limiter.throttled(wait);
                    drop(place);
                    self.count(RetryStats {
                        throttled: 1,
                        ..RetryStats::default()
                    });
                    if self.stop_asked() {
                        return stopped(error);
                    }
                    let now = self.clock.now();
                    let since = *throttled_since.get_or_insert(now);
                    if self.throttle_deadline.is_zero()
                        || (now + wait).saturating_duration_since(since) > self.throttle_deadline
                    {
                        log::warn!(
                            "{}: still throttled (429) after {:?}; giving up",
                            call.name,
                            now.saturating_duration_since(since)
                        );
                        return Err(error);
                    }
                    throttles += 1;
                    log::warn!(
                        "{}: throttled (429), pausing every caller for {wait:?} (throttle {throttles})",
                        call.name
                    );
                    last_error = Some(error);
                }
                Decision::Retry(wait) => {
                    // A backoff holds no place.
                    drop(place);
                    if self.stop_asked() {
                        return stopped(error);
                    }
                    if self
                        .budget
                        .as_ref()
                        .is_some_and(|budget| !budget.try_retry())
                    {
                        log::warn!(
                            "{}: {failure}; retry budget spent, giving up after {retries} of {} retries",
                            call.name,
                            self.max_retries
                        );
                        return Err(error);
                    }
                    retries += 1;
                    log::warn!(
                        "{}: {failure}; retry {retries}/{} in {wait:?}",
                        call.name,
                        self.max_retries
                    );
                    if !self.sleep_unless_stopped(wait) {
                        return stopped(error);
                    }
                    // Counted once it is certain to be made.
                    self.count(RetryStats {
                        retries: 1,
                        ..RetryStats::default()
                    });
                    last_error = Some(error);
                }
            }
        }
    }
}

impl RetryPolicy {
    /// This policy (sharing its budget and counters), but once `stop` is
    /// set a failed attempt is not retried, nor a backoff slept to its end:
    /// the call fails with its last error at once. An attempt under way
    /// finishes, and a call waiting for a permit still waits for it. For an
    /// import that stops cleanly: what was sent is answered, what failed is
    /// left for the resume.
    pub(crate) fn stopping_when(&self, stop: Arc<AtomicBool>) -> RetryPolicy {
        RetryPolicy {
            stop: Some(stop),
            ..self.clone()
        }
    }

    /// This policy (sharing its budget and counters), but each attempt
    /// waits for a place in `gate` before its permit and holds it until it
    /// is answered; a backoff holds none. An import lets more calls be under
    /// way than it has workers, and keeps its attempts to the workers.
    pub(crate) fn gated_by(&self, gate: Arc<AttemptGate>) -> RetryPolicy {
        RetryPolicy {
            gate: Some(gate),
            ..self.clone()
        }
    }

    fn stop_asked(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|stop| stop.load(Ordering::SeqCst))
    }

    /// Waits for a permit from `limiter`, looking at the stop flag every
    /// [`STOP_POLL`] (a 429 pause may last a minute): whether it got one.
    /// Once a stop is asked, a permit that comes within [`STOP_POLL`] is
    /// still taken (what was taken is sent); one further off is not.
    fn acquire_unless_stopped(&self, limiter: &dyn Limiter) -> bool {
        if self.stop.is_none() {
            limiter.acquire();
            return true;
        }
        loop {
            let asked = self.clock.now();
            if limiter.acquire_timeout(STOP_POLL) {
                return true;
            }
            if self.stop_asked() {
                return false;
            }
            // A limiter that lets its callers go without a permit (Redis
            // away longer than allowed, or refusing) says so in `check`:
            // the attempt then fails with its error, unsent.
            if limiter.check().is_err() {
                return true;
            }
            // A limiter may say at once that no permit comes in time.
            let waited = self.clock.now().saturating_duration_since(asked);
            self.clock.sleep(STOP_POLL.saturating_sub(waited));
        }
    }

    /// Sleeps `wait`, looking at the stop flag every [`STOP_POLL`]: whether
    /// it slept all of it with no stop asked.
    fn sleep_unless_stopped(&self, wait: Duration) -> bool {
        if self.stop.is_none() {
            self.clock.sleep(wait);
            return true;
        }
        let mut left = wait;
        while !left.is_zero() && !self.stop_asked() {
            let slice = left.min(STOP_POLL);
            self.clock.sleep(slice);
            left -= slice;
        }
        !self.stop_asked()
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_retries", &self.max_retries)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .field("max_retry_after", &self.max_retry_after)
            .field("throttle_deadline", &self.throttle_deadline)
            .field("retry_unsafe", &self.retry_unsafe)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn status(status: u16) -> Failure {
        Failure::Status {
            status,
            retry_after: None,
        }
    }

    fn throttled(retry_after: Option<Duration>) -> Failure {
        Failure::Status {
            status: 429,
            retry_after,
        }
    }

    #[test]
    fn a_429_asking_for_no_pause_still_pauses_for_a_floor_that_grows_to_the_base_delay() {
        let policy = RetryPolicy::default();
        let safe = Idempotency::Safe;
        let floors: Vec<Decision> = (0..4)
            .map(|n| policy.decide(throttled(Some(Duration::ZERO)), safe, 0, n))
            .collect();
        let ms = |ms| Decision::Throttle(Duration::from_millis(ms));
        assert_eq!(floors, [ms(250), ms(500), ms(1_000), ms(1_000)]);
        assert_eq!(
            policy.decide(throttled(Some(SECOND / 10)), safe, 0, 0),
            ms(250),
            "a Retry-After shorter than the floor is raised to it"
        );
    }

    #[test]
    fn backoff_doubles_to_the_cap_plus_up_to_a_quarter_of_jitter() {
        let policy = RetryPolicy::default();
        for retry in 0..12 {
            let plain = (SECOND * 2u32.pow(retry)).min(Duration::from_secs(60));
            for _ in 0..200 {
                let delay = policy.backoff(retry);
                assert!(
                    delay >= plain && delay <= plain.mul_f64(1.25),
                    "retry {retry}: {delay:?}"
                );
            }
        }
        assert!(
            policy.backoff(u32::MAX) <= Duration::from_secs(75),
            "no overflow at huge counts"
        );
    }

    #[test]
    fn full_jitter_spreads_delays_between_zero_and_the_backoff() {
        let policy = RetryPolicy::builder().jitter(Jitter::Full).build().unwrap();
        let delays: Vec<Duration> = (0..500).map(|_| policy.backoff(3)).collect();
        assert!(delays.iter().all(|d| *d <= 8 * SECOND));
        assert!(delays.iter().any(|d| *d < 2 * SECOND) && delays.iter().any(|d| *d > 6 * SECOND));
    }

    #[test]
    fn classification_retries_transient_failures_and_nothing_else() {
        let policy = RetryPolicy::default();
        let safe = Idempotency::Safe;
        for code in [408, 500, 502, 503, 504] {
            assert!(
                matches!(policy.decide(status(code), safe, 0, 0), Decision::Retry(_)),
                "{code}"
            );
        }
        for code in [400, 401, 403, 404, 409, 413, 422, 301, 501, 505] {
            assert_eq!(
                policy.decide(status(code), safe, 0, 0),
                Decision::GiveUp,
                "{code}"
            );
        }
        for failure in [
            Failure::Timeout,
            Failure::ConnectionReset,
            Failure::ConnectionRefused,
        ] {
            assert!(
                matches!(policy.decide(failure, safe, 0, 0), Decision::Retry(_)),
                "{failure}"
            );
        }
        assert_eq!(
            policy.decide(Failure::Permanent, safe, 0, 0),
            Decision::GiveUp
        );
    }

    /// Issue 24: `--redis-wait 2` ended after 19.6 s, the retry loop
    /// retrying what the limiter had already waited out.
    #[test]
    fn a_redis_outage_the_limiter_waited_out_is_not_retried_but_stays_transient() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.decide(Failure::RedisUnreachable, Idempotency::Safe, 0, 0),
            Decision::GiveUp
        );
        let error = Error::RedisUnreachable {
            url: "redis://127.0.0.1:6379/0".into(),
            waited: SECOND,
        };
        assert!(error.is_transient(), "exit 3: try again later");
    }

    #[test]
    fn a_429_throttles_with_retry_after_clamped_or_backoff() {
        let policy = RetryPolicy::default();
        let safe = Idempotency::Safe;
        assert_eq!(
            policy.decide(throttled(Some(7 * SECOND)), safe, 0, 0),
            Decision::Throttle(7 * SECOND)
        );
        assert_eq!(
            policy.decide(throttled(Some(3600 * SECOND)), safe, 0, 0),
            Decision::Throttle(60 * SECOND)
        );
        match policy.decide(throttled(None), safe, 99, 2) {
            Decision::Throttle(d) => assert!(d >= 4 * SECOND && d <= 5 * SECOND, "{d:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn unsafe_calls_retry_only_when_the_server_certainly_did_nothing() {
        let policy = RetryPolicy::default();
        let not_safe = Idempotency::Unsafe;
        assert!(matches!(
            policy.decide(throttled(None), not_safe, 0, 0),
            Decision::Throttle(_)
        ));
        assert!(matches!(
            policy.decide(Failure::ConnectionRefused, not_safe, 0, 0),
            Decision::Retry(_)
        ));
        for failure in [
            status(500),
            status(503),
            status(408),
            Failure::Timeout,
            Failure::ConnectionReset,
        ] {
            assert_eq!(
                policy.decide(failure, not_safe, 0, 0),
                Decision::GiveUp,
                "{failure}"
            );
        }
        let opted_in = RetryPolicy::builder().retry_unsafe(true).build().unwrap();
        assert!(matches!(
            opted_in.decide(status(500), not_safe, 0, 0),
            Decision::Retry(_)
        ));
        assert!(matches!(
            opted_in.decide(Failure::Timeout, not_safe, 0, 0),
            Decision::Retry(_)
        ));
    }

    #[test]
    fn a_503_with_retry_after_waits_as_told() {
        let policy = RetryPolicy::default();
        let failure = Failure::Status {
            status: 503,
            retry_after: Some(9 * SECOND),
        };
        assert_eq!(
            policy.decide(failure, Idempotency::Safe, 0, 0),
            Decision::Retry(9 * SECOND)
        );
    }

    /// A manual clock that asks for a stop once `after` has passed.
    #[derive(Debug)]
    struct StopAfter {
        clock: crate::limit::ManualClock,
        stop: Arc<AtomicBool>,
        after: Duration,
    }

    impl Clock for StopAfter {
        fn now(&self) -> Instant {
            self.clock.now()
        }
        fn sleep(&self, duration: Duration) {
            self.clock.advance(duration);
            if self.clock.elapsed() >= self.after {
                self.stop.store(true, Ordering::SeqCst);
            }
        }
    }

    fn stopping(after: Duration) -> (RetryPolicy, crate::limit::ManualClock, Arc<AtomicBool>) {
        let clock = crate::limit::ManualClock::new();
        let stop = Arc::new(AtomicBool::new(false));
        let policy = RetryPolicy::builder()
            .clock(StopAfter {
                clock: clock.clone(),
                stop: stop.clone(),
                after,
            })
            .build()
            .unwrap()
            .stopping_when(stop.clone());
        (policy, clock, stop)
    }

    #[test]
    fn a_call_waiting_out_a_backoff_holds_no_place_in_its_gate() {
        // One place: a call backing off for 2 s must let another through.
        let gate = Arc::new(AttemptGate::new(1));
        let policy = RetryPolicy::builder()
            .base_delay(2 * SECOND)
            .build()
            .unwrap()
            .gated_by(gate);
        let (failed, first_failed) = crossbeam_channel::bounded(1);
        let backing_off = std::thread::spawn({
            let policy = policy.clone();
            move || {
                let mut attempts = 0;
                let result: std::result::Result<Instant, Failure> = policy.run(
                    &crate::limit::Unlimited::new(),
                    Call::safe("identify"),
                    || {
                        attempts += 1;
                        match attempts {
                            1 => {
                                failed.send(()).unwrap();
                                Err(status(503))
                            }
                            _ => Ok(Instant::now()),
                        }
                    },
                );
                result.unwrap()
            }
        });
        first_failed.recv().unwrap();
        let other: std::result::Result<Instant, Failure> = policy.run(
            &crate::limit::Unlimited::new(),
            Call::safe("identify"),
            || Ok(Instant::now()),
        );
        let retried_at = backing_off.join().unwrap();
        assert!(
            other.unwrap() < retried_at,
            "the other call went while the first one backed off"
        );
    }

    #[test]
    fn a_stop_asked_during_a_backoff_ends_it_and_the_call_fails_with_its_last_error() {
        // The first backoff is 1 s or more; the stop comes 200 ms into it.
        let (policy, clock, _) = stopping(Duration::from_millis(200));
        let mut attempts = 0;
        let result: std::result::Result<(), Failure> = policy.run(
            &crate::limit::Unlimited::new(),
            Call::safe("identify"),
            || {
                attempts += 1;
                Err(status(503))
            },
        );
        assert_eq!(result, Err(status(503)));
        assert_eq!(attempts, 1, "not retried");
        assert_eq!(clock.elapsed(), Duration::from_millis(200), "woken at once");
        assert_eq!(policy.stats().retries, 0);
    }

    /// Issue 24: Ctrl-C during a 60 s pause was honoured when the pause ended.
    #[test]
    fn a_stop_asked_during_a_429_pause_ends_the_wait_for_the_next_permit() {
        let (policy, clock, _) = stopping(Duration::from_millis(300));
        let limiter = crate::limit::Unlimited::with_clock(clock.clone());
        let mut attempts = 0;
        let result: std::result::Result<(), Failure> =
            policy.run(&limiter, Call::safe("identify"), || {
                attempts += 1;
                Err(throttled(Some(60 * SECOND)))
            });
        assert_eq!(result, Err(throttled(Some(60 * SECOND))));
        assert_eq!(attempts, 1, "not sent again");
        assert!(
            clock.elapsed() < SECOND,
            "stopped after {:?}",
            clock.elapsed()
        );
        // A call that had not been sent yet leaves its wait as well, unsent.
        let second: std::result::Result<(), Failure> = policy.run_unless_stopped(
            &limiter,
            Call::safe("identify"),
            || panic!("sent during the pause"),
            || Some(Failure::Permanent),
        );
        assert_eq!(second, Err(Failure::Permanent));
    }

    #[test]
    fn once_a_stop_is_asked_a_429_still_pauses_everyone_but_is_not_retried() {
        let (policy, clock, stop) = stopping(Duration::MAX);
        stop.store(true, Ordering::SeqCst);
        let limiter = crate::limit::Unlimited::new();
        let mut attempts = 0;
        let result: std::result::Result<(), Failure> =
            policy.run(&limiter, Call::safe("identify"), || {
                attempts += 1;
                Err(throttled(Some(5 * SECOND)))
            });
        assert_eq!(result, Err(throttled(Some(5 * SECOND))));
        assert_eq!(attempts, 1);
        assert_eq!(clock.elapsed(), Duration::ZERO);
        assert_eq!(policy.stats().throttled, 1);
        assert!(!limiter.try_acquire(), "the workspace is paused");
        // A policy without the flag retries as ever.
        let mut answers = vec![Ok(()), Err(status(503))];
        let plain = RetryPolicy::builder()
            .clock(crate::limit::ManualClock::new())
            .build()
            .unwrap();
        let result = plain.run(
            &crate::limit::Unlimited::new(),
            Call::safe("identify"),
            || answers.pop().unwrap(),
        );
        assert_eq!(result, Ok(()));
    }
}
