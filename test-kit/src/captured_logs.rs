//! The log records a test binary made, kept for its tests to read.

use std::fmt;
use std::sync::{Mutex, Once};

use log::{Level, LevelFilter, Log, Metadata, Record};

/// One log record as the logger saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// Its level.
    pub level: Level,
    /// Its target: the module that logged it, unless it named another.
    pub target: String,
    /// Its message.
    pub message: String,
}

impl fmt::Display for Logged {
    /// `LEVEL message`, as in `WARN identify: HTTP 503; retry 1/4 in 1s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.level, self.message)
    }
}

static LOGGED: Mutex<Vec<Logged>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        let logged = Logged {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
        };
        LOGGED
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(logged);
    }

    fn flush(&self) {}
}

/// Keeps every log record of this test binary up to `level` from now on, for
/// [`logged`]. A process has one logger: the first call installs it, and a
/// later call can only raise the level. Tests run side by side, so a test
/// picks its own records out (by a name or a port only it logs).
///
/// # Panics
///
/// If another logger was installed first.
pub fn capture_logs(level: LevelFilter) {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| log::set_logger(&Capture).expect("no other logger in this test binary"));
    if level > log::max_level() {
        log::set_max_level(level);
    }
}

/// Every record kept since [`capture_logs`], oldest first.
pub fn logged() -> Vec<Logged> {
    LOGGED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .clone()
}
