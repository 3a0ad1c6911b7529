//! `ImportApi`: which Customer.io API an import's lines are for.

/// Which API an import sends its lines to, and so what each line holds.
///
/// Either way the import streams, batches, checkpoints and dead-letters the
/// same: only the shape of a line, the endpoints and the rate limit differ.
///
/// ```
/// use cio_ratelimit::{Client, Importer};
/// use cio_ratelimit::import::ImportApi;
/// # let emulator = cio_emulator::Emulator::start(cio_emulator::Config::default())?;
/// # let dir = cio_test_kit::ScratchDir::new("import-api-doc");
///
/// let client = Client::builder_without_credentials()
///     .pipelines_key(cio_emulator::DEFAULT_PIPELINES_KEY)
///     .pipelines_url(emulator.url())
///     .build()?;
/// let input = concat!(
///     r#"{"type":"identify","userId":"42","traits":{"plan":"pro"}}"#, "\n",
///     r#"{"type":"track","userId":"42","event":"upgraded"}"#, "\n",
///     r#"{"type":"track","userId":"42"}"#, "\n", // no "event": dead-lettered
/// );
/// let summary = Importer::builder(client)
///     .api(ImportApi::Pipelines)
///     .dead_letter(dir.join("dead.ndjson"))
///     .build()?
///     .import_reader(input.as_bytes(), None)
///     .map_err(|failure| failure.error)?;
/// assert_eq!((summary.progress.delivered, summary.progress.dead_lettered), (2, 1));
/// // Every call arrived with a messageId derived from the import and its line.
/// assert!(emulator.snapshot().pipelines.iter().all(|call| call.message_id.is_some()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportApi {
    /// Track API v2: each line is one operation, the body `/api/v2/entity`
    /// takes (`{"type":"person","action":"identify",...}`). Batches go to
    /// `/api/v2/batch`; the client's Track limiter sets the rate. CSV input
    /// is read as one identify per row.
    #[default]
    Track,
    /// Pipelines API (Data Pipelines): each line is one Segment-style call
    /// with its `type` (`{"type":"identify","userId":"42","traits":{...}}`),
    /// as [`PipelinesCall::from_line`](crate::PipelinesCall::from_line)
    /// reads it. A line without a `messageId` gets one derived from the
    /// import's id and the line number, so that a retried or resumed import
    /// repeats the same ids and Customer.io counts each call once. Batches go
    /// to `/v1/batch`, single calls to `/v1/{type}`, all in strict mode; the
    /// client's Pipelines limiter sets the rate. NDJSON input only.
    Pipelines,
}

/// "the Track API" without the article: `Track API`, `Pipelines API`.
impl std::fmt::Display for ImportApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImportApi::Track => "Track API",
            ImportApi::Pipelines => "Pipelines API",
        })
    }
}
