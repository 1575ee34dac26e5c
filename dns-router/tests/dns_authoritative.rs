//! Authoritative semantics over real UDP and TCP sockets: AA, NXDOMAIN/NODATA with the SOA
//! (RFC 2308 TTL), REFUSED outside the zones, 0x20 case, ANY (RFC 8482), NOTIMP, FORMERR on
//! QDCOUNT ≠ 1, glue, referrals, CNAMEs, wildcard services.

mod dns_support;

use std::net::IpAddr;

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

use dns_support::*;

fn server() -> Server {
    let (up, _) = healthy_edge();
    Server::start(&config_text(&up, &up, &up))
}

fn both(s: &Server, m: &Message) -> [Message; 2] {
    [udp(s.dns, m), tcp(s.dns, m)]
}

#[test]
fn static_answer_is_authoritative_and_keeps_case() {
    let s = server();
    for r in both(&s, &query("StAtIc.CdN.ExAmPlE.TeSt.", RecordType::A)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert!(!r.metadata.recursion_available);
        assert_eq!(r.queries[0].name().to_ascii(), "StAtIc.CdN.ExAmPlE.TeSt.");
        assert_eq!(r.answers.len(), 1);
        assert_eq!(r.answers[0].name.to_ascii(), "StAtIc.CdN.ExAmPlE.TeSt.");
        assert_eq!(r.answers[0].ttl, 30);
        assert_eq!(addrs(&r), vec!["192.0.2.99".parse::<IpAddr>().unwrap()]);
        assert!(r.edns.is_none(), "no OPT when the query had none");
    }
}

#[test]
fn nxdomain_and_nodata_carry_soa_with_negative_ttl() {
    let s = server();
    for r in both(&s, &query("nope.cdn.example.test", RecordType::A)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
        assert!(r.metadata.authoritative);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        let soa = &r.authorities[0];
        assert_eq!(soa.record_type(), RecordType::SOA);
        assert_eq!(soa.name.to_ascii(), "cdn.example.test.");
        assert_eq!(soa.ttl, 60, "min(SOA TTL 3600, MINIMUM 60)");
        let RData::SOA(d) = &soa.data else { panic!() };
        assert_eq!(d.serial, 7);
    }
    // NODATA: the name exists without that type; also an empty non-terminal.
    for name in ["static.cdn.example.test", "b.cdn.example.test"] {
        for r in both(&s, &query(name, RecordType::AAAA)) {
            assert_eq!(r.metadata.response_code, ResponseCode::NoError, "{name}");
            assert!(r.answers.is_empty());
            assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
            assert_eq!(r.authorities[0].ttl, 60);
        }
    }
}

#[test]
fn refused_outside_our_zones() {
    let s = server();
    for name in ["example.test", "www.example.com", "xcdn.example.test"] {
        for r in both(&s, &query(name, RecordType::A)) {
            assert_eq!(r.metadata.response_code, ResponseCode::Refused, "{name}");
            assert!(!r.metadata.authoritative);
            assert!(r.answers.is_empty() && r.authorities.is_empty());
        }
    }
}

#[test]
fn apex_soa_ns_with_glue_and_mx() {
    let s = server();
    let r = udp(s.dns, &query("cdn.example.test", RecordType::NS));
    assert_eq!(r.answers.len(), 2);
    assert!(r.answers.iter().all(|a| a.ttl == 3600));
    let glue: Vec<String> = r
        .additionals
        .iter()
        .map(|a| format!("{} {}", a.name, a.data))
        .collect();
    assert!(
        glue.contains(&"ns1.cdn.example.test. 192.0.2.53".to_string()),
        "{glue:?}"
    );
    assert!(
        glue.contains(&"ns2.cdn.example.test. 192.0.2.54".to_string()),
        "{glue:?}"
    );
    let r = udp(s.dns, &query("cdn.example.test", RecordType::SOA));
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].ttl, 3600);
    let r = udp(s.dns, &query("cdn.example.test", RecordType::MX));
    assert_eq!(r.answers[0].data.to_string(), "10 mail.example.net.");
}

