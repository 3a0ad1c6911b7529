//! The acknowledgement ledger: which lines each request carries, and a
//! checkpoint that advances only over a contiguous prefix of lines that are done.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::import::checkpoint::Checkpoint;
use crate::import::dead_letter::{DeadLetter, DeadLetters};
use crate::limit::clock::Clock;

/// Lines in input order that travel in one request (or none) and are done
/// together: the lines after the previous chunk's, up to `last_line`.
#[derive(Debug, Default)]
pub(crate) struct Chunk {
    last_line: u64,
    /// The line of each item in the request, in order.
    item_lines: Vec<u64>,
    /// Bad lines in the chunk's range, found before sending.
    dead: Vec<DeadLetter>,
    dead_bytes: usize,
}

impl Chunk {
    /// `line` is the next item of the chunk's request.
    pub(crate) fn add_item(&mut self, line: u64) {
        self.item_lines.push(line);
        self.last_line = line;
    }

    /// `line` cannot be sent, for `reason`.
    pub(crate) fn add_dead(&mut self, line: u64, reason: String, original: &[u8]) {
        self.dead_bytes += reason.len() + original.len();
        self.dead.push(DeadLetter::new(line, reason, original));
        self.last_line = line;
    }

    /// `line` needs nothing sent (blank, or done by an earlier run).
    pub(crate) fn pass(&mut self, line: u64) {
        self.last_line = line;
    }

    /// Bytes of dead letters held, to bound memory.
    pub(crate) fn dead_bytes(&self) -> usize {
        self.dead_bytes
    }

    /// Whether it covers no line at all.
    pub(crate) fn is_empty(&self) -> bool {
        self.last_line == 0
    }
}

/// An item of a chunk's request that the server rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Its position in the request.
    pub(crate) index: usize,
    pub(crate) reason: String,
    /// What was sent for it.
    pub(crate) original: String,
}

/// A chunk's place in the ledger, in input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkId(u64);

#[derive(Debug)]
enum State {
    Waiting,
    Acknowledged(Vec<Rejected>),
    Failed,
}

/// Where an import's checkpoint goes, and what an earlier run counted.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    pub(crate) path: PathBuf,
    pub(crate) import_id: String,
    /// Lines delivered and dead-lettered by the runs before this one.
    pub(crate) before: (u64, u64),
}

/// Chunks in input order, acknowledged in any order; the lines of a
/// contiguous prefix of acknowledged chunks are settled (delivered or
/// dead-lettered) and the checkpoint moves over them. A failed chunk holds
/// the checkpoint before it for good.
///
/// The dead letters of settled lines reach the disk before any checkpoint
/// that passes them.
pub(crate) struct Ledger {
    chunks: VecDeque<(Chunk, State)>,
    /// The id of `chunks[0]`.
    first: u64,
    dead_letters: DeadLetters,
    checkpoint: Option<CheckpointFile>,
    /// Every line up to this one is settled.
    line: u64,
    delivered: u64,
    dead_lettered: u64,
    stored_line: u64,
    clock: Arc<dyn Clock>,
    checkpoint_every: Duration,
    last_stored: Instant,
}

impl Ledger {
    /// A ledger from `line` on (0, or where a resumed import starts after),
    /// storing its checkpoint (if any) at most every `checkpoint_every`.
    pub(crate) fn new(
        dead_letters: DeadLetters,
        checkpoint: Option<CheckpointFile>,
        line: u64,
        clock: Arc<dyn Clock>,
        checkpoint_every: Duration,
    ) -> Ledger {
        Ledger {
            chunks: VecDeque::new(),
            first: 0,
            dead_letters,
            checkpoint,
            line,
            delivered: 0,
            dead_lettered: 0,
            stored_line: line,
            last_stored: clock.now(),
            clock,
            checkpoint_every,
        }
    }

    /// Adds the next chunk. One whose request is not `sent` (it has no
    /// items) is acknowledged at once.
    pub(crate) fn open(&mut self, chunk: Chunk, sent: bool) -> Result<ChunkId> {
        let id = ChunkId(self.first + self.chunks.len() as u64);
        let state = if sent {
            State::Waiting
        } else {
            State::Acknowledged(Vec::new())
        };
        self.chunks.push_back((chunk, state));
        self.settle()?;
        Ok(id)
    }

