//! SIGINT and SIGTERM during an import: the first asks for a clean stop
//! (stop reading, finish what is in flight, write the checkpoint, print the
//! summary and the resume command); a second one exits at once.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::flag;

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

/// Watches SIGINT and SIGTERM from installation on.
#[derive(Debug, Clone)]
pub struct StopSignals {
    any: Arc<AtomicBool>,
    interrupt: Arc<AtomicBool>,
    terminate: Arc<AtomicBool>,
}

impl StopSignals {
    /// Installs the handlers. From now on the first signal only sets a
    /// flag; a second one (of either kind) exits the process at once with
    /// that signal's code.
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
        for (signal, code, own) in [
            (SIGINT, StopSignal::Interrupt, &signals.interrupt),
            (SIGTERM, StopSignal::Terminate, &signals.terminate),
        ] {
            // Registered first, so it sees the flag as it was before this
            // signal: only a second signal finds it set and exits.
            flag::register_conditional_shutdown(
                signal,
                i32::from(code.exit_code()),
                Arc::clone(&signals.any),
            )?;
            flag::register(signal, Arc::clone(own))?;
            flag::register(signal, Arc::clone(&signals.any))?;
        }
        Ok(signals)
    }

    /// The flag the first signal sets, for
    /// [`ImporterBuilder::stop_when`](cio_ratelimit::ImporterBuilder::stop_when).
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
