//! `import --metrics-file`: the file a real import leaves, checked line by
//! line against the rules `promtool check metrics` applies to Prometheus's
//! text exposition format, and against what the emulator received.

mod command;

use std::collections::{BTreeMap, HashSet};
use std::fs;

use cio_emulator::{Config, Emulator};
use cio_test_kit::{ScratchDir, write_lines};
use serde_json::json;

use command::import;

/// Checks `text` as `promtool check metrics` would, and returns its samples
/// (`name{labels}` → value).
///
/// - a line is blank, a comment, `# HELP name text`, `# TYPE name type`, or
///   a sample `name{label="value",...} value [timestamp]`;
/// - metric names match `[a-zA-Z_:][a-zA-Z0-9_:]*`, label names
///   `[a-zA-Z_][a-zA-Z0-9_]*` and do not start with `__`; label values are
///   quoted with only `\\`, `\"` and `\n` escaped; values are floats
///   (`NaN`, `+Inf`, `-Inf` included), timestamps integers;
/// - TYPE is one of counter, gauge, histogram, summary, untyped, given at
///   most once per metric and before its first sample; HELP at most once;
/// - a metric's samples are not interleaved with another's, and no series
///   (name and label set) appears twice;
/// - promtool's lint: every metric has HELP text, counters end in `_total`,
///   non-counters do not, and names are snake_case;
/// - the text ends with a newline.
fn check_exposition(text: &str) -> Result<BTreeMap<String, f64>, String> {
    fn is_name(name: &str, colons: bool) -> bool {
        let mut chars = name.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || (colons && c == ':'));
        first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colons && c == ':'))
    }
    fn is_value(value: &str) -> bool {
        matches!(value, "NaN" | "+Inf" | "-Inf") || value.parse::<f64>().is_ok()
    }
    /// `{a="x",b="y"}` → its label pairs, in order.
    fn labels(text: &str) -> Result<Vec<(String, String)>, String> {
        let mut pairs = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
            if !is_name(name, false) || name.starts_with("__") {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\')) => value.push('\\'),
                        Some((_, '"')) => value.push('"'),
                        Some((_, 'n')) => value.push('\n'),
                        other => return Err(format!("bad escape {other:?} in {name}")),
                    },
                    Some((i, '"')) => break i,
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("unterminated value of {name}")),
                }
            };
            pairs.push((name.to_owned(), value));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        Ok(pairs)
    }

    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let at = |problem: String| format!("line {}: {problem}: {line:?}", number + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            let (keyword, name, rest) = (words.next(), words.next(), words.next());
            match (keyword, name) {
                (Some("HELP"), Some(name)) => {
                    if !is_name(name, true) || !helps.insert(name.to_owned()) {
                        return Err(at(format!("bad or second HELP for {name}")));
                    }
                    if rest.is_none_or(str::is_empty) {
                        return Err(at("HELP without text".into()));
                    }
                }
                (Some("TYPE"), Some(name)) => {
                    let kind = rest.unwrap_or_default();
                    if !matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "summary" | "untyped"
                    ) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    if types.insert(name.to_owned(), kind.to_owned()).is_some() {
                        return Err(at(format!("second TYPE for {name}")));
                    }
                    if current.as_deref() == Some(name) || finished.contains(name) {
                        return Err(at(format!("TYPE for {name} after its samples")));
                    }
                }
                _ => {} // a plain comment
            }
            continue;
        }
        let (series, rest) = match line.find('{') {
            Some(_) => {
                let close = line.rfind('}').ok_or_else(|| at("unclosed {".into()))?;
                (&line[..close + 1], &line[close + 1..])
            }
            None => line.split_at(line.find(' ').ok_or_else(|| at("no value".into()))?),
        };
        let name = series.split('{').next().unwrap_or_default();
        if !is_name(name, true) {
            return Err(at(format!("bad metric name {name:?}")));
        }
        let mut label_set = match series.find('{') {
            Some(open) => labels(&series[open + 1..series.len() - 1]).map_err(at)?,
            None => Vec::new(),
        };
        let before = label_set.len();
        label_set.sort();
        label_set.dedup_by(|a, b| a.0 == b.0);
        if label_set.len() != before {
            return Err(at("a label given twice".into()));
        }
        let mut fields = rest.split_whitespace();
        let value = fields.next().ok_or_else(|| at("no value".into()))?;
        if !is_value(value) {
            return Err(at(format!("bad value {value:?}")));
        }
        if let Some(timestamp) = fields.next() {
            timestamp
                .parse::<i64>()
                .map_err(|_| at(format!("bad timestamp {timestamp:?}")))?;
        }
        if fields.next().is_some() || !rest.starts_with(' ') {
            return Err(at("not `series value [timestamp]`".into()));
        }
        if current.as_deref() != Some(name) {
            if finished.contains(name) {
                return Err(at(format!("samples of {name} are not together")));
            }
            if let Some(previous) = current.replace(name.to_owned()) {
                finished.insert(previous);
            }
        }
        let key = format!("{name}{label_set:?}");
        if samples
            .insert(key, value.parse().unwrap_or(f64::NAN))
            .is_some()
        {
            return Err(at("a series given twice".into()));
        }
        // Lint.
        let kind = types.get(name).map(String::as_str).unwrap_or("untyped");
        if !helps.contains(name) {
            return Err(at(format!("{name} has no HELP")));
        }
        if (kind == "counter") != name.ends_with("_total") {
            return Err(at(format!(
                "{kind} {name}: counters end in _total, others do not"
            )));
        }
        if name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(at(format!("{name} is not snake_case")));
        }
    }
    // Back to `name{labels}` for the caller.
    Ok(samples
        .into_iter()
        .map(|(key, value)| (readable(&key), value))
        .collect())
}