    /// The server answered chunk `id`'s request, rejecting `rejected`.
    pub(crate) fn acknowledge(&mut self, id: ChunkId, rejected: Vec<Rejected>) -> Result<()> {
        if let Some(state) = self.state(id) {
            *state = State::Acknowledged(rejected);
        }
        self.settle()
    }

    /// Chunk `id`'s request failed: neither it nor any chunk after it will
    /// be settled, so the checkpoint stays before its lines.
    pub(crate) fn fail(&mut self, id: ChunkId) {
        if let Some(state) = self.state(id) {
            *state = State::Failed;
        }
    }

    fn state(&mut self, id: ChunkId) -> Option<&mut State> {
        let index = id.0.checked_sub(self.first)?;
        self.chunks
            .get_mut(usize::try_from(index).ok()?)
            .map(|(_, state)| state)
    }

    /// Settles the acknowledged chunks at the front, in order.
    fn settle(&mut self) -> Result<()> {
        while let Some((_, State::Acknowledged(_))) = self.chunks.front() {
            let Some((chunk, State::Acknowledged(rejected))) = self.chunks.pop_front() else {
                unreachable!("the front was acknowledged");
            };
            self.first += 1;
            self.settle_chunk(chunk, rejected)?;
        }
        self.store_checkpoint_if_due()
    }

    /// Writes a chunk's dead letters in line order and moves past its lines.
    fn settle_chunk(&mut self, chunk: Chunk, rejected: Vec<Rejected>) -> Result<()> {
        let mut letters = chunk.dead;
        let mut rejected_items = 0;
        for item in rejected {
            // The client names each rejected item once, within the request.
            if let Some(&line) = chunk.item_lines.get(item.index) {
                rejected_items += 1;
                letters.push(DeadLetter::new(line, item.reason, item.original.as_bytes()));
            }
        }
        letters.sort_by_key(|letter| letter.line);
        for letter in &letters {
            self.dead_letters.write(letter)?;
        }
        self.delivered += (chunk.item_lines.len() - rejected_items) as u64;
        self.dead_lettered += letters.len() as u64;
        self.line = self.line.max(chunk.last_line);
        Ok(())
    }

    /// Lines delivered in this run.
    pub(crate) fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Lines dead-lettered in this run.
    pub(crate) fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    /// Every line up to this one is settled: where a resume starts after.
    pub(crate) fn line(&self) -> u64 {
        self.line
    }

    /// Whether a dead-letter file has anything in it, from this run or before.
    pub(crate) fn has_dead_letters(&self) -> bool {
        self.dead_letters.written() > 0 || self.checkpoint.as_ref().is_some_and(|c| c.before.1 > 0)
    }

    /// Stores the checkpoint if `checkpoint_every` has passed since the last time.
    pub(crate) fn store_checkpoint_if_due(&mut self) -> Result<()> {
        if self.clock.now().saturating_duration_since(self.last_stored) >= self.checkpoint_every {
            self.store_checkpoint()?;
        }
        Ok(())
    }

