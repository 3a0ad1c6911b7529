//! The acknowledgement ledger: which lines each request carries, and a
//! checkpoint that advances only over lines that are all done.
//!
//! The requests of different lanes carry interleaved lines (one lane's
//! batch lines 1, 4 and 9, another's 2, 3 and 5) and are answered in any
//! order. A line is settled (counted, its dead letter written) only once
//! every line before it is done, so the checkpoint is the line before the
//! first one still open: waiting in a lane's packer, in a request not yet
//! answered, or not yet read. A resume never skips an unacknowledged line.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::import::api::ImportApi;
use crate::import::checkpoint::Checkpoint;
use crate::import::content_digest::ContentDigest;
use crate::import::dead_letter::{DeadLetter, DeadLetters};
use crate::limit::clock::Clock;

/// An item of a chunk's request that the server rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Its position in the request.
    pub(crate) index: usize,
    pub(crate) reason: String,
    /// What was sent for it.
    pub(crate) original: String,
}

/// A chunk's place in the ledger: chunks are numbered in the order they
/// open, which is the order of their first lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ChunkId(u64);

/// The lines that travel in one request, in input order.
#[derive(Debug)]
struct Chunk {
    /// The line of each item of the request.
    lines: Vec<u64>,
    /// The input's digest through the line before its first.
    digest_before: ContentDigest,
    /// How many of `lines` are settled.
    settled: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    /// Being packed, or sent and not answered.
    Open,
    /// Answered: the rejected items in request order, and how many of them
    /// are settled.
    Acknowledged(Vec<Rejected>, usize),
    /// Never to be answered: the checkpoint stays before its first line.
    Failed,
}

/// Where an import's checkpoint goes, and what an earlier run counted.
#[derive(Debug)]
pub(crate) struct CheckpointFile {
    pub(crate) path: PathBuf,
    pub(crate) import_id: String,
    pub(crate) api: ImportApi,
    /// Lines delivered and dead-lettered by the runs before this one.
    pub(crate) before: (u64, u64),
}

/// Lines in input order, each read line given to a chunk (a request),
/// dead-lettered, or passed; chunks are acknowledged in any order, and every
/// line before the first line of the first chunk still open is settled
/// (delivered or dead-lettered) and the checkpoint moves over it. A failed
/// chunk holds the checkpoint before it for good.
///
/// The dead letters of settled lines are written in line order, and reach
/// the disk before any checkpoint that passes them.
pub(crate) struct Ledger {
    /// Chunks not yet settled in full, in the order they opened.
    chunks: VecDeque<Chunk>,
    /// The id of `chunks[0]`.
    first: u64,
    /// Bad lines found while reading, not yet settled, in line order.
    bad: VecDeque<DeadLetter>,
    bad_bytes: usize,
    /// The last line read.
    read: u64,
    /// The input's digest through `read`.
    read_digest: ContentDigest,
    dead_letters: DeadLetters,
    checkpoint: Option<CheckpointFile>,
    /// Every line up to this one is settled.
    line: u64,
    /// The input's digest through `line`, for the checkpoint.
    digest: ContentDigest,
    delivered: u64,
    dead_lettered: u64,
    stored_line: u64,
    clock: Arc<dyn Clock>,
    checkpoint_every: Duration,
    last_stored: Instant,
}

impl Ledger {
    /// A ledger from `line` on (0, or where a resumed import starts after,
    /// the input's digest through it being `digest`), storing its
    /// checkpoint (if any) at most every `checkpoint_every`.
    pub(crate) fn new(
        dead_letters: DeadLetters,
        checkpoint: Option<CheckpointFile>,
        (line, digest): (u64, ContentDigest),
        clock: Arc<dyn Clock>,
        checkpoint_every: Duration,
    ) -> Ledger {
        Ledger {
            chunks: VecDeque::new(),
            first: 0,
            bad: VecDeque::new(),
            bad_bytes: 0,
            read: line,
            read_digest: digest,
            dead_letters,
            checkpoint,
            line,
            digest,
            delivered: 0,
            dead_lettered: 0,
            stored_line: line,
            last_stored: clock.now(),
            clock,
            checkpoint_every,
        }
    }

