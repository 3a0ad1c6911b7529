//! The relay benchmark, side by side in one run (the machine is shared and
//! noisy: compare the rows with each other, not with another day's).
//!
//! 50 concurrent callers send 10,000 Track v1 calls (identifies and events,
//! ~150 bytes each) against an emulated workspace limited to 100 requests/s:
//!
//! 1. through `cio-ratelimit relay --rate 100`: calls accepted per second,
//!    answer latency p50 / p99, and the time until the emulator holds every
//!    call, against the ideal: the calls' arrival, or the batches they fill
//!    (500 KB each) at 100 requests/s, whichever is longer; beside them the
//!    relay's CPU time per call and the calls each fsync made durable;
//! 2. the same callers straight to the emulator: the same figures, and how
//!    many calls got 429 (the official clients do not retry them: lost);
//! 3. kill -9 of the relay while callers send, then a restart on the same
//!    spool: how many calls answered 200 never reached the emulator.
//!
//! Goals: p99 ≤ 20 ms at 50 callers, ≥ 5,000 calls/s accepted, delivery
//! ≤ 1.2 × ideal, 0 lost after kill -9.
//!
//! Run: `cargo bench -p cio-ratelimit-cli --bench relay`. To compare with
//! another build (today's `main`): build its `cio-ratelimit` (`cargo build
//! --release -p cio-ratelimit-cli`), copy it aside, and run
//! `CIO_BENCH_BASELINE=/path/to/it cargo bench -p cio-ratelimit-cli --bench relay`:
//! sections 1 and 3 then run for both binaries, alternating, with the ratios.
//! `CIO_BENCH_ROUNDS=N` repeats section 1 N times (default 3 with a
//! baseline, else 1) and the ratios compare the medians.

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_SITE_ID, Emulator, Snapshot};
use ureq::http;

const BINARY: &str = env!("CARGO_BIN_EXE_cio-ratelimit");
const CALLERS: usize = 50;
const CALLS: usize = 10_000;
const LIMIT: u32 = 100;
const MAX_BATCH_BYTES: f64 = 500.0 * 1024.0;

/// A relay process; killed on drop.
struct RelayProcess {
    child: Child,
    url: String,
}

impl RelayProcess {
    fn start(binary: &str, emulator: &Emulator, spool: &Path) -> RelayProcess {
        let mut child = Command::new(binary)
            .args([
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--rate",
                &LIMIT.to_string(),
            ])
            .arg("--spool")
            .arg(spool)
            .args(["--track-url", &emulator.url(), "--workers", "8"])
            .env("CUSTOMERIO_SITE_ID", DEFAULT_SITE_ID)
            .env("CUSTOMERIO_TRACK_API_KEY", DEFAULT_API_KEY)
            .env_remove("CUSTOMERIO_PIPELINES_API_KEY")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the relay starts");
        let (address, listening) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().expect("piped"));
        thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(rest) = line.split("relay listening on ").nth(1) {
                    let _ = address.send(rest.split(' ').next().unwrap_or_default().to_owned());
                }
            }
        });
        let url = listening
            .recv_timeout(Duration::from_secs(60))
            .expect("the relay prints its address");
        RelayProcess { child, url }
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the callers saw.
#[derive(Default)]
struct Sent {
    latencies: Vec<Duration>,
    /// Calls answered 200, by their person id.
    accepted: Vec<String>,
    throttled: u64,
    failed: u64,
    elapsed: Duration,
    bytes: u64,
}

/// `Basic base64(site:key)`.
fn authorization() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{DEFAULT_SITE_ID}:{DEFAULT_API_KEY}").into_bytes();
    let mut out = String::from("Basic ");
    for chunk in input.chunks(3) {
        let bits = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            out.push(match i <= chunk.len() {
                true => char::from(ALPHABET[(bits >> (18 - 6 * i)) as usize & 63]),
                false => '=',
            });
        }
    }
    out
}

