//! The import benchmark, in one run (the machine is shared and noisy: compare
//! the rows with each other, not with another day's).
//!
//! 1. Batch mode: records/s and peak RSS of `cio-ratelimit import` for
//!    100,000, 300,000 and 1,000,000 generated lines against `cio-emulator`
//!    at the default --rate of 50 requests/s. Goals: ≥ 100,000 records/s,
//!    RSS < 64 MB, and flat as the file grows.
//!    Beside them, the CPU time per line of the importer and of the
//!    emulator (from `/proc`): the emulator parses and stores every item, and
//!    on a busy machine it, not the importer, sets the records/s.
//!    Beside the Track row at 1,000,000 lines, a Pipelines row
//!    (`--api pipelines`, `/v1/batch`) on the same people and data.
//! 2. Formats: 1,000,000 rows as plain NDJSON, gzip NDJSON and CSV, in
//!    one run: rows/s and peak RSS (goals: ≥ 100,000 rows/s, < 64 MB).
//! 3. The cost of per-person order: this binary against another (today's
//!    `main`, or one from before key-level ordering) on the same 1,000,000
//!    lines, alternating, when `CIO_BENCH_BASELINE` names the other binary
//!    (goal: within 10 %).
//! 4. Single mode: the achieved rate against --rate, and the 429s (goal: 0).
//! 5. Slow answers and 5xx: each mode's time with 2 % (and in batch mode
//!    10 %) of answers 3 s late, or 7 % of requests answered 503, against the
//!    same import without faults, in one run (goals: single mode ≤ 1.3 ×,
//!    batch mode ≤ 2.5 × the time without faults). With
//!    `CIO_BENCH_BASELINE`, the same rows for that binary beside them.
//!
//! Sections run alone when named: `cargo bench -p cio-ratelimit-cli --bench
//! import -- faults` (or `batch`, `formats`, `order`, `single`).
//!
//! Both programs run as processes of their own (the emulator through
//! `cio-ratelimit emulator`), so the RSS is the importer's alone.
//!
//! Run: `cargo bench -p cio-ratelimit-cli --bench import`, or to compare
//! with main: build main's `cio-ratelimit` (`--profile bench`), copy it
//! aside, and run `CIO_BENCH_BASELINE=/path/to/it cargo bench -p cio-ratelimit-cli --bench import`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const BINARY: &str = env!("CARGO_BIN_EXE_cio-ratelimit");
const SITE_ID: &str = "emulator-site-id";
const API_KEY: &str = "emulator-api-key";
const PIPELINES_KEY: &str = "emulator-pipelines-key";

/// An emulator process; killed on drop.
struct EmulatorProcess {
    child: Child,
    url: String,
}

impl EmulatorProcess {
    fn start(track_limit: u32) -> EmulatorProcess {
        EmulatorProcess::with(track_limit, &[])
    }

