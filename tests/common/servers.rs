//! Throwaway servers that a test owns, can crash and restarts (PostgreSQL, Redis), and a TCP
//! proxy that can go silent like a partitioned network path. Everything listens on 127.0.0.1
//! and is stopped when dropped, even when the test panics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A port nobody listens on right now (the OS picks it; a short race is possible but harmless:
/// starting a server on a taken port fails loudly).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn is_root() -> bool {
    // /proc/self/status holds the real uid.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs `program` (as the `postgres` user when running as root, from `/`), panicking with its
/// output on failure.
fn run_pg(program: &Path, args: &[&str]) {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.arg("-u").arg("postgres").arg("--").arg(program);
        c
    } else {
        Command::new(program)
    };
    let out = cmd
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}{}",
        program.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The newest PostgreSQL `bin` directory on this machine.
fn pg_bindir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("TAS_TEST_POSTGRES_BINDIR") {
        return Some(dir.into());
    }
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| Some(e.ok()?.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

/// Says why a server test is skipped, or fails when the full test command requires servers.
fn required<T>(what: &str, test: &str) -> Option<T> {
    assert!(
        !super::servers_required(),
        "{test}: {what} is not installed but TAS_REQUIRE_SERVERS is set"
    );
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {what} is not installed (scripts/test-all.sh installs it)"
    );
    None
}

