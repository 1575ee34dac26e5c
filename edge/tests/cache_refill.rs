//! A fresh object whose body has left the cache while its meta entry stayed (the disk tier
//! reclaimed its chunks; the memory tier still holds the small meta entry) is a miss: filled
//! again whole from the origin, labelled `MISS`, counted in `cdn_edge_body_refills_total` —
//! not a "hit" whose body the origin sends chunk by chunk by `Range`. A range request still
//! refetches only the chunk it needs.

mod cache_support;
use std::time::Duration;

use cache_support::*;

const LEN: usize = 128 * 1024; // two 64 KiB chunks

fn seed(path: &str) -> u8 {
    path.bytes()
        .fold(7u8, |a, b| a.wrapping_mul(31).wrapping_add(b))
}

#[test]
fn a_body_gone_from_the_cache_is_refilled_as_a_miss() {
    let origin = Origin::start(|r, _| {
        let body = body_of(LEN, seed(&r.path));
        if let Some(range) = r.headers.get("range") {
            let (a, b) = range.trim_start_matches("bytes=").split_once('-').unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            let cr = format!("bytes {a}-{b}/{LEN}");
            return OriginResp::new(206, &[("content-range", cr.as_str())], body[a..=b].to_vec());
        }
        // /s…: stored, then stale at once (revalidated with If-None-Match on the next request).
        let cc = if r.path.starts_with("/s") {
            "max-age=0"
        } else {
            "max-age=600"
        };
        OriginResp::new(200, &[("cache-control", cc), ("etag", "\"v1\"")], body)
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.disk_path = Some(dir.path().to_path_buf());
    cfg.cache.disk = bytesize::ByteSize::mib(4);
    let e = Edge::start(cfg);

    let r = e.get("/s0", &[]);
    assert_eq!(r.x_cache(), "MISS");
    // 64 objects of two disk-only chunks: 8 MiB through a 4 MiB disk FIFO. The first ones'
    // chunks are reclaimed; their meta entries stay in the 64 MiB memory tier.
    for i in 0..64 {
        let p = format!("/o{i}");
        let r = e.get(&p, &[]);
        assert_eq!(r.x_cache(), "MISS", "{p}");
        assert!(r.body == body_of(LEN, seed(&p)), "{p}");
    }

    let r = e.get("/o0", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.x_cache(),
        "MISS",
        "a body fetched from the origin is not a hit"
    );
    assert!(
        r.cache_status().contains("fwd=uri-miss"),
        "{}",
        r.cache_status()
    );
    assert!(r.body == body_of(LEN, seed("/o0")));
    let asked = origin.requests("/o0");
    assert_eq!(asked.len(), 2, "filled once, then once again");
    assert!(
        asked.iter().all(|q| !q.headers.contains_key("range")),
        "the whole object is fetched, not chunks by range"
    );

    // Stored again: a hit with no further origin request (once foyer has flushed the chunks;
    // a chunk still in its write queue is not indexed yet).
    std::thread::sleep(cdn_tests::harness::scaled(Duration::from_millis(500)));
    let r = e.get("/o0", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body == body_of(LEN, seed("/o0")));
    assert_eq!(origin.requests("/o0").len(), 2);

    // Stale with its body gone: fetched whole, not revalidated (a 304 would not bring the body
    // back) and not refetched by range.
    let r = e.get("/s0", &[]);
    assert_eq!(r.x_cache(), "MISS");
    assert!(r.body == body_of(LEN, seed("/s0")));
    let asked = origin.requests("/s0");
    assert_eq!(asked.len(), 2, "stored once, then fetched once again");
    assert!(
        !asked[1].headers.contains_key("if-none-match") && !asked[1].headers.contains_key("range"),
        "{:?}",
        asked[1].headers
    );

    // A range request keeps the stored object (a ranged fill stores only some chunks) and
    // refetches the chunk it needs by range.
    let r = e.get("/o2", &[("range", "bytes=10-19")]);
    assert_eq!(r.status, 206);
    assert!(r.body == body_of(LEN, seed("/o2"))[10..20]);
    let asked = origin.requests("/o2");
    assert_eq!(asked.len(), 2);
    assert_eq!(
        asked[1].headers.get("range").map(String::as_str),
        Some("bytes=0-65535")
    );

    // A HEAD needs no body: still answered from the meta entry.
    let r = e.req("HEAD", "/o1", &[], b"");
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(origin.requests("/o1").len(), 1);

    let text = metrics_page(e.admin);
    let refills = sample(&text, "cdn_edge_body_refills_total").unwrap_or(0.0);
    assert!(refills >= 1.0, "refills counted: {text}");
    // Every body byte the origin sent, and nothing for hits (this binary runs one test, so
    // the process-wide counter is this test's): 65 objects stored, /o0 and /s0 filled again,
    // one 64 KiB chunk of /o2 refetched.
    let origin_bytes = sample(&text, "cdn_edge_origin_bytes_total").unwrap_or(0.0);
    assert_eq!(origin_bytes, (67 * LEN + 65_536) as f64, "{text}");
    e.stop();
}
