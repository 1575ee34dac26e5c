//! Thin path: a miss fills and stores, the next request is a hit; unknown hosts get 421.

mod cache_support;
use cache_support::*;

#[test]
fn miss_then_hit_with_cache_headers() {
    let origin = Origin::start(|_, _| {
        OriginResp::new(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("content-type", "text/plain"),
            ],
            "hello",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));

    let r1 = edge.get("/a", &[]);
    assert_eq!(r1.status, 200);
    assert_eq!(r1.body, b"hello");
    assert_eq!(r1.x_cache(), "MISS");
    assert_eq!(
        r1.cache_status(),
        "e1; fwd=uri-miss; fwd-status=200; stored; ttl=60"
    );

    let r2 = edge.get("/a", &[]);
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body, b"hello");
    assert_eq!(r2.x_cache(), "HIT");
    assert!(
        r2.cache_status().starts_with("e1; hit; ttl="),
        "{}",
        r2.cache_status()
    );
    assert!(r2.header("age").is_some());
    assert_eq!(r2.header("content-type"), Some("text/plain"));
    assert!(r2.header("via").is_some_and(|v| v.contains("1.1 e1")));
    assert_eq!(
        origin.count("/a"),
        1,
        "second request must not reach the origin"
    );

    // Aliases share the entry; the Host header's case and port do not matter.
    let r3 = edge.get("/a", &[("host", "ALIAS.test:8080")]);
    assert_eq!(r3.x_cache(), "HIT");
    assert_eq!(origin.count("/a"), 1);
}

#[test]
fn unknown_host_is_421_and_healthz_answers() {
    let origin = Origin::start(|_, _| OriginResp::new(200, &[], "x"));
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/a", &[("host", "other.test")]);
    assert_eq!(r.status, 421);
    assert!(String::from_utf8_lossy(&r.body).contains("unknown host `other.test`"));
    assert_eq!(origin.count("/a"), 0);
    let h = edge.get("/healthz", &[("host", "127.0.0.1")]);
    assert_eq!((h.status, h.body.as_slice()), (200, &b"serving\n"[..]));
    let h = try_get(edge.admin, "/healthz", &[("host", "x")]).unwrap();
    assert_eq!(h.status, 200);
}
