//! The real `edge` binary with per-host tenant rules: signed URLs (valid, expired, tampered,
//! rotated, prefix; `edge sign-url`), per-client rate limits (429 after the burst, recovery),
//! geo rules (country from the network map, CIDR, behind a trusted proxy), CORS preflight and
//! header rules, and the per-host origin concurrency cap.

mod cache_support;
mod ops_support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cache_support::*;
use ops_support::*;

const KEY_A: &[u8] = b"key-a-0123456789-0123456789-abcd";
const KEY_B: &[u8] = b"key-b-0123456789-0123456789-abcd";

fn origin() -> Origin {
    Origin::start(|r, _| {
        let mut h = vec![
            ("cache-control", "max-age=60".to_string()),
            ("server", "origin/1".to_string()),
        ];
        // An origin with CORS of its own: `*`, or the request's Origin echoed with credentials.
        if r.path == "/cors-star" {
            h.push(("access-control-allow-origin", "*".into()));
            h.push(("access-control-expose-headers", "x-secret".into()));
        }
        if r.path == "/cors-echo" {
            let o = r.headers.get("origin").cloned().unwrap_or_default();
            h.push(("access-control-allow-origin", o));
            h.push(("access-control-allow-credentials", "true".into()));
        }
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        OriginResp::new(200, &hv, format!("body of {}", r.path))
    })
}

/// An edge config for `example.test` in front of `origin`, with `host` appended to the host
/// table and `top` as extra top-level sections.
fn edge_toml(origin: &Origin, http: &str, top: &str, host: &str) -> String {
    format!(
        r#"
[edge]
id = "t1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
{http}
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[cache]
memory = "32 MiB"
{top}
[[hosts]]
name = "example.test"
origin = "{}"
{host}
"#,
        origin.url()
    )
}

fn get(e: &EdgeProcess, path: &str, headers: &[(&str, &str)]) -> Resp {
    let mut h = vec![("host", "example.test")];
    h.extend_from_slice(headers);
    request(e.http, "GET", path, &h, b"").expect("edge answers")
}

/// A GET from source address `src` (any 127/8 address on loopback).
fn get_from(src: IpAddr, to: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::new(src, 0).into()).unwrap();
    s.connect(&to.into()).unwrap();
    let mut c: std::net::TcpStream = s.into();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut head = format!("GET {path} HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    c.write_all(head.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = c.read_to_end(&mut raw);
    parse_response(&raw, false).unwrap()
}

fn metrics(e: &EdgeProcess) -> String {
    let r = request(e.admin, "GET", "/metrics", &[("host", "admin")], b"").unwrap();
    String::from_utf8_lossy(&r.body).into_owned()
}

fn sign(pq: &str, name: &str, key: &[u8], expires: u64) -> String {
    cdn_edge::tenant::signed::sign(pq, name, key, expires)
}

fn now_s() -> u64 {
    cdn_shared::unix_ms() / 1000
}

