//! Packing v2 operations into `/api/v2/batch` requests, and what comes back.

use std::fmt;

use crate::client::batch_body::{BatchBody, BatchBodyPacker};
use crate::client::operation::Operation;
use crate::client::validate::{Invalid, MAX_BATCH_BYTES, MAX_ITEM_BYTES};
use crate::error::ItemError;

/// One `/api/v2/batch` request body, ready to send: under 500 KB, every item
/// at most 32 KB. Made by a [`BatchPacker`].
///
/// It knows where each item lies in the body, so that an item can be sent
/// alone, byte for byte, without parsing the body again.
#[derive(Clone, PartialEq, Eq)]
pub struct Batch {
    body: BatchBody,
    repeatable: bool,
}

impl Batch {
    /// How many operations it carries.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    /// Whether it carries none.
    pub fn is_empty(&self) -> bool {
        self.body.len() == 0
    }

    /// The operation at `index` (from 0), as the bytes in the body.
    pub fn item(&self, index: usize) -> Option<&[u8]> {
        (index < self.len()).then(|| self.body.item(index))
    }

    /// The request body, `{"batch":[...]}`.
    pub fn body(&self) -> &[u8] {
        self.body.bytes()
    }

    /// Whether the whole batch is safe to send twice: true unless it holds an
    /// operation that is not ([`Operation::is_repeatable`]).
    pub fn repeatable(&self) -> bool {
        self.repeatable
    }
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Batch")
            .field("items", &self.len())
            .field("bytes", &self.body().len())
            .finish()
    }
}

/// Packs operations, in order, into [`Batch`]es as large as Customer.io allows.
///
/// ```
/// use cio_ratelimit::Operation;
/// use cio_ratelimit::client::BatchPacker;
/// use serde_json::json;
///
/// let mut packer = BatchPacker::new();
/// let mut batches = Vec::new();
/// for i in 0..10_000 {
///     let op = Operation::identify(i.to_string(), json!({"bio": "x".repeat(500)}))?;
///     batches.extend(packer.push(&op)?); // a full batch comes out when the next item won't fit
/// }
/// batches.extend(packer.finish());
/// assert!(batches.len() >= 10 && batches.iter().all(|b| b.body().len() < 500_000));
/// assert_eq!(batches.iter().map(|b| b.len()).sum::<usize>(), 10_000);
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchPacker {
    packer: BatchBodyPacker,
    repeatable: bool,
}

impl Default for BatchPacker {
    fn default() -> BatchPacker {
        BatchPacker::new()
    }
}

impl BatchPacker {
    /// A packer for Customer.io's limits: bodies under 500 KB, items up to 32 KB.
    pub fn new() -> BatchPacker {
        BatchPacker::with_limits(MAX_BATCH_BYTES - 1, MAX_ITEM_BYTES)
            .expect("Customer.io's limits are valid")
    }

    /// A packer with smaller limits (bodies at most `max_batch_bytes`, items
    /// at most `max_item_bytes`), e.g. to keep requests short on a slow link.
    /// Limits above Customer.io's are lowered to them. A batch always takes at
    /// least one item, even one larger than `max_batch_bytes`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) naming the limit
    /// that is zero: nothing could be packed.
    pub fn with_limits(
        max_batch_bytes: usize,
        max_item_bytes: usize,
    ) -> crate::Result<BatchPacker> {
        if max_batch_bytes == 0 {
            return Err(crate::Error::invalid(
                "max_batch_bytes",
                0,
                "more than zero",
            ));
        }
        if max_item_bytes == 0 {
            return Err(crate::Error::invalid("max_item_bytes", 0, "more than zero"));
        }
        Ok(BatchPacker {
            packer: BatchBodyPacker::with_limits(max_batch_bytes, max_item_bytes),
            repeatable: true,
        })
    }

    /// Adds `operation`. When it does not fit beside what is already packed,
    /// the full batch comes out and `operation` starts the next one.
    ///
    /// # Errors
    ///
    /// [`Invalid::ItemTooLarge`] if the operation alone is over the item
    /// limit; nothing is added.
    pub fn push(&mut self, operation: &Operation) -> Result<Option<Batch>, Invalid> {
        // A full batch goes out with the repeatability of what it holds, before
        // this item counts.
        let full = self.packer.push(operation.as_bytes())?.map(|body| Batch {
            body,
            repeatable: std::mem::replace(&mut self.repeatable, true),
        });
        self.repeatable &= operation.is_repeatable();
        Ok(full)
    }

    /// Whether `operation` may go in a batch at all.
    pub(crate) fn check(&self, operation: &Operation) -> Result<(), Invalid> {
        self.packer.check(operation.as_bytes().len())
    }

    /// Adds an operation's bytes ([checked](BatchPacker::check) before) if
    /// they fit beside what is packed (the first always does); `false`,
    /// adding nothing, if not.
    pub(crate) fn add_if_it_fits(&mut self, bytes: &[u8], repeatable: bool) -> bool {
        if !self.packer.fits(bytes.len()) {
            return false;
        }
        let full = self.packer.push(bytes).expect("checked when read");
        debug_assert!(full.is_none(), "it fitted");
        self.repeatable &= repeatable;
        true
    }

    /// Operations packed but not yet handed out.
    pub fn pending(&self) -> usize {
        self.packer.pending()
    }

