//! At most N attempts on the wire at once, however many calls are under way:
//! a call waiting out a backoff holds no place.
//!
//! An import lets more calls be under way than it has `--workers`, so that
//! calls sleeping between attempts do not starve the others, and gates the
//! attempts themselves to `--workers`.

use parking_lot::{Condvar, Mutex};

/// A counting gate: [`enter`](AttemptGate::enter) waits for one of its
/// places, and the [`Place`] gives it back when dropped.
#[derive(Debug)]
pub(crate) struct AttemptGate {
    free: Mutex<usize>,
    freed: Condvar,
}

/// A place in an [`AttemptGate`], held for one attempt.
#[derive(Debug)]
pub(crate) struct Place<'a>(&'a AttemptGate);

impl AttemptGate {
    /// A gate of `places` places (at least one).
    pub(crate) fn new(places: usize) -> AttemptGate {
        AttemptGate {
            free: Mutex::new(places.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Waits for a free place, and holds it until the `Place` is dropped.
    pub(crate) fn enter(&self) -> Place<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.freed.wait(&mut free);
        }
        *free -= 1;
        Place(self)
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::thread;

    use super::*;

    #[test]
    fn no_more_than_its_places_are_held_at_once_and_every_caller_gets_one() {
        let gate = Arc::new(AttemptGate::new(3));
        let (inside, most, served) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (gate, inside, most, served) =
                    (gate.clone(), inside.clone(), most.clone(), served.clone());
                thread::spawn(move || {
                    for _ in 0..200 {
                        let _place = gate.enter();
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        served.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(served.load(Ordering::SeqCst), 12 * 200);
        assert!(most.load(Ordering::SeqCst) <= 3, "{most:?}");
        assert_eq!(*gate.free.lock(), 3, "every place given back");
    }
}
