//! A small test client for the emulator: real HTTP over ureq, 4xx/5xx as answers, not errors.

// Each test file uses its own subset of this client.
#![allow(dead_code)]

use std::time::Duration;

use cio_emulator::{
    DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Emulator,
};
use serde_json::Value;
use ureq::http;

/// One answer from the emulator.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<String>,
    pub location: Option<String>,
    pub text: String,
    /// The body parsed as JSON, or `Value::Null` when it is not JSON.
    pub json: Value,
}

/// A keep-alive client for one emulator.
pub struct Client {
    agent: ureq::Agent,
    base: String,
}

impl Client {
    pub fn new(emulator: &Emulator) -> Self {
        Client::with_url(&emulator.url())
    }

    pub fn with_url(url: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Client {
            agent,
            base: url.to_owned(),
        }
    }

    /// A Track API request with the default credentials.
    pub fn track(&self, method: &str, path: &str, body: &str) -> Answer {
        let auth = basic(DEFAULT_SITE_ID, DEFAULT_API_KEY);
        self.send(method, path, Some(&auth), body)
            .expect("transport error")
    }

    /// An App API request with the default key.
    pub fn app(&self, method: &str, path: &str, body: &str) -> Answer {
        let auth = format!("Bearer {DEFAULT_APP_KEY}");
        self.send(method, path, Some(&auth), body)
            .expect("transport error")
    }

    /// A Pipelines API request with the default key, in strict mode or not.
    pub fn pipelines(&self, path: &str, body: &str, strict: bool) -> Answer {
        let auth = basic(DEFAULT_PIPELINES_KEY, "");
        let mut headers = vec![("Authorization", auth.as_str())];
        if strict {
            headers.push(("X-Strict-Mode", "1"));
        }
        self.send_with("POST", path, &headers, body)
            .expect("transport error")
    }

    /// Any request; `Err` on a transport error (e.g. a dropped connection).
    pub fn send(
        &self,
        method: &str,
        path: &str,
        authorization: Option<&str>,
        body: &str,
    ) -> Result<Answer, ureq::Error> {
        let headers: Vec<(&str, &str)> = authorization
            .map(|authorization| ("Authorization", authorization))
            .into_iter()
            .collect();
        self.send_with(method, path, &headers, body)
    }

    /// Any request with these headers.
    pub fn send_with(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Answer, ureq::Error> {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(body.to_owned()).expect("valid request");
        let mut response = self.agent.run(request)?;
        let retry_after = response
            .headers()
            .get("retry-after")
            .map(|value| value.to_str().unwrap().to_owned());
        let location = response
            .headers()
            .get("location")
            .map(|value| value.to_str().unwrap().to_owned());
        let text = response.body_mut().read_to_string()?;
        Ok(Answer {
            status: response.status().as_u16(),
            retry_after,
            location,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        })
    }
}

/// `Basic base64(user:password)`.
pub fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let bits = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(bits >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}
