//! What an import sends for one line: a Track operation or a Pipelines call,
//! and the packer that puts such entries into batch requests.
//!
//! The run does not care which API a line is for: it asks an [`Entry`] for
//! its bytes, its request and the person it names, and a [`Packer`] for
//! full batches.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::client::batch::BatchPacker;
use crate::client::operation::Operation;
use crate::client::pipelines_batch::PipelinesBatchPacker;
use crate::client::pipelines_call::PipelinesCall;
use crate::client::validate::{Invalid, MAX_ITEM_BYTES};
use crate::import::api::ImportApi;
use crate::queue::client_call::ClientCall;

/// One line's worth of work for the server.
#[derive(Debug)]
pub(crate) enum Entry {
    /// A Track v2 operation (`/api/v2/entity`, `/api/v2/batch`).
    Track(Operation),
    /// A Pipelines call (`/v1/{type}`, `/v1/batch`).
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

    /// Whom the entry writes to, so that one person's entries reach the
    /// server in input order: a Track operation's `identifiers` (its `id`,
    /// else `email`, else `cio_id`; a merge's `primary`; an anonymous
    /// event's `anonymous_id`; an object's type and id), a Pipelines call's
    /// `userId`, else `anonymousId`. `None` when it names no one (a delivery).
    ///
    /// The key is the identifier as written (a number as its digits), so
    /// one person named by id on one line and by email on another gives two
    /// keys: nothing here can know they are the same person.
    ///
    /// And a second person the entry writes to: a merge's `secondary` (whom
    /// it removes), an alias's `previousId` (whom it renames). Their earlier
    /// writes must land before it, and their later ones after it.
    pub(crate) fn people(&self) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
        match self {
            Entry::Track(operation) => track_people(operation.as_json()),
            Entry::Pipelines(call) => (
                Some(call.person())
                    .filter(|person| !person.is_empty())
                    .map(Cow::Borrowed),
                call.previous_id().map(Cow::Borrowed),
            ),
        }
    }

    /// The entry as a batch takes it, its parsed body dropped.
    pub(crate) fn into_batch_item(self) -> BatchItem {
        match self {
            Entry::Track(operation) => BatchItem {
                repeatable: operation.is_repeatable(),
                bytes: operation.into_bytes(),
            },
            Entry::Pipelines(call) => BatchItem {
                repeatable: true,
                bytes: call.into_bytes(),
            },
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

/// An identifier as a key: a string as written, a number as its digits.
fn text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        _ => None,
    }
}

/// The person an `identifiers` object names: its `id`, else `email`, else `cio_id`.
fn identifier(identifiers: &Value) -> Option<Cow<'_, str>> {
    ["id", "email", "cio_id"]
        .iter()
        .find_map(|key| identifiers.get(key).and_then(text))
}

/// The people (or object) a Track v2 operation names; see [`Entry::people`].
fn track_people(body: &Map<String, Value>) -> (Option<Cow<'_, str>>, Option<Cow<'_, str>>) {
    match (
        body.get("type").and_then(Value::as_str),
        body.get("action").and_then(Value::as_str),
    ) {
        (Some("person"), Some("merge")) => (
            body.get("primary").and_then(identifier),
            body.get("secondary").and_then(identifier),
        ),
        (Some("person"), _) => match body.get("identifiers") {
            Some(identifiers) => (identifier(identifiers), None),
            None => (body.get("anonymous_id").and_then(text), None),
        },
        (Some("object"), _) => (object(body), None),
        _ => (None, None),
    }
}

/// An object's type and id, as one key.
fn object(body: &Map<String, Value>) -> Option<Cow<'_, str>> {
    let identifiers = body.get("identifiers")?;
    let kind = identifiers.get("object_type_id").and_then(text)?;
    let id = identifiers.get("object_id").and_then(text)?;
    Some(Cow::Owned(format!("object {kind} {id}")))
}

/// An entry as a batch takes it: its bytes, and whether sending it twice is
/// harmless. What a batch mode import holds of a line until it is sent: the
/// parsed entry is dropped as soon as it is read, while it is still in cache.
#[derive(Debug)]
pub(crate) struct BatchItem {
    bytes: Vec<u8>,
    repeatable: bool,
}

impl BatchItem {
    /// Its size as sent.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }
}

/// Packs entries, in order, into batch requests as large as the API allows.
#[derive(Debug)]
pub(crate) enum Packer {
    /// For [`Entry::Track`]: `/api/v2/batch` bodies.
    Track(BatchPacker),
    /// For [`Entry::Pipelines`]: `/v1/batch` bodies.
    Pipelines(PipelinesBatchPacker),
}

