//! DNS over TCP served by hickory-server: the TCP answer to each query is the UDP answer
//! (same header flags, full RCODE, records, OPT and ECS echo, question case), except TC;
//! pipelining on one connection; FORMERR for frames hickory cannot decode; garbage never
//! stalls a connection; the connection limit; shutdown; the query log has every TCP query (the
//! FORMERRs too) and the process log has no line per TCP query.

mod dns_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use cdn_tests::harness::{scaled, Process, Signal};

use hickory_proto::op::{Message, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{RData, RecordType};

use dns_support::*;

fn server() -> Server {
    let (up, _) = healthy_edge();
    Server::start(&config_text(&up, &up, &up))
}

/// UDP answers are limited to the requester's size; ask for a large one so that both sides
/// are whole (except where truncation is the point).
fn big_edns(m: Message) -> Message {
    let mut m = with_edns(m, None);
    m.edns.as_mut().unwrap().set_max_payload(4096);
    m
}

fn ecs(m: Message, subnet: &str) -> Message {
    with_edns(m, Some(subnet))
}

/// The question bytes of a wire message (header is 12 bytes; one question).
fn question_bytes(wire: &[u8]) -> &[u8] {
    let mut i = 12;
    while wire[i] != 0 {
        i += 1 + wire[i] as usize;
    }
    &wire[12..i + 5]
}

/// Everything a client sees, compared exactly: header flags and full RCODE, the question with
/// its letter case, every record (owner case, TTL, data) in order, and the OPT record.
fn assert_same(udp: &Message, tcp: &Message, what: &str) {
    let mut u = udp.metadata;
    u.truncation = false;
    assert_eq!(u, tcp.metadata, "{what}: header");
    assert!(!tcp.metadata.truncation, "{what}: TC over TCP");
    assert_eq!(udp.queries, tcp.queries, "{what}: question");
    for (a, b) in udp.queries.iter().zip(&tcp.queries) {
        assert_eq!(a.name().to_ascii(), b.name().to_ascii(), "{what}: case");
    }
    for (sa, sb, section) in [
        (&udp.answers, &tcp.answers, "answer"),
        (&udp.authorities, &tcp.authorities, "authority"),
        (&udp.additionals, &tcp.additionals, "additional"),
    ] {
        assert_eq!(sa, sb, "{what}: {section}");
        for (a, b) in sa.iter().zip(sb.iter()) {
            assert_eq!(
                a.name.to_ascii(),
                b.name.to_ascii(),
                "{what}: {section} owner"
            );
            assert_eq!(a.ttl, b.ttl, "{what}: {section} ttl");
        }
    }
    assert_eq!(udp.edns, tcp.edns, "{what}: OPT");
}

/// A TCP exchange of raw bytes on a fresh connection.
fn tcp_raw(addr: SocketAddr, packet: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write_frame(&mut s, packet);
    read_frame(&mut s).expect("tcp answer")
}

/// The queries compared over both transports (name for messages, message).
fn cases() -> Vec<(&'static str, Message)> {
    let mut badvers = big_edns(query("static.cdn.example.test", RecordType::A));
    badvers.edns.as_mut().unwrap().set_version(1);
    let mut dnssec_ok = big_edns(query("static.cdn.example.test", RecordType::A));
    dnssec_ok.edns.as_mut().unwrap().set_dnssec_ok(true);
    let mut rd = query("static.cdn.example.test", RecordType::A);
    rd.metadata.recursion_desired = true;
    rd.metadata.checking_disabled = true;
    let mut two = query("static.cdn.example.test", RecordType::A);
    two.add_query(hickory_proto::op::Query::query(
        hickory_proto::rr::Name::from_ascii("cdn.example.test").unwrap(),
        RecordType::A,
    ));
    let mut notify = query("cdn.example.test", RecordType::SOA);
    notify.metadata.op_code = OpCode::Notify;
    vec![
        ("A static", query("static.cdn.example.test", RecordType::A)),
        ("A service", query("www.cdn.example.test", RecordType::A)),
        (
            "AAAA service",
            big_edns(query("www.cdn.example.test", RecordType::AAAA)),
        ),
        ("NXDOMAIN", query("nope.cdn.example.test", RecordType::A)),
        (
            "NODATA",
            big_edns(query("static.cdn.example.test", RecordType::AAAA)),
        ),
        (
            "NODATA empty non-terminal",
            query("b.cdn.example.test", RecordType::A),
        ),
        ("SOA", query("cdn.example.test", RecordType::SOA)),
        (
            "NS with glue",
            big_edns(query("cdn.example.test", RecordType::NS)),
        ),
        ("MX", query("cdn.example.test", RecordType::MX)),
        ("TXT", query("a.b.cdn.example.test", RecordType::TXT)),
        ("ANY", query("cdn.example.test", RecordType::ANY)),
        (
            "CNAME chain",
            query("alias.cdn.example.test", RecordType::A),
        ),
        ("referral", query("x.sub.cdn.example.test", RecordType::A)),
        ("REFUSED", query("www.example.com", RecordType::A)),
        ("REFUSED class", {
            let mut m = query("static.cdn.example.test", RecordType::A);
            m.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
            m
        }),
        ("AXFR refused", query("cdn.example.test", RecordType::AXFR)),
        ("BADVERS", badvers),
        ("DO bit", dnssec_ok),
        ("RD and CD echoed", rd),
        ("two questions", two),
        ("NOTIFY", notify),
        (
            "ECS v4 with scope",
            ecs(
                query("www.cdn.example.test", RecordType::A),
                "198.51.100.0/24",
            ),
        ),
        (
            "ECS wildcard",
            ecs(
                query("x.img.cdn.example.test", RecordType::A),
                "203.0.113.0/24",
            ),
        ),
        (
            "ECS v6",
            ecs(
                query("www.cdn.example.test", RecordType::AAAA),
                "2001:db8:aa::/48",
            ),
        ),
        (
            "ECS source 0",
            ecs(query("www.cdn.example.test", RecordType::A), "0.0.0.0/0"),
        ),
        (
            "ECS ignored by the service",
            ecs(
                query("noecs.cdn.example.test", RecordType::A),
                "198.51.100.0/24",
            ),
        ),
        (
            "ECS on a static name",
            ecs(
                query("static.cdn.example.test", RecordType::A),
                "198.51.100.0/24",
            ),
        ),
        (
            "mixed case service",
            ecs(
                query("WwW.cDn.ExAmPlE.tEsT", RecordType::A),
                "198.51.100.0/24",
            ),
        ),
        (
            "mixed case NXDOMAIN",
            query("NoPe.CDN.example.TEST", RecordType::A),
        ),
        ("two answers", query("two.cdn.example.test", RecordType::A)),
    ]
}

#[test]
fn tcp_answers_are_the_udp_answers() {
    let s = server();
    for (what, m) in cases() {
        let wire = m.to_vec().unwrap();
        let u_wire = udp_raw(s.dns, &wire);
        let t_wire = tcp_raw(s.dns, &wire);
        let u = Message::from_vec(&u_wire).unwrap();
        let t = Message::from_vec(&t_wire).unwrap();
        assert!(!u.metadata.truncation, "{what}: UDP big enough");
        assert_same(&u, &t, what);
        if !t.queries.is_empty() {
            // The question is echoed byte for byte (0x20 case).
            assert_eq!(question_bytes(&t_wire), question_bytes(&wire), "{what}");
        }
    }
}

#[test]
fn specific_answers_survive_hickory() {
    let s = server();
    // BADVERS: the extended RCODE lives in the OPT record.
    let mut m = big_edns(query("static.cdn.example.test", RecordType::A));
    m.edns.as_mut().unwrap().set_version(1);
    let r = tcp(s.dns, &m);
    // 16 = BADVERS (hickory names it BADSIG).
    assert_eq!(u16::from(r.metadata.response_code), 16);
    assert_eq!(r.edns.as_ref().unwrap().version(), 0);
    assert!(r.answers.is_empty());
    // No OPT when the query had none; OPT when it had.
    assert!(tcp(s.dns, &query("static.cdn.example.test", RecordType::A))
        .edns
        .is_none());
    let r = tcp(
        s.dns,
        &big_edns(query("static.cdn.example.test", RecordType::A)),
    );
    assert!(r.edns.is_some());
    // ECS echoed with the deciding network's scope.
    let r = tcp(
        s.dns,
        &ecs(
            query("www.cdn.example.test", RecordType::A),
            "198.51.100.0/24",
        ),
    );
    assert_eq!(
        addrs(&r),
        vec!["192.0.2.20".parse::<std::net::IpAddr>().unwrap()]
    );
    let (source, scope, addr) = ecs_of(&r).unwrap();
    assert_eq!((source, addr.to_string().as_str()), (24, "198.51.100.0"));
    assert!((1..=24).contains(&scope), "{scope}");
    // NXDOMAIN: AA and the SOA in authority.
    let r = tcp(s.dns, &query("NoPe.cdn.example.test", RecordType::A));
    assert_eq!(r.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.metadata.authoritative);
    assert_eq!(r.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(r.queries[0].name().to_ascii(), "NoPe.cdn.example.test.");
    // NS with glue in additional.
    let r = tcp(s.dns, &query("cdn.example.test", RecordType::NS));
    assert_eq!(r.answers.len(), 2);
    assert_eq!(r.additionals.len(), 2);
    assert!(r
        .additionals
        .iter()
        .all(|a| a.record_type() == RecordType::A));
}

#[test]
fn truncated_over_udp_is_whole_over_tcp() {
    let s = server();
    for m in [
        query("big.cdn.example.test", RecordType::TXT),
        with_edns(query("BiG.cdn.example.test", RecordType::TXT), None),
        ecs(
            query("big.cdn.example.test", RecordType::TXT),
            "198.51.100.0/24",
        ),
    ] {
        let u = udp(s.dns, &m);
        let t = tcp(s.dns, &m);
        assert!(u.metadata.truncation);
        assert!(u.answers.is_empty());
        assert!(!t.metadata.truncation);
        assert_eq!(t.answers.len(), 10);
        let mut um = u.metadata;
        um.truncation = false;
        assert_eq!(um, t.metadata);
        assert_eq!(u.queries, t.queries);
        assert_eq!(u.edns, t.edns);
        // The configured strings, in order, owned by the name as asked.
        for (i, r) in t.answers.iter().enumerate() {
            let RData::TXT(txt) = &r.data else {
                panic!("not TXT: {r:?}")
            };
            let want = format!("{i:03}-{}", "a".repeat(116));
            assert_eq!(txt.txt_data[0].as_ref(), want.as_bytes());
            assert_eq!(
                r.name.to_ascii().trim_end_matches('.'),
                m.queries[0].name().to_ascii().trim_end_matches('.')
            );
        }
    }
}

/// Frames of one connection, written at once.
fn frames(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut all = Vec::new();
    for p in packets {
        all.extend_from_slice(&(p.len() as u16).to_be_bytes());
        all.extend_from_slice(p);
    }
    all
}

#[test]
fn pipelined_queries_are_answered_in_order() {
    let s = server();
    let msgs: Vec<Message> = cases().into_iter().map(|(_, m)| m).collect();
    let wires: Vec<Vec<u8>> = msgs.iter().map(|m| m.to_vec().unwrap()).collect();
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(&frames(&wires)).unwrap();
    for (m, w) in msgs.iter().zip(&wires) {
        let t = Message::from_vec(&read_frame(&mut c).expect("answer")).unwrap();
        assert_eq!(t.metadata.id, m.metadata.id, "in order");
        let u = Message::from_vec(&udp_raw(s.dns, w)).unwrap();
        assert_same(&u, &t, "pipelined");
    }
    // Many more, split across writes at odd places.
    let many: Vec<Vec<u8>> = (0..200)
        .map(|i| {
            let name = ["static", "www", "nope", "alias"][i % 4];
            query(&format!("{name}.cdn.example.test"), RecordType::A)
                .to_vec()
                .unwrap()
        })
        .collect();
    let all = frames(&many);
    let writer = {
        let mut w = c.try_clone().unwrap();
        std::thread::spawn(move || {
            for chunk in all.chunks(37) {
                w.write_all(chunk).unwrap();
            }
        })
    };
    for w in &many {
        let t = read_frame(&mut c).expect("answer");
        assert_eq!(t[..2], w[..2]);
    }
    writer.join().unwrap();
}

#[test]
fn bad_frames_get_formerr_or_nothing_and_the_connection_goes_on() {
    let s = server();
    let good = query("static.cdn.example.test", RecordType::A);
    let good_wire = good.to_vec().unwrap();
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let ask_good = |c: &mut TcpStream| {
        write_frame(c, &good_wire);
        let r = Message::from_vec(&read_frame(c).expect("good answer")).unwrap();
        assert_eq!(r.metadata.id, good.metadata.id);
        assert_eq!(r.answers.len(), 1);
    };

    // Readable header, question cut short: hickory cannot decode it → FORMERR, id echoed.
    let cut = &good_wire[..good_wire.len() - 3];
    write_frame(&mut c, cut);
    let r = read_frame(&mut c).expect("FORMERR");
    assert_eq!(r[..2], good_wire[..2]);
    assert_eq!(r[3] & 0x0f, 1);
    assert_eq!(r[2] & 0x80, 0x80, "a response");
    assert_eq!(&r[4..12], &[0; 8], "no question, no records");
    // The same over UDP is FORMERR too.
    assert_eq!(udp_raw(s.dns, cut)[3] & 0x0f, 1);
    ask_good(&mut c);

    // Shorter than a header, and a response (QR=1): no answer, the connection stays.
    write_frame(&mut c, &[1, 2, 3]);
    let mut response = good_wire.clone();
    response[2] |= 0x80;
    write_frame(&mut c, &response);
    ask_good(&mut c);

    // Malformed Client Subnet options: FORMERR (by hickory or by our decoder).
    for (what, data) in [
        ("family 3", vec![0, 3, 24, 0, 198, 51, 100]),
        ("v4 source 33", vec![0, 1, 33, 0, 198, 51, 100, 1, 0]),
        ("address longer than the prefix", vec![0, 1, 8, 0, 198, 51]),
        ("bits beyond the prefix", vec![0, 1, 20, 0, 198, 51, 100]),
    ] {
        let mut m = with_edns(query("www.cdn.example.test", RecordType::A), None);
        m.edns
            .as_mut()
            .unwrap()
            .options_mut()
            .insert(EdnsOption::Unknown(8, data));
        let w = m.to_vec().unwrap();
        write_frame(&mut c, &w);
        let r = read_frame(&mut c).expect("answer");
        assert_eq!(r[..2], w[..2], "{what}");
        assert_eq!(r[3] & 0x0f, 1, "{what}: FORMERR");
        assert_eq!(udp_raw(s.dns, &w)[3] & 0x0f, 1, "{what}: FORMERR over UDP");
    }
    ask_good(&mut c);

    // Random garbage with a readable header: an answer or nothing, never a stall or a
    // closed connection; the good query after it is answered.
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(53);
    for _ in 0..200 {
        let mut p = good_wire.clone();
        for _ in 0..rng.random_range(1..6) {
            let at = rng.random_range(0..p.len());
            p[at] = rng.random();
        }
        p[2] &= 0x7f; // a query, so it is answered or ignored, never reflected
        p[0] = 0xee; // ids never equal to the good query's
        write_frame(&mut c, &p);
    }
    write_frame(&mut c, &good_wire);
    loop {
        let r = read_frame(&mut c).expect("answers until the good one");
        if r[..2] == good_wire[..2] {
            break;
        }
        assert_eq!(r[0], 0xee);
    }

    // A zero-length frame ends the connection (hickory); others are unaffected.
    write_frame(&mut c, &[]);
    assert!(read_frame(&mut c).is_none());
    let r = tcp(s.dns, &good);
    assert_eq!(r.answers.len(), 1);
}

#[test]
fn connection_limit_closes_extra_connections() {
    let (up, _) = healthy_edge();
    let text = config_text(&up, &up, &up).replace(
        "tcp_idle_timeout = \"400ms\"",
        "tcp_idle_timeout = \"30s\"\ntcp_max_connections = 2",
    );
    let s = Server::start(&text);
    let q = query("static.cdn.example.test", RecordType::A);
    let w = q.to_vec().unwrap();
    let open = |s: &Server| {
        let mut c = TcpStream::connect(s.dns).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        write_frame(&mut c, &w);
        let r = read_frame(&mut c);
        (c, r)
    };
    let (mut a, r) = open(&s);
    assert!(r.is_some());
    let (b, r) = open(&s);
    assert!(r.is_some());
    // The third is closed at once: EOF or reset well before the read timeout.
    let t = Instant::now();
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = c.write_all(&frames(std::slice::from_ref(&w)));
    let mut buf = [0u8; 64];
    let n = c.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // The two open ones still work.
    write_frame(&mut a, &w);
    assert!(read_frame(&mut a).is_some());
    // Closing one frees its slot (poll: the server sees the close asynchronously).
    drop(b);
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    loop {
        let (_c, r) = open(&s);
        if r.is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "slot not freed");
    }
}

#[test]
fn shutdown_closes_open_connections() {
    let s = server();
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write_frame(
        &mut c,
        &query("static.cdn.example.test", RecordType::A)
            .to_vec()
            .unwrap(),
    );
    assert!(read_frame(&mut c).is_some());
    let t = Instant::now();
    drop(s); // cancels the shutdown token and joins the runtime thread
    assert!(read_frame(&mut c).is_none());
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn tcp_queries_leave_no_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = healthy_edge();
    let p = dir.path().join("router.toml");
    std::fs::write(&p, config_text(&up, &up, &up)).unwrap();
    let args = ["--config".to_string(), p.display().to_string()];
    // `RUST_LOG` would override the configured level: pin it so the test is hermetic.
    let env = [("RUST_LOG".to_string(), "info".to_string())];
    let mut router = Process::spawn(
        "dns-router",
        Path::new(env!("CARGO_BIN_EXE_dns-router")),
        &args,
        &env,
    )
    .unwrap();
    router.wait_ready(Duration::from_secs(20)).unwrap();
    let addr = router.addr("tcp", "dns").expect("tcp listening line");
    const QUERIES: usize = 40;
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    for i in 0..QUERIES {
        let name = ["static", "www", "nope", "WwW"][i % 4];
        write_frame(
            &mut c,
            &query(&format!("{name}.cdn.example.test"), RecordType::A)
                .to_vec()
                .unwrap(),
        );
        assert!(read_frame(&mut c).is_some());
    }
    // A hickory FORMERR too.
    write_frame(&mut c, &[0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3]);
    assert!(read_frame(&mut c).is_some());
    drop(c);
    // Stop and read everything it wrote after `ready` (the harness waits for EOF).
    router.signal(Signal::TERM).unwrap();
    router
        .wait_exit(Duration::from_secs(10))
        .expect("stops on SIGTERM");
    let after = router.lines_after_ready();
    assert!(
        after.iter().all(|l| !l.contains("request:")
            && !l.contains("query:")
            && !l.to_ascii_lowercase().contains("cdn.example.test")),
        "{after:#?}"
    );
    assert!(after.len() < QUERIES / 2, "{after:#?}");
}

#[test]
fn tcp_queries_are_in_the_query_log() {
    let (up, _) = healthy_edge();
    let log = tempfile::tempdir().unwrap();
    let path = log.path().join("queries.jsonl");
    let text = config_text(&up, &up, &up).replace(
        "tcp_idle_timeout = \"400ms\"",
        &format!(
            "tcp_idle_timeout = \"400ms\"\nquery_log = \"{}\"",
            path.display()
        ),
    );
    let s = Server::start(&text);
    let service = ecs(
        query("www.cdn.example.test", RecordType::A),
        "198.51.100.0/24",
    )
    .to_vec()
    .unwrap();
    let nx = query("nope.cdn.example.test", RecordType::AAAA)
        .to_vec()
        .unwrap();
    let cut = &nx[..nx.len() - 3]; // hickory's FORMERR
    let mut c = TcpStream::connect(s.dns).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(&frames(&[service, cut.to_vec(), nx.clone()]))
        .unwrap();
    for _ in 0..3 {
        assert!(read_frame(&mut c).is_some());
    }
    let deadline = Instant::now() + scaled(Duration::from_secs(5));
    let lines: Vec<serde_json::Value> = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .filter(|v: &serde_json::Value| v["transport"] == "tcp")
            .collect();
        if lines.len() >= 3 {
            break lines;
        }
        assert!(Instant::now() < deadline, "query log: {text}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["name"], "www.cdn.example.test.");
    assert_eq!(lines[0]["rcode"], "NOERROR");
    assert_eq!(lines[0]["region"], "eu-west");
    assert_eq!(lines[0]["ecs"], "198.51.100.0/24");
    assert_eq!(lines[0]["tc"], false);
    assert_eq!(lines[1]["rcode"], "FORMERR");
    assert_eq!(lines[2]["name"], "nope.cdn.example.test.");
    assert_eq!(lines[2]["qtype"], "AAAA");
    assert_eq!(lines[2]["rcode"], "NXDOMAIN");
}
