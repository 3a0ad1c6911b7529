//! `import --metrics-file PATH`: the import's counts in Prometheus's text
//! exposition format, for node_exporter's textfile collector or any scraper
//! of files, written every few seconds and at the end.
//!
//! Each write goes to a temporary file in the same directory (named
//! `.NAME.PID.tmp`, which the textfile collector ignores), then is renamed
//! over PATH: a reader sees the old file or the new one, never half of one.
//!
//! The file opens with a comment naming this command. An existing PATH is
//! replaced only when it starts with that comment, i.e. an earlier import
//! wrote it; anything else (a mistyped path, another exporter's file) is
//! refused before the import sends anything. A write that fails later (a
//! full disk) is logged and the import goes on: metrics never stop a job.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use cio_ratelimit::import::Progress;

use crate::error::Error;
use crate::exit::Exit;

/// The first line of every metrics file this command writes.
const MARKER: &str = "# cio-ratelimit import metrics, replaced while the import runs";
/// How often the file is rewritten while the import runs.
const EVERY: Duration = Duration::from_secs(5);

/// A metrics file this import owns.
#[derive(Debug)]
pub struct MetricsFile {
    path: PathBuf,
    temporary: PathBuf,
    last_write: Instant,
    /// A write failed and was logged; later failures are not.
    failing: bool,
}

/// What one write reports besides the import's progress.
#[derive(Debug, Clone, Copy)]
pub struct State {
    /// Requests per second the limiter allows now.
    pub rate: f64,
    /// How the import ended, once it has.
    pub ended: Option<Exit>,
}

