//! Test support for the edge's cache tests: a tiny scriptable origin on 127.0.0.1:0 that
//! counts its requests, the edge's `run()` on 127.0.0.1:0 in its own actix system, and a
//! raw HTTP/1.1 client (so every header is visible and nothing is hidden by a client lib).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::shutdown::Shutdown;

/// A request as the origin saw it.
#[derive(Debug, Clone)]
pub struct OriginReq {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// What the origin answers.
#[derive(Debug, Clone)]
pub struct OriginResp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: bytes::Bytes,
    /// Wait before sending the head.
    pub head_delay: Duration,
    /// Send the body in pieces of this size with `piece_delay` between them.
    pub piece: usize,
    pub piece_delay: Duration,
    /// Close the connection after this many body bytes (a reset mid-body).
    pub cut_after: Option<usize>,
    /// Send no Content-Length (close-delimited body).
    pub no_length: bool,
    /// Close the connection without answering (after `head_delay`).
    pub hang_up: bool,
    /// Send the body with `Transfer-Encoding: chunked` (one chunk per piece).
    pub chunked: bool,
    /// Body bytes written so far (the socket took them), when given.
    pub written: Option<Arc<AtomicUsize>>,
}

impl OriginResp {
    pub fn new(status: u16, headers: &[(&str, &str)], body: impl Into<bytes::Bytes>) -> Self {
        OriginResp {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.into(),
            head_delay: Duration::ZERO,
            piece: usize::MAX,
            piece_delay: Duration::ZERO,
            cut_after: None,
            no_length: false,
            hang_up: false,
            chunked: false,
            written: None,
        }
    }
}

/// An origin handler serving `body` (max-age=60, sent in 256 KiB pieces) and single
/// `Range: bytes=a-b` requests on it with 206, as the edge's chunk refetches ask.
#[allow(dead_code)] // not every test file that includes this module uses it
pub fn ranged_body(
    body: bytes::Bytes,
) -> impl Fn(&OriginReq, usize) -> OriginResp + Send + Sync + 'static {
    move |r, _| {
        if let Some(range) = r.headers.get("range") {
            let (a, b) = range.trim_start_matches("bytes=").split_once('-').unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            let cr = format!("bytes {a}-{b}/{}", body.len());
            return OriginResp::new(206, &[("content-range", cr.as_str())], body.slice(a..=b));
        }
        let mut resp = OriginResp::new(200, &[("cache-control", "max-age=60")], body.clone());
        resp.piece = 256 * 1024;
        resp
    }
}

type Handler = dyn Fn(&OriginReq, usize) -> OriginResp + Send + Sync;

/// The origin. `count(path)` = requests seen for that path.
pub struct Origin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<OriginReq>>>,
    handler: Arc<Mutex<Arc<Handler>>>,
}

