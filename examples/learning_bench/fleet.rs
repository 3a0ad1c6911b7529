//! Issue 20's rows against real processes: `cio-ratelimit import` processes,
//! uncoordinated, importing into one `cio-emulator` whose Track API admits at
//! most 100 requests in any 1 s, as `tests/simulation/` simulates them.
//!
//! Each import is its own process (`--mode single --workers 10`), started
//! at its time and, if it has one, killed at its stop. The bench watches the
//! emulator every 100 ms (who had been admitted how many lines) and prints,
//! per row: the time, the utilisation (lines admitted ÷ what the server
//! could admit to those running: its limit, or the sum of their rates if
//! lower, from the first start to the last exit), the 429 share, the slowest
//! import's time ÷ the fastest's, Jain's index of what the learning imports
//! had admitted over their overlap, and the time to take back capacity a
//! neighbour freed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator};
use serde_json::json;

/// The server's limit per 1 s window in every row.
const SERVER: u32 = 100;
/// How often the bench looks at what the emulator admitted.
const SAMPLE: Duration = Duration::from_millis(100);

/// One import process.
#[derive(Clone, Copy)]
struct Import {
    start: Duration,
    lines: u64,
    rate: f64,
    fixed: bool,
    /// Killed then, if it has not finished.
    stop: Option<Duration>,
}

impl Import {
    const fn learning(start_ms: u64, lines: u64) -> Import {
        Import {
            start: Duration::from_millis(start_ms),
            lines,
            rate: 80.0,
            fixed: false,
            stop: None,
        }
    }

    const fn until(self, stop_ms: u64) -> Import {
        Import {
            stop: Some(Duration::from_millis(stop_ms)),
            ..self
        }
    }

    const fn fixed_at(self, rate: f64) -> Import {
        Import {
            rate,
            fixed: true,
            ..self
        }
    }
}

/// One row: imports side by side against the one server.
struct Row {
    name: &'static str,
    imports: Vec<Import>,
    /// Jain's index counts from this long after the last learning import
    /// started.
    settle: Duration,
    /// When a neighbour stops: the reclaim is measured from then.
    freed_at: Option<Duration>,
}

/// The rows, as `tests/simulation/`'s scenarios of the same names.
fn rows() -> Vec<Row> {
    vec![
        Row {
            name: "3 staggered 1.5 s, 900 lines each",
            imports: (0..3).map(|i| Import::learning(i * 1_500, 900)).collect(),
            settle: Duration::ZERO,
            freed_at: None,
        },
        Row {
            name: "3 together, 700 lines each",
            imports: (0..3).map(|_| Import::learning(0, 700)).collect(),
            settle: Duration::ZERO,
            freed_at: None,
        },
        Row {
            name: "fixed 50/s neighbour stops at 20 s; 2 learning until 40 s",
            imports: vec![
                Import::learning(0, 5_000).fixed_at(50.0).until(20_000),
                Import::learning(0, 5_000).until(40_000),
                Import::learning(500, 5_000).until(40_000),
            ],
            settle: Duration::ZERO,
            freed_at: Some(Duration::from_secs(20)),
        },
        Row {
            name: "10 learning 0.1 s apart, 300 lines each; Jain from 10 s",
            imports: (0..10).map(|i| Import::learning(i * 100, 300)).collect(),
            settle: Duration::from_secs(10),
            freed_at: None,
        },
    ]
}

/// What the emulator had admitted of each import, at a time since the start.
struct Sample {
    at: Duration,
    admitted: Vec<u64>,
}

/// What one row came to.
struct Outcome {
    took: Vec<Duration>,
    /// The exit code of each import (`None`: killed at its stop).
    codes: Vec<Option<i32>>,
    utilisation: f64,
    throttled_share: f64,
    spread: Option<f64>,
    fairness: Option<f64>,
    reclaim: Option<Duration>,
}

