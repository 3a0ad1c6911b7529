//! Standard input for an import, read on a thread of its own so that a
//! clean stop does not wait on a pipe that stays open and silent
//! (`tail -f log | cio-ratelimit import -`, then SIGTERM to the import
//! alone): once the stop flag is set, the input reads as ended.

use std::io::{self, BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, sync_channel};
use std::thread;
use std::time::Duration;

/// Bytes read from standard input at a time.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks read ahead of the import.
const CHUNKS_AHEAD: usize = 4;
/// How often a wait for input looks at the stop flag.
const CHECK_EVERY: Duration = Duration::from_millis(50);

/// Standard input that ends early once `stop` is set.
pub struct StoppableStdin {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    position: usize,
    ended: bool,
    stop: Arc<AtomicBool>,
}

impl StoppableStdin {
    /// Starts reading standard input on a thread of its own. The thread
    /// ends with the input; if the process ends first, it ends with it.
    ///
    /// # Errors
    ///
    /// The operating system's, if the thread cannot start.
    pub fn new(stop: Arc<AtomicBool>) -> io::Result<StoppableStdin> {
        Self::reading(io::stdin(), stop)
    }

    fn reading(mut input: impl Read + Send + 'static, stop: Arc<AtomicBool>) -> io::Result<Self> {
        let (sender, chunks) = sync_channel(CHUNKS_AHEAD);
        thread::Builder::new()
            .name("cio-stdin".into())
            .spawn(move || {
                loop {
                    let mut chunk = vec![0; CHUNK_BYTES];
                    let read = match input.read(&mut chunk) {
                        Ok(0) => return,
                        Ok(read) => read,
                        Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                        Err(error) => {
                            let _ = sender.send(Err(error));
                            return;
                        }
                    };
                    chunk.truncate(read);
                    if sender.send(Ok(chunk)).is_err() {
                        return;
                    }
                }
            })?;
        Ok(StoppableStdin {
            chunks,
            chunk: Vec::new(),
            position: 0,
            ended: false,
            stop,
        })
    }
}

impl BufRead for StoppableStdin {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.position == self.chunk.len() && !self.ended {
            if self.stop.load(Ordering::SeqCst) {
                self.ended = true;
                break;
            }
            match self.chunks.recv_timeout(CHECK_EVERY) {
                Ok(Ok(chunk)) => {
                    self.chunk = chunk;
                    self.position = 0;
                }
                Ok(Err(error)) => return Err(error),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => self.ended = true,
            }
        }
        Ok(&self.chunk[self.position..])
    }

    fn consume(&mut self, amount: usize) {
        self.position = (self.position + amount).min(self.chunk.len());
    }
}

impl Read for StoppableStdin {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let read = available.len().min(buffer.len());
        buffer[..read].copy_from_slice(&available[..read]);
        self.consume(read);
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use std::io::PipeReader;

    use super::*;

    #[test]
    fn it_reads_everything_then_ends() {
        let text = "line\n".repeat(50_000);
        let stop = Arc::new(AtomicBool::new(false));
        let mut input = StoppableStdin::reading(io::Cursor::new(text.clone()), stop).unwrap();
        let mut read = String::new();
        input.read_to_string(&mut read).unwrap();
        assert_eq!(read, text);
    }

    #[test]
    fn a_silent_pipe_reads_as_ended_once_the_stop_flag_is_set() {
        let (reader, mut writer): (PipeReader, _) = io::pipe().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let mut input = StoppableStdin::reading(reader, stop.clone()).unwrap();
        std::io::Write::write_all(&mut writer, b"first\n").unwrap();
        let mut line = String::new();
        input.read_line(&mut line).unwrap();
        assert_eq!(line, "first\n");
        // The writer stays open and says nothing more: the stop ends the wait.
        let (done, finished) = sync_channel(1);
        let waiting = thread::spawn(move || {
            let mut rest = String::new();
            let read = input.read_line(&mut rest);
            done.send(()).unwrap();
            read.map(|_| rest)
        });
        stop.store(true, Ordering::SeqCst);
        finished
            .recv_timeout(Duration::from_secs(5))
            .expect("the read ended");
        assert_eq!(waiting.join().unwrap().unwrap(), "");
        drop(writer);
    }
}
