//! What the tests of the `cio-ratelimit` workspace share, so that no test
//! file copies a helper (ripgrep's `tests/util.rs` is the model):
//!
//! - [`ScratchDir`]: a folder of a test's own, removed when the test passes;
//! - [`dead_letters`] and [`dead_letter_lines`]: an import's dead-letter
//!   file, read back into records to assert on;
//! - [`write_lines`]: an input file, a line at a time;
//! - [`capture_logs`] and [`logged`]: the log records a test binary made;
//! - [`RedisServer`]: a `redis-server` of a test's own.
//!
//! What only one crate's tests need stays with them, in a shared module of
//! their `tests/` folder: the library's quick-retry clients and scripted
//! servers in `tests/`, the `cio-ratelimit` command builder in
//! `cli/tests/command/`. This crate depends on neither the library nor the
//! emulator, so their tests' types are never two copies of one.
//!
//! ```
//! use cio_test_kit::{ScratchDir, dead_letter_lines};
//!
//! let dir = ScratchDir::new("doc");
//! let file = dir.join("input.ndjson.dead-letter.ndjson");
//! std::fs::write(&file, "{\"line\":3,\"reason\":\"invalid JSON\"}\n").unwrap();
//! assert_eq!(dead_letter_lines(&file), [3]);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod captured_logs;
mod dead_letters;
mod input_file;
mod redis_server;
mod scratch_dir;

pub use captured_logs::{Logged, capture_logs, logged};
pub use dead_letters::{dead_letter_lines, dead_letters};
pub use input_file::write_lines;
pub use redis_server::RedisServer;
pub use scratch_dir::ScratchDir;
