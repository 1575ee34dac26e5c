//! Loop prevention (RFC 8586, issue 13 point 10): every origin request carries the edge's
//! `CDN-Loop` token after the members the client sent; a request that already carries it is
//! refused with 508, so an origin pointing back at the edge cannot loop.

mod protocol_support;

use protocol_support::{config, resp, Edge, RawOrigin};

fn origin() -> RawOrigin {
    RawOrigin::start(|_| resp("200 OK", &[("cache-control", "max-age=60")], Some(b"ok")))
}

#[test]
fn origin_requests_carry_our_token_after_the_clients() {
    let o = origin();
    let edge = Edge::start(config(&o.url(), "", "", ""));
    let mut c = edge.conn();
    assert_eq!(c.request("GET", "/fill", &[]).status, 200);
    let fill: Vec<String> = o
        .last("/fill")
        .unwrap()
        .all("cdn-loop")
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert_eq!(fill.join(", "), "e1");
    assert_eq!(
        c.request("GET", "/shield", &[("cdn-loop", "other-cdn; v=2")])
            .status,
        200
    );
    let seen = o.last("/shield").unwrap();
    assert_eq!(seen.all("cdn-loop").join(", "), "other-cdn; v=2, e1");
    c.send("POST", "/pass", &[], b"x").unwrap();
    assert_eq!(c.read(false).unwrap().status, 200);
    assert_eq!(o.last("/pass").unwrap().all("cdn-loop"), ["e1"]);
}

#[test]
fn a_request_carrying_our_token_is_refused_with_508() {
    let o = origin();
    let edge = Edge::start(config(&o.url(), "", "", ""));
    let mut c = edge.conn();
    for v in ["e1", "E1", "other, e1; x=y", " e1 ;v=1"] {
        let r = c.request("GET", "/x", &[("cdn-loop", v)]);
        assert_eq!(r.status, 508, "{v}: {r:?}");
    }
    for v in ["e10", "other; e1"] {
        assert_eq!(
            c.request("GET", "/x", &[("cdn-loop", v)]).status,
            200,
            "{v}"
        );
    }
    assert_eq!(o.count("/x"), 1, "refused requests never reach the origin");
}

#[test]
fn an_origin_pointing_back_at_the_edge_does_not_loop() {
    let edge = Edge::start_with(config("http://127.0.0.1:9", "", "", ""), |cfg, http| {
        cfg.hosts[0].origin = format!("http://{http}");
        cfg.hosts[0].origin_host = Some("example.test".into());
    });
    let mut c = edge.conn();
    let r = c.request("GET", "/loop", &[]);
    assert_eq!(r.status, 508, "{r:?}");
    // Still serving normally afterwards.
    assert_eq!(
        c.request("GET", "/healthz", &[("host", "nowhere.test")])
            .status,
        200
    );
}
