//! The spool: a folder of append-only NDJSON segments, one stream of Track
//! v2 operations and one of Pipelines calls, which the relay's writer grows
//! and its drains deliver and delete. It is the relay's only state.
//!
//! ```text
//! DIR/relay.lock                          held while a relay uses the folder
//! DIR/relay-id                            random, written once: event ids derive from it
//! DIR/track-000000000007.ndjson           a segment: one v2 operation a line
//! DIR/track-000000000007.ndjson.checkpoint   the importer's checkpoint in it
//! DIR/track.dead-letter.ndjson            what Customer.io refused, with the reason
//! DIR/pipelines-000000000008.ndjson       the same for Pipelines calls
//! ```
//!
//! A segment is durable up to the length the writer last fsynced; the drain
//! reads no further, so it never sends a call that was not answered 200.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use crate::error::Error;

/// What a segment holds, and so which importer drains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Track v2 operations.
    Track,
    /// Pipelines calls.
    Pipelines,
}

impl Stream {
    /// The segment files' prefix.
    pub fn name(self) -> &'static str {
        match self {
            Stream::Track => "track",
            Stream::Pipelines => "pipelines",
        }
    }

    fn of(prefix: &str) -> Option<Stream> {
        match prefix {
            "track" => Some(Stream::Track),
            "pipelines" => Some(Stream::Pipelines),
            _ => None,
        }
    }
}

/// What the spool knows of one segment.
#[derive(Debug)]
struct Segment {
    stream: Stream,
    /// Bytes fsynced: the drain reads up to here.
    durable: u64,
    /// Lines fsynced.
    lines: u64,
    /// The writer has moved on: it will not grow.
    closed: bool,
    /// Bytes a drain round finished with: everything before is settled.
    drained: u64,
    /// Lines settled (the importer's checkpoint line).
    settled: u64,
    /// When each group of lines was accepted: (its last line, when).
    accepted: VecDeque<(u64, SystemTime)>,
}

/// The spool's shared state.
#[derive(Debug, Default)]
struct State {
    segments: BTreeMap<u64, Segment>,
    next_number: u64,
    bytes: u64,
    /// Writes made durable: one fsync each, whatever the number of calls in it.
    fsyncs: u64,
}

/// A relay's spool folder, locked for as long as it is open.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    relay_id: String,
    _lock: File,
    state: Mutex<State>,
    changed: Condvar,
}

/// A segment the drain may read: its number and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readable {
    /// Bytes durable.
    pub durable: u64,
    /// Whether it will grow no more.
    pub closed: bool,
}

