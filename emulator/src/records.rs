//! What the emulator stores: people, events, sends, broadcasts, and counts of answers.
//!
//! Handlers parse and validate outside the lock and hand over a list of [`Change`]s; the lock
//! is held only to apply them.

use std::collections::{BTreeSet, HashSet};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde_json::{Map, Value, json};

use crate::config::Keep;
use crate::snapshot::{
    Broadcast, DeliveryMetric, Event, Export, Person, PipelinesCall, Relationship, SentMessage,
    Snapshot,
};

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
    /// Add people to a manual segment (creating it) or remove them; `ids` are of kind
    /// `id_type` (`id`, `email` or `cio_id`), and ids naming nobody are ignored.
    Segment {
        segment_id: u64,
        id_type: String,
        ids: Vec<String>,
        add: bool,
    },
    /// Store a delivery metric.
    DeliveryMetric(DeliveryMetric),
    /// Merge attributes into an object (creating it).
    IdentifyObject {
        object: String,
        attributes: Map<String, Value>,
    },
    /// Forget an object and its relationships.
    DeleteObject { object: String },
    /// Relate a person to an object, or undo it.
    Relate {
        person: String,
        object: String,
        add: bool,
    },
    /// Store a Pipelines call unless its messageId was seen before.
    Pipelines(PipelinesCall),
    /// Count Pipelines calls answered 200 but dropped (permissive mode).
    PipelinesDropped(u64),
}

#[derive(Default)]
struct Inner {
    keep: Keep,
    snapshot: Snapshot,
    seen_event_ids: HashSet<String>,
    seen_message_ids: HashSet<String>,
    deliveries: u64,
    triggers: u64,
    people_created: u64,
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

    /// The identifiers of the people with this email address.
    pub(crate) fn people_by_email(&self, email: &str) -> Vec<Value> {
        let inner = self.inner.lock();
        inner
            .snapshot
            .people
            .iter()
            .filter(|(key, person)| is(key, person, "email", email))
            .map(|(key, person)| identifiers(key, person))
            .collect()
    }

    /// A person's profile, as `GET /v1/customers/{id}/attributes` answers it.
    pub(crate) fn profile(&self, id_type: &str, value: &str) -> Option<Value> {
        let inner = self.inner.lock();
        let (key, person) = inner.find(id_type, value)?;
        let ids = identifiers(key, person);
        let mut attributes = person.attributes.clone();
        for name in ["id", "email", "cio_id"] {
            if !ids[name].is_null() {
                attributes.insert(name.into(), ids[name].clone());
            }
        }
        let unsubscribed = person.attributes.get("unsubscribed") == Some(&Value::Bool(true));
        Some(json!({
            "customer": {
                "id": ids["id"],
                "identifiers": ids,
                "attributes": attributes,
                "timestamps": {},
                "unsubscribed": unsubscribed,
                "devices": person.devices.values().collect::<Vec<_>>(),
            }
        }))
    }

    /// The segments a person is in, `None` when there is no such person.
    pub(crate) fn person_segments(&self, id_type: &str, value: &str) -> Option<Vec<Value>> {
        let inner = self.inner.lock();
        let (key, _) = inner.find(id_type, value)?;
        let segments = &inner.snapshot.segments;
        Some(
            segments
                .iter()
                .filter(|(_, segment)| segment.members.contains(key))
                .map(|(id, _)| segment_json(*id))
                .collect(),
        )
    }

    /// Every segment.
    pub(crate) fn segments(&self) -> Vec<Value> {
        let inner = self.inner.lock();
        inner
            .snapshot
            .segments
            .keys()
            .map(|id| segment_json(*id))
            .collect()
    }

    /// A page of a segment's members from offset `start`, and the next page's `start`; `None`
    /// when there is no such segment.
    pub(crate) fn segment_members(
        &self,
        segment_id: u64,
        start: usize,
        limit: usize,
    ) -> Option<(Vec<Value>, Option<String>)> {
        let inner = self.inner.lock();
        let members = &inner.snapshot.segments.get(&segment_id)?.members;
        let people = &inner.snapshot.people;
        let page: Vec<Value> = members
            .iter()
            .skip(start)
            .take(limit)
            .filter_map(|key| people.get(key).map(|person| identifiers(key, person)))
            .collect();
        let next = (start + limit < members.len()).then(|| (start + limit).to_string());
        Some((page, next))
    }

