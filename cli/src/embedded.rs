//! The emulator inside this process: `--emulator` runs one command against a
//! `cio-emulator` started for it, and `cio-ratelimit emulator` serves one in
//! the foreground.

use std::ffi::OsString;

use cio_emulator::{Config, Emulator, Snapshot};
use cio_ratelimit::ClientBuilder;

use crate::args::Global;
use crate::credentials::Credentials;
use crate::error::Error;
use crate::exit::Exit;

/// A `cio-emulator` on a free port of 127.0.0.1, with its default
/// credentials and limits, for the length of one command.
pub struct Embedded(Emulator);

impl Embedded {
    /// Starts the emulator.
    ///
    /// # Errors
    ///
    /// [`Error::Emulator`] when no port can be bound or no thread started.
    pub fn start() -> Result<Embedded, Error> {
        let emulator = Emulator::start(Config::default()).map_err(Error::Emulator)?;
        log::info!("emulator: listening on {}", emulator.url());
        Ok(Embedded(emulator))
    }

    /// A client builder pointed at the emulator with the credentials it
    /// accepts, and the other settings of `global` (timeout, retries).
    ///
    /// # Errors
    ///
    /// As [`Credentials::client_builder`].
    pub fn client_builder(&self, global: &Global) -> Result<ClientBuilder, Error> {
        Ok(Credentials::emulator()
            .client_builder(global)?
            .base_url(self.0.url()))
    }

    /// What the emulator received; then it shuts down.
    pub fn finish(self) -> Snapshot {
        let snapshot = self.0.snapshot();
        self.0.shutdown();
        snapshot
    }
}

/// `cio-ratelimit emulator ARGS...`: `cio-emulator`'s command line, in the
/// foreground until the process is killed.
pub fn foreground(args: Vec<OsString>) -> Exit {
    let program = OsString::from("cio-ratelimit emulator");
    Exit::of_emulator(cio_emulator::run_cli(std::iter::once(program).chain(args)))
}
