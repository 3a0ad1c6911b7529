//! Spotting an input in the wrong format (a binary file, a CSV file read as
//! NDJSON) early, instead of dead-lettering all of it.

use std::collections::VecDeque;

use crate::error::{Error, Result};
use crate::import::reader::Item;

/// If every one of the first this many lines read is bad, the import stops.
const ALL_BAD_AFTER: u64 = 100;
/// If more than nine in ten of the first this many lines are bad, it stops.
const MOSTLY_BAD_AFTER: u64 = 1_000;
/// If more than nine in ten of the last this many lines read, wherever they
/// are in the input, cannot be decoded (not UTF-8, not JSON), it stops.
const WINDOW: usize = 1_000;

/// Counts the bad lines an import reads (blank lines, and lines skipped on
/// resume, aside) and stops the import with [`Error::WrongFormat`] when the
/// first [`ALL_BAD_AFTER`] are all bad, when more than 90 % of the first
/// [`MOSTLY_BAD_AFTER`] are, or when more than 90 % of the last [`WINDOW`]
/// cannot be decoded at all: binary bytes after good lines (a file with a
/// corrupt tail, an archive appended) stop the import there instead of
/// filling the dead-letter file. A shorter input is judged by the first
/// rule only. Lines that are JSON but not valid operations count only
/// towards the first two rules: a run of them further on is a problem of
/// the data, not of its format, and each goes to the dead-letter file.
#[derive(Debug, Default)]
pub(crate) struct FormatCheck {
    lines: u64,
    bad: u64,
    /// Whether each of the last [`WINDOW`] lines could not be decoded.
    recent: VecDeque<bool>,
    recent_undecodable: u64,
}

impl FormatCheck {
    /// Counts `item`.
    ///
    /// # Errors
    ///
    /// [`Error::WrongFormat`] when the lines so far say the input is not in
    /// the format being read.
    pub(crate) fn count(&mut self, item: &Item) -> Result<()> {
        match item {
            Item::Skipped | Item::Blank => Ok(()),
            Item::Bad { reason, original } => {
                let undecodable =
                    std::str::from_utf8(original).is_err() || reason.starts_with("invalid JSON");
                self.line(true, undecodable)
            }
            Item::Entry(_) => self.line(false, false),
        }
    }

    fn line(&mut self, bad: bool, undecodable: bool) -> Result<()> {
        if self.lines < MOSTLY_BAD_AFTER {
            self.lines += 1;
            self.bad += u64::from(bad);
            let wrong = match self.lines {
                ALL_BAD_AFTER => self.bad == ALL_BAD_AFTER,
                MOSTLY_BAD_AFTER => self.bad * 10 > MOSTLY_BAD_AFTER * 9,
                _ => false,
            };
            if wrong {
                return Err(Error::WrongFormat {
                    lines: self.lines,
                    bad: self.bad,
                });
            }
        }
        if self.recent.len() == WINDOW && self.recent.pop_front() == Some(true) {
            self.recent_undecodable -= 1;
        }
        self.recent.push_back(undecodable);
        self.recent_undecodable += u64::from(undecodable);
        if self.recent.len() == WINDOW && self.recent_undecodable * 10 > WINDOW as u64 * 9 {
            return Err(Error::WrongFormat {
                lines: WINDOW as u64,
                bad: self.recent_undecodable,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad() -> Item {
        Item::Bad {
            reason: "invalid JSON".into(),
            original: b"\x00\x01".to_vec(),
        }
    }

    /// Feeds `lines` lines, undecodable where `is_bad(n)` (n from 1), and
    /// returns the line it stopped on, if it did.
    fn stops_at(lines: u64, is_bad: impl Fn(u64) -> bool) -> Option<u64> {
        let mut check = FormatCheck::default();
        (1..=lines).find(|&n| check.line(is_bad(n), is_bad(n)).is_err())
    }

    /// Issue 24: 20 MB of random bytes after 1,000 good lines went whole
    /// into the dead-letter file: only the first lines were looked at.
    #[test]
    fn mostly_undecodable_lines_stop_it_wherever_they_start() {
        assert_eq!(stops_at(50_000, |n| n > 20_000), Some(20_901));
        assert_eq!(
            stops_at(50_000, |n| n > 20_000 && n % 10 == 0),
            None,
            "one in ten"
        );
        assert_eq!(
            stops_at(50_000, |n| n > 20_000 && n % 10 != 0),
            None,
            "exactly nine in ten"
        );
        assert_eq!(
            stops_at(50_000, |n| n > 20_000 && n % 20 != 0),
            Some(20_948),
            "nineteen in twenty: stopped once 901 of the last 1,000 are"
        );
    }

    #[test]
    fn a_run_of_json_lines_that_are_not_operations_later_on_goes_to_the_dead_letters() {
        let mut check = FormatCheck::default();
        let wrong_operation = Item::Bad {
            reason: "invalid operation: unknown type \"robot\"".into(),
            original: br#"{"type":"robot"}"#.to_vec(),
        };
        for _ in 0..MOSTLY_BAD_AFTER {
            check.line(false, false).unwrap();
        }
        for _ in 0..5_000 {
            check.count(&wrong_operation).unwrap();
        }
        let stopped = (0..WINDOW).map(|_| check.count(&bad())).last();
        assert!(matches!(stopped, Some(Err(Error::WrongFormat { .. }))));
    }

    #[test]
    fn a_hundred_bad_lines_in_a_row_at_the_start_stop_it_at_once() {
        assert_eq!(stops_at(5_000, |_| true), Some(100));
    }

    #[test]
    fn more_than_nine_in_ten_bad_among_the_first_thousand_stop_it_there() {
        assert_eq!(stops_at(5_000, |n| n % 20 != 0), Some(1_000), "95 % bad");
        assert_eq!(stops_at(5_000, |n| n % 10 != 0), None, "exactly 90 % bad");
        assert_eq!(stops_at(50, |_| true), None, "too short to judge");
        assert_eq!(
            stops_at(1_500, |n| n > 1_000),
            None,
            "bad only later, and fewer than the window"
        );
    }

    #[test]
    fn blank_and_skipped_lines_do_not_count() {
        let mut check = FormatCheck::default();
        for _ in 0..1_000 {
            check.count(&Item::Blank).unwrap();
            check.count(&Item::Skipped).unwrap();
        }
        let stopped = (0..ALL_BAD_AFTER).map(|_| check.count(&bad())).last();
        assert!(matches!(
            stopped,
            Some(Err(Error::WrongFormat {
                lines: 100,
                bad: 100
            }))
        ));
    }
}
