//! Shared fixtures of the admin tests: a router + health + admin server started on
//! 127.0.0.1:0 from a config file, fake edges (probe target and purge API), and a tiny
//! blocking HTTP/1.1 client.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use cdn_dns_router::admin::{self, AdminContext, AdminServer};
use cdn_dns_router::health::{self, HealthState};
use cdn_dns_router::Router;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const TOKEN: &str = "s3cret-token";

/// A running router admin API with its health state.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub ctx: AdminContext,
    pub addr: SocketAddr,
    pub server: Option<AdminServer>,
    pub shutdown: Shutdown,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(mut s) = self.server.take() {
            s.join();
        }
    }
}

/// One edge of a test config.
pub struct EdgeSpec<'a> {
    pub id: &'a str,
    pub region: &'a str,
    pub ipv4: &'a str,
    pub probe_port: u16,
    pub admin_url: Option<String>,
}

/// A config with regions `east` (10.1.0.0/16) and `west` (10.2.0.0/16), zone `cdn.test`,
/// service `www.cdn.test` over every edge.
pub fn config_toml(edges: &[EdgeSpec], token: Option<&str>, extra_admin: &str) -> String {
    let mut t = String::new();
    t.push_str("[dns]\nlisten = [\"127.0.0.1:0\"]\n");
    t.push_str("[admin]\nlisten = \"127.0.0.1:0\"\n");
    if let Some(tok) = token {
        t.push_str(&format!("token = \"{tok}\"\n"));
    }
    t.push_str(extra_admin);
    t.push_str(
        "[health]\nprobe_interval = \"100ms\"\nprobe_timeout = \"200ms\"\nprobe_jitter = \"10ms\"\n\
         [geo]\ndefault_region = \"east\"\n\
         networks = [ { cidr = \"10.1.0.0/16\", region = \"east\" }, { cidr = \"10.2.0.0/16\", region = \"west\" } ]\n\
         [[regions]]\nname = \"east\"\nlat = 40.7\nlon = -74.0\n\
         [[regions]]\nname = \"west\"\nlat = 37.8\nlon = -122.4\n\
         [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n\
         [[services]]\nname = \"www.cdn.test\"\n",
    );
    for e in edges {
        t.push_str(&format!(
            "[[edges]]\nid = \"{}\"\nregion = \"{}\"\nipv4 = [\"{}\"]\nprobe_url = \"http://127.0.0.1:{}/healthz\"\n",
            e.id, e.region, e.ipv4, e.probe_port
        ));
        if let Some(u) = &e.admin_url {
            t.push_str(&format!("admin_url = \"{u}\"\n"));
        }
    }
    t
}

/// Write `toml` to a file and start health, router and the admin server from it.
pub fn start(toml: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    std::fs::write(&path, toml).unwrap();
    let config: RouterConfig = cdn_shared::config::load(Some(&path)).expect("test config");
    let health_state = HealthState::new(&config);
    let router = Router::new(&config, dir.path(), health_state.clone()).expect("router");
    let shutdown = Shutdown::new();
    let config = Arc::new(config);
    health::start(health_state.clone(), config.clone(), shutdown.clone());
    let ctx = AdminContext::new(
        health_state,
        router,
        Arc::new(ArcSwap::new(config)),
        Some(path.clone()),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let server = admin::serve(listener, ctx.clone(), shutdown.clone()).expect("admin serve");
    let addr = server.addr();
    Fixture {
        dir,
        path,
        ctx,
        addr,
        server: Some(server),
        shutdown,
    }
}

/// A blocking HTTP/1.1 request; returns (status, body).
pub fn http_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    } else if method == "POST" {
        req.push_str("Content-Length: 0\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        let _ = s.write_all(b);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = &rest[n + 2..];
    }
    out
}

/// [`http_blocking`] off the async runtime's threads; parses the body as JSON when it is.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let (m, p, t) = (
        method.to_string(),
        path.to_string(),
        token.map(str::to_string),
    );
    let (status, text) = tokio::task::spawn_blocking(move || {
        http_blocking(addr, &m, &p, t.as_deref(), body.as_deref())
    })
    .await
    .unwrap();
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, v)
}

/// What a fake edge received on its purge API.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub requests: Vec<(String, String)>, // (head, body)
}

/// A fake edge: `GET /healthz` → 200; `POST /api/v1/purge` → 200 `{"purged":3,...}`.
pub async fn fake_edge() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let s = s.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then Content-Length bytes of body.
                let (head, mut body) = loop {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break (
                            String::from_utf8_lossy(&buf[..i]).to_string(),
                            buf[i + 4..].to_vec(),
                        );
                    }
                };
                let len = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while body.len() < len {
                    let Ok(n) = sock.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    body.extend_from_slice(&chunk[..n]);
                }
                let resp_body = if head.starts_with("POST /api/v1/purge") {
                    s.lock()
                        .unwrap()
                        .requests
                        .push((head.clone(), String::from_utf8_lossy(&body).to_string()));
                    "{\"purged\":3,\"soft\":false}"
                } else {
                    "{\"status\":\"serving\"}"
                };
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                    resp_body.len(),
                    resp_body
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    (port, seen)
}

/// A port with nothing listening.
pub fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Poll `f` until it returns true, or panic after `within` (scaled by `CDN_TEST_PATIENCE`).
pub async fn eventually(within: Duration, what: &str, f: impl FnMut() -> bool) {
    if let Err(e) = cdn_tests::harness::wait_until_async(what, within, f).await {
        panic!("{e:#}");
    }
}

/// A report body for `edge` with the given load against a capacity of 100 req/s.
pub fn report(
    edge: &str,
    region: &str,
    seq: u64,
    rps: f64,
    sent_at_ms: u64,
    draining: bool,
) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "version": 1,
        "edge_id": edge,
        "region": region,
        "seq": seq,
        "boot_id": 77,
        "sent_at_ms": sent_at_ms,
        "status": if draining { "draining" } else { "serving" },
        "load": { "active_connections": 1, "requests_per_sec": rps, "egress_bytes_per_sec": 0.0, "cpu": 0.1 },
        "capacity": { "requests_per_sec": 100.0 },
        "cache": { "objects": 0, "bytes": 0, "hit_ratio": 0.0 }
    }))
    .unwrap()
}

/// The chosen edge ids of an explain answer.
pub fn chosen(explain: &Value) -> Vec<String> {
    explain["candidates"]
        .as_array()
        .unwrap_or_else(|| panic!("no candidates in {explain}"))
        .iter()
        .filter(|c| c["chosen"] == true)
        .map(|c| c["edge"].as_str().unwrap().to_string())
        .collect()
}