    /// Creates a people export of the people `filters` select now; `Err` names what is
    /// wrong with the filters.
    pub(crate) fn create_export(&self, filters: Value) -> Result<Value, String> {
        let mut inner = self.inner.lock();
        let snapshot = &inner.snapshot;
        let mut people = Vec::new();
        for (key, person) in &snapshot.people {
            if selects(&filters, key, person, snapshot)? {
                people.push(key.clone());
            }
        }
        let id = inner.snapshot.exports.len() as u64 + 1;
        inner.snapshot.exports.push(Export {
            id,
            filters,
            people,
        });
        Ok(export_json(&inner.snapshot.exports[id as usize - 1]))
    }

    /// An export as `GET /v1/exports/{id}` answers it.
    pub(crate) fn export(&self, id: u64) -> Option<Value> {
        let inner = self.inner.lock();
        let export = inner.export(id)?;
        Some(export_json(export))
    }

    /// An export's file: CSV with a header, one person per line.
    pub(crate) fn export_file(&self, id: u64) -> Option<String> {
        let inner = self.inner.lock();
        let export = inner.export(id)?;
        let mut csv = String::from("cio_id,id,email\n");
        for key in &export.people {
            if let Some(person) = inner.snapshot.people.get(key) {
                let ids = identifiers(key, person);
                let field = |name: &str| ids[name].as_str().unwrap_or_default().replace(',', " ");
                csv.push_str(&format!(
                    "{},{},{}\n",
                    field("cio_id"),
                    field("id"),
                    field("email")
                ));
            }
        }
        Some(csv)
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

    /// The person recorded under `key`, recorded now with a new cio_id if they were not.
    fn person(&mut self, key: String) -> &mut Person {
        let created = &mut self.people_created;
        self.snapshot.people.entry(key).or_insert_with(|| {
            *created += 1;
            Person {
                cio_id: format!("e{:07x}", *created),
                ..Person::default()
            }
        })
    }

    /// The export with this id (ids count from 1, in order of creation).
    fn export(&self, id: u64) -> Option<&Export> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.snapshot.exports.get(index)
    }

    /// The person an App API identifier names.
    fn find(&self, id_type: &str, value: &str) -> Option<(&String, &Person)> {
        // Most people are recorded under the identifier a lookup gives: look there first.
        if let Some((key, person)) = self.snapshot.people.get_key_value(value)
            && is(key, person, id_type, value)
        {
            return Some((key, person));
        }
        self.snapshot
            .people
            .iter()
            .find(|(key, person)| is(key, person, id_type, value))
    }

