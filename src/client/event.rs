//! Events: what a person (or an anonymous visitor) did.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::event_id::EventId;
use crate::client::validate::{self, Invalid};

/// What kind of event: a custom event, a page view, or a mobile screen view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventKind {
    /// A custom event (`"type": "event"`).
    #[default]
    Event,
    /// A page view; the name is the page's URL or path (`"type": "page"`).
    Page,
    /// A mobile screen view; the name is the screen's name (`"type": "screen"`).
    Screen,
}

impl EventKind {
    /// The kind as Customer.io spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Event => "event",
            EventKind::Page => "page",
            EventKind::Screen => "screen",
        }
    }
}

/// An event to track.
///
/// Every event is sent with an [`EventId`], so that a retry or a re-run is
/// counted once: a random one unless you give one, or derive one from a key
/// of your own with [`id_from_key`](Event::id_from_key).
///
/// ```
/// use cio_ratelimit::Event;
/// use serde_json::json;
///
/// let event = Event::new("purchase")
///     .data(json!({"plan": "pro", "amount": 49}))?
///     .timestamp(1_700_000_000)
///     .id_from_key("order-1234");
/// let page_view = Event::page("/pricing");
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) kind: EventKind,
    pub(crate) data: Map<String, Value>,
    pub(crate) timestamp: Option<i64>,
    pub(crate) id: EventId,
}

impl Event {
    /// A custom event called `name`, with a fresh random id.
    pub fn new(name: impl Into<String>) -> Event {
        Event {
            name: name.into(),
            kind: EventKind::Event,
            data: Map::new(),
            timestamp: None,
            id: EventId::new(),
        }
    }

    /// A page view of `url` (a URL or a path).
    pub fn page(url: impl Into<String>) -> Event {
        Event::new(url).kind(EventKind::Page)
    }

    /// A mobile screen view of `screen`.
    pub fn screen(screen: impl Into<String>) -> Event {
        Event::new(screen).kind(EventKind::Screen)
    }

    /// Sets the kind.
    pub fn kind(mut self, kind: EventKind) -> Event {
        self.kind = kind;
        self
    }

    /// Sets the event's data, which must serialize to a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if it is not an object.
    pub fn data(mut self, data: impl Serialize) -> crate::Result<Event> {
        self.data = to_object(data, "event data")?;
        Ok(self)
    }

    /// When it happened, in Unix seconds; Customer.io uses the time it
    /// arrives otherwise.
    pub fn timestamp(mut self, unix_seconds: i64) -> Event {
        self.timestamp = Some(unix_seconds);
        self
    }

    /// Uses this id instead of a random one.
    pub fn id(mut self, id: EventId) -> Event {
        self.id = id;
        self
    }

    /// Derives the id from `key`: the same key always gives the same id (see
    /// [`EventId::from_key`]).
    pub fn id_from_key(self, key: &str) -> Event {
        self.id(EventId::from_key(key))
    }

    /// The event's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The event's id.
    pub fn event_id(&self) -> &EventId {
        &self.id
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        validate::event_name(&self.name)?;
        validate::event_data(&Value::Object(self.data.clone()))
    }

    /// The Track v1 body: `{name, type, data, timestamp, id}`.
    pub(crate) fn v1_body(&self) -> Map<String, Value> {
        let mut body = Map::new();
        body.insert("name".into(), Value::String(self.name.clone()));
        body.insert("type".into(), Value::String(self.kind.as_str().into()));
        body.insert("id".into(), Value::String(self.id.as_str().into()));
        if !self.data.is_empty() {
            body.insert("data".into(), Value::Object(self.data.clone()));
        }
        if let Some(timestamp) = self.timestamp {
            body.insert("timestamp".into(), Value::from(timestamp));
        }
        body
    }
}

/// Serializes `value` and insists on a JSON object.
pub(crate) fn to_object(
    value: impl Serialize,
    what: &'static str,
) -> Result<Map<String, Value>, Invalid> {
    match serde_json::to_value(value) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(Invalid::NotAnObject(what)),
        Err(err) => Err(Invalid::Json(err.to_string())),
    }
}
