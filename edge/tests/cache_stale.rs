//! stale-while-revalidate (serve stale, one background refresh) and stale-if-error (5xx,
//! timeout, refused, reset), from origin headers or the configured grace.

mod cache_support;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_support::*;

#[test]
fn stale_while_revalidate_serves_stale_and_refreshes_once() {
    let version = Arc::new(AtomicU32::new(1));
    let v2 = version.clone();
    let origin = Origin::start(move |_, _| {
        let mut r = OriginResp::new(
            200,
            &[("cache-control", "max-age=1, stale-while-revalidate=30")],
            format!("v{}", v2.load(Ordering::SeqCst)),
        );
        r.head_delay = Duration::from_millis(200);
        r
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    assert_eq!(edge.get("/swr", &[]).body, b"v1");
    version.store(2, Ordering::SeqCst);
    // Several requests while stale (the first one after max-age=1 runs out, then four more):
    // all served at once from cache, one background refresh.
    let first = first_non_hit(&edge, "/swr", Duration::from_secs(10));
    let rest = (0..4).map(|_| edge.get("/swr", &[]));
    for r in std::iter::once(first).chain(rest) {
        assert_eq!(r.x_cache(), "STALE");
        assert_eq!(r.body, b"v1");
        assert!(r.cache_status().contains("detail=stale-while-revalidate"));
    }
    assert!(wait_until(Duration::from_secs(5), || edge
        .get("/swr", &[])
        .body
        == b"v2"));
    assert_eq!(origin.count("/swr"), 2, "exactly one background refresh");
}

#[test]
fn stale_if_error_covers_5xx_refused_and_timeout() {
    let mode = Arc::new(AtomicU32::new(0));
    let m2 = mode.clone();
    let origin = Origin::start(move |_, _| match m2.load(Ordering::SeqCst) {
        0 => OriginResp::new(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "good",
        ),
        1 => OriginResp::new(503, &[], "down"),
        2 => {
            let mut r = OriginResp::new(200, &[], "slow");
            r.head_delay = Duration::from_secs(5);
            r
        }
        _ => {
            let mut r = OriginResp::new(200, &[], "");
            r.hang_up = true;
            r
        }
    });
    let mut cfg = config(&origin.url(), "", "");
    cfg.hosts[0].first_byte_timeout = Duration::from_millis(500);
    let edge = Edge::start(cfg);
    assert_eq!(edge.get("/e", &[]).body, b"good");
    // The origin fails with a 503 from now on; the first answer after max-age=1 runs out is
    // the stale copy, then the same for a timeout and a reset.
    mode.store(1, Ordering::SeqCst);
    let first = first_non_hit(&edge, "/e", Duration::from_secs(10));
    let mut first = Some(first);
    for m in [1, 2, 3] {
        mode.store(m, Ordering::SeqCst);
        let r = first.take().unwrap_or_else(|| edge.get("/e", &[]));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"good"[..]),
            "mode {m}"
        );
        assert_eq!(r.x_cache(), "STALE", "mode {m}");
        assert!(
            r.cache_status().contains("detail=stale-if-error"),
            "{}",
            r.cache_status()
        );
    }
    // Without a stale window the error reaches the client.
    mode.store(1, Ordering::SeqCst);
    assert_eq!(edge.get("/other", &[]).status, 503);
}

#[test]
fn refused_origin_uses_configured_grace_and_must_revalidate_forbids_it() {
    let origin = Origin::start(|r, _| {
        let cc = if r.path == "/strict" {
            "max-age=1, must-revalidate"
        } else {
            "max-age=1"
        };
        OriginResp::new(200, &[("cache-control", cc)], "cached")
    });
    // A port where nothing listens (connection refused).
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&origin.url(), "grace = \"60s\"", "");
    cfg.cache.disk_path = Some(dir.path().to_path_buf());
    cfg.cache.disk = bytesize_mib(64);
    cfg.hosts[0].origin = format!("http://{dead_addr}");
    // Fill through a live origin first, then restart against the dead one.
    let mut live = cfg.clone();
    live.hosts[0].origin = origin.url();
    let e1 = Edge::start(live);
    assert_eq!(e1.get("/g", &[]).body, b"cached");
    assert_eq!(e1.get("/strict", &[]).body, b"cached");
    e1.stop();
    let e2 = Edge::start(cfg);
    // The first answers after max-age=1 runs out (fresh hits never try the dead origin).
    let r = first_non_hit(&e2, "/g", Duration::from_secs(10));
    assert_eq!(
        (r.status, r.x_cache()),
        (200, "STALE"),
        "grace allows stale on refused"
    );
    let r = first_non_hit(&e2, "/strict", Duration::from_secs(10));
    assert_eq!(r.status, 502, "must-revalidate forbids stale: {r:?}");
}

fn bytesize_mib(n: u64) -> bytesize::ByteSize {
    bytesize::ByteSize::mib(n)
}

#[test]
fn followers_of_a_failing_revalidation_get_the_stale_copy() {
    let failing = Arc::new(AtomicU32::new(0));
    let f2 = failing.clone();
    let origin = Origin::start(move |_, _| {
        if f2.load(Ordering::SeqCst) == 1 {
            let mut r = OriginResp::new(200, &[], "");
            r.head_delay = Duration::from_millis(400);
            r.hang_up = true;
            return r;
        }
        OriginResp::new(
            200,
            &[("cache-control", "max-age=1, stale-if-error=60")],
            "old",
        )
    });
    let edge = Arc::new(Edge::start(config(&origin.url(), "", "")));
    assert_eq!(edge.get("/fs", &[]).body, b"old");
    // A clock object stored after /fs with the same max-age=1: once it is no longer a fresh
    // hit, /fs is stale too, and /fs itself was not requested (its revalidation is the test).
    assert_eq!(edge.get("/fs-clock", &[]).body, b"old");
    first_non_hit(&edge, "/fs-clock", Duration::from_secs(10));
    failing.store(1, Ordering::SeqCst);
    let handles: Vec<_> = (0..5)
        .map(|_| {
            let e = edge.clone();
            std::thread::spawn(move || e.get("/fs", &[]))
        })
        .collect();
    for h in handles {
        let r = h.join().unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"old"[..]));
        assert_eq!(r.x_cache(), "STALE");
    }
    assert_eq!(
        origin.count("/fs"),
        3,
        "one coalesced revalidation attempt (retried once: closed before the head)"
    );
}
