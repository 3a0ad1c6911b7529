//! `import --redis-url` and `import --adaptive`: several processes, one
//! workspace budget.

mod command;

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use cio_emulator::{Config, Emulator};
use serde_json::json;

use command::against;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cio-cli-shared-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// `n` identifies of people `{prefix}0..n`.
fn write_input(path: &Path, prefix: &str, n: u32) {
    let text: String = (0..n)
        .map(|i| {
            format!(
                "{}\n",
                json!({"type": "person", "action": "identify", "identifiers": {"id": format!("{prefix}{i}")}})
            )
        })
        .collect();
    fs::write(path, text).unwrap();
}

/// A `redis-server` on a free loopback port, killed on drop; `None` (after
/// saying why) when it is not installed, unless `CIO_REQUIRE_REDIS=1`.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    fn start() -> Option<RedisServer> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            assert_ne!(
                std::env::var("CIO_REQUIRE_REDIS").as_deref(),
                Ok("1"),
                "redis-server is required"
            );
            eprintln!("skipped: redis-server is not installed (apt-get install redis-server)");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let (ready, is_ready) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("Ready to accept connections") {
                    let _ = ready.send(());
                }
            }
        });
        is_ready
            .recv_timeout(Duration::from_secs(10))
            .expect("redis-server is ready");
        Some(RedisServer { child, port })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_imports_sharing_a_redis_budget_stay_within_it_together() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let emu = Emulator::start(Config::default().track_limit(0)).unwrap();
    let dir = scratch("redis");
    let url = format!("redis://127.0.0.1:{}/0", redis.port);
    let imports: Vec<_> = ["a", "b"]
        .iter()
        .map(|name| {
            let input = dir.join(format!("{name}.ndjson"));
            write_input(&input, name, 120);
            let args = [
                "import",
                input.to_str().unwrap(),
                "--mode",
                "single",
                "--rate",
                "40",
                "--burst",
                "4",
                "--redis-url",
                &url,
            ];
            against(&emu, &args).spawn()
        })
        .collect();
    for mut import in imports {
        assert!(import.wait().unwrap().success());
    }
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 240, "everything arrived");
    // One budget of 40/s burst 4 for both: at most 44 in any second (80 apart).
    let track = &snapshot.classes["track"];
    assert!(track.max_in_window <= 44, "{track:?}");
    assert!(track.max_in_window >= 30, "both were sending: {track:?}");
}

#[test]
fn an_adaptive_import_backs_off_under_a_lower_limit_and_delivers_everything() {
    let emu = Emulator::start(Config::default().track_limit(20)).unwrap();
    let dir = scratch("adaptive");
    let input = dir.join("input.ndjson");
    write_input(&input, "p", 120);
    let outcome = against(
        &emu,
        &[
            "import",
            input.to_str().unwrap(),
            "--mode",
            "single",
            "--rate",
            "40",
            "--adaptive",
            "--json",
        ],
    )
    .run();
    outcome.assert_code(0);
    let json = outcome.json();
    let snapshot = emu.snapshot();
    assert_eq!(snapshot.people.len(), 120);
    assert!(
        json["throttled"].as_u64().unwrap() > 0,
        "the server's limit was found: {json}"
    );
    assert_eq!(json["throttled"], snapshot.throttled);
}
