//! The import room: bulk imports that stream, batch, resume and lose nothing.
//!
//! # Overview
//!
//! - [`Importer`] and [`ImporterBuilder`]: read NDJSON lines, pack them
//!   into requests, send them as [`ClientCall`](crate::queue::ClientCall)s through
//!   a [`Dispatcher`](crate::Dispatcher), and keep a checkpoint that only
//!   advances over lines the server acknowledged.
//! - [`CsvOptions`] (feature `csv`): how CSV rows become `identify` calls.
//! - [`ImportApi`]: whether the lines are Track v2 operations (the default)
//!   or Pipelines calls.
//! - [`Checkpoint`]: where a resumed import starts again.
//! - [`DeadLetter`]: a line that could not be delivered, with its reason.
//! - [`ImportSummary`], [`Progress`], [`ImportFailure`]: what happened.
//!
//! Inside, one file per job: `reader` turns input lines into entries (or
//! reasons why not); `entry` is what a line sends, a Track operation or a
//! Pipelines call, the person it names, and the packer for its batches;
//! `order_window` holds read lines until no earlier line of their person is
//! unsettled, so one person's writes stay in order while a slow answer
//! holds back only the people it names; `ledger` records what became of
//! each line and settles them in input order, whatever order the answers
//! come in; `run` is one import in progress, wiring the reader, the window,
//! the queue and the ledger together; `timer` sends what is packed when the
//! input goes quiet; `importer` is the public face: files, readers, and
//! operations from memory.
//!
//! This is the top room: it uses the queue, client, retry and limit rooms,
//! and nothing uses it.

pub(crate) mod api;
pub(crate) mod checkpoint;
pub(crate) mod compressed;
pub(crate) mod content_digest;
#[cfg(feature = "csv")]
pub(crate) mod csv_rows;
pub(crate) mod dead_letter;
pub(crate) mod entry;
pub(crate) mod format_check;
pub(crate) mod importer;
pub(crate) mod input;
pub(crate) mod ledger;
pub(crate) mod line_ids;
pub(crate) mod order_window;
pub(crate) mod output_paths;
pub(crate) mod prehashed;
pub(crate) mod progress;
pub(crate) mod reader;
pub(crate) mod run;
pub(crate) mod settings;
pub(crate) mod timer;

pub use api::ImportApi;
pub use checkpoint::Checkpoint;
#[cfg(feature = "csv")]
pub use csv_rows::CsvOptions;
pub use dead_letter::DeadLetter;
pub use importer::{Importer, ImporterBuilder};
pub use progress::{ImportFailure, ImportSummary, Progress};
pub use settings::ImportMode;
