//! `cio-ratelimit import`, run as a process against `cio-emulator`: every line
//! arrives once or is dead-lettered, a crash or an outage loses nothing, and
//! the exit code says which.

mod command;
// The library's scripted server: answers cio-emulator would never give.
#[path = "../../tests/scripted/mod.rs"]
mod scripted;

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::time::Duration;

use cio_emulator::{Config, Emulator, Snapshot};
use cio_test_kit::{ScratchDir, dead_letter_lines, dead_letters, write_lines};
use serde_json::{Value, json};

use command::{cio_ratelimit, import, import_at};

/// `n` lines: identifies on odd lines, events (with their own ids) on even
/// ones; with `bad`, every 50th line is broken.
fn write_people_and_events(path: &Path, n: u64, bad: bool) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut text = String::new();
    let (mut people, mut events) = (BTreeSet::new(), BTreeSet::new());
    for line in 1..=n {
        let entry = if bad && line % 50 == 0 {
            "{broken".to_string()
        } else if line % 2 == 1 {
            people.insert(format!("p{line}"));
            json!({"type": "person", "action": "identify", "identifiers": {"id": format!("p{line}")},
                "attributes": {"line": line}})
            .to_string()
        } else {
            let id = format!("event-{line:08}");
            events.insert(id.clone());
            json!({"type": "person", "action": "event", "identifiers": {"id": format!("p{}", line - 1)},
                "name": "seen", "id": id})
            .to_string()
        };
        text.push_str(&entry);
        text.push('\n');
    }
    fs::write(path, text).unwrap();
    (people, events)
}

fn people(snapshots: &[&Snapshot]) -> BTreeSet<String> {
    snapshots
        .iter()
        .flat_map(|s| s.people.keys().cloned())
        .collect()
}

fn event_ids(snapshots: &[&Snapshot]) -> BTreeSet<String> {
    snapshots.iter().flat_map(|s| s.event_ids()).collect()
}

/// Reads the child's standard error until a progress line appears.
fn wait_for_progress(child: &mut std::process::Child) -> BufReader<std::process::ChildStderr> {
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "the import ended before any progress"
        );
        if line.contains("progress:") {
            return stderr;
        }
    }
}

#[test]
fn every_line_arrives_once_bad_lines_are_dead_lettered_and_the_exit_code_is_1() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("basic");
    let input = dir.join("input.ndjson");
    let (people_sent, events_sent) = write_people_and_events(&input, 2_000, true);
    let outcome = import(&emu, &input).json().run();
    outcome.assert_code(1);
    let json = outcome.json();
    assert_eq!(
        (json["delivered"].as_u64(), json["dead_lettered"].as_u64()),
        (Some(1_960), Some(40))
    );
    let snapshot = emu.snapshot();
    assert_eq!(people(&[&snapshot]), people_sent);
    assert_eq!(snapshot.event_ids(), events_sent);
    assert_eq!(
        snapshot.events.len(),
        events_sent.len(),
        "none stored twice"
    );
    let letters: Vec<Value> = dead_letters(&dir.join("input.ndjson.dead-letter.ndjson"));
    assert_eq!(letters.len(), 40);
    assert_eq!(letters[0]["line"], 50);
    assert_eq!(letters[0]["original"], "{broken");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON")
    );
}

#[test]
fn a_clean_import_from_standard_input_exits_0() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("stdin");
    let input = dir.join("input.ndjson");
    let (people_sent, _) = write_people_and_events(&input, 300, false);
    let text = fs::read_to_string(&input).unwrap();
    let dead = dir.join("dead.ndjson");
    let outcome = import(&emu, "-")
        .dead_letter(&dead)
        .mode("single")
        .stdin(&text)
        .run();
    outcome.assert_code(0);
    assert!(
        outcome
            .stdout
            .contains("300 delivered, 0 dead-lettered in 300 requests"),
        "{outcome:?}"
    );
    assert_eq!(people(&[&emu.snapshot()]), people_sent);
    assert!(!dead.exists(), "no dead letters, no file");
}

