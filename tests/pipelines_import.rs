//! `Importer` with `ImportApi::Pipelines` against `cio-emulator`: every good
//! line arrives once with the `messageId` of its line, bad ones are
//! dead-lettered with their reason, in both modes and through faults.

use std::collections::BTreeMap;
use std::path::Path;

use cio_emulator::{Config, DEFAULT_PIPELINES_KEY, Emulator, Faults, Snapshot};
use cio_ratelimit::{
    Client, Error, Importer,
    error::Credential,
    import::{DeadLetter, ImportApi, ImportMode, ImportSummary},
};
use cio_test_kit::{ScratchDir, dead_letters};

mod line_ids;
mod quick_client;
use line_ids::line_id;
use quick_client::pipelines_client;

fn client(emu: &Emulator, key: &str) -> Client {
    pipelines_client(&emu.url(), key, 8)
}

fn import(
    client: Client,
    dir: &Path,
    mode: ImportMode,
    input: &str,
) -> Result<ImportSummary, Error> {
    Importer::builder(client)
        .api(ImportApi::Pipelines)
        .mode(mode)
        .dead_letter(dir.join("dead.ndjson"))
        .import_id("import")
        .max_batch_bytes(2_000)
        .build()
        .unwrap()
        .import_reader(input.as_bytes(), None)
        .map_err(|failure| failure.error)
}

/// The `messageId` each stored call arrived with, by its `userId`.
fn arrived(snapshot: &Snapshot) -> BTreeMap<String, String> {
    snapshot
        .pipelines
        .iter()
        .map(|call| {
            assert!(call.strict, "strict mode on every request: {call:?}");
            (
                call.user_id.clone().unwrap(),
                call.message_id.clone().expect("every call has a messageId"),
            )
        })
        .collect()
}

