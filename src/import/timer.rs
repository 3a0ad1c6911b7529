//! A timer beside a blocking reader: the import reads its input on the
//! caller's thread, and a read from a pipe can block for minutes
//! (`tail -f log | cio-ratelimit import -`). Meanwhile someone must notice
//! that the input went quiet, send what is packed, settle the answers that
//! came and report progress: the timer thread, taking the run's lock only
//! when a tick is due.
//!
//! Reading stays on the caller's thread because the input need not be
//! `Send` (standard input's lock is not), and the lock is uncontended while
//! lines flow: a record costs one lock, not a hop between threads.

use std::thread;
use std::time::Duration;

use crossbeam_channel::RecvTimeoutError;
use parking_lot::Mutex;

/// Runs `read` on this thread while a timer thread calls `tick` on `state`,
/// each time the delay the last tick returned has passed (the first after
/// `first`); the timer stops when `read` returns, and before its result is
/// handed back.
pub(crate) fn with_timer<S: Send, R>(
    state: &Mutex<S>,
    first: Duration,
    mut tick: impl FnMut(&mut S) -> Duration + Send,
    read: impl FnOnce() -> R,
) -> R {
    // Dropped when `read` returns (or unwinds): the timer's wait ends at once.
    let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
    thread::scope(|scope| {
        thread::Builder::new()
            .name("cio-import-timer".into())
            .spawn_scoped(scope, move || {
                let mut delay = first;
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(delay) {
                    delay = tick(&mut state.lock());
                }
            })
            .expect("spawning the import's timer thread");
        let result = read();
        drop(stop);
        result
    })
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    #[test]
    fn ticks_come_while_the_reader_blocks_and_stop_when_it_returns() {
        let ticks = Mutex::new(0);
        let (ticked, tick_seen) = crossbeam_channel::unbounded();
        let started = Instant::now();
        let read = with_timer(
            &ticks,
            Duration::ZERO,
            |count: &mut u32| {
                *count += 1;
                ticked.send(*count).unwrap();
                // After the third tick, the next is an hour away.
                match *count {
                    3 => Duration::from_secs(3_600),
                    _ => Duration::ZERO,
                }
            },
            || {
                // Blocked in a read until three ticks have come.
                for expected in 1..=3 {
                    assert_eq!(tick_seen.recv_timeout(Duration::from_secs(5)), Ok(expected));
                }
                "read"
            },
        );
        assert_eq!(read, "read");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "returning did not wait for the next tick"
        );
        assert_eq!(*ticks.lock(), 3, "no tick after the reader returned");
    }
}