#[test]
fn kill_9_then_resume_loses_nothing() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("kill");
    let input = dir.join("input.ndjson");
    let (people_sent, events_sent) = write_people_and_events(&input, 1_500, false);
    let checkpoint = dir.join("import.checkpoint");
    let import_file = || {
        import(&emu, &input)
            .mode("single")
            .rate(500)
            .checkpoint(&checkpoint)
            .progress_every(200)
    };
    let mut child = import_file().spawn();
    let _stderr = wait_for_progress(&mut child);
    child.kill().unwrap(); // SIGKILL: no chance to write anything more
    child.wait().unwrap();
    let before = emu.snapshot();
    assert!(
        before.people.len() < people_sent.len(),
        "killed before the end"
    );

    let outcome = import_file().resume().run();
    outcome.assert_code(0);
    let after = emu.snapshot();
    assert_eq!(people(&[&after]), people_sent);
    assert_eq!(after.event_ids(), events_sent, "every event, by id");
    assert_eq!(after.events.len(), events_sent.len(), "none stored twice");
    // Only what was in flight at the kill (at most a checkpoint interval's worth) was sent again.
    let repeated = after.requests - 1_500;
    assert!(repeated < 300, "{repeated} requests repeated");
}

#[test]
fn a_server_stopped_mid_import_exits_3_and_the_import_resumes_cleanly_elsewhere() {
    let first_server = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("stopped");
    let input = dir.join("input.ndjson");
    let (people_sent, events_sent) = write_people_and_events(&input, 1_500, false);
    let checkpoint = dir.join("import.checkpoint");
    let import_file = |server: &Emulator| {
        import(server, &input)
            .mode("single")
            .rate(500)
            .checkpoint(&checkpoint)
            .progress_every(200)
            .max_retries(1)
    };
    let mut child = import_file(&first_server).json().spawn();
    let mut stderr = wait_for_progress(&mut child);
    first_server.shutdown();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut stderr, &mut rest);
    assert_eq!(status.code(), Some(3), "{rest}");
    assert!(
        rest.contains("--resume"),
        "the message says how to go on: {rest}"
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["error"]["transient"], true);
    let before = first_server.snapshot();

    let second_server = Emulator::start(Config::default().track_limit(0)).unwrap();
    let outcome = import_file(&second_server).resume().run();
    outcome.assert_code(0);
    let after = second_server.snapshot();
    assert_eq!(
        people(&[&before, &after]),
        people_sent,
        "every person reached one server or the other"
    );
    assert_eq!(event_ids(&[&before, &after]), events_sent);
    let overlap = before.event_ids().intersection(&after.event_ids()).count();
    assert!(
        overlap < 50,
        "only in-flight work was repeated: {overlap} events"
    );
}

#[test]
fn a_wrong_key_exits_2_within_seconds_after_a_handful_of_requests() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("401");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 5_000, false);
    let outcome = import(&emu, &input)
        .mode("single")
        .env("CUSTOMERIO_TRACK_API_KEY", "sk-wrong-0123456789")
        .run();
    outcome.assert_code(2);
    assert!(outcome.elapsed < Duration::from_secs(10), "{outcome:?}");
    assert!(
        outcome.stderr.contains("Track API site id and API key"),
        "{outcome:?}"
    );
    command::assert_no_piece_of("sk-wrong-0123456789", &outcome.all_output());
    assert!(
        emu.snapshot().requests <= 10,
        "{} requests",
        emu.snapshot().requests
    );
    assert!(
        !dir.join("input.ndjson.dead-letter.ndjson").exists(),
        "good lines are not dead letters"
    );
}

#[test]
fn without_credentials_the_error_says_how_to_set_them_and_mentions_the_emulator() {
    let outcome = cio_ratelimit(&["import", "whatever.ndjson"]).run();
    outcome.assert_code(2);
    for hint in [
        "CUSTOMERIO_SITE_ID",
        "CUSTOMERIO_TRACK_API_KEY",
        "--api-key-file",
        "--emulator",
    ] {
        assert!(outcome.stderr.contains(hint), "{hint}: {outcome:?}");
    }
}

#[test]
fn the_embedded_emulator_imports_the_sample_and_prints_what_arrived() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/sample.ndjson");
    let outcome = cio_ratelimit(&["import", sample, "--emulator", "--json"]).run();
    outcome.assert_code(0);
    let json = outcome.json();
    assert_eq!(json["delivered"], 10_000);
    assert_eq!(
        json["emulator"]["people"].as_u64().unwrap() + json["emulator"]["events"].as_u64().unwrap(),
        10_000
    );
    assert_eq!(json["emulator"]["status_counts"]["200"], json["requests"]);
}

