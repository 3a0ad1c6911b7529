//! Credentials: HTTP Basic `site_id:api_key` on the Track API, `Bearer <app_key>` on the App
//! API, HTTP Basic `pipelines_key:` (a blank password) on the Pipelines API.

/// The credentials an emulator accepts.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) site_id: String,
    pub(crate) api_key: String,
    pub(crate) app_key: String,
    pub(crate) pipelines_key: String,
}

impl Credentials {
    /// Whether an `Authorization` header carries Basic `site_id:api_key`.
    pub(crate) fn track_allows(&self, authorization: Option<&str>) -> bool {
        basic_is(authorization, &self.site_id, &self.api_key)
    }

    /// Whether an `Authorization` header carries Basic `pipelines_key:`, the password blank.
    pub(crate) fn pipelines_allows(&self, authorization: Option<&str>) -> bool {
        basic_is(authorization, &self.pipelines_key, "")
    }

    /// Whether an `Authorization` header carries `Bearer <app_key>`.
    pub(crate) fn app_allows(&self, authorization: Option<&str>) -> bool {
        authorization
            .and_then(|value| scheme_value(value, "bearer"))
            .is_some_and(|token| token == self.app_key)
    }
}

/// Whether an `Authorization` header is HTTP Basic `user:password`.
pub(crate) fn basic_is(authorization: Option<&str>, user: &str, password: &str) -> bool {
    let Some(token) = authorization.and_then(|value| scheme_value(value, "basic")) else {
        return false;
    };
    let Some(decoded) = decode_base64(token) else {
        return false;
    };
    decoded.len() == user.len() + 1 + password.len()
        && decoded.starts_with(user.as_bytes())
        && decoded[user.len()] == b':'
        && decoded.ends_with(password.as_bytes())
}

/// The credentials after `scheme` (case-insensitive), if the header uses that scheme.
fn scheme_value<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (given, rest) = header.trim().split_once(' ')?;
    given
        .eq_ignore_ascii_case(scheme)
        .then_some(rest.trim())
        .filter(|token| !token.is_empty())
}

/// Standard base64 with optional padding, as HTTP Basic auth uses it. Hand-written because
/// it is twenty lines and the only base64 this crate needs.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        Some(match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    for chunk in text.chunks(4) {
        let mut bits = 0u32;
        for (i, &byte) in chunk.iter().enumerate() {
            bits |= sextet(byte)? << (18 - 6 * i);
        }
        let bytes = bits.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials() -> Credentials {
        Credentials {
            site_id: "emulator-site-id".into(),
            api_key: "emulator-api-key".into(),
            app_key: "emulator-app-key".into(),
            pipelines_key: "wk".into(),
        }
    }

    #[test]
    fn pipelines_auth_is_the_key_and_a_blank_password() {
        let c = credentials();
        // printf 'wk:' | base64
        assert!(c.pipelines_allows(Some("Basic d2s6")));
        // printf 'wk' | base64: no colon
        assert!(!c.pipelines_allows(Some("Basic d2s=")));
        // printf 'wk:x' | base64: a password
        assert!(!c.pipelines_allows(Some("Basic d2s6eA==")));
        assert!(!c.pipelines_allows(Some("Bearer wk")));
        assert!(!c.pipelines_allows(None));
        assert!(!c.track_allows(Some("Basic d2s6")));
    }

    #[test]
    fn decodes_base64_with_and_without_padding() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("aGVsbG8").unwrap(), b"hello");
        assert_eq!(decode_base64("aGk=").unwrap(), b"hi");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert!(decode_base64("a").is_none());
        assert!(decode_base64("a*bc").is_none());
    }

    #[test]
    fn basic_auth_needs_both_site_id_and_api_key() {
        let c = credentials();
        // printf 'emulator-site-id:emulator-api-key' | base64
        assert!(c.track_allows(Some("Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5")));
        assert!(c.track_allows(Some("basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5")));
        // printf 'emulator-site-id:wrong' | base64
        assert!(!c.track_allows(Some("Basic ZW11bGF0b3Itc2l0ZS1pZDp3cm9uZw==")));
        assert!(!c.track_allows(Some("Bearer emulator-app-key")));
        assert!(!c.track_allows(Some("Basic")));
        assert!(!c.track_allows(None));
    }

    #[test]
    fn bearer_auth_needs_the_app_key() {
        let c = credentials();
        assert!(c.app_allows(Some("Bearer emulator-app-key")));
        assert!(c.app_allows(Some("bearer  emulator-app-key ")));
        assert!(!c.app_allows(Some("Bearer emulator-api-key")));
        assert!(!c.app_allows(Some("Basic ZW11bGF0b3Itc2l0ZS1pZDplbXVsYXRvci1hcGkta2V5")));
        assert!(!c.app_allows(None));
    }
}