impl Origin {
    pub fn start(h: impl Fn(&OriginReq, usize) -> OriginResp + Send + Sync + 'static) -> Origin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Mutex<Arc<Handler>>> = Arc::new(Mutex::new(Arc::new(h)));
        let (s2, h2) = (seen.clone(), handler.clone());
        let n = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(conn) = conn else { continue };
                let (s3, h3, n3) = (s2.clone(), h2.clone(), n.clone());
                std::thread::spawn(move || serve_conn(conn, s3, h3, n3));
            }
        });
        Origin {
            addr,
            seen,
            handler,
        }
    }

    /// Replace the handler.
    pub fn set(&self, h: impl Fn(&OriginReq, usize) -> OriginResp + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(h);
    }

    pub fn count(&self, path: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn requests(&self, path: &str) -> Vec<OriginReq> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn serve_conn(
    mut c: TcpStream,
    seen: Arc<Mutex<Vec<OriginReq>>>,
    handler: Arc<Mutex<Arc<Handler>>>,
    n: Arc<AtomicUsize>,
) {
    loop {
        let Some((req, _body)) = read_request(&mut c) else {
            return;
        };
        let idx = n.fetch_add(1, Ordering::SeqCst);
        seen.lock().unwrap().push(req.clone());
        let h = handler.lock().unwrap().clone();
        let resp = h(&req, idx);
        std::thread::sleep(resp.head_delay);
        if resp.hang_up {
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
        let mut head = format!("HTTP/1.1 {} X\r\n", resp.status);
        for (k, v) in &resp.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let close = resp.no_length || resp.cut_after.is_some();
        if resp.chunked {
            head.push_str("transfer-encoding: chunked\r\n");
        } else if !resp.no_length && resp.status != 304 && resp.status != 204 {
            head.push_str(&format!("content-length: {}\r\n", resp.body.len()));
        }
        if close {
            head.push_str("connection: close\r\n");
        }
        head.push_str("\r\n");
        if c.write_all(head.as_bytes()).is_err() {
            return;
        }
        if req.method != "HEAD" {
            let limit = resp.cut_after.unwrap_or(usize::MAX).min(resp.body.len());
            let mut off = 0;
            while off < limit {
                let end = (off + resp.piece).min(limit);
                let ok = if resp.chunked {
                    c.write_all(format!("{:x}\r\n", end - off).as_bytes())
                        .is_ok()
                        && c.write_all(&resp.body[off..end]).is_ok()
                        && c.write_all(b"\r\n").is_ok()
                } else {
                    c.write_all(&resp.body[off..end]).is_ok()
                };
                if !ok {
                    return;
                }
                let _ = c.flush();
                if let Some(w) = &resp.written {
                    w.fetch_add(end - off, Ordering::SeqCst);
                }
                off = end;
                if off < limit {
                    std::thread::sleep(resp.piece_delay);
                }
            }
        }
        if resp.chunked && resp.cut_after.is_none() && req.method != "HEAD" {
            let _ = c.write_all(b"0\r\n\r\n");
        }
        if close {
            let _ = c.shutdown(std::net::Shutdown::Both);
            return;
        }
    }
}

fn read_request(c: &mut TcpStream) -> Option<(OriginReq, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut b = [0u8; 4096];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut rl = lines.next()?.split(' ');
    let method = rl.next()?.to_string();
    let path = rl.next()?.to_string();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[end + 4..].to_vec();
    while body.len() < len {
        let n = c.read(&mut b).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&b[..n]);
    }
    Some((
        OriginReq {
            method,
            path,
            headers,
        },
        body,
    ))
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A running edge.
pub struct Edge {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A minimal edge config in front of `origin` for host `example.test`; `extra_host` and
/// `cache` are TOML appended inside `[[hosts]]` and `[cache]` (the host's `idle_timeout` is
/// 2 s unless `extra_host` sets it).
pub fn config(origin: &str, extra_host: &str, cache: &str) -> EdgeConfig {
    // `extra_host` may set its own idle_timeout.
    let idle = if extra_host.contains("idle_timeout") {
        ""
    } else {
        "idle_timeout = \"2s\""
    };
    let toml = format!(
        r#"
[edge]
id = "e1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
[admin]
listen = "127.0.0.1:0"
[cache]
memory = "64 MiB"
chunk_size = "64 KiB"
fill_wait_timeout = "5s"
{cache}
[lifecycle]
shutdown_grace = "2s"
[[hosts]]
name = "example.test"
aliases = ["alias.test"]
origin = "{origin}"
first_byte_timeout = "3s"
{idle}
{extra_host}
"#
    );
    cdn_shared::config::load_str(&toml).expect("test config is valid")
}

impl Edge {
    pub fn start(cfg: EdgeConfig) -> Edge {
        tracing_init();
        let listeners = cdn_edge::bind(&cfg).unwrap();
        let http = listeners.http[0].local_addr().unwrap();
        let admin = listeners.admin.as_ref().unwrap().local_addr().unwrap();
        let shutdown = Shutdown::new();
        let s2 = shutdown.clone();
        let thread = std::thread::spawn(move || {
            actix_rt::System::new()
                .block_on(cdn_edge::run(cfg, listeners, s2))
                .expect("edge run failed");
        });
        let e = Edge {
            http,
            admin,
            shutdown,
            thread: Some(thread),
        };
        let deadline = Instant::now() + cdn_tests::harness::scaled(Duration::from_secs(20));
        while Instant::now() < deadline {
            if let Ok(r) = try_get(e.admin, "/healthz", &[("host", "x")]) {
                if r.status == 200 {
                    return e;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("edge did not become healthy");
    }

    /// Stop (graceful) and wait for the cache to close.
    pub fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.req("GET", path, headers, b"")
    }

    pub fn req(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        let mut h: Vec<(&str, &str)> = headers.to_vec();
        if !h.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            h.push(("host", "example.test"));
        }
        request(self.http, method, path, &h, body).expect("request failed")
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tracing_init() {
    cdn_shared::telemetry::init(
        cdn_shared::telemetry::LogFormat::Human,
        &std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
    );
}

/// A response as the client saw it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended early (connection closed before Content-Length bytes).
    pub truncated: bool,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn x_cache(&self) -> &str {
        self.header("x-cache").unwrap_or("")
    }
    pub fn cache_status(&self) -> &str {
        self.header("cache-status").unwrap_or("")
    }
}

pub fn try_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> std::io::Result<Resp> {
    request(addr, "GET", path, headers, b"")
}

/// The edge's `/metrics` page from its admin listener.
#[allow(dead_code)] // not every test file that includes this module uses it
pub fn metrics_page(admin: SocketAddr) -> String {
    let r = request(admin, "GET", "/metrics", &[("host", "admin")], b"").unwrap();
    assert_eq!(r.status, 200);
    String::from_utf8(r.body).unwrap()
}

/// The value of the first sample line of `page` starting with `prefix`.
#[allow(dead_code)] // not every test file that includes this module uses it
pub fn sample(page: &str, prefix: &str) -> Option<f64> {
    page.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut c = TcpStream::connect(addr)?;
    c.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes())?;
    c.write_all(body)?;
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    parse_response(&raw, method == "HEAD")
}

pub fn parse_response(raw: &[u8], head_only: bool) -> std::io::Result<Resp> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response");
    let end = find(raw, b"\r\n\r\n").ok_or_else(bad)?;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[end + 4..];
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let (body, truncated) = if head_only || status == 304 || status == 204 {
        (Vec::new(), false)
    } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        dechunk(rest)
    } else if let Some(l) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        (rest[..rest.len().min(l)].to_vec(), rest.len() < l)
    } else {
        (rest.to_vec(), false)
    };
    Ok(Resp {
        status,
        headers,
        body,
        truncated,
    })
}

fn dechunk(mut d: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(p) = find(d, b"\r\n") else {
            return (out, true);
        };
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&d[..p])
                .split(';')
                .next()
                .unwrap_or("")
                .trim(),
            16,
        )
        .unwrap_or(0);
        d = &d[p + 2..];
        if size == 0 {
            return (out, false);
        }
        if d.len() < size + 2 {
            out.extend_from_slice(&d[..d.len().min(size)]);
            return (out, true);
        }
        out.extend_from_slice(&d[..size]);
        d = &d[size + 2..];
    }
}

/// Poll `f` until it is true or `timeout` (scaled by `CDN_TEST_PATIENCE`) passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + cdn_tests::harness::scaled(timeout);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}

/// GET `path` until it is no longer served as a fresh `HIT`, and return that first other
/// response. `run()` reads the wall clock, so a freshness lifetime really has to pass; this
/// waits for exactly that instead of sleeping a guess. Fresh hits never reach the origin, so
/// origin request counts are untouched by the polling. Panics after `timeout` (scaled).
pub fn first_non_hit(edge: &Edge, path: &str, timeout: Duration) -> Resp {
    let deadline = Instant::now() + cdn_tests::harness::scaled(timeout);
    loop {
        let r = edge.get(path, &[]);
        if r.x_cache() != "HIT" {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{path} still a fresh HIT after {timeout:?}: {r:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Deterministic, non-periodic body of `n` bytes (xorshift64).
pub fn body_of(n: usize, seed: u8) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (seed as u64 + 1);
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