impl Packer {
    /// A packer for `api`'s batches, at most `max_batch_bytes` each when
    /// given (else as large as Customer.io allows).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`](crate::Error::InvalidConfig) if
    /// `max_batch_bytes` is zero.
    pub(crate) fn new(api: ImportApi, max_batch_bytes: Option<usize>) -> crate::Result<Packer> {
        Ok(match (api, max_batch_bytes) {
            (ImportApi::Track, None) => Packer::Track(BatchPacker::new()),
            (ImportApi::Track, Some(bytes)) => {
                Packer::Track(BatchPacker::with_limits(bytes, MAX_ITEM_BYTES)?)
            }
            (ImportApi::Pipelines, None) => Packer::Pipelines(PipelinesBatchPacker::new()),
            (ImportApi::Pipelines, Some(bytes)) => {
                Packer::Pipelines(PipelinesBatchPacker::with_limits(bytes, MAX_ITEM_BYTES))
            }
        })
    }

    /// Whether `entry` may go in a batch at all, without adding it.
    ///
    /// # Errors
    ///
    /// Why the entry cannot go in any batch (too large, malformed).
    pub(crate) fn check(&self, entry: &Entry) -> Result<(), Invalid> {
        match (self, entry) {
            (Packer::Track(packer), Entry::Track(operation)) => packer.check(operation),
            (Packer::Pipelines(packer), Entry::Pipelines(call)) => packer.check(call),
            _ => unreachable!("an import reads entries for one API only"),
        }
    }

    /// Adds `item` (its entry [checked](Packer::check) before) if it fits
    /// beside what is packed (the first always does); `false`, adding
    /// nothing, if not.
    pub(crate) fn add_if_it_fits(&mut self, item: &BatchItem) -> bool {
        match self {
            Packer::Track(packer) => packer.add_if_it_fits(&item.bytes, item.repeatable),
            Packer::Pipelines(packer) => packer.add_if_it_fits(&item.bytes),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn track(value: serde_json::Value) -> Entry {
        Entry::Track(Operation::from_json(value).unwrap())
    }

    #[test]
    fn entries_name_the_person_they_write_to() {
        let person = |entry: Entry| entry.people().0.map(|key| key.into_owned());
        let identify = |identifiers| {
            track(json!({"type": "person", "action": "identify", "identifiers": identifiers}))
        };
        assert_eq!(person(identify(json!({"id": "42"}))).as_deref(), Some("42"));
        assert_eq!(
            person(identify(json!({"id": 42}))).as_deref(),
            Some("42"),
            "a number as its digits"
        );
        assert_eq!(
            person(identify(json!({"email": "a@example.com", "id": "7"}))).as_deref(),
            Some("7"),
            "the id before the email"
        );
        assert_eq!(
            person(identify(json!({"cio_id": "c1"}))).as_deref(),
            Some("c1")
        );
        let merge = track(json!({"type": "person", "action": "merge",
            "primary": {"email": "p@example.com"}, "secondary": {"id": "s"}}));
        assert_eq!(
            merge.people(),
            (Some("p@example.com".into()), Some("s".into())),
            "a merge names its secondary second"
        );
        let anonymous = track(json!({"type": "person", "action": "event", "name": "seen",
            "anonymous_id": "anon-1"}));
        assert_eq!(person(anonymous).as_deref(), Some("anon-1"));
        let object = track(json!({"type": "object", "action": "identify",
            "identifiers": {"object_type_id": "1", "object_id": "acme"}}));
        assert_eq!(person(object).as_deref(), Some("object 1 acme"));
        let delivery = track(
            json!({"type": "delivery", "action": "event", "name": "opened",
            "identifiers": {"id": "d1"}}),
        );
        assert_eq!(person(delivery), None);
        let call = |value| Entry::Pipelines(PipelinesCall::from_json(value).unwrap());
        assert_eq!(
            person(call(
                json!({"type": "track", "event": "x", "userId": "u", "anonymousId": "a"})
            ))
            .as_deref(),
            Some("u")
        );
        assert_eq!(
            person(call(
                json!({"type": "track", "event": "x", "anonymousId": "a"})
            ))
            .as_deref(),
            Some("a")
        );
        assert_eq!(
            call(json!({"type": "alias", "userId": "u", "previousId": "old"})).people(),
            (Some("u".into()), Some("old".into())),
            "an alias names the id it renames second"
        );
    }
}