    /// Opens the chunk of a new request, with `line` its first item.
    ///
    /// Each line comes with the input's digest through it, for the
    /// checkpoint: here, and in [`add`](Ledger::add), [`pass`](Ledger::pass)
    /// and [`dead`](Ledger::dead).
    pub(crate) fn open(&mut self, line: u64, digest: ContentDigest) -> ChunkId {
        let digest_before = self.read_digest;
        self.read(line, digest);
        let id = ChunkId(self.first + self.chunks.len() as u64);
        self.chunks.push_back(Chunk {
            lines: vec![line],
            digest_before,
            settled: 0,
            state: State::Open,
        });
        id
    }

    /// `line` is the next item of chunk `id`'s request, still being packed.
    pub(crate) fn add(&mut self, id: ChunkId, line: u64, digest: ContentDigest) {
        self.read(line, digest);
        if let Some(chunk) = self.chunk(id) {
            chunk.lines.push(line);
        }
    }

    /// `line` needs nothing sent (blank, or done by an earlier run).
    pub(crate) fn pass(&mut self, line: u64, digest: ContentDigest) -> Result<()> {
        self.read(line, digest);
        self.settle()
    }

    /// `line` cannot be sent, for `reason`.
    pub(crate) fn dead(
        &mut self,
        line: u64,
        digest: ContentDigest,
        reason: String,
        original: &[u8],
    ) -> Result<()> {
        self.read(line, digest);
        let letter = DeadLetter::new(line, reason, original);
        self.bad_bytes += size(&letter);
        self.bad.push_back(letter);
        self.settle()
    }

    /// Bytes of dead letters held until the lines before them are done.
    pub(crate) fn held_dead_bytes(&self) -> usize {
        self.bad_bytes
    }

    fn read(&mut self, line: u64, digest: ContentDigest) {
        debug_assert!(line > self.read, "lines come in input order");
        self.read = line;
        self.read_digest = digest;
    }

    /// The server answered chunk `id`'s request, rejecting `rejected`.
    pub(crate) fn acknowledge(&mut self, id: ChunkId, mut rejected: Vec<Rejected>) -> Result<()> {
        rejected.sort_by_key(|item| item.index);
        if let Some(chunk) = self.chunk(id) {
            chunk.state = State::Acknowledged(rejected, 0);
        }
        self.settle()
    }

    /// Chunk `id`'s request failed: neither its lines nor any after its
    /// first will be settled, so the checkpoint stays before them.
    pub(crate) fn fail(&mut self, id: ChunkId) {
        if let Some(chunk) = self.chunk(id) {
            chunk.state = State::Failed;
        }
    }

    fn chunk(&mut self, id: ChunkId) -> Option<&mut Chunk> {
        let index = id.0.checked_sub(self.first)?;
        self.chunks.get_mut(usize::try_from(index).ok()?)
    }

    /// Settles every line before the first one still open, in line order.
    fn settle(&mut self) -> Result<()> {
        let open = self
            .chunks
            .iter()
            .find(|chunk| !matches!(chunk.state, State::Acknowledged(..)));
        let (through, digest) = open.map_or((self.read, self.read_digest), |chunk| {
            (chunk.lines[0] - 1, chunk.digest_before)
        });
        if through <= self.line {
            return Ok(());
        }
        let mut letters = Vec::new();
        while self
            .bad
            .front()
            .is_some_and(|letter| letter.line <= through)
        {
            let letter = self.bad.pop_front().expect("the front exists");
            self.bad_bytes -= size(&letter);
            letters.push(letter);
        }
        for chunk in &mut self.chunks {
            let State::Acknowledged(rejected, next) = &mut chunk.state else {
                break;
            };
            while let Some(&line) = chunk.lines.get(chunk.settled).filter(|&&l| l <= through) {
                let index = chunk.settled;
                // The client names each rejected item once, within the request.
                while rejected.get(*next).is_some_and(|item| item.index < index) {
                    *next += 1;
                }
                match rejected.get_mut(*next).filter(|item| item.index == index) {
                    Some(item) => {
                        let reason = std::mem::take(&mut item.reason);
                        letters.push(DeadLetter::new(line, reason, item.original.as_bytes()));
                        *next += 1;
                    }
                    None => self.delivered += 1,
                }
                chunk.settled += 1;
            }
        }
        while self.chunks.front().is_some_and(|chunk| {
            matches!(chunk.state, State::Acknowledged(..)) && chunk.settled == chunk.lines.len()
        }) {
            self.chunks.pop_front();
            self.first += 1;
        }
        letters.sort_by_key(|letter| letter.line);
        for letter in &letters {
            self.dead_letters.write(letter)?;
            self.dead_lettered += 1; // counted as written, should the next fail
        }
        self.line = through;
        self.digest = digest;
        self.store_checkpoint_if_due()
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
            self.digest,
            file.api,
        )
        .store(&file.path)?;
        self.stored_line = self.line;
        Ok(())
    }
}