#[test]
fn a_missing_input_file_exits_2_naming_it() {
    let emu = Emulator::start(Config::default()).unwrap();
    let outcome = import(&emu, "/nonexistent/input.ndjson").run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("/nonexistent/input.ndjson"),
        "{outcome:?}"
    );
}

/// Regression: a 207 whose list of rejected items could not be read ended
/// the import with exit 2 (fatal). Which items were accepted is unknown, so
/// the batch is retried, and if it never makes sense the import is
/// unavailable (exit 3, resume later), with nothing dead-lettered.
#[test]
fn a_207_that_never_makes_sense_exits_3_and_dead_letters_nothing() {
    let garbled = r#"{"errors":[{"reason":"invalid","message":"no index"}]}"#;
    let server = scripted::Scripted::start(&[("/api/v2/batch", 207, garbled); 2]);
    let dir = ScratchDir::new("garbled-207");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 10, false);
    let outcome = import_at(server.url(), &input)
        .max_retries(1)
        // One lane: the ten lines go in one batch, the one the script garbles.
        .workers(1)
        .json()
        .run();
    outcome.assert_code(3);
    assert_eq!(server.received().len(), 2, "sent, then retried once");
    assert!(!dir.join("input.ndjson.dead-letter.ndjson").exists());
}

#[test]
fn a_dead_letter_file_that_is_the_input_the_checkpoint_a_device_or_a_folder_exits_2_sending_nothing()
 {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("outputs");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 20, false);
    let checkpoint = dir.join("import.checkpoint");
    let original = fs::read(&input).unwrap();
    for dead_letter in [&input, &checkpoint, Path::new("/dev/null"), dir.path()] {
        let outcome = import(&emu, &input)
            .checkpoint(&checkpoint)
            .dead_letter(dead_letter)
            .run();
        outcome.assert_code(2);
        assert!(outcome.stderr.contains("dead"), "{}", outcome.stderr);
    }
    assert_eq!(emu.snapshot().requests, 0, "nothing sent");
    assert_eq!(fs::read(&input).unwrap(), original, "the input untouched");
    assert!(!checkpoint.exists());
}

#[test]
fn an_unwritable_checkpoint_folder_exits_2_before_any_request() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("checkpoint-folder");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 20, false);
    let checkpoint = dir.join("no-such-folder").join("import.checkpoint");
    let outcome = import(&emu, &input).checkpoint(&checkpoint).run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("no-such-folder"),
        "{}",
        outcome.stderr
    );
    assert_eq!(emu.snapshot().requests, 0);
}

#[test]
fn an_existing_dead_letter_file_is_appended_to() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("append");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 100, true);
    let dead_letter = dir.join("letters.ndjson");
    fs::write(&dead_letter, "{\"from\":\"an earlier run\"}\n").unwrap();
    let outcome = import(&emu, &input).dead_letter(&dead_letter).run();
    outcome.assert_code(1);
    let text = fs::read_to_string(&dead_letter).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "{\"from\":\"an earlier run\"}");
    assert_eq!(lines.len(), 3, "the earlier line and lines 50 and 100");
}

#[test]
fn a_second_import_on_a_checkpoint_in_use_exits_2() {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new("lock");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 1_000, false);
    let checkpoint = dir.join("import.checkpoint");
    let import_file = || {
        import(&emu, &input)
            .mode("single")
            .rate(100)
            .checkpoint(&checkpoint)
            .progress_every(100)
    };
    let mut first = import_file().spawn();
    let _stderr = wait_for_progress(&mut first);
    for second in [import_file(), import_file().resume()] {
        let outcome = second.run();
        outcome.assert_code(2);
        assert!(
            outcome.stderr.contains("another import"),
            "{}",
            outcome.stderr
        );
    }
    first.kill().unwrap();
    first.wait().unwrap();
}

#[test]
fn a_gzip_file_delivers_every_line() {
    use std::io::Write;
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("gzip");
    let plain = dir.join("plain.ndjson");
    let (people_sent, events_sent) = write_people_and_events(&plain, 500, false);
    let input = dir.join("input.ndjson.gz");
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&fs::read(&plain).unwrap()).unwrap();
    fs::write(&input, encoder.finish().unwrap()).unwrap();
    let outcome = import(&emu, &input).json().run();
    outcome.assert_code(0);
    assert_eq!(outcome.json()["delivered"].as_u64(), Some(500));
    let snapshot = emu.snapshot();
    assert_eq!(people(&[&snapshot]), people_sent);
    assert_eq!(snapshot.event_ids(), events_sent);
    assert_eq!(
        snapshot.events.len(),
        events_sent.len(),
        "none stored twice"
    );
}

