//! Seeded, reproducible fault injection: 500s, 503s, dropped connections, slow answers.

use std::time::Duration;

/// Which failures the emulator injects into Customer.io API requests, and how often.
///
/// Every probability is within `0.0..=1.0`; the default is no faults at all. The dice are a
/// [`fastrand::Rng`] seeded with [`seed`](Faults::seed), and every request rolls the same number
/// of dice, so one client sending requests one after another sees the same sequence of faults on
/// every run. Faults never touch the admin routes (`/_emulator/...`).
///
/// A request goes through these steps, and the first fault that fires decides its fate:
///
/// 1. auth (401) and the rate window (429) are checked first; they are not faults;
/// 2. [`drop_connection`](Faults::drop_connection): the socket is closed without any answer,
///    nothing is stored;
/// 3. [`unavailable`](Faults::unavailable): `503 Service Unavailable` without `Retry-After`,
///    nothing is stored;
/// 4. [`error_before_store`](Faults::error_before_store): `500`, nothing is stored;
/// 5. the request is handled and its data stored;
/// 6. [`error_after_store`](Faults::error_after_store): a successful answer is replaced by
///    `500`, but the data **is** stored (the case where a retry must not duplicate anything);
/// 7. [`slow`](Faults::slow): the answer is held back for the delay (the data is already stored,
///    so a client that times out and retries sends a duplicate).
///
/// ```
/// use std::time::Duration;
/// use cio_emulator::Faults;
///
/// let flaky = Faults::default()
///     .seed(42)
///     .error_after_store(0.05)
///     .drop_connection(0.01)
///     .slow(0.1, Duration::from_millis(300));
/// # let _ = flaky;
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    seed: u64,
    error_before_store: f64,
    error_after_store: f64,
    unavailable: f64,
    drop_connection: f64,
    slow: f64,
    slow_delay: Duration,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            seed: 0,
            error_before_store: 0.0,
            error_after_store: 0.0,
            unavailable: 0.0,
            drop_connection: 0.0,
            slow: 0.0,
            slow_delay: Duration::ZERO,
        }
    }
}

impl Faults {
    /// The seed of the dice (default 0). The same seed gives the same sequence of faults.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Probability of answering `500` before anything is stored.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn error_before_store(mut self, probability: f64) -> Self {
        self.error_before_store = checked("error_before_store", probability);
        self
    }

    /// Probability of storing the data and then answering `500` anyway.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn error_after_store(mut self, probability: f64) -> Self {
        self.error_after_store = checked("error_after_store", probability);
        self
    }

    /// Probability of answering `503 Service Unavailable` without `Retry-After`.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn unavailable(mut self, probability: f64) -> Self {
        self.unavailable = checked("unavailable", probability);
        self
    }

    /// Probability of closing the connection without any answer: the client sees a transport
    /// error, not a status.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn drop_connection(mut self, probability: f64) -> Self {
        self.drop_connection = checked("drop_connection", probability);
        self
    }

    /// Probability of holding an answer back for `delay` after the data was stored.
    ///
    /// # Panics
    ///
    /// If `probability` is not within `0.0..=1.0`.
    pub fn slow(mut self, probability: f64, delay: Duration) -> Self {
        self.slow = checked("slow", probability);
        self.slow_delay = delay;
        self
    }
}

fn checked(fault: &str, probability: f64) -> f64 {
    assert!(
        (0.0..=1.0).contains(&probability),
        "Faults::{fault}: a probability must be within 0.0..=1.0, got {probability}"
    );
    probability
}

/// What the dice decided for one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Roll {
    pub(crate) drop_connection: bool,
    pub(crate) unavailable: bool,
    pub(crate) error_before_store: bool,
    pub(crate) error_after_store: bool,
    pub(crate) slow: Option<Duration>,
}

/// The faults in force and the dice that decide them.
pub(crate) struct FaultDice {
    faults: Faults,
    rng: fastrand::Rng,
}

impl FaultDice {
    pub(crate) fn new(faults: Faults) -> Self {
        let rng = fastrand::Rng::with_seed(faults.seed);
        FaultDice { faults, rng }
    }

    /// Rolls five dice, always, whatever the probabilities: a fault switched on does not shift
    /// the sequence of the others.
    pub(crate) fn roll(&mut self) -> Roll {
        let f = &self.faults;
        let mut hit = |p: f64| self.rng.f64() < p;
        let drop_connection = hit(f.drop_connection);
        let unavailable = hit(f.unavailable);
        let error_before_store = hit(f.error_before_store);
        let error_after_store = hit(f.error_after_store);
        let slow = hit(f.slow).then_some(f.slow_delay);
        Roll {
            drop_connection,
            unavailable,
            error_before_store,
            error_after_store,
            slow,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_faults_by_default() {
        let mut dice = FaultDice::new(Faults::default());
        for _ in 0..1000 {
            assert_eq!(dice.roll(), Roll::default());
        }
    }

    #[test]
    fn certain_faults_always_fire() {
        let mut dice = FaultDice::new(
            Faults::default()
                .drop_connection(1.0)
                .slow(1.0, Duration::from_millis(5)),
        );
        for _ in 0..100 {
            let roll = dice.roll();
            assert!(roll.drop_connection);
            assert_eq!(roll.slow, Some(Duration::from_millis(5)));
            assert!(!roll.unavailable);
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let faults = Faults::default().seed(9).error_before_store(0.5);
        let rolls = |faults: &Faults| {
            let mut dice = FaultDice::new(faults.clone());
            (0..64)
                .map(|_| dice.roll().error_before_store)
                .collect::<Vec<_>>()
        };
        let first = rolls(&faults);
        assert_eq!(first, rolls(&faults));
        assert!(first.contains(&true) && first.contains(&false));
        assert_ne!(first, rolls(&faults.clone().seed(10)));
    }

    #[test]
    fn rates_are_close_to_the_probability() {
        let mut dice = FaultDice::new(Faults::default().seed(1).unavailable(0.2));
        let hits = (0..10_000).filter(|_| dice.roll().unavailable).count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
    }

    #[test]
    #[should_panic(expected = "Faults::drop_connection: a probability must be within 0.0..=1.0")]
    fn probability_above_one_is_refused() {
        let _ = Faults::default().drop_connection(1.5);
    }

    #[test]
    #[should_panic(expected = "Faults::slow")]
    fn nan_probability_is_refused() {
        let _ = Faults::default().slow(f64::NAN, Duration::ZERO);
    }

    #[test]
    #[should_panic(expected = "Faults::error_before_store")]
    fn negative_probability_is_refused() {
        let _ = Faults::default().error_before_store(-0.1);
    }
}