    /// An emulator with more of `cio-emulator`'s flags (faults, say).
    fn with(track_limit: u32, flags: &[&str]) -> EmulatorProcess {
        let mut child = Command::new(BINARY)
            .args(["emulator", "--track-limit", &track_limit.to_string()])
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the emulator starts");
        let mut first_line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut first_line)
            .expect("the emulator prints its URL");
        EmulatorProcess {
            child,
            url: first_line.trim().to_owned(),
        }
    }

    fn snapshot(&self) -> serde_json::Value {
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("the emulator answers");
        write!(
            stream,
            "GET /_emulator/snapshot HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
        let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        serde_json::from_str(body).expect("a JSON snapshot")
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `lines` lines: identifies and events (without ids) in turn, ~150 bytes each.
fn generate(dir: &Path, lines: u64) -> PathBuf {
    let path = dir.join(format!("{lines}.ndjson"));
    let mut out = BufWriter::new(fs::File::create(&path).unwrap());
    for line in 0..lines {
        let user = line / 2;
        if line % 2 == 0 {
            writeln!(
                out,
                r#"{{"type":"person","action":"identify","identifiers":{{"id":"u{user}"}},"attributes":{{"email":"u{user}@example.com","plan":"pro","n":{line}}}}}"#
            )
            .unwrap();
        } else {
            writeln!(
                out,
                r#"{{"type":"person","action":"event","identifiers":{{"id":"u{user}"}},"name":"seen","attributes":{{"n":{line}}}}}"#
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
    path
}

/// `lines` Pipelines calls: identifies and tracks (without messageIds) in
/// turn, the same people and data as [`generate`].
fn generate_pipelines(dir: &Path, lines: u64) -> PathBuf {
    let path = dir.join(format!("{lines}-pipelines.ndjson"));
    let mut out = BufWriter::new(fs::File::create(&path).unwrap());
    for line in 0..lines {
        let user = line / 2;
        if line % 2 == 0 {
            writeln!(
                out,
                r#"{{"type":"identify","userId":"u{user}","traits":{{"email":"u{user}@example.com","plan":"pro","n":{line}}}}}"#
            )
            .unwrap();
        } else {
            writeln!(
                out,
                r#"{{"type":"track","userId":"u{user}","event":"seen","properties":{{"n":{line}}}}}"#
            )
            .unwrap();
        }
    }
    out.flush().unwrap();
    path
}

/// `rows` CSV rows of people after a header, ~50 bytes each.
fn generate_csv(dir: &Path, rows: u64) -> PathBuf {
    let path = dir.join(format!("{rows}.csv"));
    let mut out = BufWriter::new(fs::File::create(&path).unwrap());
    writeln!(out, "id,email,plan,n").unwrap();
    for row in 0..rows {
        writeln!(out, "u{row},u{row}@example.com,pro,{row}").unwrap();
    }
    out.flush().unwrap();
    path
}

/// `input`, gzip-compressed beside it.
fn gzip(input: &Path) -> PathBuf {
    let mut name = input.file_name().unwrap().to_owned();
    name.push(".gz");
    let path = input.with_file_name(name);
    let mut out = flate2::write::GzEncoder::new(
        BufWriter::new(fs::File::create(&path).unwrap()),
        flate2::Compression::default(),
    );
    std::io::copy(&mut fs::File::open(input).unwrap(), &mut out).unwrap();
    out.finish().unwrap().flush().unwrap();
    path
}

/// Runs an import; returns its JSON summary, wall time, peak RSS in bytes
/// and CPU time (up to its last 10 ms).
fn import(
    emulator: &EmulatorProcess,
    input: &Path,
    extra: &[&str],
) -> (serde_json::Value, Duration, u64, Duration) {
    import_with(BINARY, emulator, input, extra)
}

/// [`import`] with another `cio-ratelimit` binary.
fn import_with(
    binary: &str,
    emulator: &EmulatorProcess,
    input: &Path,
    extra: &[&str],
) -> (serde_json::Value, Duration, u64, Duration) {
    let started = Instant::now();
    let mut child = Command::new(binary)
        .args([
            "import",
            input.to_str().unwrap(),
            "--json",
            "--progress-every",
            "100000000",
        ])
        .args([
            "--site-id",
            SITE_ID,
            "--api-key",
            API_KEY,
            "--track-url",
            &emulator.url,
            "--pipelines-key",
            PIPELINES_KEY,
            "--pipelines-url",
            &emulator.url,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the import starts");
    let status = format!("/proc/{}/status", child.id());
    let (mut peak, mut cpu) = (0, Duration::ZERO);
    while child.try_wait().unwrap().is_none() {
        // VmHWM is the peak so far: the last reading before exit is the peak.
        if let Some(hwm) = fs::read_to_string(&status)
            .ok()
            .and_then(|text| vm_hwm(&text))
        {
            peak = peak.max(hwm);
        }
        cpu = cpu.max(cpu_time(child.id()).unwrap_or_default());
        thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let summary = serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("{err}: {stdout}"));
    (summary, elapsed, peak, cpu)
}

/// The CPU time (user and system) process `pid` has used, from
/// `/proc/{pid}/stat` in USER_HZ ticks (1/100 s on Linux).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // utime and stime are the 12th and 13th fields after the command, which
    // is in parentheses.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
    let (user, system): (u64, u64) = (fields.next()?.parse().ok()?, fields.next()?.parse().ok()?);
    Some(Duration::from_millis((user + system) * 10))
}

fn vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn main() {
    let dir = std::env::temp_dir().join(format!("cio-import-bench-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    // `cargo bench` passes `--bench`; any other argument names the sections to run.
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    let runs = |section: &str| named.is_empty() || named.iter().any(|name| name == section);
    let baseline = std::env::var("CIO_BENCH_BASELINE").ok();

    if runs("faults") {
        faults(&dir, baseline.as_deref());
    }
    if runs("batch") || runs("formats") || runs("order") {
        batch_and_formats(&dir, baseline.as_deref());
    }
    if runs("single") {
        single(&dir);
    }
    let _ = fs::remove_dir_all(&dir);
}

/// Sections 1 to 3: batch mode as the file grows, Pipelines, the formats,
/// and the cost of per-person order against `baseline`.
fn batch_and_formats(dir: &Path, baseline: Option<&str>) {
    let dir = dir.to_path_buf();
    println!(
        "batch mode, --rate 50 (default), emulator limit 100/s; each import in its own process"
    );
    println!(
        "      lines  seconds   records/s  peak RSS  requests  429s  CPU µs/line: importer  emulator"
    );
    let mut rows = Vec::new();
    let mut million = None;
    for lines in [100_000, 300_000, 1_000_000] {
        let input = generate(&dir, lines);
        let emulator = EmulatorProcess::start(100);
        let emulator_cpu = || cpu_time(emulator.child.id()).unwrap_or_default();
        let emulator_before = emulator_cpu();
        let (summary, elapsed, peak, cpu) = import(&emulator, &input, &[]);
        let emulator_used = emulator_cpu() - emulator_before;
        assert_eq!(summary["delivered"], lines, "{summary}");
        let snapshot = emulator.snapshot();
        let rate = lines as f64 / elapsed.as_secs_f64();
        let per_line = |cpu: Duration| cpu.as_secs_f64() * 1e6 / lines as f64;
        println!(
            "  {lines:>9}  {:>7.2}  {rate:>10.0}  {:>5.1} MB  {:>8}  {:>4}  {:>21.2}  {:>8.2}",
            elapsed.as_secs_f64(),
            peak as f64 / 1e6,
            summary["requests"],
            snapshot["throttled"],
            per_line(cpu),
            per_line(emulator_used),
        );
        rows.push((lines, rate, peak));
        match lines {
            1_000_000 => million = Some((input, rate, peak)),
            _ => fs::remove_file(&input).unwrap(),
        }
    }
    let (small, large) = (rows[0], rows[rows.len() - 1]);
    println!(
        "  RSS at 1,000,000 lines / RSS at 100,000 lines: {:.2} (flat is 1.0); records/s ratio {:.2}",
        large.2 as f64 / small.2 as f64,
        large.1 / small.1
    );

    let (ndjson, ndjson_rate, ndjson_peak) = million.expect("the 1,000,000-line row ran");
    pipelines_row(&dir, ndjson_rate, ndjson_peak);
    println!("\nformats, 1,000,000 rows each, batch mode as above");
    println!("  format        rows/s  peak RSS  requests  rows/s of plain NDJSON");
    println!(
        "  ndjson    {ndjson_rate:>10.0}  {:>5.1} MB  {:>8}  {:>6.2}",
        ndjson_peak as f64 / 1e6,
        "(above)",
        1.0
    );
    let gzipped = gzip(&ndjson);
    let csv = generate_csv(&dir, 1_000_000);
    for (format, input) in [("ndjson.gz", &gzipped), ("csv", &csv)] {
        let emulator = EmulatorProcess::start(100);
        let (summary, elapsed, peak, _) = import(&emulator, input, &[]);
        assert_eq!(summary["delivered"], 1_000_000, "{summary}");
        let rate = 1e6 / elapsed.as_secs_f64();
        println!(
            "  {format:<9} {rate:>10.0}  {:>5.1} MB  {:>8}  {:>6.2}",
            peak as f64 / 1e6,
            summary["requests"],
            rate / ndjson_rate
        );
    }
    fs::remove_file(&gzipped).unwrap();
    fs::remove_file(&csv).unwrap();

    match baseline {
        Some(baseline) => compare(baseline, &ndjson),
        None => println!(
            "\nper-person order: set CIO_BENCH_BASELINE to another cio-ratelimit binary (main's) to compare"
        ),
    }
    fs::remove_file(&ndjson).unwrap();
}

/// Section 4: single mode's achieved rate against --rate.
fn single(dir: &Path) {
    println!("\nsingle mode, one request per line, emulator limit 100/s");
    println!("  --rate  lines  seconds  achieved/s  of --rate  429s");
    for rate in [40u32, 80] {
        let lines = u64::from(rate) * 8;
        let input = generate(dir, lines);
        let emulator = EmulatorProcess::start(100);
        let (summary, ..) = import(
            &emulator,
            &input,
            &["--mode", "single", "--rate", &rate.to_string()],
        );
        // The steady rate: the import's own elapsed time includes the burst at the start.
        let seconds = summary["elapsed_seconds"].as_f64().unwrap();
        let burst = (rate / 10).max(1);
        let achieved = (lines - u64::from(burst)) as f64 / seconds;
        let snapshot = emulator.snapshot();
        println!(
            "  {rate:>6}  {lines:>5}  {seconds:>7.2}  {achieved:>10.2}  {:>8.1} %  {:>4}",
            100.0 * achieved / f64::from(rate),
            snapshot["throttled"]
        );
        fs::remove_file(&input).unwrap();
    }
}

/// Section 5: each mode's time with slow answers or 503s beside its time
/// without, for this binary and `baseline`.
fn faults(dir: &Path, baseline: Option<&str>) {
    println!("\nslow answers and 503s against a 100/s emulator; time / time without faults");
    println!(
        "  mode    lines  faults                  binary    seconds  × no faults  requests  429s"
    );
    let single = ["--mode", "single", "--rate", "100", "--workers", "10"];
    let cases: [(&str, u64, &[&str], &[&str]); 7] = [
        ("single", 1_000, &single, &[]),
        (
            "single",
            1_000,
            &single,
            &["--slow", "0.02", "--slow-ms", "3000"],
        ),
        ("single", 1_000, &single, &["--unavailable", "0.07"]),
        ("batch", 100_000, &[], &[]),
        (
            "batch",
            100_000,
            &[],
            &["--slow", "0.02", "--slow-ms", "3000"],
        ),
        (
            "batch",
            100_000,
            &[],
            &["--slow", "0.10", "--slow-ms", "3000"],
        ),
        ("batch", 100_000, &[], &["--unavailable", "0.07"]),
    ];
    let binaries: Vec<(&str, &str)> = std::iter::once(("this", BINARY))
        .chain(baseline.map(|baseline| ("baseline", baseline)))
        .collect();
    for (name, binary) in binaries {
        let mut without = BTreeMap::new();
        for (seed, (mode, lines, flags, faults)) in cases.into_iter().enumerate() {
            let input = generate(dir, lines);
            let seed = seed.to_string();
            let faults_with_seed: Vec<&str> =
                faults.iter().copied().chain(["--seed", &seed]).collect();
            let emulator = EmulatorProcess::with(100, &faults_with_seed);
            let (summary, elapsed, ..) = import_with(binary, &emulator, &input, flags);
            assert_eq!(summary["delivered"], lines, "{summary}");
            let seconds = elapsed.as_secs_f64();
            if faults.is_empty() {
                without.insert(mode, seconds);
            }
            let described = match faults {
                [] => "none".to_owned(),
                ["--slow", share, ..] => format!("{}% answers 3 s late", percent(share)),
                ["--unavailable", share] => format!("{}% requests 503", percent(share)),
                _ => faults.join(" "),
            };
            println!(
                "  {mode:<6}  {lines:>6}  {described:<22}  {name:<8}  {seconds:>7.2}  {:>11.2}  {:>8}  {:>4}",
                seconds / without[mode],
                summary["requests"],
                emulator.snapshot()["throttled"],
            );
            fs::remove_file(&input).unwrap();
        }
    }
}

/// A probability as a percentage: `0.07` is `7`.
fn percent(probability: &str) -> f64 {
    (probability.parse::<f64>().unwrap() * 100.0).round()
}

/// This binary (per-person order) against `baseline` on the same input,
/// alternating so that the noise of a shared machine falls on both.
fn compare(baseline: &str, input: &Path) {
    println!("\nper-person order: this binary against {baseline}, 1,000,000 lines, alternating");
    println!(
        "  run  baseline rows/s  this rows/s  ratio  baseline CPU  this CPU  baseline RSS  this RSS"
    );
    let (mut rates, mut cpus) = (Vec::new(), Vec::new());
    for run in 1..=3 {
        let measure = |binary: &str| {
            let emulator = EmulatorProcess::start(100);
            let (summary, elapsed, peak, cpu) = import_with(binary, &emulator, input, &[]);
            assert_eq!(summary["delivered"], 1_000_000, "{summary}");
            (
                1e6 / elapsed.as_secs_f64(),
                cpu.as_secs_f64(),
                peak as f64 / 1e6,
            )
        };
        let (before, before_cpu, before_peak) = measure(baseline);
        let (now, now_cpu, now_peak) = measure(BINARY);
        rates.push(now / before);
        cpus.push(now_cpu / before_cpu);
        println!(
            "  {run:>3}  {before:>15.0}  {now:>11.0}  {:>5.2}  {before_cpu:>10.2} s  {now_cpu:>6.2} s  {before_peak:>9.1} MB  {now_peak:>5.1} MB",
            now / before,
        );
    }
    let median = |mut ratios: Vec<f64>| {
        ratios.sort_by(f64::total_cmp);
        ratios[ratios.len() / 2]
    };
    println!(
        "  median rows/s ratio {:.2} (goal: at least 0.90); median CPU ratio {:.2}",
        median(rates),
        median(cpus)
    );
}

/// The Pipelines row: 1,000,000 calls with `--api pipelines`, beside the
/// Track row at 1,000,000 lines (`track_rate` lines/s, `track_peak` bytes).
fn pipelines_row(dir: &Path, track_rate: f64, track_peak: u64) {
    let lines = 1_000_000;
    let input = generate_pipelines(dir, lines);
    let emulator = EmulatorProcess::start(100);
    let (summary, elapsed, peak, cpu) = import(&emulator, &input, &["--api", "pipelines"]);
    assert_eq!(summary["delivered"], lines, "{summary}");
    let snapshot = emulator.snapshot();
    assert_eq!(snapshot["pipelines_count"], lines, "every call stored once");
    let rate = lines as f64 / elapsed.as_secs_f64();
    println!("\n--api pipelines (/v1/batch), batch mode at its preset (50/s), 1,000,000 lines");
    println!(
        "      lines  seconds     lines/s  peak RSS  requests  429s  CPU µs/line  of Track: lines/s  RSS"
    );
    println!(
        "  {lines:>9}  {:>7.2}  {rate:>10.0}  {:>5.1} MB  {:>8}  {:>4}  {:>11.2}  {:>17.2}  {:>4.2}",
        elapsed.as_secs_f64(),
        peak as f64 / 1e6,
        summary["requests"],
        snapshot["throttled"],
        cpu.as_secs_f64() * 1e6 / lines as f64,
        rate / track_rate,
        peak as f64 / track_peak as f64,
    );
    fs::remove_file(&input).unwrap();
}
