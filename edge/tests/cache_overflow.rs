//! A body without `Content-Length` that grows past `max_object_size`: streamed to every
//! client of the fill to its end, not stored, and read from the origin no faster than the
//! slowest client reads it (writer.rs overflow).

mod cache_support;
use cache_support::*;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// An origin answering every path with `body`, chunked (no Content-Length), storable.
fn chunked_origin(
    body: bytes::Bytes,
    piece: usize,
    piece_delay: Duration,
    head_delay: Duration,
    written: Option<Arc<AtomicUsize>>,
) -> Origin {
    Origin::start(move |_, _| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=600")], body.clone());
        r.chunked = true;
        r.piece = piece;
        r.piece_delay = piece_delay;
        r.head_delay = head_delay;
        r.written = written.clone();
        r
    })
}

/// `r` is a complete answer carrying exactly `body`.
fn assert_whole(r: &Resp, body: &[u8]) {
    assert!(!r.truncated, "{} of {} bytes", r.body.len(), body.len());
    assert!(
        r.body[..] == body[..],
        "{} of {} bytes",
        r.body.len(),
        body.len()
    );
}

#[test]
fn a_chunked_body_past_max_object_size_reaches_the_client_whole_and_is_not_stored() {
    let body = bytes::Bytes::from(body_of(3 * MIB, 31));
    let origin = chunked_origin(
        body.clone(),
        16 * 1024,
        Duration::ZERO,
        Duration::ZERO,
        None,
    );
    let edge = Edge::start(config(&origin.url(), "max_object_size = \"1 MiB\"", ""));
    let before = sample(&metrics_page(edge.admin), "cdn_edge_fill_overflows_total").unwrap_or(0.0);
    let r = edge.get("/grow", &[]);
    assert_eq!((r.status, r.x_cache()), (200, "MISS"));
    assert_whole(&r, &body);
    // Not stored: the next request is a miss that asks the origin again, and gets it whole —
    // streamed without storing anything (hit-for-miss remembers the overflow), not stored up
    // to the limit again and dropped.
    let r = edge.get("/grow", &[]);
    assert_eq!(r.x_cache(), "MISS", "{}", r.cache_status());
    assert!(
        r.cache_status().contains("detail=too-large"),
        "{}",
        r.cache_status()
    );
    assert!(!r.truncated && r.body[..] == body[..]);
    assert_eq!(origin.count("/grow"), 2);
    let after = sample(&metrics_page(edge.admin), "cdn_edge_fill_overflows_total").unwrap_or(0.0);
    assert_eq!(after, before + 1.0, "one overflow, then streamed unstored");
    // A body within the limit is still stored.
    origin.set(|_, _| {
        let mut r = OriginResp::new(
            200,
            &[("cache-control", "max-age=600")],
            body_of(500_000, 3),
        );
        r.chunked = true;
        r.piece = 16 * 1024;
        r
    });
    assert!(edge.get("/small", &[]).body == body_of(500_000, 3));
    assert_eq!(edge.get("/small", &[]).x_cache(), "HIT");
}

#[test]
fn coalesced_clients_of_an_overflowing_fill_all_get_every_byte() {
    let body = bytes::Bytes::from(body_of(3 * MIB, 32));
    // The head waits so every client joins the one fill; the body takes ~1 s.
    let origin = chunked_origin(
        body.clone(),
        16 * 1024,
        Duration::from_millis(5),
        Duration::from_millis(400),
        None,
    );
    let edge = Edge::start(config(&origin.url(), "max_object_size = \"1 MiB\"", ""));
    let addr = edge.http;
    let clients: Vec<_> = (0..5)
        .map(|_| {
            std::thread::spawn(move || {
                request(addr, "GET", "/shared", &[("host", "example.test")], b"").unwrap()
            })
        })
        .collect();
    for c in clients {
        let r = c.join().unwrap();
        assert_eq!(r.status, 200);
        assert_whole(&r, &body);
    }
    assert_eq!(origin.count("/shared"), 1, "one fill for all five clients");
    assert_ne!(edge.get("/shared", &[]).x_cache(), "HIT");
    assert_eq!(origin.count("/shared"), 2);
}

#[test]
fn a_slow_client_gets_every_byte_and_the_origin_is_not_read_far_ahead_of_it() {
    let size = 64 * MIB;
    let body = bytes::Bytes::from(body_of(size, 33));
    let written = Arc::new(AtomicUsize::new(0));
    let origin = chunked_origin(
        body.clone(),
        16 * 1024,
        Duration::ZERO,
        Duration::ZERO,
        Some(written.clone()),
    );
    // The client pauses 1.5 s below: far from the idle cut-off (idle_timeout), even on a
    // loaded machine.
    let edge = Edge::start(config(
        &origin.url(),
        "max_object_size = \"1 MiB\"\nidle_timeout = \"15s\"",
        "",
    ));
    // A small receive buffer, so what the client has not read stays in the edge.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(64 * 1024).unwrap();
    sock.connect(&edge.http.into()).unwrap();
    let mut c: std::net::TcpStream = sock.into();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(b"GET /slow HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut raw: Vec<u8> = Vec::with_capacity(size + MIB);
    let mut buf = [0u8; 4096];
    // Slowly: 2 MiB in 4 KiB reads, 2 ms apart (about a second).
    let slow_until = Instant::now() + Duration::from_secs(30);
    while raw.len() < 2 * MIB && Instant::now() < slow_until {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        std::thread::sleep(Duration::from_millis(2));
    }
    // Time for the edge to read the origin ahead, had it nothing holding it back.
    std::thread::sleep(Duration::from_millis(1500));
    let ahead = written.load(Ordering::SeqCst).saturating_sub(raw.len());
    eprintln!(
        "client read {} bytes, origin wrote {} bytes (ahead {} MiB)",
        raw.len(),
        written.load(Ordering::SeqCst),
        ahead / MIB
    );
    // The fill holds at most a 4 MiB window; socket buffers on either side hold the rest.
    assert!(
        ahead < 32 * MIB,
        "origin read {} MiB ahead of the slow client",
        ahead / MIB
    );
    c.read_to_end(&mut raw).unwrap();
    let r = parse_response(&raw, false).unwrap();
    assert_eq!(r.status, 200);
    assert!(!r.truncated, "{} of {size} bytes", r.body.len());
    assert!(r.body[..] == body[..], "{} of {size} bytes", r.body.len());
    assert_ne!(edge.get("/slow", &[]).x_cache(), "HIT");
}
