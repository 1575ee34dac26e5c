//! Limits and bad input against the real edge (`run()` in-process): 431, 413, 400, the
//! header read timeout, the connection limit, path normalisation in the key, and headers
//! outside the key not reaching the origin.

mod cache_support;
mod ops_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use cache_support::*;
use ops_support::*;

fn origin() -> Origin {
    Origin::start(|req, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60")],
            format!("body of {}", req.path),
        )
    })
}

const HTTP: &str = "max_body_size = \"1 KiB\"\nheader_read_timeout = \"1s\"";

#[test]
fn oversized_headers_are_431() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    // Over the configured 32 KiB (checked by the edge).
    let big = "x".repeat(40 * 1024);
    let r = edge.get("/h", &[("x-big", &big)]);
    assert_eq!(r.status, 431);
    // Over actix-http's fixed 128 KiB head buffer (refused by the HTTP parser itself).
    let huge = "y".repeat(200 * 1024);
    let text = raw(
        edge.http,
        format!("GET /h HTTP/1.1\r\nhost: example.test\r\nx-huge: {huge}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert_eq!(raw_status(&text), 431, "{}", &text[..text.len().min(200)]);
    // Many small headers adding up past the limit.
    let many: Vec<(String, String)> = (0..90)
        .map(|i| (format!("x-h{i}"), "z".repeat(400)))
        .collect();
    let hs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(edge.get("/h", &hs).status, 431);
    assert_eq!(o.count("/h"), 0, "nothing reached the origin");
    // A request target over the limit on its own is 414 URI Too Long.
    let long = format!("/{}", "u".repeat(40 * 1024));
    let r = edge.get(&long, &[]);
    assert_eq!(r.status, 414);
    assert_eq!(o.count(&long), 0, "nothing reached the origin");
    // Just under the limit is fine.
    let ok = "x".repeat(16 * 1024);
    assert_eq!(edge.get("/h", &[("x-ok", &ok)]).status, 200);
}

#[test]
fn oversized_bodies_are_413() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    let r = edge.req("POST", "/upload", &[], &vec![b'a'; 2048]);
    assert_eq!(r.status, 413);
    // Chunked, no Content-Length: cut off while streaming.
    let mut req = b"POST /upload HTTP/1.1\r\nhost: example.test\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"200\r\n");
        req.extend_from_slice(&[b'b'; 512]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let text = raw(edge.http, &req, Duration::from_secs(5));
    assert_eq!(raw_status(&text), 413, "{text}");
    // Within the limit: passed through.
    let r = edge.req("POST", "/upload", &[], &vec![b'a'; 512]);
    assert_eq!(r.status, 200);
    assert_eq!(
        o.count("/upload"),
        1 + o
            .requests("/upload")
            .iter()
            .filter(|r| r.method != "POST")
            .count()
    );
}

#[test]
fn malformed_requests_are_400() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    let wait = Duration::from_secs(5);
    let cases: &[&[u8]] = &[
        b"GET /../etc/passwd HTTP/1.1\r\nhost: example.test\r\n\r\n",
        b"GET /a/%2e%2e/%2e%2e/etc HTTP/1.1\r\nhost: example.test\r\n\r\n",
        b"GET /a%zz HTTP/1.1\r\nhost: example.test\r\n\r\n",
        b"GET /a%00b HTTP/1.1\r\nhost: example.test\r\n\r\n",
        b"GET /a HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nhost: example.test\r\nhost: other.test\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /a HTTP/1.1\r\nhost: example.test\r\nno colon here\r\n\r\n",
        b"POST /a HTTP/1.1\r\nhost: example.test\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nhost: example.test\r\ncontent-length: abc\r\n\r\n",
    ];
    for c in cases {
        let text = raw(edge.http, c, wait);
        assert_eq!(
            raw_status(&text),
            400,
            "{:?} → {text}",
            String::from_utf8_lossy(c)
        );
    }
    assert!(
        o.seen.lock().unwrap().is_empty(),
        "no bad request reached the origin"
    );
}

