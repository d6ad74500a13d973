//! Child processes (the quickstart example, the Better Auth peer) and a small HTTP client, all
//! on 127.0.0.1. Children are killed and reaped when dropped, even when a test panics.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::Reply;

/// A running child process that listens on `port`.
pub struct Server {
    child: Child,
    _stdin: Option<ChildStdin>,
    pub port: u16,
    pub name: String,
}

impl Server {
    /// Spawns `cmd` and waits (up to `timeout`) for a stdout line from which `parse` extracts
    /// the port. The child's stderr is inherited so its errors show in the test output.
    pub fn spawn(
        mut cmd: Command,
        name: &str,
        timeout: Duration,
        parse: fn(&str) -> Option<u16>,
    ) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = parse(&line) {
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(timeout) {
            Ok(port) => port,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait();
                panic!("{name} did not become ready within {timeout:?} (exit: {status:?})");
            }
        };
        Self {
            child,
            _stdin: stdin,
            port,
            name: name.to_owned(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Stops the process (SIGKILL) and reaps it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The directory of the compiled examples (`target/<profile>/examples`), which `cargo test`
/// builds before running integration tests.
pub fn example_path(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    dir.join(name)
}

/// Starts the quickstart example with `env`, on a random port.
pub fn quickstart(env: &[(&str, &str)]) -> Server {
    example("quickstart", env)
}

/// Starts example `name` (built by `cargo test`) with `env`, on a random port. Examples print
/// `<name> listening on http://127.0.0.1:PORT (…)` when ready.
pub fn example(name: &'static str, env: &[(&str, &str)]) -> Server {
    let mut cmd = Command::new(example_path(name));
    cmd.env_remove("BETTER_AUTH_SECRET")
        .env_remove("BETTER_AUTH_SECRETS")
        .env_remove("AUTH_SECRET")
        .env("PORT", "0");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let parse: fn(&str) -> Option<u16> = match name {
        "quickstart" => |line| port_after(line, "quickstart listening on http://127.0.0.1:"),
        "postgres" => |line| port_after(line, "postgres listening on http://127.0.0.1:"),
        "mysql" => |line| port_after(line, "mysql listening on http://127.0.0.1:"),
        "redis" => |line| port_after(line, "redis listening on http://127.0.0.1:"),
        "hyper" => |line| port_after(line, "hyper listening on http://127.0.0.1:"),
        "html" => |line| port_after(line, "html listening on http://127.0.0.1:"),
        other => panic!("unknown example {other}"),
    };
    Server::spawn(cmd, name, Duration::from_secs(30), parse)
}

fn port_after(line: &str, prefix: &str) -> Option<u16> {
    line.strip_prefix(prefix)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Starts the Better Auth peer (`tests/interop/server.mjs`) with `env`; `None` (after saying
/// why) when the harness is not installed and the servers are not required.
pub fn better_auth(env: &[(&str, &str)], test: &str) -> Option<Server> {
    let dir = super::server_url("TAS_TEST_NODE_INTEROP", test)?;
    let mut cmd = Command::new("node");
    cmd.arg(std::path::Path::new(&dir).join("server.mjs"))
        .env("PORT", "0")
        .env("BA_LOG_LEVEL", "error");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Some(Server::spawn(
        cmd,
        "better-auth",
        Duration::from_secs(60),
        |line| line.strip_prefix("LISTENING ")?.trim().parse().ok(),
    ))
}

/// One HTTP/1.1 request to 127.0.0.1.
pub async fn http(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Reply {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "tests only talk to 127.0.0.1: {url}"
    );
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_owned())))
        .unwrap();
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `POST url` with a form body (`application/x-www-form-urlencoded`).
pub async fn http_form(url: &str, body: &str) -> Reply {
    assert!(
        url.starts_with("http://127.0.0.1:"),
        "tests only talk to 127.0.0.1: {url}"
    );
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let req = http::Request::post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let resp = client
        .request(req)
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// `POST url` with a JSON body, returning the parsed JSON answer.
pub async fn post_json(url: &str, body: serde_json::Value) -> serde_json::Value {
    let r = http("POST", url, &[], Some(&body.to_string())).await;
    assert_eq!(r.status, 200, "POST {url}: {}", r.body);
    r.json()
}

/// `name=value` of cookie `name` from the `cookie` field of the peer's sign-up or sign-in
/// answer.
pub fn cookie_of(answer: &serde_json::Value, name: &str) -> String {
    let jar = answer["cookie"].as_str().unwrap_or_default();
    jar.split("; ")
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {answer}"))
        .to_owned()
}
