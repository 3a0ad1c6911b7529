//! The checkpoint: how far an import has got, kept on disk so it can resume.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::import::api::ImportApi;
use crate::import::content_digest::ContentDigest;

/// How far an import has got, as its checkpoint file says: every line up to
/// [`line`](Checkpoint::line) is accounted for (acknowledged by the server,
/// or dead-lettered). The importer writes it; read one with
/// [`load`](Checkpoint::load) to see how far an import got. The file's
/// format is the importer's own business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    import_id: String,
    line: u64,
    delivered: u64,
    dead_lettered: u64,
    /// The digest of the input up to and including `line`; `None` in the
    /// checkpoints of versions that did not keep one.
    digest: Option<ContentDigest>,
    /// The API the import sends to; `None` in the checkpoints of versions
    /// that did not keep it.
    api: Option<ImportApi>,
}

/// The file's format, version 1. `digest` and `api` came later: files
/// without them still load, and older versions ignore them.
#[derive(Serialize, Deserialize)]
struct File {
    version: u32,
    import_id: String,
    line: u64,
    delivered: u64,
    dead_lettered: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    /// `"track"` or `"pipelines"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    api: Option<String>,
}

/// The name of `api` in the file.
fn api_name(api: ImportApi) -> &'static str {
    match api {
        ImportApi::Track => "track",
        ImportApi::Pipelines => "pipelines",
    }
}

impl Checkpoint {
    pub(crate) fn new(
        import_id: String,
        line: u64,
        delivered: u64,
        dead_lettered: u64,
        digest: ContentDigest,
        api: ImportApi,
    ) -> Self {
        Checkpoint {
            import_id,
            line,
            delivered,
            dead_lettered,
            digest: Some(digest),
            api: Some(api),
        }
    }

    /// The digest of the input up to [`line`](Checkpoint::line), if the
    /// checkpoint has one (a resume compares it through its
    /// [`resume_point`](Checkpoint::resume_point)).
    pub(crate) fn digest(&self) -> Option<ContentDigest> {
        self.digest
    }

    /// What a resume from this checkpoint, kept at `path`, checks its
    /// input against.
    pub(crate) fn resume_point(&self, path: &Path) -> ResumePoint {
        ResumePoint {
            path: path.to_owned(),
            line: self.line,
            digest: self.digest,
        }
    }

    /// The import's id: events without one get ids derived from it and their
    /// line's bytes (see "Event ids" on [`Importer`](crate::Importer)), so a
    /// resumed import repeats the same ids.
    pub fn import_id(&self) -> &str {
        &self.import_id
    }

    /// Every line up to and including this one (from 1) is done.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// Lines delivered, over every run of the import.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Lines dead-lettered, over every run of the import.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
    }

    /// The API the import sends its lines to; `None` in a checkpoint written
    /// by a version that did not record it. A resume must send to the same
    /// one: the same lines mean different calls to the other.
    pub fn api(&self) -> Option<ImportApi> {
        self.api
    }

    /// Reads a checkpoint file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be read, [`Error::Checkpoint`] if it is not a
    /// checkpoint this version understands.
    pub fn load(path: &Path) -> Result<Checkpoint> {
        let text =
            fs::read_to_string(path).map_err(|err| Error::io("read the checkpoint", path, &err))?;
        let file: File = serde_json::from_str(&text).map_err(|err| Error::Checkpoint {
            path: path.to_owned(),
            reason: format!("not a checkpoint file: {err}"),
        })?;
        if file.version != 1 {
            return Err(Error::Checkpoint {
                path: path.to_owned(),
                reason: format!("version {} is not supported", file.version),
            });
        }
        let digest = file
            .digest
            .as_deref()
            .map(|text| {
                ContentDigest::parse(text).ok_or_else(|| Error::Checkpoint {
                    path: path.to_owned(),
                    reason: format!("its digest {text:?} is not 32 hexadecimal digits"),
                })
            })
            .transpose()?;
        let api = file
            .api
            .as_deref()
            .map(|name| {
                [ImportApi::Track, ImportApi::Pipelines]
                    .into_iter()
                    .find(|&api| api_name(api) == name)
                    .ok_or_else(|| Error::Checkpoint {
                        path: path.to_owned(),
                        reason: format!("its api {name:?} is neither \"track\" nor \"pipelines\""),
                    })
            })
            .transpose()?;
        Ok(Checkpoint {
            import_id: file.import_id,
            line: file.line,
            delivered: file.delivered,
            dead_lettered: file.dead_lettered,
            digest,
            api,
        })
    }

    /// Writes the checkpoint atomically: to a temporary file beside it,
    /// synced, then renamed over it, so a crash leaves the old one or the new
    /// one, never half of either.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be written.
    pub(crate) fn store(&self, path: &Path) -> Result<()> {
        let temporary = temporary_path(path);
        let contents = File {
            version: 1,
            import_id: self.import_id.clone(),
            line: self.line,
            delivered: self.delivered,
            dead_lettered: self.dead_lettered,
            digest: self.digest.map(|digest| digest.to_string()),
            api: self.api.map(|api| api_name(api).to_owned()),
        };
        let write = || -> io::Result<()> {
            let mut file = fs::File::create(&temporary)?;
            serde_json::to_writer(&mut file, &contents)?;
            file.write_all(b"\n")?;
            file.sync_data()?;
            fs::rename(&temporary, path)
        };
        write().map_err(|err| Error::io("write the checkpoint", path, &err))
    }
}