    fn apply(&mut self, change: Change) {
        let keep_all = self.keep == Keep::All;
        match change {
            Change::Identify { person, attributes } => {
                let person = self.person(person);
                person.identify_count += 1;
                if keep_all {
                    person.attributes.extend(attributes);
                }
            }
            Change::Delete { person } => {
                self.snapshot.people.remove(&person);
                for segment in self.snapshot.segments.values_mut() {
                    segment.members.remove(&person);
                }
                self.snapshot
                    .relationships
                    .retain(|relationship| relationship.person != person);
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
                self.person(person).suppressed = suppressed;
            }
            Change::AddDevice {
                person,
                device_id,
                device,
            } => {
                let device = if keep_all { device } else { Value::Null };
                self.person(person).devices.insert(device_id, device);
            }
            Change::DeleteDevice { person, device_id } => {
                if let Some(person) = self.snapshot.people.get_mut(&person) {
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
                if let Some(merged) = self.snapshot.people.remove(&secondary) {
                    let target = self.person(primary);
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
            Change::Segment {
                segment_id,
                id_type,
                ids,
                add,
            } => {
                let keys: BTreeSet<String> = ids
                    .iter()
                    .filter_map(|id| self.find(&id_type, id).map(|(key, _)| key.clone()))
                    .collect();
                let segments = &mut self.snapshot.segments;
                if add {
                    segments.entry(segment_id).or_default().members.extend(keys);
                } else if let Some(segment) = segments.get_mut(&segment_id) {
                    segment.members.retain(|key| !keys.contains(key));
                }
            }
            Change::DeliveryMetric(metric) => self.snapshot.delivery_metrics.push(metric),
            Change::IdentifyObject { object, attributes } => {
                let object = self.snapshot.objects.entry(object).or_default();
                if keep_all {
                    object.attributes.extend(attributes);
                }
            }
            Change::DeleteObject { object } => {
                self.snapshot.objects.remove(&object);
                self.snapshot
                    .relationships
                    .retain(|relationship| relationship.object != object);
            }
            Change::Relate {
                person,
                object,
                add,
            } => {
                let relationship = Relationship { person, object };
                if add {
                    self.person(relationship.person.clone());
                    self.snapshot
                        .objects
                        .entry(relationship.object.clone())
                        .or_default();
                    self.snapshot.relationships.insert(relationship);
                } else {
                    self.snapshot.relationships.remove(&relationship);
                }
            }
            Change::Pipelines(call) => {
                if let Some(id) = &call.message_id
                    && !self.seen_message_ids.insert(id.clone())
                {
                    self.snapshot.pipelines_duplicates += 1;
                    return;
                }
                self.snapshot.pipelines_count += 1;
                if keep_all {
                    self.snapshot.pipelines.push(call);
                }
            }
            Change::PipelinesDropped(calls) => self.snapshot.pipelines_dropped += calls,
        }
    }
}

/// A person's id and email: from their attributes, else from the key they were recorded under
/// (an email if it has an `@`, an id unless it is `cio_...`).
fn id_and_email<'a>(key: &'a str, person: &'a Person) -> (Option<&'a str>, Option<&'a str>) {
    let attribute = |name: &str| person.attributes.get(name).and_then(Value::as_str);
    let email = attribute("email").or(key.contains('@').then_some(key));
    let id = attribute("id").or((!key.contains('@') && !key.starts_with("cio_")).then_some(key));
    (id, email)
}

/// A person's `{id, email, cio_id}`, as the App API lists people.
fn identifiers(key: &str, person: &Person) -> Value {
    let (id, email) = id_and_email(key, person);
    json!({ "id": id, "email": email, "cio_id": person.cio_id })
}

/// Whether the App API identifier `value` of kind `id_type` names this person.
fn is(key: &str, person: &Person, id_type: &str, value: &str) -> bool {
    let (id, email) = id_and_email(key, person);
    match id_type {
        "email" => email.is_some_and(|email| email.eq_ignore_ascii_case(value)),
        "cio_id" => person.cio_id == value || key.strip_prefix("cio_") == Some(value),
        _ => id == Some(value),
    }
}

fn segment_json(id: u64) -> Value {
    json!({
        "id": id,
        "deduplicate_id": format!("{id}:0"),
        "name": format!("Segment {id}"),
        "description": "A manual segment created by the emulator",
        "state": "finished",
        "progress": null,
        "type": "manual",
        "tags": [],
    })
}

fn export_json(export: &Export) -> Value {
    json!({
        "id": export.id,
        "deduplicate_id": format!("{}:0", export.id),
        "type": "customers",
        "failed": false,
        "status": "done",
        "total": export.people.len(),
        "downloads": 0,
        "description": "People export created by the emulator",
        "user_id": 0,
        "user_email": "",
        "created_at": unix_now(),
        "updated_at": unix_now(),
    })
}

/// Whether an audience filter (`and`, `or`, `not`, `segment`, `attribute` with `eq` or
/// `exists`) selects this person; `Err` for a filter it cannot read.
fn selects(
    filter: &Value,
    key: &str,
    person: &Person,
    snapshot: &Snapshot,
) -> Result<bool, String> {
    let Some((kind, inner)) = filter
        .as_object()
        .and_then(|object| (object.len() == 1).then(|| object.iter().next()).flatten())
    else {
        return Err("each filter must be an object with one key".into());
    };
    let all = |list: &Value| -> Result<Vec<bool>, String> {
        let list = list.as_array().ok_or(format!("{kind} must be an array"))?;
        list.iter()
            .map(|item| selects(item, key, person, snapshot))
            .collect()
    };
    match kind.as_str() {
        "and" => Ok(all(inner)?.into_iter().all(|selected| selected)),
        "or" => Ok(all(inner)?.into_iter().any(|selected| selected)),
        "not" => Ok(!selects(inner, key, person, snapshot)?),
        "segment" => {
            let id = inner["id"].as_u64().ok_or("segment.id must be a number")?;
            Ok(snapshot
                .segments
                .get(&id)
                .is_some_and(|segment| segment.members.contains(key)))
        }
        "attribute" => {
            let field = inner["field"]
                .as_str()
                .ok_or("attribute.field is required")?;
            let value = person.attributes.get(field);
            match inner["operator"].as_str() {
                Some("exists") => Ok(value.is_some()),
                Some("eq") => {
                    // Customer.io compares as text: `"value": "true"` matches `true`.
                    let text = |value: &Value| match value {
                        Value::String(text) => text.clone(),
                        other => other.to_string(),
                    };
                    Ok(value.is_some_and(|value| text(value) == text(&inner["value"])))
                }
                _ => Err("attribute.operator must be eq or exists".into()),
            }
        }
        other => Err(format!("unknown filter {other:?}")),
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
