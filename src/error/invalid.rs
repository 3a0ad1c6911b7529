//! [`Invalid`]: input refused before it was sent, and Customer.io's size
//! limits it names. The checks themselves live with the client
//! (`client::validate`); this file knows only what breaking a limit looks like.

use std::fmt;

/// The most bytes in an identifier (id, email, cio_id) or an attribute name.
pub const MAX_IDENTIFIER_BYTES: usize = 150;
/// The most bytes in one attribute value (strings by length, other values as JSON).
pub const MAX_ATTRIBUTE_VALUE_BYTES: usize = 1_000;
/// The most attributes in one call.
pub const MAX_ATTRIBUTES: usize = 300;
/// The most bytes in an event name.
pub const MAX_EVENT_NAME_BYTES: usize = 100;
/// The most bytes in an event's data, as JSON.
pub const MAX_EVENT_DATA_BYTES: usize = 100_000;
/// The most bytes in one `/api/v2/entity` body or one batch item, as JSON.
pub const MAX_ITEM_BYTES: usize = 32 * 1024;
/// A `/api/v2/batch` body must be smaller than this, in bytes.
pub const MAX_BATCH_BYTES: usize = 500 * 1000;

/// Why input was refused before sending. Each names what broke which limit.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Invalid {
    /// An identifier (id, email, cio_id, anonymous id, device id) is empty.
    EmptyIdentifier(&'static str),
    /// An identifier is longer than 150 bytes.
    IdentifierTooLong {
        /// Which identifier.
        kind: &'static str,
        /// Its length in bytes.
        bytes: usize,
    },
    /// More than 300 attributes in one call.
    TooManyAttributes(usize),
    /// An attribute name is empty or longer than 150 bytes.
    AttributeName {
        /// The name (cut to 150 bytes).
        name: String,
        /// Its length in bytes.
        bytes: usize,
    },
    /// An attribute value is longer than 1000 bytes.
    AttributeValueTooLong {
        /// The attribute's name.
        name: String,
        /// The value's length in bytes.
        bytes: usize,
    },
    /// Attributes or data must be a JSON object.
    NotAnObject(&'static str),
    /// An event has no name.
    MissingEventName,
    /// An event name is longer than 100 bytes.
    EventNameTooLong(usize),
    /// An event's data is larger than 100,000 bytes.
    EventDataTooLarge(usize),
    /// An anonymous event has no `anonymous_id`.
    MissingAnonymousId,
    /// One `/api/v2/entity` body or batch item is larger than 32 KB.
    ItemTooLarge(usize),
    /// A v2 operation is malformed: unknown type or action, no identifiers, ...
    Operation(String),
    /// A Pipelines call is malformed: unknown type, no `userId` or
    /// `anonymousId`, no `event` for a track call, ...
    Call(String),
    /// The value could not be turned into JSON.
    Json(String),
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Invalid::EmptyIdentifier(kind) => write!(f, "the {kind} is empty"),
            Invalid::IdentifierTooLong { kind, bytes } => {
                write!(
                    f,
                    "the {kind} is {bytes} bytes; the limit is {MAX_IDENTIFIER_BYTES}"
                )
            }
            Invalid::TooManyAttributes(count) => {
                write!(
                    f,
                    "{count} attributes in one call; the limit is {MAX_ATTRIBUTES}"
                )
            }
            Invalid::AttributeName { bytes: 0, .. } => f.write_str("an attribute name is empty"),
            Invalid::AttributeName { name, bytes } => write!(
                f,
                "attribute name {name:?}... is {bytes} bytes; the limit is {MAX_IDENTIFIER_BYTES}"
            ),
            Invalid::AttributeValueTooLong { name, bytes } => write!(
                f,
                "attribute {name:?} is {bytes} bytes; the limit is {MAX_ATTRIBUTE_VALUE_BYTES}"
            ),
            Invalid::NotAnObject(what) => write!(f, "{what} must be a JSON object"),
            Invalid::MissingEventName => f.write_str("the event has no name"),
            Invalid::EventNameTooLong(bytes) => {
                write!(
                    f,
                    "the event name is {bytes} bytes; the limit is {MAX_EVENT_NAME_BYTES}"
                )
            }
            Invalid::EventDataTooLarge(bytes) => {
                write!(
                    f,
                    "the event data is {bytes} bytes; the limit is {MAX_EVENT_DATA_BYTES}"
                )
            }
            Invalid::MissingAnonymousId => f.write_str("an anonymous event needs an anonymous_id"),
            Invalid::ItemTooLarge(bytes) => {
                write!(
                    f,
                    "the item is {bytes} bytes; the limit is {MAX_ITEM_BYTES}"
                )
            }
            Invalid::Operation(reason) => write!(f, "invalid operation: {reason}"),
            Invalid::Call(reason) => write!(f, "invalid Pipelines call: {reason}"),
            Invalid::Json(reason) => write!(f, "not valid JSON: {reason}"),
        }
    }
}

impl std::error::Error for Invalid {}
