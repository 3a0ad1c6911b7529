//! The import room: bulk imports that stream, batch, resume and lose nothing.
//!
//! # Overview
//!
//! - [`Importer`] and [`ImporterBuilder`]: read NDJSON lines, pack them
//!   into requests, send them through the queue, and keep a checkpoint that
//!   only advances over lines the server acknowledged.
//! - [`Checkpoint`]: where a resumed import starts again.
//! - [`DeadLetter`]: a line that could not be delivered, with its reason.
//! - [`ImportSummary`], [`Progress`], [`ImportFailure`]: what happened.
//!
//! This is the top room: it uses the queue, client, retry and limit rooms,
//! and nothing uses it.

pub(crate) mod checkpoint;
pub(crate) mod compressed;
#[cfg(feature = "csv")]
pub(crate) mod csv_rows;
pub(crate) mod dead_letter;
pub(crate) mod importer;
pub(crate) mod output_paths;
pub(crate) mod progress;

pub use checkpoint::Checkpoint;
#[cfg(feature = "csv")]
pub use csv_rows::CsvOptions;
pub use dead_letter::DeadLetter;
pub use importer::{ImportMode, Importer, ImporterBuilder};
pub use progress::{ImportFailure, ImportSummary, Progress};
