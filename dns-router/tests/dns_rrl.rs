//! Response-rate limiting (issue 17) against a real running router: a flood from one source
//! address is limited (most answers dropped, every `slip`-th sent empty with TC=1) while a
//! source in another /24 is still answered in full, and both are counted in
//! `cdn_dns_rrl_total`.

mod dns_support;

use std::io::Read;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use dns_support::*;

const RRL: &str = "\n[dns.rrl]\nexempt_loopback = false\nresponses_per_second = 5\n\
                   errors_per_second = 5\nwindow = \"1s\"\nslip = 2\n";

fn server(rrl: &str) -> Server {
    let (up, _) = healthy_edge();
    Server::start(&format!("{}{rrl}", config_text(&up, &up, &up)))
}

/// Send `n` copies of `name`/`qtype` (ids 1..=n) from `from`, then collect answers until none
/// comes for 500 ms. Returns (full answers, TC=1 answers).
fn flood(from: &str, to: SocketAddr, name: &str, qtype: RecordType, n: u16) -> (usize, usize) {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    let mut m = query(name, qtype);
    for id in 1..=n {
        m.metadata.id = id;
        s.send_to(&m.to_vec().unwrap(), to).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let (mut full, mut tc) = (0, 0);
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = s.recv_from(&mut buf) {
        assert!(len >= 12);
        if buf[2] & 0x02 != 0 {
            assert_eq!(&buf[6..12], &[0; 6], "a slipped answer carries no records");
            tc += 1;
        } else {
            full += 1;
        }
    }
    (full, tc)
}

fn metrics(admin: SocketAddr) -> String {
    use std::io::Write;
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

fn counter(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_flood_from_one_source_is_limited_while_another_is_answered() {
    let s = server(RRL);
    let started = Instant::now();
    let (full, tc) = flood(
        "127.0.0.2",
        s.dns,
        "static.cdn.example.test",
        RecordType::A,
        200,
    );
    let secs = started.elapsed().as_secs_f64();
    // Burst 5, refilled at 5/s while the flood ran.
    let allowed = 5 + (5.0 * secs).ceil() as usize + 1;
    assert!(full >= 5, "the first answers go out: {full}");
    assert!(
        full <= allowed,
        "{full} full answers, at most {allowed} allowed"
    );
    let limited = 200 - full;
    // slip = 2: every second limited answer is sent with TC=1, the others dropped.
    assert!(
        tc.abs_diff(limited / 2) <= 2,
        "{tc} truncated of {limited} limited"
    );

    // Meanwhile a source in another /24 gets full answers (its own buckets).
    for _ in 0..3 {
        let r = udp_from("127.0.1.2", s.dns, "static.cdn.example.test");
        assert!(!r.1, "TC for the other source");
        assert_eq!(r.0, 1, "answer count for the other source");
    }
    // Another question from the flooding network has its own bucket too.
    let r = udp_from("127.0.0.2", s.dns, "alias.cdn.example.test");
    assert!(!r.1 && r.0 >= 1, "{r:?}");

    // NXDOMAIN shares one bucket per network, whatever the name.
    let s2 = UdpSocket::bind("127.0.2.2:0").unwrap();
    s2.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    for i in 0..40u16 {
        let mut m = query(&format!("nope{i}.cdn.example.test"), RecordType::A);
        m.metadata.id = i + 1;
        s2.send_to(&m.to_vec().unwrap(), s.dns).unwrap();
    }
    let mut got = 0;
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = s2.recv_from(&mut buf) {
        if len >= 12 && buf[2] & 0x02 == 0 {
            assert_eq!(buf[3] & 0x0f, 3, "NXDOMAIN");
            got += 1;
        }
    }
    assert!((5..=8).contains(&got), "{got} NXDOMAIN answers of 40");

    let text = metrics(s.admin);
    let dropped = counter(&text, "cdn_dns_rrl_total{action=\"dropped\"}");
    let slipped = counter(&text, "cdn_dns_rrl_total{action=\"slipped\"}");
    assert!(dropped >= (limited / 2) as u64 - 2, "{text}");
    assert!(slipped >= tc as u64, "{text}");
}

/// One UDP query from `from`: (answer count, TC).
fn udp_from(from: &str, to: SocketAddr, name: &str) -> (u16, bool) {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let m = query(name, RecordType::A);
    s.send_to(&m.to_vec().unwrap(), to).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = s.recv_from(&mut buf).expect("an answer");
    assert!(len >= 12);
    (u16::from_be_bytes([buf[6], buf[7]]), buf[2] & 0x02 != 0)
}

#[test]
fn limiting_can_be_turned_off_and_loopback_is_exempt_by_default() {
    for rrl in [
        "\n[dns.rrl]\nenabled = false\nexempt_loopback = false\nresponses_per_second = 1\n",
        "\n[dns.rrl]\nresponses_per_second = 1\n",
    ] {
        let s = server(rrl);
        let (full, tc) = flood(
            "127.0.0.3",
            s.dns,
            "static.cdn.example.test",
            RecordType::A,
            50,
        );
        assert_eq!((full, tc), (50, 0), "{rrl}");
    }
}

/// Send `n` queries (ids 1..=n) from `from`, the i-th asking `ask(i)`, then count the full
/// answers until none comes for 500 ms, checking each is `rcode` with no answer records.
fn flood_varied(from: &str, to: SocketAddr, n: u16, ask: impl Fn(u16) -> (String, u16)) -> usize {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    for id in 1..=n {
        let (name, qtype) = ask(id);
        let mut m = query(&name, RecordType::from(qtype));
        m.metadata.id = id;
        s.send_to(&m.to_vec().unwrap(), to).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut full = 0;
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = s.recv_from(&mut buf) {
        assert!(len >= 12);
        if buf[2] & 0x02 == 0 {
            assert_eq!(buf[3] & 0x0f, 0, "NOERROR");
            assert_eq!(&buf[6..8], &[0, 0], "no answer records");
            full += 1;
        }
    }
    full
}

/// Knot/BIND classes: NODATA is limited per zone whatever the type (and name), a referral per
/// delegation point whatever the name below it — varying them buys no fresh bucket.
#[test]
fn nodata_with_varying_types_and_referrals_with_varying_names_are_limited() {
    let s = server(RRL);
    let started = Instant::now();
    let nodata = flood_varied("127.0.5.2", s.dns, 60, |i| {
        let name = if i % 2 == 0 { "static" } else { "ns1" };
        (format!("{name}.cdn.example.test"), 1000 + i)
    });
    let referrals = flood_varied("127.0.6.2", s.dns, 60, |i| {
        (format!("r{i}.sub.cdn.example.test"), 1)
    });
    let allowed = 5 + (5.0 * started.elapsed().as_secs_f64()).ceil() as usize + 1;
    assert!(
        (5..=allowed).contains(&nodata),
        "{nodata} NODATA answers of 60 (at most {allowed})"
    );
    assert!(
        (5..=allowed).contains(&referrals),
        "{referrals} referrals of 60 (at most {allowed})"
    );
    // Another network is still answered.
    let other = UdpSocket::bind("127.0.7.2:0").unwrap();
    other
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let m = query("static.cdn.example.test", RecordType::from(1001));
    other.send_to(&m.to_vec().unwrap(), s.dns).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = other.recv_from(&mut buf).expect("an answer");
    assert!(len >= 12 && buf[2] & 0x02 == 0, "a full answer");
    assert_eq!(&buf[8..10], &[0, 1], "NODATA with the SOA");
}
