//! The HTTP/1.1 write path: large body pieces are written from their own buffers after the
//! response head (vectored), small ones are copied into the connection's write buffer
//! (vendored actix-http, `h1/dispatcher.rs`, marked "cdn"). Pipelined responses of every
//! kind, read by a slow client with a small receive buffer (so the edge's writes stop half
//! way, again and again), must arrive whole and in order.

mod protocol_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use protocol_support::*;

/// A body of `len` bytes that says where each byte is (no two 4-byte words at different
/// offsets below 4 GiB are equal), so a reordered or repeated piece cannot go unnoticed.
fn body(len: usize, salt: u8) -> Vec<u8> {
    (0..len.div_ceil(4))
        .flat_map(|i| ((i as u32) ^ (u32::from(salt) << 24)).to_be_bytes())
        .take(len)
        .collect()
}

const SIZES: [(&str, usize, u8); 4] = [
    ("/big", 300 * 1024 + 7, 1),
    ("/mid", 20 * 1024 + 3, 2),
    ("/small", 1000, 3),
    ("/odd", 64 * 1024, 4),
];

fn origin() -> RawOrigin {
    RawOrigin::start(|seen| {
        let Some(&(_, len, salt)) = SIZES.iter().find(|(p, _, _)| *p == seen.target) else {
            return resp("404 Not Found", &[], Some(b""));
        };
        resp(
            "200 OK",
            &[("cache-control", "max-age=60")],
            Some(&body(len, salt)),
        )
    })
}

/// A connection whose receive buffer is small, so the edge's socket fills up.
fn slow_conn(addr: std::net::SocketAddr) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Read what the edge sends, in small reads with pauses, until at least `want` bytes arrived
/// and then nothing more for 300 ms.
fn read_slowly(s: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = [0u8; 2048];
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut reads = 0u32;
    while Instant::now() < deadline {
        if out.len() >= want {
            s.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
        }
        match s.read(&mut b) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&b[..n]),
            Err(e)
                if out.len() >= want
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
            {
                break
            }
            Err(e) => panic!(
                "read after {} bytes: {e}: {:?}",
                out.len(),
                String::from_utf8_lossy(&out[..out.len().min(600)])
            ),
        }
        reads += 1;
        if reads.is_multiple_of(16) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out
}

/// Split `raw` into responses (head, body) by Content-Length; `head_only[i]`: the i-th was
/// an answer to HEAD.
fn split(mut raw: &[u8], head_only: &[bool]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for &head in head_only {
        let end = find(raw, b"\r\n\r\n").expect("a response head");
        let text = String::from_utf8_lossy(&raw[..end]).to_string();
        let len: usize = text
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .expect("content-length");
        raw = &raw[end + 4..];
        let n = if head { 0 } else { len };
        assert!(raw.len() >= n, "body of {len} bytes cut at {}", raw.len());
        out.push((text, raw[..n].to_vec()));
        raw = &raw[n..];
    }
    assert!(
        raw.is_empty(),
        "{} stray bytes after the responses",
        raw.len()
    );
    out
}

#[test]
fn pipelined_responses_arrive_whole_and_in_order_to_a_slow_reader() {
    let o = origin();
    let e = Edge::start(config(&o.url(), "", "", ""));
    // GET every object, then HEAD the big one, then GET the big one again: misses first,
    // then hits (from memory and, for /big, chunk by chunk).
    let plan: Vec<(&str, &str)> = SIZES
        .iter()
        .map(|(p, _, _)| ("GET", *p))
        .chain([("HEAD", "/big"), ("GET", "/big"), ("GET", "/small")])
        // More than the kernel buffers on both ends hold (tcp_wmem's 4 MiB maximum), so
        // the edge's writes are refused part way (EAGAIN) many times.
        .chain((0..20).flat_map(|_| [("GET", "/big"), ("GET", "/mid"), ("GET", "/odd")]))
        .collect();
    for round in 0..2 {
        let mut s = slow_conn(e.http);
        let mut req = String::new();
        for (m, p) in &plan {
            req.push_str(&format!("{m} {p} HTTP/1.1\r\nhost: example.test\r\n\r\n"));
        }
        s.write_all(req.as_bytes()).unwrap();
        // Let the edge fill the socket before reading anything.
        std::thread::sleep(Duration::from_millis(100));
        let want: usize = plan
            .iter()
            .map(|(m, p)| {
                let len = SIZES.iter().find(|(q, _, _)| q == p).unwrap().1;
                if *m == "HEAD" {
                    0
                } else {
                    len
                }
            })
            .sum();
        let raw = read_slowly(&mut s, want);
        let heads: Vec<bool> = plan.iter().map(|(m, _)| *m == "HEAD").collect();
        let got = split(&raw, &heads);
        for ((m, p), (head, b)) in plan.iter().zip(&got) {
            let &(_, len, salt) = SIZES.iter().find(|(q, _, _)| q == p).unwrap();
            assert!(
                head.starts_with("HTTP/1.1 200"),
                "round {round} {m} {p}: {head}"
            );
            if *m == "HEAD" {
                assert!(b.is_empty());
            } else {
                assert_eq!(b.len(), len, "round {round} {m} {p}");
                assert!(b == &body(len, salt), "round {round} {m} {p}: body differs");
            }
        }
    }
    // Each object was fetched from the origin once.
    for (p, _, _) in SIZES {
        assert_eq!(o.count(p), 1, "{p}");
    }
}
