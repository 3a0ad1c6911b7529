//! The running emulator: a listener on 127.0.0.1, one thread per keep-alive connection, and
//! the handle that reads records, changes faults and shuts it all down.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, Shutdown as SocketShutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

use crate::config::Config;
use crate::faults::Faults;
use crate::http::Connection;
use crate::service::{Reply, Service};
use crate::shutdown::Shutdown;
use crate::snapshot::Snapshot;

/// A running Customer.io emulator on `127.0.0.1`.
///
/// [`start`](Emulator::start) binds the port and returns at once; requests are served on
/// background threads, one per connection, until [`shutdown`](Emulator::shutdown) or drop.
///
/// ```
/// use cio_emulator::{Config, Emulator};
///
/// let emulator = Emulator::start(Config::default())?;
/// assert!(emulator.url().starts_with("http://127.0.0.1:"));
/// assert_eq!(emulator.snapshot().requests, 0);
/// emulator.shutdown();
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Threads
///
/// `Emulator` is `Send + Sync`: share it (e.g. in an `Arc`) to read snapshots or change faults
/// from any thread while clients send requests. The records sit behind one lock that is held
/// only to apply what a request changes, never while JSON is parsed.
pub struct Emulator {
    shared: Arc<Shared>,
    address: SocketAddr,
    acceptor: Mutex<Option<JoinHandle<()>>>,
}

/// What the handle and the server threads share.
struct Shared {
    service: Service,
    shutdown: Shutdown,
    connections: Mutex<Connections>,
}

/// Open connections (a second handle to each socket, to close it on shutdown) and their threads.
#[derive(Default)]
struct Connections {
    next_id: u64,
    open: HashMap<u64, TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Emulator {
    /// Starts an emulator on `127.0.0.1` and the configured port (0, the default, picks a
    /// free port).
    ///
    /// # Errors
    ///
    /// When the port cannot be bound (in use, not permitted) or a thread cannot be started.
    pub fn start(config: Config) -> io::Result<Emulator> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))?;
        let address = listener.local_addr()?;
        let shared = Arc::new(Shared {
            service: Service::new(&config),
            shutdown: Shutdown::default(),
            connections: Mutex::default(),
        });
        let acceptor = thread::Builder::new()
            .name("cio-emulator-accept".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || accept(&listener, &shared)
            })?;
        Ok(Emulator {
            shared,
            address,
            acceptor: Mutex::new(Some(acceptor)),
        })
    }

    /// The base URL, `http://127.0.0.1:PORT`, without a trailing slash: use it as both the
    /// Track and the App API base URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The port the emulator listens on.
    pub fn port(&self) -> u16 {
        self.address.port()
    }

    /// A copy of everything recorded so far, with per-class rate statistics.
    pub fn snapshot(&self) -> Snapshot {
        self.shared.service.snapshot()
    }

    /// Forgets all records, counts, seen event ids and rate windows, as if just started.
    /// The configuration and faults stay.
    pub fn reset(&self) {
        self.shared.service.reset();
    }

    /// Replaces the faults in force, from the next request on; the dice restart from the new
    /// faults' seed.
    pub fn set_faults(&self, faults: Faults) {
        self.shared.service.set_faults(faults);
    }

    /// Answers every API request (after auth) with 429 for `duration` from now, whatever
    /// the rate windows say, with `Retry-After` in the configured style: a workspace
    /// throttled by someone else's traffic. Admin routes are not affected.
    pub fn throttle_for(&self, duration: Duration) {
        self.shared.service.throttle_for(duration);
    }

    /// Stops listening, closes every connection and joins all threads. Afterwards connections
    /// to the port are refused. Idempotent; also done on drop.
    pub fn shutdown(&self) {
        if self.shared.shutdown.trigger() {
            // Wake the acceptor, blocked in accept(), so that it sees the flag and lets go of
            // the listener.
            let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
        }
        if let Some(acceptor) = self.acceptor.lock().take() {
            let _ = acceptor.join();
        }
        let threads = {
            let mut connections = self.shared.connections.lock();
            for stream in connections.open.values() {
                let _ = stream.shutdown(SocketShutdown::Both);
            }
            std::mem::take(&mut connections.threads)
        };
        for thread in threads {
            let _ = thread.join();
        }
    }

    /// Blocks until [`shutdown`](Emulator::shutdown) is called (from another thread), or
    /// forever. The `cio-emulator` binary serves this way until it is killed.
    pub fn wait(&self) {
        self.shared.shutdown.wait();
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator")
            .field("url", &self.url())
            .field("stopped", &self.shared.shutdown.is_triggered())
            .finish_non_exhaustive()
    }
}

fn accept(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.shutdown.is_triggered() {
            break;
        }
        let stream = match stream {
            Ok(stream) => stream,
            Err(_) => {
                // Out of file descriptors, or the client gave up: don't spin.
                shared.shutdown.sleep(Duration::from_millis(10));
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(handle) = stream.try_clone() else {
            continue;
        };
        let mut connections = shared.connections.lock();
        connections.threads.retain(|thread| !thread.is_finished());
        let id = connections.next_id;
        connections.next_id += 1;
        connections.open.insert(id, handle);
        let spawned = thread::Builder::new()
            .name("cio-emulator-connection".into())
            .spawn({
                let shared = Arc::clone(shared);
                move || {
                    serve(stream, &shared);
                    shared.connections.lock().open.remove(&id);
                }
            });
        match spawned {
            Ok(thread) => connections.threads.push(thread),
            Err(_) => {
                connections.open.remove(&id);
            }
        }
    }
}

/// Serves one connection until the client closes it, asks to, or the emulator stops.
fn serve(stream: TcpStream, shared: &Shared) {
    let mut connection = Connection::new(stream);
    while !shared.shutdown.is_triggered() {
        let request = match connection.read_request() {
            Ok(Some(request)) => request,
            Ok(None) => break,
            Err(error) => {
                if let Some(response) = error.response() {
                    let _ = connection.write_response(&response, true);
                }
                break;
            }
        };
        match shared.service.answer(&request, &shared.shutdown) {
            Reply::Respond(response) => {
                let close = !request.keep_alive || shared.shutdown.is_triggered();
                if connection.write_response(&response, close).is_err() || close {
                    break;
                }
            }
            Reply::Drop => {
                connection.close();
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emulator_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Emulator>();
    }
}