impl Spool {
    /// Opens (creating) the spool folder: takes its lock, reads or writes its
    /// relay id, cuts any torn last line a crash left (never answered 200),
    /// and finds the segments still to deliver.
    ///
    /// # Errors
    ///
    /// [`Error::File`] naming `--spool` when the folder cannot be used, or
    /// another relay holds it.
    pub fn open(dir: &Path) -> Result<Spool, Error> {
        let refuse = |path: &Path, problem: String| Error::File {
            flag: "--spool",
            path: path.to_owned(),
            problem,
        };
        fs::create_dir_all(dir).map_err(|error| refuse(dir, error.to_string()))?;
        let lock_path = dir.join("relay.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|error| refuse(&lock_path, error.to_string()))?;
        lock.try_lock().map_err(|_| {
            refuse(
                dir,
                "is in use by another relay (its relay.lock is held)".to_owned(),
            )
        })?;
        let relay_id = relay_id(dir).map_err(|error| refuse(dir, error.to_string()))?;
        let mut state = State::default();
        let entries = fs::read_dir(dir).map_err(|error| refuse(dir, error.to_string()))?;
        let mut checkpoints = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|error| refuse(dir, error.to_string()))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".ndjson.checkpoint") || name.ends_with(".ndjson.checkpoint.lock") {
                checkpoints.push(entry.path());
                continue;
            }
            let Some((stream, number)) = segment_name(&name) else {
                continue;
            };
            let path = entry.path();
            let (durable, lines) =
                repair(&path).map_err(|error| refuse(&path, error.to_string()))?;
            let when = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .unwrap_or_else(|_| SystemTime::now());
            state.bytes += durable;
            state.next_number = state.next_number.max(number + 1);
            state.segments.insert(
                number,
                Segment {
                    stream,
                    durable,
                    lines,
                    closed: true,
                    drained: 0,
                    settled: 0,
                    accepted: VecDeque::from([(lines, when)]),
                },
            );
        }
        // A checkpoint (or its lock) whose segment was delivered and deleted, just before a crash.
        for checkpoint in checkpoints {
            let name = checkpoint.to_string_lossy();
            let segment = name
                .strip_suffix(".lock")
                .unwrap_or(&name)
                .strip_suffix(".checkpoint")
                .map(PathBuf::from);
            if segment.is_some_and(|segment| !segment.exists()) {
                let _ = fs::remove_file(&checkpoint);
            }
        }
        state.next_number = state.next_number.max(1);
        Ok(Spool {
            dir: dir.to_owned(),
            relay_id,
            _lock: lock,
            state: Mutex::new(state),
            changed: Condvar::new(),
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The spool's random id, for event ids derived from spool positions.
    pub fn relay_id(&self) -> &str {
        &self.relay_id
    }

    /// A segment's file.
    pub fn segment_path(&self, stream: Stream, number: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{number:012}.ndjson", stream.name()))
    }

    /// A segment's checkpoint file (the importer locks it with `<it>.lock`).
    pub fn checkpoint_path(&self, stream: Stream, number: u64) -> PathBuf {
        let mut path = self.segment_path(stream, number).into_os_string();
        path.push(".checkpoint");
        PathBuf::from(path)
    }

    /// A stream's dead-letter file.
    pub fn dead_letter_path(&self, stream: Stream) -> PathBuf {
        self.dir
            .join(format!("{}.dead-letter.ndjson", stream.name()))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Bytes of segments on disk.
    pub fn bytes(&self) -> u64 {
        self.lock().bytes
    }

    /// Group writes made durable since the relay started, an fsync each.
    pub fn fsyncs(&self) -> u64 {
        self.lock().fsyncs
    }

    /// Lines accepted and not yet settled, and when the oldest of them was accepted.
    pub fn waiting(&self) -> (u64, Option<SystemTime>) {
        let state = self.lock();
        let lines = state
            .segments
            .values()
            .map(|segment| segment.lines.saturating_sub(segment.settled))
            .sum();
        let oldest = state
            .segments
            .values()
            .filter_map(|segment| {
                segment
                    .accepted
                    .iter()
                    .find(|(last, _)| *last > segment.settled)
                    .map(|(_, when)| *when)
            })
            .min();
        (lines, oldest)
    }

    /// Takes the number of a new segment of `stream`, which the writer is about to create.
    pub fn new_segment(&self, stream: Stream) -> u64 {
        let mut state = self.lock();
        let number = state.next_number;
        state.next_number += 1;
        for segment in state.segments.values_mut() {
            if segment.stream == stream {
                segment.closed = true;
            }
        }
        state.segments.insert(
            number,
            Segment {
                stream,
                durable: 0,
                lines: 0,
                closed: false,
                drained: 0,
                settled: 0,
                accepted: VecDeque::new(),
            },
        );
        self.changed.notify_all();
        number
    }

    /// Records that a segment is durable up to `durable` bytes and `lines` lines.
    pub fn grew(&self, number: u64, durable: u64, lines: u64) {
        let mut state = self.lock();
        let Some(segment) = state.segments.get_mut(&number) else {
            return;
        };
        let added = durable.saturating_sub(segment.durable);
        segment.durable = durable;
        segment.lines = lines;
        segment.accepted.push_back((lines, SystemTime::now()));
        state.bytes += added;
        state.fsyncs += 1;
        self.changed.notify_all();
    }

    /// Closes every segment (the writer has stopped), so that drains see their ends.
    pub fn close_all(&self) {
        let mut state = self.lock();
        for segment in state.segments.values_mut() {
            segment.closed = true;
        }
        self.changed.notify_all();
    }

    /// How far the drain may read segment `number`; `None` once it is gone.
    pub fn readable(&self, number: u64) -> Option<Readable> {
        let state = self.lock();
        state.segments.get(&number).map(|segment| Readable {
            durable: segment.durable,
            closed: segment.closed,
        })
    }

    /// The oldest segment of `stream` with something to do: bytes past what
    /// was drained, or its end reached. Waits up to `wait` for one.
    pub fn next_for(&self, stream: Stream, wait: Duration) -> Option<(u64, Readable)> {
        let state = self.lock();
        let find = |state: &State| {
            state
                .segments
                .iter()
                .find(|(_, segment)| segment.stream == stream)
                .filter(|(_, segment)| segment.durable > segment.drained || segment.closed)
                .map(|(number, segment)| {
                    (
                        *number,
                        Readable {
                            durable: segment.durable,
                            closed: segment.closed,
                        },
                    )
                })
        };
        if let Some(found) = find(&state) {
            return Some(found);
        }
        let (state, _) = self
            .changed
            .wait_timeout(state, wait)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        find(&state)
    }

    /// Waits up to `wait` for the spool to change.
    pub fn wait(&self, wait: Duration) {
        let state = self.lock();
        let _ = self.changed.wait_timeout(state, wait);
    }

    /// Records how far a drain round got: `drained` bytes read, all settled.
    pub fn drained(&self, number: u64, drained: u64) {
        let mut state = self.lock();
        if let Some(segment) = state.segments.get_mut(&number) {
            segment.drained = segment.drained.max(drained);
        }
    }

    /// Records the importer's checkpoint line in segment `number`.
    pub fn settled(&self, number: u64, line: u64) {
        let mut state = self.lock();
        if let Some(segment) = state.segments.get_mut(&number) {
            segment.settled = segment.settled.max(line);
            while segment
                .accepted
                .front()
                .is_some_and(|(last, _)| *last <= segment.settled)
            {
                segment.accepted.pop_front();
            }
        }
    }

    /// Deletes a delivered segment, then its checkpoint.
    ///
    /// # Errors
    ///
    /// The file system's.
    pub fn delete(&self, stream: Stream, number: u64) -> io::Result<()> {
        fs::remove_file(self.segment_path(stream, number))?;
        let checkpoint = self.checkpoint_path(stream, number);
        for path in [lock_of(&checkpoint), checkpoint] {
            match fs::remove_file(path) {
                Err(error) if error.kind() != io::ErrorKind::NotFound => return Err(error),
                _ => {}
            }
        }
        let mut state = self.lock();
        if let Some(segment) = state.segments.remove(&number) {
            state.bytes = state.bytes.saturating_sub(segment.durable);
        }
        self.changed.notify_all();
        Ok(())
    }

    /// Makes a new file's name durable.
    ///
    /// # Errors
    ///
    /// The file system's.
    pub fn sync_dir(&self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }
}

/// The lock file the importer keeps beside a checkpoint.
fn lock_of(checkpoint: &Path) -> PathBuf {
    let mut name = checkpoint.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// `track-000000000007.ndjson` → (Track, 7).
fn segment_name(name: &str) -> Option<(Stream, u64)> {
    let stem = name.strip_suffix(".ndjson")?;
    let (prefix, number) = stem.rsplit_once('-')?;
    if number.len() != 12 {
        return None;
    }
    Some((Stream::of(prefix)?, number.parse().ok()?))
}

/// The spool's id: read, or made and made durable once.
fn relay_id(dir: &Path) -> io::Result<String> {
    let path = dir.join("relay-id");
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let id = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    let temporary = dir.join(".relay-id.tmp");
    let mut file = File::create(&temporary)?;
    file.write_all(id.as_bytes())?;
    file.sync_all()?;
    fs::rename(&temporary, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(id)
}

/// Cuts a segment back to its last complete line (a crash mid-write leaves a
/// torn one, which was never answered 200); returns its length and lines.
fn repair(path: &Path) -> io::Result<(u64, u64)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let keep = bytes
        .iter()
        .rposition(|&byte| byte == b'\n')
        .map_or(0, |end| end + 1);
    if keep < bytes.len() {
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(keep as u64)?;
        file.sync_all()?;
    }
    let lines = bytes[..keep].iter().filter(|&&byte| byte == b'\n').count();
    Ok((keep as u64, lines as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cio_test_kit::ScratchDir;

    fn scratch(name: &str) -> ScratchDir {
        ScratchDir::new(&format!("relay-spool-{name}"))
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(
            segment_name("track-000000000007.ndjson"),
            Some((Stream::Track, 7))
        );
        assert_eq!(
            segment_name("pipelines-000000000012.ndjson"),
            Some((Stream::Pipelines, 12))
        );
        assert_eq!(segment_name("track.dead-letter.ndjson"), None);
        assert_eq!(segment_name("other-000000000007.ndjson"), None);
    }

    #[test]
    fn a_torn_last_line_is_cut_and_the_id_kept_across_opens() {
        let dir = scratch("torn");
        fs::write(dir.join("track-000000000003.ndjson"), "{\"a\":1}\n{\"b\"").unwrap();
        let spool = Spool::open(&dir).unwrap();
        let id = spool.relay_id().to_owned();
        assert_eq!(spool.bytes(), 8);
        assert_eq!(spool.waiting().0, 1);
        assert_eq!(
            fs::read_to_string(dir.join("track-000000000003.ndjson")).unwrap(),
            "{\"a\":1}\n"
        );
        assert_eq!(spool.new_segment(Stream::Track), 4);
        drop(spool);
        assert_eq!(Spool::open(&dir).unwrap().relay_id(), id);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn two_spools_have_two_ids_of_128_bits() {
        let (a, b) = (scratch("id-a"), scratch("id-b"));
        let ids = [&a, &b].map(|dir| Spool::open(dir).unwrap().relay_id().to_owned());
        for id in &ids {
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|byte| byte.is_ascii_hexdigit()), "{id}");
        }
        assert_ne!(ids[0], ids[1]);
    }

    #[test]
    fn checkpoints_left_by_a_crash_after_their_segment_was_deleted_go_at_start() {
        let dir = scratch("orphans");
        fs::write(dir.join("track-000000000002.ndjson"), "{}\n").unwrap();
        for name in [
            "track-000000000001.ndjson.checkpoint",
            "track-000000000001.ndjson.checkpoint.lock",
            "track-000000000002.ndjson.checkpoint",
            "track-000000000002.ndjson.checkpoint.lock",
        ] {
            fs::write(dir.join(name), "").unwrap();
        }
        let _spool = Spool::open(&dir).unwrap();
        let kept = |name: &str| dir.join(name).exists();
        assert!(!kept("track-000000000001.ndjson.checkpoint"));
        assert!(!kept("track-000000000001.ndjson.checkpoint.lock"));
        assert!(kept("track-000000000002.ndjson.checkpoint"));
        assert!(kept("track-000000000002.ndjson.checkpoint.lock"));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_second_relay_on_one_spool_is_refused() {
        let dir = scratch("locked");
        let _first = Spool::open(&dir).unwrap();
        let error = Spool::open(&dir).unwrap_err();
        assert!(error.to_string().contains("another relay"), "{error}");
        fs::remove_dir_all(dir).unwrap();
    }
}
