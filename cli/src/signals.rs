//! SIGINT and SIGTERM during an import: the first asks for a clean stop
//! (stop reading, finish what is in flight, write the checkpoint, print the
//! summary and the resume command); a second one says so in one line and
//! exits at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;
use signal_hook::iterator::Signals;

/// A signal that asked the import to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl-C): exit code 130.
    Interrupt,
    /// SIGTERM (`kill`, a scheduler's stop): exit code 143.
    Terminate,
}

impl StopSignal {
    /// The exit code a shell expects after this signal: 128 + its number.
    pub fn exit_code(self) -> u8 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    /// The signal's name, for the summary.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }
}

/// The line a second signal prints before the process exits.
fn second_signal_line(signal: StopSignal) -> String {
    format!(
        "cio-ratelimit: {} again: exiting now, without waiting for the requests in flight; \
         the checkpoint (if kept) is where it was last stored, so --resume repeats only what \
         was in flight",
        signal.name()
    )
}

/// Watches SIGINT and SIGTERM from installation on.
#[derive(Debug, Clone)]
pub struct StopSignals {
    any: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
}

impl StopSignals {
    /// Installs the handlers. From now on the first signal only sets a
    /// flag; a second one (of either kind) prints one line on standard
    /// error and exits the process at once with that signal's code.
    ///
    /// # Errors
    ///
    /// The operating system's error if a handler cannot be installed.
    pub fn install() -> io::Result<StopSignals> {
        let signals = StopSignals {
            any: Arc::new(AtomicBool::new(false)),
            interrupt: Arc::new(AtomicBool::new(false)),
            terminate: Arc::new(AtomicBool::new(false)),
        };
        for (signal, own) in [(SIGINT, &signals.interrupt), (SIGTERM, &signals.terminate)] {
            flag::register(signal, Arc::clone(own))?;
            flag::register(signal, Arc::clone(&signals.any))?;
        }
        // Counting the signals on a thread of its own (a handler may not
        // print): the second one exits, after saying why.
        let mut received = Signals::new([SIGINT, SIGTERM])?;
        std::thread::Builder::new()
            .name("stop-signals".into())
            .spawn(move || {
                let mut seen = 0;
                for signal in received.forever() {
                    seen += 1;
                    if seen < 2 {
                        continue;
                    }
                    let signal = match signal {
                        SIGINT => StopSignal::Interrupt,
                        _ => StopSignal::Terminate,
                    };
                    eprintln!("{}", second_signal_line(signal));
                    std::process::exit(i32::from(signal.exit_code()));
                }
            })?;
        Ok(signals)
    }

    /// The flag the first signal sets, for
    /// [`ImporterBuilder::stop_when`](cio_ratelimit::import::ImporterBuilder::stop_when).
    pub fn flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.any)
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<StopSignal> {
        if !self.any.load(Ordering::SeqCst) {
            return None;
        }
        if self.interrupt.load(Ordering::SeqCst) {
            Some(StopSignal::Interrupt)
        } else if self.terminate.load(Ordering::SeqCst) {
            Some(StopSignal::Terminate)
        } else {
            None
        }
    }
}