/// Issue 24: on a full disk the last dead letter was cut mid-line, the next
/// run appended to the cut line, the summary counted fewer letters than were
/// written, and the hint named a checkpoint that was never written.
#[test]
fn a_full_disk_stops_the_import_with_whole_dead_letters_counted_as_written() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("full-disk");
    let input = dir.join("input.ndjson");
    let mut text = String::new();
    for line in 1..=2_000 {
        let entry = match line % 2 {
            0 => format!("{{broken line {line} {}", "x".repeat(100)),
            _ => json!({"type": "person", "action": "identify", "identifiers": {"id": format!("p{line}")}})
                .to_string(),
        };
        text.push_str(&entry);
        text.push('\n');
    }
    fs::write(&input, text).unwrap();
    let dead = dir.join("dead.ndjson");
    let checkpoint = dir.join("import.checkpoint");
    let import_file = || {
        import(&emu, &input)
            .dead_letter(&dead)
            .checkpoint(&checkpoint)
            .json()
    };
    // 24 blocks: 12 or 24 KB, a tenth of the letters at most.
    let full = import_file().with_file_size_limit(24).run();
    full.assert_code(2);
    let written = fs::read_to_string(&dead).unwrap();
    let tail = &written[written.len().saturating_sub(200)..];
    assert!(written.ends_with('\n'), "ends on a whole line: ...{tail:?}");
    for line in written.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|err| panic!("{err}: {line}"));
    }
    assert!(written.lines().count() > 10 && written.lines().count() < 500);
    assert_eq!(
        full.json()["dead_lettered"].as_u64(),
        Some(written.lines().count() as u64),
        "the count printed is the count written"
    );
    if !checkpoint.exists() {
        assert!(!full.stderr.contains("--resume"), "{}", full.stderr);
    }
    // With room again, the import goes on (resumed if a checkpoint was
    // stored before the disk filled, else from the start): every line of
    // the file whole, every bad line in it, and once when resumed.
    let resumed = checkpoint.exists();
    let again = if resumed {
        import_file().resume()
    } else {
        import_file()
    };
    again.run().assert_code(1);
    let lines = dead_letter_lines(&dead);
    assert_eq!(lines.iter().collect::<BTreeSet<_>>().len(), 1_000);
    if resumed {
        assert_eq!(lines.len(), 1_000, "each bad line once");
    }
}

/// Issue 24: a pipe as FILE (`import <(zcat x.gz)`, a FIFO, `/dev/stdin`)
/// was refused with `Illegal seek (os error 29)`.
#[test]
fn a_pipe_named_as_the_file_is_read_as_standard_input_is() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("pipe-as-file");
    let plain = dir.join("plain.ndjson");
    let (people_sent, _) = write_people_and_events(&plain, 100, true);
    let text = fs::read_to_string(&plain).unwrap();
    let outcome = import(&emu, "/dev/stdin")
        .json()
        .stdin(&text)
        .current_dir(&dir)
        .run();
    outcome.assert_code(1);
    assert_eq!(outcome.json()["delivered"].as_u64(), Some(98));
    assert_eq!(people(&[&emu.snapshot()]), people_sent);
    let dead = fs::read_to_string(dir.join("cio-import.dead-letter.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 2, "beside standard input's: {dead}");
}

/// Issue 24: a duplicate or unnamed CSV column was dropped without a word,
/// and integers past 2^53 went out as numbers Customer.io may round.
#[test]
fn a_csv_header_that_would_lose_a_column_is_refused_and_big_integers_stay_exact() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("csv-header");
    let input = dir.join("people.csv");
    for (header, column) in [
        (
            "id,email,email",
            "\"email\" appears twice (columns 2 and 3)",
        ),
        ("id,,plan", "column 2 has no name"),
    ] {
        fs::write(&input, format!("{header}\nu1,a,b\n")).unwrap();
        let outcome = import(&emu, &input).run();
        outcome.assert_code(2);
        assert!(outcome.stderr.contains(column), "{}", outcome.stderr);
    }
    assert_eq!(emu.snapshot().requests, 0, "nothing sent");
    fs::write(
        &input,
        "id,big,fits\nu1,9007199254740993,9007199254740992\n",
    )
    .unwrap();
    import(&emu, &input).run().assert_code(0);
    let attributes = &emu.snapshot().people["u1"].attributes;
    assert_eq!(attributes["big"], json!("9007199254740993"));
    assert_eq!(attributes["fits"], json!(9007199254740992u64));
}

