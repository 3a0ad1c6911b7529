//! Who a call is about: a person's id, email, or Customer.io id.

use std::fmt;

use serde_json::{Map, Value};

use crate::client::validate::{self, Invalid};

/// A person, as Customer.io identifies them.
///
/// `&str` and `String` convert into [`Identifier::Id`], so
/// `client.identify("42", ...)` reads naturally.
///
/// ```
/// use cio_ratelimit::Identifier;
///
/// assert_eq!(Identifier::from("42"), Identifier::Id("42".into()));
/// assert_eq!(Identifier::email("ada@example.com").path_segment(), "ada%40example.com");
/// assert_eq!(Identifier::cio_id("a3f9").path_segment(), "cio_a3f9");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Identifier {
    /// Your id for the person.
    Id(String),
    /// The person's email address.
    Email(String),
    /// Customer.io's own id for the person.
    CioId(String),
}

impl Identifier {
    /// Your id for the person.
    pub fn id(id: impl Into<String>) -> Identifier {
        Identifier::Id(id.into())
    }

    /// The person's email address.
    pub fn email(email: impl Into<String>) -> Identifier {
        Identifier::Email(email.into())
    }

    /// Customer.io's own id for the person.
    pub fn cio_id(cio_id: impl Into<String>) -> Identifier {
        Identifier::CioId(cio_id.into())
    }

    /// The identifier's key in a v2 `identifiers` object: `id`, `email` or `cio_id`.
    pub fn kind(&self) -> &'static str {
        match self {
            Identifier::Id(_) => "id",
            Identifier::Email(_) => "email",
            Identifier::CioId(_) => "cio_id",
        }
    }

    /// The identifier's value.
    pub fn value(&self) -> &str {
        match self {
            Identifier::Id(value) | Identifier::Email(value) | Identifier::CioId(value) => value,
        }
    }

    /// The identifier as a Track v1 URL path segment, percent-encoded; a
    /// Customer.io id is written `cio_<id>`.
    pub fn path_segment(&self) -> String {
        match self {
            Identifier::CioId(value) => format!("cio_{}", percent_encode(value)),
            other => percent_encode(other.value()),
        }
    }

    /// The identifier as a v2 `identifiers` object, e.g. `{"email": "..."}`.
    pub fn to_json(&self) -> Value {
        let mut object = Map::new();
        object.insert(
            self.kind().to_owned(),
            Value::String(self.value().to_owned()),
        );
        Value::Object(object)
    }

    pub(crate) fn validate(&self) -> Result<(), Invalid> {
        validate::identifier(self.kind(), self.value())
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.kind(), self.value())
    }
}

impl From<&str> for Identifier {
    fn from(id: &str) -> Identifier {
        Identifier::Id(id.to_owned())
    }
}

impl From<String> for Identifier {
    fn from(id: String) -> Identifier {
        Identifier::Id(id)
    }
}

impl From<&Identifier> for Identifier {
    fn from(identifier: &Identifier) -> Identifier {
        identifier.clone()
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(
            Identifier::id("a b/c?d#e%").path_segment(),
            "a%20b%2Fc%3Fd%23e%25"
        );
        assert_eq!(Identifier::email("a+b@x.io").path_segment(), "a%2Bb%40x.io");
        assert_eq!(Identifier::id("ü").path_segment(), "%C3%BC");
        assert_eq!(
            Identifier::cio_id("03000001").path_segment(),
            "cio_03000001"
        );
    }

    #[test]
    fn v2_identifiers_name_their_kind() {
        assert_eq!(
            Identifier::email("a@b.c").to_json(),
            serde_json::json!({"email": "a@b.c"})
        );
        assert_eq!(
            Identifier::cio_id("x").to_json(),
            serde_json::json!({"cio_id": "x"})
        );
    }
}
