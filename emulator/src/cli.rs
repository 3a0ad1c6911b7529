//! The `cio-emulator` command line: flags to [`Config`], print the URL, serve until killed.

use std::ffi::OsString;
use std::io::Write;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::config::{
    Config, DEFAULT_API_KEY, DEFAULT_APP_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Datacenter,
    Keep, RetryAfterStyle,
};
use crate::faults::Faults;
use crate::server::Emulator;

/// A local Customer.io-compatible server (Track API v1/v2, App API, Pipelines API) for tests, demos and
/// offline work. Prints its URL as the first line of standard output, then serves until killed.
#[derive(Debug, Parser)]
#[command(name = "cio-emulator", version)]
struct Args {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Track API site ID (HTTP Basic user name)
    #[arg(long, default_value = DEFAULT_SITE_ID)]
    site_id: String,
    /// Track API key (HTTP Basic password)
    #[arg(long, default_value = DEFAULT_API_KEY)]
    api_key: String,
    /// App API key (Authorization: Bearer)
    #[arg(long, default_value = DEFAULT_APP_KEY)]
    app_key: String,
    /// Pipelines API key (HTTP Basic user name, blank password)
    #[arg(long, default_value = DEFAULT_PIPELINES_KEY)]
    pipelines_key: String,
    /// Track API requests admitted per second (0 = unlimited)
    #[arg(long, default_value_t = 100)]
    track_limit: u32,
    /// Transactional sends (/v1/send/*) admitted per second (0 = unlimited)
    #[arg(long, default_value_t = 100)]
    transactional_limit: u32,
    /// Other App API calls admitted per second (0 = unlimited)
    #[arg(long, default_value_t = 10)]
    app_limit: u32,
    /// Broadcast triggers admitted per 10 seconds (0 = unlimited)
    #[arg(long, default_value_t = 1)]
    broadcast_limit: u32,
    /// Pipelines API requests admitted per second (0 = unlimited)
    #[arg(long, default_value_t = 100)]
    pipelines_limit: u32,
    /// How 429 answers carry Retry-After
    #[arg(long, value_enum, default_value_t = RetryAfterArg::Seconds)]
    retry_after: RetryAfterArg,
    /// Seed of the fault dice (the same seed gives the same faults)
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Probability of a 500 before storing
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    error_before_store: f64,
    /// Probability of a 500 after storing (the data is stored)
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    error_after_store: f64,
    /// Probability of a 503 without Retry-After
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    unavailable: f64,
    /// Probability of closing the connection without an answer
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    drop_connection: f64,
    /// Probability of a slow answer (see --slow-ms)
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    slow: f64,
    /// How long a slow answer is held back, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    slow_ms: u64,
    /// Fixed extra latency on every API request, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Play a workspace that lives in this data center, asked in the other one: answer every
    /// API request 301 "wrong datacenter" with a Location there
    #[arg(long, value_enum, value_name = "HOME")]
    wrong_datacenter: Option<DatacenterArg>,
    /// What to keep of what was accepted: all (payloads too, for tests) or counts (tallies
    /// and the sets that detect repeats, without payloads, for soak tests and demos)
    #[arg(long, value_enum, default_value_t = KeepArg::All)]
    keep: KeepArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DatacenterArg {
    /// The United States
    Us,
    /// The European Union
    Eu,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum KeepArg {
    /// Everything, payloads included
    All,
    /// Tallies and dedup sets, no payloads
    Counts,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RetryAfterArg {
    /// Whole seconds
    Seconds,
    /// An RFC 9110 HTTP-date
    HttpDate,
    /// No Retry-After header
    None,
    /// Retry-After: 0, whatever the wait
    Zero,
    /// An HTTP-date a minute in the past
    PastDate,
}

fn probability(text: &str) -> Result<f64, String> {
    let p: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability within 0..=1"))
    }
}

impl Args {
    fn config(&self) -> Config {
        let retry_after = match self.retry_after {
            RetryAfterArg::Seconds => RetryAfterStyle::Seconds,
            RetryAfterArg::HttpDate => RetryAfterStyle::HttpDate,
            RetryAfterArg::None => RetryAfterStyle::Absent,
            RetryAfterArg::Zero => RetryAfterStyle::Zero,
            RetryAfterArg::PastDate => RetryAfterStyle::PastDate,
        };
        let faults = Faults::default()
            .seed(self.seed)
            .error_before_store(self.error_before_store)
            .error_after_store(self.error_after_store)
            .unavailable(self.unavailable)
            .drop_connection(self.drop_connection)
            .slow(self.slow, Duration::from_millis(self.slow_ms));
        let config = match self.wrong_datacenter {
            Some(DatacenterArg::Us) => Config::default().wrong_datacenter(Datacenter::Us),
            Some(DatacenterArg::Eu) => Config::default().wrong_datacenter(Datacenter::Eu),
            None => Config::default(),
        };
        config
            .port(self.port)
            .site_id(&self.site_id)
            .api_key(&self.api_key)
            .app_key(&self.app_key)
            .pipelines_key(&self.pipelines_key)
            .track_limit(self.track_limit)
            .transactional_limit(self.transactional_limit)
            .app_limit(self.app_limit)
            .broadcast_limit(self.broadcast_limit)
            .pipelines_limit(self.pipelines_limit)
            .retry_after(retry_after)
            .faults(faults)
            .latency(Duration::from_millis(self.latency_ms))
            .keep(match self.keep {
                KeepArg::All => Keep::All,
                KeepArg::Counts => Keep::Counts,
            })
    }
}

/// Runs the `cio-emulator` command line with these arguments (the first one is the program
/// name): starts an emulator, prints its URL (`http://127.0.0.1:PORT`) as the first line of
/// standard output, and serves until the process is killed.
///
/// Returns the process exit code: 0 after `--help` or `--version`, 2 on bad arguments or when
/// the port cannot be bound (with a message on standard error). The `cio-emulator` binary is
/// `std::process::exit(cio_emulator::run_cli(std::env::args_os()))`; another CLI can embed the
/// emulator the same way.
///
/// ```no_run
/// let code = cio_emulator::run_cli(["cio-emulator", "--port", "8080", "--track-limit", "1000"]);
/// std::process::exit(code);
/// ```
pub fn run_cli<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() { 2 } else { 0 };
        }
    };
    let emulator = match Emulator::start(args.config()) {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!(
                "cio-emulator: cannot listen on 127.0.0.1:{}: {error}",
                args.port
            );
            return 2;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", emulator.url());
    let _ = stdout.flush();
    drop(stdout);
    eprintln!(
        "cio-emulator: Track and App API on {} (site id {:?}); snapshot at {}/_emulator/snapshot",
        emulator.url(),
        args.site_id,
        emulator.url()
    );
    emulator.wait();
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn flags_reach_the_config() {
        let args = Args::try_parse_from([
            "cio-emulator",
            "--track-limit",
            "7",
            "--retry-after",
            "http-date",
            "--drop-connection",
            "0.25",
            "--slow",
            "1",
            "--slow-ms",
            "5",
            "--wrong-datacenter",
            "eu",
        ])
        .unwrap();
        let config = args.config();
        assert_eq!(config.track.limit, 7);
        assert_eq!(config.retry_after, RetryAfterStyle::HttpDate);
        assert_eq!(config.wrong_datacenter, Some(Datacenter::Eu));
        assert_eq!(
            config.faults,
            Faults::default()
                .drop_connection(0.25)
                .slow(1.0, Duration::from_millis(5))
        );
    }

    #[test]
    fn a_port_in_use_exits_with_2() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port().to_string();
        assert_eq!(run_cli(["cio-emulator", "--port", port.as_str()]), 2);
    }
}
