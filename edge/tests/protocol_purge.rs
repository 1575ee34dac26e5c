//! Every cacheable URL is purgeable (issue 13 point 8): odd query strings (`%zz`, raw
//! characters, empty members) are stored under the form purge selectors normalise to, and a
//! prefix purge covers every query-string variant of a path.

mod protocol_support;

use protocol_support::{config, resp, Edge, RawOrigin};

fn purged(r: &protocol_support::Resp) -> u64 {
    assert_eq!(r.status, 200, "{r:?}");
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    v["purged"].as_u64().unwrap()
}

#[test]
fn odd_queries_are_purgeable_by_url_and_prefix() {
    let origin = RawOrigin::start(|r| {
        resp(
            "200 OK",
            &[("cache-control", "max-age=600")],
            Some(r.target.as_bytes()),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let targets = [
        "/secret?%zz",
        "/secret?a=%ZZ&&b=%2",
        "/secret?x=a+b;c=[1]",
        "/secret?%41=%7e",
        "/secret%7e?q=1",
    ];
    let mut c = edge.conn();
    let warm = |c: &mut protocol_support::Conn| {
        for t in targets {
            c.request("GET", t, &[]);
            let r = c.request("GET", t, &[]);
            assert_eq!(r.header("x-cache"), Some("HIT"), "{t}: {r:?}");
        }
    };
    warm(&mut c);
    // Purge each by the URL as the client wrote it.
    for t in targets {
        let body = serde_json::json!({ "urls": [format!("example.test{t}")] }).to_string();
        assert_eq!(purged(&edge.purge(&body)), 1, "{t}");
        let r = c.request("GET", t, &[]);
        assert_ne!(r.header("x-cache"), Some("HIT"), "{t} purged: {r:?}");
    }
    // A prefix covers every query variant of the path.
    warm(&mut c);
    let n = purged(&edge.purge(r#"{"prefixes":["example.test/secret"]}"#));
    assert_eq!(n, targets.len() as u64);
    for t in targets {
        let r = c.request("GET", t, &[]);
        assert_ne!(r.header("x-cache"), Some("HIT"), "{t} after prefix purge");
    }
}
