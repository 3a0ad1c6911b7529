//! A folder of a test's own that goes away with it.

use std::ffi::OsString;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Set to `1` to keep every scratch folder, passed or failed.
const KEEP: &str = "CIO_KEEP_SCRATCH";

/// A new, empty folder under the system's temporary folder, named after the
/// test binary, the process, `name` and a counter (two tests of one name
/// never share one). It derefs to its [`Path`].
///
/// Dropped, it is removed with everything in it, unless the test is failing
/// (the drop comes while a panic unwinds) or `CIO_KEEP_SCRATCH=1` is set:
/// then it stays, and its path is printed on standard error, so that a
/// failure can be inspected.
///
/// ```
/// let path = {
///     let dir = cio_test_kit::ScratchDir::new("example");
///     std::fs::write(dir.join("input.ndjson"), "{}\n").unwrap();
///     dir.to_path_buf()
/// };
/// # if std::env::var_os("CIO_KEEP_SCRATCH").is_none() {
/// assert!(!path.exists(), "removed on drop");
/// # }
/// ```
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Makes the folder.
    ///
    /// # Panics
    ///
    /// If it cannot be made.
    pub fn new(name: &str) -> ScratchDir {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_stem().map(|stem| stem.to_owned()))
            .unwrap_or_else(|| OsString::from("test"));
        let mut folder = OsString::from("cio-");
        folder.push(binary);
        folder.push(format!(
            "-{}-{name}-{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        let path = std::env::temp_dir().join(folder);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot make {}: {error}", path.display()));
        ScratchDir { path }
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Deref for ScratchDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let keep = std::env::var(KEEP).as_deref() == Ok("1");
        if keep || std::thread::panicking() {
            eprintln!("scratch folder kept: {}", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ScratchDir;

    #[test]
    fn a_passing_test_leaves_nothing_behind() {
        let dir = ScratchDir::new("passing");
        std::fs::write(dir.join("file"), "x").unwrap();
        let path = dir.to_path_buf();
        drop(dir);
        if std::env::var_os(super::KEEP).is_none() {
            assert!(!path.exists());
        }
    }

    #[test]
    fn a_failing_test_keeps_its_folder_to_inspect() {
        let mut kept = None;
        let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let dir = ScratchDir::new("failing");
            kept = Some(dir.to_path_buf());
            panic!("the test fails");
        }));
        assert!(failed.is_err());
        let kept = kept.unwrap();
        assert!(kept.is_dir(), "{} was removed", kept.display());
        std::fs::remove_dir_all(kept).unwrap();
    }

    #[test]
    fn two_folders_of_one_name_are_two_folders() {
        let (a, b) = (ScratchDir::new("same"), ScratchDir::new("same"));
        assert_ne!(a.path(), b.path());
    }
}
