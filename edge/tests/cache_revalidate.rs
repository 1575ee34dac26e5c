//! Revalidation (stale → conditional request → 304 refresh) and client conditionals
//! answered from cache (If-None-Match, If-Modified-Since, Range + If-Range).

mod cache_support;
use std::time::Duration;

use cache_support::*;

#[test]
fn stale_entry_is_revalidated_and_304_refreshes_it() {
    let origin = Origin::start(|r, _| {
        if r.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
            return OriginResp::new(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "max-age=60"),
                    ("x-new", "yes"),
                ],
                "",
            );
        }
        OriginResp::new(
            200,
            &[
                ("etag", "\"v1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("cache-control", "max-age=1"),
            ],
            "payload",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    assert_eq!(edge.get("/s", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/s", &[]).x_cache(), "HIT");
    // The first answer after max-age=1 runs out is the revalidation.
    let r = first_non_hit(&edge, "/s", Duration::from_secs(10));
    assert_eq!(r.x_cache(), "REVALIDATED");
    assert_eq!(r.body, b"payload");
    assert_eq!(
        r.header("x-new"),
        Some("yes"),
        "304 headers update the stored ones"
    );
    let reqs = origin.requests("/s");
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[1].headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(
        reqs[1].headers.get("if-modified-since").map(String::as_str),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    // The refreshed freshness (max-age=60 from the 304) holds.
    let r = edge.get("/s", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.cache_status().contains("ttl=60") || r.cache_status().contains("ttl=59"));
    assert_eq!(origin.count("/s"), 2);
}

#[test]
fn client_conditionals_and_ranges_from_cache() {
    let body = body_of(1000, 7);
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        OriginResp::new(
            200,
            &[
                ("etag", "\"e1\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                ("cache-control", "max-age=60"),
            ],
            b2.clone(),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    edge.get("/c", &[]);

    let r = edge.get("/c", &[("if-none-match", "\"e1\"")]);
    assert_eq!((r.status, r.body.len()), (304, 0));
    assert_eq!(r.header("etag"), Some("\"e1\""));
    assert_eq!(edge.get("/c", &[("if-none-match", "W/\"e1\"")]).status, 304);
    assert_eq!(edge.get("/c", &[("if-none-match", "\"zz\"")]).status, 200);
    let r = edge.get(
        "/c",
        &[("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT")],
    );
    assert_eq!(r.status, 304);
    let r = edge.get(
        "/c",
        &[("if-modified-since", "Sun, 06 Nov 1994 08:00:00 GMT")],
    );
    assert_eq!(r.status, 200);

    let r = edge.get("/c", &[("range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(r.body, &body[10..20]);
    let r = edge.get("/c", &[("range", "bytes=-5")]);
    assert_eq!((r.status, r.body.as_slice()), (206, &body[995..]));
    let r = edge.get("/c", &[("range", "bytes=5000-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1000"));
    let r = edge.get("/c", &[("range", "bytes=0-3"), ("if-range", "\"e1\"")]);
    assert_eq!((r.status, r.body.len()), (206, 4));
    let r = edge.get("/c", &[("range", "bytes=0-3"), ("if-range", "\"old\"")]);
    assert_eq!((r.status, r.body.len()), (200, 1000));
    assert_eq!(origin.count("/c"), 1, "all answered from cache");
}

#[test]
fn a_304_keeps_the_surrogate_control_lifetime() {
    // `Cache-Control: max-age=0` for browsers, `Surrogate-Control: max-age=1` for the CDN (a
    // common pattern). After the first revalidation the object is fresh again for the
    // Surrogate-Control lifetime, whether or not the 304 repeats it — not revalidated on every
    // request from then on.
    for repeat in [true, false] {
        let origin = Origin::start(move |r, _| {
            let mut h = vec![("etag", "\"v1\""), ("cache-control", "max-age=0")];
            if r.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
                if repeat {
                    h.push(("surrogate-control", "max-age=1"));
                }
                return OriginResp::new(304, &h, "");
            }
            h.push(("surrogate-control", "max-age=1"));
            OriginResp::new(200, &h, "body")
        });
        let edge = Edge::start(config(&origin.url(), "", ""));
        assert_eq!(edge.get("/s", &[]).x_cache(), "MISS");
        assert_eq!(edge.get("/s", &[]).x_cache(), "HIT");
        std::thread::sleep(Duration::from_millis(1100));
        let r = edge.get("/s", &[]);
        assert_eq!(r.x_cache(), "REVALIDATED", "repeat={repeat}");
        for _ in 0..3 {
            let r = edge.get("/s", &[]);
            assert_eq!(r.x_cache(), "HIT", "repeat={repeat}: {}", r.cache_status());
        }
        assert_eq!(origin.count("/s"), 2, "repeat={repeat}");
    }
}

#[test]
fn a_304_that_forbids_storing_drops_the_stored_object() {
    // RFC 9111 §4.3.4: the stored response is updated with the 304's fields; when those say
    // `no-store`, the updated response may not be kept.
    let origin = Origin::start(|r, _| {
        if r.headers.get("if-none-match").map(String::as_str) == Some("\"v1\"") {
            return OriginResp::new(
                304,
                &[("etag", "\"v1\""), ("cache-control", "no-store")],
                "",
            );
        }
        OriginResp::new(
            200,
            &[("etag", "\"v1\""), ("cache-control", "max-age=0")],
            "body",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    assert_eq!(edge.get("/n", &[]).x_cache(), "MISS");
    let r = edge.get("/n", &[]);
    assert_eq!(r.x_cache(), "REVALIDATED");
    assert_eq!(r.body, b"body");
    // Not stored any more: the next request is a plain miss (no If-None-Match to revalidate).
    let r = edge.get("/n", &[]);
    assert_eq!(r.x_cache(), "MISS", "{}", r.cache_status());
    let asked = origin.requests("/n");
    assert_eq!(asked.len(), 3);
    assert!(
        !asked[2].headers.contains_key("if-none-match"),
        "{:?}",
        asked[2].headers
    );
}

#[test]
fn if_modified_since_falls_back_to_the_stored_date() {
    // RFC 9111 §4.3.2: without a stored Last-Modified, a cache compares If-Modified-Since with
    // the stored response's Date.
    let now = std::time::SystemTime::now();
    let date = httpdate::fmt_http_date(now);
    let d2 = date.clone();
    let origin = Origin::start(move |_, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60"), ("date", d2.as_str())],
            "no validators but a date",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    edge.get("/d", &[]);
    let later = httpdate::fmt_http_date(now + Duration::from_secs(3600));
    let r = edge.get("/d", &[("if-modified-since", later.as_str())]);
    assert_eq!((r.status, r.x_cache()), (304, "HIT"));
    let earlier = httpdate::fmt_http_date(now - Duration::from_secs(3600));
    let r = edge.get("/d", &[("if-modified-since", earlier.as_str())]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"no validators but a date");
}