/// What a held dead letter costs in memory, roughly.
fn size(letter: &DeadLetter) -> usize {
    letter.reason.len() + letter.original.len()
}

#[cfg(test)]
pub(crate) mod tests {
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
                api: ImportApi::Track,
                before: (0, 0),
            }),
            (0, ContentDigest::default()),
            Arc::new(clock.clone()),
            EVERY,
        )
    }

    /// Chunk ids, for tests of the chunks' owners.
    pub(crate) fn chunk_ids() -> impl Iterator<Item = ChunkId> {
        (0..).map(ChunkId)
    }

    /// A chunk of the items on `lines`, read one after the other.
    fn items(ledger: &mut Ledger, lines: impl IntoIterator<Item = u64>) -> ChunkId {
        let mut lines = lines.into_iter();
        let id = ledger.open(lines.next().unwrap(), ContentDigest::default());
        for line in lines {
            ledger.add(id, line, ContentDigest::default());
        }
        id
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
        let first = items(&mut ledger, 1..=3);
        let second = items(&mut ledger, 4..=6);
        let third = items(&mut ledger, 7..=9);
        ledger.acknowledge(third, Vec::new()).unwrap();
        ledger.acknowledge(second, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (0, 0), "1-3 still out");
        ledger.acknowledge(first, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (9, 9));
    }

    #[test]
    fn interleaved_lanes_settle_only_lines_before_the_first_one_still_open() {
        let dir = scratch("lanes");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        // Lane 0 packs lines 1, then 4; lane 1 packs 2, 3 and 5.
        let first = ledger.open(1, ContentDigest::default());
        let second = ledger.open(2, ContentDigest::default());
        ledger.add(second, 3, ContentDigest::default());
        ledger.acknowledge(first, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (1, 1));
        let third = ledger.open(4, ContentDigest::default());
        ledger.add(second, 5, ContentDigest::default());
        ledger.acknowledge(second, vec![rejected(2)]).unwrap();
        assert_eq!(
            (ledger.line(), ledger.delivered(), ledger.dead_lettered()),
            (3, 3, 0),
            "line 4 is in lane 0's packer: line 5 waits for it"
        );
        ledger
            .dead(6, ContentDigest::default(), "invalid JSON".into(), b"{")
            .unwrap();
        ledger.pass(7, ContentDigest::default()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(stored(&dir), Some(3), "a resume would send line 4 again");
        ledger.acknowledge(third, vec![rejected(0)]).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(
            (ledger.line(), ledger.delivered(), ledger.dead_lettered()),
            (7, 3, 3)
        );
        assert_eq!(
            dead_lines(&dir),
            [
                (4, "rejected item 0".to_string()),
                (5, "rejected item 2".to_string()),
                (6, "invalid JSON".to_string())
            ],
            "dead letters in line order, whichever lane answered first"
        );
        assert_eq!(stored(&dir), Some(7));
    }

    #[test]
    fn lines_in_a_packer_not_yet_sent_hold_the_checkpoint() {
        let dir = scratch("packer");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        ledger.pass(1, ContentDigest::default()).unwrap();
        let packing = ledger.open(2, ContentDigest::default());
        ledger.pass(3, ContentDigest::default()).unwrap();
        ledger
            .dead(4, ContentDigest::default(), "bad".into(), b"x")
            .unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!((ledger.line(), stored(&dir)), (1, Some(1)));
        assert!(
            ledger.held_dead_bytes() > 0,
            "line 4's letter waits for line 2"
        );
        assert!(dead_lines(&dir).is_empty());
        ledger.acknowledge(packing, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.held_dead_bytes()), (4, 0));
    }

    #[test]
    fn rejected_items_are_dead_lettered_on_their_own_line_in_line_order() {
        let dir = scratch("rejected");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let id = ledger.open(1, ContentDigest::default());
        ledger
            .dead(2, ContentDigest::default(), "invalid JSON".into(), b"{")
            .unwrap();
        ledger.add(id, 3, ContentDigest::default());
        ledger.pass(4, ContentDigest::default()).unwrap();
        ledger.add(id, 5, ContentDigest::default());
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
        let id = items(&mut ledger, [1, 2]);
        ledger.acknowledge(id, vec![rejected(2)]).unwrap();
        assert_eq!((ledger.delivered(), ledger.dead_lettered()), (2, 0));
    }

    #[test]
    fn a_failed_chunk_holds_the_checkpoint_before_it_for_good() {
        let dir = scratch("failed");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let first = ledger.open(1, ContentDigest::default());
        let second = ledger.open(2, ContentDigest::default());
        let third = ledger.open(3, ContentDigest::default());
        ledger.add(first, 4, ContentDigest::default());
        ledger.acknowledge(first, Vec::new()).unwrap();
        ledger.fail(second);
        ledger.acknowledge(third, Vec::new()).unwrap();
        ledger.pass(5, ContentDigest::default()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!((ledger.line(), stored(&dir)), (1, Some(1)));
        assert_eq!(
            ledger.delivered(),
            1,
            "line 4 was delivered, but after line 2"
        );
    }

    #[test]
    fn passed_lines_are_done_once_those_before_them_are() {
        let dir = scratch("unsent");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let sent = ledger.open(1, ContentDigest::default());
        ledger.pass(2, ContentDigest::default()).unwrap();
        assert_eq!(ledger.line(), 0);
        ledger.acknowledge(sent, Vec::new()).unwrap();
        assert_eq!(ledger.line(), 2);
    }

    #[test]
    fn the_checkpoint_is_stored_at_most_every_interval_and_after_its_dead_letters() {
        let dir = scratch("interval");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        ledger
            .dead(1, ContentDigest::default(), "bad".into(), b"x")
            .unwrap();
        assert_eq!(stored(&dir), None, "not yet due");
        clock.advance(EVERY);
        let id = ledger.open(2, ContentDigest::default());
        ledger.store_checkpoint_if_due().unwrap();
        assert_eq!(stored(&dir), Some(1), "due");
        assert_eq!(dead_lines(&dir).len(), 1, "its dead letter is on disk");
        ledger.acknowledge(id, Vec::new()).unwrap();
        assert_eq!(stored(&dir), Some(1), "stored less than an interval ago");
        clock.advance(EVERY);
        ledger.store_checkpoint_if_due().unwrap();
        assert_eq!(stored(&dir), Some(2));
        let checkpoint = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((checkpoint.delivered(), checkpoint.dead_lettered()), (1, 1));
    }

    #[test]
    fn the_checkpoint_keeps_the_digest_of_the_input_through_its_line() {
        let dir = scratch("digest");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let mut read = ContentDigest::default();
        let mut through = Vec::new();
        for line in ["a\n", "b\n", "c\n", "d\n"] {
            read.update(line.as_bytes());
            through.push(read);
        }
        // Lane 0 packs lines 1 and 3, lane 1 packs 2; line 4 is blank.
        let first = ledger.open(1, through[0]);
        let second = ledger.open(2, through[1]);
        ledger.add(first, 3, through[2]);
        ledger.acknowledge(second, Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(stored(&dir), None, "line 1 is still open");
        ledger.acknowledge(first, Vec::new()).unwrap();
        let third = ledger.open(4, through[3]);
        ledger.store_checkpoint().unwrap();
        let stored = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((stored.line(), stored.digest()), (3, Some(through[2])));
        ledger.acknowledge(third, Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        let stored = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((stored.line(), stored.digest()), (4, Some(through[3])));
    }
}
