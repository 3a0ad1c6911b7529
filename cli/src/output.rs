//! What a command prints: a short line for people or one JSON object
//! (`--json`) on standard output, what an `--emulator` received, and errors
//! on standard error as `cio-ratelimit: <message>: <cause>...`.

use std::io::{self, Write};

use cio_emulator::Snapshot;
use serde_json::{Map, Value, json};

use cio_ratelimit::{Identifier, import::ImportSummary};

use crate::calls::Receipt;
use crate::error::Error;
use crate::exit::Exit;
use crate::rate::RateReport;

/// How many entries of each kind the human summary of an emulator lists.
const SUMMARY_ENTRIES: usize = 10;

/// The output of one command.
#[derive(Debug)]
pub struct Output {
    command: &'static str,
    json: bool,
    arrived: Option<Snapshot>,
    rate: Option<RateReport>,
}

impl Output {
    /// Output for `command`, as one JSON object if `json`.
    pub fn new(command: &'static str, json: bool) -> Output {
        Output {
            command,
            json,
            arrived: None,
            rate: None,
        }
    }

    /// Notes the rate an import ended at and how it changed, to print with
    /// the result: a line for people, `"rate"` in `--json`.
    pub fn rate(&mut self, report: RateReport) {
        self.rate = Some(report);
    }

    /// Notes what an embedded emulator received, to print with the result.
    pub fn arrived(&mut self, snapshot: Snapshot) {
        self.arrived = Some(snapshot);
    }

    /// Prints the result of a call that succeeded.
    ///
    /// # Errors
    ///
    /// [`Error::Output`] if standard output cannot be written (a closed pipe
    /// is not an error: nobody is reading).
    pub fn success(&self, receipt: &Receipt) -> Result<(), Error> {
        let text = if self.json {
            let mut object = self.object(true);
            object.extend(receipt_json(receipt));
            self.with_arrived(object)
        } else {
            let mut text = receipt_line(receipt);
            if let Some(line) = self.rate.as_ref().and_then(RateReport::line) {
                text.push_str("\nrate limit: ");
                text.push_str(&line);
            }
            text.push('\n');
            if let Some(snapshot) = &self.arrived {
                text.push_str(&summary(snapshot));
            }
            text
        };
        to_stdout(|out| out.write_all(text.as_bytes()))
    }

    /// Prints why the command failed on standard error, and on standard
    /// output the JSON object (with `--json`) or what an emulator received.
    pub fn failure(&self, error: &Error) {
        eprintln!("cio-ratelimit: {}", message(error));
        let text = if self.json {
            let mut object = self.object(false);
            let exit = Exit::from(error);
            let transient = exit == Exit::Unavailable;
            if let Error::Import {
                failure, stopped, ..
            } = error
            {
                // How far it got: the same counts a finished import reports.
                object.extend(receipt_json(&Receipt::Imported(Box::new(
                    failure.summary.clone(),
                ))));
                if let Some(stopped) = stopped {
                    object.insert("signal".into(), stopped.signal.name().into());
                    object.insert(
                        "resume_command".into(),
                        stopped.resume_command.clone().into(),
                    );
                }
            }
            object.insert(
                "error".into(),
                json!({
                    "message": message(error),
                    "exit_code": exit.code(),
                    "transient": transient,
                }),
            );
            self.with_arrived(object)
        } else {
            self.arrived.as_ref().map(summary).unwrap_or_default()
        };
        // Already failing: a closed standard output changes nothing.
        let _ = io::stdout().lock().write_all(text.as_bytes());
    }

    fn object(&self, ok: bool) -> Map<String, Value> {
        let mut object = Map::new();
        object.insert("ok".into(), Value::Bool(ok));
        object.insert("command".into(), Value::from(self.command));
        object
    }

    fn with_arrived(&self, mut object: Map<String, Value>) -> String {
        if let Some(rate) = &self.rate {
            object.insert("rate".into(), rate.to_json());
        }
        if let Some(snapshot) = &self.arrived {
            object.insert("emulator".into(), arrived_json(snapshot));
        }
        let mut text = Value::Object(object).to_string();
        text.push('\n');
        text
    }
}

