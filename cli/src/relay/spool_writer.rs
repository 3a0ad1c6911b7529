//! The spool's one writer: callers hand it their checked calls and wait;
//! it appends everything that came while the last fsync ran in one write
//! and one fsync, then answers them all. Many concurrent callers share one
//! fsync, and none is answered before its call is on disk.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use cio_ratelimit::client::EventId;
use serde_json::{Map, Value};

use crate::relay::spool::{Spool, Stream};

/// Appends waiting at most for the writer; past this, callers wait to hand theirs over.
const QUEUE: usize = 4096;
/// The most appends one write takes.
const MAX_GROUP: usize = 4096;
/// How often an idle writer looks at the stop flag.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Stands for the id the writer fills in from a call's place in the spool
/// (an event's `id`, a Pipelines call's `messageId`) while the call is
/// checked: as long as a real one, so that the size checks hold.
pub const PLACEHOLDER_ID: &str = "00000000000000000000000000";

/// One checked call (or one item of a batch) to keep, as the line it
/// becomes: the endpoint's threads serialize it, so the one writer thread
/// only copies bytes.
#[derive(Debug, Clone)]
pub struct Spooled {
    /// Which stream it goes to.
    pub stream: Stream,
    /// The v2 operation or Pipelines call as a JSON object, without a
    /// newline, and without `id_field`: the writer adds that last.
    pub line: Vec<u8>,
    /// The field to fill with an id derived from the call's place in the
    /// spool (`id` for an event, `messageId` for a Pipelines call), when the
    /// caller gave none.
    pub id_field: Option<&'static str>,
}

impl Spooled {
    /// A call given as JSON; `id_field`, when the writer is to fill it, is
    /// left out of the line whatever `body` holds there.
    pub fn from_json(
        stream: Stream,
        mut body: Map<String, Value>,
        id_field: Option<&'static str>,
    ) -> Spooled {
        if let Some(field) = id_field {
            body.remove(field);
        }
        Spooled {
            stream,
            line: serde_json::to_vec(&body).expect("a JSON map always serializes"),
            id_field,
        }
    }

    /// Appends the line to `out`, with `id` as the last field when the
    /// writer fills `id_field`, and a newline.
    fn write_line(&self, id: impl FnOnce() -> String, out: &mut Vec<u8>) {
        match self.id_field {
            Some(field) => {
                let open = self.line.strip_suffix(b"}").unwrap_or(&self.line);
                out.extend_from_slice(open);
                if open.trim_ascii_end() != b"{" {
                    out.push(b',');
                }
                out.push(b'"');
                out.extend_from_slice(field.as_bytes());
                out.extend_from_slice(b"\":\"");
                out.extend_from_slice(id().as_bytes());
                out.extend_from_slice(b"\"}");
            }
            None => out.extend_from_slice(&self.line),
        }
        out.push(b'\n');
    }
}

/// Why a call was not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The relay is stopping.
    Stopping,
    /// The disk refused the write.
    Disk(String),
}

struct Append {
    items: Vec<Spooled>,
    done: mpsc::Sender<Result<(), Refused>>,
}

/// The handle callers append through; clones share the one writer.
#[derive(Clone)]
pub struct SpoolWriter {
    sender: Arc<Mutex<Option<SyncSender<Append>>>>,
}

/// The segment of a stream being written.
struct Current {
    number: u64,
    file: File,
    len: u64,
    lines: u64,
    pending: Vec<u8>,
    pending_lines: u64,
}

impl SpoolWriter {
    /// Starts the writer thread. It rotates a stream's segment once it
    /// holds `segment_bytes`, and stops once `stop` is set, after writing
    /// what was handed to it.
    ///
    /// # Errors
    ///
    /// The operating system's, if the thread cannot start.
    pub fn start(
        spool: Arc<Spool>,
        stop: Arc<AtomicBool>,
        segment_bytes: u64,
    ) -> io::Result<(SpoolWriter, JoinHandle<()>)> {
        let (sender, appends) = mpsc::sync_channel(QUEUE);
        let thread = thread::Builder::new()
            .name("relay-spool-writer".into())
            .spawn(move || write_until_stopped(&spool, &appends, &stop, segment_bytes))?;
        let writer = SpoolWriter {
            sender: Arc::new(Mutex::new(Some(sender))),
        };
        Ok((writer, thread))
    }

    /// Keeps `items`, all or none: returns once they are on disk.
    ///
    /// # Errors
    ///
    /// [`Refused`] when the relay is stopping or the disk refused them.
    pub fn append(&self, items: Vec<Spooled>) -> Result<(), Refused> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
            .ok_or(Refused::Stopping)?;
        let (done, answer) = mpsc::channel();
        sender
            .send(Append { items, done })
            .map_err(|_| Refused::Stopping)?;
        drop(sender);
        answer.recv().unwrap_or(Err(Refused::Stopping))
    }

    /// Refuses further appends: the writer writes what it has, and ends.
    pub fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

