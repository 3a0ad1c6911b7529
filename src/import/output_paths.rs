//! The files an import writes, checked before the first request: never
//! destroy what the import did not create.
//!
//! - The dead-letter file is appended to. It must not be the input or the
//!   checkpoint, and must be a regular file (or a link to one) if it exists:
//!   a device, a directory or a FIFO is refused.
//! - The checkpoint's folder must be writable, and only one import may use a
//!   checkpoint at a time: [`CheckpointLock`] holds an OS file lock on a
//!   `.lock` file beside it for as long as the import runs. The OS drops the
//!   lock when the process dies, even by `kill -9`, so a crashed import never
//!   blocks its own resume.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Checks the dead-letter path against the input and the checkpoint, and
/// that a file could be created or appended to there.
///
/// # Errors
///
/// [`Error::InvalidConfig`] naming `dead_letter` when it is the input, the
/// checkpoint or not a regular file; [`Error::Io`] when its folder cannot be
/// written.
pub(crate) fn check_dead_letter(
    dead_letter: &Path,
    input: Option<&Path>,
    checkpoint: Option<&Path>,
) -> Result<()> {
    let shown = dead_letter.display();
    for (other, what) in [(input, "the input"), (checkpoint, "the checkpoint")] {
        if let Some(other) = other
            && same_file(dead_letter, other)
        {
            return Err(Error::invalid(
                "dead_letter",
                shown,
                match what {
                    "the input" => "a path other than the input's",
                    _ => "a path other than the checkpoint's",
                },
            ));
        }
    }
    match fs::metadata(dead_letter) {
        // `metadata` follows links: a link to a regular file is fine.
        Ok(meta) if meta.is_file() => check_appendable(dead_letter),
        Ok(_) => Err(Error::invalid(
            "dead_letter",
            shown,
            "a regular file (or a link to one) to append to",
        )),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            if fs::symlink_metadata(dead_letter).is_ok() {
                return Err(Error::invalid(
                    "dead_letter",
                    shown,
                    "a path that is not a dangling link",
                ));
            }
            check_folder_writable("dead-letter file", dead_letter)
        }
        Err(err) => Err(Error::io("inspect the dead-letter file", dead_letter, &err)),
    }
}

/// An OS lock on `<checkpoint>.lock`: while it is held, no other import can
/// use the same checkpoint. Released when dropped, or when the process dies.
#[derive(Debug)]
pub(crate) struct CheckpointLock {
    _file: File,
}

