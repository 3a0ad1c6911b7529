//! What an import was told: the settings an [`Importer`](crate::Importer)
//! is built with, handed to the run that carries it out.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use crate::client::client::Client;
use crate::import::api::ImportApi;
#[cfg(feature = "csv")]
use crate::import::csv_rows::CsvOptions;
use crate::import::progress::Progress;

/// How lines become requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportMode {
    /// Lines are packed into `/api/v2/batch` requests (`/v1/batch` for
    /// [`ImportApi::Pipelines`]), under 500 KB each: thousands of lines per
    /// request, so a 50 requests/s budget moves hundreds of thousands of
    /// lines a second.
    #[default]
    Batch,
    /// One `/api/v2/entity` request per line (`/v1/{type}` for
    /// [`ImportApi::Pipelines`]).
    Single,
}

/// Called with the import's progress as it goes.
pub(crate) type ProgressCallback = Box<dyn FnMut(&Progress) + Send>;

/// An [`Importer`](crate::Importer)'s settings, checked by its builder.
pub(crate) struct ImportSettings {
    pub(crate) client: Client,
    pub(crate) api: ImportApi,
    pub(crate) mode: ImportMode,
    pub(crate) workers: usize,
    pub(crate) dead_letter: Option<PathBuf>,
    pub(crate) checkpoint: Option<PathBuf>,
    pub(crate) resume: bool,
    pub(crate) import_id: Option<String>,
    pub(crate) progress: Option<ProgressCallback>,
    pub(crate) progress_every: Duration,
    pub(crate) checkpoint_every: Duration,
    pub(crate) max_batch_bytes: Option<usize>,
    pub(crate) dry_run: bool,
    pub(crate) stop: Option<Arc<AtomicBool>>,
    #[cfg(feature = "csv")]
    pub(crate) csv: Option<CsvOptions>,
}
