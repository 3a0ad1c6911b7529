//! [`ItemError`]: one item Customer.io rejected, and the one place its reason is put in words.

use std::fmt;

use serde::Deserialize;

/// One item Customer.io rejected in a batch it otherwise accepted (HTTP 207),
/// or refused when sent alone.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemError {
    /// The item's position in its batch, from 0.
    #[serde(rename = "batch_index")]
    pub index: usize,
    /// Customer.io's short reason, e.g. `"invalid"`; `"HTTP 400"` for an
    /// item refused when sent alone.
    #[serde(default)]
    pub reason: String,
    /// The field at fault, if Customer.io named one.
    #[serde(default)]
    pub field: Option<String>,
    /// Customer.io's message.
    #[serde(default)]
    pub message: String,
}

impl ItemError {
    /// Why the item was rejected, in words, without its index: e.g.
    /// `invalid (identifiers): no id`.
    pub fn explanation(&self) -> String {
        let mut text = self.reason.clone();
        if let Some(field) = &self.field {
            text.push_str(&format!(" ({field})"));
        }
        if !self.message.is_empty() {
            text.push_str(": ");
            text.push_str(&self.message);
        }
        text
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.explanation())
    }
}
