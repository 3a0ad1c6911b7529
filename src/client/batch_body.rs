//! `{"batch":[...]}` bodies: packing serialized items under a size limit,
//! and taking a packed body apart again. Track v2 and Pipelines batches share
//! the envelope and the limits, so they share this.

use crate::client::validate::{self, Invalid, MAX_BATCH_BYTES, MAX_ITEM_BYTES};

const OPEN: &[u8] = b"{\"batch\":[";
const CLOSE: &[u8] = b"]}";

/// A packed `{"batch":[...]}` body and where each item starts in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BatchBody {
    body: Vec<u8>,
    starts: Vec<usize>,
}

impl BatchBody {
    /// A body of `items`, in order, whatever their size.
    pub(crate) fn from_items<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> BatchBody {
        let mut body = OPEN.to_vec();
        let mut starts = Vec::new();
        for item in items {
            if !starts.is_empty() {
                body.push(b',');
            }
            starts.push(body.len());
            body.extend_from_slice(item);
        }
        body.extend_from_slice(CLOSE);
        BatchBody { body, starts }
    }

    /// How many items it carries.
    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    /// The whole body.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// Item `index`'s bytes as packed.
    pub(crate) fn item(&self, index: usize) -> &[u8] {
        let end = match self.starts.get(index + 1) {
            Some(next) => next - 1, // the comma before the next item
            None => self.body.len() - CLOSE.len(),
        };
        &self.body[self.starts[index]..end]
    }

    /// The items `range` as a body of their own.
    pub(crate) fn slice(&self, range: std::ops::Range<usize>) -> BatchBody {
        BatchBody::from_items(range.map(|index| self.item(index)))
    }
}

/// Packs serialized items, in order, into [`BatchBody`]s as large as the
/// limits allow.
#[derive(Debug, Clone)]
pub(crate) struct BatchBodyPacker {
    body: Vec<u8>,
    starts: Vec<usize>,
    max_batch_bytes: usize,
    max_item_bytes: usize,
}

impl BatchBodyPacker {
    /// Bodies at most `max_batch_bytes`, items at most `max_item_bytes`, both
    /// lowered to Customer.io's limits (a body under 500 KB, items up to 32 KB).
    pub(crate) fn with_limits(max_batch_bytes: usize, max_item_bytes: usize) -> BatchBodyPacker {
        BatchBodyPacker {
            body: Vec::new(),
            starts: Vec::new(),
            max_batch_bytes: max_batch_bytes.min(MAX_BATCH_BYTES - 1),
            max_item_bytes: max_item_bytes.min(MAX_ITEM_BYTES),
        }
    }

    /// Adds `item`; when it does not fit beside what is packed, the full body
    /// comes out and `item` starts the next one.
    ///
    /// # Errors
    ///
    /// [`Invalid::ItemTooLarge`] if `item` alone is over the item limit;
    /// nothing is added.
    pub(crate) fn push(&mut self, item: &[u8]) -> Result<Option<BatchBody>, Invalid> {
        self.check(item.len())?;
        let full = if self.fits(item.len()) {
            None
        } else {
            self.finish()
        };
        if self.starts.is_empty() {
            self.body.extend_from_slice(OPEN);
        } else {
            self.body.push(b',');
        }
        self.starts.push(self.body.len());
        self.body.extend_from_slice(item);
        Ok(full)
    }

    /// Whether an item of `len` bytes may go in a batch at all.
    ///
    /// # Errors
    ///
    /// [`Invalid::ItemTooLarge`] if it is over the item limit.
    pub(crate) fn check(&self, len: usize) -> Result<(), Invalid> {
        if len > self.max_item_bytes {
            return Err(Invalid::ItemTooLarge(len));
        }
        validate::item_size(len)
    }

    /// Whether an item of `len` bytes fits beside what is packed (the first
    /// item always does).
    pub(crate) fn fits(&self, len: usize) -> bool {
        self.starts.is_empty() || self.body.len() + 1 + len + CLOSE.len() <= self.max_batch_bytes
    }

    /// Items packed but not yet handed out.
    pub(crate) fn pending(&self) -> usize {
        self.starts.len()
    }

    /// Hands out what is packed, if anything.
    pub(crate) fn finish(&mut self) -> Option<BatchBody> {
        if self.starts.is_empty() {
            return None;
        }
        let mut body = std::mem::take(&mut self.body);
        body.extend_from_slice(CLOSE);
        Some(BatchBody {
            body,
            starts: std::mem::take(&mut self.starts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_come_back_out_as_packed() {
        let items: [&[u8]; 3] = [b"{\"a\":1}", b"[1,2]", b"\"x,y\""];
        let body = BatchBody::from_items(items);
        assert_eq!(body.bytes(), b"{\"batch\":[{\"a\":1},[1,2],\"x,y\"]}");
        assert_eq!((0..3).map(|i| body.item(i)).collect::<Vec<_>>(), items);
        assert_eq!(body.slice(1..3).bytes(), b"{\"batch\":[[1,2],\"x,y\"]}");
        assert_eq!(body.slice(2..3).item(0), b"\"x,y\"");
    }

    proptest::proptest! {
        /// Whatever the items and limits: every item comes out once, in
        /// order, byte for byte; every body is JSON under the limit unless it
        /// holds one item; halves put back together give the body again.
        #[test]
        fn packing_loses_nothing_and_keeps_to_the_limit(
            lengths in proptest::collection::vec(0usize..60, 1..40),
            max_batch in 20usize..200,
        ) {
            let items: Vec<Vec<u8>> = lengths
                .iter()
                .enumerate()
                .map(|(i, len)| format!("\"{i}:{}\"", "x".repeat(*len)).into_bytes())
                .collect();
            let mut packer = BatchBodyPacker::with_limits(max_batch, 64);
            let mut bodies = Vec::new();
            for item in &items {
                bodies.extend(packer.push(item).unwrap());
            }
            bodies.extend(packer.finish());
            let mut out: Vec<&[u8]> = Vec::new();
            for body in &bodies {
                let parsed: serde_json::Value = serde_json::from_slice(body.bytes()).unwrap();
                proptest::prop_assert_eq!(parsed["batch"].as_array().unwrap().len(), body.len());
                proptest::prop_assert!(body.bytes().len() <= max_batch || body.len() == 1);
                let half = body.len() / 2;
                let (front, back) = (body.slice(0..half), body.slice(half..body.len()));
                let rejoined: Vec<&[u8]> = (0..front.len()).map(|i| front.item(i))
                    .chain((0..back.len()).map(|i| back.item(i)))
                    .collect();
                proptest::prop_assert_eq!(&BatchBody::from_items(rejoined), body);
                out.extend((0..body.len()).map(|i| body.item(i)));
            }
            let expected: Vec<&[u8]> = items.iter().map(Vec::as_slice).collect();
            proptest::prop_assert_eq!(out, expected);
        }
    }

    #[test]
    fn the_packer_fills_each_body_to_its_limit() {
        let mut packer = BatchBodyPacker::with_limits(40, 20);
        let item = b"{\"n\":\"0123456789\"}"; // 18 bytes
        assert!(packer.push(item).unwrap().is_none());
        let full = packer.push(item).unwrap().expect("two items are 51 bytes");
        assert_eq!(full.len(), 1);
        assert_eq!(full.bytes().len(), 10 + 18 + 2);
        assert_eq!(packer.pending(), 1);
        assert_eq!(
            packer.push(&[b' '; 21]),
            Err(Invalid::ItemTooLarge(21)),
            "nothing added"
        );
        assert_eq!(packer.finish().unwrap().item(0), item);
        assert!(packer.finish().is_none());
    }
}
