//! The command line as clap parses it: the subcommands, their flags, and the
//! connection flags every call shares. Nothing here reaches the library;
//! [`calls`](crate::calls) and [`credentials`](crate::credentials) turn these
//! into library values.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use cio_ratelimit::{Identifier, Importer, RateLimit, Region};
use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::key::Key;

const AFTER_HELP: &str = "\
Credentials (every call takes them the same way):
  CUSTOMERIO_SITE_ID         Track API site id, or --site-id
  CUSTOMERIO_TRACK_API_KEY   Track API key, or --api-key-file PATH, or --api-key
  CUSTOMERIO_APP_API_KEY     App API key for the App API commands (send-*,
                             trigger-broadcast, get-person), which need no other;
                             or --app-key-file PATH, or --app-key
  CUSTOMERIO_PIPELINES_API_KEY
                             Pipelines API key (a source's write key) for pipelines,
                             or --pipelines-key-file PATH, or --pipelines-key
  --emulator                 needs none: runs the call against a local emulator

Exit codes:
  0  success
  1  some lines were dead-lettered (import)
  2  usage, credentials, bad input, a --redis-url Redis refuses (password, database,
     TLS), or another error that trying again will not fix
  3  Customer.io unavailable after retries (5xx, 429, timeouts, connection failures),
     or Redis unreachable for longer than --redis-wait: try again later
  130, 143  an import stopped cleanly on SIGINT (Ctrl-C) or SIGTERM: resume it;
            a relay stopped on one, its spool intact: start it again";

/// Send data to Customer.io from scripts and shells, as fast as the
/// workspace's rate limits allow and never faster, with retries.
#[derive(Debug, Parser)]
#[command(name = "cio-ratelimit", version, after_help = AFTER_HELP)]
pub struct Args {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import a file of NDJSON v2 operations (or Pipelines calls), batched, rate limited and resumable
    Import(Box<Import>),
    /// Serve Customer.io's Track (and Pipelines) API locally: answer at once from a durable spool, deliver at the workspace's limit
    Relay(Box<Relay>),
    /// One request to Customer.io (boxed: the shared flags make it large).
    #[command(flatten)]
    Call(Box<CallCommand>),
    /// Run a local Customer.io emulator in the foreground, with cio-emulator's flags
    #[command(disable_help_flag = true)]
    Emulator(Foreground),
    /// Print a completion script for a shell, e.g. `cio-ratelimit completions bash > /etc/bash_completion.d/cio-ratelimit`
    Completions(Completions),
    /// Print the man page (roff), e.g. `cio-ratelimit man | man -l -`
    Man,
}

/// `completions SHELL`.
#[derive(Debug, clap::Args)]
pub struct Completions {
    /// The shell to complete in
    #[arg(value_enum)]
    pub shell: ShellArg,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShellArg {
    /// Bash
    Bash,
    /// Zsh
    Zsh,
    /// Fish
    Fish,
    /// PowerShell
    Powershell,
}

impl Command {
    /// The subcommand as typed, for messages and JSON output.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Import(_) => "import",
            Command::Relay(_) => "relay",
            Command::Call(call) => call.name(),
            Command::Emulator(_) => "emulator",
            Command::Completions(_) => "completions",
            Command::Man => "man",
        }
    }

    /// The shared connection and output flags, for the commands that take them.
    pub fn global(&self) -> Option<&Global> {
        match self {
            Command::Import(import) => Some(&import.global),
            Command::Relay(relay) => Some(&relay.global),
            Command::Call(call) => Some(call.global()),
            Command::Emulator(_) | Command::Completions(_) | Command::Man => None,
        }
    }
}

/// The subcommands that send one request each.
#[derive(Debug, Subcommand)]
pub enum CallCommand {
    /// Create or update a person with attributes
    Identify(Identify),
    /// Record an event, a page view or a screen view for a person
    Track(Track),
    /// Delete a person
    Delete(PersonCall),
    /// Stop all messages to a person
    Suppress(PersonCall),
    /// Let messages reach a suppressed person again
    Unsuppress(PersonCall),
    /// Send a transactional email (App API)
    SendEmail(SendEmail),
    /// Send a transactional SMS (App API)
    SendSms(SendTo),
    /// Send a transactional push notification (App API)
    SendPush(SendTo),
    /// Send a transactional in-app message (App API)
    SendInApp(SendInApp),
    /// Trigger an API-triggered broadcast (App API; 1 per 10 seconds)
    TriggerBroadcast(TriggerBroadcast),
    /// Print a person's profile as JSON (App API)
    GetPerson(PersonCall),
    /// Add people to a manual segment, or remove them (Track API)
    Segment(Segment),
    /// One Pipelines API call (Data Pipelines): identify, track, page, screen, group, alias
    #[command(subcommand)]
    Pipelines(PipelinesCommand),
}

