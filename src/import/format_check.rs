//! Spotting an input in the wrong format (a binary file, a CSV file read as
//! NDJSON) early, instead of dead-lettering all of it.

use crate::error::{Error, Result};
use crate::import::reader::Item;

/// If every one of the first this many lines read is bad, the import stops.
const ALL_BAD_AFTER: u64 = 100;
/// If more than nine in ten of the first this many lines are bad, it stops.
const MOSTLY_BAD_AFTER: u64 = 1_000;

/// Counts the bad lines among the first ones an import reads (blank lines,
/// and lines skipped on resume, aside) and stops the import with
/// [`Error::WrongFormat`] when the first [`ALL_BAD_AFTER`] are all bad, or
/// more than 90 % of the first [`MOSTLY_BAD_AFTER`] are. A shorter input is
/// judged by the first rule only. Past those lines, it never stops one.
#[derive(Debug, Default)]
pub(crate) struct FormatCheck {
    lines: u64,
    bad: u64,
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
            Item::Bad { .. } => self.line(true),
            Item::Entry(_) => self.line(false),
        }
    }

    fn line(&mut self, bad: bool) -> Result<()> {
        if self.lines >= MOSTLY_BAD_AFTER {
            return Ok(());
        }
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

    /// Feeds `lines` lines, bad where `is_bad(n)` (n from 1), and returns
    /// the line it stopped on, if it did.
    fn stops_at(lines: u64, is_bad: impl Fn(u64) -> bool) -> Option<u64> {
        let mut check = FormatCheck::default();
        (1..=lines).find(|&n| check.line(is_bad(n)).is_err())
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
        assert_eq!(stops_at(5_000, |n| n > 1_000), None, "bad only later");
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
