//! Vary variants per URL are capped (`cache.max_vary_variants`, issue 13 point 6): past the
//! cap a response is served but not stored, counted in
//! `cdn_edge_vary_variants_refused_total`; stored variants keep being served.

mod protocol_support;

use protocol_support::{config, resp, Conn, Edge, RawOrigin};

#[test]
fn variants_past_the_cap_are_served_not_stored() {
    let origin = RawOrigin::start(|r| {
        let ua = r.header("user-agent").unwrap_or("-").to_string();
        resp(
            "200 OK",
            &[("cache-control", "max-age=60"), ("vary", "User-Agent")],
            Some(ua.as_bytes()),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", "max_vary_variants = 3", ""));
    let mut c = edge.conn();
    for i in 0..6 {
        let ua = format!("agent-{i}");
        let first = c.request("GET", "/v", &[("user-agent", &ua)]);
        assert_eq!(first.body, ua.as_bytes());
        let second = c.request("GET", "/v", &[("user-agent", &ua)]);
        assert_eq!(second.body, ua.as_bytes(), "never another variant's body");
        if i < 3 {
            assert_eq!(second.header("x-cache"), Some("HIT"), "{ua}: {second:?}");
        } else {
            assert_ne!(second.header("x-cache"), Some("HIT"), "{ua}");
            assert!(
                first
                    .header("cache-status")
                    .is_some_and(|s| s.contains("detail=too-many-variants")),
                "{first:?}"
            );
        }
    }
    // The stored variants are still hits.
    let again = c.request("GET", "/v", &[("user-agent", "agent-1")]);
    assert_eq!(again.header("x-cache"), Some("HIT"));
    assert_eq!(origin.count("/v"), 3 + 3 * 2);
    let mut a = Conn::open(edge.admin);
    let m = a.request("GET", "/metrics", &[("host", "admin")]);
    let text = String::from_utf8_lossy(&m.body);
    let refused: f64 = text
        .lines()
        .find(|l| l.starts_with("cdn_edge_vary_variants_refused_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 6.0, "metric: {refused}");
}

#[test]
fn max_vary_variants_zero_is_refused_naming_the_key() {
    let toml = "[edge]\nid = \"e1\"\nregion = \"r\"\n[cache]\nmax_vary_variants = 0\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n";
    let e = cdn_shared::config::load_str::<cdn_shared::config::edge::EdgeConfig>(toml).unwrap_err();
    assert!(e.to_string().contains("cache.max_vary_variants"), "{e}");
}
