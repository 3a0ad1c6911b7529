//! What the emulator stores: people, events, sends, broadcasts, and counts of answers.
//!
//! Handlers parse and validate outside the lock and hand over a list of [`Change`]s; the lock
//! is held only to apply them.

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::config::Keep;
use crate::snapshot::{Broadcast, Event, SentMessage, Snapshot};

/// One effect of an accepted request on the records.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Change {
    /// Merge attributes into a person (creating them) and count the identify call.
    Identify {
        person: String,
        attributes: Map<String, Value>,
    },
    /// Forget a person and note the deletion.
    Delete { person: String },
    /// Store an event unless its id was seen before.
    Event(Event),
    /// Set or clear a person's suppressed flag.
    Suppress { person: String, suppressed: bool },
    /// Add or replace a device of a person.
    AddDevice {
        person: String,
        device_id: String,
        device: Value,
    },
    /// Remove a device of a person.
    DeleteDevice { person: String, device_id: String },
    /// Merge the secondary person into the primary one.
    Merge {
        primary: String,
        secondary: String,
        body: Value,
    },
}

#[derive(Default)]
struct Inner {
    keep: Keep,
    snapshot: Snapshot,
    seen_event_ids: HashSet<String>,
    deliveries: u64,
    triggers: u64,
}

/// The records, behind one short-held lock.
#[derive(Default)]
pub(crate) struct Records {
    inner: Mutex<Inner>,
}

impl Records {
    pub(crate) fn new(keep: Keep) -> Records {
        Records {
            inner: Mutex::new(Inner {
                keep,
                ..Inner::default()
            }),
        }
    }

    /// Counts a Customer.io API request that arrived.
    pub(crate) fn arrived(&self) {
        self.inner.lock().snapshot.requests += 1;
    }

    /// Counts an answer by status (and a 429 as throttled).
    pub(crate) fn answered(&self, status: u16) {
        let mut inner = self.inner.lock();
        *inner.snapshot.status_counts.entry(status).or_insert(0) += 1;
        if status == 429 {
            inner.snapshot.throttled += 1;
        }
    }

    /// Counts a connection closed without an answer.
    pub(crate) fn dropped(&self) {
        self.inner.lock().snapshot.dropped_connections += 1;
    }

    /// Applies the changes of one request, in order, under one lock.
    pub(crate) fn apply(&self, changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        let mut inner = self.inner.lock();
        for change in changes {
            inner.apply(change);
        }
    }

    /// Stores a transactional send and returns its delivery id.
    pub(crate) fn send(&self, kind: &str, body: Value) -> String {
        let mut inner = self.inner.lock();
        inner.deliveries += 1;
        let delivery_id = format!("emulator-delivery-{}", inner.deliveries);
        let body = inner.kept(body);
        inner.snapshot.sends.push(SentMessage {
            kind: kind.to_owned(),
            delivery_id: delivery_id.clone(),
            body,
        });
        delivery_id
    }

    /// Stores a broadcast trigger and returns the trigger id.
    pub(crate) fn broadcast(&self, campaign_id: u64, body: Value) -> u64 {
        let mut inner = self.inner.lock();
        inner.triggers += 1;
        let body = inner.kept(body);
        inner
            .snapshot
            .broadcasts
            .push(Broadcast { campaign_id, body });
        inner.triggers
    }

    /// A copy of the records (without the per-class statistics, which live in the rate windows).
    pub(crate) fn snapshot(&self) -> Snapshot {
        self.inner.lock().snapshot.clone()
    }

    pub(crate) fn reset(&self) {
        let mut inner = self.inner.lock();
        *inner = Inner {
            keep: inner.keep,
            ..Inner::default()
        };
    }
}

impl Inner {
    /// A payload as kept: itself, or `null` when keeping counts only.
    fn kept(&self, payload: Value) -> Value {
        match self.keep {
            Keep::All => payload,
            Keep::Counts => Value::Null,
        }
    }

    fn apply(&mut self, change: Change) {
        let keep_all = self.keep == Keep::All;
        let people = &mut self.snapshot.people;
        match change {
            Change::Identify { person, attributes } => {
                let person = people.entry(person).or_default();
                person.identify_count += 1;
                if keep_all {
                    person.attributes.extend(attributes);
                }
            }
            Change::Delete { person } => {
                people.remove(&person);
                self.snapshot.deleted.push(person);
            }
            Change::Event(event) => {
                if let Some(id) = &event.id
                    && !self.seen_event_ids.insert(id.clone())
                {
                    self.snapshot.duplicate_events += 1;
                    return;
                }
                self.snapshot.event_count += 1;
                if keep_all {
                    self.snapshot.events.push(event);
                }
            }
            Change::Suppress { person, suppressed } => {
                people.entry(person).or_default().suppressed = suppressed;
            }
            Change::AddDevice {
                person,
                device_id,
                device,
            } => {
                people
                    .entry(person)
                    .or_default()
                    .devices
                    .insert(device_id, if keep_all { device } else { Value::Null });
            }
            Change::DeleteDevice { person, device_id } => {
                if let Some(person) = people.get_mut(&person) {
                    person.devices.remove(&device_id);
                }
            }
            Change::Merge {
                primary,
                secondary,
                body,
            } => {
                // Like Customer.io: the secondary person goes away; the primary keeps its own
                // values and gains the secondary's attributes and devices it did not have.
                if let Some(merged) = people.remove(&secondary) {
                    let target = people.entry(primary).or_default();
                    for (name, value) in merged.attributes {
                        target.attributes.entry(name).or_insert(value);
                    }
                    for (id, device) in merged.devices {
                        target.devices.entry(id).or_insert(device);
                    }
                    target.identify_count += merged.identify_count;
                }
                let body = self.kept(body);
                self.snapshot.merges.push(body);
            }
        }
    }
}

