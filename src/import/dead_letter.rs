//! The dead-letter file: lines that could not be delivered, with the reason.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::client::credentials::base64;
use crate::error::{Error, Result};

/// One line of the dead-letter file (NDJSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The line's number in the input, from 1.
    pub line: u64,
    /// Why it was not delivered.
    pub reason: String,
    /// The line as it was read. When it is not UTF-8, invalid bytes are
    /// replaced here and [`original_base64`](DeadLetter::original_base64)
    /// holds the exact bytes.
    pub original: String,
    /// The line's exact bytes in base64, present only when they are not UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_base64: Option<String>,
}

impl DeadLetter {
    /// A dead letter for `line`, keeping `original` exactly: as text when it
    /// is UTF-8, and in base64 beside a readable copy when it is not.
    pub fn new(line: u64, reason: impl Into<String>, original: &[u8]) -> DeadLetter {
        let (original, original_base64) = match std::str::from_utf8(original) {
            Ok(text) => (text.to_owned(), None),
            Err(_) => (
                String::from_utf8_lossy(original).into_owned(),
                Some(base64(original)),
            ),
        };
        DeadLetter {
            line,
            reason: reason.into(),
            original,
            original_base64,
        }
    }
}

/// Appends dead letters to a file, opened only when the first one comes.
///
/// Never truncates or removes what it did not write: an existing file (an
/// earlier run's letters) is appended to. A resumed import skips the
/// letters that the interrupted run already wrote past its checkpoint, so
/// each appears once.
///
/// Each letter is written whole or not at all: one that does not fit (a
/// full disk) is cut back off, so the file always ends on a complete line,
/// and the error stops the import. A file that a crash left ending in the
/// middle of a line gets a line end before the first letter, so that
/// letter stays a line of its own.
pub(crate) struct DeadLetters {
    path: PathBuf,
    file: Option<Appended<File>>,
    written: u64,
    /// Letters already in the file past the checkpoint, as (line, original).
    already_written: HashSet<(u64, String)>,
}

impl DeadLetters {
    /// A fresh import: appends after whatever the file already holds.
    pub(crate) fn start(path: &Path) -> DeadLetters {
        DeadLetters {
            path: path.to_owned(),
            file: None,
            written: 0,
            already_written: HashSet::new(),
        }
    }