/// Call `n` of `caller`: an identify (even) or an event (odd) of a person of its own.
fn call(run: &str, caller: usize, n: usize) -> (&'static str, String, String, String) {
    let person = format!("{run}-{caller}-{}", n / 2);
    if n.is_multiple_of(2) {
        let body = format!(r#"{{"email":"{person}@example.com","plan":"pro","n":{n}}}"#);
        ("PUT", format!("/api/v1/customers/{person}"), body, person)
    } else {
        let body = format!(r#"{{"name":"purchased","data":{{"total":{n},"sku":"sku-{n}"}}}}"#);
        (
            "POST",
            format!("/api/v1/customers/{person}/events"),
            body,
            person,
        )
    }
}

/// 50 callers, 10,000 calls; `stop` ends them early (the kill -9 run).
fn send(base: &str, run: &str, stop: &AtomicBool) -> Sent {
    let auth = authorization();
    let started = Instant::now();
    let results: Vec<Sent> = thread::scope(|scope| {
        let callers: Vec<_> = (0..CALLERS)
            .map(|caller| {
                let auth = &auth;
                scope.spawn(move || {
                    // Every timeout but the resolver's: with one, ureq resolves
                    // on a thread of its own for each call, and 50 callers
                    // spawning a thread a call take most of the CPU the relay
                    // and the emulator need (an official client does not).
                    let timeout = Some(Duration::from_secs(30));
                    let agent = ureq::Agent::config_builder()
                        .http_status_as_error(false)
                        .timeout_connect(timeout)
                        .timeout_send_request(timeout)
                        .timeout_send_body(timeout)
                        .timeout_recv_response(timeout)
                        .timeout_recv_body(timeout)
                        .build()
                        .new_agent();
                    let mut sent = Sent::default();
                    for n in 0..CALLS / CALLERS {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let (method, path, body, person) = call(run, caller, n);
                        sent.bytes += body.len() as u64 + 60;
                        let request = http::Request::builder()
                            .method(method)
                            .uri(format!("{base}{path}"))
                            .header("Authorization", auth.as_str())
                            .header("Content-Type", "application/json")
                            .body(body)
                            .expect("a request");
                        let start = Instant::now();
                        let answer = agent.run(request);
                        sent.latencies.push(start.elapsed());
                        match answer.map(|mut response| {
                            let _ = response.body_mut().read_to_string();
                            response.status().as_u16()
                        }) {
                            Ok(200) => sent.accepted.push(format!("{person}/{n}")),
                            Ok(429) => sent.throttled += 1,
                            _ => sent.failed += 1,
                        }
                    }
                    sent
                })
            })
            .collect();
        callers
            .into_iter()
            .map(|caller| caller.join().expect("a caller"))
            .collect()
    });
    let mut all = Sent {
        elapsed: started.elapsed(),
        ..Sent::default()
    };
    for sent in results {
        all.latencies.extend(sent.latencies);
        all.accepted.extend(sent.accepted);
        all.throttled += sent.throttled;
        all.failed += sent.failed;
        all.bytes += sent.bytes;
    }
    all.latencies.sort();
    all
}

fn percentile(latencies: &[Duration], p: f64) -> f64 {
    if latencies.is_empty() {
        return f64::NAN;
    }
    let index = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[index].as_secs_f64() * 1000.0
}

/// Calls the emulator holds: identifies applied and events stored, of `run`.
fn arrived(snapshot: &Snapshot, run: &str) -> usize {
    let prefix = format!("{run}-");
    let identifies: u64 = snapshot
        .people
        .iter()
        .filter(|(id, _)| id.starts_with(&prefix))
        .map(|(_, person)| person.identify_count)
        .sum();
    let events = snapshot
        .events
        .iter()
        .filter(|event| {
            event
                .person
                .as_deref()
                .is_some_and(|id| id.starts_with(&prefix))
        })
        .count();
    identifies as usize + events
}

/// How many accepted calls (`person/n`) did not reach the emulator.
fn lost(snapshot: &Snapshot, accepted: &[String]) -> usize {
    let events: HashSet<(&str, u64)> = snapshot
        .events
        .iter()
        .filter_map(|event| Some((event.person.as_deref()?, event.data["total"].as_u64()?)))
        .collect();
    accepted
        .iter()
        .filter(|call| {
            let (person, n) = call.rsplit_once('/').expect("person/n");
            let n: u64 = n.parse().expect("a number");
            if n.is_multiple_of(2) {
                snapshot
                    .people
                    .get(person)
                    .is_none_or(|p| p.attributes.get("n").and_then(|v| v.as_u64()).is_none())
            } else {
                !events.contains(&(person, n))
            }
        })
        .count()
}

/// Events the emulator stored more than once (the same person and call).
fn stored_twice(snapshot: &Snapshot) -> usize {
    let mut seen = HashSet::new();
    snapshot
        .events
        .iter()
        .filter(|event| !seen.insert((event.person.clone(), event.data["total"].as_u64())))
        .count()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cio-relay-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The relay's CPU time (user + system) so far, from `/proc` (Linux).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are the 12th and 13th fields after the command, which
    // is in parentheses.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some(Duration::from_millis((user + system) * 10))
}

/// The fsyncs a relay made, from its `/health`.
fn fsyncs(relay: &RelayProcess) -> u64 {
    let agent = ureq::Agent::new_with_defaults();
    agent
        .get(format!("{}/health", relay.url))
        .call()
        .ok()
        .and_then(|mut answer| answer.body_mut().read_to_string().ok())
        .and_then(|body| serde_json::from_str::<serde_json::Value>(&body).ok())
        .and_then(|health| health["spool_fsyncs"].as_u64())
        .unwrap_or(0)
}

/// The machine's load average over the last minute (Linux).
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// A relay binary to measure, and what to call it.
struct Binary {
    name: &'static str,
    path: String,
}

/// One run of section 1.
struct RelayRow {
    accepted: usize,
    rate: f64,
    p50: f64,
    p99: f64,
    delivery: f64,
}

/// Section 1 for one binary: 50 callers through a fresh relay.
fn through_the_relay(binary: &Binary, run: &str) -> RelayRow {
    let never = AtomicBool::new(false);
    let emulator = Emulator::start(Config::default().track_limit(LIMIT)).expect("an emulator");
    let spool = scratch(run);
    let relay = RelayProcess::start(&binary.path, &emulator, &spool);
    let cpu_before = cpu_time(relay.child.id()).unwrap_or_default();
    let started = Instant::now();
    let sent = send(&relay.url, run, &never);
    let cpu = cpu_time(relay.child.id()).unwrap_or_default() - cpu_before;
    let fsyncs = fsyncs(&relay);
    let deadline = Instant::now() + Duration::from_secs(300);
    while arrived(&emulator.snapshot(), run) < sent.accepted.len() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let delivered = started.elapsed();
    let snapshot = emulator.snapshot();
    let batches = (sent.bytes as f64 / MAX_BATCH_BYTES).ceil();
    let ideal = sent.elapsed.as_secs_f64().max(batches / f64::from(LIMIT));
    let row = RelayRow {
        accepted: sent.accepted.len(),
        rate: sent.accepted.len() as f64 / sent.elapsed.as_secs_f64(),
        p50: percentile(&sent.latencies, 0.5),
        p99: percentile(&sent.latencies, 0.99),
        delivery: delivered.as_secs_f64() / ideal,
    };
    println!(
        "relay ({:<10}) {:>5} of {CALLS} accepted in {:.2} s = {:>5.0} calls/s; answer p50 {:>5.2} ms, p99 {:>6.2} ms; \
         delivered after {:.2} s, ideal {ideal:.2} s: {:.2} x; {} requests, {} 429s, {} lost; \
         relay CPU {:.0} µs/call, {:.1} calls/fsync; load {}",
        binary.name,
        sent.accepted.len(),
        sent.elapsed.as_secs_f64(),
        row.rate,
        row.p50,
        row.p99,
        delivered.as_secs_f64(),
        row.delivery,
        snapshot.requests,
        snapshot.status_count(429),
        lost(&snapshot, &sent.accepted),
        cpu.as_secs_f64() * 1e6 / sent.accepted.len().max(1) as f64,
        sent.accepted.len() as f64 / fsyncs.max(1) as f64,
        load(),
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&spool);
    row
}

/// Section 3 for one binary: kill -9 while callers send, then a restart.
fn kill_and_restart(binary: &Binary, run: &str) {
    let emulator = Emulator::start(Config::default().track_limit(LIMIT)).expect("an emulator");
    let spool = scratch(run);
    let mut relay = RelayProcess::start(&binary.path, &emulator, &spool);
    let stop = AtomicBool::new(false);
    let killed_after = AtomicU64::new(0);
    let sent = thread::scope(|scope| {
        let sending = scope.spawn(|| send(&relay.url, run, &stop));
        // Kill mid-way, while calls come and go.
        thread::sleep(Duration::from_millis(800));
        let _ = relay.child.kill();
        let _ = relay.child.wait();
        killed_after.store(arrived(&emulator.snapshot(), run) as u64, Ordering::SeqCst);
        stop.store(true, Ordering::SeqCst);
        sending.join().expect("the callers")
    });
    let relay = RelayProcess::start(&binary.path, &emulator, &spool);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut snapshot = emulator.snapshot();
    while lost(&snapshot, &sent.accepted) > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
        snapshot = emulator.snapshot();
    }
    println!(
        "kill -9 ({:<10}) {} calls answered 200 before the kill ({} delivered by then), {} refused or cut off; \
         after a restart on the same spool: {} lost, {} events stored twice \
         ({} sent again past the checkpoint and ignored for their repeated id)",
        binary.name,
        sent.accepted.len(),
        killed_after.load(Ordering::SeqCst),
        sent.failed + sent.throttled,
        lost(&snapshot, &sent.accepted),
        stored_twice(&snapshot),
        snapshot.duplicate_events,
    );
    drop(relay);
    let _ = std::fs::remove_dir_all(&spool);
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let baseline = std::env::var("CIO_BENCH_BASELINE").ok();
    let rounds = std::env::var("CIO_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(if baseline.is_some() { 3 } else { 1 })
        .max(1);
    let mut binaries = Vec::new();
    if let Some(path) = baseline {
        binaries.push(Binary {
            name: "baseline",
            path,
        });
    }
    binaries.push(Binary {
        name: "this build",
        path: BINARY.to_owned(),
    });
    println!(
        "relay_bench: {CALLERS} callers, {CALLS} Track v1 calls, a workspace limited to {LIMIT} requests/s; load {}",
        load()
    );

    // 1. Through the relay, each binary in turn.
    let mut rows: Vec<Vec<RelayRow>> = binaries.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for (binary, rows) in binaries.iter().zip(&mut rows) {
            rows.push(through_the_relay(binary, &format!("relay{round}")));
        }
    }
    let medians: Vec<RelayRow> = rows
        .iter()
        .map(|rows| RelayRow {
            accepted: rows.iter().map(|row| row.accepted).min().unwrap_or(0),
            rate: median(rows.iter().map(|row| row.rate).collect()),
            p50: median(rows.iter().map(|row| row.p50).collect()),
            p99: median(rows.iter().map(|row| row.p99).collect()),
            delivery: median(rows.iter().map(|row| row.delivery).collect()),
        })
        .collect();
    let ours = medians.last().expect("this build ran");
    if let [base, _] = medians.as_slice() {
        println!(
            "medians of {rounds}: calls/s {:.0} -> {:.0} ({:.2} x); p50 {:.2} -> {:.2} ms ({:.2} x); \
             p99 {:.2} -> {:.2} ms ({:.2} x); delivery/ideal {:.2} -> {:.2}",
            base.rate,
            ours.rate,
            ours.rate / base.rate,
            base.p50,
            ours.p50,
            ours.p50 / base.p50,
            base.p99,
            ours.p99,
            ours.p99 / base.p99,
            base.delivery,
            ours.delivery,
        );
    }

    // 2. Straight to the emulator, the same callers.
    let never = AtomicBool::new(false);
    let emulator = Emulator::start(Config::default().track_limit(LIMIT)).expect("an emulator");
    let direct = send(&emulator.url(), "direct", &never);
    let snapshot = emulator.snapshot();
    println!(
        "direct: {} of {CALLS} accepted in {:.2} s = {:.0} calls/s; answer p50 {:.2} ms, p99 {:.2} ms; \
         {} got 429 and {} failed: {} lost by a client that does not retry 429 (customerio-node); \
         the emulator holds {}",
        direct.accepted.len(),
        direct.elapsed.as_secs_f64(),
        direct.accepted.len() as f64 / direct.elapsed.as_secs_f64(),
        percentile(&direct.latencies, 0.5),
        percentile(&direct.latencies, 0.99),
        direct.throttled,
        direct.failed,
        direct.throttled + direct.failed,
        arrived(&snapshot, "direct"),
    );
    println!(
        "ratios (this build, medians): relay/direct accepted {:.2} x; p99 / goal 20 ms {:.2}; \
         calls/s / goal 5,000 {:.2}; delivery / goal 1.2 {:.2}",
        ours.accepted as f64 / direct.accepted.len().max(1) as f64,
        ours.p99 / 20.0,
        ours.rate / 5000.0,
        ours.delivery / 1.2,
    );

    // 3. kill -9 while callers send, then a restart on the same spool.
    for (index, binary) in binaries.iter().enumerate() {
        kill_and_restart(binary, &format!("kill{index}"));
    }
    println!("load at the end {}", load());
}