#[test]
fn a_csv_file_arrives_typed_and_quoted_and_its_bad_rows_are_dead_lettered_by_line() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("csv");
    let input = dir.join("people.csv");
    fs::write(
        &input,
        "id,plan,seats,paid,zip,note\n\
         u1,pro,12,true,02134,\"Smith, Jane\"\n\
         u2,free,1.5,false,10001,\"said \"\"hi\"\"\nthen left\"\n\
         u3,extra,field,1,2,3,4\n\
         ,nobody,1,true,1,x\n\
         u4,team,3,true,94107,plain\n",
    )
    .unwrap();
    let outcome = import(&emu, &input).json().run();
    outcome.assert_code(1);
    let json = outcome.json();
    assert_eq!(
        (json["delivered"].as_u64(), json["dead_lettered"].as_u64()),
        (Some(3), Some(2))
    );
    let snapshot = emu.snapshot();
    let u1 = &snapshot.people["u1"].attributes;
    assert_eq!(u1["seats"], json!(12));
    assert_eq!(u1["paid"], json!(true));
    assert_eq!(u1["zip"], json!("02134"), "a leading zero stays");
    assert_eq!(u1["note"], json!("Smith, Jane"));
    let u2 = &snapshot.people["u2"].attributes;
    assert_eq!(u2["seats"], json!(1.5));
    assert_eq!(u2["note"], json!("said \"hi\"\nthen left"));
    assert!(snapshot.people.contains_key("u4"));
    assert_eq!(snapshot.people.len(), 3);
    let lines = dead_letter_lines(&dir.join("people.csv.dead-letter.ndjson"));
    assert_eq!(lines, [5, 6], "rows start on lines 5 and 6 (u2 spans 3-4)");
}

#[test]
fn csv_strings_and_id_column_are_obeyed() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("csv-options");
    let input = dir.join("people.txt");
    fs::write(&input, "user,seats\nu1,12\n").unwrap();
    let outcome = import(&emu, &input)
        .args(["--format", "csv", "--id-column", "user", "--csv-strings"])
        .run();
    outcome.assert_code(0);
    assert_eq!(emu.snapshot().people["u1"].attributes["seats"], json!("12"));
    let missing = import(&emu, &input).args(["--format", "csv"]).run();
    missing.assert_code(2);
    assert!(
        missing.stderr.contains("id, email or cio_id"),
        "{}",
        missing.stderr
    );
}

#[test]
fn resuming_a_finished_import_sends_nothing_and_exits_0_however_often() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("resume-finished");
    let input = dir.join("input.ndjson");
    let (people_sent, _) = write_people_and_events(&input, 300, false);
    let checkpoint = dir.join("import.checkpoint");
    let import_file = || import(&emu, &input).checkpoint(&checkpoint);
    import_file().run().assert_code(0);
    let finished = emu.snapshot().requests;
    for _ in 0..3 {
        let outcome = import_file().resume().json().run();
        outcome.assert_code(0);
        assert_eq!(outcome.json()["requests"].as_u64(), Some(0));
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.requests, finished, "nothing sent again");
    assert_eq!(people(&[&snapshot]), people_sent);
}

#[test]
fn a_checkpoint_past_the_end_of_the_input_exits_2_and_is_not_rewound() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("resume-past-end");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 300, false);
    let text = fs::read_to_string(&input).unwrap();
    let checkpoint = dir.join("import.checkpoint");
    let run = |stdin: &str, resume: bool| import_stdin(&emu, &dir, stdin, resume);
    run(&text, false).assert_code(0);
    let kept = fs::read_to_string(&checkpoint).unwrap();
    let requests = emu.snapshot().requests;
    let first_100: String = text.lines().take(100).map(|l| format!("{l}\n")).collect();
    let outcome = run(&first_100, true);
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("line 300") && outcome.stderr.contains("line 100"),
        "{}",
        outcome.stderr
    );
    assert_eq!(emu.snapshot().requests, requests, "nothing sent");
    assert_eq!(
        fs::read_to_string(&checkpoint).unwrap(),
        kept,
        "not rewound"
    );
    // The whole input again resumes to nothing, cleanly.
    run(&text, true).assert_code(0);
    assert_eq!(emu.snapshot().requests, requests);
}