    /// A resumed import: remembers the letters past `checkpoint_line` that
    /// the interrupted run wrote, and will not write them again.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the file cannot be read; [`Error::Checkpoint`] if a
    /// line of it is not a dead letter.
    pub(crate) fn resume(path: &Path, checkpoint_line: u64) -> Result<DeadLetters> {
        let mut letters = DeadLetters::start(path);
        let file = match File::open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(letters),
            Err(err) => return Err(Error::io("open the dead-letter file", path, &err)),
        };
        let mut reader = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            reader
                .read_until(b'\n', &mut line)
                .map_err(|err| Error::io("read the dead-letter file", path, &err))?;
            let torn = match line.strip_suffix(b"\n") {
                Some(whole) => {
                    line.truncate(whole.len());
                    false
                }
                None if line.is_empty() => break,
                None => true,
            };
            let letter: DeadLetter = match serde_json::from_slice(&line) {
                Ok(letter) => letter,
                // Cut short by a crash: the letter will be written again.
                Err(_) if torn => break,
                Err(err) => {
                    return Err(Error::Checkpoint {
                        path: path.to_owned(),
                        reason: format!(
                            "the dead-letter file has a line that is not a dead letter: {err}"
                        ),
                    });
                }
            };
            if letter.line > checkpoint_line {
                letters
                    .already_written
                    .insert((letter.line, letter.original));
            }
        }
        Ok(letters)
    }

    pub(crate) fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        if self
            .already_written
            .remove(&(letter.line, letter.original.clone()))
        {
            self.written += 1; // dead-lettered in this run, written in the last
            return Ok(());
        }
        let mut record = serde_json::to_vec(letter).expect("a dead letter serializes");
        record.push(b'\n');
        let path = self.path.clone();
        self.open()?
            .append(&record)
            .map_err(|err| Error::io("write the dead-letter file", &path, &err))?;
        self.written += 1;
        Ok(())
    }

    /// Makes what was written durable; called before a checkpoint moves past it.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Some(file) = &mut self.file {
            file.file
                .sync_data()
                .map_err(|err| Error::io("write the dead-letter file", &self.path, &err))?;
        }
        Ok(())
    }

    /// Lines this run dead-lettered (including those an interrupted run had
    /// already written).
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn open(&mut self) -> Result<&mut Appended<File>> {
        if self.file.is_none() {
            let open = || -> io::Result<Appended<File>> {
                let file = OpenOptions::new()
                    .create(true)
                    .read(true)
                    .append(true)
                    .open(&self.path)?;
                let end = file.metadata()?.len();
                let mut appended = Appended { file, end };
                if appended.ends_mid_line()? {
                    log::warn!(
                        "{} ended in the middle of a line (cut short by a crash?): \
                         the next dead letter starts on a line of its own",
                        self.path.display()
                    );
                    appended.append(b"\n")?;
                }
                Ok(appended)
            };
            let file =
                open().map_err(|err| Error::io("open the dead-letter file", &self.path, &err))?;
            self.file = Some(file);
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

/// A file written only at its end, by whole records.
struct Appended<F> {
    file: F,
    /// Where the last whole record ends.
    end: u64,
}

/// What [`Appended`] needs of a file: to be written, and cut back.
trait CutBack: Write {
    /// Cuts the file back to its first `len` bytes.
    fn cut_back(&mut self, len: u64) -> io::Result<()>;
}

impl CutBack for File {
    fn cut_back(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

impl<F: CutBack> Appended<F> {
    /// Appends `record` whole, or, when it cannot (a full disk), cuts off
    /// what of it was written and returns the error: the file ends where
    /// the last whole record does.
    fn append(&mut self, record: &[u8]) -> io::Result<()> {
        match self.file.write_all(record) {
            Ok(()) => {
                self.end += record.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Should this fail too, the next run finds the torn line.
                let _ = self.file.cut_back(self.end);
                Err(err)
            }
        }
    }
}

impl Appended<File> {
    /// Whether the file is not empty and its last byte is not a line end.
    fn ends_mid_line(&mut self) -> io::Result<bool> {
        if self.end == 0 {
            return Ok(false);
        }
        let mut last = [0u8];
        self.file.seek(SeekFrom::Start(self.end - 1))?;
        self.file.read_exact(&mut last)?;
        Ok(last[0] != b'\n')
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use cio_test_kit::ScratchDir;

    /// A dead-letter path in a folder of the test's own, removed with it.
    fn scratch(name: &str) -> (ScratchDir, PathBuf) {
        let dir = ScratchDir::new(&format!("dead-letter-{name}"));
        let path = dir.join("dead.ndjson");
        (dir, path)
    }

    fn letter(line: u64) -> DeadLetter {
        DeadLetter::new(line, "bad", format!("line {line}").as_bytes())
    }

    fn read(path: &Path) -> Vec<u64> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<DeadLetter>(l).unwrap().line)
            .collect()
    }

    #[test]
    fn no_dead_letters_no_file_and_an_old_file_is_appended_to_never_removed() {
        let (_dir, path) = scratch("lazy");
        let mut letters = DeadLetters::start(&path);
        letters.flush().unwrap();
        assert!(!path.exists(), "no letter, no file");
        let old = serde_json::to_string(&letter(1)).unwrap();
        fs::write(&path, format!("{old}\n")).unwrap();
        let mut letters = DeadLetters::start(&path);
        letters.flush().unwrap();
        assert_eq!(read(&path), vec![1], "an earlier run's letters stay");
        letters.write(&letter(3)).unwrap();
        letters.flush().unwrap();
        assert_eq!(read(&path), vec![1, 3]);
        assert_eq!(letters.written(), 1);
    }

    #[test]
    fn resuming_appends_and_writes_each_letter_once() {
        let (_dir, path) = scratch("resume");
        let mut letters = DeadLetters::start(&path);
        for line in [2, 5, 9, 12] {
            letters.write(&letter(line)).unwrap();
        }
        letters.flush().unwrap();
        drop(letters);
        // Interrupted at checkpoint 9: line 12 will be met again.
        let mut resumed = DeadLetters::resume(&path, 9).unwrap();
        resumed.write(&letter(12)).unwrap();
        resumed.write(&letter(14)).unwrap();
        resumed.flush().unwrap();
        assert_eq!(read(&path), vec![2, 5, 9, 12, 14]);
        assert_eq!(
            resumed.written(),
            2,
            "line 12 counts, though it was written before"
        );
    }

    #[test]
    fn bytes_that_are_not_utf8_are_kept_exactly_in_base64() {
        let raw = b"{\"id\":\"\xff\xfe\"}";
        let letter = DeadLetter::new(7, "not UTF-8", raw);
        assert_eq!(letter.original, "{\"id\":\"\u{fffd}\u{fffd}\"}");
        assert_eq!(
            letter.original_base64.as_deref(),
            Some(base64(raw).as_str())
        );
        let text = DeadLetter::new(8, "bad", b"{\"ok\":1}");
        assert_eq!(text.original, "{\"ok\":1}");
        assert_eq!(text.original_base64, None);
        let json = serde_json::to_string(&text).unwrap();
        assert!(!json.contains("original_base64"), "{json}");
    }

    /// A file that takes `room` bytes, then fails as a full disk does:
    /// after a partial write.
    struct FullDisk {
        bytes: Vec<u8>,
        room: usize,
    }

    impl Write for FullDisk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let fits = buf.len().min(self.room - self.bytes.len());
            if fits == 0 {
                return Err(io::Error::new(io::ErrorKind::StorageFull, "no space"));
            }
            self.bytes.extend_from_slice(&buf[..fits]);
            Ok(fits)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl CutBack for FullDisk {
        fn cut_back(&mut self, len: u64) -> io::Result<()> {
            self.bytes.truncate(len as usize);
            Ok(())
        }
    }

    /// Issue 24: on a full disk the last record was cut mid-line.
    #[test]
    fn on_a_full_disk_a_record_is_written_whole_or_not_at_all() {
        let mut file = Appended {
            file: FullDisk {
                bytes: Vec::new(),
                room: 25,
            },
            end: 0,
        };
        file.append(b"{\"line\":1}\n").unwrap();
        let err = file.append(b"{\"line\":2,\"long\":true}\n").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(file.file.bytes, b"{\"line\":1}\n", "ends on a whole line");
        file.file.room = 100;
        file.append(b"{\"line\":3}\n").unwrap();
        assert_eq!(file.file.bytes, b"{\"line\":1}\n{\"line\":3}\n");
    }

    /// Issue 24: the next run appended to a line a crash had cut.
    #[test]
    fn a_torn_last_line_is_ended_before_the_next_letter_and_ignored_on_resume() {
        let (_dir, path) = scratch("torn");
        let whole = serde_json::to_string(&letter(1)).unwrap();
        let torn = &serde_json::to_string(&letter(4)).unwrap()[..10];
        fs::write(&path, format!("{whole}\n{torn}")).unwrap();
        let mut letters = DeadLetters::resume(&path, 0).unwrap();
        letters.write(&letter(4)).unwrap();
        letters.write(&letter(5)).unwrap();
        letters.flush().unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().nth(1), Some(torn), "the torn line kept, alone");
        let read: Vec<u64> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<DeadLetter>(l).ok())
            .map(|l| l.line)
            .collect();
        assert_eq!(read, vec![1, 4, 5], "line 4 written again, whole");
        assert_eq!(letters.written(), 2);
    }

    #[test]
    fn a_corrupt_dead_letter_file_stops_a_resume() {
        let (_dir, path) = scratch("corrupt");
        fs::write(&path, "not json\n").unwrap();
        assert!(matches!(
            DeadLetters::resume(&path, 1),
            Err(Error::Checkpoint { .. })
        ));
    }
}
