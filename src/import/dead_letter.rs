//! The dead-letter file: lines that could not be delivered, with the reason.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// One line of the dead-letter file (NDJSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The line's number in the input, from 1.
    pub line: u64,
    /// Why it was not delivered.
    pub reason: String,
    /// The line as it was read (invalid UTF-8 replaced).
    pub original: String,
}

/// Appends dead letters to a file, created only when the first one comes.
pub(crate) struct DeadLetters {
    path: PathBuf,
    file: Option<BufWriter<File>>,
    written: u64,
}

impl DeadLetters {
    /// A fresh import: an old dead-letter file at `path` belongs to an earlier
    /// run and is removed.
    pub(crate) fn start(path: &Path) -> Result<DeadLetters> {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("remove the old dead-letter file", path, &err)),
        }
        Ok(DeadLetters {
            path: path.to_owned(),
            file: None,
            written: 0,
        })
    }

    /// A resumed import: keeps the dead letters up to `checkpoint_line` and
    /// drops later ones, which the resumed run will meet again.
    pub(crate) fn resume(path: &Path, checkpoint_line: u64) -> Result<DeadLetters> {
        let kept = match File::open(path) {
            Ok(file) => {
                let mut kept = Vec::new();
                for line in BufReader::new(file).lines() {
                    let line =
                        line.map_err(|err| Error::io("read the dead-letter file", path, &err))?;
                    let letter: DeadLetter =
                        serde_json::from_str(&line).map_err(|err| Error::Checkpoint {
                            path: path.to_owned(),
                            reason: format!(
                                "the dead-letter file has a line that is not a dead letter: {err}"
                            ),
                        })?;
                    if letter.line <= checkpoint_line {
                        kept.push(line);
                    }
                }
                kept
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(Error::io("open the dead-letter file", path, &err)),
        };
        let mut letters = DeadLetters::start(path)?;
        if !kept.is_empty() {
            let file = letters.open()?;
            for line in &kept {
                writeln!(file, "{line}")
                    .map_err(|err| Error::io("write the dead-letter file", path, &err))?;
            }
            letters.flush()?;
        }
        Ok(letters)
    }

    pub(crate) fn write(&mut self, letter: &DeadLetter) -> Result<()> {
        let path = self.path.clone();
        let file = self.open()?;
        serde_json::to_writer(&mut *file, letter)
            .map_err(io::Error::from)
            .and_then(|()| file.write_all(b"\n"))
            .map_err(|err| Error::io("write the dead-letter file", &path, &err))?;
        self.written += 1;
        Ok(())
    }

    /// Makes what was written durable; called before a checkpoint moves past it.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if let Some(file) = &mut self.file {
            file.flush()
                .and_then(|()| file.get_ref().sync_data())
                .map_err(|err| Error::io("write the dead-letter file", &self.path, &err))?;
        }
        Ok(())
    }

    /// Dead letters written by this run.
    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    fn open(&mut self) -> Result<&mut BufWriter<File>> {
        if self.file.is_none() {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .map_err(|err| Error::io("create the dead-letter file", &self.path, &err))?;
            self.file = Some(BufWriter::new(file));
        }
        Ok(self.file.as_mut().expect("opened above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cio-dead-letter-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir.join("dead.ndjson")
    }

    fn letter(line: u64) -> DeadLetter {
        DeadLetter {
            line,
            reason: "bad".into(),
            original: format!("line {line}"),
        }
    }

    fn read(path: &Path) -> Vec<u64> {
        fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<DeadLetter>(l).unwrap().line)
            .collect()
    }

    #[test]
    fn no_dead_letters_no_file_and_an_old_file_is_removed() {
        let path = scratch("lazy");
        fs::write(&path, "old run\n").unwrap();
        let mut letters = DeadLetters::start(&path).unwrap();
        letters.flush().unwrap();
        assert!(!path.exists());
        letters.write(&letter(3)).unwrap();
        letters.flush().unwrap();
        assert_eq!(read(&path), vec![3]);
        assert_eq!(letters.written(), 1);
    }

    #[test]
    fn resuming_keeps_letters_up_to_the_checkpoint_only() {
        let path = scratch("resume");
        let mut letters = DeadLetters::start(&path).unwrap();
        for line in [2, 5, 9, 12] {
            letters.write(&letter(line)).unwrap();
        }
        letters.flush().unwrap();
        drop(letters);
        let mut resumed = DeadLetters::resume(&path, 9).unwrap();
        resumed.write(&letter(12)).unwrap();
        resumed.flush().unwrap();
        assert_eq!(read(&path), vec![2, 5, 9, 12]);
    }

    #[test]
    fn a_corrupt_dead_letter_file_stops_a_resume() {
        let path = scratch("corrupt");
        fs::write(&path, "not json\n").unwrap();
        assert!(matches!(
            DeadLetters::resume(&path, 1),
            Err(Error::Checkpoint { .. })
        ));
    }
}