#[test]
fn any_is_answered_minimally() {
    let s = server();
    for r in both(&s, &query("cdn.example.test", RecordType::ANY)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        let types: std::collections::HashSet<RecordType> =
            r.answers.iter().map(|a| a.record_type()).collect();
        assert_eq!(types.len(), 1, "one RRset only (RFC 8482): {types:?}");
    }
    let r = udp(s.dns, &query("www.cdn.example.test", RecordType::ANY));
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].record_type(), RecordType::A);
}

#[test]
fn cname_is_followed_inside_the_zone() {
    let s = server();
    let r = udp(s.dns, &query("alias.cdn.example.test", RecordType::A));
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.answers[0].record_type(), RecordType::CNAME);
    assert_eq!(r.answers[1].name.to_ascii(), "static.cdn.example.test.");
    assert_eq!(addrs(&r), vec!["192.0.2.99".parse::<IpAddr>().unwrap()]);
    let r = udp(s.dns, &query("alias.cdn.example.test", RecordType::CNAME));
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn delegation_gives_a_referral_with_glue() {
    let s = server();
    for r in both(&s, &query("host.sub.cdn.example.test", RecordType::A)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(!r.metadata.authoritative);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::NS);
        assert_eq!(r.authorities[0].name.to_ascii(), "sub.cdn.example.test.");
        assert_eq!(r.additionals.len(), 1);
        assert_eq!(r.additionals[0].name.to_ascii(), "ns.sub.cdn.example.test.");
    }
    // DS belongs to the parent side of the cut (RFC 4035 §3.1.4.1): answered here,
    // authoritatively, NODATA with our SOA (we hold no DS).
    for r in both(&s, &query("sub.cdn.example.test", RecordType::DS)) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.metadata.authoritative);
        assert!(r.answers.is_empty());
        assert_eq!(r.authorities.len(), 1);
        assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
        assert_eq!(r.authorities[0].name.to_ascii(), "cdn.example.test.");
    }
}

#[test]
fn wildcard_service_answers_any_depth_but_not_the_parent() {
    let s = server();
    let r = udp(s.dns, &query("A.b.IMG.cdn.example.test", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(r.metadata.authoritative);
    assert_eq!(r.answers.len(), 1);
    assert_eq!(r.answers[0].name.to_ascii(), "A.b.IMG.cdn.example.test.");
    assert_eq!(r.answers[0].ttl, 20);
    let r = udp(s.dns, &query("img.cdn.example.test", RecordType::A));
    assert!(
        r.answers.is_empty(),
        "the wildcard's parent is an empty non-terminal"
    );
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    // A service name asked for a type it does not serve: NODATA.
    let r = udp(s.dns, &query("www.cdn.example.test", RecordType::TXT));
    assert!(r.answers.is_empty());
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
}

#[test]
fn unknown_opcode_is_notimp_and_qdcount_must_be_one() {
    let s = server();
    let mut m = query("static.cdn.example.test", RecordType::A);
    m.metadata.op_code = OpCode::Status;
    for r in both(&s, &m) {
        assert_eq!(r.metadata.response_code, ResponseCode::NotImp);
        assert_eq!(r.metadata.op_code, OpCode::Status);
    }
    // QDCOUNT 0 and 2, hand-made.
    let zero = [0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let r = udp_raw(s.dns, &zero);
    assert_eq!(&r[..2], &[0xab, 0xcd]);
    assert_eq!(r[2] & 0x80, 0x80, "QR");
    assert_eq!(r[3] & 0x0f, 1, "FORMERR");
    let mut two = query("static.cdn.example.test", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        "x.cdn.example.test.".parse().unwrap(),
        RecordType::A,
    ));
    let r = udp(s.dns, &two);
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn other_classes_and_transfers_are_refused() {
    let s = server();
    let mut m = query("static.cdn.example.test", RecordType::A);
    m.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    assert_eq!(udp(s.dns, &m).metadata.response_code, ResponseCode::Refused);
    let m = query("cdn.example.test", RecordType::AXFR);
    assert_eq!(tcp(s.dns, &m).metadata.response_code, ResponseCode::Refused);
}