fn write_until_stopped(
    spool: &Spool,
    appends: &Receiver<Append>,
    stop: &AtomicBool,
    segment_bytes: u64,
) {
    let mut current: [Option<Current>; 2] = [None, None];
    loop {
        let first = match appends.recv_timeout(CHECK_EVERY) {
            Ok(append) => append,
            Err(RecvTimeoutError::Timeout) if !stop.load(Ordering::SeqCst) => continue,
            // Stopping: what was queued is written below, then the writer ends.
            Err(RecvTimeoutError::Timeout) => match appends.try_recv() {
                Ok(append) => append,
                Err(_) => break,
            },
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match appends.try_recv() {
                Ok(append) => group.push(append),
                Err(_) => break,
            }
        }
        let result = write_group(spool, &mut current, &group, segment_bytes);
        if let Err(error) = &result {
            log::error!("cannot write the spool: {error}; calls are answered 503");
            // Nothing of the group is answered 200: each segment goes back to what was durable.
            for segment in current.iter_mut().flatten() {
                segment.pending.clear();
                segment.pending_lines = 0;
                let _ = segment.file.set_len(segment.len);
            }
        }
        let result = result.map_err(|error| Refused::Disk(error.to_string()));
        for append in group {
            let _ = append.done.send(result.clone());
        }
    }
    spool.close_all();
}

/// Appends a group's calls to their streams' segments, one write and one
/// fsync a stream; on failure, cuts the segments back to what was durable.
fn write_group(
    spool: &Spool,
    current: &mut [Option<Current>; 2],
    group: &[Append],
    segment_bytes: u64,
) -> io::Result<()> {
    for append in group {
        let Some(stream) = append.items.first().map(|item| item.stream) else {
            continue;
        };
        let slot = &mut current[stream as usize];
        let full = slot
            .as_ref()
            .is_some_and(|segment| segment.len + segment.pending.len() as u64 >= segment_bytes);
        if full && let Some(segment) = slot.as_mut() {
            commit(spool, segment)?;
        }
        if slot.is_none() || full {
            let number = spool.new_segment(stream);
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(spool.segment_path(stream, number))?;
            spool.sync_dir()?;
            *slot = Some(Current {
                number,
                file,
                len: 0,
                lines: 0,
                pending: Vec::with_capacity(64 * 1024),
                pending_lines: 0,
            });
        }
        let segment = slot.as_mut().expect("opened above");
        for item in &append.items {
            segment.pending_lines += 1;
            let line = segment.lines + segment.pending_lines;
            let id = || {
                let key = format!(
                    "{}/{}/{}/{line}",
                    spool.relay_id(),
                    stream.name(),
                    segment.number
                );
                EventId::from_key(&key).to_string()
            };
            item.write_line(id, &mut segment.pending);
        }
    }
    for segment in current.iter_mut().flatten() {
        commit(spool, segment)?;
    }
    Ok(())
}

/// Writes and fsyncs a segment's pending lines, and tells the spool.
fn commit(spool: &Spool, segment: &mut Current) -> io::Result<()> {
    if segment.pending.is_empty() {
        return Ok(());
    }
    let written = segment
        .file
        .write_all(&segment.pending)
        .and_then(|()| segment.file.sync_data());
    written?;
    segment.len += segment.pending.len() as u64;
    segment.lines += segment.pending_lines;
    segment.pending.clear();
    segment.pending_lines = 0;
    spool.grew(segment.number, segment.len, segment.lines);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn written(item: &Spooled) -> Value {
        let mut out = Vec::new();
        item.write_line(|| "01J0000000000000000000000A".into(), &mut out);
        assert_eq!(out.pop(), Some(b'\n'));
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn the_writer_adds_the_id_field_last_and_leaves_other_lines_as_they_are() {
        let body = json!({"type":"person","action":"event","name":"paid","id":"placeholder"});
        let Value::Object(map) = body else { panic!() };
        let event = Spooled::from_json(Stream::Track, map.clone(), Some("id"));
        assert!(!String::from_utf8_lossy(&event.line).contains("placeholder"));
        let mut expected = map.clone();
        expected.insert("id".into(), "01J0000000000000000000000A".into());
        assert_eq!(written(&event), Value::Object(expected));
        let kept = Spooled::from_json(Stream::Track, map.clone(), None);
        assert_eq!(written(&kept), Value::Object(map));
        let empty = Spooled::from_json(Stream::Pipelines, Map::new(), Some("messageId"));
        assert_eq!(
            written(&empty),
            json!({"messageId": "01J0000000000000000000000A"})
        );
    }
}
