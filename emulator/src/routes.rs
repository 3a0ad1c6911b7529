//! Which API a path belongs to: its credentials, its rate class and the shape of its errors.

use serde_json::json;

use crate::http::Response;
use crate::rate_window::Class;

/// The API a request is addressed to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    /// `/api/v1/...`: Basic auth, errors `{"meta":{"errors":[...]}}`.
    TrackV1,
    /// `/api/v2/...` (and any other `/api/...`): Basic auth, errors `{"errors":[{reason, message}]}`.
    TrackV2,
    /// `/v1/...`: Bearer auth, errors `{"errors":[{detail, status}]}`.
    App,
    /// `/v1/identify`, `/v1/track`, `/v1/page`, `/v1/screen`, `/v1/group`, `/v1/alias` and
    /// `/v1/batch`: Basic auth with the Pipelines key and a blank password, errors
    /// `{"errors":[{reason, field, message}]}`.
    Pipelines,
    /// `/_emulator/...`: no auth, no rate limit, no faults, not counted.
    Admin,
    /// Anything else: 404, no auth, no rate class.
    Unknown,
}

/// Where a request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) api: Api,
    pub(crate) class: Option<Class>,
}

/// Routes by path prefix only; each API's handler matches its own paths and methods.
pub(crate) fn route(method: &str, path: &str) -> Route {
    let (api, class) = if path.starts_with("/_emulator/") {
        (Api::Admin, None)
    } else if path.starts_with("/api/v1/") {
        (Api::TrackV1, Some(Class::Track))
    } else if path.starts_with("/api/") {
        (Api::TrackV2, Some(Class::Track))
    } else if PIPELINES_PATHS.contains(&path) {
        (Api::Pipelines, Some(Class::Pipelines))
    } else if path.starts_with("/v1/send/") {
        (Api::App, Some(Class::Transactional))
    } else if method == "POST" && is_broadcast_trigger(path) {
        (Api::App, Some(Class::Broadcast))
    } else if path.starts_with("/v1/") {
        (Api::App, Some(Class::App))
    } else {
        (Api::Unknown, None)
    };
    Route { api, class }
}

/// The Pipelines API's endpoints; no App API path is among them.
const PIPELINES_PATHS: [&str; 7] = [
    "/v1/identify",
    "/v1/track",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
];

/// `/v1/campaigns/{id}/triggers`
fn is_broadcast_trigger(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["v1", "campaigns", _, "triggers"])
}

impl Api {
    /// An error answer in this API's shape. Track v1 carries both `error` (Customer.io's
    /// documented 400 shape) and `errors` (its other shape), so that a client reading either
    /// finds the message.
    pub(crate) fn error(self, status: u16, reason: &str, message: &str) -> Response {
        let body = match self {
            Api::TrackV1 => json!({ "meta": { "error": message, "errors": [message] } }),
            Api::App => json!({ "errors": [{ "detail": message, "status": status.to_string() }] }),
            Api::TrackV2 | Api::Pipelines | Api::Admin | Api::Unknown => {
                json!({ "errors": [{ "reason": reason, "message": message }] })
            }
        };
        Response::json(status, &body)
    }

    /// The 401 answer, naming the credentials to check.
    pub(crate) fn unauthorized(self) -> Response {
        let message = match self {
            Api::App => "Unauthorized request: use Authorization: Bearer <App API key>",
            Api::Pipelines => {
                "Unauthorized request: use HTTP Basic auth with the source's API key as the user name and a blank password"
            }
            _ => "Unauthorized request: use HTTP Basic auth with your site ID and Track API key",
        };
        self.error(401, "unauthorized", message)
    }

    pub(crate) fn not_found(self, method: &str, path: &str) -> Response {
        self.error(404, "not_found", &format!("no route for {method} {path}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_prefix() {
        let class = |method, path| route(method, path).class;
        assert_eq!(route("PUT", "/api/v1/customers/1").api, Api::TrackV1);
        assert_eq!(route("POST", "/api/v2/batch").api, Api::TrackV2);
        assert_eq!(class("POST", "/api/v2/batch"), Some(Class::Track));
        assert_eq!(class("POST", "/v1/send/email"), Some(Class::Transactional));
        assert_eq!(
            class("POST", "/v1/campaigns/12/triggers"),
            Some(Class::Broadcast)
        );
        assert_eq!(class("GET", "/v1/campaigns/12/triggers"), Some(Class::App));
        assert_eq!(class("GET", "/v1/customers/1/attributes"), Some(Class::App));
        assert_eq!(route("POST", "/v1/track").api, Api::Pipelines);
        assert_eq!(class("POST", "/v1/batch"), Some(Class::Pipelines));
        assert_eq!(route("POST", "/v1/tracks").api, Api::App);
        assert_eq!(route("GET", "/_emulator/snapshot").api, Api::Admin);
        assert_eq!(route("GET", "/").api, Api::Unknown);
    }

    #[test]
    fn error_shapes_follow_each_api() {
        let text = |api: Api| String::from_utf8(api.error(400, "invalid", "bad").body).unwrap();
        assert_eq!(
            text(Api::TrackV1),
            r#"{"meta":{"error":"bad","errors":["bad"]}}"#
        );
        assert_eq!(
            text(Api::TrackV2),
            r#"{"errors":[{"message":"bad","reason":"invalid"}]}"#
        );
        assert_eq!(
            text(Api::App),
            r#"{"errors":[{"detail":"bad","status":"400"}]}"#
        );
    }
}
