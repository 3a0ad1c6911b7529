//! An import's dead-letter file, read back.

use std::fs;
use std::path::Path;

use serde::de::DeserializeOwned;

/// Every record of the dead-letter file at `path`, in file order, each read
/// as a `T` (the library's `DeadLetter`, or a `serde_json::Value`); none if
/// there is no file (an import with nothing to dead-letter makes none).
///
/// # Panics
///
/// If the file cannot be read, or a line is not a `T`: a dead-letter file
/// is whole NDJSON lines, always.
pub fn dead_letters<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(error) => panic!("cannot read {}: {error}", path.display()),
    };
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a dead letter ({error}): {line}"))
        })
        .collect()
}

/// The input line number of each record of the dead-letter file at `path`,
/// in file order; none if there is no file.
///
/// # Panics
///
/// As [`dead_letters`] does, and if a record has no `line` number.
pub fn dead_letter_lines(path: &Path) -> Vec<u64> {
    dead_letters::<serde_json::Value>(path)
        .iter()
        .map(|letter| {
            letter["line"]
                .as_u64()
                .unwrap_or_else(|| panic!("a dead letter without a line number: {letter}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{dead_letter_lines, dead_letters};
    use crate::ScratchDir;

    #[test]
    fn no_file_is_no_dead_letters() {
        let dir = ScratchDir::new("no-dead-letters");
        assert!(dead_letters::<serde_json::Value>(&dir.join("none.ndjson")).is_empty());
    }

    #[test]
    fn a_line_cut_short_fails_the_test() {
        let dir = ScratchDir::new("cut-dead-letter");
        let file = dir.join("dead.ndjson");
        std::fs::write(&file, "{\"line\":1}\n{\"line\":2,\"rea").unwrap();
        let failure = std::panic::catch_unwind(|| dead_letter_lines(&file)).unwrap_err();
        let message = failure.downcast_ref::<String>().unwrap();
        assert!(message.starts_with("not a dead letter"), "{message}");
    }
}
