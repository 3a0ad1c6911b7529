//! `Key`: an API key as the command holds it, never shown.

use std::fmt;

/// An API key. Its `Debug` shows `<redacted>`, and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(String);

impl Key {
    /// A key given on the command line (clap's value parser).
    pub fn parse(text: &str) -> Result<Key, std::convert::Infallible> {
        Ok(Key(text.to_owned()))
    }

    /// A key read from the environment, a file or a built-in default.
    pub(crate) fn from_text(text: impl Into<String>) -> Key {
        Key(text.into())
    }

    /// The key itself, only ever handed to the library's builder.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