impl CheckpointLock {
    /// Takes the lock, creating the lock file if needed; checks on the way
    /// that the checkpoint's folder is writable.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] when another import holds it; [`Error::Io`] when
    /// the lock file cannot be created or the checkpoint is not a regular
    /// file.
    pub(crate) fn acquire(checkpoint: &Path) -> Result<CheckpointLock> {
        if let Ok(meta) = fs::metadata(checkpoint)
            && !meta.is_file()
        {
            return Err(Error::invalid(
                "checkpoint",
                checkpoint.display(),
                "a regular file",
            ));
        }
        check_folder_writable("checkpoint", checkpoint)?;
        let mut name = checkpoint.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|err| Error::io("create the checkpoint's lock file", &path, &err))?;
        match file.try_lock() {
            Ok(()) => Ok(CheckpointLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Checkpoint {
                path: checkpoint.to_owned(),
                reason: "another import is using this checkpoint (its lock file is held)".into(),
            }),
            Err(fs::TryLockError::Error(err)) => Err(Error::io("lock the checkpoint", &path, &err)),
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The path with links and `.`/`..` resolved; for a file not there yet, its
/// folder's resolved path joined with its name.
fn resolved(path: &Path) -> Option<PathBuf> {
    fs::canonicalize(path).ok().or_else(|| {
        let folder = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        Some(fs::canonicalize(folder).ok()?.join(path.file_name()?))
    })
}

fn check_appendable(path: &Path) -> Result<()> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .map(drop)
        .map_err(|err| Error::io("open the dead-letter file for appending", path, &err))
}

/// Whether a file can be created in `path`'s folder, by creating and removing
/// a uniquely named probe there (never touching anything else).
fn check_folder_writable(what: &'static str, path: &Path) -> Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let probe = folder.join(format!(
        ".cio-ratelimit-probe-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let action = match what {
        "checkpoint" => "write the checkpoint in",
        _ => "write the dead-letter file in",
    };
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|err| Error::io(action, folder, &err))?;
    let _ = fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cio_test_kit::ScratchDir;

    fn scratch() -> ScratchDir {
        ScratchDir::new("output-paths")
    }

    #[test]
    fn an_absent_or_regular_dead_letter_file_is_accepted_and_left_as_it_was() {
        let dir = scratch();
        let letters = dir.join("letters.ndjson");
        check_dead_letter(&letters, None, None).unwrap();
        assert!(!letters.exists(), "checking creates nothing");
        fs::write(&letters, "earlier run\n").unwrap();
        check_dead_letter(&letters, None, None).unwrap();
        assert_eq!(fs::read_to_string(&letters).unwrap(), "earlier run\n");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "no probe left");
    }

    #[test]
    fn the_input_or_the_checkpoint_is_refused_as_the_dead_letter_file() {
        let dir = scratch();
        let input = dir.join("people.ndjson");
        fs::write(&input, "{}\n").unwrap();
        let err = check_dead_letter(&input, Some(&input), None).unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidConfig {
                    setting: "dead_letter",
                    ..
                }
            ),
            "{err}"
        );
        // The same file by another spelling.
        let other_spelling = dir.join(".").join("people.ndjson");
        assert!(check_dead_letter(&other_spelling, Some(&input), None).is_err());
        let checkpoint = dir.join("people.checkpoint");
        let checkpoint_elsewise = dir.join(".").join("people.checkpoint");
        let err =
            check_dead_letter(&checkpoint, Some(&input), Some(&checkpoint_elsewise)).unwrap_err();
        assert!(err.to_string().contains("checkpoint"), "{err}");
        assert_eq!(fs::read_to_string(&input).unwrap(), "{}\n");
    }

    #[cfg(unix)]
    #[test]
    fn links_to_files_are_followed_but_devices_folders_and_dangling_links_refused() {
        let dir = scratch();
        let target = dir.join("target.ndjson");
        fs::write(&target, "kept\n").unwrap();
        let link = dir.join("link.ndjson");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        check_dead_letter(&link, None, None).unwrap();
        let input_link = dir.join("input-link.ndjson");
        std::os::unix::fs::symlink(&target, &input_link).unwrap();
        assert!(
            check_dead_letter(&input_link, Some(&target), None).is_err(),
            "a link to the input is the input"
        );
        for refused in [Path::new("/dev/null"), dir.path()] {
            let err = check_dead_letter(refused, None, None).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidConfig {
                        setting: "dead_letter",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let dangling = dir.join("dangling.ndjson");
        std::os::unix::fs::symlink(dir.join("nowhere"), &dangling).unwrap();
        assert!(check_dead_letter(&dangling, None, None).is_err());
        assert_eq!(fs::read_to_string(&target).unwrap(), "kept\n");
    }

    #[test]
    fn an_unwritable_folder_is_found_before_anything_is_sent() {
        let dir = scratch();
        let missing = dir.join("no-such-folder");
        let err = check_dead_letter(&missing.join("letters.ndjson"), None, None).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
        let err = CheckpointLock::acquire(&missing.join("import.checkpoint")).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn one_import_at_a_time_holds_a_checkpoint() {
        let dir = scratch();
        let checkpoint = dir.join("import.checkpoint");
        let held = CheckpointLock::acquire(&checkpoint).unwrap();
        let err = CheckpointLock::acquire(&checkpoint).unwrap_err();
        assert!(matches!(err, Error::Checkpoint { .. }), "{err}");
        assert!(err.to_string().contains("another import"), "{err}");
        drop(held);
        let _again = CheckpointLock::acquire(&checkpoint).unwrap();
        assert!(dir.join("import.checkpoint.lock").is_file());
    }
}
