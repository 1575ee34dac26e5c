//! DNS Cookies (RFC 7873, server cookies as RFC 9018) against a real running router: a client
//! cookie gets a server cookie; the server cookie is accepted back; a wrong one gets BADCOOKIE
//! over UDP (with a fresh cookie) and an answer over TCP; a malformed option gets FORMERR;
//! queries with a valid server cookie are exempt from response-rate limiting.

mod dns_support;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::RecordType;

use dns_support::*;

const CLIENT: [u8; 8] = *b"c00kie!!";

fn server(extra: &str) -> Server {
    let (up, _) = healthy_edge();
    Server::start(&format!("{}{extra}", config_text(&up, &up, &up)))
}

/// A query for `static.cdn.example.test` A with a COOKIE option of exactly `cookie`.
fn with_cookie(cookie: &[u8]) -> Message {
    let mut m = query("static.cdn.example.test", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(1232);
    e.options_mut()
        .insert(EdnsOption::Unknown(10, cookie.to_vec()));
    m.set_edns(e);
    m
}

/// The COOKIE option of a response.
fn cookie_of(m: &Message) -> Option<Vec<u8>> {
    match m.edns.as_ref()?.option(EdnsCode::Cookie)? {
        EdnsOption::Unknown(10, d) => Some(d.clone()),
        other => panic!("cookie option decoded as {other:?}"),
    }
}

fn rcode(m: &Message) -> u16 {
    u16::from(m.metadata.response_code)
}

/// A full cookie (client + server) for the next query.
fn full(server_cookie: &[u8]) -> Vec<u8> {
    let mut c = CLIENT.to_vec();
    c.extend_from_slice(server_cookie);
    c
}

#[test]
fn a_client_cookie_gets_a_server_cookie_that_is_accepted_back() {
    let s = server("");
    let r = udp(s.dns, &with_cookie(&CLIENT));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    let c = cookie_of(&r).expect("a COOKIE option in the answer");
    assert_eq!(c.len(), 24, "client cookie + 16-byte server cookie");
    assert_eq!(&c[..8], &CLIENT);
    assert_eq!(&c[8..12], &[1, 0, 0, 0], "RFC 9018 version 1, reserved 0");
    let now = cdn_shared::unix_ms() / 1000;
    let ts = u64::from(u32::from_be_bytes([c[12], c[13], c[14], c[15]]));
    assert!(now.abs_diff(ts) <= 2, "timestamp {ts} vs {now}");

    // Sent back: answered, with a cookie again; over TCP too.
    let again = udp(s.dns, &with_cookie(&full(&c[8..])));
    assert_eq!(again.metadata.response_code, ResponseCode::NoError);
    assert_eq!(again.answers.len(), 1);
    assert_eq!(&cookie_of(&again).unwrap()[..8], &CLIENT);
    let t = tcp(s.dns, &with_cookie(&full(&c[8..])));
    assert_eq!(t.metadata.response_code, ResponseCode::NoError);
    assert_eq!(&cookie_of(&t).unwrap()[..8], &CLIENT);

    // The same server cookie with another client cookie is not ours: BADCOOKIE over UDP,
    // with no records and a fresh cookie for that client cookie.
    let mut other = b"another!".to_vec();
    other.extend_from_slice(&c[8..]);
    let bad = udp(s.dns, &with_cookie(&other));
    assert_eq!(rcode(&bad), 23, "BADCOOKIE");
    assert!(bad.answers.is_empty());
    let fresh = cookie_of(&bad).unwrap();
    assert_eq!(&fresh[..8], b"another!");
    let retry = udp(s.dns, &with_cookie(&fresh));
    assert_eq!(retry.metadata.response_code, ResponseCode::NoError);
    // Over TCP a wrong server cookie is answered (the handshake proved the address).
    let t = tcp(s.dns, &with_cookie(&full(&[0x55; 16])));
    assert_eq!(t.metadata.response_code, ResponseCode::NoError);
    assert_eq!(t.answers.len(), 1);

    // Malformed lengths: FORMERR.
    for len in [7usize, 9, 15, 41] {
        let r = udp(s.dns, &with_cookie(&vec![1; len]));
        assert_eq!(r.metadata.response_code, ResponseCode::FormErr, "len {len}");
    }
    // No cookie: none in the answer.
    let r = udp(
        s.dns,
        &with_edns(query("static.cdn.example.test", RecordType::A), None),
    );
    assert!(cookie_of(&r).is_none());
}

#[test]
fn routers_sharing_a_secret_accept_each_others_cookies() {
    // RFC 9018 §4: routers of one zone (anycast, or behind one address) with the same
    // `dns.cookies.secret` accept each other's server cookies, as one does after a restart;
    // routers with their own random keys answer BADCOOKIE.
    let shared = "\n[dns.cookies]\nsecret = \"000102030405060708090a0b0c0d0e0f\"\n";
    let a = server(shared);
    let b = server(shared);
    let c = cookie_of(&udp(a.dns, &with_cookie(&CLIENT))).expect("a server cookie");
    let r = udp(b.dns, &with_cookie(&full(&c[8..])));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert_eq!(r.answers.len(), 1);
    let own = server("");
    assert_eq!(
        rcode(&udp(own.dns, &with_cookie(&full(&c[8..])))),
        23,
        "BADCOOKIE"
    );
}

#[test]
fn cookies_can_be_turned_off() {
    let s = server("\n[dns.cookies]\nenabled = false\n");
    let r = udp(s.dns, &with_cookie(&CLIENT));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
    assert!(cookie_of(&r).is_none());
    // Not even a malformed option is looked at.
    let r = udp(s.dns, &with_cookie(&[1; 9]));
    assert_eq!(r.metadata.response_code, ResponseCode::NoError);
}

/// Send `n` copies of `m` from `from` and count the full (not truncated) answers.
fn flood(from: &str, to: SocketAddr, m: &Message, n: u16) -> usize {
    let s = UdpSocket::bind(format!("{from}:0")).unwrap();
    let mut m = m.clone();
    for id in 1..=n {
        m.metadata.id = id;
        s.send_to(&m.to_vec().unwrap(), to).unwrap();
    }
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut full = 0;
    let mut buf = [0u8; 4096];
    while let Ok((len, _)) = s.recv_from(&mut buf) {
        if len >= 12 && buf[2] & 0x02 == 0 {
            full += 1;
        }
    }
    full
}

#[test]
fn a_valid_server_cookie_is_exempt_from_rate_limiting() {
    let s = server(
        "\n[dns.rrl]\nexempt_loopback = false\nresponses_per_second = 2\nwindow = \"1s\"\n\
         errors_per_second = 2\n",
    );
    // Get a server cookie for 127.0.3.2.
    let sock = UdpSocket::bind("127.0.3.2:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    sock.send_to(&with_cookie(&CLIENT).to_vec().unwrap(), s.dns)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = sock.recv_from(&mut buf).unwrap();
    let c = cookie_of(&Message::from_vec(&buf[..n]).unwrap()).unwrap();
    drop(sock);

    let with = flood("127.0.3.2", s.dns, &with_cookie(&full(&c[8..])), 60);
    assert_eq!(with, 60, "answers with a valid server cookie");
    let client_only = flood("127.0.3.2", s.dns, &with_cookie(&CLIENT), 60);
    assert!(
        client_only <= 4,
        "{client_only} answers with a client cookie only"
    );
    // A wrong server cookie is not exempt either (its BADCOOKIE answers are errors).
    let wrong = flood("127.0.4.2", s.dns, &with_cookie(&full(&[0x55; 16])), 60);
    assert!(wrong <= 4, "{wrong} answers with a wrong server cookie");
}

/// A query with no question and an OPT carrying `cookie` as its COOKIE option (or no option).
fn cookie_only(cookie: Option<&[u8]>) -> Vec<u8> {
    let mut p = vec![0x4c, 0x17, 0x01, 0x00, 0, 0, 0, 0, 0, 0, 0, 1];
    let mut rdata = Vec::new();
    if let Some(c) = cookie {
        rdata.extend_from_slice(&10u16.to_be_bytes());
        rdata.extend_from_slice(&(c.len() as u16).to_be_bytes());
        rdata.extend_from_slice(c);
    }
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    p.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    p.extend_from_slice(&rdata);
    p
}

/// RFC 7873 §5.4 (`dig +header-only +cookie`): a query without a question but with a client
/// cookie gets NOERROR, no question, and a server cookie; over UDP and TCP.
#[test]
fn a_cookie_only_query_gets_a_server_cookie() {
    let s = server("");
    let exchange = |p: &[u8]| -> [Message; 2] {
        [udp_raw(s.dns, p), tcp_bytes(s.dns, p)].map(|r| {
            assert_eq!(r[..2], p[..2], "id echoed");
            Message::from_vec(&r).expect("decodes")
        })
    };
    for r in exchange(&cookie_only(Some(&CLIENT))) {
        assert_eq!(r.metadata.response_code, ResponseCode::NoError);
        assert!(r.queries.is_empty() && r.answers.is_empty() && r.authorities.is_empty());
        let c = cookie_of(&r).expect("a server cookie");
        assert_eq!(c.len(), 24);
        assert_eq!(&c[..8], &CLIENT);
        // Sent back: still valid (NOERROR); a server cookie that is not ours: BADCOOKIE
        // with a fresh one.
        for again in exchange(&cookie_only(Some(&full(&c[8..])))) {
            assert_eq!(again.metadata.response_code, ResponseCode::NoError);
            assert_eq!(&cookie_of(&again).unwrap()[..8], &CLIENT);
        }
        for bad in exchange(&cookie_only(Some(&full(&[0x55; 16])))) {
            assert_eq!(rcode(&bad), 23, "BADCOOKIE");
            assert_eq!(cookie_of(&bad).unwrap().len(), 24);
        }
    }
    // No question and no valid client cookie: FORMERR (with an OPT, no cookie).
    for p in [cookie_only(None), cookie_only(Some(&[1; 9]))] {
        for r in exchange(&p) {
            assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
            assert!(r.edns.is_some(), "the query had an OPT");
            assert!(cookie_of(&r).is_none());
        }
    }
}

#[test]
fn a_cookie_only_query_is_formerr_with_cookies_off() {
    let s = server("\n[dns.cookies]\nenabled = false\n");
    let r = Message::from_vec(&udp_raw(s.dns, &cookie_only(Some(&CLIENT)))).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::FormErr);
    assert!(cookie_of(&r).is_none());
}