impl CallCommand {
    /// The subcommand as typed.
    pub fn name(&self) -> &'static str {
        match self {
            CallCommand::Identify(_) => "identify",
            CallCommand::Track(_) => "track",
            CallCommand::Delete(_) => "delete",
            CallCommand::Suppress(_) => "suppress",
            CallCommand::Unsuppress(_) => "unsuppress",
            CallCommand::SendEmail(_) => "send-email",
            CallCommand::SendSms(_) => "send-sms",
            CallCommand::SendPush(_) => "send-push",
            CallCommand::SendInApp(_) => "send-in-app",
            CallCommand::TriggerBroadcast(_) => "trigger-broadcast",
            CallCommand::GetPerson(_) => "get-person",
            CallCommand::Segment(segment) => match segment.action {
                SegmentAction::Add(_) => "segment add",
                SegmentAction::Remove(_) => "segment remove",
            },
            CallCommand::Pipelines(_) => "pipelines",
        }
    }

    /// The shared connection and output flags.
    pub fn global(&self) -> &Global {
        match self {
            CallCommand::Identify(args) => &args.global,
            CallCommand::Track(args) => &args.global,
            CallCommand::Delete(args)
            | CallCommand::Suppress(args)
            | CallCommand::Unsuppress(args)
            | CallCommand::GetPerson(args) => &args.global,
            CallCommand::SendEmail(args) => &args.global,
            CallCommand::SendSms(args) | CallCommand::SendPush(args) => &args.global,
            CallCommand::SendInApp(args) => &args.global,
            CallCommand::TriggerBroadcast(args) => &args.global,
            CallCommand::Segment(segment) => match &segment.action {
                SegmentAction::Add(args) | SegmentAction::Remove(args) => &args.global,
            },
            CallCommand::Pipelines(command) => command.global(),
        }
    }
}

/// Where to send, with which credentials, and how to report: the same for
/// every command that calls Customer.io.
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Connection and output")]
pub struct Global {
    /// Track API site id [env: CUSTOMERIO_SITE_ID]
    #[arg(long, value_name = "ID")]
    pub site_id: Option<String>,
    /// Track API key; CUSTOMERIO_TRACK_API_KEY or --api-key-file keep it out of `ps`
    #[arg(long, value_name = "KEY", value_parser = Key::parse, conflicts_with = "api_key_file")]
    pub api_key: Option<Key>,
    /// File whose contents (white space trimmed) are the Track API key
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// App API key, for the App API commands [env: CUSTOMERIO_APP_API_KEY]
    #[arg(long, value_name = "KEY", value_parser = Key::parse, conflicts_with = "app_key_file")]
    pub app_key: Option<Key>,
    /// File whose contents (white space trimmed) are the App API key
    #[arg(long, value_name = "PATH")]
    pub app_key_file: Option<PathBuf>,
    /// Pipelines API key, for pipelines calls [env: CUSTOMERIO_PIPELINES_API_KEY]
    #[arg(long, value_name = "KEY", value_parser = Key::parse, conflicts_with = "pipelines_key_file")]
    pub pipelines_key: Option<Key>,
    /// File whose contents (white space trimmed) are the Pipelines API key
    #[arg(long, value_name = "PATH")]
    pub pipelines_key_file: Option<PathBuf>,
    /// The workspace's region
    #[arg(long, value_enum, default_value_t = RegionArg::Us)]
    pub region: RegionArg,
    /// Track API base URL instead of the region's (a proxy, a cio-emulator)
    #[arg(long, value_name = "URL", conflicts_with = "emulator")]
    pub track_url: Option<String>,
    /// App API base URL instead of the region's
    #[arg(long, value_name = "URL", conflicts_with = "emulator")]
    pub app_url: Option<String>,
    /// Pipelines API base URL instead of the region's (https, or http to loopback only)
    #[arg(long, value_name = "URL", conflicts_with = "emulator")]
    pub pipelines_url: Option<String>,
    /// How long one attempt may take, connecting to reading the answer [default: 10]
    #[arg(long, value_name = "SECS", value_parser = seconds)]
    pub timeout: Option<Duration>,
    /// Retries after 5xx, timeouts and connection failures [default: 4]; 429s wait for
    /// Retry-After instead, up to 5 minutes. Every retry waits for the rate limit like a
    /// first attempt, so retries never raise the rate: no separate retry budget cuts them short
    #[arg(long, value_name = "N")]
    pub max_retries: Option<u32>,
    /// Start a local emulator, run the command against it, print what it received
    #[arg(long)]
    pub emulator: bool,
    /// Print the result as one JSON object on standard output
    #[arg(long)]
    pub json: bool,
    /// Log more: -v info, -vv debug; RUST_LOG overrides [default: warnings]
    #[arg(short, long, action = ArgAction::Count)]
    pub verbose: u8,
}

/// `--region`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RegionArg {
    /// The United States (track.customer.io, api.customer.io)
    Us,
    /// The European Union (track-eu.customer.io, api-eu.customer.io)
    Eu,
}