/// A directory under /tmp for a cluster's data and socket, which the `postgres` user owns when
/// the tests run as root (the server runs as that user then).
fn postgres_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .unwrap();
    if is_root() {
        Command::new("chown")
            .args(["postgres:postgres", dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
    }
    dir
}

/// A PostgreSQL cluster of the test's own, on a random port, that can be crashed and restarted.
pub struct Postgres {
    dir: tempfile::TempDir,
    bindir: PathBuf,
    pub port: u16,
}

impl Postgres {
    /// Creates and starts a cluster; `None` (after saying why) when PostgreSQL is not installed
    /// and servers are not required.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bindir) = pg_bindir() else {
            return required("PostgreSQL", test);
        };
        let dir = postgres_dir("tas-pg-");
        let data = dir.path().join("data");
        run_pg(
            &bindir.join("initdb"),
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let pg = Self {
            dir,
            bindir,
            port: free_port(),
        };
        pg.start_again();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on the same port and data; retries while the previous server's
    /// processes are still going away (after a crash they exit once they notice).
    pub fn start_again(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut cmd = if is_root() {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"])
                    .arg(self.bindir.join("pg_ctl"));
                c
            } else {
                Command::new(self.bindir.join("pg_ctl"))
            };
            let ok = cmd
                .args(["-D", self.data().to_str().unwrap()])
                .args([
                    "-l",
                    log.to_str().unwrap(),
                    "-o",
                    &opts,
                    "-w",
                    "-t",
                    "30",
                    "-s",
                    "start",
                ])
                .current_dir("/")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .success();
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            // A retry pause while a crashed server's processes exit (they hold its shared
            // memory): part of starting a process, not a timing the test depends on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A streaming standby of this server (`pg_basebackup -R`: it replays the primary's WAL and
    /// answers reads only), on a port and in a directory of its own.
    pub fn standby(&self) -> Self {
        let dir = postgres_dir("tas-pg-standby-");
        let data = dir.path().join("data");
        run_pg(
            &self.bindir.join("pg_basebackup"),
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-D",
                data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        let standby = Self {
            dir,
            bindir: self.bindir.clone(),
            port: free_port(),
        };
        standby.start_again();
        standby
    }

    /// `pg_ctl promote -w`: a standby becomes a primary (returns once it takes writes).
    pub fn promote(&self) {
        run_pg(
            &self.bindir.join("pg_ctl"),
            &["-D", self.data().to_str().unwrap(), "-w", "-s", "promote"],
        );
    }

    /// `pg_ctl stop -m MODE` (`immediate` is a crash as far as clients can tell: no goodbye).
    pub fn stop(&self, mode: &str) {
        run_pg(
            &self.bindir.join("pg_ctl"),
            &[
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                mode,
                "-w",
                "-s",
                "stop",
            ],
        );
    }

    /// SIGKILL to the postmaster, as an OOM kill would.
    pub fn kill_postmaster(&self) {
        let pid = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .to_owned();
        let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
        assert!(status.success(), "kill -KILL {pid}");
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let pg_ctl = self.bindir.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&pg_ctl);
            c
        } else {
            Command::new(&pg_ctl)
        };
        let _ = cmd
            .args([
                "-D",
                self.data().to_str().unwrap(),
                "-m",
                "immediate",
                "-w",
                "-s",
                "stop",
            ])
            .current_dir("/")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Whether `redis-server` can be run.
fn redis_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok()
}

/// Waits (10 s at most) until something listens on `port` of 127.0.0.1, which `what` started.
fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start");
        // A retry pause while the process binds its port.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A Redis server of the test's own (a child process, not daemonized, so it can be killed).
pub struct Redis {
    dir: tempfile::TempDir,
    child: Mutex<Option<Child>>,
    pub port: u16,
}

impl Redis {
    /// Starts a server on a random port; `None` (after saying why) when Redis is not installed
    /// and servers are not required.
    pub fn start(test: &str) -> Option<Self> {
        if !redis_installed() {
            return required("redis-server", test);
        }
        let redis = Self {
            dir: tempfile::tempdir().unwrap(),
            child: Mutex::new(None),
            port: free_port(),
        };
        // Durable across a SIGKILL: every write is in the append-only file before it is
        // answered, as a managed Redis that keeps sessions would be configured.
        redis.start_again();
        Some(redis)
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server on the same port, and waits until it answers.
    pub fn start_again(&self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        *self.child.lock().unwrap() = Some(child);
        wait_listening(self.port, "redis-server");
    }

    /// SIGKILL, and reap it.
    pub fn kill(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Sentinel of the test's own (a child process), watching the master at
/// `127.0.0.1:master_port` as `name` with a quorum of 1.
pub struct Sentinel {
    _dir: tempfile::TempDir,
    child: Child,
    pub port: u16,
}

impl Sentinel {
    /// Starts it on a random port and waits until it answers; `None` (after saying why) when
    /// Redis is not installed and servers are not required.
    pub fn start(test: &str, name: &str, master_port: u16) -> Option<Self> {
        if !redis_installed() {
            return required("redis-server", test);
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // Sentinel rewrites its configuration file, so it lives in the test's directory.
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "bind 127.0.0.1\nport {port}\ndir {}\nsentinel monitor {name} 127.0.0.1 {master_port} 1\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let sentinel = Self {
            _dir: dir,
            child,
            port,
        };
        wait_listening(port, "redis-server --sentinel");
        Some(sentinel)
    }

    /// `redis://127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sockets, or halves of sockets, kept open without reading or writing.
type Held = Arc<Mutex<Vec<Box<dyn std::any::Any + Send>>>>;

/// A TCP proxy on 127.0.0.1 in front of `upstream` that can go silent: while
/// [`black_hole`](Self::black_hole)d it stops forwarding without closing anything (as a network
/// partition or a failover behind a load balancer does), accepts new connections and never
/// answers on them. Connections that were open when the path went silent stay silent for
/// good; after [`heal`](Self::heal) only new connections flow again.
pub struct Proxy {
    pub port: u16,
    epoch: Arc<AtomicU64>,
    silent: Arc<std::sync::atomic::AtomicBool>,
    /// Milliseconds each new connection waits before it is forwarded (a slow path).
    delay: Arc<AtomicU64>,
    /// Sockets (or their halves) held open, never answered.
    held: Held,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let epoch = Arc::new(AtomicU64::new(0));
        let silent = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let held: Held = Arc::new(Mutex::new(Vec::new()));
        let delay = Arc::new(AtomicU64::new(0));
        let (e, s, h, d) = (epoch.clone(), silent.clone(), held.clone(), delay.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if s.load(Ordering::SeqCst) {
                    h.lock().unwrap().push(Box::new(client));
                    continue;
                }
                let born = e.load(Ordering::SeqCst);
                let (e, h) = (e.clone(), h.clone());
                let wait = Duration::from_millis(d.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    // The path's latency, as configured with `slow`.
                    tokio::time::sleep(wait).await;
                    let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, born, e.clone(), h.clone());
                    let down = pump(sr, cw, born, e, h);
                    tokio::join!(up, down);
                });
            }
        });
        Self {
            port,
            epoch,
            silent,
            delay,
            held,
            task,
        }
    }

    /// New connections reach the server `by` later (a slow path, not a silent one).
    pub fn slow(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.delay.store(ms, Ordering::SeqCst);
    }

    /// Stops forwarding on every open connection and answers no new one.
    pub fn black_hole(&self) {
        self.silent.store(true, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// New connections flow again (the silent ones stay silent).
    pub fn heal(&self) {
        self.silent.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.held.lock().unwrap().clear();
    }
}

/// Copies `from` to `to` until either side closes, or the path goes silent: then it stops
/// reading and writing, and keeps both halves open until the proxy is dropped.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    born: u64,
    epoch: Arc<AtomicU64>,
    held: Held,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if epoch.load(Ordering::SeqCst) != born {
            // Silent from now on: neither side hears anything, nobody is told. The two halves
            // belong to different sockets (client and server), so both are kept: dropping a
            // write half would send a FIN and tell the other side.
            held.lock().unwrap().push(Box::new((from, to)));
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One request's outcome, for judging an outage.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub started: Instant,
    pub took: Duration,
    pub status: u16,
}

/// Outcomes recorded by concurrent clients.
#[derive(Clone, Default)]
pub struct Record {
    outcomes: Arc<Mutex<Vec<Outcome>>>,
    changed: Arc<tokio::sync::Notify>,
}

impl Record {
    pub fn push(&self, outcome: Outcome) {
        self.outcomes.lock().unwrap().push(outcome);
        self.changed.notify_waiters();
    }

    pub fn snapshot(&self) -> Vec<Outcome> {
        self.outcomes.lock().unwrap().clone()
    }

    /// Waits for new outcomes until `pred` holds for all recorded so far; fails after `limit`
    /// (a bound on a broken run, not a timing the test relies on).
    pub async fn wait_for(&self, what: &str, limit: Duration, pred: impl Fn(&[Outcome]) -> bool) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            if pred(&self.outcomes.lock().unwrap()) {
                return;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                panic!("timed out after {limit:?} waiting for {what}");
            }
        }
    }
}
