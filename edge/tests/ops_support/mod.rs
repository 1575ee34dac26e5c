//! Helpers for the ops tests (purge, drain, reports, limits, metrics), on top of
//! `cache_support` (scriptable origin, in-process edge, raw HTTP client).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use cdn_tests::harness::{scaled, Process, Signal};

use cdn_shared::config::edge::EdgeConfig;

use crate::cache_support::{request, Resp};

/// The admin token the ops configs use.
pub const TOKEN: &str = "s3cret-token";

/// An edge config in front of `origin` for host `example.test` with `[admin].token` set.
/// `cache` goes into `[cache]`, `host` into `[[hosts]]`, `top` is appended as extra sections
/// (e.g. `[report]`, `[access_log]`), `http` into `[http]`.
pub fn ops_config(origin: &str, http: &str, cache: &str, top: &str, host: &str) -> EdgeConfig {
    let toml = format!(
        r#"
[edge]
id = "e1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
{http}
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[cache]
memory = "64 MiB"
chunk_size = "64 KiB"
fill_wait_timeout = "5s"
{cache}
[lifecycle]
shutdown_grace = "3s"
{top}
[[hosts]]
name = "example.test"
aliases = ["alias.test"]
origin = "{origin}"
first_byte_timeout = "5s"
idle_timeout = "2s"
{host}
"#
    );
    cdn_shared::config::load_str(&toml).expect("ops test config is valid")
}

/// `POST /api/v1/purge` on the admin listener with the token.
pub fn purge(admin: SocketAddr, body: &str) -> Resp {
    purge_with(admin, body, Some(TOKEN))
}

/// `POST /api/v1/purge` with an optional bearer token.
pub fn purge_with(admin: SocketAddr, body: &str, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut h = vec![("host", "admin"), ("content-type", "application/json")];
    if let Some(a) = &auth {
        h.push(("authorization", a.as_str()));
    }
    request(admin, "POST", "/api/v1/purge", &h, body.as_bytes()).expect("purge request")
}

/// The `purged` count of a 200 purge answer.
pub fn purged(r: &Resp) -> u64 {
    assert_eq!(
        r.status,
        200,
        "purge failed: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("purge JSON");
    v["purged"].as_u64().expect("purged count")
}

/// Send raw bytes on a fresh connection and read until the server closes or `wait` passes.
pub fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> String {
    let mut c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(wait)).unwrap();
    let _ = c.write_all(bytes);
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline && !complete(&out) {
        match c.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A whole response with a Content-Length body has arrived.
fn complete(out: &[u8]) -> bool {
    let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    matches!(len, Some(n) if out.len() >= end + 4 + n)
}

/// Status code of a raw response text (0 when none).
pub fn raw_status(text: &str) -> u16 {
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Poll `f` until it returns `Some` or `timeout` (scaled by `CDN_TEST_PATIENCE`) passes.
pub fn eventually<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + scaled(timeout);
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The real `edge` binary, started with `--log-format json` under the shared process
/// harness: ports read from its `listening` lines, killed on drop (log printed when
/// panicking or with `CDN_TEST_LOG=1`).
pub struct EdgeProcess {
    pub process: Process,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
}

impl EdgeProcess {
    /// Write `toml` to a temp file and start `edge --config` on it.
    pub fn start(toml: &str) -> EdgeProcess {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, toml).unwrap();
        let args = [
            "--config".to_string(),
            path.display().to_string(),
            "--log-format".to_string(),
            "json".to_string(),
        ];
        let mut process = Process::spawn("edge", Path::new(env!("CARGO_BIN_EXE_edge")), &args, &[])
            .expect("spawn edge");
        process
            .wait_ready(Duration::from_secs(30))
            .expect("edge ready");
        let http = process.addr("http", "http").expect("http listener");
        let admin = process.addr("http", "admin").expect("admin listener");
        EdgeProcess {
            process,
            http,
            admin,
            _dir: dir,
        }
    }

    /// Send SIGTERM.
    pub fn sigterm(&self) {
        self.process.signal(Signal::TERM).expect("SIGTERM");
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Wait for the process to exit within `timeout` (scaled by the harness's patience).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.process.wait_exit(timeout).ok()
    }
}

/// A report as the fake router received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub auth: Option<String>,
    pub report: cdn_shared::report::HealthReport,
}

/// A fake router: accepts `POST /api/v1/reports`, records them, answers 200.
pub struct FakeRouter {
    pub addr: SocketAddr,
    pub got: std::sync::Arc<std::sync::Mutex<Vec<Received>>>,
}

impl FakeRouter {
    pub fn start() -> FakeRouter {
        use std::sync::{Arc, Mutex};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { continue };
                let g = g.clone();
                std::thread::spawn(move || {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(n) = c.read(&mut chunk) else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).into_owned();
                        let Some(end) = text.find("\r\n\r\n") else {
                            continue;
                        };
                        let head = &text[..end];
                        let header = |name: &str| {
                            head.lines().find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                            })
                        };
                        let len: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() < end + 4 + len {
                            continue;
                        }
                        let body = &buf[end + 4..end + 4 + len];
                        let path = head.split(' ').nth(1).unwrap_or("").to_string();
                        if let Ok(report) = serde_json::from_slice(body) {
                            g.lock().unwrap().push(Received {
                                path,
                                auth: header("authorization"),
                                report,
                            });
                        }
                        let _ = c.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        );
                        return;
                    }
                });
            }
        });
        FakeRouter { addr, got }
    }

    pub fn reports(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}
