//! Abuse resistance of the DNS listeners (issue 17), against a real running router:
//! NOTIMP for opcodes other than QUERY without RD/CD (raw packets, UDP and TCP), a bounded
//! `qtype` metric label, and the TCP limits per client and per connection lifetime.

mod dns_support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;
use socket2::{Domain, Protocol, Socket, Type};

use dns_support::*;

fn server_with(extra: &str) -> Server {
    let (up, _) = healthy_edge();
    let text = config_text(&up, &up, &up).replacen("[dns]\n", &format!("[dns]\n{extra}"), 1);
    Server::start(&text)
}

/// A raw query: id 0xbeef, the given flags bytes, one question `static.cdn.example.test`.
fn raw(flags: [u8; 2], qtype: u16) -> Vec<u8> {
    let mut p = vec![0xbe, 0xef, flags[0], flags[1], 0, 1, 0, 0, 0, 0, 0, 0];
    p.extend_from_slice(b"\x06static\x03cdn\x07example\x04test\x00");
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    p
}

/// A blocking HTTP GET on the admin listener; the body.
fn http_get(addr: SocketAddr, path: &str) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn other_opcodes_get_notimp_without_rd_and_cd() {
    let s = server_with("");
    // Opcodes STATUS (2), NOTIFY (4), UPDATE (5), and 15, each with RD, CD and AD set.
    for opcode in [2u8, 4, 5, 15] {
        let q = raw([(opcode << 3) | 0x01, 0x30], 1);
        let udp = udp_raw(s.dns, &q);
        let mut t = TcpStream::connect(s.dns).unwrap();
        t.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write_frame(&mut t, &q);
        let tcp = read_frame(&mut t).expect("tcp answer");
        for (how, r) in [("udp", &udp), ("tcp", &tcp)] {
            assert_eq!(&r[..2], &[0xbe, 0xef], "{how} {opcode}: id");
            assert_eq!(
                r[2],
                0x80 | (opcode << 3),
                "{how} opcode {opcode}: QR and the opcode only (RD, AA, TC clear)"
            );
            assert_eq!(r[3], 0x04, "{how} opcode {opcode}: RA/AD/CD clear, NOTIMP");
        }
    }
    // A QUERY keeps RD and CD (they are defined for it).
    let r = udp_raw(s.dns, &raw([0x01, 0x10], 1));
    assert_eq!(r[2] & 0x01, 0x01, "RD echoed for QUERY");
    assert_eq!(r[3] & 0x10, 0x10, "CD echoed for QUERY");
    assert_eq!(r[3] & 0x0f, 0, "NOERROR");
}

#[test]
fn the_qtype_label_takes_known_types_and_other() {
    let s = server_with("");
    let unusual = [65000u16, 65001, 1234, 4321, 99];
    for t in unusual {
        let r = udp_raw(s.dns, &raw([0, 0], t));
        assert_eq!(&r[..2], &[0xbe, 0xef]);
    }
    let r = udp(s.dns, &query("static.cdn.example.test", RecordType::A));
    assert_eq!(r.answers.len(), 1);
    let text = http_get(s.admin, "/metrics");
    let known: Vec<&str> = cdn_dns_router::querylog::QTYPE_LABELS
        .iter()
        .map(|(_, l)| *l)
        .collect();
    let mut labels = Vec::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("cdn_dns_queries_total{"))
    {
        let at = line.find("qtype=\"").expect("qtype label") + 7;
        let label = &line[at..at + line[at..].find('"').unwrap()];
        labels.push(label.to_string());
        assert!(
            label == "other" || known.contains(&label),
            "unbounded qtype label {label:?} in {line}"
        );
    }
    assert!(labels.iter().any(|l| l == "other"), "{text}");
    assert!(labels.iter().any(|l| l == "A"), "{text}");
}

/// A TCP connection to `to` from the loopback address `from`.
fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&local.into()).unwrap();
    sock.connect(&to.into()).unwrap();
    let s: TcpStream = sock.into();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s
}

/// One query on an open connection: answered or not.
fn answers(s: &mut TcpStream) -> bool {
    let q = query("static.cdn.example.test", RecordType::A);
    use std::io::Write;
    let mut f = (q.to_vec().unwrap().len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(&q.to_vec().unwrap());
    if s.write_all(&f).is_err() {
        return false;
    }
    read_frame(s).is_some()
}

#[test]
fn tcp_connections_per_client_are_capped() {
    let s = server_with("tcp_max_connections_per_client = 2\n");
    let mut a = connect_from("127.0.0.1", s.dns);
    let mut b = connect_from("127.0.0.1", s.dns);
    assert!(answers(&mut a) && answers(&mut b));
    // The third from the same address is closed at once.
    let mut c = connect_from("127.0.0.1", s.dns);
    assert!(
        !answers(&mut c),
        "a third connection from 127.0.0.1 was served"
    );
    // Another client is served.
    let mut d = connect_from("127.0.0.2", s.dns);
    assert!(answers(&mut d), "127.0.0.2 was refused");
    // Closing one frees its place.
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut e = connect_from("127.0.0.1", s.dns);
        if answers(&mut e) {
            break;
        }
        assert!(Instant::now() < deadline, "the freed place was not reused");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(answers(&mut b), "the older connection still works");
    let text = http_get(s.admin, "/metrics");
    assert!(
        text.contains("cdn_dns_tcp_limited_total{reason=\"per_client\"}"),
        "{text}"
    );
}

#[test]
fn a_busy_tcp_connection_is_closed_at_its_lifetime() {
    // Idle timeout 400 ms (the base config); a query every 100 ms keeps the connection busy.
    let s = server_with("tcp_max_connection_lifetime = \"1s\"\n");
    let mut c = connect_from("127.0.0.1", s.dns);
    let start = Instant::now();
    let limit = Duration::from_secs(10);
    while answers(&mut c) {
        assert!(start.elapsed() < limit, "still open after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let lived = start.elapsed();
    assert!(
        lived >= Duration::from_millis(900),
        "closed after {lived:?}, before its lifetime"
    );
    let text = http_get(s.admin, "/metrics");
    assert!(
        text.contains("cdn_dns_tcp_limited_total{reason=\"lifetime\"}"),
        "{text}"
    );
}
