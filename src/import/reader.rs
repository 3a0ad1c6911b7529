//! Reading an import's input: NDJSON lines, each turned into an entry (a
//! Track operation or a Pipelines call) or a reason why not.

use std::fs::File;
use std::io::{self, BufRead, Read};

use serde_json::Value;

use crate::client::event_id::EventId;
use crate::client::operation::Operation;
use crate::client::pipelines_call::PipelinesCall;
use crate::client::validate::Invalid;
use crate::import::api::ImportApi;
use crate::import::content_digest::ContentDigest;
use crate::import::entry::Entry;

/// Lines longer than this are dead-lettered unread past this point: no item
/// can be over 32 KB anyway, and memory stays bounded.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// The import id under which events without an `id` get one derived from
/// the input's digest through their line (see [`ContentDigest`]) rather
/// than from the import id and their line number: the default for input
/// that is not a file, whose content cannot be looked at before it is read.
pub(crate) const IDS_BY_CONTENT: &str = "by-content";

/// One line of the input, as the importer sees it.
#[derive(Debug)]
pub(crate) struct Record {
    /// The line's number, from 1.
    pub(crate) line: u64,
    /// Bytes read for it, its end of line included.
    pub(crate) bytes_read: u64,
    /// The digest of the input through this line.
    pub(crate) digest: ContentDigest,
    pub(crate) item: Item,
}

/// What a line holds.
#[derive(Debug)]
pub(crate) enum Item {
    /// Done by an earlier run (before the checkpoint): not even parsed.
    Skipped,
    /// Only white space.
    Blank,
    /// A valid entry, to send.
    Entry(Entry),
    /// A line that cannot be sent: why, and the line as read.
    Bad { reason: String, original: Vec<u8> },
}

/// Reads NDJSON v2 operations (or Pipelines calls), one per line, in
/// constant memory.
///
/// Events without an `id` (calls without a `messageId`) get one derived from
/// the import's id and the line number (or, under [`IDS_BY_CONTENT`], from
/// the input read so far), so that a retried, resumed or repeated import
/// repeats the same ids; the rest of each line goes out byte for byte.
pub(crate) struct NdjsonReader<R> {
    input: R,
    buffer: Vec<u8>,
    line: u64,
    skip_to: u64,
    import_id: String,
    api: ImportApi,
    digest: ContentDigest,
}

impl<R: BufRead> NdjsonReader<R> {
    /// Reads `input`, skipping (unparsed) the lines up to `skip_to`.
    pub(crate) fn new(input: R, import_id: String, skip_to: u64) -> NdjsonReader<R> {
        NdjsonReader {
            input,
            buffer: Vec::with_capacity(4096),
            line: 0,
            skip_to,
            import_id,
            api: ImportApi::Track,
            digest: ContentDigest::default(),
        }
    }

    /// Reads the lines as entries for `api` (Track operations unless told).
    pub(crate) fn for_api(mut self, api: ImportApi) -> NdjsonReader<R> {
        self.api = api;
        self
    }

    /// The next line, or `None` at the end of the input.
    pub(crate) fn next_record(&mut self) -> io::Result<Option<Record>> {
        self.buffer.clear();
        let (read, complete) = read_line(&mut self.input, &mut self.buffer, &mut self.digest)?;
        if read == 0 {
            return Ok(None);
        }
        self.line += 1;
        let line = self.line;
        let text = trim(&self.buffer);
        // Editors on Windows start a UTF-8 file with a byte order mark.
        let text = match line {
            1 => text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text),
            _ => text,
        };
        let item = if line <= self.skip_to {
            Item::Skipped
        } else if !complete {
            Item::Bad {
                reason: format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                original: text.to_vec(),
            }
        } else if text.iter().all(u8::is_ascii_whitespace) {
            Item::Blank
        } else {
            match self.entry(line, text) {
                Ok(entry) => Item::Entry(entry),
                Err(reason) => Item::Bad {
                    reason,
                    original: text.to_vec(),
                },
            }
        };
        Ok(Some(Record {
            line,
            bytes_read: read as u64,
            digest: self.digest,
            item,
        }))
    }

    /// A line as an entry for the import's API, or why it is not one. The
    /// key `{import id}:{line}` (or, under [`IDS_BY_CONTENT`], the digest of
    /// the input so far) gives a missing event id or `messageId`.
    fn entry(&self, line: u64, text: &[u8]) -> Result<Entry, String> {
        let key = || match self.import_id.as_str() {
            IDS_BY_CONTENT => format!("content-{}", self.digest),
            import_id => format!("{import_id}:{line}"),
        };
        match self.api {
            ImportApi::Track => {
                let value: Value =
                    serde_json::from_slice(text).map_err(|err| format!("invalid JSON: {err}"))?;
                let event_id = || EventId::from_key(&key());
                Operation::from_text(value, text, event_id)
                    .map(Entry::Track)
                    .map_err(|invalid| invalid.to_string())
            }
            ImportApi::Pipelines => match PipelinesCall::from_line(text, &key()) {
                Ok(call) => Ok(Entry::Pipelines(call)),
                // Worded as for Track lines, so one reason reads the same in both.
                Err(Invalid::Json(reason)) => Err(format!("invalid JSON: {reason}")),
                Err(invalid) => Err(invalid.to_string()),
            },
        }
    }
}

