//! The acknowledgement ledger: what became of each line read, and a
//! checkpoint that advances only over lines that are all done.
//!
//! Requests carry lines in any order (a person's late line goes out once
//! their earlier request is answered, after other people's later lines) and
//! are answered in any order. A line is settled (counted, its dead letter
//! written) only once every line before it is done, so the checkpoint is the
//! line before the first one still open: waiting in the order window, in a
//! request not yet answered, or not yet read. A resume never skips an
//! unacknowledged line.
//!
//! Memory: a byte per line between the checkpoint and the last line read,
//! the digest of each line still open, and the dead letters not yet settled.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
use crate::import::api::ImportApi;
use crate::import::checkpoint::Checkpoint;
use crate::import::content_digest::ContentDigest;
use crate::import::dead_letter::{DeadLetter, DeadLetters};
use crate::limit::clock::Clock;

/// An item of a request that the server rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejected {
    /// Its position in the request.
    pub(crate) index: usize,
    pub(crate) reason: String,
    /// What was sent for it.
    pub(crate) original: String,
}

/// What became of a line past the checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// To be sent, or sent and not answered.
    Open,
    /// Acknowledged by the server.
    Delivered,
    /// Its dead letter waits in `Ledger::letters`.
    Dead,
    /// Nothing to send (blank).
    Passed,
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

/// Lines in input order, each read line opened (to be sent), dead-lettered
/// or passed; sent lines are acknowledged in any order, and every line
/// before the first line still open is settled (delivered or
/// dead-lettered) and the checkpoint moves over it. A line whose request
/// failed stays open: the checkpoint stays before it for good.
///
/// The dead letters of settled lines are written in line order, and reach
/// the disk before any checkpoint that passes them.
pub(crate) struct Ledger {
    /// What became of each line after `line`, through `read`.
    slots: VecDeque<Slot>,
    /// Lines opened, in line order, each with the input's digest through the
    /// line before it; lines since closed are dropped lazily.
    opened: VecDeque<(u64, ContentDigest)>,
    /// How many of `opened` are still open.
    open: usize,
    /// Dead letters not yet settled, by line.
    letters: BTreeMap<u64, DeadLetter>,
    letter_bytes: usize,
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
            slots: VecDeque::new(),
            opened: VecDeque::new(),
            open: 0,
            letters: BTreeMap::new(),
            letter_bytes: 0,
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

    /// `line` is to be sent: it stays open until a request carrying it is
    /// [acknowledged](Ledger::acknowledge).
    ///
    /// Each line comes with the input's digest through it, for the
    /// checkpoint: here, and in [`pass`](Ledger::pass) and
    /// [`dead`](Ledger::dead).
    pub(crate) fn open(&mut self, line: u64, digest: ContentDigest) {
        self.opened.push_back((line, self.read_digest));
        self.open += 1;
        self.read(line, digest, Slot::Open);
    }

    /// `line` needs nothing sent (blank, or done by an earlier run).
    pub(crate) fn pass(&mut self, line: u64, digest: ContentDigest) -> Result<()> {
        self.read(line, digest, Slot::Passed);
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
        self.read(line, digest, Slot::Dead);
        self.hold(DeadLetter::new(line, reason, original));
        self.settle()
    }

    /// Bytes of dead letters held until the lines before them are done.
    pub(crate) fn held_dead_bytes(&self) -> usize {
        self.letter_bytes
    }

    /// Lines read past the checkpoint: settled or not, each costs a byte
    /// here until every line before it is done.
    pub(crate) fn unsettled(&self) -> u64 {
        self.read - self.line
    }

    fn read(&mut self, line: u64, digest: ContentDigest, slot: Slot) {
        debug_assert!(line > self.read, "lines come in input order");
        // Numbers the reader skipped need nothing.
        let skipped = line.saturating_sub(self.read + 1);
        self.slots
            .extend(std::iter::repeat_n(Slot::Passed, skipped as usize));
        self.slots.push_back(slot);
        self.read = line;
        self.read_digest = digest;
    }

    fn hold(&mut self, letter: DeadLetter) {
        self.letter_bytes += size(&letter);
        self.letters.insert(letter.line, letter);
    }

    fn slot(&mut self, line: u64) -> Option<&mut Slot> {
        let index = line.checked_sub(self.line + 1)?;
        self.slots.get_mut(usize::try_from(index).ok()?)
    }