/// Seconds since the Unix epoch, for `queued_at`.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attributes(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn event(id: Option<&str>) -> Change {
        Change::Event(Event {
            person: Some("1".into()),
            anonymous_id: None,
            name: "signup".into(),
            id: id.map(Into::into),
            kind: "event".into(),
            data: json!({}),
            timestamp: None,
        })
    }

    #[test]
    fn identify_merges_attributes_and_counts_calls() {
        let records = Records::default();
        records.apply(vec![
            Change::Identify {
                person: "1".into(),
                attributes: attributes(json!({"a": 1, "b": 1})),
            },
            Change::Identify {
                person: "1".into(),
                attributes: attributes(json!({"b": 2})),
            },
        ]);
        let person = &records.snapshot().people["1"];
        assert_eq!(
            Value::Object(person.attributes.clone()),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(person.identify_count, 2);
    }

    #[test]
    fn keeping_counts_drops_payloads_but_keeps_tallies_and_repeats() {
        let records = Records::new(Keep::Counts);
        records.apply(vec![
            Change::Identify {
                person: "1".into(),
                attributes: attributes(json!({"a": 1})),
            },
            Change::AddDevice {
                person: "1".into(),
                device_id: "tok".into(),
                device: json!({"platform": "ios"}),
            },
            event(Some("e1")),
            event(Some("e1")),
            event(None),
        ]);
        records.send("email", json!({"to": "a@b.c"}));
        let snapshot = records.snapshot();
        let person = &snapshot.people["1"];
        assert!(person.attributes.is_empty());
        assert_eq!(person.identify_count, 1);
        assert_eq!(person.devices["tok"], Value::Null, "the device is counted");
        assert!(snapshot.events.is_empty());
        assert_eq!((snapshot.event_count, snapshot.duplicate_events), (2, 1));
        assert_eq!(snapshot.sends[0].body, Value::Null);
        assert_eq!(snapshot.sends[0].delivery_id, "emulator-delivery-1");
        records.reset();
        records.apply(vec![event(Some("e2"))]);
        assert!(records.snapshot().events.is_empty(), "reset keeps the mode");

        let all = Records::default();
        all.apply(vec![event(Some("e1")), event(None)]);
        let snapshot = all.snapshot();
        assert_eq!((snapshot.events.len() as u64, snapshot.event_count), (2, 2));
    }

    #[test]
    fn repeated_event_ids_are_counted_not_stored() {
        let records = Records::default();
        records.apply(vec![
            event(Some("x")),
            event(Some("x")),
            event(None),
            event(None),
        ]);
        let snapshot = records.snapshot();
        assert_eq!(snapshot.events.len(), 3);
        assert_eq!(snapshot.duplicate_events, 1);
    }

    #[test]
    fn merge_moves_the_secondary_into_the_primary() {
        let records = Records::default();
        records.apply(vec![
            Change::Identify {
                person: "p".into(),
                attributes: attributes(json!({"plan": "pro"})),
            },
            Change::Identify {
                person: "s@x.io".into(),
                attributes: attributes(json!({"plan": "free", "city": "Oslo"})),
            },
            Change::Merge {
                primary: "p".into(),
                secondary: "s@x.io".into(),
                body: json!({"primary": {"id": "p"}, "secondary": {"email": "s@x.io"}}),
            },
        ]);
        let snapshot = records.snapshot();
        assert!(!snapshot.people.contains_key("s@x.io"));
        let primary = &snapshot.people["p"];
        assert_eq!(primary.attributes["plan"], "pro");
        assert_eq!(primary.attributes["city"], "Oslo");
        assert_eq!(snapshot.merges.len(), 1);
    }

    #[test]
    fn reset_forgets_everything_including_seen_event_ids() {
        let records = Records::default();
        records.apply(vec![event(Some("x"))]);
        records.answered(200);
        records.reset();
        assert_eq!(records.snapshot(), Snapshot::default());
        records.apply(vec![event(Some("x"))]);
        assert_eq!(records.snapshot().events.len(), 1);
    }

    #[test]
    fn delivery_and_trigger_ids_are_unique() {
        let records = Records::default();
        let a = records.send("email", json!({}));
        let b = records.send("push", json!({}));
        assert_ne!(a, b);
        assert_eq!(records.broadcast(7, json!({})), 1);
        assert_eq!(records.broadcast(7, json!({})), 2);
    }
}
