//! Field parsing details against the real server (issue 13 point 11): `Age` lists and
//! overflowing values, invalid `CDN-Cache-Control`, `Expires` without a valid `Date`, and
//! HTTP-dates in any case with a wrong weekday.

mod protocol_support;

use std::time::{Duration, SystemTime};

use protocol_support::{config, resp, Edge, RawOrigin};

fn date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// The origin answers each path with fixed headers (no `Date` unless given).
fn origin() -> RawOrigin {
    RawOrigin::start(|r| {
        let in_60 = date(SystemTime::now() + Duration::from_secs(60));
        let now = date(SystemTime::now());
        let h: Vec<(String, String)> = match r.target.as_str() {
            "/age-list" => vec![
                ("cache-control".into(), "max-age=3600".into()),
                ("age".into(), "7200, 0".into()),
            ],
            "/age-max" => vec![
                ("cache-control".into(), "max-age=60".into()),
                ("age".into(), "18446744073709551615".into()),
            ],
            "/cdn-junk" => vec![
                ("cdn-cache-control".into(), "max-age=10000, &&&&&".into()),
                ("cache-control".into(), "max-age=0".into()),
            ],
            "/cdn-string" => vec![
                ("cdn-cache-control".into(), "max-age=\"10000\"".into()),
                ("cache-control".into(), "max-age=0".into()),
            ],
            "/cdn-ok" => vec![
                ("cdn-cache-control".into(), "max-age=10000".into()),
                ("cache-control".into(), "max-age=0".into()),
            ],
            "/expires-no-date" => vec![("expires".into(), in_60)],
            "/expires-bad-date" => vec![
                ("expires".into(), in_60),
                ("date".into(), "yesterday".into()),
            ],
            "/lenient" => {
                // Lower case, and a weekday that cannot be right for both dates.
                let wrong = |s: String| format!("xyz{}", &s[3..]).to_ascii_lowercase();
                vec![
                    ("expires".into(), wrong(in_60)),
                    ("date".into(), wrong(now)),
                ]
            }
            _ => vec![],
        };
        let refs: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        resp("200 OK", &refs, Some(b"x"))
    })
}

fn twice(edge: &Edge, path: &str) -> (protocol_support::Resp, protocol_support::Resp) {
    let mut c = edge.conn();
    let a = c.request("GET", path, &[]);
    let b = c.request("GET", path, &[]);
    assert_eq!((a.status, b.status), (200, 200), "{path}");
    (a, b)
}

#[test]
fn age_uses_the_first_value_and_saturates() {
    let o = origin();
    let edge = Edge::start(config(&o.url(), "", "", ""));
    let (a, b) = twice(&edge, "/age-list");
    assert!(
        a.header("age").unwrap().parse::<u64>().unwrap() >= 7200,
        "{a:?}"
    );
    assert_ne!(
        b.header("x-cache"),
        Some("HIT"),
        "7200 s old with max-age=3600 is stale: {b:?}"
    );
    let (a, b) = twice(&edge, "/age-max");
    assert_ne!(b.header("x-cache"), Some("HIT"), "{b:?}");
    assert!(a.header("age").is_some());
    assert_eq!(o.count("/age-max"), 2);
}

#[test]
fn invalid_cdn_cache_control_is_ignored() {
    let o = origin();
    let edge = Edge::start(config(&o.url(), "", "", ""));
    for p in ["/cdn-junk", "/cdn-string"] {
        let (_, b) = twice(&edge, p);
        assert_ne!(
            b.header("x-cache"),
            Some("HIT"),
            "{p}: Cache-Control max-age=0 governs: {b:?}"
        );
        assert_eq!(o.count(p), 2, "{p}");
    }
    let (_, b) = twice(&edge, "/cdn-ok");
    assert_eq!(
        b.header("x-cache"),
        Some("HIT"),
        "a valid CDN-Cache-Control still wins"
    );
}

#[test]
fn expires_without_a_valid_date_and_lenient_dates_give_freshness() {
    let o = origin();
    let edge = Edge::start(config(&o.url(), "", "", ""));
    for p in ["/expires-no-date", "/expires-bad-date", "/lenient"] {
        let (_, b) = twice(&edge, p);
        assert_eq!(b.header("x-cache"), Some("HIT"), "{p}: {b:?}");
        assert_eq!(o.count(p), 1, "{p}");
    }
}
