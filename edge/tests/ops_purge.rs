//! Purge against the real edge (`run()` in-process): by URL, prefix and tag, hard and soft,
//! with origin fetch counts; the purge API's auth; the index surviving a restart.

mod cache_support;
mod ops_support;

use cache_support::*;
use ops_support::*;

/// Origin: every path cacheable for 60 s (with stale-if-error), tags by path.
fn origin() -> Origin {
    Origin::start(|req, _| {
        let mut h: Vec<(&str, &str)> = vec![
            ("cache-control", "max-age=60, stale-if-error=60"),
            ("etag", "\"v1\""),
        ];
        if req.path.starts_with("/t/a") {
            h.push(("surrogate-key", "red blue"));
        }
        if req.path.starts_with("/t/b") {
            h.push(("cache-tag", "blue, green"));
        }
        if req
            .headers
            .get("if-none-match")
            .is_some_and(|v| v == "\"v1\"")
        {
            return OriginResp::new(304, &h, "");
        }
        OriginResp::new(200, &h, format!("body of {}", req.path))
    })
}

fn warm(edge: &Edge, path: &str) {
    assert_eq!(edge.get(path, &[]).x_cache(), "MISS", "{path} first");
    assert_eq!(edge.get(path, &[]).x_cache(), "HIT", "{path} second");
}

