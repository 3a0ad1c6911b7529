//! Reading an import's input: NDJSON lines, each turned into an entry (a
//! Track operation or a Pipelines call) or a reason why not.

use std::io::{self, BufRead};

use serde_json::Value;

use crate::client::event_id::EventId;
use crate::client::operation::Operation;
use crate::client::pipelines_call::PipelinesCall;
use crate::client::validate::Invalid;
use crate::import::api::ImportApi;
use crate::import::content_digest::ContentDigest;
use crate::import::entry::Entry;
use crate::import::line_ids::LineIds;

/// Lines longer than this are dead-lettered unread past this point: no item
/// can be over 32 KB anyway, and memory stays bounded.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// The import id of an import not given one: its events' ids (see
/// [`LineIds`]) are then the same whatever the input is called, a file or
/// standard input.
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
/// the line's own bytes and the number of identical lines before it (see
/// [`LineIds`]), so that a retried, resumed, repeated, fixed or extended
/// import repeats the same ids; the rest of each line goes out byte for byte.
///
/// The digest of the input, kept for the checkpoint, is of its lines with
/// `\n` ends whatever ends they had (`\r\n`, or none at the end of the input):
/// a last line without its end, completed later, is the line it was.
pub(crate) struct NdjsonReader<R> {
    input: R,
    buffer: Vec<u8>,
    line: u64,
    skip_to: u64,
    ids: LineIds,
    api: ImportApi,
    digest: ContentDigest,
}

impl<R: BufRead> NdjsonReader<R> {
    /// Reads `input`, skipping the lines up to `skip_to` (read only for the
    /// ids they were given), with event ids in `import_id`'s namespace.
    pub(crate) fn new(input: R, import_id: String, skip_to: u64) -> NdjsonReader<R> {
        NdjsonReader {
            input,
            buffer: Vec::with_capacity(4096),
            line: 0,
            skip_to,
            ids: LineIds::new(import_id),
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
        let buffer = std::mem::take(&mut self.buffer);
        let text = trim(&buffer);
        self.digest.update(text);
        self.digest.update(b"\n");
        // Editors on Windows start a UTF-8 file with a byte order mark.
        let text = match line {
            1 => text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text),
            _ => text,
        };
        let blank = text.iter().all(u8::is_ascii_whitespace);
        let item = if line <= self.skip_to {
            // Done by an earlier run, but the ids it gave count for the
            // lines after.
            if complete && !blank {
                let _ = self.entry(text);
            }
            Item::Skipped
        } else if !complete {
            Item::Bad {
                reason: format!("the line is longer than {MAX_LINE_BYTES} bytes"),
                original: text.to_vec(),
            }
        } else if blank {
            Item::Blank
        } else {
            match self.entry(text) {
                Ok(entry) => Item::Entry(entry),
                Err(reason) => Item::Bad {
                    reason,
                    original: text.to_vec(),
                },
            }
        };
        self.buffer = buffer;
        Ok(Some(Record {
            line,
            bytes_read: read as u64,
            digest: self.digest,
            item,
        }))
    }

    /// A line as an entry for the import's API, or why it is not one; a
    /// missing event id or `messageId` is the line's own (see [`LineIds`]).
    fn entry(&mut self, text: &[u8]) -> Result<Entry, String> {
        let ids = &mut self.ids;
        match self.api {
            ImportApi::Track => {
                let value: Value =
                    serde_json::from_slice(text).map_err(|err| format!("invalid JSON: {err}"))?;
                let event_id = || {
                    let key = ids.key(text);
                    ids.given(key);
                    ids.id(key)
                };
                Operation::from_text(value, text, event_id)
                    .map(Entry::Track)
                    .map_err(|invalid| invalid.to_string())
            }
            ImportApi::Pipelines => {
                let key = ids.key(text);
                let key_text = ids.key_text(key);
                match PipelinesCall::from_line(text, &key_text) {
                    Ok(call) => {
                        // Only a call that had no `messageId` of its own was given one.
                        if call.message_id() == EventId::from_key(&key_text).as_str() {
                            ids.given(key);
                        }
                        Ok(Entry::Pipelines(call))
                    }
                    // Worded as for Track lines, so one reason reads the same in both.
                    Err(Invalid::Json(reason)) => Err(format!("invalid JSON: {reason}")),
                    Err(invalid) => Err(invalid.to_string()),
                }
            }
        }
    }
}

/// Reads one line (with its end) into `buffer`, keeping at most
/// `MAX_LINE_BYTES`, and adds the bytes it does not keep to `digest`:
/// returns the bytes consumed and whether the whole line fit.
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
        let kept = part.len().min(room);
        buffer.extend_from_slice(&part[..kept]);
        digest.update(&part[kept..]);
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

#[cfg(test)]
mod tests {
    use std::io::BufReader;

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
        let ids = LineIds::new("import".into());
        let id = ids.id(ids.key(event.as_bytes())).to_string();
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
        let ids = LineIds::new("import".into());
        let key = ids.key(br#"{"type":"identify","userId":"1"}"#);
        assert_eq!(message_id(&items[0]), ids.id(key).as_str());
        assert_eq!(message_id(&items[1]), "mine", "a line's own id is kept");
        let reason = |item: &Item| match item {
            Item::Bad { reason, .. } => reason.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason(&items[2]).starts_with("invalid JSON"), "{items:?}");
        assert!(reason(&items[3]).contains("\"event\""), "{items:?}");
    }

    /// The id each line of `input` was given, skipping through `skip_to`.
    fn event_ids(input: &str, skip_to: u64) -> Vec<Option<String>> {
        records(input, skip_to)
            .into_iter()
            .map(|record| match record.item {
                Item::Entry(Entry::Track(operation)) => {
                    let value: Value = serde_json::from_slice(&operation.to_bytes()).unwrap();
                    value["id"].as_str().map(str::to_owned)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_event_id_follows_its_line_and_its_twins_before_it_even_skipped_ones() {
        let twin = r#"{"type":"person","action":"event","identifiers":{"id":"1"},"name":"x"}"#;
        let other = r#"{"type":"person","action":"event","identifiers":{"id":"2"},"name":"y"}"#;
        let identify = r#"{"type":"person","action":"identify","identifiers":{"id":"1"}}"#;
        let all = event_ids(&format!("{twin}\n{identify}\n{twin}\r\n{other}\n{twin}"), 0);
        assert_ne!(all[0], all[2]);
        assert_ne!(all[2], all[4]);
        assert_eq!(all[1], None);
        // Another line before them changes none.
        let shifted = event_ids(&format!("{other}\n{twin}\n{twin}\n{twin}\n"), 0);
        assert_eq!(
            shifted[1..],
            [all[0].clone(), all[2].clone(), all[4].clone()]
        );
        assert_eq!(shifted[0], all[3]);
        // Lines skipped on resume still count the twins after them.
        let resumed = event_ids(&format!("{twin}\n{identify}\n{twin}\n"), 2);
        assert_eq!(resumed[2], all[2]);
    }

    #[test]
    fn the_input_digest_ignores_how_lines_end() {
        let digest = |input: &str| records(input, 0).last().unwrap().digest;
        assert_eq!(digest("a\nb\n"), digest("a\r\nb"));
        assert_eq!(digest("a\nb"), digest("a\nb\n"));
        assert_ne!(digest("a\nb\n"), digest("a\nbc\n"));
        let mut plain = ContentDigest::default();
        plain.update(b"a\nb\n");
        assert_eq!(digest("a\nb\n"), plain, "as before for \\n ends");
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
