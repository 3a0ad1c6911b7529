//! Pipelines API calls (`/v1/identify`, `track`, `page`, `screen`, `group`,
//! `alias`, `batch`), checked as the library checks them. Customer.io is
//! permissive unless a call carries `X-Strict-Mode: 1`: an invalid call is
//! answered 200 and dropped; so is it here, and with the header it is 400.

use cio_emulator::http::Response;
use cio_ratelimit::PipelinesCall;
use serde_json::{Map, Value, json};

use crate::relay::call_body::{batch_fits, object};
use crate::relay::spool::Stream;
use crate::relay::spool_writer::{PLACEHOLDER_ID, Spooled};

/// Whether a path is a Pipelines call the relay takes.
pub fn is_pipelines(path: &str) -> bool {
    matches!(
        path.trim_end_matches('/'),
        "/v1/identify"
            | "/v1/track"
            | "/v1/page"
            | "/v1/screen"
            | "/v1/group"
            | "/v1/alias"
            | "/v1/batch"
    )
}

/// An error answer in the Pipelines shape.
pub fn error(status: u16, reason: &str, message: &str) -> Response {
    Response::json(
        status,
        &json!({ "errors": [{ "reason": reason, "message": message }] }),
    )
}

/// Checks a Pipelines request; `Ok` holds the calls to keep (none for an
/// invalid call outside strict mode), `Err` the answer to give instead.
pub fn check(
    method: &str,
    path: &str,
    body: &[u8],
    strict: bool,
) -> Result<Vec<Spooled>, Response> {
    let kind = path.trim_end_matches('/').trim_start_matches("/v1/");
    if method != "POST" {
        return Err(error(
            404,
            "not_found",
            &format!("no route for {method} {path}"),
        ));
    }
    let checked = match kind {
        "batch" => batch(body),
        kind => object(body, false).and_then(|mut call| {
            call.insert("type".into(), kind.into());
            self::call(call).map(|call| vec![call])
        }),
    };
    match checked {
        Ok(calls) => Ok(calls),
        Err(message) if strict => Err(error(400, "invalid", &message)),
        Err(message) => {
            log::debug!("dropped an invalid Pipelines call, as Customer.io would: {message}");
            Ok(Vec::new())
        }
    }
}

fn batch(body: &[u8]) -> Result<Vec<Spooled>, String> {
    batch_fits(body)?;
    let Some(Value::Array(calls)) = object(body, false)?.remove("batch") else {
        return Err("the body needs \"batch\": an array of calls".into());
    };
    calls
        .into_iter()
        .map(|call| match call {
            Value::Object(call) => self::call(call),
            _ => Err("a call must be a JSON object".into()),
        })
        .collect()
}

/// One call with its `type`; one without a `messageId` gets one from its
/// place in the spool.
fn call(mut call: Map<String, Value>) -> Result<Spooled, String> {
    let lacks_id = matches!(call.get("messageId"), None | Some(Value::Null));
    if lacks_id {
        call.insert("messageId".into(), PLACEHOLDER_ID.into());
    }
    let checked =
        PipelinesCall::from_json(Value::Object(call)).map_err(|error| error.to_string())?;
    let Value::Object(body) = checked.to_json() else {
        unreachable!("a Pipelines call is an object");
    };
    Ok(Spooled::from_json(
        Stream::Pipelines,
        body,
        lacks_id.then_some("messageId"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_take_their_type_from_the_path_and_bad_ones_follow_strict_mode() {
        let kept = check(
            "POST",
            "/v1/track",
            br#"{"userId":"1","event":"paid"}"#,
            true,
        )
        .unwrap();
        let line: Value = serde_json::from_slice(&kept[0].line).unwrap();
        assert_eq!(line["type"], "track");
        assert_eq!(line.get("messageId"), None);
        assert_eq!(kept[0].id_field, Some("messageId"));
        let bad = br#"{"userId":"1"}"#;
        assert_eq!(
            check("POST", "/v1/track", bad, true).unwrap_err().status,
            400
        );
        assert!(check("POST", "/v1/track", bad, false).unwrap().is_empty());
        assert!(is_pipelines("/v1/batch") && !is_pipelines("/v1/send/email"));
    }
}