/// The `cio-ratelimit` binary to run: `--cli LABEL=PATH` arguments, or the
/// one this example was built beside (`target/release/cio-ratelimit`).
pub fn binaries(args: &[String]) -> Vec<(String, PathBuf)> {
    let given: Vec<(String, PathBuf)> = args
        .windows(2)
        .filter(|pair| pair[0] == "--cli")
        .filter_map(|pair| {
            let (label, path) = pair[1].split_once('=')?;
            Some((label.to_owned(), PathBuf::from(path)))
        })
        .collect();
    if !given.is_empty() {
        return given;
    }
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("cio-ratelimit")))
        .unwrap_or_else(|| PathBuf::from("target/release/cio-ratelimit"));
    vec![("this build".to_owned(), beside)]
}

/// Runs the rows numbered in `chosen` (all if empty) with each binary and
/// prints a table.
pub fn run_all(chosen: &[usize], binaries: &[(String, PathBuf)]) {
    // `cargo run --example` does not rebuild the CLI: say which build runs,
    // and how old it is, so that a stale one is seen before its rows are read.
    for (label, path) in binaries {
        let built = std::fs::metadata(path)
            .and_then(|metadata| metadata.modified())
            .unwrap_or_else(|error| {
                panic!(
                    "{label}: no cio-ratelimit at {} ({error}): `cargo build --release -p cio-ratelimit-cli` first, or --cli LABEL=PATH",
                    path.display()
                )
            });
        let age = built.elapsed().unwrap_or_default().as_secs() / 60;
        println!("{label}: {} (built {age} min ago)", path.display());
    }
    println!(
        "\n| # | real processes, server {SERVER}/s, --rate 80 --workers 10 | cio-ratelimit | time | utilisation | 429 share | slowest ÷ fastest | Jain | reclaim |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (index, row) in rows().iter().enumerate() {
        let number = index + 1;
        if !chosen.is_empty() && !chosen.contains(&number) {
            continue;
        }
        for (label, binary) in binaries {
            if !binary.is_file() {
                println!(
                    "| F{number} | {} | {label} | skipped: no {}; build it with `cargo build --release -p cio-ratelimit-cli` | | | | | |",
                    row.name,
                    binary.display()
                );
                continue;
            }
            let outcome = run(number, row, binary);
            let failed: Vec<String> = outcome
                .codes
                .iter()
                .enumerate()
                .filter(|(_, code)| code.is_some_and(|code| code != 0))
                .map(|(i, code)| format!("import {i} exited {}", code.unwrap_or(0)))
                .collect();
            let took = outcome
                .took
                .iter()
                .map(|t| format!("{:.1}", t.as_secs_f64()))
                .collect::<Vec<_>>();
            let took = if took.len() > 4 {
                format!(
                    "{:.1}–{:.1} s",
                    outcome.took.iter().min().unwrap().as_secs_f64(),
                    outcome.took.iter().max().unwrap().as_secs_f64()
                )
            } else {
                format!("{} s", took.join(" / "))
            };
            let shown = |value: Option<f64>, digits: usize| {
                value.map_or_else(|| "-".to_owned(), |v| format!("{v:.digits$}"))
            };
            println!(
                "| F{number} | {}{} | {label} | {took} | {:.1} % | {:.2} % | {} | {} | {} |",
                row.name,
                if failed.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", failed.join(", "))
                },
                outcome.utilisation * 100.0,
                outcome.throttled_share * 100.0,
                shown(outcome.spread, 2),
                shown(outcome.fairness, 3),
                outcome
                    .reclaim
                    .map_or_else(|| "-".to_owned(), |r| format!("{:.1} s", r.as_secs_f64())),
            );
        }
    }
}

/// `lines` identify operations for people `p{process}-{n}`, as NDJSON.
pub fn identify_lines(process: usize, lines: u64) -> String {
    (0..lines)
        .map(|n| {
            let op = json!({
                "type": "person",
                "action": "identify",
                "identifiers": {"id": format!("p{process}-{n}")},
                "attributes": {"n": n},
            });
            format!("{op}\n")
        })
        .collect()
}