/// `name[("outcome", "delivered")]` → `name{outcome="delivered"}`.
fn readable(key: &str) -> String {
    let (name, labels) = key.split_once('[').unwrap_or((key, "]"));
    let labels = labels.trim_end_matches(']');
    if labels.is_empty() {
        return name.to_owned();
    }
    let pairs: Vec<String> = labels
        .split("), (")
        .map(|pair| {
            let pair = pair.trim_matches(|c| c == '(' || c == ')');
            let (label, value) = pair.split_once(", ").unwrap();
            format!("{}={value}", label.trim_matches('"'))
        })
        .collect();
    format!("{name}{{{}}}", pairs.join(","))
}

#[test]
fn the_checker_refuses_what_promtool_refuses() {
    let good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n# HELP b B.\n# TYPE b gauge\nb{x=\"1\"} 2\nb{x=\"2\"} NaN 1700000000000\n";
    let samples = check_exposition(good).unwrap();
    assert_eq!(samples["b{x=\"1\"}"], 2.0);
    for bad in [
        "# HELP a_total A.\n# TYPE a_total counter\na_total 1", // no newline at the end
        "# HELP a A.\n# TYPE a counter\na 1\n",                 // counter without _total
        "# HELP a_total A.\n# TYPE a_total gauge\na_total 1\n", // _total on a gauge
        "# HELP a A.\na 1\n# TYPE a gauge\n",                   // TYPE after samples
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",   // TYPE twice
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",              // a series twice
        "# HELP a A.\n# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",  // a label twice
        "# HELP a A.\n# TYPE a gauge\na{__x=\"1\"} 1\n",        // reserved label
        "# HELP a A.\n# TYPE a gauge\na{x=1} 1\n",              // unquoted value
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",        // bad escape
        "# HELP a A.\n# TYPE a gauge\na one\n",                 // not a number
        "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",                // bad name
        "# TYPE a gauge\na 1\n",                                // no HELP
        "# HELP a A.\n# TYPE a gauge\n# HELP b B.\n# TYPE b gauge\na{x=\"1\"} 1\nb 1\na{x=\"2\"} 1\n", // interleaved
        "# HELP a A.\n# TYPE a meter\na 1\n", // unknown type
    ] {
        assert!(check_exposition(bad).is_err(), "accepted: {bad:?}");
    }
}

#[test]
fn an_import_leaves_metrics_promtool_accepts_that_match_what_arrived() {
    // Single mode against a 20/s workspace at 40/s: 429s, and retries of them.
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = ScratchDir::new("import");
    let input = dir.join("people.ndjson");
    let identifies = (0..60).map(|i| {
        json!({"type": "person", "action": "identify", "identifiers": {"id": i.to_string()}})
            .to_string()
    });
    write_lines(&input, identifies.chain(["not json".to_owned()]));
    let metrics = dir.join("cio_import.prom");
    let outcome = import(&emu, &input)
        .mode("single")
        .rate(40)
        .metrics_file(&metrics)
        .run();
    outcome.assert_code(1);
    let text = fs::read_to_string(&metrics).unwrap();
    let samples = check_exposition(&text).unwrap_or_else(|problem| panic!("{problem}\n{text}"));
    assert!(
        text.contains("\ncio_import_lines{outcome=\"delivered\"} 60\n"),
        "{text}"
    );
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 60);
    let metric = |series: &str| samples[series];
    assert_eq!(metric("cio_import_lines{outcome=\"dead_lettered\"}"), 1.0);
    let throttled = snapshot.status_counts.get(&429).copied().unwrap_or(0);
    assert!(throttled > 0, "the workspace throttled: {snapshot:?}");
    assert_eq!(
        metric("cio_import_throttled_total"),
        throttled as f64,
        "{text}"
    );
    assert_eq!(
        metric("cio_import_requests_total"),
        snapshot.requests as f64,
        "every request the server received: {text}"
    );
    // Each 429 and each retry sent the request again.
    let sent = 60.0 + metric("cio_import_throttled_total") + metric("cio_import_retries_total");
    assert_eq!(sent, snapshot.requests as f64, "{text}");
    // The rate in force: what the import learned under the server's 20/s.
    let rate = metric("cio_import_rate_limit_requests_per_second");
    assert!((1.0..=20.0).contains(&rate), "{text}");
    assert_eq!(metric("cio_import_running"), 0.0);
    assert_eq!(metric("cio_import_exit_code"), 1.0);
    assert!(metric("cio_import_elapsed_seconds") > 0.0);
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn an_import_refuses_a_metrics_path_it_did_not_write_before_sending_anything() {
    let emu = Emulator::start(Config::default()).unwrap();
    let dir = ScratchDir::new("refuse");
    let input = dir.join("people.ndjson");
    fs::write(
        &input,
        format!(
            "{}\n",
            json!({"type": "person", "action": "identify", "identifiers": {"id": "1"}})
        ),
    )
    .unwrap();
    let foreign = dir.join("node.prom");
    fs::write(&foreign, "node_load1 0.5\n").unwrap();
    let outcome = import(&emu, &input).metrics_file(&foreign).run();
    outcome.assert_code(2);
    assert!(
        outcome.stderr.contains("--metrics-file"),
        "{}",
        outcome.stderr
    );
    assert_eq!(
        fs::read_to_string(&foreign).unwrap(),
        "node_load1 0.5\n",
        "untouched"
    );
    assert_eq!(emu.snapshot().requests, 0, "nothing was sent");
}
