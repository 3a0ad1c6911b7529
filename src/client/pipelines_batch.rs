//! Packing Pipelines calls into `/v1/batch` requests.

use std::fmt;

use crate::client::batch_body::{BatchBody, BatchBodyPacker};
use crate::client::pipelines_call::PipelinesCall;
use crate::client::validate::{Invalid, MAX_BATCH_BYTES, MAX_ITEM_BYTES};

/// One `/v1/batch` request body, ready to send: under 500 KB, every call at
/// most 32 KB. Made by a [`PipelinesBatchPacker`].
#[derive(Clone, PartialEq, Eq)]
pub struct PipelinesBatch {
    pub(crate) body: BatchBody,
}

impl PipelinesBatch {
    /// How many calls it carries.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.body.len() == 0
    }

    /// The call at `index` (from 0), as the bytes in the body.
    pub fn item(&self, index: usize) -> Option<&[u8]> {
        (index < self.len()).then(|| self.body.item(index))
    }

    /// The request body, `{"batch":[...]}`.
    pub fn body(&self) -> &[u8] {
        self.body.bytes()
    }
}

impl fmt::Debug for PipelinesBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelinesBatch")
            .field("calls", &self.len())
            .field("bytes", &self.body().len())
            .finish()
    }
}

/// Packs Pipelines calls, in order, into [`PipelinesBatch`]es as large as
/// Customer.io allows: a batch under 500 KB, each call at most 32 KB.
///
/// ```
/// use cio_ratelimit::PipelinesCall;
/// use cio_ratelimit::client::PipelinesBatchPacker;
/// use serde_json::json;
///
/// let mut packer = PipelinesBatchPacker::new();
/// let mut batches = Vec::new();
/// for i in 0..5_000 {
///     let call = PipelinesCall::track(i.to_string(), "viewed").properties(json!({"pad": "x".repeat(500)}))?;
///     batches.extend(packer.push(&call)?); // a full batch comes out when the next call won't fit
/// }
/// batches.extend(packer.finish());
/// assert!(batches.len() >= 5 && batches.iter().all(|b| b.body().len() < 500_000));
/// assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 5_000);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PipelinesBatchPacker {
    packer: BatchBodyPacker,
}

impl Default for PipelinesBatchPacker {
    fn default() -> PipelinesBatchPacker {
        PipelinesBatchPacker::new()
    }
}

impl PipelinesBatchPacker {
    /// A packer for Customer.io's limits: batches under 500 KB, calls up to 32 KB.
    pub fn new() -> PipelinesBatchPacker {
        PipelinesBatchPacker::with_limits(MAX_BATCH_BYTES - 1, MAX_ITEM_BYTES)
    }

    /// A packer with smaller limits (batches at most `max_batch_bytes`,
    /// calls at most `max_call_bytes`); limits above Customer.io's are
    /// lowered to them. A batch always takes at least one call.
    pub fn with_limits(max_batch_bytes: usize, max_call_bytes: usize) -> PipelinesBatchPacker {
        PipelinesBatchPacker {
            packer: BatchBodyPacker::with_limits(max_batch_bytes, max_call_bytes),
        }
    }

    /// Adds `call`. When it does not fit beside what is already packed, the
    /// full batch comes out and `call` starts the next one.
    ///
    /// # Errors
    ///
    /// [`Invalid::ItemTooLarge`] if the call alone is over the call limit, or
    /// [`Invalid::Call`] if it is malformed; nothing is added.
    pub fn push(&mut self, call: &PipelinesCall) -> Result<Option<PipelinesBatch>, Invalid> {
        let bytes = call.checked_bytes()?;
        let full = self.packer.push(&bytes)?;
        Ok(full.map(|body| PipelinesBatch { body }))
    }

    /// Whether `call` may go in a batch at all.
    pub(crate) fn check(&self, call: &PipelinesCall) -> Result<(), Invalid> {
        self.packer.check(call.checked_bytes()?.len())
    }

    /// Adds a call's bytes ([checked](PipelinesBatchPacker::check) before)
    /// if they fit beside what is packed (the first always does); `false`,
    /// adding nothing, if not.
    pub(crate) fn add_if_it_fits(&mut self, bytes: &[u8]) -> bool {
        if !self.packer.fits(bytes.len()) {
            return false;
        }
        let full = self.packer.push(bytes).expect("checked when read");
        debug_assert!(full.is_none(), "it fitted");
        true
    }

    /// Calls packed but not yet handed out.
    pub fn pending(&self) -> usize {
        self.packer.pending()
    }

    /// Hands out what is packed, if anything.
    pub fn finish(&mut self) -> Option<PipelinesBatch> {
        self.packer.finish().map(|body| PipelinesBatch { body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn call(i: usize, pad: usize) -> PipelinesCall {
        PipelinesCall::identify(i.to_string())
            .traits(json!({"pad": "x".repeat(pad)}))
            .unwrap()
    }

    #[test]
    fn batches_hold_every_call_in_order_under_the_limit() {
        let mut packer = PipelinesBatchPacker::with_limits(2_000, 1_000);
        let mut batches = Vec::new();
        for i in 0..50 {
            batches.extend(packer.push(&call(i, 100)).unwrap());
        }
        batches.extend(packer.finish());
        assert!(batches.len() > 3);
        let mut seen = Vec::new();
        for batch in &batches {
            assert!(batch.body().len() <= 2_000);
            let parsed: Value = serde_json::from_slice(batch.body()).unwrap();
            let calls = parsed["batch"].as_array().unwrap();
            assert_eq!(calls.len(), batch.len());
            for call in calls {
                assert_eq!(call["type"], "identify");
                assert_eq!(call["messageId"].as_str().unwrap().len(), 26);
                seen.push(call["userId"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(seen, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn a_call_over_the_limit_or_malformed_is_refused_and_nothing_is_lost() {
        let mut packer = PipelinesBatchPacker::new();
        packer.push(&call(1, 10)).unwrap();
        assert!(matches!(
            packer.push(&call(2, 33_000)),
            Err(Invalid::ItemTooLarge(_))
        ));
        let no_event = PipelinesCall::track("1", "");
        assert!(matches!(packer.push(&no_event), Err(Invalid::Call(_))));
        assert_eq!(packer.pending(), 1);
        assert_eq!(packer.finish().unwrap().len(), 1);
        assert!(packer.finish().is_none());
    }
}