#[test]
fn a_dry_run_needs_no_credentials_dead_letters_bad_lines_and_sends_nothing() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("dry-run");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 500, true);
    let url = emu.url();
    let dry_run = |input: &Path| {
        cio_ratelimit(&[
            "import",
            input.to_str().unwrap(),
            "--dry-run",
            "--track-url",
            &url,
            "--checkpoint",
            dir.join("import.checkpoint").to_str().unwrap(),
            "--json",
        ])
        .run()
    };
    let outcome = dry_run(&input);
    outcome.assert_code(1);
    let json = outcome.json();
    assert_eq!(
        (
            json["dry_run"].as_bool(),
            json["delivered"].as_u64(),
            json["dead_lettered"].as_u64(),
            json["requests"].as_u64()
        ),
        (Some(true), Some(490), Some(10), Some(0))
    );
    let dead = fs::read_to_string(dir.join("input.ndjson.dead-letter.ndjson")).unwrap();
    assert_eq!(dead.lines().count(), 10);
    assert!(!dir.join("import.checkpoint").exists(), "no checkpoint");

    let clean = dir.join("clean.ndjson");
    write_people_and_events(&clean, 500, false);
    let outcome = dry_run(&clean);
    outcome.assert_code(0);
    assert_eq!(outcome.json()["delivered"], 500);
    let text = cio_ratelimit(&["import", clean.to_str().unwrap(), "--dry-run"]).run();
    text.assert_code(0);
    assert!(
        text.stdout.contains("dry run: checked 500 lines")
            && text.stdout.contains("nothing was sent"),
        "{text:?}"
    );
    assert_eq!(emu.snapshot().requests, 0, "nothing reached the server");
}