impl MetricsFile {
    /// Takes `path` for this import's metrics and writes a first file (all
    /// counts zero), so that a path that cannot be written is found before
    /// anything is sent.
    ///
    /// # Errors
    ///
    /// [`Error::File`] when `path` exists and is not a metrics file an
    /// import wrote, or cannot be written.
    pub fn create(path: &Path, rate: f64) -> Result<MetricsFile, Error> {
        let refuse = |problem: String| Error::File {
            flag: "--metrics-file",
            path: path.to_owned(),
            problem,
        };
        match File::open(path) {
            Ok(file) => {
                let mut first = String::new();
                let is_ours = file.metadata().is_ok_and(|m| m.is_file())
                    && BufReader::new(file).read_line(&mut first).is_ok()
                    && first.trim_end() == MARKER;
                if !is_ours {
                    return Err(refuse(
                        "exists and is not a metrics file cio-ratelimit wrote; not replacing it"
                            .to_owned(),
                    ));
                }
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(error) => return Err(refuse(error.to_string())),
        }
        let name = path
            .file_name()
            .ok_or_else(|| refuse("is not a file name".to_owned()))?;
        let temporary = path.with_file_name(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let metrics = MetricsFile {
            path: path.to_owned(),
            temporary,
            last_write: Instant::now(),
            failing: false,
        };
        let state = State { rate, ended: None };
        metrics
            .replace(&render(&Progress::default(), state, unix_now()))
            .map_err(|error| refuse(error.to_string()))?;
        Ok(metrics)
    }

    /// Rewrites the file if the last write is [`EVERY`] old.
    pub fn update(&mut self, progress: &Progress, rate: f64) {
        if self.last_write.elapsed() >= EVERY {
            self.write(progress, State { rate, ended: None });
        }
    }

    /// Writes the final counts and how the import ended.
    pub fn finish(&mut self, progress: &Progress, state: State) {
        self.write(progress, state);
    }

    fn write(&mut self, progress: &Progress, state: State) {
        self.last_write = Instant::now();
        match self.replace(&render(progress, state, unix_now())) {
            Ok(()) => self.failing = false,
            Err(error) if !self.failing => {
                self.failing = true;
                log::warn!(
                    "cannot write --metrics-file {}: {error}; the import goes on",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
    }

    /// Writes `text` to the temporary file and renames it over the path.
    fn replace(&self, text: &str) -> io::Result<()> {
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.temporary)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .and_then(|()| fs::rename(&self.temporary, &self.path));
        if written.is_err() {
            // Ours (create_new), and useless half written.
            let _ = fs::remove_file(&self.temporary);
        }
        written
    }
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

/// The file's text: the marker, then each metric's HELP, TYPE and samples.
pub fn render(progress: &Progress, state: State, now_unix: f64) -> String {
    let mut text = format!("{MARKER}\n");
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{name}{labels} {value}\n"));
        }
    };
    let lines = |count: u64| count as f64;
    metric(
        "cio_import_lines",
        "gauge",
        "Input lines of this import by outcome: delivered, dead_lettered (in the dead-letter file), skipped (before the checkpoint it resumed from).",
        &[
            (r#"{outcome="delivered"}"#, lines(progress.delivered)),
            (
                r#"{outcome="dead_lettered"}"#,
                lines(progress.dead_lettered),
            ),
            (r#"{outcome="skipped"}"#, lines(progress.skipped)),
        ],
    );
    metric(
        "cio_import_lines_read",
        "gauge",
        "Input lines read so far.",
        &[("", lines(progress.lines_read))],
    );
    metric(
        "cio_import_requests_total",
        "counter",
        "Requests sent to Customer.io: every attempt of every batch or single operation, retries, re-sends after a 429 and items re-sent one by one included.",
        &[("", lines(progress.requests))],
    );
    metric(
        "cio_import_throttled_total",
        "counter",
        "HTTP 429 answers: each paused every sender.",
        &[("", lines(progress.throttled))],
    );
    metric(
        "cio_import_retries_total",
        "counter",
        "Requests sent again after a 5xx, a timeout or a dropped connection.",
        &[("", lines(progress.retried))],
    );
    metric(
        "cio_import_rate_limit_requests_per_second",
        "gauge",
        "The rate in force: requests per second the limiter allows now.",
        &[("", state.rate)],
    );
    metric(
        "cio_import_checkpoint_line",
        "gauge",
        "The last line of the contiguous prefix done: a resume starts after it.",
        &[("", lines(progress.checkpoint_line))],
    );
    metric(
        "cio_import_elapsed_seconds",
        "gauge",
        "Seconds since the import started.",
        &[("", progress.elapsed.as_secs_f64())],
    );
    metric(
        "cio_import_running",
        "gauge",
        "1 while the import runs, 0 once it has ended.",
        &[("", if state.ended.is_some() { 0.0 } else { 1.0 })],
    );
    if let Some(exit) = state.ended {
        metric(
            "cio_import_exit_code",
            "gauge",
            "How the import ended: 0 all delivered, 1 some dead-lettered, 2 fatal, 3 unavailable (resume later).",
            &[("", f64::from(exit.code()))],
        );
    }
    metric(
        "cio_import_last_write_timestamp_seconds",
        "gauge",
        "When this file was written, in Unix seconds: a stale value means a hung or killed import.",
        &[("", now_unix)],
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use cio_test_kit::ScratchDir;

    /// A metrics path in a folder of the test's own, removed with it.
    fn scratch(name: &str) -> (ScratchDir, PathBuf) {
        let dir = ScratchDir::new(&format!("metrics-{name}"));
        let path = dir.join("import.prom");
        (dir, path)
    }

    #[test]
    fn a_new_path_gets_a_first_file_at_once() {
        let (_dir, path) = scratch("new");
        MetricsFile::create(&path, 50.0).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(MARKER), "{text}");
        assert!(
            text.contains("cio_import_lines{outcome=\"delivered\"} 0\n"),
            "{text}"
        );
        assert!(text.contains("cio_import_rate_limit_requests_per_second 50\n"));
        assert!(text.contains("cio_import_running 1\n"));
    }

    #[test]
    fn a_file_an_import_wrote_is_replaced_and_any_other_refused_untouched() {
        let (_dir, path) = scratch("existing");
        MetricsFile::create(&path, 50.0).unwrap();
        let mut metrics = MetricsFile::create(&path, 50.0).expect("ours: replaced");
        let progress = Progress {
            delivered: 7,
            ..Progress::default()
        };
        metrics.finish(
            &progress,
            State {
                rate: 25.0,
                ended: Some(Exit::Success),
            },
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("cio_import_lines{outcome=\"delivered\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("cio_import_exit_code 0\n") && text.contains("cio_import_running 0\n")
        );

        for foreign in [
            "node_cpu_seconds_total 1\n",
            "",
            "# cio-ratelimit import metrics\n",
        ] {
            fs::write(&path, foreign).unwrap();
            let error = MetricsFile::create(&path, 50.0).unwrap_err();
            assert!(error.to_string().contains("not replacing it"), "{error}");
            assert_eq!(fs::read_to_string(&path).unwrap(), foreign, "untouched");
        }
        let dir = path.parent().unwrap();
        let error = MetricsFile::create(dir, 50.0).unwrap_err();
        assert!(
            error.to_string().contains("not replacing it"),
            "a directory: {error}"
        );
        let leftovers: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_path_that_cannot_be_written_is_refused_before_the_import() {
        let (_dir, path) = scratch("missing-dir");
        let path = path.with_file_name("no/such/dir/import.prom");
        let error = MetricsFile::create(&path, 50.0).unwrap_err();
        assert!(error.to_string().contains("--metrics-file"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn updates_are_spaced_and_a_failing_write_does_not_stop_anything() {
        let (_dir, path) = scratch("spaced");
        let mut metrics = MetricsFile::create(&path, 50.0).unwrap();
        let progress = Progress {
            delivered: 3,
            ..Progress::default()
        };
        metrics.update(&progress, 50.0);
        let text = fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("{outcome=\"delivered\"} 0\n"),
            "not yet due: {text}"
        );
        fs::remove_dir_all(path.parent().unwrap()).unwrap();
        metrics.finish(
            &progress,
            State {
                rate: 50.0,
                ended: Some(Exit::Unavailable),
            },
        );
        assert!(metrics.failing);
    }
}
