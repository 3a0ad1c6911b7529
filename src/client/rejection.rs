//! A whole request's error read as the rejection of the one item it carried.

use crate::error::Error;
use crate::error::ItemError;

/// The item at `index` as `error` rejected it, if `error` rejects content
/// (400, 413, 422); `None` for any other error.
pub(crate) fn rejected_item(index: usize, error: &Error) -> Option<ItemError> {
    match error {
        Error::Status {
            status, message, ..
        } if error.rejects_content() => Some(ItemError {
            index,
            reason: format!("HTTP {status}"),
            field: None,
            message: message.clone(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_content_errors_become_item_errors() {
        let status = |status| Error::Status {
            status,
            message: "too big".into(),
            retry_after: None,
        };
        let item = rejected_item(4, &status(413)).unwrap();
        assert_eq!(item.to_string(), "item 4: HTTP 413: too big");
        assert_eq!(rejected_item(4, &status(503)), None);
    }
}
