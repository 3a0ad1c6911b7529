//! Log lines on standard error, `cio-ratelimit: warning: ...`: warnings by
//! default (so the library's retries show), more with `-v`, `RUST_LOG` over
//! both, and never a key.

use std::io::Write;

use log::{Level, Log, Metadata, Record};

/// Installs the logger: `verbose` 0 shows warnings, 1 info, 2 debug, 3 and
/// more trace; `RUST_LOG`, when set, decides instead.
pub fn init(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let logger =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
            .format(|out, record| {
                let level = match record.level() {
                    Level::Error => "error",
                    Level::Warn => "warning",
                    Level::Info => "info",
                    Level::Debug => "debug",
                    Level::Trace => "trace",
                };
                writeln!(out, "cio-ratelimit: {level}: {}", record.args())
            })
            .build();
    let max_level = logger.filter();
    if log::set_boxed_logger(Box::new(WithoutRawBytes(logger))).is_ok() {
        log::set_max_level(max_level);
    }
}

/// At trace level ureq-proto logs every byte it sends, the `Authorization`
/// header included; those lines never pass, whatever `RUST_LOG` says.
struct WithoutRawBytes(env_logger::Logger);

impl WithoutRawBytes {
    fn raw_bytes(metadata: &Metadata<'_>) -> bool {
        metadata.level() == Level::Trace && metadata.target().starts_with("ureq_proto")
    }
}

impl Log for WithoutRawBytes {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        !WithoutRawBytes::raw_bytes(metadata) && self.0.enabled(metadata)
    }

    fn log(&self, record: &Record<'_>) {
        if !WithoutRawBytes::raw_bytes(record.metadata()) {
            self.0.log(record);
        }
    }

    fn flush(&self) {
        self.0.flush();
    }
}
