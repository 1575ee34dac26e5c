//! Ranged fills (issue 13 point 4) against the real server: a range of an object that is not
//! stored fetches only the chunks covering it (a 1-byte range costs one chunk, not the
//! object); later ranges and the whole object are served from what is stored, the gaps
//! fetched by `Range` with `If-Match`; an origin without a strong ETag, or one that ignores
//! ranges, gets the whole-object fill as before.

mod cache_support;

use std::sync::{Arc, Mutex};

use cache_support::*;

const CHUNK: usize = 64 * 1024;

/// Per origin request: its `Range`, its `If-Match`, the body bytes sent.
type Log = Mutex<Vec<(Option<String>, Option<String>, usize)>>;

fn body() -> bytes::Bytes {
    (0..16 * CHUNK + 1000)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// `Range: bytes=a-b` (or `a-`) of `b`, as an origin answers it: (`Content-Range`, the bytes).
fn ranged(b: &bytes::Bytes, range: &str) -> (String, bytes::Bytes) {
    let (a, z) = range.trim_start_matches("bytes=").split_once('-').unwrap();
    let a: usize = a.parse().unwrap();
    let z: usize = if z.is_empty() {
        b.len() - 1
    } else {
        z.parse().unwrap()
    };
    let z = z.min(b.len() - 1);
    (format!("bytes {a}-{z}/{}", b.len()), b.slice(a..=z))
}

/// An origin serving `body()` with ranges; `etag` on every answer when given. Records the
/// `Range` and `If-Match` of each request and the body bytes it sent.
fn origin(etag: Option<&'static str>, honour_ranges: bool) -> (Origin, Arc<Log>) {
    let log: Arc<Log> = Arc::default();
    let l2 = log.clone();
    let b = body();
    let o = Origin::start(move |r, _| {
        let mut h: Vec<(&str, String)> = vec![("cache-control", "max-age=600".into())];
        if let Some(e) = etag {
            h.push(("etag", e.into()));
        }
        let range = r.headers.get("range").cloned();
        let resp = match (&range, honour_ranges) {
            (Some(v), true) => {
                let (cr, data) = ranged(&b, v);
                h.push(("content-range", cr));
                (206, data)
            }
            _ => (200, b.clone()),
        };
        l2.lock()
            .unwrap()
            .push((range, r.headers.get("if-match").cloned(), resp.1.len()));
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        OriginResp::new(resp.0, &hv, resp.1)
    });
    (o, log)
}

fn sent(log: &Log) -> usize {
    log.lock().unwrap().iter().map(|(_, _, n)| n).sum()
}

#[test]
fn a_small_range_fetches_one_chunk_and_the_gaps_fill_later() {
    let (o, log) = origin(Some("\"v1\""), true);
    let edge = Edge::start(config(&o.url(), "", ""));
    let b = body();

    let r = edge.get("/video", &[("range", "bytes=0-0")]);
    assert_eq!(r.status, 206, "{:?}", r.headers);
    assert_eq!(r.body, &b[..1]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 0-0/{}", b.len()).as_str())
    );
    assert!(
        r.cache_status().contains("detail=ranged-fill"),
        "{}",
        r.cache_status()
    );
    {
        let l = log.lock().unwrap();
        assert_eq!(l.len(), 1, "{l:?}");
        assert_eq!(l[0].0.as_deref(), Some("bytes=0-65535"));
    }
    assert_eq!(sent(&log), CHUNK, "one chunk, not the object");

    // A seek further in: that chunk only, fetched with If-Match, then stored.
    let at = 10 * CHUNK + 17;
    let r = edge.get("/video", &[("range", &format!("bytes={at}-{}", at + 99))]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &b[at..at + 100]);
    assert_eq!(r.x_cache(), "HIT");
    {
        let l = log.lock().unwrap();
        assert_eq!(l.len(), 2, "{l:?}");
        assert_eq!(
            l[1].0.as_deref(),
            Some(format!("bytes={}-{}", 10 * CHUNK, 11 * CHUNK - 1).as_str())
        );
        assert_eq!(l[1].1.as_deref(), Some("\"v1\""));
    }
    // The same range again: no origin request.
    let r = edge.get("/video", &[("range", &format!("bytes={at}-{}", at + 99))]);
    assert_eq!(r.body, &b[at..at + 100]);
    assert_eq!(log.lock().unwrap().len(), 2);

    // The whole object: every byte right; only the missing chunks were fetched.
    let r = edge.get("/video", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), b.len());
    assert!(r.body == b, "whole body matches");
    assert_eq!(sent(&log), b.len(), "each byte came from the origin once");
    let again = log.lock().unwrap().len();
    assert_eq!(edge.get("/video", &[]).body.len(), b.len());
    assert_eq!(log.lock().unwrap().len(), again, "now all stored");
}