/// An NDJSON file of [`identify_lines`].
fn input(dir: &Path, process: usize, lines: u64) -> PathBuf {
    let path = dir.join(format!("import-{process}.ndjson"));
    fs::write(&path, identify_lines(process, lines)).expect("the input is written");
    path
}

fn spawn(binary: &Path, file: &Path, import: &Import, url: &str) -> Child {
    let rate = import.rate.to_string();
    let mut command = Command::new(binary);
    command
        .arg("import")
        .arg(file)
        .args(["--mode", "single", "--workers", "10", "--rate", &rate])
        .args(["--track-url", url, "--app-url", url, "--pipelines-url", url])
        .env("CUSTOMERIO_SITE_ID", DEFAULT_SITE_ID)
        .env("CUSTOMERIO_TRACK_API_KEY", DEFAULT_API_KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // `FLEET_LOGS=DIR` keeps each import's progress lines (its rate
    // changes among them) in DIR/FILE-STEM.log.
    if let Some(dir) = std::env::var_os("FLEET_LOGS") {
        let stem = file.file_stem().unwrap_or_default().to_string_lossy();
        let log = Path::new(&dir).join(format!("{stem}.log"));
        let log = fs::File::create(&log).expect("FLEET_LOGS is a writable folder");
        command.stderr(log);
    }
    if import.fixed {
        command.arg("--fixed-rate");
    }
    command.spawn().expect("cio-ratelimit starts")
}

/// Lines admitted per import, by the people the emulator knows.
fn admitted(emulator: &Emulator, imports: usize) -> Vec<u64> {
    let mut counts = vec![0; imports];
    for id in emulator.snapshot().people.keys() {
        let process = id
            .strip_prefix('p')
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(process, _)| process.parse::<usize>().ok());
        if let Some(count) = process.and_then(|p| counts.get_mut(p)) {
            *count += 1;
        }
    }
    counts
}

fn run(number: usize, row: &Row, binary: &Path) -> Outcome {
    let emulator =
        Emulator::start(Config::default().track_limit(SERVER)).expect("the emulator starts");
    let url = emulator.url();
    let dir = std::env::temp_dir().join(format!(
        "cio-learning-bench-{}-{number}",
        std::process::id()
    ));
    fs::create_dir_all(&dir).expect("a scratch directory");
    let files: Vec<PathBuf> = row
        .imports
        .iter()
        .enumerate()
        .map(|(i, import)| input(&dir, i, import.lines))
        .collect();
    let n = row.imports.len();
    let mut children: Vec<Option<Child>> = (0..n).map(|_| None).collect();
    let mut started: Vec<Option<Duration>> = vec![None; n];
    let mut ended: Vec<Option<Duration>> = vec![None; n];
    let mut codes: Vec<Option<i32>> = vec![None; n];
    let mut samples: Vec<Sample> = Vec::new();
    let mut capacity = 0.0;
    let origin = Instant::now();
    let mut last_tick = Duration::ZERO;
    let mut next_sample = Duration::ZERO;
    while ended.iter().any(Option::is_none) {
        let now = origin.elapsed();
        // What the server could admit to those running since the last tick.
        let asked: f64 = (0..n)
            .filter(|&i| started[i].is_some() && ended[i].is_none())
            .map(|i| row.imports[i].rate)
            .sum();
        capacity += asked.min(f64::from(SERVER)) * (now - last_tick).as_secs_f64();
        last_tick = now;
        for (i, import) in row.imports.iter().enumerate() {
            if started[i].is_none() && now >= import.start {
                children[i] = Some(spawn(binary, &files[i], import, &url));
                started[i] = Some(now);
            }
            let Some(child) = children[i].as_mut() else {
                continue;
            };
            if ended[i].is_some() {
                continue;
            }
            if import.stop.is_some_and(|stop| now >= stop) {
                let _ = child.kill();
                let _ = child.wait();
                ended[i] = Some(now);
            } else if let Ok(Some(status)) = child.try_wait() {
                ended[i] = Some(now);
                codes[i] = Some(status.code().unwrap_or(-1));
            }
        }
        if now >= next_sample {
            samples.push(Sample {
                at: now,
                admitted: admitted(&emulator, n),
            });
            next_sample += SAMPLE;
        }
        thread::sleep(Duration::from_millis(5));
    }
    let end = origin.elapsed();
    samples.push(Sample {
        at: end,
        admitted: admitted(&emulator, n),
    });
    let _ = fs::remove_dir_all(&dir);
    let snapshot = emulator.snapshot();
    let total: u64 = samples.last().map_or(0, |s| s.admitted.iter().sum());
    let took: Vec<Duration> = (0..n)
        .map(|i| ended[i].unwrap_or(end) - started[i].unwrap_or_default())
        .collect();
    // Imports that ran to their end, not killed.
    let finished: Vec<Duration> = (0..n)
        .filter(|&i| row.imports[i].stop.is_none())
        .map(|i| took[i])
        .collect();
    let spread = (finished.len() > 1).then(|| {
        let most = finished.iter().max().unwrap().as_secs_f64();
        let least = finished.iter().min().unwrap().as_secs_f64();
        most / least
    });
    Outcome {
        utilisation: total as f64 / capacity.max(1.0),
        throttled_share: snapshot.throttled as f64 / snapshot.requests.max(1) as f64,
        spread,
        fairness: fairness(row, &started, &ended, &samples),
        reclaim: reclaim(row, &samples),
        took,
        codes,
    }
}