/// Reads one line (without its end) into `buffer`, keeping at most
/// `MAX_LINE_BYTES`, and adds every byte consumed to `digest`: returns the
/// bytes consumed and whether the whole line fit.
fn read_line(
    input: &mut impl BufRead,
    buffer: &mut Vec<u8>,
    digest: &mut ContentDigest,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut complete = true;
    loop {
        let available = match input.fill_buf() {
            Ok(available) => available,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if available.is_empty() {
            return Ok((consumed, complete));
        }
        let (part, found) = match available.iter().position(|&b| b == b'\n') {
            Some(end) => (&available[..=end], true),
            None => (available, false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buffer.len());
        if part.len() > room {
            complete = false;
        }
        buffer.extend_from_slice(&part[..part.len().min(room)]);
        digest.update(part);
        let used = part.len();
        input.consume(used);
        consumed += used;
        if found {
            return Ok((consumed, complete));
        }
    }
}

/// The line without its end of line (`\n` or `\r\n`).
fn trim(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

/// An import id from a file's size and first 64 KB: the same file gives the
/// same id (so a re-import repeats event ids), a changed one another.
pub(crate) fn content_id(file: &mut File, size: u64) -> io::Result<String> {
    use std::io::{Seek, SeekFrom};
    let mut head = Vec::with_capacity(1 << 16);
    file.by_ref().take(1 << 16).read_to_end(&mut head)?;
    file.seek(SeekFrom::Start(0))?;
    let mut key = size.to_string().into_bytes();
    key.push(b':');
    key.extend_from_slice(&head);
    Ok(format!(
        "file-{}",
        EventId::from_key(&String::from_utf8_lossy(&key))
    ))
}

#[cfg(test)]
mod tests {
    use std::io::BufReader;
    use std::path::Path;

    use super::*;

    #[test]
    fn lines_are_read_whole_or_cut_at_the_limit() {
        let long = "x".repeat(MAX_LINE_BYTES + 10);
        let input = format!("a\r\nb\n{long}\nlast");
        let mut reader = BufReader::with_capacity(7, input.as_bytes());
        let mut lines = Vec::new();
        loop {
            let mut buffer = Vec::new();
            let (read, complete) =
                read_line(&mut reader, &mut buffer, &mut ContentDigest::default()).unwrap();
            if read == 0 {
                break;
            }
            lines.push((trim(&buffer).len(), complete, read));
        }
        assert_eq!(
            lines,
            vec![
                (1, true, 3),
                (1, true, 2),
                (MAX_LINE_BYTES, false, MAX_LINE_BYTES + 11),
                (4, true, 4)
            ]
        );
    }

    #[test]
    fn content_ids_follow_the_content() {
        let dir = std::env::temp_dir().join(format!("cio-import-id-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.ndjson");
        std::fs::write(&path, "one\n").unwrap();
        let id = |path: &Path| {
            content_id(
                &mut File::open(path).unwrap(),
                std::fs::metadata(path).unwrap().len(),
            )
        };
        let first = id(&path).unwrap();
        assert_eq!(first, id(&path).unwrap());
        std::fs::write(&path, "two\n").unwrap();
        assert_ne!(first, id(&path).unwrap());
    }

    fn records(input: &str, skip_to: u64) -> Vec<Record> {
        let mut reader = NdjsonReader::new(input.as_bytes(), "import".into(), skip_to);
        std::iter::from_fn(|| reader.next_record().unwrap()).collect()
    }

    #[test]
    fn a_byte_order_mark_before_the_first_line_is_dropped() {
        let line = r#"{"type":"person","action":"identify","identifiers":{"id":"a"}}"#;
        let input = format!("\u{feff}{line}\n{line}\n");
        let read = records(&input, 0);
        assert_eq!(read.len(), 2);
        for record in read {
            match record.item {
                Item::Entry(entry) => assert_eq!(&*entry.as_bytes(), line.as_bytes()),
                other => panic!("line {}: {other:?}", record.line),
            }
        }
        let inside = format!("{line}\n\u{feff}{line}\n");
        assert!(
            matches!(records(&inside, 0)[1].item, Item::Bad { .. }),
            "only the first line's is a byte order mark"
        );
    }

    #[test]
    fn lines_go_out_byte_for_byte_with_only_a_missing_event_id_added() {
        let identify = r#"{"type":"person","action":"identify","identifiers":{"id":12345678901234567890123},"attributes":{"n":1.50}}"#;
        let event =
            r#"{ "type":"person", "action":"event", "identifiers":{"id":"7"}, "name":"x" }"#;
        let input = format!("{identify}\n{event}\r\n");
        let sent: Vec<Vec<u8>> = records(&input, 0)
            .into_iter()
            .map(|record| match record.item {
                Item::Entry(Entry::Track(operation)) => operation.to_bytes(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(sent[0], identify.as_bytes(), "every digit kept");
        let id = EventId::from_key("import:2").to_string();
        let expected = format!(
            r#"{{ "type":"person", "action":"event", "identifiers":{{"id":"7"}}, "name":"x","id":"{id}"}}"#
        );
        assert_eq!(String::from_utf8(sent[1].clone()).unwrap(), expected);
    }

    #[test]
    fn pipelines_lines_get_the_message_id_of_their_line_and_bad_ones_a_reason() {
        let input = concat!(
            r#"{"type":"identify","userId":"1"}"#,
            "\n",
            r#"{"type":"track","userId":"1","event":"e","messageId":"mine"}"#,
            "\n{broken\n",
            r#"{"type":"track","userId":"1"}"#,
            "\n",
        );
        let mut reader =
            NdjsonReader::new(input.as_bytes(), "import".into(), 0).for_api(ImportApi::Pipelines);
        let items: Vec<Item> = std::iter::from_fn(|| reader.next_record().unwrap())
            .map(|record| record.item)
            .collect();
        let message_id = |item: &Item| match item {
            Item::Entry(Entry::Pipelines(call)) => call.message_id().to_owned(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message_id(&items[0]),
            EventId::from_key("import:1").as_str()
        );
        assert_eq!(message_id(&items[1]), "mine", "a line's own id is kept");
        let reason = |item: &Item| match item {
            Item::Bad { reason, .. } => reason.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason(&items[2]).starts_with("invalid JSON"), "{items:?}");
        assert!(reason(&items[3]).contains("\"event\""), "{items:?}");
    }

    #[test]
    fn skipped_blank_and_bad_lines_say_what_they_are() {
        let input = "{\"skipped\": true}\n  \nnot json\n[1]\n";
        let items: Vec<String> = records(input, 1)
            .into_iter()
            .map(|record| match record.item {
                Item::Skipped => "skipped".into(),
                Item::Blank => "blank".into(),
                Item::Entry(_) => "entry".into(),
                Item::Bad { reason, original } => {
                    format!("{reason} / {}", String::from_utf8_lossy(&original))
                }
            })
            .collect();
        assert_eq!(items[..2], ["skipped", "blank"]);
        assert!(items[2].starts_with("invalid JSON") && items[2].ends_with("/ not json"));
        assert!(items[3].contains("JSON object"), "{}", items[3]);
    }
}
