//! `ItemError`: one item Customer.io rejected, and the one place its reason is put in words.

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

    /// The items a 207's body rejects in a batch of `items`, each once, in
    /// index order; `Err` saying why when the list cannot be trusted to name
    /// the right items (unreadable, an item without its index, an index
    /// past the end), for then which items were accepted is unknown.
    pub(crate) fn from_207(body: &str, items: usize) -> Result<Vec<ItemError>, String> {
        #[derive(Deserialize)]
        struct Body {
            errors: Vec<ItemError>,
        }
        let body: Body = serde_json::from_str(body).map_err(|err| err.to_string())?;
        let mut named = vec![false; items];
        let mut rejected = Vec::with_capacity(body.errors.len());
        for item in body.errors {
            let Some(seen) = named.get_mut(item.index) else {
                return Err(format!(
                    "it names item {}, and the batch has {items}",
                    item.index
                ));
            };
            // Named twice: rejected once.
            if !std::mem::replace(seen, true) {
                rejected.push(item);
            }
        }
        rejected.sort_by_key(|item| item.index);
        Ok(rejected)
    }
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "item {}: {}", self.index, self.explanation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_207_names_each_rejected_item_once_in_order() {
        let body = r#"{"errors":[
            {"batch_index":2,"reason":"invalid","message":"b"},
            {"batch_index":0,"reason":"invalid","field":"identifiers","message":"a"},
            {"batch_index":2,"reason":"invalid","message":"again"}]}"#;
        let rejected = ItemError::from_207(body, 3).unwrap();
        assert_eq!(
            rejected.iter().map(|item| item.index).collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(rejected[0].to_string(), "item 0: invalid (identifiers): a");
        assert_eq!(rejected[1].explanation(), "invalid: b");
    }

    #[test]
    fn a_207_that_cannot_name_the_right_items_is_refused() {
        let missing_index = r#"{"errors":[{"reason":"invalid","message":"no index"}]}"#;
        assert!(ItemError::from_207(missing_index, 3).is_err());
        let past_the_end = r#"{"errors":[{"batch_index":3,"reason":"invalid"}]}"#;
        let why = ItemError::from_207(past_the_end, 3).unwrap_err();
        assert!(why.contains("names item 3"), "{why}");
        assert!(ItemError::from_207("<html>oops</html>", 3).is_err());
        assert_eq!(ItemError::from_207(r#"{"errors":[]}"#, 3), Ok(Vec::new()));
    }
}