#[test]
fn hard_purge_by_url_prefix_and_tag_refetches_only_what_matched() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), "", "", "", ""));
    for p in ["/a", "/p/1", "/p/2", "/q/1", "/t/a", "/t/b", "/t/c"] {
        warm(&edge, p);
    }

    // By URL (absolute, with scheme and port): only /a.
    assert_eq!(
        purged(&purge(
            edge.admin,
            r#"{"urls":["http://example.test:8080/a"]}"#
        )),
        1
    );
    assert_eq!(edge.get("/a", &[]).x_cache(), "MISS");
    assert_eq!(o.count("/a"), 2);
    assert_eq!(edge.get("/p/1", &[]).x_cache(), "HIT");

    // By prefix: /p/1 and /p/2, not /q/1.
    assert_eq!(
        purged(&purge(edge.admin, r#"{"prefixes":["example.test/p/"]}"#)),
        2
    );
    assert_eq!(edge.get("/p/1", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/p/2", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/q/1", &[]).x_cache(), "HIT");
    assert_eq!(
        (o.count("/p/1"), o.count("/p/2"), o.count("/q/1")),
        (2, 2, 1)
    );

    // By tag: Surrogate-Key "red" → /t/a only; Cache-Tag "green" → /t/b only.
    assert_eq!(purged(&purge(edge.admin, r#"{"tags":["red"]}"#)), 1);
    assert_eq!(edge.get("/t/a", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/t/b", &[]).x_cache(), "HIT");
    assert_eq!(purged(&purge(edge.admin, r#"{"tags":["green"]}"#)), 1);
    assert_eq!(edge.get("/t/b", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/t/c", &[]).x_cache(), "HIT");
    assert_eq!(
        (o.count("/t/a"), o.count("/t/b"), o.count("/t/c")),
        (2, 2, 1)
    );

    // Tags are not leaked to clients.
    let r = edge.get("/t/a", &[]);
    assert!(r.header("surrogate-key").is_none() && r.header("cache-tag").is_none());

    // A selector naming a host alias purges the primary host's objects.
    assert_eq!(
        purged(&purge(edge.admin, r#"{"urls":["https://alias.test/q/1"]}"#)),
        1
    );
    assert_eq!(edge.get("/q/1", &[]).x_cache(), "MISS");

    // Purging what is not stored: 0, and nothing else changes.
    assert_eq!(
        purged(&purge(edge.admin, r#"{"urls":["example.test/nothing"]}"#)),
        0
    );
    assert_eq!(edge.get("/t/c", &[]).x_cache(), "HIT");
}

#[test]
fn soft_purge_revalidates_and_keeps_stale_if_error() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), "", "", "", ""));
    warm(&edge, "/s/1");
    warm(&edge, "/s/2");

    let r = purge(
        edge.admin,
        r#"{"prefixes":["example.test/s/"],"soft":true}"#,
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!({"purged": 2, "soft": true}));

    // Soft-purged: the next request goes to the origin as a conditional request (304),
    // and is served from the kept copy.
    let r = edge.get("/s/1", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"body of /s/1");
    assert_eq!(o.count("/s/1"), 2);
    let last = o.requests("/s/1").pop().unwrap();
    assert_eq!(
        last.headers.get("if-none-match").map(String::as_str),
        Some("\"v1\"")
    );
    assert_eq!(
        edge.get("/s/1", &[]).x_cache(),
        "HIT",
        "fresh again after the 304"
    );

    // The origin fails: the soft-purged /s/2 is still served stale (stale-if-error).
    o.set(|_, _| OriginResp::new(503, &[], "down"));
    let r = edge.get("/s/2", &[]);
    assert_eq!(r.status, 200, "stale-if-error after a soft purge");
    assert_eq!(r.body, b"body of /s/2");
    assert_eq!(o.count("/s/2"), 2);
}

#[test]
fn purge_api_auth_and_bad_requests() {
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), "", "", "", ""));
    let body = r#"{"urls":["example.test/a"]}"#;
    assert_eq!(purge_with(edge.admin, body, None).status, 401);
    assert_eq!(purge_with(edge.admin, body, Some("wrong")).status, 401);
    assert_eq!(purge(edge.admin, "{not json").status, 400);
    assert_eq!(purge(edge.admin, "{}").status, 400);
    assert_eq!(purge(edge.admin, r#"{"urls":["/no-host"]}"#).status, 400);
    assert_eq!(purge(edge.admin, r#"{"urls":[],"bogus":1}"#).status, 400);

    // No token configured: 403.
    let mut cfg = ops_config(&o.url(), "", "", "", "");
    cfg.admin.token = None;
    let edge2 = Edge::start(cfg);
    assert_eq!(purge_with(edge2.admin, body, Some(TOKEN)).status, 403);
}

#[test]
fn purge_index_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cache = format!(
        "disk_path = \"{}\"\ndisk = \"64 MiB\"",
        dir.path().display()
    );
    let o = origin();
    let edge = Edge::start(ops_config(&o.url(), "", &cache, "", ""));
    warm(&edge, "/t/a");
    warm(&edge, "/t/b");
    warm(&edge, "/p/1");
    edge.stop();

    let edge = Edge::start(ops_config(&o.url(), "", &cache, "", ""));
    // The index came back from disk: tag and prefix purges find the keys stored before.
    assert_eq!(purged(&purge(edge.admin, r#"{"tags":["blue"]}"#)), 2);
    assert_eq!(
        purged(&purge(edge.admin, r#"{"prefixes":["example.test/p"]}"#)),
        1
    );
    let before = (o.count("/t/a"), o.count("/p/1"));
    assert_eq!(edge.get("/t/a", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/p/1", &[]).x_cache(), "MISS");
    assert_eq!(
        (o.count("/t/a"), o.count("/p/1")),
        (before.0 + 1, before.1 + 1)
    );
    edge.stop();

    // And the purge (forget) itself is persisted: after another restart the hard-purged keys
    // are gone from the index, the refetched ones are back.
    let edge = Edge::start(ops_config(&o.url(), "", &cache, "", ""));
    assert_eq!(
        purged(&purge(edge.admin, r#"{"tags":["blue"]}"#)),
        1,
        "only /t/a was refetched"
    );
}

#[test]
fn a_purge_during_a_fill_keeps_the_filled_object_out_of_the_cache() {
    // The origin streams /slow over ~1 s; a purge of /slow (by URL, then by tag) lands while
    // the body is in flight. The waiting client gets the body, but it is not stored: the
    // next request goes to the origin again, not a HIT of what was purged.
    let o = Origin::start(|req, _| {
        let mut r = OriginResp::new(
            200,
            &[("cache-control", "max-age=600"), ("surrogate-key", "slow")],
            vec![b'x'; 40 * 1024],
        );
        if req.path.starts_with("/slow") {
            r.piece = 4 * 1024;
            r.piece_delay = std::time::Duration::from_millis(100);
        }
        r
    });
    let edge = Edge::start(ops_config(&o.url(), "", "", "", ""));
    for (path, selector) in [
        ("/slow", r#"{"urls":["example.test/slow"]}"#),
        ("/slow-tagged", r#"{"tags":["slow"]}"#),
    ] {
        let http = edge.http;
        let p = path.to_string();
        let fill = std::thread::spawn(move || {
            try_get(http, &p, &[("host", "example.test")]).expect("fill")
        });
        assert!(wait_until(std::time::Duration::from_secs(5), || o
            .count(path)
            == 1));
        std::thread::sleep(std::time::Duration::from_millis(200));
        purge(edge.admin, selector);
        let first = fill.join().unwrap();
        assert_eq!(first.status, 200);
        assert_eq!(first.body.len(), 40 * 1024);
        let again = edge.get(path, &[]);
        assert_eq!(again.x_cache(), "MISS", "{path}: {}", again.cache_status());
        assert_eq!(o.count(path), 2, "{path}");
        // Stored by that later fill (no purge since its request): a hit.
        assert_eq!(edge.get(path, &[]).x_cache(), "HIT", "{path}");
    }
    edge.stop();
}
