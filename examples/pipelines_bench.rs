//! Side-by-side benchmark, in one run: NDJSON lines read, checked, packed and
//! sent in batches to a local `cio-emulator` (rate limits off), once as Track
//! v2 operations (`Operation::from_json`, `BatchPacker`, `send_batch`) and once
//! as Pipelines calls (`PipelinesCall::from_line`, `PipelinesBatchPacker`,
//! `send_pipelines_batch`). It prints lines/s and peak RSS for each, and their
//! ratio. The line paths are what `import --api pipelines` will run per line.
//!
//! Each side runs in a child process, so that its peak RSS is its own; the
//! emulator (which keeps everything it stored) lives in the parent and is
//! reset between the two. Lines are made one at a time, as a streaming
//! reader hands them out: memory must stay flat however many there are.
//!
//! Run: `cargo run --release --example pipelines_bench [-- LINES]` (default 1,000,000)

use std::process::Command;
use std::time::Instant;

use cio_emulator::{Config, DEFAULT_API_KEY, DEFAULT_PIPELINES_KEY, DEFAULT_SITE_ID, Emulator};
use cio_ratelimit::{
    ApiClass, Client, Operation, PipelinesCall,
    client::{BatchPacker, PipelinesBatchPacker},
    limit::Unlimited,
};
use serde_json::Value;

/// Sends `lines` lines of one API to `url`; prints `seconds peak_rss_bytes`.
fn child(api: &str, url: &str, lines: usize) {
    let client = Client::builder(DEFAULT_SITE_ID, DEFAULT_API_KEY)
        .pipelines_key(DEFAULT_PIPELINES_KEY)
        .base_url(url)
        .limiter(ApiClass::Track, Unlimited::new())
        .limiter(ApiClass::Pipelines, Unlimited::new())
        .build()
        .expect("valid client");
    let started = Instant::now();
    match api {
        "track" => {
            let mut packer = BatchPacker::new();
            let send = |batch| {
                let response = client.send_batch(&batch).expect("batch sent");
                assert!(response.all_accepted());
            };
            for i in 0..lines {
                let line = format!(
                    r#"{{"type":"person","action":"event","identifiers":{{"id":"user-{}"}},"name":"page_viewed","attributes":{{"path":"/p/{i}","n":{i}}}}}"#,
                    i % 10_000
                );
                let value: Value = serde_json::from_str(&line).expect("JSON");
                let operation = Operation::from_json(value).expect("valid operation");
                if let Some(batch) = packer.push(&operation).expect("fits") {
                    send(batch);
                }
            }
            packer.finish().map(send);
        }
        _ => {
            let mut packer = PipelinesBatchPacker::new();
            let send = |batch| {
                let response = client.send_pipelines_batch(&batch).expect("batch sent");
                assert!(response.all_accepted());
            };
            for i in 0..lines {
                let line = format!(
                    r#"{{"type":"track","userId":"user-{}","event":"page_viewed","properties":{{"path":"/p/{i}","n":{i}}}}}"#,
                    i % 10_000
                );
                let call = PipelinesCall::from_line(line.as_bytes(), &format!("bench:{i}"))
                    .expect("valid call");
                if let Some(batch) = packer.push(&call).expect("fits") {
                    send(batch);
                }
            }
            packer.finish().map(send);
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    println!("{seconds} {}", vm_hwm(&status).unwrap_or(0));
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs one side in a child process: (lines/s, peak RSS in MB).
fn run(api: &str, url: &str, lines: usize) -> (f64, f64) {
    let output = Command::new(std::env::current_exe().expect("this program"))
        .args(["--child", api, url, &lines.to_string()])
        .output()
        .expect("child runs");
    assert!(output.status.success(), "{api}: {output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    let mut fields = text.split_whitespace();
    let seconds: f64 = fields.next().and_then(|s| s.parse().ok()).expect("seconds");
    let peak: f64 = fields.next().and_then(|s| s.parse().ok()).expect("peak");
    (lines as f64 / seconds, peak / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2], &args[3], args[4].parse().expect("lines"));
        return;
    }
    let lines: usize = args
        .get(1)
        .map_or(1_000_000, |n| n.parse().expect("LINES is a number"));
    let emulator = Emulator::start(Config::default().track_limit(0).pipelines_limit(0))
        .expect("emulator starts");
    let url = emulator.url();

    println!("{lines} NDJSON lines read, checked, packed and sent in batches to cio-emulator");
    println!("  API         lines/s   peak RSS   stored");
    let (track_rate, track_rss) = run("track", &url, lines);
    let stored = emulator.snapshot().events.len();
    println!("  Track v2   {track_rate:>8.0}   {track_rss:>5.1} MB   {stored}");
    emulator.reset();
    let (pipelines_rate, pipelines_rss) = run("pipelines", &url, lines);
    let stored = emulator.snapshot().pipelines.len();
    println!("  Pipelines  {pipelines_rate:>8.0}   {pipelines_rss:>5.1} MB   {stored}");
    println!(
        "  Pipelines / Track v2: {:.2}x lines/s, {:.2}x peak RSS",
        pipelines_rate / track_rate,
        pipelines_rss / track_rss
    );
}