/// Where a resumed import starts after, and what the input it was kept for
/// held up to there: the input must reach that line with the same digest,
/// or lines that were never sent would be skipped.
#[derive(Debug)]
pub(crate) struct ResumePoint {
    path: PathBuf,
    line: u64,
    /// `None` in checkpoints written before digests were kept.
    digest: Option<ContentDigest>,
}

impl ResumePoint {
    /// Checks the input's `digest` through `line`, if it is the line the
    /// checkpoint names.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] when the input differs from the one the
    /// checkpoint was kept for.
    pub(crate) fn check_line(&self, line: u64, digest: ContentDigest) -> Result<()> {
        match self.digest {
            Some(kept) if line == self.line && kept != digest => Err(Error::Checkpoint {
                path: self.path.clone(),
                reason: format!(
                    "the input's first {line} lines are not the ones it was kept for: resume with the same input"
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Checks that the input, ending at `last_line`, reached the checkpoint.
    ///
    /// # Errors
    ///
    /// [`Error::Checkpoint`] when it ended before.
    pub(crate) fn check_end(&self, last_line: u64) -> Result<()> {
        if last_line < self.line {
            return Err(Error::Checkpoint {
                path: self.path.clone(),
                reason: format!(
                    "it names line {}, but the input ends at line {last_line}: it was kept for another input",
                    self.line
                ),
            });
        }
        Ok(())
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
    use cio_test_kit::ScratchDir;

    /// A checkpoint path in a folder of the test's own, removed with it.
    fn scratch(name: &str) -> (ScratchDir, PathBuf) {
        let dir = ScratchDir::new(&format!("checkpoint-{name}"));
        let path = dir.join("import.checkpoint");
        (dir, path)
    }

    #[test]
    fn a_stored_checkpoint_loads_back_and_leaves_no_temporary_file() {
        let (_dir, path) = scratch("roundtrip");
        let mut digest = ContentDigest::default();
        digest.update(b"input\n");
        for api in [ImportApi::Track, ImportApi::Pipelines] {
            let checkpoint = Checkpoint::new("abc".into(), 42, 40, 2, digest, api);
            checkpoint.store(&path).unwrap();
            assert_eq!(Checkpoint::load(&path).unwrap(), checkpoint);
            assert_eq!(Checkpoint::load(&path).unwrap().api(), Some(api));
        }
        assert!(!temporary_path(&path).exists());
    }

    #[test]
    fn a_garbled_or_missing_checkpoint_is_a_clear_error() {
        let (_dir, path) = scratch("garbled");
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
        fs::write(
            &path,
            r#"{"version":1,"import_id":"x","line":1,"delivered":1,"dead_lettered":0,"digest":"zz"}"#,
        )
        .unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(err.to_string().contains("digest"), "{err}");
        fs::write(
            &path,
            r#"{"version":1,"import_id":"x","line":1,"delivered":1,"dead_lettered":0,"api":"app"}"#,
        )
        .unwrap();
        let err = Checkpoint::load(&path).unwrap_err();
        assert!(
            err.to_string().contains(r#"its api "app" is neither"#),
            "{err}"
        );
    }

    #[test]
    fn a_checkpoint_from_before_digests_and_apis_still_loads() {
        let (_dir, path) = scratch("old");
        fs::write(
            &path,
            r#"{"version":1,"import_id":"x","line":7,"delivered":6,"dead_lettered":1}"#,
        )
        .unwrap();
        let checkpoint = Checkpoint::load(&path).unwrap();
        assert_eq!(
            (checkpoint.line(), checkpoint.digest(), checkpoint.api()),
            (7, None, None)
        );
    }
}
