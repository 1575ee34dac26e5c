//! Retry of idempotent origin requests whose pooled connection the origin closed as it was
//! reused (origin.rs, `should_retry`): the origin here answers the first request on its
//! first keep-alive connection, then closes that connection right after reading the next
//! request's head, without answering it.

mod cache_support;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A request as the origin saw it: which connection (from 0), method, path, `Connection`.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    conn: usize,
    method: String,
    path: String,
    connection: Option<String>,
}

/// The closing origin: connection 0 answers its first request and drops the second one
/// unanswered; every other connection answers everything. Bodies name the connection.
struct ClosingOrigin {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl ClosingOrigin {
    fn start() -> ClosingOrigin {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s2 = seen.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(l.local_addr().unwrap()).unwrap();
                let mut conn = 0;
                loop {
                    let Ok((c, _)) = l.accept().await else {
                        continue;
                    };
                    tokio::spawn(serve(c, conn, s2.clone()));
                    conn += 1;
                }
            });
        });
        let addr = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        ClosingOrigin {
            url: format!("http://{addr}"),
            seen,
        }
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn serve(mut c: tokio::net::TcpStream, conn: usize, seen: Arc<Mutex<Vec<Seen>>>) {
    let mut buf = Vec::new();
    for n in 0.. {
        let Some(end) = read_head(&mut c, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut rl = head.split(' ');
        let method = rl.next().unwrap_or("").to_string();
        let path = rl.next().unwrap_or("");
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_ascii_lowercase())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        seen.lock().unwrap().push(Seen {
            conn,
            method: method.clone(),
            path: path.to_string(),
            connection: header("connection"),
        });
        if conn == 0 && n == 1 {
            // The origin's idle timeout fires as the edge reuses the connection.
            return;
        }
        buf.drain(..end + 4);
        while buf.len() < len {
            let mut b = [0u8; 4096];
            match c.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&b[..k]),
            }
        }
        buf.drain(..len);
        let body = format!("conn{conn} {path}");
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\ncache-control: max-age=60\r\n\r\n{body}",
            body.len()
        );
        if c.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Read until a complete request head is in `buf`; its end offset (before `\r\n\r\n`).
async fn read_head(c: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(p);
        }
        let mut b = [0u8; 4096];
        match tokio::time::timeout(Duration::from_secs(20), c.read(&mut b)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&b[..n]),
            _ => return None,
        }
    }
}

/// One worker, so both requests use the same origin connection pool.
fn edge_for(origin: &ClosingOrigin) -> Edge {
    let mut cfg = config(&origin.url, "", "");
    cfg.http.workers = 1;
    Edge::start(cfg)
}

#[test]
fn get_on_a_connection_the_origin_closed_is_retried_on_a_fresh_one() {
    let origin = ClosingOrigin::start();
    let edge = edge_for(&origin);
    let a = edge.get("/a", &[]);
    assert_eq!((a.status, a.body.as_slice()), (200, &b"conn0 /a"[..]));

    let b = edge.get("/b", &[]);
    assert_eq!(
        (b.status, String::from_utf8_lossy(&b.body).as_ref()),
        (200, "conn1 /b"),
        "{b:?}"
    );
    let seen = origin.seen("/b");
    assert_eq!(seen.len(), 2, "sent, then retried once: {seen:?}");
    assert_eq!(seen[0].conn, 0, "first on the pooled connection: {seen:?}");
    assert_eq!(seen[1].conn, 1, "retry on a new connection: {seen:?}");
    assert_eq!(
        seen[1].connection.as_deref(),
        Some("close"),
        "the retry connection is not pooled: {seen:?}"
    );
    // The retried response was stored like any other.
    assert_eq!(edge.get("/b", &[]).x_cache(), "HIT");
    assert_eq!(origin.seen("/b").len(), 2);
}

#[test]
fn post_on_a_connection_the_origin_closed_is_not_retried() {
    let origin = ClosingOrigin::start();
    let edge = edge_for(&origin);
    let a = edge.get("/a", &[]);
    assert_eq!((a.status, a.body.as_slice()), (200, &b"conn0 /a"[..]));

    let p = edge.req("POST", "/p", &[], b"payload");
    assert_eq!(p.status, 502, "{p:?}");
    let seen = origin.seen("/p");
    assert_eq!(seen.len(), 1, "a POST is never retried: {seen:?}");
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].conn, 0, "sent on the pooled connection: {seen:?}");

    // The broken connection is gone; the next request gets a new one.
    let c = edge.get("/c", &[]);
    assert_eq!((c.status, c.body.as_slice()), (200, &b"conn1 /c"[..]));
}
