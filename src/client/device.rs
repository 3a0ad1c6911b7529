//! Mobile devices registered to a person, for push notifications.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::client::event::to_object;
use crate::client::validate::{self, Invalid};

/// A device's platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    /// Apple iOS.
    Ios,
    /// Google Android.
    Android,
}

impl Platform {
    /// The platform as Customer.io spells it.
    pub fn as_str(&self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
        }
    }
}

/// A device to add to a person: its push token, platform, and optionally
/// when it was last used and attributes.
///
/// ```
/// use cio_ratelimit::client::{Device, Platform};
/// use serde_json::json;
///
/// let device = Device::new("fcm-token-123", Platform::Android)
///     .last_used(1_700_000_000)
///     .attributes(json!({"app_version": "2.1.0"}))?;
/// # Ok::<(), cio_ratelimit::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    id: String,
    platform: Platform,
    last_used: Option<i64>,
    attributes: Map<String, Value>,
}

impl Device {
    /// A device with this push token on this platform.
    pub fn new(id: impl Into<String>, platform: Platform) -> Device {
        Device {
            id: id.into(),
            platform,
            last_used: None,
            attributes: Map::new(),
        }
    }

    /// When the device was last used, in Unix seconds.
    pub fn last_used(mut self, unix_seconds: i64) -> Device {
        self.last_used = Some(unix_seconds);
        self
    }

    /// The device's attributes, a JSON object.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`](crate::Error::Invalid) if they are not an object.
    pub fn attributes(mut self, attributes: impl Serialize) -> crate::Result<Device> {
        self.attributes = to_object(attributes, "device attributes")?;
        Ok(self)
    }

    /// The device's push token.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        validate::identifier("device id", &self.id)?;
        validate::attributes(&self.attributes)
    }

    /// The Track v1 body: `{"device": {id, platform, last_used, attributes}}`.
    pub(crate) fn v1_body(&self) -> Value {
        let mut device = Map::new();
        device.insert("id".into(), Value::String(self.id.clone()));
        device.insert(
            "platform".into(),
            Value::String(self.platform.as_str().into()),
        );
        if let Some(last_used) = self.last_used {
            device.insert("last_used".into(), Value::from(last_used));
        }
        if !self.attributes.is_empty() {
            device.insert("attributes".into(), Value::Object(self.attributes.clone()));
        }
        serde_json::json!({ "device": device })
    }
}