#[test]
fn a_whole_get_of_an_object_stored_from_its_middle_fills_only_the_gaps() {
    // A seek into the middle stores that chunk only: chunk 0 was never there. A whole GET then
    // is a hit whose gaps come from the origin by range — not a "body left the cache" refill
    // that fetches the stored chunk again.
    let (o, log) = origin(Some("\"v1\""), true);
    let edge = Edge::start(config(&o.url(), "", ""));
    let b = body();
    let at = 5 * CHUNK + 3;
    let r = edge.get("/mid", &[("range", &format!("bytes={at}-{}", at + 9))]);
    assert_eq!((r.status, &r.body[..]), (206, &b[at..at + 10]));
    let refills =
        || sample(&metrics_page(edge.admin), "cdn_edge_body_refills_total").unwrap_or(0.0);
    let before = refills();
    let r = edge.get("/mid", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == b, "whole body matches");
    assert_eq!(r.x_cache(), "HIT", "{}", r.cache_status());
    assert_eq!(sent(&log), b.len(), "each byte came from the origin once");
    assert_eq!(
        refills(),
        before,
        "not counted as a body that left the cache"
    );
}

#[test]
fn without_a_strong_etag_or_range_support_the_whole_object_is_filled() {
    let b = body();
    for (etag, ranges) in [
        (None, true),
        (Some("W/\"weak\""), true),
        (Some("\"v1\""), false),
    ] {
        let (o, log) = origin(etag, ranges);
        let edge = Edge::start(config(&o.url(), "", ""));
        let r = edge.get("/f", &[("range", "bytes=5-9")]);
        assert_eq!(r.status, 206, "{etag:?} {ranges}");
        assert_eq!(r.body, &b[5..10]);
        // Stored whole: another range is a hit with no further origin request.
        let n = log.lock().unwrap().len();
        let r = edge.get(
            "/f",
            &[("range", &format!("bytes={}-{}", 12 * CHUNK, 12 * CHUNK + 3))],
        );
        assert_eq!(r.body, &b[12 * CHUNK..12 * CHUNK + 4], "{etag:?} {ranges}");
        assert_eq!(
            log.lock().unwrap().len(),
            n,
            "{etag:?} {ranges}: whole object stored"
        );
    }
}

#[test]
fn a_partly_stored_object_the_origin_changed_is_dropped_and_filled_again() {
    // A ranged fill stores the first chunk; the origin then changes the object (a new ETag):
    // the refetch of a missing chunk with `If-Match: "v1"` gets 412, so the stored object is
    // dropped and the next request fills the new one — not a truncated body until it expires.
    let version = Arc::new(Mutex::new("\"v1\""));
    let v2 = version.clone();
    let b = body();
    let served = b.clone();
    let o = Origin::start(move |r, _| {
        let b = &served;
        let etag = *v2.lock().unwrap();
        if let Some(m) = r.headers.get("if-match") {
            if m != etag {
                return OriginResp::new(412, &[("etag", etag)], bytes::Bytes::new());
            }
        }
        let h = [("cache-control", "max-age=600"), ("etag", etag)];
        match r.headers.get("range") {
            Some(v) => {
                let (cr, data) = ranged(b, v);
                let mut hs = h.to_vec();
                hs.push(("content-range", cr.as_str()));
                OriginResp::new(206, &hs, data)
            }
            None => OriginResp::new(200, &h, b.clone()),
        }
    });
    let edge = Edge::start(config(&o.url(), "", ""));
    let r = edge.get("/clip", &[("range", "bytes=0-0")]);
    assert_eq!(r.status, 206);
    *version.lock().unwrap() = "\"v2\"";

    // A range in a chunk that was never stored: refetched with If-Match "v1" → 412.
    let at = 5 * CHUNK;
    let r = edge.get("/clip", &[("range", &format!("bytes={at}-{}", at + 9))]);
    assert_ne!(
        r.body,
        &b[at..at + 10],
        "the outdated object cannot serve that chunk"
    );
    // Dropped: the next request is a miss that fills the new object whole.
    let r = edge.get("/clip", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), b.len());
    assert_eq!(r.header("etag"), Some("\"v2\""));
    assert_ne!(r.x_cache(), "HIT", "{}", r.cache_status());
    edge.stop();
}

