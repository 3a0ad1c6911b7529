//! The admin routes: `GET /_emulator/snapshot` and `POST /_emulator/reset`. No auth, no rate
//! limit, no faults, not counted.

use serde_json::json;

use crate::http::Response;
use crate::routes::Api;
use crate::service::Service;

pub(crate) fn handle(service: &Service, method: &str, path: &str) -> Response {
    match (method, path) {
        ("GET", "/_emulator/snapshot") => Response::json(200, &service.snapshot()),
        ("POST", "/_emulator/reset") => {
            service.reset();
            Response::json(200, &json!({}))
        }
        _ => Api::Admin.not_found(method, path),
    }
}
