//! JSON objects given as flags (`--attributes '{"plan":"pro"}'`), or read
//! from standard input with `-`.

use std::io::Read;

use serde_json::{Map, Value};

use crate::error::Error;

/// Parses the JSON object given to `flag`; `-` reads it from `stdin`.
///
/// # Errors
///
/// [`Error::Json`] or [`Error::NotAnObject`] naming `flag`;
/// [`Error::Stdin`] if standard input cannot be read.
pub fn object(
    flag: &'static str,
    text: &str,
    stdin: &mut dyn Read,
) -> Result<Map<String, Value>, Error> {
    let read;
    let text = if text == "-" {
        let mut buffer = String::new();
        stdin
            .read_to_string(&mut buffer)
            .map_err(|source| Error::Stdin { flag, source })?;
        read = buffer;
        &read
    } else {
        text
    };
    match serde_json::from_str(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(Error::NotAnObject {
            flag,
            found: kind(&other),
        }),
        Err(source) => Err(Error::Json { flag, source }),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn objects_parse_from_the_argument_or_from_stdin() {
        let mut no_stdin = std::io::empty();
        let object = object("--data", r#"{"a": 1}"#, &mut no_stdin).unwrap();
        assert_eq!(Value::Object(object), json!({"a": 1}));
        let mut stdin = &b"{\"plan\": \"pro\"}\n"[..];
        let object = super::object("--attributes", "-", &mut stdin).unwrap();
        assert_eq!(Value::Object(object), json!({"plan": "pro"}));
    }

    #[test]
    fn anything_else_is_refused_naming_the_flag() {
        let mut no_stdin = std::io::empty();
        let error = object("--attributes", "{plan: pro}", &mut no_stdin).unwrap_err();
        assert!(
            matches!(
                error,
                Error::Json {
                    flag: "--attributes",
                    ..
                }
            ),
            "{error:?}"
        );
        let error = object("--data", "[1, 2]", &mut no_stdin).unwrap_err();
        assert!(
            matches!(
                error,
                Error::NotAnObject {
                    flag: "--data",
                    found: "an array"
                }
            ),
            "{error:?}"
        );
        let error = object("--data", "-", &mut no_stdin).unwrap_err();
        assert!(
            matches!(error, Error::Json { flag: "--data", .. }),
            "{error:?}"
        );
    }
}
