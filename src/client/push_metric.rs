//! Push delivery metrics reported from the device side.
//!
//! Endpoint, from Customer.io's Track API reference (`pushMetrics`, "Report
//! push metrics") and customerio-node's `trackPush`: `POST /api/v1/push/events`
//! with `{delivery_id, event: opened|converted|delivered, device_id,
//! timestamp}`, where `delivery_id` and `device_id` are the `CIO-Delivery-ID`
//! and `CIO-Delivery-Token` the notification carried.

use serde_json::{Map, Value};

use crate::client::client::Client;
use crate::client::request::Method;
use crate::client::validate;
use crate::error::Result;
use crate::retry::policy::Call;

/// What happened to a push notification on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushEvent {
    /// The notification reached the device.
    Delivered,
    /// The person opened it.
    Opened,
    /// The person did what it asked.
    Converted,
}

impl PushEvent {
    /// The name Customer.io uses: `"delivered"`, `"opened"` or `"converted"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PushEvent::Delivered => "delivered",
            PushEvent::Opened => "opened",
            PushEvent::Converted => "converted",
        }
    }
}

/// A device-side push metric to report.
///
/// ```no_run
/// use cio_ratelimit::Client;
/// use cio_ratelimit::client::{PushEvent, PushMetric};
///
/// let client = Client::builder("site-id", "track-api-key").build()?;
/// let opened = PushMetric::new("CIO-Delivery-ID value", "CIO-Delivery-Token value", PushEvent::Opened)
///     .timestamp(1_700_000_000);
/// client.track_push(&opened)?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushMetric {
    delivery_id: String,
    device_id: String,
    event: PushEvent,
    timestamp: Option<i64>,
}

impl PushMetric {
    /// `event` for the notification `delivery_id` (its `CIO-Delivery-ID`) on
    /// the device `device_id` (its `CIO-Delivery-Token`).
    pub fn new(
        delivery_id: impl Into<String>,
        device_id: impl Into<String>,
        event: PushEvent,
    ) -> PushMetric {
        PushMetric {
            delivery_id: delivery_id.into(),
            device_id: device_id.into(),
            event,
            timestamp: None,
        }
    }

    /// When it happened, in Unix seconds; default: when it arrives.
    pub fn timestamp(mut self, unix_seconds: i64) -> PushMetric {
        self.timestamp = Some(unix_seconds);
        self
    }

    fn body(&self) -> Value {
        let mut body = Map::new();
        body.insert("delivery_id".into(), self.delivery_id.clone().into());
        body.insert("event".into(), self.event.as_str().into());
        body.insert("device_id".into(), self.device_id.clone().into());
        if let Some(timestamp) = self.timestamp {
            body.insert("timestamp".into(), timestamp.into());
        }
        Value::Object(body)
    }
}

impl Client {
    /// Reports a push metric (`POST /api/v1/push/events`) on the Track
    /// limiter. A metric names its delivery, so repeating it after a 5xx or a
    /// timeout records the same fact again, not a second one.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) for an empty or overlong
    /// delivery or device id; otherwise as [`identify`](Client::identify).
    #[doc(alias = "trackPush")]
    pub fn track_push(&self, metric: &PushMetric) -> Result<()> {
        validate::identifier("delivery_id", &metric.delivery_id)?;
        validate::identifier("device_id", &metric.device_id)?;
        let path = "/api/v1/push/events".into();
        self.send_json(
            Call::safe("track_push"),
            Method::Post,
            path,
            Some(&metric.body()),
        )?;
        Ok(())
    }
}
