//! Slow clients (issue 13 point 9): a request body that does not arrive within
//! `http.body_read_timeout` gets 408, and a client that stops reading its response is
//! disconnected after `http.send_timeout` (TCP_USER_TIMEOUT) instead of holding it forever.

mod protocol_support;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use protocol_support::{config, resp, Conn, Edge, RawOrigin};

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408() {
    let origin = RawOrigin::start(|_| resp("200 OK", &[], Some(b"ok")));
    let edge = Edge::start(config(&origin.url(), r#"body_read_timeout = "1s""#, "", ""));
    let mut c = edge.conn();
    c.raw(b"POST /upload HTTP/1.1\r\nhost: example.test\r\ncontent-length: 100\r\n\r\n0123456789")
        .unwrap();
    let t0 = Instant::now();
    let r = c.read(false).unwrap();
    assert_eq!(r.status, 408, "{r:?}");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert_eq!(
        origin.count("/upload"),
        0,
        "nothing half-read reaches the origin"
    );
    // A body sent in time still passes.
    let mut c = edge.conn();
    c.send("POST", "/upload", &[], &[b'x'; 100]).unwrap();
    assert_eq!(c.read(false).unwrap().status, 200);
}

#[test]
fn a_client_that_stops_reading_is_disconnected() {
    const LEN: usize = 48 << 20;
    let origin = RawOrigin::start(|_| {
        let body = vec![b'z'; LEN];
        resp("200 OK", &[("cache-control", "no-store")], Some(&body))
    });
    let edge = Edge::start(config(&origin.url(), r#"send_timeout = "1s""#, "", ""));
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&edge.http.into()).unwrap();
    let mut s: std::net::TcpStream = sock.into();
    s.write_all(b"GET /big HTTP/1.1\r\nhost: example.test\r\n\r\n")
        .unwrap();
    // Do not read for a while: the window closes and stays closed past the send timeout.
    std::thread::sleep(Duration::from_secs(8));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut b = vec![0u8; 1 << 16];
    let outcome = loop {
        match s.read(&mut b) {
            Ok(0) => break "eof",
            Ok(n) => got += n,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break "still open"
            }
            Err(_) => break "reset",
        }
    };
    assert_ne!(outcome, "still open", "read {got} bytes");
    assert!(got < LEN, "{outcome} after {got} of {LEN} bytes");
    // The edge still serves others.
    let mut c: Conn = edge.conn();
    c.send("POST", "/small", &[], b"x").unwrap();
    assert_eq!(c.read(false).unwrap().status, 200);
}
