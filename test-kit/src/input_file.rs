//! Input files, written a line at a time.

use std::fmt::Display;
use std::fs;
use std::path::Path;

/// Writes `lines` to `path`, each followed by a newline: an NDJSON input
/// from JSON values, or any other text input from strings.
///
/// # Panics
///
/// If the file cannot be written.
pub fn write_lines<L: Display>(path: &Path, lines: impl IntoIterator<Item = L>) {
    let text: String = lines.into_iter().map(|line| format!("{line}\n")).collect();
    fs::write(path, text)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}
