//! Explain tells the truth: for many (name, type, client prefix) questions, the answer
//! `GET /api/v1/explain` shows — rcode, every record of the answer and authority sections
//! (owner, type, TTL, data), the TTL and the ECS scope — equals what the router answers over
//! UDP and over TCP. Names cover services (plain, wildcard, ECS ignored, two answers), a CNAME
//! into a service, a CNAME to a static record and one out of the zone, static records, a
//! static wildcard, NODATA, an empty non-terminal, NXDOMAIN, a referral, and names outside the
//! zones; clients are ECS /24 and /56 prefixes (the test network map, the demo network map in
//! `deploy/network-map.txt`, pseudo-random ones) and no ECS at all. With the GeoLite2 City
//! database at the path `cdn_geo::testdata` names, it is loaded too and real prefixes from it
//! are asked as well.

mod dns_support;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use hickory_proto::rr::{Record, RecordType};
use serde_json::Value;

use dns_support::*;

/// Extra zone data and services for this test (appended to the shared base config).
const EXTRA: &str = r#"
[[zones.records]]
name = "cdnalias"
type = "CNAME"
data = ["www"]
[[zones.records]]
name = "chain"
type = "CNAME"
data = ["cdnalias"]
[[zones.records]]
name = "outside"
type = "CNAME"
data = ["www.example.net."]
[[zones.records]]
name = "*.w"
type = "A"
ttl = 45
data = ["192.0.2.111", "192.0.2.112"]
[[zones.records]]
name = "*.w"
type = "AAAA"
ttl = 45
data = ["2001:db8::111"]
"#;

const NAMES: &[&str] = &[
    "www.cdn.example.test",
    "WwW.cdn.example.test",
    "x.img.cdn.example.test",
    "a.b.img.cdn.example.test",
    "noecs.cdn.example.test",
    "two.cdn.example.test",
    "strict.cdn.example.test",
    "cdnalias.cdn.example.test",
    "chain.cdn.example.test",
    "alias.cdn.example.test",
    "outside.cdn.example.test",
    "static.cdn.example.test",
    "q.w.cdn.example.test",
    "ns1.cdn.example.test",
    "cdn.example.test",
    "b.cdn.example.test",
    "nothere.cdn.example.test",
    "x.sub.cdn.example.test",
    "example.org",
    "www.example.test",
];

/// A comparable view of one response (or of one explanation).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    rcode: u16,
    answer: Vec<(String, String, u32, String)>,
    authority: Vec<(String, String, u32, String)>,
    ttl: Option<u32>,
    ecs_scope: u8,
}

fn rec(r: &Record) -> (String, String, u32, String) {
    (
        r.name.to_ascii().to_ascii_lowercase(),
        r.record_type().to_string(),
        r.ttl,
        r.data.to_string(),
    )
}

/// What a DNS response says, in the shape explain uses.
fn from_dns(m: &Message, sent_ecs: bool) -> Seen {
    let answer: Vec<_> = m.answers.iter().map(rec).collect();
    let authority: Vec<_> = m.authorities.iter().map(rec).collect();
    let rcode = u16::from(m.metadata.response_code);
    // NXDOMAIN, or NODATA (NOERROR with the SOA in authority).
    let negative = answer.is_empty() && authority.iter().any(|r| r.1 == "SOA");
    let ttl = match answer.last() {
        Some(r) => Some(r.2),
        None if negative => authority.iter().find(|r| r.1 == "SOA").map(|r| r.2),
        None => None,
    };
    let ecs = ecs_of(m);
    assert_eq!(ecs.is_some(), sent_ecs, "ECS echoed iff sent: {m:?}");
    Seen {
        rcode,
        answer,
        authority,
        ttl,
        ecs_scope: ecs.map(|e| e.1).unwrap_or(0),
    }
}

fn records_of(v: &Value) -> Vec<(String, String, u32, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a record list: {v}"))
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_ascii_lowercase(),
                r["type"].as_str().unwrap().to_string(),
                r["ttl"].as_u64().unwrap() as u32,
                r["data"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn from_explain(v: &Value) -> Seen {
    Seen {
        rcode: match v["rcode"].as_str() {
            Some("NOERROR") => 0,
            Some("FORMERR") => 1,
            Some("SERVFAIL") => 2,
            Some("NXDOMAIN") => 3,
            Some("NOTIMP") => 4,
            Some("REFUSED") => 5,
            _ => panic!("no known rcode: {v}"),
        },
        answer: records_of(&v["records"]),
        authority: records_of(&v["authority"]),
        ttl: v["ttl"].as_u64().map(|t| t as u32),
        ecs_scope: v["ecs_scope"].as_u64().unwrap() as u8,
    }
}

async fn explain(admin: SocketAddr, name: &str, rtype: RecordType, ecs: Option<&str>) -> Value {
    let mut url =
        format!("http://{admin}/api/v1/explain?name={name}&client=127.0.0.1&type={rtype}");
    if let Some(e) = ecs {
        url.push_str(&format!("&ecs={e}"));
    }
    let mut res = awc::Client::default()
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status().as_u16(), 200, "GET {url}");
    res.json::<Value>()
        .limit(1 << 20)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// splitmix64: pseudo-random prefixes, the same on every run.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn prefixes(with_db: bool) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None];
    for p in [
        // The test network map.
        "198.51.100.0/24",
        "203.0.113.0/24",
        "2001:db8:aa::/56",
        // The demo network map (deploy/network-map.txt).
        "8.8.8.0/24",
        "81.2.69.0/24",
        "1.0.16.0/24",
        "10.1.2.0/24",
        "2001:db8:e00::/56",
        // Nowhere in particular (default region).
        "192.0.2.0/24",
        "2001:db8:1234:5600::/56",
    ] {
        out.push(Some(p.to_string()));
    }
    let mut s = 0x5eed_u64;
    let random = if with_db { 24 } else { 8 };
    for _ in 0..random {
        let v4 = Ipv4Addr::from((next(&mut s) as u32) & 0xffff_ff00);
        out.push(Some(format!("{v4}/24")));
    }
    for _ in 0..random / 2 {
        // Global unicast 2000::/3, cut to /56.
        let bits = (u128::from(next(&mut s)) << 64) >> 3 | (1u128 << 125);
        let v6 = Ipv6Addr::from(bits & !(u128::MAX >> 56));
        out.push(Some(format!("{v6}/56")));
    }
    out
}

fn workspace_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(rel)
}