/// Issue 24: `--dry-run --json` said `"delivered": 300` while nothing was
/// sent, and passed lines the emulator refuses: a blank event name, a
/// timestamp with a fraction (and an email given as a number).
#[test]
fn a_dry_run_reports_what_it_checked_and_refuses_what_the_server_would() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("dry-run-verdicts");
    let input = dir.join("input.ndjson");
    let lines = [
        json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}}),
        json!({"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "ok", "timestamp": 1700000000}),
        json!({"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "  "}),
        json!({"type": "person", "action": "event", "identifiers": {"id": "1"}, "name": "x", "timestamp": 1.5}),
        json!({"type": "person", "action": "identify", "identifiers": {"email": 5}}),
    ];
    write_lines(&input, lines);
    let checked = cio_ratelimit(&["import", input.to_str().unwrap(), "--dry-run", "--json"]).run();
    checked.assert_code(1);
    let json = checked.json();
    assert_eq!(
        (
            json["checked"].as_u64(),
            json["valid"].as_u64(),
            json["sent"].as_u64(),
            json["dead_lettered"].as_u64()
        ),
        (Some(5), Some(2), Some(0), Some(3)),
        "{json}"
    );
    // The server's verdicts are the dry run's.
    let dead = dir.join("real.dead-letter.ndjson");
    let real = import(&emu, &input).dead_letter(&dead).json().run();
    real.assert_code(1);
    assert_eq!(dead_letter_lines(&dead), [3, 4, 5]);
    assert!(
        !fs::read_to_string(&dead)
            .unwrap()
            .contains("rejected by Customer.io"),
        "each refused before sending"
    );
}

/// Starts an import of 1,500 lines at 500 requests/s, sends it `signal` once
/// the server has received something, and checks it stops cleanly with
/// `code` and the exact resume command; then runs that command and checks
/// every line arrived exactly once over both runs.
fn a_signal_stops_cleanly_and_the_printed_command_resumes(signal: &str, code: i32) {
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = ScratchDir::new(&format!("signal-{signal}"));
    let input = dir.join("input.ndjson");
    let (people_sent, events_sent) = write_people_and_events(&input, 1_500, false);
    let checkpoint = dir.join("import.checkpoint");
    let first = import(&emu, &input)
        .mode("single")
        .rate(500)
        .checkpoint(&checkpoint);
    let args = first.arguments();
    let child = first.spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.snapshot().requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing arrived in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let killed = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    let stopped = emu.snapshot();
    assert!(
        stopped.people.len() < people_sent.len(),
        "stopped before the end"
    );
    assert!(
        stderr.contains(&format!("stopped by SIG{signal} after line")),
        "{stderr}"
    );
    // The exact command, with every flag as given, and --resume.
    let command = stderr
        .lines()
        .skip_while(|line| !line.ends_with("Resume with:"))
        .nth(1)
        .unwrap_or_else(|| panic!("no resume command: {stderr}"))
        .trim();
    let words: Vec<&str> = command.split(' ').collect();
    assert_eq!(words[0], env!("CARGO_BIN_EXE_cio-ratelimit"));
    let resumed_args = &words[1..];
    assert_eq!(resumed_args[..args.len()], args, "{command}");
    assert_eq!(resumed_args.last(), Some(&"--resume"), "{command}");

    // The printed flags (the emulator's URLs among them), run again.
    let mut resume = command::cio_ratelimit(resumed_args);
    for (name, value) in [
        ("CUSTOMERIO_SITE_ID", cio_emulator::DEFAULT_SITE_ID),
        ("CUSTOMERIO_TRACK_API_KEY", cio_emulator::DEFAULT_API_KEY),
    ] {
        resume = resume.env(name, value);
    }
    resume.run().assert_code(0);
    let after = emu.snapshot();
    assert_eq!(people(&[&after]), people_sent);
    assert!(
        after.people.values().all(|p| p.identify_count == 1),
        "no identify sent twice"
    );
    assert_eq!(after.event_ids(), events_sent, "every event, by id");
    assert_eq!(after.duplicate_events, 0, "no event sent twice");
    assert_eq!(after.requests, 1_500, "one request per line, in all");
}

#[test]
fn sigterm_stops_cleanly_with_exit_143_and_the_resume_command_sends_the_rest_once() {
    a_signal_stops_cleanly_and_the_printed_command_resumes("TERM", 143);
}

#[test]
fn sigint_stops_cleanly_with_exit_130_and_the_resume_command_sends_the_rest_once() {
    a_signal_stops_cleanly_and_the_printed_command_resumes("INT", 130);
}

#[test]
fn a_second_signal_exits_at_once_without_waiting_for_the_requests_in_flight() {
    // Every answer takes 20 s: a clean stop would wait that long for them.
    let emu = Emulator::start(Config::default().latency(Duration::from_secs(20))).unwrap();
    let dir = ScratchDir::new("second-signal");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 100, false);
    let mut child = import(&emu, &input).mode("single").spawn();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.snapshot().requests == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "nothing arrived in 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Signals sent close together may merge into one: send them until the
    // process is gone, as an impatient user would.
    let first_signal = std::time::Instant::now();
    let pid = child.id().to_string();
    let status = loop {
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            first_signal.elapsed() < Duration::from_secs(10),
            "still running 10 s after the first signal"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(143));
    assert!(
        first_signal.elapsed() < Duration::from_secs(10),
        "exited at once, not after the answers: {:?}",
        first_signal.elapsed()
    );
    // Issue 24: it exited without a word.
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    let said: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("again"))
        .collect();
    assert_eq!(said.len(), 1, "{stderr}");
    assert!(said[0].contains("SIGTERM again: exiting now"), "{stderr}");
}

/// `n` events without ids, each for its own person.
fn events_without_ids(n: u64) -> String {
    (1..=n)
        .map(|line| {
            json!({"type": "person", "action": "event", "identifiers": {"id": format!("p{line}")},
                "name": "seen", "attributes": {"line": line}})
            .to_string()
                + "\n"
        })
        .collect()
}

#[test]
fn the_same_standard_input_twice_gives_every_event_the_same_id() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("stdin-ids");
    let dead_letter = dir.join("dead.ndjson");
    let input = events_without_ids(200);
    let import_stdin = || {
        import(&emu, "-")
            .dead_letter(&dead_letter)
            .stdin(&input)
            .run()
            .assert_code(0);
    };
    import_stdin();
    let first = emu.snapshot();
    assert_eq!(first.events.len(), 200);
    import_stdin();
    let second = emu.snapshot();
    assert_eq!(second.event_ids(), first.event_ids());
    assert_eq!(
        (second.events.len(), second.duplicate_events),
        (200, 200),
        "every event of the second run was a repeat"
    );
}

