//! RFC 9111 storing rules against the real edge: for each directive, stored (second request
//! is a HIT, one origin fetch) or not stored (two origin fetches).

mod cache_support;
use cache_support::*;

/// Two GETs of `path`; returns (origin fetches, second response).
fn twice(edge: &Edge, origin: &Origin, path: &str, req: &[(&str, &str)]) -> (usize, Resp) {
    let r1 = edge.get(path, req);
    assert!(r1.status < 500 || path == "/status-500", "{path}: {r1:?}");
    let r2 = edge.get(path, req);
    (origin.count(path), r2)
}

#[test]
fn storing_rules_per_directive() {
    let origin = Origin::start(|r, _| {
        let h: &[(&str, &str)] = match r.path.as_str() {
            "/max-age" => &[("cache-control", "max-age=60")],
            "/s-maxage" => &[("cache-control", "s-maxage=60")],
            "/expires" => &[
                (
                    "date",
                    &*Box::leak(
                        httpdate::fmt_http_date(std::time::SystemTime::now()).into_boxed_str(),
                    ),
                ),
                (
                    "expires",
                    &*Box::leak(
                        httpdate::fmt_http_date(
                            std::time::SystemTime::now() + std::time::Duration::from_secs(60),
                        )
                        .into_boxed_str(),
                    ),
                ),
            ],
            "/cdn-cc" => &[
                ("cache-control", "no-store"),
                ("cdn-cache-control", "max-age=60"),
            ],
            "/surrogate" => &[
                ("cache-control", "no-store"),
                ("surrogate-control", "max-age=60"),
            ],
            "/heuristic" => &[
                (
                    "date",
                    &*Box::leak(
                        httpdate::fmt_http_date(std::time::SystemTime::now()).into_boxed_str(),
                    ),
                ),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            "/no-store" => &[("cache-control", "no-store, max-age=60")],
            "/private" => &[("cache-control", "private, max-age=60")],
            "/no-cache" => &[
                ("cache-control", "no-cache, max-age=60"),
                ("etag", "\"v1\""),
            ],
            "/nothing" => &[],
            "/vary-star" => &[("cache-control", "max-age=60"), ("vary", "*")],
            "/cookie" => &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            "/auth" => &[("cache-control", "max-age=60")],
            "/auth-public" => &[("cache-control", "public, max-age=60")],
            "/status-500" => &[("cache-control", "max-age=60")],
            "/status-404" => &[
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
                (
                    "date",
                    &*Box::leak(
                        httpdate::fmt_http_date(std::time::SystemTime::now()).into_boxed_str(),
                    ),
                ),
            ],
            _ => &[],
        };
        let status = match r.path.as_str() {
            "/status-500" => 503,
            "/status-404" => 404,
            _ => 200,
        };
        // A 304 for revalidations of /no-cache.
        if r.path == "/no-cache"
            && r.headers.get("if-none-match").map(|s| s.as_str()) == Some("\"v1\"")
        {
            return OriginResp::new(
                304,
                &[
                    ("etag", "\"v1\""),
                    ("cache-control", "no-cache, max-age=60"),
                ],
                "",
            );
        }
        OriginResp::new(status, h, format!("body of {}", r.path))
    });
    let edge = Edge::start(config(&origin.url(), "", ""));

    for path in [
        "/max-age",
        "/s-maxage",
        "/expires",
        "/cdn-cc",
        "/surrogate",
        "/heuristic",
        "/status-404",
    ] {
        let (n, r2) = twice(&edge, &origin, path, &[]);
        assert_eq!(n, 1, "{path} must be stored");
        assert_eq!(r2.x_cache(), "HIT", "{path}");
        assert_eq!(r2.body, format!("body of {path}").as_bytes());
    }
    for path in [
        "/no-store",
        "/private",
        "/nothing",
        "/vary-star",
        "/cookie",
        "/status-500",
    ] {
        let (n, r2) = twice(&edge, &origin, path, &[]);
        assert_eq!(n, 2, "{path} must not be stored");
        assert_eq!(r2.x_cache(), "MISS", "{path}");
        assert!(
            !r2.cache_status().contains("stored"),
            "{path}: {}",
            r2.cache_status()
        );
    }
    // Set-Cookie reaches the client on the uncached response.
    assert_eq!(edge.get("/cookie", &[]).header("set-cookie"), Some("a=b"));

    // no-cache: stored but revalidated every time (304 → REVALIDATED, body from cache).
    let r = edge.get("/no-cache", &[]);
    assert_eq!(r.x_cache(), "MISS");
    let r = edge.get("/no-cache", &[]);
    assert_eq!(r.x_cache(), "REVALIDATED");
    assert_eq!(r.body, b"body of /no-cache");
    assert!(
        r.cache_status().contains("fwd=stale; fwd-status=304"),
        "{}",
        r.cache_status()
    );
    assert_eq!(origin.count("/no-cache"), 2);
    assert_eq!(
        origin.requests("/no-cache")[1]
            .headers
            .get("if-none-match")
            .map(String::as_str),
        Some("\"v1\"")
    );

    // Authorization: only with public / s-maxage / must-revalidate.
    let (n, _) = twice(&edge, &origin, "/auth", &[("authorization", "Bearer x")]);
    assert_eq!(n, 2, "authorized request not shared without permission");
    let (n, r2) = twice(
        &edge,
        &origin,
        "/auth-public",
        &[("authorization", "Bearer x")],
    );
    assert_eq!((n, r2.x_cache()), (1, "HIT"));
}

#[test]
fn default_ttl_and_set_cookie_opt_in() {
    let origin = Origin::start(|_, _| OriginResp::new(200, &[("set-cookie", "s=1")], "x"));
    let edge = Edge::start(config(
        &origin.url(),
        "default_ttl = \"60s\"\ncache_set_cookie = true",
        "",
    ));
    let r1 = edge.get("/a", &[]);
    assert_eq!(
        r1.header("set-cookie"),
        Some("s=1"),
        "the filling client sees its cookie"
    );
    let r2 = edge.get("/a", &[]);
    assert_eq!(r2.x_cache(), "HIT");
    assert_eq!(r2.header("set-cookie"), None, "Set-Cookie is never stored");
    assert_eq!(origin.count("/a"), 1);
}

#[test]
fn headers_stripped_tags_kept_head_from_get_and_age() {
    let origin = Origin::start(|_, _| {
        OriginResp::new(
            200,
            &[
                ("cache-control", "max-age=60"),
                ("surrogate-control", "max-age=60"),
                ("surrogate-key", "t1 t2"),
                ("cache-tag", "t3"),
                ("age", "10"),
                ("x-custom", "kept"),
            ],
            "abc",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/t", &[]);
    for h in ["surrogate-control", "surrogate-key", "cache-tag"] {
        assert!(r.header(h).is_none(), "{h} must be removed");
    }
    assert_eq!(r.header("x-custom"), Some("kept"));
    // HEAD is answered from the stored GET.
    let h = edge.req("HEAD", "/t", &[], b"");
    assert_eq!(h.status, 200);
    assert_eq!(h.x_cache(), "HIT");
    assert_eq!(h.header("content-length"), Some("3"));
    let age: u64 = h.header("age").unwrap().parse().unwrap();
    assert!(age >= 10, "Age includes the origin's Age: {age}");
    assert_eq!(origin.count("/t"), 1);
    // HEAD miss fills with a GET (then a GET hits).
    let h = edge.req("HEAD", "/t2", &[], b"");
    assert_eq!((h.status, h.header("content-length")), (200, Some("3")));
    assert_eq!(origin.requests("/t2")[0].method, "GET");
    assert!(wait_until(std::time::Duration::from_secs(5), || edge
        .get("/t2", &[])
        .x_cache()
        == "HIT"));
    assert_eq!(origin.count("/t2"), 1);
    // Tags reached the purge index: a tag purge removes the object.
    let purge = request(
        edge.admin,
        "POST",
        "/api/v1/purge",
        &[("host", "admin"), ("content-type", "application/json")],
        br#"{"tags":["t2"]}"#,
    )
    .unwrap();
    // No token configured → 403 (the purge API itself is tested by edge-ops).
    assert_eq!(purge.status, 403);
}

#[test]
fn vary_and_key_policy() {
    let origin = Origin::start(|r, _| {
        let enc = r
            .headers
            .get("accept-encoding")
            .cloned()
            .unwrap_or_default();
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60"), ("vary", "Accept-Encoding")],
            format!("enc={enc}"),
        )
    });
    let edge = Edge::start(config(&origin.url(), "query = \"sort\"", ""));
    assert_eq!(
        edge.get("/v", &[("accept-encoding", "gzip")]).body,
        b"enc=gzip"
    );
    let r = edge.get("/v", &[("accept-encoding", "br")]);
    assert_eq!((r.x_cache(), r.body.as_slice()), ("MISS", &b"enc=br"[..]));
    assert!(
        r.cache_status().contains("fwd=vary-miss"),
        "{}",
        r.cache_status()
    );
    let r = edge.get("/v", &[("accept-encoding", "gzip")]);
    assert_eq!((r.x_cache(), r.body.as_slice()), ("HIT", &b"enc=gzip"[..]));
    let r = edge.get("/v", &[("accept-encoding", "br")]);
    assert_eq!((r.x_cache(), r.body.as_slice()), ("HIT", &b"enc=br"[..]));
    assert_eq!(origin.count("/v"), 2);

    // query = sort: parameter order does not matter; the origin sees the sorted query.
    edge.get("/q?b=2&a=1", &[("accept-encoding", "x")]);
    let r = edge.get("/q?a=1&b=2", &[("accept-encoding", "x")]);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(origin.count("/q?a=1&b=2"), 1);
    // Dot segments and escapes are normalised in the key and the origin request.
    edge.get("/x/%7Ey", &[("accept-encoding", "x")]);
    assert_eq!(
        edge.get("/x/./z/../~y", &[("accept-encoding", "x")])
            .x_cache(),
        "HIT"
    );
}

#[test]
fn unsafe_methods_pass_and_invalidate() {
    let origin = Origin::start(|r, _| {
        if r.method == "POST" {
            return OriginResp::new(201, &[("location", "/other")], "created");
        }
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60")],
            format!("get {}", r.path),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    edge.get("/r", &[]);
    edge.get("/other", &[]);
    assert_eq!(edge.get("/r", &[]).x_cache(), "HIT");
    let p = edge.req("POST", "/r", &[], b"payload");
    assert_eq!(p.status, 201);
    assert_eq!(p.x_cache(), "BYPASS");
    assert!(p.cache_status().contains("fwd=bypass; fwd-status=201"));
    assert_eq!(
        origin
            .requests("/r")
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        1
    );
    // The POSTed URL and its Location target are invalidated.
    assert_eq!(edge.get("/r", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/other", &[]).x_cache(), "MISS");
}

#[test]
fn an_unsafe_method_invalidates_every_variant_of_its_url() {
    // RFC 9111 §4.4 invalidates the target URI: every stored variant of it, not only the
    // Vary list (a variant left behind would be found again once the list is re-created).
    let version = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let v = version.clone();
    let origin = Origin::start(move |r, _| {
        if r.method == "PUT" {
            v.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            return OriginResp::new(204, &[], "");
        }
        let lang = r
            .headers
            .get("accept-language")
            .cloned()
            .unwrap_or_default();
        let n = v.load(std::sync::atomic::Ordering::SeqCst);
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60"), ("vary", "accept-language")],
            format!("{lang} v{n}"),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    for lang in ["en", "fr"] {
        edge.get("/doc", &[("accept-language", lang)]);
        let r = edge.get("/doc", &[("accept-language", lang)]);
        assert_eq!(r.x_cache(), "HIT", "{lang}");
    }
    assert_eq!(edge.req("PUT", "/doc", &[], b"new").status, 204);
    for lang in ["en", "fr"] {
        let r = edge.get("/doc", &[("accept-language", lang)]);
        assert_eq!(r.body, format!("{lang} v2").as_bytes(), "{lang}");
        assert_eq!(r.x_cache(), "MISS", "{lang}");
    }
}

#[test]
fn key_headers_split_entries_and_fill_limit_answers_503() {
    let origin = Origin::start(|r, _| {
        let dev = r.headers.get("x-dev").cloned().unwrap_or_default();
        let mut resp = OriginResp::new(
            200,
            &[("cache-control", "max-age=60")],
            format!("dev={dev}"),
        );
        if r.path.starts_with("/slow") {
            resp.head_delay = std::time::Duration::from_millis(500);
        }
        resp
    });
    let mut cfg = config(&origin.url(), "key_headers = [\"x-dev\"]", "");
    cfg.cache.max_inflight_fills = 1;
    let edge = std::sync::Arc::new(Edge::start(cfg));
    assert_eq!(edge.get("/k", &[("x-dev", "a")]).body, b"dev=a");
    assert_eq!(edge.get("/k", &[("x-dev", "b")]).body, b"dev=b");
    let r = edge.get("/k", &[("x-dev", "a")]);
    assert_eq!((r.x_cache(), r.body.as_slice()), ("HIT", &b"dev=a"[..]));
    assert_eq!(origin.count("/k"), 2);

    let e2 = edge.clone();
    let slow = std::thread::spawn(move || e2.get("/slow1", &[]));
    // The one fill slot is taken once the slow request reached the origin (500 ms head delay).
    assert!(
        wait_until(std::time::Duration::from_secs(5), || origin.count("/slow1")
            >= 1),
        "the slow fill reached the origin"
    );
    let r = edge.get("/slow2", &[]);
    assert_eq!(
        r.status, 503,
        "second concurrent fill over the limit: {r:?}"
    );
    assert!(r.cache_status().contains("detail=overloaded"));
    assert_eq!(slow.join().unwrap().status, 200);
}

#[test]
fn a_response_passed_through_keeps_the_upstream_age() {
    // Not stored, so not ours to reset: an origin-side cache's Age reaches the client.
    let origin = Origin::start(|_, _| {
        OriginResp::new(
            200,
            &[("cache-control", "private, max-age=300"), ("age", "42")],
            "private",
        )
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/p", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("age"), Some("42"));
}
