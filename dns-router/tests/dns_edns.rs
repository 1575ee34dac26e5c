//! EDNS0 (RFC 6891), truncation and TCP (RFC 7766), Client Subnet (RFC 7871) over real
//! sockets.

mod dns_support;

use std::io::Write;
use std::net::{IpAddr, TcpStream};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::RecordType;

use dns_support::*;

fn server() -> Server {
    let (up, _) = healthy_edge();
    Server::start(&config_text(&up, &up, &up))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn opt_only_when_asked_with_our_payload_size() {
    let s = server();
    let r = udp(s.dns, &query("static.cdn.example.test", RecordType::A));
    assert!(r.edns.is_none());
    let r = udp(
        s.dns,
        &with_edns(query("static.cdn.example.test", RecordType::A), None),
    );
    let e = r.edns.clone().expect("OPT echoed");
    assert_eq!(e.max_payload(), 1232);
    assert_eq!(e.version(), 0);
    assert!(
        ecs_of(&r).is_none(),
        "no ECS in a response whose query had none"
    );
    // Negative answers carry it too.
    let r = udp(
        s.dns,
        &with_edns(query("nx.cdn.example.test", RecordType::A), None),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.edns.is_some());
}

/// The UDP fast path over IPv6 (its own socket address type): answers, with ECS, and the
/// answer goes back to the querying address.
#[test]
fn answers_over_ipv6_udp() {
    let (up, _) = healthy_edge();
    let text = config_text(&up, &up, &up)
        .replace(r#"listen = ["127.0.0.1:0"]"#, r#"listen = ["[::1]:0"]"#);
    assert!(text.contains("[::1]:0"), "config has the DNS listener");
    let s = Server::start(&text);
    assert!(s.dns.is_ipv6());
    let r = udp(
        s.dns,
        &with_edns(
            query("www.cdn.example.test", RecordType::A),
            Some("81.2.69.0/24"),
        ),
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(!addrs(&r).is_empty(), "an edge is answered over IPv6");
    let r = udp(s.dns, &query("static.cdn.example.test", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

#[test]
fn badvers_two_opts_and_unknown_options() {
    let s = server();
    let mut m = with_edns(query("static.cdn.example.test", RecordType::A), None);
    m.edns.as_mut().unwrap().set_version(1);
    let r = udp(s.dns, &m);
    assert_eq!(
        u16::from(r.metadata.response_code),
        16,
        "BADVERS (16; hickory names it BADSIG)"
    );
    assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    assert!(r.answers.is_empty());

    // Two OPT records: hand-made (hickory will not encode it).
    let mut p = query("static.cdn.example.test", RecordType::A)
        .to_vec()
        .unwrap();
    p[11] = 2;
    for _ in 0..2 {
        p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    let r = udp_raw(s.dns, &p);
    assert_eq!(r[3] & 0x0f, 1, "FORMERR");

    // An unknown option is ignored.
    let mut m = with_edns(query("static.cdn.example.test", RecordType::A), None);
    m.edns
        .as_mut()
        .unwrap()
        .options_mut()
        .insert(EdnsOption::Unknown(65001, vec![1, 2, 3]));
    let r = udp(s.dns, &m);
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(addrs(&r), vec![ip("192.0.2.99")]);
}

#[test]
fn too_big_for_udp_is_truncated_and_whole_over_tcp() {
    let s = server();
    for m in [
        query("big.cdn.example.test", RecordType::TXT),
        with_edns(query("big.cdn.example.test", RecordType::TXT), None),
    ] {
        let r = udp(s.dns, &m);
        assert!(r.metadata.truncation, "TC=1");
        assert!(r.answers.is_empty());
        assert_eq!(r.queries.len(), 1);
        let r = tcp(s.dns, &m);
        assert!(!r.metadata.truncation);
        assert_eq!(r.answers.len(), 10);
    }
}

#[test]
fn tcp_pipelining_and_idle_timeout() {
    let s = server();
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let names = [
        "static.cdn.example.test",
        "nx.cdn.example.test",
        "cdn.example.test",
    ];
    let msgs: Vec<Message> = names.iter().map(|n| query(n, RecordType::A)).collect();
    // All three in one write.
    let mut all = Vec::new();
    for m in &msgs {
        let b = m.to_vec().unwrap();
        all.extend_from_slice(&(b.len() as u16).to_be_bytes());
        all.extend_from_slice(&b);
    }
    c.write_all(&all).unwrap();
    for m in &msgs {
        let r = Message::from_vec(&read_frame(&mut c).unwrap()).unwrap();
        assert_eq!(r.metadata.id, m.metadata.id);
    }
    // Idle: the server closes after tcp_idle_timeout (400 ms in the test config).
    let t = Instant::now();
    assert!(read_frame(&mut c).is_none());
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}

#[test]
fn ecs_decides_and_is_echoed_with_scope() {
    let s = server();
    // 198.51.100.0/24 is mapped to eu-west; 203.0.113.0/24 to ap-northeast.
    let r = udp(
        s.dns,
        &with_edns(
            query("www.cdn.example.test", RecordType::A),
            Some("198.51.100.0/24"),
        ),
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.20")]);
    let (source, scope, addr) = ecs_of(&r).expect("ECS echoed");
    assert_eq!((source, addr), (24, ip("198.51.100.0")));
    assert!(
        (1..=24).contains(&scope),
        "scope from the deciding network: {scope}"
    );

    let r = tcp(
        s.dns,
        &with_edns(
            query("x.img.cdn.example.test", RecordType::A),
            Some("203.0.113.0/24"),
        ),
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.30")]);
    assert!(ecs_of(&r).is_some());

    // IPv6 ECS; AAAA answered from edges with IPv6 only (apne1 has none → nearest with v6).
    let r = udp(
        s.dns,
        &with_edns(
            query("www.cdn.example.test", RecordType::AAAA),
            Some("2001:db8:aa::/48"),
        ),
    );
    assert_eq!(r.answers.len(), 1);
    assert!(addrs(&r)[0].is_ipv6());
    assert_eq!(ecs_of(&r).unwrap().0, 48);

    // Source prefix 0: decide by the resolver (127.0.0.1 → default us-east), scope 0.
    let r = udp(
        s.dns,
        &with_edns(
            query("www.cdn.example.test", RecordType::A),
            Some("0.0.0.0/0"),
        ),
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.10")]);
    assert_eq!(ecs_of(&r).unwrap().1, 0);

    // A service that ignores ECS: resolver decides, scope 0, option still echoed.
    let r = udp(
        s.dns,
        &with_edns(
            query("noecs.cdn.example.test", RecordType::A),
            Some("198.51.100.0/24"),
        ),
    );
    assert_eq!(addrs(&r), vec![ip("192.0.2.10")]);
    assert_eq!(ecs_of(&r).unwrap(), (24, 0, ip("198.51.100.0")));

    // Static answers do not depend on the client: scope 0.
    let r = udp(
        s.dns,
        &with_edns(
            query("static.cdn.example.test", RecordType::A),
            Some("198.51.100.0/24"),
        ),
    );
    assert_eq!(ecs_of(&r).unwrap().1, 0);

    // Two answers per response when configured.
    let r = udp(
        s.dns,
        &with_edns(
            query("two.cdn.example.test", RecordType::A),
            Some("198.51.100.0/24"),
        ),
    );
    assert_eq!(addrs(&r).len(), 2);
    assert_eq!(addrs(&r)[0], ip("192.0.2.20"));
}

fn ecs_packet(family: u16, source: u8, addr: &[u8]) -> Vec<u8> {
    let mut p = query("www.cdn.example.test", RecordType::A)
        .to_vec()
        .unwrap();
    p[11] = 1;
    let mut opt = vec![0, 8];
    opt.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
    opt.extend_from_slice(&family.to_be_bytes());
    opt.push(source);
    opt.push(0);
    opt.extend_from_slice(addr);
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    p.extend_from_slice(&(opt.len() as u16).to_be_bytes());
    p.extend_from_slice(&opt);
    p
}

#[test]
fn malformed_ecs_is_formerr() {
    let s = server();
    // Sanity: the hand-made packet works when well formed.
    let ok = udp_raw(s.dns, &ecs_packet(1, 24, &[198, 51, 100]));
    assert_eq!(ok[3] & 0x0f, 0);
    for (what, p) in [
        ("bits beyond the prefix", ecs_packet(1, 20, &[198, 51, 100])),
        ("unknown family", ecs_packet(7, 24, &[198, 51, 100])),
        ("address too long", ecs_packet(1, 16, &[198, 51, 100])),
        ("address too short", ecs_packet(2, 48, &[0x20, 0x01])),
        (
            "prefix longer than the family",
            ecs_packet(1, 40, &[1, 2, 3, 4, 5]),
        ),
    ] {
        let r = udp_raw(s.dns, &p);
        assert_eq!(r[3] & 0x0f, 1, "{what} → FORMERR");
    }
}

/// RFC 6891 §7: a FORMERR to a query with an OPT carries an OPT (else the requester concludes
/// we lack EDNS); the question is echoed when it reads. Over UDP and TCP alike.
#[test]
fn formerr_echoes_the_question_and_an_opt_when_the_query_had_one() {
    use hickory_proto::rr::rdata::opt::EdnsCode;
    let s = server();
    let mut two = with_edns(query("static.cdn.example.test", RecordType::A), None);
    two.add_query(hickory_proto::op::Query::query(
        "x.cdn.example.test.".parse().unwrap(),
        RecordType::A,
    ));
    let mut two_plain = query("static.cdn.example.test", RecordType::A);
    two_plain.add_query(hickory_proto::op::Query::query(
        "x.cdn.example.test.".parse().unwrap(),
        RecordType::A,
    ));
    // (what, packet, question echoed, OPT expected)
    for (what, p, question, opt) in [
        ("bad ECS", ecs_packet(1, 20, &[198, 51, 100]), true, true),
        (
            "unknown ECS family",
            ecs_packet(7, 24, &[198, 51, 100]),
            true,
            true,
        ),
        ("two questions + OPT", two.to_vec().unwrap(), false, true),
        ("two questions", two_plain.to_vec().unwrap(), false, false),
    ] {
        for (transport, r) in [("udp", udp_raw(s.dns, &p)), ("tcp", tcp_bytes(s.dns, &p))] {
            let what = format!("{what} over {transport}");
            assert_eq!(r[..2], p[..2], "{what}: id");
            let m = Message::from_vec(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(m.metadata.response_code, ResponseCode::FormErr, "{what}");
            assert!(m.answers.is_empty() && m.authorities.is_empty(), "{what}");
            if question {
                assert_eq!(m.queries.len(), 1, "{what}: question echoed");
                assert_eq!(
                    m.queries[0].name().to_ascii(),
                    "www.cdn.example.test.",
                    "{what}"
                );
                assert_eq!(m.queries[0].query_type(), RecordType::A, "{what}");
            } else {
                assert!(m.queries.is_empty(), "{what}: no question");
            }
            match (opt, m.edns.as_ref()) {
                (true, Some(e)) => {
                    assert_eq!(e.max_payload(), 1232, "{what}: our payload size");
                    assert_eq!(e.version(), 0, "{what}");
                    assert!(e.option(EdnsCode::Subnet).is_none(), "{what}: no ECS");
                    assert!(e.option(EdnsCode::Cookie).is_none(), "{what}: no cookie");
                }
                (false, None) => {}
                (want, got) => panic!("{what}: OPT wanted {want}, got {got:?}"),
            }
        }
    }
}

/// RFC 6891 §6.1.1: an OPT record in the answer or authority section is FORMERR (with an OPT).
#[test]
fn an_opt_outside_the_additional_section_is_formerr() {
    let s = server();
    let base = query("static.cdn.example.test", RecordType::A)
        .to_vec()
        .unwrap();
    let opt = [0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0];
    // (what, ANCOUNT, NSCOUNT, ARCOUNT, OPT records appended)
    for (what, an, ns, ar, opts) in [
        ("OPT in answer", 1u8, 0u8, 0u8, 1),
        ("OPT in authority", 0, 1, 0, 1),
        ("OPT in authority and additional", 0, 1, 1, 2),
    ] {
        let mut p = base.clone();
        p[7] = an;
        p[9] = ns;
        p[11] = ar;
        for _ in 0..opts {
            p.extend_from_slice(&opt);
        }
        for (transport, r) in [("udp", udp_raw(s.dns, &p)), ("tcp", tcp_bytes(s.dns, &p))] {
            let m = Message::from_vec(&r).unwrap();
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::FormErr,
                "{what} over {transport}"
            );
            assert!(m.answers.is_empty(), "{what} over {transport}");
            assert!(m.edns.is_some(), "{what} over {transport}: an OPT");
        }
    }
}
