//! Interim (1xx) responses from the origin are never final, and 204 / 304 / HEAD answers carry
//! no body bytes on any connection, cold or cached (issue 13 points 1 and 2). Raw sockets on
//! both sides: the origin writes its bytes exactly, the client reads by framing on one
//! kept-alive connection and then looks for stray bytes.

mod protocol_support;

use std::time::Duration;

use protocol_support::{config, resp, Edge, RawOrigin};

fn interim_origin() -> RawOrigin {
    RawOrigin::start(|r| {
        let mut out = Vec::new();
        match r.target.as_str() {
            "/hints" => {
                out.extend(resp(
                    "103 Early Hints",
                    &[("link", "</style.css>; rel=preload")],
                    None,
                ));
            }
            "/many" => {
                out.extend(resp("100 Continue", &[], None));
                out.extend(resp("102 Processing", &[], None));
                out.extend(resp("103 Early Hints", &[("link", "</a.js>")], None));
            }
            _ => {}
        }
        out.extend(resp(
            "200 OK",
            &[("cache-control", "max-age=60"), ("x-final", "yes")],
            Some(format!("body of {}", r.target).as_bytes()),
        ));
        out
    })
}

#[test]
fn interim_responses_are_dropped_and_the_final_one_is_served_and_cached() {
    let origin = interim_origin();
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let mut c = edge.conn();
    for path in ["/hints", "/many", "/plain"] {
        let r = c.request("GET", path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.header("x-final"), Some("yes"), "{path}");
        assert_eq!(r.body, format!("body of {path}").as_bytes(), "{path}");
        assert!(
            r.header("link").is_none(),
            "1xx headers are not merged: {r:?}"
        );
        let again = c.request("GET", path, &[]);
        assert_eq!(again.status, 200);
        assert_eq!(again.header("x-cache"), Some("HIT"), "{path}: {again:?}");
        assert!(again.header("link").is_none(), "1xx headers are not stored");
        assert_eq!(origin.count(path), 1, "{path}");
    }
    // The pooled origin connection is clean after interim responses: more misses over it
    // each get their own final answer.
    for i in 0..4 {
        let p = format!("/hints?n={i}");
        let r = c.request("GET", &p, &[]);
        assert_eq!(r.body, format!("body of {p}").as_bytes());
    }
    assert!(c.stray(Duration::from_millis(200)).is_empty());
}

#[test]
fn interim_responses_on_pass_through_are_dropped() {
    let origin = interim_origin();
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let mut c = edge.conn();
    c.send("POST", "/hints", &[("expect", "100-continue")], b"payload")
        .unwrap();
    let mut r = c.read(false).unwrap();
    if r.status == 100 {
        // actix-web's own 100 Continue to our Expect; the final answer follows.
        r = c.read(false).unwrap();
    }
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, b"body of /hints");
    let seen = origin.last("/hints").unwrap();
    assert!(seen.header("expect").is_none(), "Expect is not forwarded");
    assert!(c.stray(Duration::from_millis(200)).is_empty());
}

fn bodiless_origin() -> RawOrigin {
    RawOrigin::start(|r| match r.target.as_str() {
        // Cacheable 204 and an unstored one.
        "/nc" => resp("204 No Content", &[("cache-control", "max-age=60")], None),
        "/ns" => resp("204 No Content", &[("cache-control", "no-store")], None),
        // An origin answering 304 to an unconditional request (buggy, but seen).
        "/304" => resp("304 Not Modified", &[("etag", "\"e\"")], None),
        _ => resp(
            "200 OK",
            &[("cache-control", "max-age=60"), ("etag", "\"e\"")],
            Some(b"0123456789"),
        ),
    })
}

#[test]
fn no_body_bytes_for_204_304_and_head_cold_or_cached() {
    let origin = bodiless_origin();
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let mut c = edge.conn();
    // Cold, then cached, on one connection; each answer read by framing, then a probe
    // request whose answer must parse.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], u16);
    let cases: &[Case] = &[
        ("GET", "/nc", &[], 204),
        ("GET", "/nc", &[], 204),
        ("GET", "/ns", &[], 204),
        ("GET", "/ns", &[], 204),
        ("GET", "/304", &[], 304),
        ("HEAD", "/h", &[], 200),
        ("HEAD", "/h", &[], 200),
        ("GET", "/h", &[("if-none-match", "\"e\"")], 304),
        ("HEAD", "/h", &[("range", "bytes=0-3")], 206),
        ("HEAD", "/h2", &[("range", "bytes=0-3")], 206),
        ("DELETE", "/ns", &[], 204),
    ];
    for (m, p, h, want) in cases {
        let r = c.request(m, p, h);
        assert_eq!(r.status, *want, "{m} {p} {h:?}: {r:?}");
        if *want == 204 || *want == 304 {
            assert!(
                r.header("content-length").is_none_or(|v| v == "0")
                    && r.header("transfer-encoding").is_none(),
                "{m} {p}: no framing for a bodiless status: {r:?}"
            );
        }
        let probe = c.request("GET", "/probe", &[]);
        assert_eq!(probe.status, 200, "after {m} {p}: {probe:?}");
        assert_eq!(probe.body, b"0123456789", "after {m} {p}");
    }
    assert!(c.stray(Duration::from_millis(300)).is_empty());
}