/// Line 3 is refused by the client, line 4 by the server (strict mode), line
/// 6 is not JSON; line 5 brings its own `messageId`; the rest are good.
fn input(good: u64) -> (String, BTreeMap<String, String>) {
    let mut text = String::new();
    let mut expected = BTreeMap::new();
    for line in 1..=good + 6 {
        let user = format!("u{line}");
        let call = match line {
            3 => format!(r#"{{"type":"track","userId":"{user}"}}"#),
            4 => format!(r#"{{"type":"page","userId":"{user}","timestamp":"yesterday"}}"#),
            5 => format!(r#"{{"type":"identify","userId":"{user}","messageId":"own-id"}}"#),
            6 => "{broken".to_owned(),
            _ => format!(
                r#"{{"type":"track","userId":"{user}","event":"seen","properties":{{"line":{line}}}}}"#
            ),
        };
        let message_id = match line {
            3 | 4 | 6 => None,
            5 => Some("own-id".to_owned()),
            _ => Some(line_id("import", &call, 0)),
        };
        if let Some(message_id) = message_id {
            expected.insert(user, message_id);
        }
        text.push_str(&call);
        text.push('\n');
    }
    (text, expected)
}

#[test]
fn good_lines_arrive_with_the_message_id_of_their_line_and_bad_ones_are_dead_lettered_in_both_modes()
 {
    for mode in [ImportMode::Batch, ImportMode::Single] {
        let emu = Emulator::start(Config::default().pipelines_limit(0)).unwrap();
        let dir = ScratchDir::new(&format!("modes-{mode:?}"));
        let (text, expected) = input(60);
        let summary = import(client(&emu, DEFAULT_PIPELINES_KEY), &dir, mode, &text).unwrap();
        assert_eq!(
            (summary.progress.delivered, summary.progress.dead_lettered),
            (63, 3),
            "{mode:?}"
        );
        let snapshot = emu.snapshot();
        assert_eq!(arrived(&snapshot), expected, "{mode:?}");
        assert_eq!(snapshot.pipelines_dropped, 0);
        let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
        let lines: Vec<u64> = letters.iter().map(|letter| letter.line).collect();
        assert_eq!(lines, [3, 4, 6], "{mode:?}: {letters:?}");
        assert!(letters[0].reason.contains("\"event\""), "{letters:?}");
        assert!(
            letters[1].reason.starts_with("rejected by Customer.io")
                && letters[1].reason.contains("timestamp"),
            "{letters:?}"
        );
        assert!(letters[1].original.contains("yesterday"), "{letters:?}");
        assert!(letters[2].reason.starts_with("invalid JSON"), "{letters:?}");
        let requests = snapshot.classes["pipelines"].requests;
        match mode {
            // Each good line, and the line the server refused.
            ImportMode::Single => assert_eq!(requests, 64),
            // A few 2 KB batches, and the splits that isolate line 4.
            ImportMode::Batch => assert!((4..30).contains(&requests), "{requests} requests"),
        }
    }
}

#[test]
fn calls_retried_after_server_errors_keep_their_message_ids_and_arrive_once() {
    let faults = Faults::default()
        .seed(7)
        .error_after_store(0.3)
        .error_before_store(0.1);
    let emu = Emulator::start(Config::default().pipelines_limit(0).faults(faults)).unwrap();
    let dir = ScratchDir::new("faults");
    let (text, expected) = input(300);
    let summary = import(
        client(&emu, DEFAULT_PIPELINES_KEY),
        &dir,
        ImportMode::Batch,
        &text,
    )
    .unwrap();
    assert_eq!(summary.progress.delivered, 303);
    assert!(summary.progress.retried > 0, "{summary:?}");
    let snapshot = emu.snapshot();
    assert!(
        snapshot.pipelines_duplicates > 0,
        "calls stored before a 500 were sent again"
    );
    assert_eq!(arrived(&snapshot), expected);
    assert_eq!(snapshot.pipelines.len(), 303, "none stored twice");
}

#[test]
fn a_wrong_key_stops_the_import_naming_the_pipelines_key_and_dead_letters_nothing() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("401");
    let (text, _) = input(20);
    let error = import(client(&emu, "wrong-key"), &dir, ImportMode::Batch, &text).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Unauthorized {
                credential: Credential::PipelinesApiKey,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(emu.snapshot().pipelines.is_empty());
    let letters = dead_letters::<DeadLetter>(&dir.join("dead.ndjson"));
    assert!(
        letters.iter().all(|letter| [3, 6].contains(&letter.line)),
        "only lines refused before sending: {letters:?}"
    );
}

#[cfg(feature = "csv")]
#[test]
fn csv_input_for_the_pipelines_api_is_refused_when_built() {
    let emu = Emulator::start(Config::default()).unwrap();
    let error = Importer::builder(client(&emu, DEFAULT_PIPELINES_KEY))
        .api(ImportApi::Pipelines)
        .csv(cio_ratelimit::import::CsvOptions::new())
        .build()
        .unwrap_err();
    assert!(
        matches!(error, Error::InvalidConfig { setting: "api", .. }),
        "{error:?}"
    );
}

#[test]
fn track_operations_from_memory_are_refused_by_a_pipelines_importer() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("operations");
    let failure = Importer::builder(client(&emu, DEFAULT_PIPELINES_KEY))
        .api(ImportApi::Pipelines)
        .dead_letter(dir.join("dead.ndjson"))
        .build()
        .unwrap()
        .import_operations([
            cio_ratelimit::Operation::identify("1", serde_json::json!({})).unwrap(),
        ])
        .unwrap_err();
    assert!(
        matches!(failure.error, Error::InvalidConfig { setting: "api", .. }),
        "{:?}",
        failure.error
    );
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn resuming_a_track_imports_checkpoint_as_a_pipelines_import_is_refused_before_sending() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("other-api");
    let path = dir.join("import.checkpoint");
    let client = || {
        Client::builder(cio_emulator::DEFAULT_SITE_ID, cio_emulator::DEFAULT_API_KEY)
            .pipelines_key(DEFAULT_PIPELINES_KEY)
            .base_url(emu.url())
            .build()
            .unwrap()
    };
    let importer = |api: ImportApi, resume: bool| {
        Importer::builder(client())
            .api(api)
            .dead_letter(dir.join("dead.ndjson"))
            .checkpoint(&path)
            .resume(resume)
            .import_id("import")
            .build()
            .unwrap()
    };
    let track_line = r#"{"type":"person","action":"identify","identifiers":{"id":"1"}}"#;
    importer(ImportApi::Track, false)
        .import_reader(format!("{track_line}\n").as_bytes(), None)
        .unwrap();
    let checkpoint = cio_ratelimit::import::Checkpoint::load(&path).unwrap();
    assert_eq!(checkpoint.api(), Some(ImportApi::Track));
    let requests = emu.snapshot().requests;
    let (text, _) = input(5);
    let refused = importer(ImportApi::Pipelines, true)
        .import_reader(text.as_bytes(), None)
        .unwrap_err()
        .error;
    assert!(matches!(refused, Error::Checkpoint { .. }), "{refused:?}");
    assert!(
        refused
            .to_string()
            .contains("it belongs to an import to the Track API, not the Pipelines API"),
        "{refused}"
    );
    assert_eq!(emu.snapshot().requests, requests, "nothing more was sent");
    assert!(emu.snapshot().pipelines.is_empty());
}