/// The last sample at or before `at`.
fn sample_at(samples: &[Sample], at: Duration) -> &Sample {
    samples
        .iter()
        .rev()
        .find(|s| s.at <= at)
        .unwrap_or(&samples[0])
}

/// Jain's index of what the learning imports had admitted between
/// `settle` after the last of them started and the first of them ending.
fn fairness(
    row: &Row,
    started: &[Option<Duration>],
    ended: &[Option<Duration>],
    samples: &[Sample],
) -> Option<f64> {
    let learners: Vec<usize> = (0..row.imports.len())
        .filter(|&i| !row.imports[i].fixed)
        .collect();
    if learners.len() < 2 {
        return None;
    }
    let from = learners.iter().filter_map(|&i| started[i]).max()? + row.settle;
    let to = learners.iter().filter_map(|&i| ended[i]).min()?;
    if to <= from {
        return None;
    }
    let (first, last) = (sample_at(samples, from), sample_at(samples, to));
    let shares: Vec<f64> = learners
        .iter()
        .map(|&i| last.admitted[i].saturating_sub(first.admitted[i]) as f64)
        .collect();
    let sum: f64 = shares.iter().sum();
    let squares: f64 = shares.iter().map(|x| x * x).sum();
    (squares > 0.0).then(|| sum * sum / (shares.len() as f64 * squares))
}

/// From the stop of the neighbour until the learning imports had been
/// admitted 90 % of the server's limit (or of their rates) in the last 1 s.
fn reclaim(row: &Row, samples: &[Sample]) -> Option<Duration> {
    let freed = row.freed_at?;
    let learners: Vec<usize> = (0..row.imports.len())
        .filter(|&i| !row.imports[i].fixed)
        .collect();
    let asked: f64 = learners.iter().map(|&i| row.imports[i].rate).sum();
    let goal = 0.9 * asked.min(f64::from(SERVER));
    let sum = |sample: &Sample| -> u64 { learners.iter().map(|&i| sample.admitted[i]).sum() };
    samples
        .iter()
        .filter(|s| s.at >= freed + Duration::from_secs(1))
        .find(|s| {
            let before = sample_at(samples, s.at - Duration::from_secs(1));
            (sum(s) - sum(before)) as f64 >= goal
        })
        .map(|s| s.at - freed)
}
