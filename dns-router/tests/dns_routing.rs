//! Service answers follow the live health state (probes against real listeners), the
//! all-down policies, and the query log.

mod dns_support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use cdn_tests::harness::scaled;
use dns_support::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn eu_client(name: &str) -> Message {
    with_edns(query(name, RecordType::A), Some("198.51.100.0/24"))
}

/// Poll until `f` holds (probes run every 50 ms; fall = 1).
fn eventually(s: &Server, what: &str, f: impl Fn(&Message) -> bool, m: &Message) -> Message {
    let deadline = Instant::now() + scaled(Duration::from_secs(10));
    loop {
        let r = udp(s.dns, m);
        if f(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "{what}: last answer {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_down_edge_is_skipped_for_the_next_nearest() {
    let (up, _) = healthy_edge();
    let dead = dead_edge();
    let s = Server::start(&config_text(&up, &dead, &up));
    // eu-west's probe fails: the Irish client moves to us-east (nearer than Tokyo).
    let r = eventually(
        &s,
        "eu client moves to us-east",
        |r| addrs(r) == vec![ip("192.0.2.10")],
        &eu_client("www.cdn.example.test"),
    );
    assert!(r.metadata.authoritative);
    // A client of a healthy region is unaffected.
    let r = udp(
        s.dns,
        &with_edns(
            query("www.cdn.example.test", RecordType::A),
            Some("203.0.113.0/24"),
        ),
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.30")]);
}

#[test]
fn all_down_policies() {
    let dead = dead_edge();
    let log = tempfile::tempdir().unwrap();
    let path = log.path().join("queries.jsonl");
    let text = config_text(&dead, &dead, &dead).replace(
        "tcp_idle_timeout = \"400ms\"",
        &format!(
            "tcp_idle_timeout = \"400ms\"\nquery_log = \"{}\"",
            path.display()
        ),
    );
    let s = Server::start(&text);
    // `none`: NODATA with the SOA once everything is down.
    let r = eventually(
        &s,
        "strict service answers nothing",
        |r| r.answers.is_empty(),
        &eu_client("strict.cdn.example.test"),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    // `nearest` (default): still the nearest edge.
    let r = udp(s.dns, &eu_client("www.cdn.example.test"));
    assert_eq!(addrs(&r), vec![ip("192.0.2.20")]);

    // The query log has a line for it, with the rule that fired.
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("\"www.cdn.example.test.\""));
        if let Some(line) = line {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["rule"], "all_down_nearest");
            assert_eq!(v["edges"][0], "euw1");
            assert_eq!(v["region"], "eu-west");
            assert_eq!(v["ecs"], "198.51.100.0/24");
            assert_eq!(v["transport"], "udp");
            break;
        }
        assert!(Instant::now() < deadline, "no query log line: {text}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_ipv4_mapped_ecs_address_is_located_as_ipv4_with_an_ipv6_scope() {
    // `::ffff:198.51.100.0/120` is the IPv4 client 198.51.100.0/24 (geo::ecs): located as
    // IPv4 (the eu-west network) under the IPv4 cap, scope echoed as an IPv6 length (96 + 24).
    let (up, _) = healthy_edge();
    let s = Server::start(&config_text(&up, &up, &up));
    let m = with_edns(
        query("www.cdn.example.test", RecordType::A),
        Some("::ffff:198.51.100.0/120"),
    );
    let r = eventually(
        &s,
        "eu-west answered",
        |r| addrs(r) == vec![ip("192.0.2.20")],
        &m,
    );
    let (source, scope, _) = ecs_of(&r).expect("ECS echoed");
    assert_eq!((source, scope), (120, 120), "{r:?}");
    // The plain IPv4 form gets the same edge.
    let v4 = udp(s.dns, &eu_client("www.cdn.example.test"));
    assert_eq!(addrs(&v4), vec![ip("192.0.2.20")]);
}