impl From<RegionArg> for Region {
    fn from(region: RegionArg) -> Region {
        match region {
            RegionArg::Us => Region::Us,
            RegionArg::Eu => Region::Eu,
        }
    }
}

/// The person a call is about: ID is your id for them, unless `--email` or
/// `--cio-id` says it is something else.
#[derive(Debug, Clone, clap::Args)]
pub struct Person {
    /// The person: your id for them, or their email with --email, or
    /// Customer.io's id with --cio-id
    #[arg(value_name = "ID")]
    pub id: String,
    /// ID is the person's email address
    #[arg(long, conflicts_with = "cio_id")]
    pub email: bool,
    /// ID is Customer.io's own id for the person (without the cio_ prefix)
    #[arg(long)]
    pub cio_id: bool,
}

impl Person {
    /// The identifier the flags describe.
    pub fn identifier(&self) -> Identifier {
        if self.email {
            Identifier::email(&self.id)
        } else if self.cio_id {
            Identifier::cio_id(&self.id)
        } else {
            Identifier::id(&self.id)
        }
    }
}

/// `identify ID [--email|--cio-id] [--attributes JSON]`.
#[derive(Debug, clap::Args)]
pub struct Identify {
    /// Who.
    #[command(flatten)]
    pub person: Person,
    /// Attributes as a JSON object, e.g. '{"plan":"pro"}'; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub attributes: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `track ID NAME [--data JSON] [--timestamp UNIX] [--id-key KEY] [--page|--screen]`.
#[derive(Debug, clap::Args)]
pub struct Track {
    /// Who.
    #[command(flatten)]
    pub person: Person,
    /// The event's name (with --page the page's URL or path, with --screen the screen's name)
    #[arg(value_name = "NAME")]
    pub name: String,
    /// The event's data as a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// When it happened, in Unix seconds [default: when it arrives]
    #[arg(long, value_name = "UNIX", allow_negative_numbers = true)]
    pub timestamp: Option<i64>,
    /// Derive the event's id from KEY, so that running the command again
    /// records the event once [default: a random id]
    #[arg(long, value_name = "KEY")]
    pub id_key: Option<String>,
    /// A page view
    #[arg(long, conflicts_with = "screen")]
    pub page: bool,
    /// A mobile screen view
    #[arg(long)]
    pub screen: bool,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `delete`, `suppress`, `unsuppress` and `get-person`: a person and nothing else.
#[derive(Debug, clap::Args)]
pub struct PersonCall {
    /// Who.
    #[command(flatten)]
    pub person: Person,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `send-email --message-id ID --to ADDR (--person-id ID | --person-email EMAIL | --person-cio-id ID) [--data JSON]`.
#[derive(Debug, clap::Args)]
pub struct SendEmail {
    /// The transactional message: its number, or its trigger name
    #[arg(long, value_name = "ID")]
    pub message_id: String,
    /// The recipient's email address
    #[arg(long, value_name = "ADDR")]
    pub to: String,
    /// The person the message is about.
    #[command(flatten)]
    pub recipient: Recipient,
    /// Data for the message's Liquid, a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// Exactly one of `--person-id`, `--person-email`, `--person-cio-id`.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Recipient {
    /// The person, by your id for them
    #[arg(long, value_name = "ID")]
    pub person_id: Option<String>,
    /// The person, by email address
    #[arg(long, value_name = "EMAIL")]
    pub person_email: Option<String>,
    /// The person, by Customer.io's id (without the cio_ prefix)
    #[arg(long, value_name = "ID")]
    pub person_cio_id: Option<String>,
}

impl Recipient {
    /// The identifier the flags describe; clap guarantees exactly one.
    pub fn identifier(&self) -> Identifier {
        match (&self.person_id, &self.person_email, &self.person_cio_id) {
            (Some(id), _, _) => Identifier::id(id),
            (_, Some(email), _) => Identifier::email(email),
            (_, _, Some(cio_id)) => Identifier::cio_id(cio_id),
            (None, None, None) => unreachable!("clap requires one of the --person-* flags"),
        }
    }
}

/// A transactional message and the person it is for, as `send-sms`,
/// `send-push` and `send-in-app` take them (`send-email` has its own, with
/// a required `--to`).
#[derive(Debug, Clone, clap::Args)]
pub struct Message {
    /// The transactional message: its number, or its trigger name
    #[arg(long, value_name = "ID")]
    pub message_id: String,
    /// The person the message is for.
    #[command(flatten)]
    pub recipient: Recipient,
    /// Data for the message's Liquid, a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
}

/// `send-sms` and `send-push`: `--message-id ID (--person-id ID | --person-email EMAIL |
/// --person-cio-id ID) [--to ADDR] [--data JSON]`.
#[derive(Debug, clap::Args)]
pub struct SendTo {
    /// The message and its person.
    #[command(flatten)]
    pub message: Message,
    /// Where to send it: a phone number for send-sms, a device token for
    /// send-push [default: the person's]
    #[arg(long, value_name = "ADDR")]
    pub to: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `send-in-app --message-id ID (--person-id ID | --person-email EMAIL | --person-cio-id ID) [--data JSON]`.
#[derive(Debug, clap::Args)]
pub struct SendInApp {
    /// The message and its person.
    #[command(flatten)]
    pub message: Message,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `segment add|remove SEGMENT_ID ID...`.
#[derive(Debug, clap::Args)]
pub struct Segment {
    /// Add or remove.
    #[command(subcommand)]
    pub action: SegmentAction,
}

/// What to do with a manual segment.
#[derive(Debug, Subcommand)]
pub enum SegmentAction {
    /// Add people to a manual segment (at most 1000 per request; more are split)
    Add(SegmentChange),
    /// Remove people from a manual segment
    Remove(SegmentChange),
}

/// `SEGMENT_ID ID... [--email|--cio-id]`.
#[derive(Debug, clap::Args)]
pub struct SegmentChange {
    /// The manual segment's id
    #[arg(value_name = "SEGMENT_ID")]
    pub segment_id: u64,
    /// The people: your ids for them, or their emails with --email, or
    /// Customer.io's ids with --cio-id
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<String>,
    /// The IDs are email addresses
    #[arg(long, conflicts_with = "cio_id")]
    pub email: bool,
    /// The IDs are Customer.io's ids (without the cio_ prefix)
    #[arg(long)]
    pub cio_id: bool,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

impl SegmentChange {
    /// The identifiers the flags describe.
    pub fn people(&self) -> Vec<Identifier> {
        self.ids
            .iter()
            .map(|id| {
                if self.email {
                    Identifier::email(id)
                } else if self.cio_id {
                    Identifier::cio_id(id)
                } else {
                    Identifier::id(id)
                }
            })
            .collect()
    }
}

/// `trigger-broadcast CAMPAIGN_ID [--data JSON]`.
#[derive(Debug, clap::Args)]
pub struct TriggerBroadcast {
    /// The broadcast's campaign id
    #[arg(value_name = "CAMPAIGN_ID")]
    pub campaign_id: u64,
    /// Data for the broadcast's Liquid, a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub data: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// One Pipelines API call (Data Pipelines), sent with `X-Strict-Mode: 1` so
/// that a call Customer.io finds invalid fails instead of being dropped.
#[derive(Debug, Subcommand)]
pub enum PipelinesCommand {
    /// Identify a person, with their traits
    Identify(PipelinesIdentify),
    /// Record an event a person did, with its properties
    Track(PipelinesTrack),
    /// Record a page view
    Page(PipelinesView),
    /// Record a mobile screen view
    Screen(PipelinesView),
    /// Add a person to a group (an account, a company), with its traits
    Group(PipelinesGroup),
    /// Tell Customer.io that a person was known by another id before
    Alias(PipelinesAlias),
}

/// What every Pipelines call takes: who, when, context, and its messageId.
#[derive(Debug, Clone, clap::Args)]
pub struct PipelinesCommon {
    /// The person: your id for them (userId), or with --anonymous a visitor's anonymousId
    #[arg(value_name = "USER_ID")]
    pub user: String,
    /// USER_ID is an anonymousId, for a visitor not yet identified
    #[arg(long)]
    pub anonymous: bool,
    /// When it happened, as an ISO 8601 date and time [default: when it arrives]
    #[arg(long, value_name = "ISO8601")]
    pub timestamp: Option<String>,
    /// The call's context (ip, locale, ...) as a JSON object; - reads it from standard input
    #[arg(long, value_name = "JSON")]
    pub context: Option<String>,
    /// Derive the call's messageId from KEY, so that running the command again
    /// records the call once [default: a random messageId]
    #[arg(long, value_name = "KEY")]
    pub id_key: Option<String>,
}

/// `pipelines identify USER_ID [--traits JSON]`.
#[derive(Debug, clap::Args)]
pub struct PipelinesIdentify {
    /// Who, when, how.
    #[command(flatten)]
    pub common: PipelinesCommon,
    /// The person's traits as a JSON object, e.g. '{"plan":"pro"}'; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub traits: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines track USER_ID EVENT [--properties JSON]`.
#[derive(Debug, clap::Args)]
pub struct PipelinesTrack {
    /// Who, when, how.
    #[command(flatten)]
    pub common: PipelinesCommon,
    /// The event's name
    #[arg(value_name = "EVENT")]
    pub event: String,
    /// The event's properties as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub properties: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines page|screen USER_ID [NAME] [--properties JSON]`.
#[derive(Debug, clap::Args)]
pub struct PipelinesView {
    /// Who, when, how.
    #[command(flatten)]
    pub common: PipelinesCommon,
    /// The page's or screen's name
    #[arg(value_name = "NAME")]
    pub name: Option<String>,
    /// Its properties (url, path, title, ...) as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub properties: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines group USER_ID GROUP_ID [--traits JSON]`.
#[derive(Debug, clap::Args)]
pub struct PipelinesGroup {
    /// Who, when, how.
    #[command(flatten)]
    pub common: PipelinesCommon,
    /// The group's id
    #[arg(value_name = "GROUP_ID")]
    pub group_id: String,
    /// The group's traits as a JSON object; - reads standard input
    #[arg(long, value_name = "JSON")]
    pub traits: Option<String>,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `pipelines alias USER_ID PREVIOUS_ID`.
#[derive(Debug, clap::Args)]
pub struct PipelinesAlias {
    /// Who, when, how.
    #[command(flatten)]
    pub common: PipelinesCommon,
    /// The id the person was known by before (e.g. an anonymousId)
    #[arg(value_name = "PREVIOUS_ID")]
    pub previous_id: String,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

impl PipelinesCommand {
    /// The shared connection and output flags.
    pub fn global(&self) -> &Global {
        match self {
            PipelinesCommand::Identify(args) => &args.global,
            PipelinesCommand::Track(args) => &args.global,
            PipelinesCommand::Page(args) | PipelinesCommand::Screen(args) => &args.global,
            PipelinesCommand::Group(args) => &args.global,
            PipelinesCommand::Alias(args) => &args.global,
        }
    }
}

/// `import [FILE|-]`: one Customer.io v2 operation (or Pipelines call) per line.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Each line is one v2 operation, the body /api/v2/entity takes, e.g.
  {\"type\":\"person\",\"action\":\"identify\",\"identifiers\":{\"id\":\"42\"},\"attributes\":{\"plan\":\"pro\"}}
With --api pipelines, one Pipelines call with its type, e.g.
  {\"type\":\"track\",\"userId\":\"42\",\"event\":\"upgraded\",\"properties\":{\"plan\":\"pro\"}}
needing only the Pipelines key (CUSTOMERIO_PIPELINES_API_KEY); a call without a
messageId gets one derived from the file and the line, so a retry or a
--resume repeats it and Customer.io counts the call once.
Bad lines go to the dead-letter file with their line number and reason; the
import goes on. Exit 0: every line delivered; 1: some dead-lettered; 2: fatal
(credentials, region, files); 3: Customer.io unavailable, resume later with
--checkpoint PATH --resume. Ctrl-C or SIGTERM stops it cleanly (exit 130 or
143) and prints the command that resumes it; a second one exits at once.")]
pub struct Import {
    /// The NDJSON or CSV file (gzip too), or - for standard input
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
    /// The API the lines are for, and so what each line holds
    #[arg(long, value_enum, default_value_t = ApiArg::Track)]
    pub api: ApiArg,
    /// Requests per second (a batch is one request), retries included: at
    /// most N in any 1 s window. The ceiling: below it, the rate follows the
    /// workspace's 429s unless --fixed-rate [default: 50, the preset for
    /// bulk imports, or for Pipelines calls with --api pipelines]
    #[arg(long, value_name = "N", value_parser = rate)]
    pub rate: Option<f64>,
    /// Requests allowed at once after a quiet spell [default: a tenth of --rate, at least 1]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub burst: Option<u32>,
    /// Requests on the wire at once (one backing off after a failure holds no place); more keep --rate up when answers are slow
    #[arg(long, value_name = "N", default_value_t = Importer::DEFAULT_WORKERS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// batch: many lines per /api/v2/batch (or /v1/batch) request; single: one
    /// /api/v2/entity (or /v1/{type}) request per line
    #[arg(long, value_enum, default_value_t = ModeArg::Batch)]
    pub mode: ModeArg,
    /// The input's format [default: csv for FILE.csv or FILE.csv.gz, else ndjson]
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub format: Option<FormatArg>,
    /// CSV: take each person's identifier from this column [default: id,
    /// else email, else cio_id]
    #[arg(long, value_name = "NAME")]
    pub id_column: Option<String>,
    /// CSV: send every cell as a string instead of typing numbers and booleans
    #[arg(long)]
    pub csv_strings: bool,
    /// Where bad lines go [default: FILE.dead-letter.ndjson, or
    /// cio-import.dead-letter.ndjson for standard input]
    #[arg(long, value_name = "PATH")]
    pub dead_letter: Option<PathBuf>,
    /// Keep a checkpoint here, to resume after a crash or an outage
    #[arg(long, value_name = "PATH")]
    pub checkpoint: Option<PathBuf>,
    /// Continue after the line the checkpoint names
    #[arg(long, requires = "checkpoint")]
    pub resume: bool,
    /// Read and check every line and write the dead-letter file, but send
    /// nothing (no credentials needed, no checkpoint written). Exit 0: every
    /// line is valid; 1: some were dead-lettered
    #[arg(long)]
    pub dry_run: bool,
    /// Share one rate with every process importing to the same workspace
    /// (with --api pipelines: every Pipelines import) through this Redis
    /// (redis://[:password@]host[:port][/db]); what one process learns from
    /// 429s, every process sharing it follows (unless --fixed-rate), never
    /// above --rate. A Redis that refuses it (password, database, TLS)
    /// stops the import at once with exit 2
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// While Redis is unreachable, go on at this share of --rate (0-1]
    /// instead of waiting for it [default: wait]
    #[arg(long, value_name = "SHARE", requires = "redis_url", value_parser = share)]
    pub redis_fallback: Option<f64>,
    /// Trust the CA certificates in this PEM file, instead of the system's,
    /// for a rediss:// --redis-url
    #[arg(long, value_name = "PATH", requires = "redis_url")]
    pub redis_ca: Option<PathBuf>,
    /// While Redis is unreachable, wait at most this long, then stop with
    /// exit 3 and the checkpoint written, to resume later [default: wait
    /// until Redis is back: the job never overspends and carries on by itself]
    #[arg(long, value_name = "SECS", requires = "redis_url", conflicts_with = "redis_fallback", value_parser = seconds)]
    pub redis_wait: Option<Duration>,
    /// When other processes share --redis-url at another --rate or --burst,
    /// take on theirs instead of refusing to start (what they learned is
    /// shared whatever this flag says)
    #[arg(long, requires = "redis_url")]
    pub redis_adopt: bool,
    /// The default, kept for old scripts: learn the workspace's limit from
    /// its 429s (the rate becomes what the server accepted in the last
    /// second, then probes back up), never above --rate
    #[arg(long, conflicts_with = "fixed_rate")]
    pub adaptive: bool,
    /// Keep --rate as given: a 429 pauses, but never lowers the rate
    #[arg(long)]
    pub fixed_rate: bool,
    /// Write Prometheus metrics (node_exporter's textfile format) here, by
    /// temporary file and rename, every few seconds and at the end; an
    /// existing file is replaced only if an import wrote it
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Without a terminal, log progress every N lines done
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub progress_every: u64,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `--api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApiArg {
    /// Track API v2 operations, with the site id and Track API key
    Track,
    /// Pipelines API calls (Data Pipelines), NDJSON only, with the Pipelines API key
    Pipelines,
}

/// `--mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Many lines per /api/v2/batch (or /v1/batch) request, under 500 KB each
    Batch,
    /// One /api/v2/entity (or /v1/{type}) request per line
    Single,
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// One v2 operation (JSON object) per line
    Ndjson,
    /// A header row, then one person per row, each sent as an identify
    Csv,
}

impl Import {
    /// The input's format: `--format`, else `.csv` or `.csv.gz` means CSV.
    pub fn format(&self) -> FormatArg {
        self.format.unwrap_or_else(|| {
            let name = self.input.to_string_lossy().to_ascii_lowercase();
            if name.ends_with(".csv") || name.ends_with(".csv.gz") {
                FormatArg::Csv
            } else {
                FormatArg::Ndjson
            }
        })
    }
}

/// `relay --listen ADDR:PORT --spool DIR`: a local Customer.io endpoint.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Point an official client at the relay, with the same credentials (the clients
default to HTTPS: customerio-node also needs port, protocol and an http.Agent):
  new TrackClient(site, key, { url: 'http://127.0.0.1:8089/api/v1', port: 8089,
    protocol: 'http:', agent: new http.Agent({ keepAlive: true }) })
Track v1 (identify, events, anonymous events, delete, suppress, unsuppress,
devices, merge) and v2 (/api/v2/entity, /api/v2/batch) calls, and Pipelines
calls (/v1/identify, track, page, screen, group, alias, batch) with a Pipelines
key, are checked as Customer.io checks them, written to the spool and fsynced,
then answered 200; the spool is delivered through the importer at --rate.
Other credentials get 401; a full spool (--max-spool) gets 429 with Retry-After.
GET /health answers JSON. Ctrl-C or SIGTERM: stop accepting, fsync, exit 130 or
143 with the spool intact; start it again on the same --spool to go on.")]
pub struct Relay {
    /// Where to listen: ADDR:PORT, or a PORT on 127.0.0.1 (port 0 picks a free one; the
    /// address is printed)
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8089", value_parser = listen)]
    pub listen: std::net::SocketAddr,
    /// The spool folder (created if missing): segments of accepted calls, their
    /// checkpoints and dead letters. One relay at a time per folder
    #[arg(long, value_name = "DIR")]
    pub spool: PathBuf,
    /// Answer 429 with Retry-After while the spool holds this many bytes (at least 64 KiB)
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30, value_parser = clap::value_parser!(u64).range(64 * 1024..))]
    pub max_spool: u64,
    /// Requests per second to Customer.io (a batch is one request), retries included;
    /// the ceiling below which the rate follows the workspace's 429s unless
    /// --fixed-rate [default: 50, or the Pipelines preset for Pipelines calls]
    #[arg(long, value_name = "N", value_parser = rate)]
    pub rate: Option<f64>,
    /// Keep --rate as given: a 429 pauses, but never lowers the rate
    #[arg(long)]
    pub fixed_rate: bool,
    /// Share one rate with every relay and import to the same workspace through this Redis
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Trust the CA certificates in this PEM file for a rediss:// --redis-url
    #[arg(long, value_name = "PATH", requires = "redis_url")]
    pub redis_ca: Option<PathBuf>,
    /// Requests to Customer.io on the wire at once
    #[arg(long, value_name = "N", default_value_t = Importer::DEFAULT_WORKERS as u16, value_parser = clap::value_parser!(u16).range(1..))]
    pub workers: u16,
    /// Write Prometheus metrics (node_exporter's textfile format) here every few seconds
    #[arg(long, value_name = "PATH")]
    pub metrics_file: Option<PathBuf>,
    /// Print a progress line this often while calls come or go
    #[arg(long, value_name = "SECS", default_value = "5", value_parser = seconds)]
    pub progress_secs: Duration,
    /// Connection and output.
    #[command(flatten)]
    pub global: Global,
}

/// `--listen`: ADDR:PORT, or a bare PORT on 127.0.0.1.
fn listen(text: &str) -> Result<std::net::SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok((std::net::Ipv4Addr::LOCALHOST, port).into());
    }
    text.parse()
        .map_err(|_| format!("{text:?} is not ADDR:PORT (e.g. 127.0.0.1:8089) or a port"))
}

/// `--redis-fallback`: a share of the rate in (0, 1].
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(share) if share > 0.0 && share <= 1.0 => Ok(share),
        _ => Err(format!(
            "{text:?} is not a share between 0 (excluded) and 1"
        )),
    }
}

/// `--rate`: requests per second, as the library accepts them.
fn rate(text: &str) -> Result<f64, String> {
    let rate = text
        .parse::<f64>()
        .map_err(|_| format!("{text:?} is not a number"))?;
    RateLimit::at(rate)
        .map(|_| rate)
        .map_err(|error| error.to_string())
}

/// `emulator [ARGS...]`: everything after `emulator` goes to `cio-emulator`.
#[derive(Debug, clap::Args)]
pub struct Foreground {
    /// cio-emulator's arguments, e.g. --port 8080 --track-limit 50
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<OsString>,
}

/// `--timeout`: seconds, more than zero, fractions allowed.
fn seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).map_err(|error| error.to_string())
    } else {
        Err("must be more than zero".into())
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("cio-ratelimit").chain(args.iter().copied()))
    }

