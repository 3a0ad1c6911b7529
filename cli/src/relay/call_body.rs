//! What every relayed call's body must be, Track or Pipelines: a JSON object,
//! and a batch under Customer.io's size limit, the one the library packs to
//! (`cio_ratelimit::client::validate::MAX_BATCH_BYTES`).

use cio_ratelimit::client::validate::MAX_BATCH_BYTES;
use serde_json::{Map, Value};

/// The body as a JSON object; an empty body is `{}` when `empty_ok`.
pub fn object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, String> {
    if empty_ok && body.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("the body must be a JSON object".into()),
        Err(error) => Err(format!("the body is not JSON: {error}")),
    }
}

/// Refuses a batch body as large as Customer.io's limit or larger.
pub fn batch_fits(body: &[u8]) -> Result<(), String> {
    if body.len() >= MAX_BATCH_BYTES {
        return Err(format!(
            "a batch must be under {MAX_BATCH_BYTES} bytes, got {}",
            body.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{"batch":[]}` padded with spaces to `len` bytes.
    fn empty_batch(len: usize) -> Vec<u8> {
        let mut body = br#"{"batch":[]"#.to_vec();
        body.resize(len - 1, b' ');
        body.push(b'}');
        body
    }

    #[test]
    fn a_batch_fits_only_under_the_librarys_limit() {
        assert!(batch_fits(&empty_batch(MAX_BATCH_BYTES - 1)).is_ok());
        let error = batch_fits(&empty_batch(MAX_BATCH_BYTES)).unwrap_err();
        assert!(error.contains(&MAX_BATCH_BYTES.to_string()), "{error}");
    }

    #[test]
    fn a_body_must_be_a_json_object_and_may_be_empty_only_when_allowed() {
        assert_eq!(object(b" ", true).unwrap(), Map::new());
        assert!(object(b" ", false).unwrap_err().contains("not JSON"));
        assert!(object(b"[1]", false).unwrap_err().contains("JSON object"));
        assert_eq!(object(br#"{"a":1}"#, false).unwrap()["a"], 1);
    }
}
