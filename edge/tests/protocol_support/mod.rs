//! Support for the protocol tests: a raw-socket origin whose answers are written byte for
//! byte by the test (so it can send interim responses, odd framing, anything), the edge's
//! `run()` on 127.0.0.1:0, and a raw HTTP/1.1 client that reads responses by their framing on
//! a kept-alive connection, so stray bytes after a response show up as a broken next answer.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::shutdown::Shutdown;

/// A request head as the origin read it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// Lower-cased names.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

type Script = dyn Fn(&Seen) -> Vec<u8> + Send + Sync;

/// An origin that answers each request with the bytes its script returns, keeping the
/// connection open for the next request.
pub struct RawOrigin {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl RawOrigin {
    pub fn start(script: impl Fn(&Seen) -> Vec<u8> + Send + Sync + 'static) -> RawOrigin {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let s2 = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (s3, sc) = (s2.clone(), script.clone());
                std::thread::spawn(move || serve(c, s3, sc));
            }
        });
        RawOrigin { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn count(&self, target: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target == target)
            .count()
    }

    pub fn last(&self, target: &str) -> Option<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|s| s.target == target)
            .cloned()
    }
}

fn serve(mut c: TcpStream, seen: Arc<Mutex<Vec<Seen>>>, script: Arc<Script>) {
    let mut buf = Vec::new();
    loop {
        let Some(end) = read_until_head(&mut c, &mut buf) else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut body_len = 0usize;
        let mut lines = head.split("\r\n");
        let mut rl = lines.next().unwrap_or("").split(' ');
        let method = rl.next().unwrap_or("").to_string();
        let target = rl.next().unwrap_or("").to_string();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if let Some((_, v)) = headers.iter().find(|(k, _)| k == "content-length") {
            body_len = v.parse().unwrap_or(0);
        }
        let mut rest = buf.split_off(end + 4);
        while rest.len() < body_len {
            let mut b = [0u8; 4096];
            match c.read(&mut b) {
                Ok(0) | Err(_) => return,
                Ok(n) => rest.extend_from_slice(&b[..n]),
            }
        }
        buf = rest.split_off(body_len);
        let s = Seen {
            method,
            target,
            headers,
        };
        seen.lock().unwrap().push(s.clone());
        let out = script(&s);
        if c.write_all(&out).is_err() {
            return;
        }
    }
}

