//! `ItemError`: one item Customer.io rejected from a batch it otherwise accepted.

use std::fmt;

use serde::Deserialize;

/// One item Customer.io rejected in a batch it otherwise accepted (HTTP 207).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ItemError {
    /// The item's position in its batch, from 0.
    #[serde(rename = "batch_index", default)]
    pub index: usize,
    /// Customer.io's short reason, e.g. `"invalid"`.
    #[serde(default)]
    pub reason: String,
    /// The field at fault, if Customer.io named one.
    #[serde(default)]
    pub field: Option<String>,
    /// Customer.io's message.
    #[serde(default)]
    pub message: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.reason)?;
        if let Some(field) = &self.field {
            write!(f, " ({field})")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}
