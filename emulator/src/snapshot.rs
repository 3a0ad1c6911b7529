//! What the emulator recorded, as plain data: readable in process and over HTTP.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A copy of everything the emulator recorded since it started (or since the last
/// [`reset`](crate::Emulator::reset)).
///
/// [`Emulator::snapshot`](crate::Emulator::snapshot) returns one in process;
/// `GET /_emulator/snapshot` returns the same thing as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// People, keyed by the identifier as given: a Track v1 path identifier after
    /// percent-decoding (an id, an email or `cio_<cio_id>`); for Track v2 the `id`, else the
    /// `email`, else `cio_` followed by the `cio_id`.
    pub people: BTreeMap<String, Person>,
    /// Identifiers of deleted people, in the order they were deleted.
    pub deleted: Vec<String>,
    /// Merges, in order, each as `{"primary": {...}, "secondary": {...}}`.
    pub merges: Vec<Value>,
    /// Events stored, in the order they were accepted (repeated event ids are not stored twice).
    pub events: Vec<Event>,
    /// Events acknowledged but not stored because their `id` had been seen before.
    pub duplicate_events: u64,
    /// Events accepted, repeats excluded: `events.len()`, unless the emulator keeps only
    /// counts ([`Keep::Counts`](crate::Keep::Counts)) and `events` stays empty.
    #[serde(default)]
    pub event_count: u64,
    /// Transactional messages sent (`/v1/send/email`, `/v1/send/push`), in order.
    pub sends: Vec<SentMessage>,
    /// Broadcasts triggered (`POST /v1/campaigns/{id}/triggers`), in order.
    pub broadcasts: Vec<Broadcast>,
    /// Manual segments by id, created by the first add to them
    /// (`POST /api/v1/segments/{id}/add_customers`).
    pub segments: BTreeMap<u64, Segment>,
    /// Delivery metrics reported (Track v1 `POST /api/v1/push/events` and v2
    /// `delivery` operations), in order.
    pub delivery_metrics: Vec<DeliveryMetric>,
    /// Objects (Track v2 `object` operations), keyed `{object_type_id}/{object_id}`.
    pub objects: BTreeMap<String, Object>,
    /// Relationships between people and objects (v2 `add_relationships`,
    /// `cio_relationships` on an identify).
    pub relationships: BTreeSet<Relationship>,
    /// People exports created through the App API, in order.
    pub exports: Vec<Export>,
    /// Pipelines API calls stored, single or batched, in the order they were accepted (a
    /// repeated `messageId` is not stored twice).
    pub pipelines: Vec<PipelinesCall>,
    /// Pipelines calls acknowledged but not stored because their `messageId` had been seen.
    pub pipelines_duplicates: u64,
    /// Pipelines calls accepted, repeats excluded: `pipelines.len()`, unless the emulator keeps
    /// only counts ([`Keep::Counts`](crate::Keep::Counts)) and `pipelines` stays empty.
    #[serde(default)]
    pub pipelines_count: u64,
    /// Pipelines calls (or unreadable Pipelines requests) that failed validation without
    /// `X-Strict-Mode: 1`: answered 200 and dropped, as Customer.io does.
    pub pipelines_dropped: u64,
    /// Every Customer.io API request that arrived, answered or not (admin routes excluded).
    pub requests: u64,
    /// Answers by HTTP status (dropped connections are not answers and are not counted here).
    pub status_counts: BTreeMap<u16, u64>,
    /// Connections closed without an answer by the `drop_connection` fault.
    pub dropped_connections: u64,
    /// `429 Too Many Requests` answers.
    pub throttled: u64,
    /// Rate statistics per class: `"track"`, `"transactional"`, `"app"`, `"broadcast"` and
    /// `"pipelines"`.
    pub classes: BTreeMap<String, ClassStats>,
}

/// A person as the emulator knows them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Person {
    /// Attributes merged over all identify calls (a later value replaces an earlier one).
    pub attributes: Map<String, Value>,
    /// Whether the person is suppressed.
    pub suppressed: bool,
    /// Devices by device id (token), each the device object as sent.
    pub devices: BTreeMap<String, Value>,
    /// How many identify calls this person received.
    pub identify_count: u64,
    /// Customer.io's id for the person, given by the emulator when it first
    /// recorded them (`e0000001`, `e0000002`, ...).
    pub cio_id: String,
}

/// A manual segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Its members, each a key of [`Snapshot::people`].
    pub members: BTreeSet<String>,
}

/// A delivery metric: what happened to a message on the device.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryMetric {
    /// The delivery it is about (its `CIO-Delivery-ID`).
    pub delivery_id: String,
    /// `"delivered"`, `"opened"`, `"converted"`, ...
    pub metric: String,
    /// The device (its `CIO-Delivery-Token`), when reported.
    pub device_id: Option<String>,
    /// When it happened, in Unix seconds, when reported.
    pub timestamp: Option<i64>,
}