#[test]
fn slow_headers_time_out() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    let mut c = TcpStream::connect(edge.http).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let t0 = Instant::now();
    c.write_all(b"GET /slowloris HTTP/1.1\r\nhost: example.test\r\n")
        .unwrap();
    // Never finish the head: the edge answers 408 (or closes) after header_read_timeout.
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(took >= Duration::from_millis(800), "closed after {took:?}");
    let text = String::from_utf8_lossy(&out);
    assert!(text.is_empty() || raw_status(&text) == 408, "{text}");
    assert_eq!(o.count("/slowloris"), 0);
}

#[test]
fn connection_limit_holds_extra_clients_until_one_leaves() {
    let o = origin();
    let router = FakeRouter::start();
    let http = "max_connections = 2\nkeep_alive = \"30s\"";
    let report = format!(
        "[report]\nrouters = [\"http://{}\"]\ninterval = \"100ms\"",
        router.addr
    );
    let mut cfg = ops_config(&o.url(), http, "", &report, "");
    cfg.http.workers = 1; // max_connections is per worker
    let edge = Edge::start(cfg);
    let keepalive_get = |c: &mut TcpStream| -> u16 {
        c.write_all(b"GET /k HTTP/1.1\r\nhost: example.test\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).unwrap_or(0);
        raw_status(&String::from_utf8_lossy(&buf[..n]))
    };
    let mut a = TcpStream::connect(edge.http).unwrap();
    let mut b = TcpStream::connect(edge.http).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(keepalive_get(&mut a), 200);
    assert_eq!(keepalive_get(&mut b), 200);
    // A third client: accepted by the kernel, but not served while two are open.
    let mut c = TcpStream::connect(edge.http).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    c.write_all(b"GET /k HTTP/1.1\r\nhost: example.test\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 4096];
    assert!(
        c.read(&mut buf).is_err(),
        "third connection served over the limit"
    );
    // The client side is full, but health probes and reports keep working.
    let h = request(edge.admin, "GET", "/healthz", &[("host", "admin")], b"").unwrap();
    assert_eq!(h.status, 200);
    let seen = router.reports().len();
    eventually(Duration::from_secs(3), || {
        (router.reports().len() >= seen + 3).then_some(())
    })
    .expect("reports keep flowing while the client listener is full");
    // One leaves: the third is served.
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(raw_status(&String::from_utf8_lossy(&buf[..n])), 200);
}

#[test]
fn equivalent_paths_share_one_cache_entry() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    assert_eq!(edge.get("/n/b~c", &[]).x_cache(), "MISS");
    for p in ["/n/./b~c", "/n/x/../b~c", "/n/%62%7Ec", "/n/b%7ec"] {
        let r = edge.get(p, &[]);
        assert_eq!(r.status, 200, "{p}");
        assert_eq!(r.x_cache(), "HIT", "{p} shares the key of /n/b~c");
    }
    assert_eq!(o.seen.lock().unwrap().len(), 1);
    // Encoded slash is not a separator: a different resource.
    assert_eq!(edge.get("/n%2Fb~c", &[]).x_cache(), "MISS");
}

#[test]
fn headers_outside_the_key_do_not_reach_the_origin() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), HTTP, "", "", ""));
    let r = edge.get(
        "/poison",
        &[
            ("x-forwarded-host", "evil.example"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
        ],
    );
    assert_eq!(r.status, 200);
    let seen = o.requests("/poison").pop().unwrap();
    for h in [
        "x-forwarded-host",
        "x-original-url",
        "x-http-method-override",
    ] {
        assert!(!seen.headers.contains_key(h), "{h} forwarded to the origin");
    }
    // Everyone else gets the same stored object.
    assert_eq!(edge.get("/poison", &[]).x_cache(), "HIT");
}
