//! `Range` from hostile clients against the real server (issue 13 point 3): any numbers,
//! suffix ranges, ends beyond the length, several ranges, on a cached object and on a miss.
//! Every answer is a well-framed 200, 206 or 416 whose body matches what it claims, and the
//! connection stays usable.

mod protocol_support;

use std::time::Duration;

use protocol_support::{config, resp, Edge, RawOrigin};

const BODY: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn check(r: &protocol_support::Resp, range: &str) {
    let len = BODY.len();
    match r.status {
        200 => assert_eq!(r.body, BODY, "{range}"),
        206 => {
            let cr = r.header("content-range").expect("206 has Content-Range");
            let (span, total) = cr
                .strip_prefix("bytes ")
                .and_then(|s| s.split_once('/'))
                .unwrap_or_else(|| panic!("{range}: bad Content-Range {cr}"));
            assert_eq!(total, len.to_string(), "{range}");
            let (a, b) = span.split_once('-').unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            assert!(a <= b && b < len, "{range}: {cr}");
            assert_eq!(r.body, &BODY[a..=b], "{range}");
        }
        416 => {
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{len}").as_str()),
                "{range}"
            );
        }
        s => panic!("{range}: status {s}"),
    }
}

#[test]
fn hostile_ranges_get_a_valid_answer_cached_or_not() {
    let origin = RawOrigin::start(|_| {
        resp(
            "200 OK",
            &[("cache-control", "max-age=60"), ("etag", "\"v\"")],
            Some(BODY),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let ranges = [
        "bytes=1-18446744073709551615",
        "bytes=0-18446744073709551614",
        "bytes=18446744073709551615-18446744073709551615",
        "bytes=18446744073709551615-",
        "bytes=-18446744073709551615",
        "bytes=18446744073709551616-",
        "bytes=-0",
        "bytes=0-0",
        "bytes=35-",
        "bytes=36-",
        "bytes=-1",
        "bytes=-36",
        "bytes=-37",
        "bytes=10-5",
        "bytes=0-1,3-4",
        "bytes=0-0,-1,18446744073709551615-",
        "bytes=,",
        "bytes=-",
        "bytes=--1",
        "Bytes=2-3",
        "bytes= 2 - 3 ",
        "bytes=99999999999999999999999999999-1",
        "items=0-1",
    ];
    let mut c = edge.conn();
    for (i, range) in ranges.iter().enumerate() {
        // A miss (unique query), then the same object from the cache.
        let path = format!("/obj?i={i}");
        let cold = c.request("GET", &path, &[("range", range)]);
        check(&cold, range);
        let warm = c.request("GET", &path, &[("range", range)]);
        check(&warm, range);
        assert_eq!(warm.header("x-cache"), Some("HIT"), "{range}: {warm:?}");
        let head = c.request("HEAD", &path, &[("range", range)]);
        assert!(head.body.is_empty());
    }
    let ok = c.request("GET", "/obj?i=0", &[]);
    assert_eq!(ok.body, BODY);
    assert!(c.stray(Duration::from_millis(200)).is_empty());
}

#[test]
fn a_resumed_download_against_an_older_copy_gets_412() {
    // RFC 9110 §13.1.1, §13.1.4: `If-Match` / `If-Unmodified-Since` guard a resumed download;
    // bytes of another version spliced into the client's file would corrupt it silently.
    let origin = RawOrigin::start(|_| {
        resp(
            "200 OK",
            &[
                ("cache-control", "max-age=60"),
                ("etag", "\"v2\""),
                ("last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"),
            ],
            Some(BODY),
        )
    });
    let edge = Edge::start(config(&origin.url(), "", "", ""));
    let mut c = edge.conn();
    let first = c.request("GET", "/dl", &[]);
    assert_eq!(first.body, BODY);
    for (name, value) in [
        ("if-match", "\"v1\""),
        ("if-match", "W/\"v2\""),
        ("if-unmodified-since", "Sat, 05 Nov 1994 08:49:37 GMT"),
    ] {
        let r = c.request("GET", "/dl", &[("range", "bytes=10-"), (name, value)]);
        assert_eq!(r.status, 412, "{name}: {value}: {r:?}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("etag"), Some("\"v2\""));
        assert_eq!(r.header("x-cache"), Some("HIT"));
    }
    for (name, value) in [
        ("if-match", "\"v1\", \"v2\""),
        ("if-match", "*"),
        ("if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ] {
        let r = c.request("GET", "/dl", &[("range", "bytes=10-"), (name, value)]);
        assert_eq!(r.status, 206, "{name}: {value}: {r:?}");
        assert_eq!(r.body, &BODY[10..]);
    }
    assert!(c.stray(Duration::from_millis(200)).is_empty());
}