    /// The server answered the request carrying `lines` (in request order),
    /// rejecting `rejected`.
    pub(crate) fn acknowledge(&mut self, lines: &[u64], mut rejected: Vec<Rejected>) -> Result<()> {
        rejected.sort_by_key(|item| item.index);
        let mut rejected = rejected.into_iter().peekable();
        for (index, &line) in lines.iter().enumerate() {
            // The client names each rejected item once, within the request.
            while rejected.next_if(|item| item.index < index).is_some() {}
            let letter = rejected
                .next_if(|item| item.index == index)
                .map(|item| DeadLetter::new(line, item.reason, item.original.as_bytes()));
            let Some(slot) = self.slot(line).filter(|slot| **slot == Slot::Open) else {
                debug_assert!(false, "line {line} acknowledged twice");
                continue;
            };
            *slot = if letter.is_some() {
                Slot::Dead
            } else {
                Slot::Delivered
            };
            self.open -= 1;
            if let Some(letter) = letter {
                self.hold(letter);
            }
        }
        self.forget_closed();
        self.settle()
    }

    /// Drops closed lines from `opened`: from its front at once, and from
    /// anywhere once they are most of it, so it stays the size of what is open.
    fn forget_closed(&mut self) {
        while let Some(&(line, _)) = self.opened.front() {
            if self.slot(line).is_some_and(|slot| *slot == Slot::Open) {
                break;
            }
            self.opened.pop_front();
        }
        if self.opened.len() > 2 * self.open + 64 {
            let (base, slots) = (self.line + 1, &self.slots);
            self.opened
                .retain(|&(line, _)| slots[(line - base) as usize] == Slot::Open);
        }
    }

    /// Settles every line before the first one still open, in line order.
    fn settle(&mut self) -> Result<()> {
        let (through, digest) = match self.opened.front() {
            Some(&(first_open, digest_before)) => (first_open - 1, digest_before),
            None => (self.read, self.read_digest),
        };
        if through <= self.line {
            return Ok(());
        }
        let mut letters = Vec::new();
        for line in self.line + 1..=through {
            match self.slots.pop_front().expect("a slot per line read") {
                Slot::Delivered => self.delivered += 1,
                Slot::Dead => {
                    let letter = self.letters.remove(&line).expect("a dead line's letter");
                    self.letter_bytes -= size(&letter);
                    letters.push(letter);
                }
                Slot::Passed => {}
                Slot::Open => unreachable!("line {line} is open, before the first open line"),
            }
        }
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
    use cio_test_kit::ScratchDir;

    const EVERY: Duration = Duration::from_millis(250);

    fn scratch(name: &str) -> ScratchDir {
        ScratchDir::new(&format!("ledger-{name}"))
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

    /// Opens `lines`, read one after the other: a request carrying them.
    fn items(ledger: &mut Ledger, lines: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let lines: Vec<u64> = lines.into_iter().collect();
        for &line in &lines {
            ledger.open(line, ContentDigest::default());
        }
        lines
    }

    fn open(ledger: &mut Ledger, line: u64) -> Vec<u64> {
        items(ledger, [line])
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
        ledger.acknowledge(&third, Vec::new()).unwrap();
        ledger.acknowledge(&second, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (0, 0), "1-3 still out");
        assert_eq!(ledger.unsettled(), 9);
        ledger.acknowledge(&first, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (9, 9));
        assert_eq!(ledger.unsettled(), 0);
    }

    #[test]
    fn requests_carrying_interleaved_lines_settle_only_lines_before_the_first_one_still_open() {
        let dir = scratch("interleaved");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        items(&mut ledger, 1..=5);
        // One request carries lines 1, then (a person's later line) 4;
        // another 2, 3 and 5.
        ledger.acknowledge(&[2, 3, 5], vec![rejected(2)]).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (0, 0), "line 1 is out");
        ledger
            .dead(6, ContentDigest::default(), "invalid JSON".into(), b"{")
            .unwrap();
        ledger.pass(7, ContentDigest::default()).unwrap();
        ledger.acknowledge(&[1], Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(stored(&dir), Some(3), "a resume would send line 4 again");
        assert_eq!(
            (ledger.line(), ledger.delivered(), ledger.dead_lettered()),
            (3, 3, 0)
        );
        ledger.acknowledge(&[4], vec![rejected(0)]).unwrap();
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
            "dead letters in line order, whichever request was answered first"
        );
        assert_eq!(stored(&dir), Some(7));
    }

    #[test]
    fn lines_not_yet_sent_hold_the_checkpoint() {
        let dir = scratch("unsent");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        ledger.pass(1, ContentDigest::default()).unwrap();
        let waiting = open(&mut ledger, 2);
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
        ledger.acknowledge(&waiting, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.held_dead_bytes()), (4, 0));
    }