/// An object (a company, an account, ...) of Track v2.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Attributes merged over all identify operations.
    pub attributes: Map<String, Value>,
}

/// A person related to an object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Relationship {
    /// The person, a key of [`Snapshot::people`].
    pub person: String,
    /// The object, a key of [`Snapshot::objects`].
    pub object: String,
}

/// A people export.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Export {
    /// Its id.
    pub id: u64,
    /// The `filters` it was created with.
    pub filters: Value,
    /// The people it selected when it was created, keys of [`Snapshot::people`].
    pub people: Vec<String>,
}

/// An event stored by the emulator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// The person's identifier (as in [`Snapshot::people`]), or `None` for an anonymous event.
    pub person: Option<String>,
    /// The `anonymous_id` of an anonymous event.
    pub anonymous_id: Option<String>,
    /// The event name (for a page view, the page; for a screen view, the screen).
    pub name: String,
    /// The event `id` (a ULID in Customer.io's examples), if one was sent.
    pub id: Option<String>,
    /// `"event"`, `"page"` or `"screen"`.
    pub kind: String,
    /// The event's data: v1 `data`, v2 `attributes`; `{}` when none was sent.
    pub data: Value,
    /// The `timestamp` sent with the event, in Unix seconds.
    pub timestamp: Option<i64>,
}

/// A transactional message accepted by the App API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SentMessage {
    /// `"email"`, `"push"`, `"sms"`, `"in_app"` or `"inbox_message"`.
    pub kind: String,
    /// The `delivery_id` the emulator answered with.
    pub delivery_id: String,
    /// The request body as sent.
    pub body: Value,
}

/// A call the Pipelines API accepted and stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PipelinesCall {
    /// `"identify"`, `"track"`, `"page"`, `"screen"`, `"group"` or `"alias"`.
    pub kind: String,
    /// The call's `messageId`, if it had one.
    pub message_id: Option<String>,
    /// The call's `userId`, if it had one.
    pub user_id: Option<String>,
    /// The call's `anonymousId`, if it had one.
    pub anonymous_id: Option<String>,
    /// The call as sent.
    pub body: Value,
    /// Whether its request carried `X-Strict-Mode: 1`.
    pub strict: bool,
}

/// A broadcast triggered through the App API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Broadcast {
    /// The campaign (broadcast) id from the path.
    pub campaign_id: u64,
    /// The request body as sent (`{}` when empty).
    pub body: Value,
}

/// Rate statistics of one class of requests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClassStats {
    /// Requests of this class that arrived, admitted or not, with valid credentials or not.
    pub requests: u64,
    /// Requests that passed auth and fit in the window.
    pub admitted: u64,
    /// Requests answered 429.
    pub throttled: u64,
    /// The most requests that arrived (admitted or not, auth-valid or not) in any window of
    /// `window_ms` milliseconds: compare it with `limit` to see whether a client kept to its
    /// budget.
    pub max_in_window: u64,
    /// Admitted requests allowed per window (0 means unlimited).
    pub limit: u32,
    /// The window's length in milliseconds.
    pub window_ms: u64,
}

impl Snapshot {
    /// The stored events with this name, in order.
    pub fn events_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
        self.events.iter().filter(move |event| event.name == name)
    }

    /// The ids of all stored events that carry one.
    pub fn event_ids(&self) -> BTreeSet<String> {
        self.events
            .iter()
            .filter_map(|event| event.id.clone())
            .collect()
    }

    /// How many answers had this HTTP status.
    pub fn status_count(&self, status: u16) -> u64 {
        self.status_counts.get(&status).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(name: &str, id: Option<&str>) -> Event {
        Event {
            person: Some("1".into()),
            anonymous_id: None,
            name: name.into(),
            id: id.map(Into::into),
            kind: "event".into(),
            data: Value::Object(Map::new()),
            timestamp: None,
        }
    }

    #[test]
    fn helpers_find_events_by_name_and_id() {
        let snapshot = Snapshot {
            events: vec![
                event("signup", Some("a")),
                event("login", None),
                event("signup", Some("b")),
            ],
            ..Snapshot::default()
        };
        assert_eq!(snapshot.events_named("signup").count(), 2);
        assert_eq!(
            snapshot.event_ids(),
            BTreeSet::from(["a".to_owned(), "b".to_owned()])
        );
    }

    #[test]
    fn round_trips_through_json_with_numeric_status_keys() {
        let mut snapshot = Snapshot::default();
        snapshot.status_counts.insert(207, 3);
        snapshot
            .classes
            .insert("track".into(), ClassStats::default());
        let text = serde_json::to_string(&snapshot).unwrap();
        assert!(text.contains("\"207\":3"), "{text}");
        let back: Snapshot = serde_json::from_str(&text).unwrap();
        assert_eq!(back, snapshot);
        assert_eq!(back.status_count(207), 3);
        assert_eq!(back.status_count(500), 0);
    }
}