    /// Hands out what is packed, if anything.
    pub fn finish(&mut self) -> Option<Batch> {
        let body = self.packer.finish()?;
        let repeatable = std::mem::replace(&mut self.repeatable, true);
        Some(Batch { body, repeatable })
    }
}

/// What Customer.io said of a batch: every item accepted, or some rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BatchResponse {
    /// The items rejected (from a Track 207, or narrowed down from a
    /// Pipelines strict-mode 400); empty when all were accepted.
    pub rejected: Vec<ItemError>,
}

impl BatchResponse {
    /// Whether every item was accepted.
    pub fn all_accepted(&self) -> bool {
        self.rejected.is_empty()
    }

    /// `Ok` if every item was accepted, else [`Error::ItemsRejected`](crate::Error::ItemsRejected).
    ///
    /// # Errors
    ///
    /// [`Error::ItemsRejected`](crate::Error::ItemsRejected) with the rejected items.
    pub fn into_result(self) -> crate::Result<()> {
        if self.rejected.is_empty() {
            Ok(())
        } else {
            Err(crate::Error::ItemsRejected(self.rejected))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(i: usize, pad: usize) -> Operation {
        Operation::identify(i.to_string(), json!({"pad": "x".repeat(pad)})).unwrap()
    }

    #[test]
    fn batches_are_valid_json_in_order_and_under_the_limit() {
        let mut packer = BatchPacker::with_limits(2_000, 1_000).unwrap();
        let mut batches = Vec::new();
        for i in 0..100 {
            batches.extend(packer.push(&op(i, 100)).unwrap());
        }
        batches.extend(packer.finish());
        let mut seen = Vec::new();
        for batch in &batches {
            assert!(batch.body().len() <= 2_000);
            let parsed: serde_json::Value = serde_json::from_slice(batch.body()).unwrap();
            let items = parsed["batch"].as_array().unwrap();
            assert_eq!(items.len(), batch.len());
            seen.extend(
                items
                    .iter()
                    .map(|item| item["identifiers"]["id"].as_str().unwrap().to_owned()),
            );
        }
        assert_eq!(seen, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
        assert!(batches.len() > 5);
    }

    #[test]
    fn an_oversize_item_is_refused_and_nothing_is_lost() {
        let mut packer = BatchPacker::with_limits(10_000, 500).unwrap();
        assert!(packer.push(&op(1, 10)).unwrap().is_none());
        assert_eq!(
            packer.push(&op(2, 600)),
            Err(Invalid::ItemTooLarge(op(2, 600).to_bytes().len()))
        );
        assert_eq!(packer.pending(), 1);
        assert_eq!(packer.finish().unwrap().len(), 1);
        assert!(packer.finish().is_none());
    }

    #[test]
    fn default_limits_are_customer_ios() {
        let mut packer = BatchPacker::new();
        let item = op(0, 990);
        let mut batches = Vec::new();
        for _ in 0..2_000 {
            batches.extend(packer.push(&item).unwrap());
        }
        let first = &batches[0];
        assert!(first.body().len() < MAX_BATCH_BYTES);
        assert!(
            first.body().len() + item.to_bytes().len() + 1 >= MAX_BATCH_BYTES,
            "packed full"
        );
    }

    #[test]
    fn zero_limits_are_refused_naming_the_limit() {
        let setting = |result: crate::Result<BatchPacker>| match result {
            Err(crate::Error::InvalidConfig { setting, .. }) => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(setting(BatchPacker::with_limits(0, 100)), "max_batch_bytes");
        assert_eq!(setting(BatchPacker::with_limits(100, 0)), "max_item_bytes");
    }

    #[test]
    fn each_item_is_found_again_byte_for_byte() {
        let mut packer = BatchPacker::new();
        let ops = [op(1, 3), op(22, 0), op(333, 10)];
        for op in &ops {
            assert!(packer.push(op).unwrap().is_none());
        }
        let batch = packer.finish().unwrap();
        for (index, op) in ops.iter().enumerate() {
            assert_eq!(batch.item(index), Some(op.as_bytes()));
        }
        assert_eq!(batch.item(3), None);
    }

    #[test]
    fn a_merge_makes_its_batch_unsafe_to_repeat() {
        let merge = Operation::from_json(json!({"type": "person", "action": "merge",
            "primary": {"id": "1"}, "secondary": {"email": "a@b.c"}}))
        .unwrap();
        let mut packer = BatchPacker::new();
        packer.push(&op(1, 0)).unwrap();
        assert!(packer.clone().finish().unwrap().repeatable());
        packer.push(&merge).unwrap();
        assert!(!packer.finish().unwrap().repeatable());
        packer.push(&op(2, 0)).unwrap();
        assert!(
            packer.finish().unwrap().repeatable(),
            "the next batch starts afresh"
        );
    }

    #[test]
    fn item_errors_parse_from_a_207_body() {
        let body = r#"{"errors":[{"batch_index":3,"reason":"invalid","field":"identifiers","message":"no id"}]}"#;
        #[derive(serde::Deserialize)]
        struct Body {
            errors: Vec<ItemError>,
        }
        let parsed: Body = serde_json::from_str(body).unwrap();
        assert_eq!(
            parsed.errors[0].to_string(),
            "item 3: invalid (identifiers): no id"
        );
    }
}