    /// Stores the checkpoint now, if it moved; dead letters first.
    pub(crate) fn store_checkpoint(&mut self) -> Result<()> {
        self.last_stored = self.clock.now();
        let Some(file) = &self.checkpoint else {
            return Ok(());
        };
        if self.line == self.stored_line {
            return Ok(());
        }
        // The checkpoint must never pass a line whose dead letter is not on disk.
        self.dead_letters.flush()?;
        Checkpoint::new(
            file.import_id.clone(),
            self.line,
            file.before.0 + self.delivered,
            file.before.1 + self.dead_lettered,
        )
        .store(&file.path)?;
        self.stored_line = self.line;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::Path;

    use super::*;
    use crate::limit::clock::ManualClock;

    const EVERY: Duration = Duration::from_millis(250);

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("cio-ledger-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn ledger(dir: &Path, clock: &ManualClock) -> Ledger {
        Ledger::new(
            DeadLetters::start(&dir.join("dead.ndjson")),
            Some(CheckpointFile {
                path: dir.join("checkpoint"),
                import_id: "import".into(),
                before: (0, 0),
            }),
            0,
            Arc::new(clock.clone()),
            EVERY,
        )
    }

    /// A chunk of the items on `lines`.
    fn items(lines: impl IntoIterator<Item = u64>) -> Chunk {
        let mut chunk = Chunk::default();
        for line in lines {
            chunk.add_item(line);
        }
        chunk
    }

    fn rejected(index: usize) -> Rejected {
        Rejected {
            index,
            reason: format!("rejected item {index}"),
            original: format!("item {index}"),
        }
    }

    fn stored(dir: &Path) -> Option<u64> {
        Checkpoint::load(&dir.join("checkpoint"))
            .ok()
            .map(|c| c.line())
    }

    fn dead_lines(dir: &Path) -> Vec<(u64, String)> {
        fs::read_to_string(dir.join("dead.ndjson"))
            .unwrap_or_default()
            .lines()
            .map(|line| {
                let letter: DeadLetter = serde_json::from_str(line).unwrap();
                (letter.line, letter.reason)
            })
            .collect()
    }

    #[test]
    fn the_checkpoint_moves_only_over_a_contiguous_acknowledged_prefix() {
        let dir = scratch("prefix");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let first = ledger.open(items(1..=3), true).unwrap();
        let second = ledger.open(items(4..=6), true).unwrap();
        let third = ledger.open(items(7..=9), true).unwrap();
        ledger.acknowledge(third, Vec::new()).unwrap();
        ledger.acknowledge(second, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (0, 0), "1-3 still out");
        ledger.acknowledge(first, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (9, 9));
    }

    #[test]
    fn rejected_items_are_dead_lettered_on_their_own_line_in_line_order() {
        let dir = scratch("rejected");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let mut chunk = Chunk::default();
        chunk.add_item(1);
        chunk.add_dead(2, "invalid JSON".into(), b"{");
        chunk.add_item(3);
        chunk.pass(4);
        chunk.add_item(5);
        let id = ledger.open(chunk, true).unwrap();
        ledger
            .acknowledge(id, vec![rejected(2), rejected(0)])
            .unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(
            dead_lines(&dir),
            [
                (1, "rejected item 0".to_string()),
                (2, "invalid JSON".to_string()),
                (5, "rejected item 2".to_string())
            ]
        );
        assert_eq!(
            (ledger.delivered(), ledger.dead_lettered(), ledger.line()),
            (1, 3, 5)
        );
    }

    #[test]
    fn an_index_the_request_did_not_have_blames_no_line() {
        let dir = scratch("index");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let id = ledger.open(items([1, 2]), true).unwrap();
        ledger.acknowledge(id, vec![rejected(2)]).unwrap();
        assert_eq!((ledger.delivered(), ledger.dead_lettered()), (2, 0));
    }

    #[test]
    fn a_failed_chunk_holds_the_checkpoint_before_it_for_good() {
        let dir = scratch("failed");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let first = ledger.open(items([1]), true).unwrap();
        let second = ledger.open(items([2]), true).unwrap();
        let third = ledger.open(items([3]), true).unwrap();
        ledger.acknowledge(first, Vec::new()).unwrap();
        ledger.fail(second);
        ledger.acknowledge(third, Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!((ledger.line(), stored(&dir)), (1, Some(1)));
        assert_eq!(ledger.delivered(), 1);
    }

    #[test]
    fn chunks_without_a_request_are_done_once_those_before_them_are() {
        let dir = scratch("unsent");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let sent = ledger.open(items([1]), true).unwrap();
        let mut blank = Chunk::default();
        blank.pass(2);
        ledger.open(blank, false).unwrap();
        assert_eq!(ledger.line(), 0);
        ledger.acknowledge(sent, Vec::new()).unwrap();
        assert_eq!(ledger.line(), 2);
    }

    #[test]
    fn the_checkpoint_is_stored_at_most_every_interval_and_after_its_dead_letters() {
        let dir = scratch("interval");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let mut bad = Chunk::default();
        bad.add_dead(1, "bad".into(), b"x");
        ledger.open(bad, false).unwrap();
        assert_eq!(stored(&dir), None, "not yet due");
        clock.advance(EVERY);
        let id = ledger.open(items([2]), true).unwrap();
        assert_eq!(stored(&dir), Some(1), "due: stored as it settled");
        assert_eq!(dead_lines(&dir).len(), 1, "its dead letter is on disk");
        ledger.acknowledge(id, Vec::new()).unwrap();
        assert_eq!(stored(&dir), Some(1), "stored less than an interval ago");
        clock.advance(EVERY);
        ledger.store_checkpoint_if_due().unwrap();
        assert_eq!(stored(&dir), Some(2));
        let checkpoint = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((checkpoint.delivered(), checkpoint.dead_lettered()), (1, 1));
    }
}