    #[test]
    fn rejected_items_are_dead_lettered_on_their_own_line_in_line_order() {
        let dir = scratch("rejected");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        ledger.open(1, ContentDigest::default());
        ledger
            .dead(2, ContentDigest::default(), "invalid JSON".into(), b"{")
            .unwrap();
        ledger.open(3, ContentDigest::default());
        ledger.pass(4, ContentDigest::default()).unwrap();
        ledger.open(5, ContentDigest::default());
        ledger
            .acknowledge(&[1, 3, 5], vec![rejected(2), rejected(0)])
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
        let lines = items(&mut ledger, [1, 2]);
        ledger
            .acknowledge(&lines, vec![rejected(2), rejected(0), rejected(0)])
            .unwrap();
        assert_eq!((ledger.delivered(), ledger.dead_lettered()), (1, 1));
    }

    #[test]
    fn an_unanswered_line_holds_the_checkpoint_before_it_for_good() {
        let dir = scratch("failed");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        items(&mut ledger, 1..=4);
        ledger.acknowledge(&[1, 4], Vec::new()).unwrap();
        // Line 2's request failed: it is never acknowledged.
        ledger.acknowledge(&[3], Vec::new()).unwrap();
        ledger.pass(5, ContentDigest::default()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!((ledger.line(), stored(&dir)), (1, Some(1)));
        assert_eq!(
            ledger.delivered(),
            1,
            "lines 3 and 4 were delivered, but after line 2"
        );
    }

    #[test]
    fn passed_lines_are_done_once_those_before_them_are() {
        let dir = scratch("passed");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let sent = open(&mut ledger, 1);
        ledger.pass(2, ContentDigest::default()).unwrap();
        assert_eq!(ledger.line(), 0);
        ledger.acknowledge(&sent, Vec::new()).unwrap();
        assert_eq!(ledger.line(), 2);
    }

    #[test]
    fn many_lines_answered_around_one_slow_line_cost_no_memory_for_their_digests() {
        let dir = scratch("slow");
        let clock = ManualClock::new();
        let mut ledger = ledger(&dir, &clock);
        let slow = open(&mut ledger, 1);
        for line in 2..=10_000 {
            let request = open(&mut ledger, line);
            ledger.acknowledge(&request, Vec::new()).unwrap();
        }
        assert!(ledger.opened.len() < 200, "{}", ledger.opened.len());
        assert_eq!((ledger.line(), ledger.unsettled()), (0, 10_000));
        ledger.acknowledge(&slow, Vec::new()).unwrap();
        assert_eq!((ledger.line(), ledger.delivered()), (10_000, 10_000));
        assert!(ledger.opened.is_empty() && ledger.slots.is_empty());
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
        let request = open(&mut ledger, 2);
        ledger.store_checkpoint_if_due().unwrap();
        assert_eq!(stored(&dir), Some(1), "due");
        assert_eq!(dead_lines(&dir).len(), 1, "its dead letter is on disk");
        ledger.acknowledge(&request, Vec::new()).unwrap();
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
        // One request carries lines 1 and 3, another line 2.
        ledger.open(1, through[0]);
        ledger.open(2, through[1]);
        ledger.open(3, through[2]);
        ledger.acknowledge(&[2], Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        assert_eq!(stored(&dir), None, "line 1 is still open");
        ledger.acknowledge(&[1, 3], Vec::new()).unwrap();
        ledger.open(4, through[3]);
        ledger.store_checkpoint().unwrap();
        let stored = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((stored.line(), stored.digest()), (3, Some(through[2])));
        ledger.acknowledge(&[4], Vec::new()).unwrap();
        ledger.store_checkpoint().unwrap();
        let stored = Checkpoint::load(&dir.join("checkpoint")).unwrap();
        assert_eq!((stored.line(), stored.digest()), (4, Some(through[3])));
    }
}