fn read_until_head(c: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(p) = find(buf, b"\r\n\r\n") {
            return Some(p);
        }
        let mut b = [0u8; 4096];
        match c.read(&mut b) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

pub fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

/// A whole origin response: status line, headers, `content-length` when `body` is given.
pub fn resp(status: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        out.push_str(&format!("content-length: {}\r\n", b.len()));
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    if let Some(b) = body {
        out.extend_from_slice(b);
    }
    out
}

/// A running edge.
pub struct Edge {
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub https: Option<SocketAddr>,
    shutdown: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// An edge config for host `example.test` in front of `origin`; `top` is TOML put before the
/// sections (it may add whole sections), `http`, `cache` and `host` are appended inside
/// `[http]`, `[cache]` and `[[hosts]]`.
pub fn config(origin: &str, http: &str, cache: &str, host: &str) -> EdgeConfig {
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
token = "t0ken"
[cache]
memory = "64 MiB"
chunk_size = "64 KiB"
fill_wait_timeout = "5s"
{cache}
[lifecycle]
shutdown_grace = "1s"
[[hosts]]
name = "example.test"
origin = "{origin}"
first_byte_timeout = "3s"
idle_timeout = "2s"
{host}
"#
    );
    cdn_shared::config::load_str(&toml).expect("test config is valid")
}

impl Edge {
    pub fn start(cfg: EdgeConfig) -> Edge {
        Edge::start_with(cfg, |_, _| {})
    }

    /// Start after `adjust(config, http address)`: e.g. an origin that is the edge itself.
    pub fn start_with(
        mut cfg: EdgeConfig,
        adjust: impl FnOnce(&mut EdgeConfig, SocketAddr),
    ) -> Edge {
        cdn_shared::telemetry::init(
            cdn_shared::telemetry::LogFormat::Human,
            &std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
        );
        let listeners = cdn_edge::bind(&cfg).unwrap();
        let http = listeners.http[0].local_addr().unwrap();
        adjust(&mut cfg, http);
        let https = listeners.https.first().map(|l| l.local_addr().unwrap());
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
            https,
            shutdown,
            thread: Some(thread),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut c = Conn::open(e.admin);
            if c.send("GET", "/healthz", &[("host", "x")], b"").is_ok()
                && c.read(false).map(|r| r.status) == Ok(200)
            {
                return e;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("edge did not become healthy");
    }

    /// A new keep-alive connection to the HTTP listener.
    pub fn conn(&self) -> Conn {
        Conn::open(self.http)
    }

    /// One request with `host: example.test` on a new connection.
    pub fn get(&self, target: &str, headers: &[(&str, &str)]) -> Resp {
        let mut c = self.conn();
        c.request("GET", target, headers)
    }

    /// `POST /api/v1/purge` on the admin listener.
    pub fn purge(&self, body: &str) -> Resp {
        let mut c = Conn::open(self.admin);
        c.send(
            "POST",
            "/api/v1/purge",
            &[
                ("host", "admin"),
                ("authorization", "Bearer t0ken"),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
        .unwrap();
        c.read(false).unwrap()
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

/// A response read by its framing.
#[derive(Debug, Clone, PartialEq)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A raw client connection (keep-alive).
pub struct Conn {
    pub s: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        Conn { s, buf: Vec::new() }
    }

    /// Write raw bytes.
    pub fn raw(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.s.write_all(b)
    }

    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> std::io::Result<()> {
        let mut head = format!("{method} {target} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str("host: example.test\r\n");
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !body.is_empty() {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        self.s.write_all(head.as_bytes())?;
        self.s.write_all(body)
    }

    /// Send and read one response (panics on a broken answer).
    pub fn request(&mut self, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
        self.send(method, target, headers, b"").unwrap();
        self.read(method == "HEAD")
            .unwrap_or_else(|e| panic!("{method} {target}: {e}"))
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut b = [0u8; 16384];
        let n = self.s.read(&mut b)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf.extend_from_slice(&b[..n]);
        Ok(())
    }

    /// Read one response by its framing (RFC 9112 §6.3); bytes after it stay buffered.
    pub fn read(&mut self, head_request: bool) -> Result<Resp, String> {
        let end = loop {
            if let Some(p) = find(&self.buf, b"\r\n\r\n") {
                break p;
            }
            self.fill().map_err(|e| format!("reading head: {e}"))?;
        };
        let head = String::from_utf8_lossy(&self.buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let sl = lines.next().unwrap_or("");
        let status: u16 = sl
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {sl:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        self.buf.drain(..end + 4);
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if head_request || status == 204 || status == 304 || status < 200 {
            Vec::new()
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            self.dechunk()?
        } else if let Some(l) = get("content-length") {
            let l: usize = l.parse().map_err(|_| format!("bad content-length {l}"))?;
            while self.buf.len() < l {
                self.fill().map_err(|e| format!("reading body: {e}"))?;
            }
            self.buf.drain(..l).collect()
        } else {
            while self.fill().is_ok() {}
            std::mem::take(&mut self.buf)
        };
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    fn dechunk(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        loop {
            let p = loop {
                if let Some(p) = find(&self.buf, b"\r\n") {
                    break p;
                }
                self.fill().map_err(|e| format!("chunk size: {e}"))?;
            };
            let line = String::from_utf8_lossy(&self.buf[..p]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {line:?}"))?;
            self.buf.drain(..p + 2);
            while self.buf.len() < size + 2 {
                self.fill().map_err(|e| format!("chunk: {e}"))?;
            }
            out.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
            if size == 0 {
                return Ok(out);
            }
        }
    }

    /// Bytes the server sent beyond the responses read so far, waiting up to `wait`.
    pub fn stray(&mut self, wait: Duration) -> Vec<u8> {
        self.s.set_read_timeout(Some(wait)).unwrap();
        let _ = self.fill();
        self.s
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        std::mem::take(&mut self.buf)
    }
}

/// Poll `f` until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    f()
}
