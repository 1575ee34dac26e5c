//! Hop-by-hop fields, and fields a client names in `Connection`, are removed before the cache
//! key, Vary matching and the origin request are computed (issue 13 point 5): `Connection:
//! origin` cannot file the no-CORS answer under another origin's variant.

mod protocol_support;

use protocol_support::{config, resp, Edge, RawOrigin};

fn cors_origin() -> RawOrigin {
    RawOrigin::start(|r| {
        let mut h = vec![("cache-control", "max-age=60"), ("vary", "Origin")];
        let acao;
        if let Some(o) = r.header("origin") {
            acao = o.to_string();
            h.push(("access-control-allow-origin", acao.as_str()));
        }
        let lang = r.header("x-lang").unwrap_or("none").to_string();
        h.push(("x-lang-seen", lang.as_str()));
        resp("200 OK", &h, Some(b"cors"))
    })
}

#[test]
fn connection_listed_origin_cannot_poison_the_origin_variant() {
    let origin = cors_origin();
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let app = "https://app.example";
    let mut c = edge.conn();
    let poison = c.request(
        "GET",
        "/api",
        &[("origin", app), ("connection", "keep-alive, Origin")],
    );
    assert_eq!(poison.status, 200);
    let seen = origin.last("/api").unwrap();
    assert!(
        seen.header("origin").is_none(),
        "listed field not forwarded"
    );
    assert!(poison.header("access-control-allow-origin").is_none());
    // The real app.example request must not get the no-CORS answer from the cache.
    let real = c.request("GET", "/api", &[("origin", app)]);
    assert_eq!(
        real.header("access-control-allow-origin"),
        Some(app),
        "{real:?}"
    );
    assert_eq!(origin.count("/api"), 2, "a separate variant was fetched");
    // And a request without Origin is served the variant the poisoner filled.
    let plain = c.request("GET", "/api", &[]);
    assert_eq!(plain.header("x-cache"), Some("HIT"), "{plain:?}");
    assert!(plain.header("access-control-allow-origin").is_none());
    assert_eq!(origin.count("/api"), 2);
}

#[test]
fn connection_listed_key_header_is_not_in_the_key() {
    let origin = cors_origin();
    let edge = Edge::start(config(&origin.url(), "", "", r#"key_headers = ["x-lang"]"#));
    let mut c = edge.conn();
    let first = c.request(
        "GET",
        "/k",
        &[
            ("x-lang", "fr"),
            ("connection", "x-lang"),
            ("te", "trailers"),
        ],
    );
    assert_eq!(first.header("x-lang-seen"), Some("none"));
    // Filed under the no-x-lang key: a real `x-lang: fr` request is a miss and gets `fr`.
    let fr = c.request("GET", "/k", &[("x-lang", "fr")]);
    assert_eq!(fr.header("x-lang-seen"), Some("fr"), "{fr:?}");
    let none = c.request("GET", "/k", &[]);
    assert_eq!(none.header("x-cache"), Some("HIT"));
    assert_eq!(none.header("x-lang-seen"), Some("none"));
    assert_eq!(origin.count("/k"), 2);
}