#[test]
fn ranges_and_conditionals_of_objects_that_are_not_stored_reach_the_origin() {
    // An object over max_object_size is never stored, nor is a `private` one: a range of it
    // must still be a 206 of that range (a video seek, a resumed download), and a browser's
    // revalidation a 304 — not the whole object as a 200.
    let log: Arc<Log> = Arc::default();
    let l2 = log.clone();
    let b = body();
    let o = Origin::start(move |r, _| {
        let private = r.path.starts_with("/private");
        let mut h: Vec<(&str, String)> = vec![("etag", "\"p1\"".into())];
        h.push((
            "cache-control",
            if private {
                "private, max-age=60"
            } else {
                "max-age=600"
            }
            .into(),
        ));
        let range = r.headers.get("range").cloned();
        l2.lock()
            .unwrap()
            .push((range.clone(), r.headers.get("if-none-match").cloned(), 0));
        if r.headers.get("if-none-match").map(String::as_str) == Some("\"p1\"") {
            let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            return OriginResp::new(304, &hv, bytes::Bytes::new());
        }
        let (status, data) = match range {
            Some(v) => {
                let (cr, data) = ranged(&b, &v);
                h.push(("content-range", cr));
                (206, data)
            }
            None => (200, b.clone()),
        };
        let hv: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        OriginResp::new(status, &hv, data)
    });
    let edge = Edge::start(config(&o.url(), "max_object_size = \"100 KiB\"", ""));
    let b = body();

    // Too large (the ranged fill learns the length from its 206): the client's range goes to
    // the origin; no whole-object fill.
    let r = edge.get("/big", &[("range", "bytes=100-109")]);
    assert_eq!(r.status, 206, "{:?}", r.headers);
    assert_eq!(r.body, &b[100..110]);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 100-109/{}", b.len()).as_str())
    );
    let asked: Vec<Option<String>> = log.lock().unwrap().iter().map(|l| l.0.clone()).collect();
    assert_eq!(
        asked,
        [
            Some("bytes=0-65535".to_string()),
            Some("bytes=100-109".to_string())
        ],
        "a ranged attempt, then the client's range; never the whole object"
    );
    // Hit-for-miss: the next seek into that object goes straight to the origin as sent.
    log.lock().unwrap().clear();
    let r = edge.get("/big", &[("range", "bytes=200-209")]);
    assert_eq!((r.status, &r.body[..]), (206, &b[200..210]));
    let asked: Vec<Option<String>> = log.lock().unwrap().iter().map(|l| l.0.clone()).collect();
    assert_eq!(
        asked,
        [Some("bytes=200-209".to_string())],
        "one origin request"
    );

    // Not shareable: a range and a revalidation get their own answers.
    log.lock().unwrap().clear();
    let r = edge.get("/private", &[("range", "bytes=5-9")]);
    assert_eq!(r.status, 206, "{:?}", r.headers);
    assert_eq!(r.body, &b[5..10]);
    let first = log.lock().unwrap().len();
    assert!(
        first >= 2,
        "learning that it is private took a fill: {first}"
    );
    let r = edge.get("/private", &[("range", "bytes=10-19")]);
    assert_eq!((r.status, &r.body[..]), (206, &b[10..20]));
    assert_eq!(
        log.lock().unwrap().len(),
        first + 1,
        "then one request per range"
    );
    let r = edge.get("/private2", &[("if-none-match", "\"p1\"")]);
    assert_eq!(r.status, 304, "{:?}", r.headers);
    assert!(r.body.is_empty());
    // Without a range or a condition, such an object is streamed from the fill as before.
    let r = edge.get("/private3", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), b.len());
    edge.stop();
}
