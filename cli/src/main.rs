//! `cio-ratelimit`: send data to Customer.io from scripts and shells through
//! the `cio-ratelimit` library, so the workspace's rate limits and the
//! library's retries apply to every request.
//!
//! `main` parses the command line (clap exits with 2 on usage errors), runs
//! [`try_main`], prints the error if there is one, and exits with the code
//! [`exit`] documents: 0 success, 1 dead-lettered lines, 2 fatal, 3
//! Customer.io unavailable after retries.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod calls;
mod credentials;
mod embedded;
mod error;
mod exit;
mod generated;
mod import;
mod json_arg;
mod key;
mod logging;
mod metrics;
mod output;
mod pipelines;
mod progress;
mod rate;
mod relay;
mod resume_command;
mod signals;
mod stoppable_stdin;

use std::process::ExitCode;

use clap::Parser;

use crate::args::{Args, Command};
use crate::calls::Call;
use crate::embedded::Embedded;
use crate::error::Error;
use crate::exit::Exit;
use crate::output::Output;

fn main() -> ExitCode {
    let args = Args::parse();
    let json = args.command.global().is_some_and(|global| global.json);
    let mut output = Output::new(args.command.name(), json);
    match try_main(args, &mut output) {
        Ok(exit) => exit.into(),
        Err(error) => {
            output.failure(&error);
            Exit::from(&error).into()
        }
    }
}

/// Runs the command; the input is checked before anything is sent.
fn try_main(args: Args, output: &mut Output) -> Result<Exit, Error> {
    let command = match args.command {
        Command::Emulator(foreground) => return Ok(embedded::foreground(foreground.args)),
        Command::Completions(completions) => {
            output::to_stdout(|out| generated::completions(completions.shell, out))?;
            return Ok(Exit::Success);
        }
        Command::Man => {
            output::to_stdout(generated::man)?;
            return Ok(Exit::Success);
        }
        Command::Import(import) => {
            logging::init(import.global.verbose);
            return import::run(&import, output);
        }
        Command::Relay(relay) => {
            logging::init(relay.global.verbose);
            return relay::run(&relay);
        }
        Command::Call(command) => command,
    };
    let global = command.global();
    logging::init(global.verbose);
    let call = Call::parse(&command, &mut std::io::stdin().lock())?;
    let receipt = if global.emulator {
        let embedded = Embedded::start()?;
        let sent = embedded
            .client_builder(global)
            .and_then(|builder| Ok(builder.build()?))
            .and_then(|client| call.send(&client));
        output.arrived(embedded.finish());
        sent?
    } else {
        let client = credentials::client_builder(global, call.api())?.build()?;
        log::info!(
            "Track API {}, App API {}, Pipelines API {}",
            client.track_url(),
            client.app_url(),
            client.pipelines_url()
        );
        call.send(&client)?
    };
    output.success(&receipt)?;
    Ok(Exit::Success)
}
