//! A `redis-server` of a test's own.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak, mpsc};
use std::thread;
use std::time::Duration;

use crate::ScratchDir;

/// A `redis-server` of a test's own, for the tests of the library
/// (`RedisLimiter`) and of the CLI (`import --redis-url`): on a free loopback
/// port, without persistence, optionally with a password or speaking only
/// TLS; killed when dropped.
///
/// Without `redis-server` (or, for TLS, `openssl`) on the PATH, the
/// constructors fail the test, saying what to install: a test that needs
/// Redis never passes without running. To skip those tests on purpose, set
/// `CIO_SKIP_REDIS=1`: the constructors then return `None` after saying why,
/// and the test returns. `CIO_REQUIRE_REDIS=1` (as in CI) makes their absence
/// a failure even then.
///
/// ```no_run
/// use cio_test_kit::RedisServer;
///
/// let Some(redis) = RedisServer::start() else {
///     return; // not installed, and CIO_SKIP_REDIS=1 asked to skip
/// };
/// assert!(redis.url().starts_with("redis://127.0.0.1:"));
/// ```
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    password: Option<&'static str>,
    /// Serves TLS only (`--port 0 --tls-port`), with these files.
    tls: Option<Arc<TlsFiles>>,
    child: Option<Child>,
}

impl RedisServer {
    /// A plain server, started and ready.
    pub fn start() -> Option<RedisServer> {
        RedisServer::started(RedisServer::not_started(None)?)
    }

    /// A server that requires `password`, started and ready.
    pub fn with_password(password: &'static str) -> Option<RedisServer> {
        RedisServer::started(RedisServer::not_started(Some(password))?)
    }

    /// A server that speaks only TLS, with a certificate for 127.0.0.1
    /// signed by a CA ([`ca`](RedisServer::ca)) that the TLS servers alive
    /// at once share, and that goes away with the last of them.
    pub fn with_tls() -> Option<RedisServer> {
        let mut server = RedisServer::not_started(None)?;
        server.tls = Some(TlsFiles::get()?);
        RedisServer::started(server)
    }

    /// Starts nothing yet: a port where Redis is not (yet) listening, until
    /// [`restart`](RedisServer::restart).
    pub fn not_started(password: Option<&'static str>) -> Option<RedisServer> {
        installed("redis-server", "--version").then(|| RedisServer {
            port: free_port(),
            password,
            tls: None,
            child: None,
        })
    }

    fn started(mut server: RedisServer) -> Option<RedisServer> {
        server.restart();
        Some(server)
    }

    /// Its port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://` (or `rediss://` for TLS), with the password if it has one.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match self.password {
            Some(password) => format!("{scheme}://:{password}@127.0.0.1:{}/0", self.port),
            None => format!("{scheme}://127.0.0.1:{}/0", self.port),
        }
    }

    /// The PEM file of the CA that signed a TLS server's certificate.
    pub fn ca(&self) -> Option<&Path> {
        self.tls.as_ref().map(|tls| tls.ca.as_path())
    }

    /// Starts the server (again) on its port and returns once it accepts
    /// connections.
    ///
    /// # Panics
    ///
    /// If it does not start, or does not say it is ready within 10 s.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        match &self.tls {
            Some(tls) => {
                command.args(["--port", "0", "--tls-port", &self.port.to_string()]);
                command.arg("--tls-cert-file").arg(&tls.server_cert);
                command.arg("--tls-key-file").arg(&tls.server_key);
                command.arg("--tls-ca-cert-file").arg(&tls.ca);
                command.args(["--tls-auth-clients", "no"]);
            }
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
        }
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        if let Some(password) = self.password {
            command.args(["--requirepass", password]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let (ready, is_ready) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        thread::spawn(move || {
            let mut told = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told && line.contains("Ready to accept connections") {
                    told = ready.send(()).is_ok();
                }
            }
        });
        is_ready
            .recv_timeout(Duration::from_secs(10))
            .expect("redis-server says it is ready");
        self.child = Some(child);
    }

    /// Kills the server; [`restart`](RedisServer::restart) brings it back on the same port.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether `program` runs (asked for its version). If not, the test fails
/// saying what to install, unless `CIO_SKIP_REDIS=1` asks to skip (then it
/// says so and returns `false`); `CIO_REQUIRE_REDIS=1` makes its absence a
/// failure whatever `CIO_SKIP_REDIS` says. Its Debian package has its name.
fn installed(program: &str, version: &str) -> bool {
    let installed = Command::new(program)
        .arg(version)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !installed {
        let set = |name: &str| std::env::var(name).as_deref() == Ok("1");
        assert!(
            !set("CIO_REQUIRE_REDIS"),
            "CIO_REQUIRE_REDIS=1 but {program} is not on the PATH"
        );
        assert!(
            set("CIO_SKIP_REDIS"),
            "{program} is not on the PATH: install it (apt-get install {program}), \
             or set CIO_SKIP_REDIS=1 to skip the tests that need it"
        );
        eprintln!("skipped (CIO_SKIP_REDIS=1): {program} is not installed");
    }
    installed
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// A CA and a server certificate for 127.0.0.1 it signed, made by
/// `make-certs.sh` with the `openssl` command (Debian's redis-server is
/// built with TLS; no certificate crate is compiled for it), in a scratch
/// folder removed when the last server using them is dropped.
#[derive(Debug)]
struct TlsFiles {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    /// Holds the files; removed with them.
    _dir: ScratchDir,
}

impl TlsFiles {
    /// The files the TLS servers alive now use, or new ones.
    fn get() -> Option<Arc<TlsFiles>> {
        static FILES: Mutex<Weak<TlsFiles>> = Mutex::new(Weak::new());
        let mut files = FILES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(alive) = files.upgrade() {
            return Some(alive);
        }
        let made = Arc::new(TlsFiles::make()?);
        *files = Arc::downgrade(&made);
        Some(made)
    }

    fn make() -> Option<TlsFiles> {
        if !installed("openssl", "version") {
            return None;
        }
        let dir = ScratchDir::new("redis-tls");
        let mut sh = Command::new("sh")
            .args(["-s", "--"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .spawn()
            .expect("sh starts");
        sh.stdin
            .take()
            .expect("piped stdin")
            .write_all(include_bytes!("make-certs.sh"))
            .expect("make-certs.sh handed to sh");
        let made = sh.wait().expect("make-certs.sh runs");
        assert!(made.success(), "make-certs.sh failed");
        Some(TlsFiles {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            _dir: dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::RedisServer;

    #[test]
    fn the_tls_files_go_away_with_the_last_server_using_them() {
        let Some(first) = RedisServer::with_tls() else {
            return; // CIO_SKIP_REDIS=1, and not installed
        };
        let second = RedisServer::with_tls().expect("a second TLS server");
        let ca = first.ca().expect("a CA").to_path_buf();
        assert_eq!(second.ca(), Some(ca.as_path()), "one CA for both");
        drop(first);
        assert!(ca.is_file(), "the second server still uses it");
        drop(second);
        if std::env::var_os("CIO_KEEP_SCRATCH").is_none() {
            assert!(!ca.parent().expect("its folder").exists());
        }
    }
}