#[test]
fn signed_urls_valid_expired_tampered_rotated_and_prefix() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let kf = dir.path().join("b.key");
    std::fs::write(&kf, URL_SAFE_NO_PAD.encode(KEY_B) + "\n").unwrap();
    let host = format!(
        r#"[hosts.signed_urls]
keys = [ {{ name = "a", key = "{}" }}, {{ name = "b", key_file = "{}" }} ]"#,
        URL_SAFE_NO_PAD.encode(KEY_A),
        kf.display()
    );
    let e = EdgeProcess::start(&edge_toml(&o, "", "", &host));
    let exp = now_s() + 600;

    // Valid: served; the origin sees neither the signature parameters nor a different key.
    let u = sign("/v.txt?x=1", "a", KEY_A, exp);
    let r = get(&e, &u, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"body of /v.txt?x=1");
    assert_eq!(o.requests("/v.txt?x=1").len(), 1);
    // The same object signed with the other (rotated-in) key is the same cache entry.
    let r = get(&e, &sign("/v.txt?x=1", "b", KEY_B, exp + 5), &[]);
    assert_eq!((r.status, r.x_cache()), (200, "HIT"), "{r:?}");

    // Missing, expired, tampered, unknown key, wrong key: 403, a generic body, not cached.
    let refused = |target: &str| {
        let r = get(&e, target, &[]);
        assert_eq!(r.status, 403, "{target}: {r:?}");
        assert_eq!(r.body, b"Forbidden\n", "{target}");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    };
    refused("/v.txt?x=1");
    refused(&sign("/v.txt?x=1", "a", KEY_A, now_s() - 1));
    refused(&u.replace("x=1", "x=2"));
    refused(&sign("/v.txt?x=1", "c", KEY_A, exp));
    refused(&sign("/v.txt?x=1", "a", KEY_B, exp));

    // Prefix form: one token for a playlist's segments, not for other paths.
    let q = cdn_edge::tenant::signed::sign_prefix("/hls/s1/", "a", KEY_A, exp);
    assert_eq!(get(&e, &format!("/hls/s1/seg1.ts?{q}"), &[]).status, 200);
    assert_eq!(get(&e, &format!("/hls/s1/seg2.ts?{q}"), &[]).status, 200);
    assert_eq!(get(&e, &format!("/hls/s2/seg1.ts?{q}"), &[]).status, 403);
    assert_eq!(o.count("/hls/s1/seg1.ts"), 1);

    // `edge sign-url` makes URLs the edge accepts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["sign-url", "--key-name", "b", "--key-file"])
        .arg(&kf)
        .args(["--ttl", "10m", "http://example.test/cli.txt"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let signed = String::from_utf8(out.stdout).unwrap();
    let pq = signed.trim().strip_prefix("http://example.test").unwrap();
    assert!(pq.starts_with("/cli.txt?Expires="), "{pq}");
    assert_eq!(get(&e, pq, &[]).status, 200);
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args([
            "sign-url",
            "--key-name",
            "b",
            "--key-file",
            "/nonexistent",
            "/x",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(64));

    let m = metrics(&e);
    for reason in [
        "signature_missing",
        "signature_expired",
        "signature_invalid",
        "signature_unknown_key",
        "signature_outside_prefix",
    ] {
        assert!(
            m.contains(&format!(
                "cdn_edge_tenant_refusals_total{{host=\"example.test\",reason=\"{reason}\"}}"
            )),
            "{reason} missing in metrics:\n{m}"
        );
    }
}

#[test]
fn rate_limit_refuses_after_the_burst_and_recovers() {
    let o = origin();
    let e = EdgeProcess::start(&edge_toml(
        &o,
        "",
        "",
        "[hosts.rate_limit]\nrate = 4.0\nburst = 6",
    ));
    let me: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    // Well within the burst even on a slow machine (the rate adds a token every 250 ms).
    let mut ok = 0;
    let mut limited = None;
    for _ in 0..40 {
        let r = get_from(me, e.http, "/r.txt", &[]);
        match r.status {
            200 => ok += 1,
            429 => {
                limited = Some(r);
                break;
            }
            s => panic!("unexpected {s}"),
        }
    }
    let limited = limited.expect("429 after the burst");
    assert!(ok >= 6, "the burst of 6 is served first ({ok})");
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    assert_eq!(limited.x_cache(), "DENIED");
    // Another client has its own bucket.
    assert_eq!(get_from(other, e.http, "/r.txt", &[]).status, 200);
    // The bucket refills: within a few seconds the client is served again.
    assert!(wait_until(Duration::from_secs(5), || get_from(
        me,
        e.http,
        "/r.txt",
        &[]
    )
    .status
        == 200));
    assert!(metrics(&e)
        .contains("cdn_edge_tenant_refusals_total{host=\"example.test\",reason=\"rate_limited\"}"));
}

#[test]
fn geo_rules_by_country_cidr_and_trusted_proxy() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.txt");
    std::fs::write(
        &map,
        "# demo\n127.0.99.0/24 kp-region country=KP\n127.0.0.0/8 0,0 country=US\n",
    )
    .unwrap();
    let top = format!("[geo]\nnetwork_map = \"{}\"", map.display());
    let http = "trusted_proxies = [\"127.0.50.0/24\"]";
    let host = "[hosts.geo]\ndeny_countries = [\"KP\"]\ndeny_cidrs = [\"127.0.98.0/24\"]\nallow_cidrs = [\"127.0.99.77/32\"]\nstatus = 451";
    let e = EdgeProcess::start(&edge_toml(&o, http, &top, host));
    let ip = |s: &str| -> IpAddr { s.parse().unwrap() };

    assert_eq!(get_from(ip("127.0.0.1"), e.http, "/g.txt", &[]).status, 200);
    let r = get_from(ip("127.0.99.1"), e.http, "/g.txt", &[]);
    assert_eq!(r.status, 451, "{r:?}");
    assert_eq!(
        get_from(ip("127.0.98.5"), e.http, "/g.txt", &[]).status,
        451
    );
    // The allowed CIDR wins over the denied country.
    assert_eq!(
        get_from(ip("127.0.99.77"), e.http, "/g.txt", &[]).status,
        200
    );
    // Behind a trusted proxy the client is X-Forwarded-For's right-most untrusted hop ...
    let via = |xff: &str| {
        get_from(
            ip("127.0.50.1"),
            e.http,
            "/g.txt",
            &[("x-forwarded-for", xff)],
        )
        .status
    };
    assert_eq!(via("127.0.99.3"), 451);
    assert_eq!(via("127.0.99.3, 127.0.0.9"), 200);
    assert_eq!(via("127.0.0.9, 127.0.99.3"), 451);
    // ... and an untrusted peer's X-Forwarded-For is ignored.
    assert_eq!(
        get_from(
            ip("127.0.0.1"),
            e.http,
            "/g.txt",
            &[("x-forwarded-for", "127.0.99.3")]
        )
        .status,
        200
    );
    let m = metrics(&e);
    assert!(m.contains("reason=\"geo_country\""), "{m}");
    assert!(m.contains("reason=\"geo_cidr\""), "{m}");
}

#[test]
fn cors_preflight_and_header_rules() {
    let o = origin();
    let host = r#"[hosts.headers]
response_set = { "X-Served-By" = "$edge_id", "Timing-Allow-Origin" = "*" }
response_remove = ["Server"]
request_set = { "X-Origin-Secret" = "s3cr3t" }
[hosts.cors]
allow_origins = ["https://app.example"]
allow_methods = ["GET", "POST"]
allow_headers = ["X-Token"]
max_age = "10m""#;
    let e = EdgeProcess::start(&edge_toml(&o, "", "", host));

    let r = get(&e, "/c.txt", &[("origin", "https://app.example")]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-served-by"), Some("t1"));
    assert_eq!(r.header("timing-allow-origin"), Some("*"));
    assert_eq!(r.header("server"), None);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(r.header("vary").is_some_and(|v| v.contains("Origin")));
    assert_eq!(
        o.requests("/c.txt")[0]
            .headers
            .get("x-origin-secret")
            .map(String::as_str),
        Some("s3cr3t")
    );
    // A hit for another origin gets no allowance.
    let r = get(&e, "/c.txt", &[("origin", "https://evil.example")]);
    assert_eq!((r.status, r.x_cache()), (200, "HIT"));
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Nor does it get the origin's own CORS fields, stored with the object: the host's
    // allow-list decides (an allowed Origin keeps the origin's credentials allowance).
    for path in ["/cors-star", "/cors-echo"] {
        for (origin, allowed) in [
            ("https://app.example", true),
            ("https://evil.example", false),
        ] {
            let r = get(&e, path, &[("origin", origin)]);
            assert_eq!(r.status, 200);
            let acao = r.header("access-control-allow-origin");
            if allowed {
                assert_eq!(acao, Some("https://app.example"), "{path} {origin}");
            } else {
                assert_eq!(acao, None, "{path} {origin}: {:?}", r.headers);
                assert_eq!(r.header("access-control-allow-credentials"), None, "{path}");
                assert_eq!(r.header("access-control-expose-headers"), None, "{path}");
            }
        }
    }
    assert_eq!(
        get(&e, "/cors-echo", &[("origin", "https://app.example")])
            .header("access-control-allow-credentials"),
        Some("true")
    );

    let preflight = |origin: &str, method: &str, headers: Option<&str>| {
        let mut h = vec![
            ("host", "example.test"),
            ("origin", origin),
            ("access-control-request-method", method),
        ];
        if let Some(x) = headers {
            h.push(("access-control-request-headers", x));
        }
        request(e.http, "OPTIONS", "/c.txt", &h, b"").unwrap()
    };
    let p = preflight("https://app.example", "POST", Some("X-Token"));
    assert_eq!(p.status, 204, "{p:?}");
    assert_eq!(
        p.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(p.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(p.header("access-control-allow-headers"), Some("X-Token"));
    assert_eq!(p.header("access-control-max-age"), Some("600"));
    assert_eq!(p.header("x-served-by"), Some("t1"));
    assert_eq!(preflight("https://evil.example", "GET", None).status, 403);
    assert_eq!(preflight("https://app.example", "DELETE", None).status, 403);
    // Preflights never reach the origin.
    assert!(o.seen.lock().unwrap().iter().all(|r| r.method != "OPTIONS"));
}

#[test]
fn origin_concurrency_cap_queues_then_refuses() {
    let o = Origin::start(|_, _| {
        let mut r = OriginResp::new(200, &[("cache-control", "max-age=60")], "slow");
        r.head_delay = Duration::from_millis(1500);
        r
    });
    let e = EdgeProcess::start(&edge_toml(
        &o,
        "",
        "",
        "max_origin_requests = 1\norigin_queue_timeout = \"200ms\"\nfirst_byte_timeout = \"10s\"",
    ));
    let addr = e.http;
    let first = std::thread::spawn(move || {
        request(addr, "GET", "/slow1", &[("host", "example.test")], b"").unwrap()
    });
    // Wait until the first miss holds the only slot.
    assert!(wait_until(Duration::from_secs(5), || o.count("/slow1") == 1));
    let second = get(&e, "/slow2", &[]);
    assert_eq!(second.status, 503, "{second:?}");
    assert_eq!(first.join().unwrap().status, 200);
    assert_eq!(o.count("/slow2"), 0);
    // With the slot free again, the next miss goes through.
    assert_eq!(get(&e, "/slow3", &[]).status, 200);
    assert!(metrics(&e).contains("cdn_edge_origin_queue_timeouts_total{host=\"example.test\"} 1"));
}

#[test]
fn bad_tenant_config_names_the_key() {
    let o = origin();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[hosts.rate_limit]\nrate = 0.0\nburst = 5",
            "hosts[0].rate_limit.rate",
        ),
        (
            "[hosts.geo]\ndeny_countries = [\"kp\"]",
            "hosts[0].geo.deny_countries[0]",
        ),
        (
            "[hosts.signed_urls]\nkeys = [ { name = \"a\", key_file = \"/nonexistent/k\" } ]",
            "hosts[0].signed_urls.keys[0].key_file",
        ),
        (
            "[hosts.signed_urls]\nkeys = [ { name = \"a\", key = \"c2hvcnQ\" } ]",
            "hosts[0].signed_urls.keys[0]",
        ),
        (
            "[hosts.cors]\nallow_origins = [\"app.example\"]",
            "hosts[0].cors.allow_origins[0]",
        ),
    ];
    for (i, (host, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("e{i}.toml"));
        std::fs::write(&path, edge_toml(&o, "", "", host)).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
            .arg("--check-config")
            .arg("--config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{host}: {err}");
        assert!(err.contains(key), "{host}: expected `{key}` in: {err}");
    }
}

#[test]
fn a_host_with_its_own_cache_share_keeps_its_working_set() {
    let o = Origin::start(|r, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=600")],
            vec![b'x'; 64 * 1024 + r.path.len()],
        )
    });
    // `example.test` shares [cache] (4 MiB) with `noisy.test` and `bystander.test`;
    // `isolated.test` has 4 MiB of its own.
    let extra = format!(
        r#"
[[hosts]]
name = "isolated.test"
origin = "{0}"
cache = {{ memory = "4 MiB" }}
[[hosts]]
name = "noisy.test"
origin = "{0}"
[[hosts]]
name = "bystander.test"
origin = "{0}"
"#,
        o.url()
    );
    let toml =
        edge_toml(&o, "", "", "").replace("memory = \"32 MiB\"", "memory = \"4 MiB\"") + &extra;
    let e = EdgeProcess::start(&toml);
    let fetch = |host: &str, path: &str| {
        request(e.http, "GET", path, &[("host", host)], b"")
            .expect("edge answers")
            .x_cache()
            .to_string()
    };
    for i in 0..8 {
        assert_eq!(fetch("isolated.test", &format!("/w/{i}")), "MISS");
        assert_eq!(fetch("bystander.test", &format!("/w/{i}")), "MISS");
    }
    // A long tail on the shared partition: 20 MiB through 4 MiB.
    for i in 0..320 {
        fetch("noisy.test", &format!("/tail/{i}"));
    }
    let isolated_hits = (0..8)
        .filter(|i| fetch("isolated.test", &format!("/w/{i}")) == "HIT")
        .count();
    let bystander_hits = (0..8)
        .filter(|i| fetch("bystander.test", &format!("/w/{i}")) == "HIT")
        .count();
    assert_eq!(isolated_hits, 8, "the isolated host's working set survived");
    assert!(
        bystander_hits < 8,
        "without a share the tail evicts (control): {bystander_hits} hits"
    );
    let m = metrics(&e);
    assert!(
        m.contains("cdn_edge_host_requests_total{host=\"isolated.test\",cache=\"hit\"} 8"),
        "{m}"
    );
}
