//! The checkpoint: how far an import has got, kept on disk so it can resume.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a checkpoint file holds. `line` only ever advances over a contiguous
/// prefix of the input the server acknowledged (or that was dead-lettered):
/// every line up to it is accounted for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version, for later changes.
    pub version: u32,
    /// The import's id: events without one get ids derived from it and their
    /// line, so a resumed import repeats the same ids.
    pub import_id: String,
    /// Every line up to and including this one (1-based) is done.
    pub line: u64,
    /// Lines delivered so far.
    pub delivered: u64,
    /// Lines dead-lettered so far.
    pub dead_lettered: u64,
}

impl Checkpoint {
    /// Reads a checkpoint file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read, [`Error::Checkpoint`] if it is not a
    /// checkpoint this version understands.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let text =
            fs::read_to_string(path).map_err(|err| Error::io("read the checkpoint", path, &err))?;
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|err| Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("not a checkpoint file: {err}"),
            })?;
        if checkpoint.version != 1 {
            return Err(Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("version {} is not supported", checkpoint.version),
            });
        }
        Ok(checkpoint)
    }

    /// Writes the checkpoint atomically: to a temporary file beside it,
    /// synced, then renamed over it, so a crash leaves the old one or the new
    /// one, never half of either.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be written.
    pub fn store(&self, path: &Path) -> Result<()> {
        let temporary = temporary_path(path);
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            serde_json::to_writer(&mut file, self)?;
            file.write_all(b"\n")?;
            file.sync_data()?;
            fs::rename(&temporary, path)
        };
        write().map_err(|err| Error::io("write the checkpoint", path, &err))
    }
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cio-checkpoint-{}-{name}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        dir.join("import.checkpoint")
    }

    #[test]
    fn a_stored_checkpoint_loads_back_and_leaves_no_temporary_file() {
        let path = scratch("roundtrip");
        let checkpoint = Checkpoint {
            version: 1,
            import_id: "abc".into(),
            line: 42,
            delivered: 40,
            dead_lettered: 2,
        };
        checkpoint.store(&path).unwrap();
        assert_eq!(Checkpoint::load(&path).unwrap(), checkpoint);
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_garbled_or_missing_checkpoint_is_a_clear_error() {
        let path = scratch("garbled");
        fs::write(&path, "{\"line\": ").unwrap();
        assert!(matches!(
            Checkpoint::load(&path),
            Err(Error::Checkpoint { .. })
        ));
        fs::write(
            &path,
            r#"{"version":9,"import_id":"x","line":1,"delivered":1,"dead_lettered":0}"#,
        )
        .unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(err.to_string().contains("version 9"), "{err}");
        assert!(matches!(
            Checkpoint::load(&path.with_extension("missing")),
            Err(Error::Io { .. })
        ));
    }
}
