//! Imports from a stream that goes quiet (`tail -f log | cio-ratelimit import -`):
//! in batch mode, what is packed goes out within a second of the last line
//! (but not at once: lines still travel in batches), not when 500 KB have
//! piled up.

use std::io::{self, BufRead, Read};
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{Client, Importer};
use cio_test_kit::ScratchDir;
use crossbeam_channel::{Receiver, Sender};
use serde_json::json;

/// Input that yields what the test sends, and blocks in `read` until it
/// sends more; the end of input when the test drops its sender.
struct Pipe {
    chunks: Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    at: usize,
}

fn pipe() -> (Sender<Vec<u8>>, Pipe) {
    let (writer, chunks) = crossbeam_channel::unbounded();
    let pipe = Pipe {
        chunks,
        chunk: Vec::new(),
        at: 0,
    };
    (writer, pipe)
}

impl Read for Pipe {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(buffer.len());
        buffer[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Pipe {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.at == self.chunk.len() {
            // Blocks like a pipe with no writer activity; empty (the end) once the sender is gone.
            self.chunk = self.chunks.recv().unwrap_or_default();
            self.at = 0;
        }
        Ok(&self.chunk[self.at..])
    }

    fn consume(&mut self, amount: usize) {
        self.at += amount;
    }
}

fn identifies(people: std::ops::Range<u32>) -> Vec<u8> {
    let mut text = String::new();
    for n in people {
        text.push_str(
            &json!({"type": "person", "action": "identify", "identifiers": {"id": format!("p{n}")}})
                .to_string(),
        );
        text.push('\n');
    }
    text.into_bytes()
}

/// How long after `since` the emulator has `people` people; panics after 10 s.
fn people_within(emulator: &Emulator, people: usize, since: Instant) -> Duration {
    loop {
        if emulator.snapshot().people.len() >= people {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "{people} people never arrived"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn a_partial_batch_goes_out_within_about_a_second_after_the_input_goes_quiet() {
    let emulator = Emulator::start(Config::default()).unwrap();
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .track_url(emulator.url())
        .build()
        .unwrap();
    let dir = ScratchDir::new("quiet");
    let dead_letter = dir.join("dead.ndjson");
    let importer = Importer::builder(client)
        .dead_letter(&dead_letter)
        .build()
        .unwrap();
    let (writer, input) = pipe();
    let import = thread::spawn(move || {
        importer
            .import_reader(input, None)
            .map_err(|failure| failure.error)
    });

    let sent = Instant::now();
    writer.send(identifies(0..20)).unwrap();
    let first = people_within(&emulator, 20, sent);
    assert!(
        first >= Duration::from_millis(500) && first < Duration::from_secs(3),
        "the first lines arrived {first:?} after they were written"
    );

    // The same again, in two writes: the second restarts the quiet second.
    let sent = Instant::now();
    writer.send(identifies(20..30)).unwrap();
    writer.send(identifies(30..40)).unwrap();
    let second = people_within(&emulator, 40, sent);
    assert!(
        second >= Duration::from_millis(500) && second < Duration::from_secs(3),
        "the next lines arrived {second:?} after they were written"
    );

    drop(writer);
    let summary = import.join().unwrap().unwrap();
    assert_eq!(summary.progress.delivered, 40);
    let requests = emulator.snapshot().requests;
    assert!(
        requests <= 2 * Importer::DEFAULT_WORKERS as u64,
        "each quiet second sent what was ready, not a request a line: {requests} requests"
    );
}