/// Writes to standard output with `write`.
///
/// # Errors
///
/// [`Error::Output`] if standard output cannot be written (a closed pipe is
/// not an error: nobody is reading).
pub fn to_stdout(
    write: impl FnOnce(&mut io::StdoutLock<'static>) -> io::Result<()>,
) -> Result<(), Error> {
    match write(&mut io::stdout().lock()) {
        Err(error) if error.kind() != io::ErrorKind::BrokenPipe => Err(Error::Output(error)),
        _ => Ok(()),
    }
}

/// An error and its causes on one line. A cause the message already ends
/// with is not repeated: the library's `Invalid` errors print theirs.
pub fn message(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

fn receipt_line(receipt: &Receipt) -> String {
    match receipt {
        Receipt::Identified(person) => format!("identified {person}"),
        Receipt::Tracked {
            person,
            name,
            kind,
            id,
        } => format!(
            "tracked {} {name:?} for {person} (event id {id})",
            kind.as_str()
        ),
        Receipt::Deleted(person) => format!("deleted {person}"),
        Receipt::Suppressed(person) => format!("suppressed {person}"),
        Receipt::Unsuppressed(person) => format!("unsuppressed {person}"),
        Receipt::Sent {
            channel,
            person,
            delivery,
        } => format!(
            "queued {} for {person} (delivery id {})",
            channel.as_str(),
            delivery.delivery_id
        ),
        Receipt::Person(profile) => {
            serde_json::to_string_pretty(profile).expect("a profile serializes")
        }
        Receipt::SegmentChanged {
            segment_id,
            people,
            added,
        } => {
            let (verb, preposition) = if *added {
                ("added", "to")
            } else {
                ("removed", "from")
            };
            let count = people.len();
            let noun = if count == 1 { "person" } else { "people" };
            format!("{verb} {count} {noun} {preposition} segment {segment_id}")
        }
        Receipt::BroadcastTriggered {
            campaign_id,
            trigger,
        } => format!(
            "triggered broadcast {campaign_id} (trigger id {})",
            trigger.id
        ),
        Receipt::PipelinesSent(call) => format!(
            "sent Pipelines {} for {} (messageId {})",
            call.call_type(),
            call.person(),
            call.message_id()
        ),
        Receipt::Checked(summary) => {
            let progress = &summary.progress;
            let mut line = format!(
                "dry run: checked {} lines in {:.1} s: {} valid, {} dead-lettered; nothing was sent",
                progress.lines_read,
                progress.elapsed.as_secs_f64(),
                progress.delivered,
                progress.dead_lettered,
            );
            push_dead_letter_file(&mut line, summary);
            line
        }
        Receipt::Imported(summary) => {
            let progress = &summary.progress;
            let mut line = format!(
                "imported {} lines in {:.1} s ({:.0} lines/s): {} delivered, {} dead-lettered in {} requests \
                 ({} retried, {} throttled)",
                progress.lines_read,
                progress.elapsed.as_secs_f64(),
                progress.lines_per_second(),
                progress.delivered,
                progress.dead_lettered,
                progress.requests,
                progress.retried,
                progress.throttled,
            );
            if progress.skipped > 0 {
                line.push_str(&format!(
                    "; {} lines skipped, done before the resume",
                    progress.skipped
                ));
            }
            push_dead_letter_file(&mut line, summary);
            line
        }
    }
}

/// Where the dead letters went, if this run wrote any.
fn push_dead_letter_file(line: &mut String, summary: &ImportSummary) {
    if let Some(path) = summary
        .dead_letter_file
        .as_ref()
        .filter(|_| summary.progress.dead_lettered > 0)
    {
        line.push_str(&format!("\ndead letters: {}", path.display()));
    }
}

fn receipt_json(receipt: &Receipt) -> Map<String, Value> {
    let value = match receipt {
        Receipt::Identified(person)
        | Receipt::Deleted(person)
        | Receipt::Suppressed(person)
        | Receipt::Unsuppressed(person) => json!({"person": person.to_json()}),
        Receipt::Tracked {
            person,
            name,
            kind,
            id,
        } => json!({
            "person": person.to_json(),
            "event": {"name": name, "type": kind.as_str(), "id": id.as_str()},
        }),
        Receipt::Sent {
            person, delivery, ..
        } => json!({
            "person": person.to_json(),
            "delivery_id": delivery.delivery_id,
            "queued_at": delivery.queued_at,
        }),
        Receipt::Person(profile) => json!({ "person": profile }),
        Receipt::SegmentChanged {
            segment_id, people, ..
        } => json!({
            "segment_id": segment_id,
            "people": people.iter().map(Identifier::to_json).collect::<Vec<_>>(),
        }),
        Receipt::BroadcastTriggered {
            campaign_id,
            trigger,
        } => json!({"campaign_id": campaign_id, "trigger_id": trigger.id}),
        Receipt::PipelinesSent(call) => json!({"pipelines": call.to_json()}),
        Receipt::Checked(summary) => {
            // The keys of an import, kept for scripts; a dry run sends
            // nothing, so what it found is said outright: lines checked,
            // and how many of them would be sent.
            let mut object = receipt_json(&Receipt::Imported(summary.clone()));
            object.insert("dry_run".into(), Value::Bool(true));
            object.insert("checked".into(), summary.progress.lines_read.into());
            object.insert("valid".into(), summary.progress.delivered.into());
            object.insert("sent".into(), 0.into());
            return object;
        }
        Receipt::Imported(summary) => {
            let progress = &summary.progress;
            json!({
                "lines_read": progress.lines_read,
                "delivered": progress.delivered,
                "dead_lettered": progress.dead_lettered,
                "skipped": progress.skipped,
                "requests": progress.requests,
                "retried": progress.retried,
                "throttled": progress.throttled,
                "elapsed_seconds": progress.elapsed.as_secs_f64(),
                "lines_per_second": progress.lines_per_second(),
                "checkpoint_line": progress.checkpoint_line,
                "dead_letter_file": summary.dead_letter_file,
            })
        }
    };
    match value {
        Value::Object(object) => object,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// What an emulator received, as JSON: everything when it is a handful of
/// records, counts when it is an import's worth.
fn arrived_json(snapshot: &Snapshot) -> Value {
    let records = snapshot.people.len()
        + snapshot.events.len()
        + snapshot.sends.len()
        + snapshot.pipelines.len();
    if records <= 100 {
        return serde_json::to_value(snapshot).expect("a snapshot serializes");
    }
    json!({
        "requests": snapshot.requests,
        "status_counts": snapshot.status_counts,
        "throttled": snapshot.throttled,
        "people": snapshot.people.len(),
        "events": snapshot.events.len(),
        "duplicate_events": snapshot.duplicate_events,
        "pipelines": snapshot.pipelines.len(),
        "pipelines_duplicates": snapshot.pipelines_duplicates,
        "deleted": snapshot.deleted.len(),
        "classes": snapshot.classes,
    })
}

/// What an emulator received, for people: a count of requests by status,
/// then the records, at most [`SUMMARY_ENTRIES`] of each kind.
fn summary(snapshot: &Snapshot) -> String {
    let statuses: Vec<String> = snapshot
        .status_counts
        .iter()
        .map(|(status, count)| format!("{status} ×{count}"))
        .collect();
    let mut text = format!(
        "emulator received {} request{}",
        snapshot.requests,
        if snapshot.requests == 1 { "" } else { "s" }
    );
    if !statuses.is_empty() {
        text.push_str(&format!(" ({})", statuses.join(", ")));
    }
    if snapshot.dropped_connections > 0 {
        text.push_str(&format!(", dropped {}", snapshot.dropped_connections));
    }
    text.push('\n');
    let people = snapshot.people.iter().map(|(id, person)| {
        let suppressed = if person.suppressed {
            " (suppressed)"
        } else {
            ""
        };
        format!(
            "person {id}{suppressed}: {}",
            Value::Object(person.attributes.clone())
        )
    });
    let deleted = snapshot.deleted.iter().map(|id| format!("deleted {id}"));
    let events = snapshot.events.iter().map(|event| {
        let who = event
            .person
            .as_deref()
            .or(event.anonymous_id.as_deref())
            .unwrap_or("?");
        format!(
            "{} {:?} for {who} (id {}): {}",
            event.kind,
            event.name,
            event.id.as_deref().unwrap_or("none"),
            event.data
        )
    });
    let sends = snapshot
        .sends
        .iter()
        .map(|send| format!("{} {}: {}", send.kind, send.delivery_id, send.body));
    let broadcasts = snapshot
        .broadcasts
        .iter()
        .map(|broadcast| format!("broadcast {}: {}", broadcast.campaign_id, broadcast.body));
    list(&mut text, snapshot.people.len(), people);
    list(&mut text, snapshot.deleted.len(), deleted);
    list(&mut text, snapshot.events.len(), events);
    list(&mut text, snapshot.sends.len(), sends);
    let segments = snapshot.segments.iter().map(|(id, segment)| {
        let members: Vec<&str> = segment.members.iter().map(String::as_str).collect();
        format!("segment {id}: {}", members.join(", "))
    });
    list(&mut text, snapshot.broadcasts.len(), broadcasts);
    list(&mut text, snapshot.segments.len(), segments);
    let pipelines = snapshot.pipelines.iter().map(|call| {
        let who = call
            .user_id
            .as_deref()
            .or(call.anonymous_id.as_deref())
            .unwrap_or("?");
        format!(
            "pipelines {} for {who} (messageId {}): {}",
            call.kind,
            call.message_id.as_deref().unwrap_or("none"),
            call.body
        )
    });
    list(&mut text, snapshot.pipelines.len(), pipelines);
    text
}

fn list(text: &mut String, len: usize, lines: impl Iterator<Item = String>) {
    for line in lines.take(SUMMARY_ENTRIES) {
        text.push_str("  ");
        text.push_str(&line);
        text.push('\n');
    }
    if len > SUMMARY_ENTRIES {
        text.push_str(&format!("  ... and {} more\n", len - SUMMARY_ENTRIES));
    }
}

#[cfg(test)]
mod tests {
    use cio_ratelimit::{
        client::{EventId, EventKind},
        error::Invalid,
    };

    use super::*;

    #[test]
    fn messages_carry_their_causes_once() {
        let invalid = Error::Api(cio_ratelimit::Error::Invalid(Invalid::EmptyIdentifier(
            "id",
        )));
        assert_eq!(message(&invalid), "not sent: the id is empty");
        let source = serde_json::from_str::<Value>("[").unwrap_err();
        let json = Error::Json {
            flag: "--data",
            source,
        };
        let text = message(&json);
        assert!(
            text.starts_with("--data is not valid JSON; nothing was sent: ")
                && text.contains("line 1"),
            "{text}"
        );
    }

    #[test]
    fn receipts_read_as_lines_and_as_json() {
        let receipt = Receipt::Tracked {
            person: Identifier::email("a@b.c"),
            name: "signup".into(),
            kind: EventKind::Event,
            id: EventId::from_key("k"),
        };
        let id = EventId::from_key("k");
        assert_eq!(
            receipt_line(&receipt),
            format!("tracked event \"signup\" for email=a@b.c (event id {id})")
        );
        assert_eq!(
            Value::Object(receipt_json(&receipt)),
            json!({"person": {"email": "a@b.c"}, "event": {"name": "signup", "type": "event", "id": id.as_str()}})
        );
    }

    #[test]
    fn summaries_count_requests_and_cut_long_lists() {
        let mut snapshot = Snapshot {
            requests: 12,
            ..Snapshot::default()
        };
        snapshot.status_counts.insert(200, 11);
        snapshot.status_counts.insert(503, 1);
        snapshot.deleted = (0..12).map(|i| i.to_string()).collect();
        let text = summary(&snapshot);
        assert!(
            text.starts_with("emulator received 12 requests (200 ×11, 503 ×1)\n"),
            "{text}"
        );
        assert_eq!(text.matches("  deleted ").count(), SUMMARY_ENTRIES);
        assert!(text.ends_with("  ... and 2 more\n"), "{text}");
    }
}