/// `import -` reading `stdin`, with its checkpoint and dead letters in `dir`.
fn import_stdin(emu: &Emulator, dir: &Path, stdin: &str, resume: bool) -> command::Outcome {
    let run = import(emu, "-")
        .checkpoint(dir.join("import.checkpoint"))
        .dead_letter(dir.join("dead.ndjson"));
    let run = if resume { run.resume() } else { run };
    run.stdin(stdin).run()
}

#[test]
fn resuming_from_standard_input_with_other_content_exits_2_sending_nothing() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("stdin-resume");
    import_stdin(&emu, &dir, &events_without_ids(100), false).assert_code(0);
    let sent = emu.snapshot().requests;
    let other = events_without_ids(150).replacen("\"p1\"", "\"p0\"", 1);
    let outcome = import_stdin(&emu, &dir, &other, true);
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("not the ones it was kept for"),
        "{outcome:?}"
    );
    assert_eq!(emu.snapshot().requests, sent, "nothing sent");
    // The same content, grown, resumes: only the new lines go.
    import_stdin(&emu, &dir, &events_without_ids(150), true).assert_code(0);
    let after = emu.snapshot();
    assert_eq!((after.events.len(), after.duplicate_events), (150, 0));
}

#[test]
fn a_binary_file_stops_with_exit_2_after_its_first_hundred_lines() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("binary");
    let input = dir.join("photo.ndjson");
    // 4 MB of noise: about 16,000 "lines", none of them JSON.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let noise: Vec<u8> = (0..4 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    fs::write(&input, &noise).unwrap();
    let outcome = import(&emu, &input).json().run();
    outcome.assert_code(2);
    let json = outcome.json();
    assert_eq!(json["lines_read"], 100, "nothing further was read");
    assert!(
        json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100 of 100 lines in a row are not valid operations"),
        "{json}"
    );
    assert_eq!(emu.snapshot().requests, 0);
    let dead = fs::read(dir.join("photo.ndjson.dead-letter.ndjson")).unwrap_or_default();
    assert!(
        dead.len() < noise.len() / 10,
        "{} bytes of dead letters",
        dead.len()
    );
}

#[test]
fn csv_flags_on_ndjson_input_exit_2_naming_the_flag() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("csv-flags");
    let input = dir.join("input.ndjson");
    write_people_and_events(&input, 10, false);
    for flags in [&["--id-column", "email"][..], &["--csv-strings"]] {
        let outcome = import(&emu, &input).args(flags).run();
        outcome.assert_code(2);
        assert!(
            outcome.stderr.contains(flags[0]) && outcome.stderr.contains("CSV"),
            "{outcome:?}"
        );
    }
    assert_eq!(emu.snapshot().requests, 0);
    // With CSV input, they are welcome.
    let csv = dir.join("people.csv");
    fs::write(&csv, "email,plan\na@example.com,pro\n").unwrap();
    import(&emu, &csv)
        .args(["--id-column", "email", "--csv-strings"])
        .run()
        .assert_code(0);
}

#[test]
fn sigterm_stops_an_import_from_a_pipe_that_stays_open_at_once() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("open-pipe");
    let checkpoint = dir.join("import.checkpoint");
    let dead_letter = dir.join("dead.ndjson");
    let mut child = Command::new(env!("CARGO_BIN_EXE_cio-ratelimit"))
        .args([
            "import",
            "-",
            "--checkpoint",
            checkpoint.to_str().unwrap(),
            "--dead-letter",
            dead_letter.to_str().unwrap(),
            "--track-url",
            &emu.url(),
        ])
        .env("CUSTOMERIO_SITE_ID", cio_emulator::DEFAULT_SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", cio_emulator::DEFAULT_API_KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `tail -f`: a hundred lines, then the pipe stays open and silent.
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(events_without_ids(100).as_bytes()).unwrap();
    pipe.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while emu.snapshot().events.len() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "the lines never arrived"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let signalled = std::time::Instant::now();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if signalled.elapsed() > Duration::from_secs(5) {
            child.kill().unwrap();
            panic!("still waiting for the pipe 5 s after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(143));
    let stored = cio_ratelimit::import::Checkpoint::load(&checkpoint).unwrap();
    assert_eq!((stored.line(), stored.delivered()), (100, 100));
    drop(pipe);
}
