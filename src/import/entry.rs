//! What an import sends for one line: a Track operation or a Pipelines call,
//! and the packer that puts such entries into batch requests.
//!
//! The run does not care which API a line is for: it asks an [`Entry`] for
//! its bytes and its request, and a [`Packer`] for full batches.

use crate::client::batch::BatchPacker;
use crate::client::operation::Operation;
use crate::client::pipelines_batch::PipelinesBatchPacker;
use crate::client::pipelines_call::PipelinesCall;
use crate::client::validate::Invalid;
use crate::queue::client_call::ClientCall;

/// One line's worth of work for the server.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A Track v2 operation (`/api/v2/entity`, `/api/v2/batch`).
    Track(Operation),
    /// A Pipelines call (`/v1/{type}`, `/v1/batch`).
    #[allow(dead_code)] // until `import --api pipelines` reads them
    Pipelines(PipelinesCall),
}

impl Entry {
    /// The entry as it goes out in a batch, for the dead-letter file.
    pub(crate) fn as_bytes(&self) -> std::borrow::Cow<'_, [u8]> {
        match self {
            Entry::Track(operation) => operation.as_bytes().into(),
            Entry::Pipelines(call) => call.to_bytes(),
        }
    }

    /// The request that sends this entry alone.
    pub(crate) fn into_call(self) -> ClientCall {
        match self {
            Entry::Track(operation) => ClientCall::Entity(operation),
            Entry::Pipelines(call) => ClientCall::Pipelines(Box::new(call)),
        }
    }
}

/// Packs entries, in order, into batch requests as large as the API allows.
#[derive(Debug)]
pub(crate) enum Packer {
    /// For [`Entry::Track`]: `/api/v2/batch` bodies.
    Track(BatchPacker),
    /// For [`Entry::Pipelines`]: `/v1/batch` bodies.
    #[allow(dead_code)] // until `import --api pipelines` reads them
    Pipelines(PipelinesBatchPacker),
}

impl Packer {
    /// Adds `entry`; when it does not fit beside what is packed, the full
    /// batch comes out and `entry` starts the next one.
    ///
    /// # Errors
    ///
    /// Why the entry cannot go in any batch (too large, malformed); nothing
    /// is added.
    ///
    /// # Panics
    ///
    /// If the entry is for the other API: a run packs one kind only.
    pub(crate) fn push(&mut self, entry: &Entry) -> Result<Option<ClientCall>, Invalid> {
        match (self, entry) {
            (Packer::Track(packer), Entry::Track(operation)) => {
                Ok(packer.push(operation)?.map(ClientCall::Batch))
            }
            (Packer::Pipelines(packer), Entry::Pipelines(call)) => {
                Ok(packer.push(call)?.map(ClientCall::PipelinesBatch))
            }
            _ => unreachable!("an import reads entries for one API only"),
        }
    }

    /// Hands out what is packed, if anything.
    pub(crate) fn finish(&mut self) -> Option<ClientCall> {
        match self {
            Packer::Track(packer) => packer.finish().map(ClientCall::Batch),
            Packer::Pipelines(packer) => packer.finish().map(ClientCall::PipelinesBatch),
        }
    }
}
