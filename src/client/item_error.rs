//! Reading the items a 207 rejects: each once, in index order, or not at all
//! when the list cannot name the right items.

use serde::Deserialize;

use crate::error::ItemError;

impl ItemError {
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