    fn call(args: &[&str]) -> CallCommand {
        match parse(args).unwrap().command {
            Command::Call(call) => *call,
            _ => panic!("not a call"),
        }
    }

    #[test]
    fn import_flags_and_their_defaults() {
        let Command::Import(import) = parse(&["import"]).unwrap().command else {
            panic!("not import");
        };
        assert_eq!(import.input, PathBuf::from("-"));
        assert_eq!(
            (import.rate, import.burst, import.workers, import.mode),
            (None, None, 4, ModeArg::Batch)
        );
        assert_eq!(import.api, ApiArg::Track);
        assert!(parse(&["import", "f", "--api", "pipelines"])
            .is_ok_and(|args| matches!(args.command, Command::Import(import) if import.api == ApiArg::Pipelines)));
        assert!(parse(&["import", "f", "--api", "app"]).is_err());
        assert!(
            parse(&["import", "f", "--resume"]).is_err(),
            "--resume needs --checkpoint"
        );
        assert!(parse(&["import", "f", "--rate", "0"]).is_err());
        assert!(parse(&["import", "f", "--rate", "NaN"]).is_err());
        assert!(parse(&["import", "f", "--burst", "0"]).is_err());
        assert!(
            parse(&[
                "import",
                "f",
                "--mode",
                "single",
                "--checkpoint",
                "c",
                "--resume"
            ])
            .is_ok()
        );
        assert!(parse(&["import", "f", "--adaptive", "--redis-url", "redis://x"]).is_ok());
        assert!(parse(&["import", "f", "--adaptive", "--fixed-rate"]).is_err());
        assert!(
            parse(&["import", "f", "--fixed-rate"]).is_ok_and(|args| matches!(
                args.command,
                Command::Import(import) if import.fixed_rate && !import.adaptive
            ))
        );
        assert!(
            parse(&["import", "f", "--redis-fallback", "0.5"]).is_err(),
            "needs --redis-url"
        );
        let fallback =
            |share: &str| parse(&["import", "f", "--redis-url", "r", "--redis-fallback", share]);
        assert!(fallback("1.5").is_err() && fallback("0").is_err());
        assert!(fallback("0.25").is_ok());
        let redis = |flags: &[&str]| {
            parse(&[&["import", "f", "--redis-url", "rediss://r"][..], flags].concat())
        };
        assert!(
            redis(&[
                "--redis-wait",
                "30",
                "--redis-ca",
                "ca.pem",
                "--redis-adopt"
            ])
            .is_ok()
        );
        assert!(redis(&["--redis-wait", "0"]).is_err());
        assert!(
            redis(&["--redis-wait", "30", "--redis-fallback", "0.5"]).is_err(),
            "wait or fall back, not both"
        );
        for flag in [
            &["--redis-wait", "30"][..],
            &["--redis-ca", "ca.pem"],
            &["--redis-adopt"],
        ] {
            assert!(
                parse(&[&["import", "f"][..], flag].concat()).is_err(),
                "{flag:?} needs --redis-url"
            );
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Args::command().debug_assert();
    }

    #[test]
    fn positionals_and_identifier_switches() {
        let CallCommand::Track(track) =
            call(&["track", "ada@example.com", "/pricing", "--email", "--page"])
        else {
            panic!("not track");
        };
        assert_eq!(
            track.person.identifier(),
            Identifier::email("ada@example.com")
        );
        assert_eq!(track.name, "/pricing");
        assert!(track.page && !track.screen);
        assert!(parse(&["track", "1", "x", "--page", "--screen"]).is_err());
        assert!(parse(&["delete", "1", "--email", "--cio-id"]).is_err());
    }

    #[test]
    fn send_email_needs_exactly_one_recipient() {
        let base = ["send-email", "--message-id", "7", "--to", "a@b.c"];
        assert!(parse(&base).is_err());
        let both = [&base[..], &["--person-id", "1", "--person-email", "a@b.c"]].concat();
        assert!(parse(&both).is_err());
        let one = [&base[..], &["--person-cio-id", "f00"]].concat();
        let CallCommand::SendEmail(send) = call(&one) else {
            panic!("not send-email");
        };
        assert_eq!(send.recipient.identifier(), Identifier::cio_id("f00"));
    }

    #[test]
    fn the_other_sends_take_the_flags_send_email_takes() {
        for command in ["send-sms", "send-push", "send-in-app"] {
            let base = [command, "--message-id", "7"];
            assert!(parse(&base).is_err(), "{command} needs a person");
            let both = [&base[..], &["--person-id", "1", "--person-email", "a@b.c"]].concat();
            assert!(parse(&both).is_err(), "{command}: one person");
            let one = [&base[..], &["--person-email", "a@b.c", "--data", "{}"]].concat();
            assert_eq!(call(&one).name(), command);
        }
        assert!(
            parse(&[
                "send-sms",
                "--message-id",
                "7",
                "--person-id",
                "1",
                "--to",
                "+1"
            ])
            .is_ok()
        );
        assert!(
            parse(&[
                "send-in-app",
                "--message-id",
                "7",
                "--person-id",
                "1",
                "--to",
                "x"
            ])
            .is_err(),
            "an in-app message has no address"
        );
    }

    #[test]
    fn segment_add_and_remove_take_a_segment_and_people() {
        let CallCommand::Segment(segment) =
            call(&["segment", "add", "7", "a@b.c", "d@e.f", "--email"])
        else {
            panic!("not segment");
        };
        let SegmentAction::Add(change) = segment.action else {
            panic!("not add");
        };
        assert_eq!(change.segment_id, 7);
        assert_eq!(
            change.people(),
            [Identifier::email("a@b.c"), Identifier::email("d@e.f")]
        );
        assert_eq!(
            call(&["segment", "remove", "7", "1"]).name(),
            "segment remove"
        );
        assert!(parse(&["segment", "add", "7"]).is_err(), "needs people");
        assert!(
            parse(&["segment", "add", "x", "1"]).is_err(),
            "a numeric id"
        );
    }

    #[test]
    fn a_key_flag_and_its_file_flag_conflict() {
        assert!(parse(&["delete", "1", "--api-key", "k", "--api-key-file", "f"]).is_err());
        assert!(parse(&["delete", "1", "--app-key", "k", "--app-key-file", "f"]).is_err());
    }

    #[test]
    fn emulator_urls_and_explicit_urls_conflict() {
        assert!(
            parse(&[
                "delete",
                "1",
                "--emulator",
                "--track-url",
                "http://127.0.0.1:1"
            ])
            .is_err()
        );
    }

    #[test]
    fn emulator_arguments_pass_through_untouched() {
        let args = [
            "emulator",
            "--site-id",
            "s",
            "--api-key",
            "k",
            "--help",
            "--json",
        ];
        let Command::Emulator(foreground) = parse(&args).unwrap().command else {
            panic!("not emulator");
        };
        assert_eq!(foreground.args, &args[1..]);
    }

    #[test]
    fn timeouts_are_positive_seconds() {
        assert_eq!(seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(seconds("0").is_err());
        assert!(seconds("-1").is_err());
        assert!(seconds("soon").is_err());
        assert!(seconds("1e30").is_err());
    }

    #[test]
    fn keys_do_not_show_in_debug() {
        let args = parse(&[
            "delete",
            "1",
            "--api-key",
            "hunter2-key",
            "--app-key",
            "t0ken",
        ])
        .unwrap();
        let text = format!("{args:?}");
        assert!(
            !text.contains("hunter2-key") && !text.contains("t0ken"),
            "{text}"
        );
    }
}
