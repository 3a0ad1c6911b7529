//! The emulator's stop signal, which every connection and every slow answer watches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The stop signal: a flag for quick checks, and a condition variable so that sleeps and
/// [`Emulator::wait`] end as soon as it fires.
#[derive(Default)]
pub(crate) struct Shutdown {
    fired: AtomicBool,
    lock: Mutex<()>,
    changed: Condvar,
}

impl Shutdown {
    /// Fires the signal; true the first time.
    pub(crate) fn trigger(&self) -> bool {
        let _guard = self.lock.lock();
        let first = !self.fired.swap(true, Ordering::SeqCst);
        self.changed.notify_all();
        first
    }

    pub(crate) fn is_triggered(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }

    /// Sleeps for `duration`, or less if the signal fires.
    pub(crate) fn sleep(&self, duration: Duration) {
        let deadline = Instant::now() + duration;
        let mut guard = self.lock.lock();
        while !self.is_triggered() {
            if self.changed.wait_until(&mut guard, deadline).timed_out() {
                break;
            }
        }
    }

    pub(crate) fn wait(&self) {
        let mut guard = self.lock.lock();
        while !self.is_triggered() {
            self.changed.wait(&mut guard);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::thread;

    use super::*;

    #[test]
    fn a_sleep_ends_when_shutdown_fires() {
        let shutdown = Arc::new(Shutdown::default());
        let sleeper = thread::spawn({
            let shutdown = Arc::clone(&shutdown);
            move || {
                let start = Instant::now();
                shutdown.sleep(Duration::from_secs(30));
                start.elapsed()
            }
        });
        assert!(shutdown.trigger());
        assert!(!shutdown.trigger());
        assert!(sleeper.join().unwrap() < Duration::from_secs(10));
        // Already fired: no sleep at all.
        shutdown.sleep(Duration::from_secs(30));
    }
}