#[test]
fn explain_gives_the_answer_dns_gives() {
    let (up, _edge) = healthy_edge();
    let db = cdn_geo::testdata::geolite2_city();
    let demo_map = workspace_file("deploy/network-map.txt");
    let mut geo = format!(
        "default_region = \"us-east\"\nnetwork_map = {:?}\n",
        demo_map.display().to_string()
    );
    if let Some(db) = &db {
        geo.push_str(&format!("database = {:?}\n", db.display().to_string()));
    }
    let text = config_text(&up, &up, &up).replace("default_region = \"us-east\"\n", &geo) + EXTRA;
    let s = Server::start(&text);

    actix_rt::System::new().block_on(async move {
        // Every edge Up (probes every 50 ms, rise 1) before comparing, so the health
        // generation stays put during the comparison.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let v = explain(s.admin, "www.cdn.example.test", RecordType::A, None).await;
            let cands = v["candidates"].as_array().cloned().unwrap_or_default();
            if cands.len() == 3 && cands.iter().all(|c| c["health"] == "up") {
                break;
            }
            assert!(Instant::now() < deadline, "edges not up: {v}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The precompiled geo map is built beside the first snapshot: compare once it is
        // attached, so that what is compared is the map's answers.
        let deadline = Instant::now() + cdn_tests::harness::scaled(Duration::from_secs(60));
        loop {
            let v = explain(s.admin, "www.cdn.example.test", RecordType::A, Some("81.2.69.0/24"))
                .await;
            if v["precompiled"] == true {
                break;
            }
            assert!(Instant::now() < deadline, "the geo map was not attached: {v}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let mut compared = 0usize;
        let mut equal = 0usize;
        let mut mismatches = Vec::new();
        let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
        let mut addresses = std::collections::BTreeSet::new();
        let mut sources: BTreeMap<String, usize> = BTreeMap::new();
        let mut precompiled = 0usize;
        for ecs in prefixes(db.is_some()) {
            for name in NAMES {
                for rtype in [RecordType::A, RecordType::AAAA] {
                    let q = with_edns(query(name, rtype), ecs.as_deref());
                    let mut tries = 0;
                    loop {
                        tries += 1;
                        let before = explain(s.admin, name, rtype, ecs.as_deref()).await;
                        let by_udp = from_dns(&udp(s.dns, &q), ecs.is_some());
                        let by_tcp = from_dns(&tcp(s.dns, &q), ecs.is_some());
                        let after = explain(s.admin, name, rtype, ecs.as_deref()).await;
                        if before["health_generation"] != after["health_generation"] && tries < 3 {
                            continue; // health moved under us: ask again
                        }
                        let shown = from_explain(&after);
                        *outcomes
                            .entry(after["outcome"].as_str().unwrap_or("?").to_string())
                            .or_default() += 1;
                        if after["precompiled"] == true {
                            precompiled += 1;
                        }
                        if let Some(src) = after["location"]["source"].as_str() {
                            *sources.entry(src.to_string()).or_default() += 1;
                        }
                        for a in after["answer"].as_array().into_iter().flatten() {
                            addresses.insert(a.to_string());
                        }
                        for (transport, seen) in [("udp", by_udp), ("tcp", by_tcp)] {
                            compared += 1;
                            if seen == shown {
                                equal += 1;
                            } else {
                                mismatches.push(format!(
                                    "{name} {rtype} ecs={ecs:?} over {transport}:\n  dns     {seen:?}\n  explain {shown:?}"
                                ));
                            }
                        }
                        break;
                    }
                }
            }
        }
        eprintln!(
            "explain vs DNS: {equal} of {compared} equal (GeoLite2 {}; {precompiled} service answers from the precompiled map); outcomes {outcomes:?}; located by {sources:?}",
            if db.is_some() { "loaded" } else { "absent" }
        );
        assert!(
            mismatches.is_empty(),
            "{} of {compared} differ:\n{}",
            mismatches.len(),
            mismatches.join("\n")
        );
        // The questions reached every kind of answer, and clients in different places got
        // different edges (so the comparison covers real routing, not one constant answer).
        for kind in [
            "service",
            "static",
            "cname",
            "nodata",
            "nxdomain",
            "refused",
            "referral to sub.cdn.example.test.",
        ] {
            assert!(outcomes.contains_key(kind), "no `{kind}` in {outcomes:?}");
        }
        for src in ["network_map", "default"] {
            assert!(sources.contains_key(src), "no client located by {src}: {sources:?}");
        }
        if db.is_some() {
            assert!(
                sources.contains_key("geo_ip"),
                "no client located by the database: {sources:?}"
            );
        }
        assert!(
            precompiled > 0,
            "no service answer came from the precompiled map"
        );
        let edge_addresses = ["\"192.0.2.10\"", "\"192.0.2.20\"", "\"192.0.2.30\""];
        assert!(
            edge_addresses.iter().all(|a| addresses.contains(*a)),
            "every edge answered some client: {addresses:?}"
        );
    });
}
