//! Large objects: chunked storage, hits and ranges from chunks, objects above the maximum
//! passed through uncached, bodies without Content-Length.

mod cache_support;
use cache_support::*;

#[test]
fn chunked_object_hits_and_ranges_across_chunks() {
    // 64 KiB chunks (test config); 1 MiB + 123 bytes = 17 chunks, the last one short.
    let body = body_of(1024 * 1024 + 123, 5);
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        let mut r = OriginResp::new(
            200,
            &[("cache-control", "max-age=60"), ("etag", "\"big\"")],
            b2.clone(),
        );
        r.piece = 10_000;
        r
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/big", &[]);
    assert_eq!((r.status, r.x_cache()), (200, "MISS"));
    assert!(r.body == body);
    let r = edge.get("/big", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body == body);
    for (a, b) in [
        (0u64, 9u64),
        (65_530, 65_545),
        (1_000_000, 1_048_700),
        (1_048_570, 1_048_698),
    ] {
        let r = edge.get("/big", &[("range", &format!("bytes={a}-{b}"))]);
        assert_eq!(r.status, 206, "{a}-{b}");
        let end = (b as usize + 1).min(body.len());
        assert!(r.body == body[a as usize..end], "{a}-{b}");
        assert_eq!(
            r.header("content-range").unwrap(),
            format!("bytes {a}-{}/{}", end - 1, body.len())
        );
    }
    // HEAD of a chunked object.
    let h = edge.req("HEAD", "/big", &[], b"");
    assert_eq!(
        h.header("content-length"),
        Some(body.len().to_string().as_str())
    );
    assert_eq!(origin.count("/big"), 1);
}

#[test]
fn range_request_on_a_cold_object_fills_and_answers_the_range() {
    let body = body_of(300_000, 11);
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        OriginResp::new(200, &[("cache-control", "max-age=60")], b2.clone())
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/cold", &[("range", "bytes=200000-200099")]);
    assert_eq!(r.status, 206);
    assert!(r.body == body[200_000..200_100]);
    // The fill asks for the chunks covering the range (ranged.rs); this origin ignores ranges
    // and sends the whole object, which is stored from that one answer.
    assert_eq!(
        origin.requests("/cold")[0]
            .headers
            .get("range")
            .map(String::as_str),
        Some("bytes=196608-262143")
    );
    assert!(wait_until(std::time::Duration::from_secs(5), || edge
        .get("/cold", &[])
        .x_cache()
        == "HIT"));
    assert_eq!(origin.count("/cold"), 1);
}

#[test]
fn objects_above_max_size_pass_through_uncached() {
    let origin = Origin::start(|r, _| {
        let n = if r.path == "/huge" { 200_000 } else { 50_000 };
        OriginResp::new(200, &[("cache-control", "max-age=60")], body_of(n, 2))
    });
    let edge = Edge::start(config(&origin.url(), "max_object_size = \"100 KiB\"", ""));
    let r1 = edge.get("/huge", &[]);
    assert!(r1.body == body_of(200_000, 2));
    assert!(
        r1.cache_status().contains("detail=too-large"),
        "{}",
        r1.cache_status()
    );
    let r2 = edge.get("/huge", &[]);
    assert_eq!(r2.x_cache(), "MISS");
    assert_eq!(origin.count("/huge"), 2);
    edge.get("/small", &[]);
    assert_eq!(edge.get("/small", &[]).x_cache(), "HIT");
}

#[test]
fn chunked_body_is_streamed_and_stored_close_delimited_refused() {
    let body = body_of(150_000, 4);
    let b2 = body.clone();
    let origin = Origin::start(move |r, _| {
        let mut resp = OriginResp::new(200, &[("cache-control", "max-age=60")], b2.clone());
        match r.path.as_str() {
            "/chunked" => {
                resp.chunked = true;
                resp.piece = 7_000;
            }
            "/identity" => {
                // `Transfer-Encoding: identity` does not frame a body (RFC 9112 §6.3).
                resp.no_length = true;
                resp.headers
                    .push(("transfer-encoding".into(), "identity".into()));
            }
            _ => resp.no_length = true,
        }
        resp
    });
    let edge = Edge::start(config(&origin.url(), "", ""));
    let r = edge.get("/chunked", &[]);
    assert!(
        r.body == body && !r.truncated,
        "len {} truncated {}",
        r.body.len(),
        r.truncated
    );
    let r = edge.get("/chunked", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert_eq!(r.header("content-length"), Some("150000"));
    assert!(r.body == body);
    // A close-delimited HTTP/1.1 body cannot be read reliably by the origin client: it is
    // refused with 502 rather than stored or served empty.
    let r = edge.get("/close-delimited", &[]);
    assert_eq!(r.status, 502, "{r:?}");
    assert!(edge.get("/close-delimited", &[]).status == 502);
    // So is one whose Transfer-Encoding is not chunked: it was stored as an empty 200.
    let r = edge.get("/identity", &[]);
    assert_eq!(r.status, 502, "{r:?}");
    assert_ne!(edge.get("/identity", &[]).x_cache(), "HIT");
}

#[test]
fn big_objects_keep_chunks_on_disk_and_hit_from_there() {
    let size = 24 * 1024 * 1024;
    let body = bytes::Bytes::from(body_of(size, 13));
    let origin = Origin::start(ranged_body(body.clone()));
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.memory = bytesize::ByteSize::mib(4);
    cfg.cache.disk_path = Some(dir.path().to_path_buf());
    cfg.cache.disk = bytesize::ByteSize::mib(64);
    let edge = Edge::start(cfg);
    let r = edge.get("/disk-big", &[]);
    assert!(r.body[..] == body[..] && !r.truncated);
    let r = edge.get("/disk-big", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body[..] == body[..]);
    let full_fetches = origin
        .requests("/disk-big")
        .iter()
        .filter(|q| !q.headers.contains_key("range"))
        .count();
    assert_eq!(full_fetches, 1, "one fill; chunks are read back from disk");
}

#[test]
fn a_cold_chunked_body_larger_than_the_disk_write_queue_arrives_whole() {
    // No Content-Length, read from the origin far faster than the disk tier writes: chunks
    // the disk queue dropped could not be refetched (no length), so readers behind the fill
    // got a truncated body, and the object was stored with holes.
    let size = 48 * 1024 * 1024;
    let body = bytes::Bytes::from(body_of(size, 21));
    let b2 = body.clone();
    let origin = Origin::start(move |_, _| {
        let mut resp = OriginResp::new(200, &[("cache-control", "max-age=600")], b2.clone());
        resp.chunked = true;
        resp.piece = 256 * 1024;
        resp
    });
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.memory = bytesize::ByteSize::mib(4);
    cfg.cache.disk_path = Some(dir.path().to_path_buf());
    cfg.cache.disk = bytesize::ByteSize::mib(256);
    let edge = Edge::start(cfg);
    let r = edge.get("/dyn-big", &[]);
    assert!(!r.truncated, "cold: {} of {size} bytes", r.body.len());
    assert!(r.body[..] == body[..]);
    std::thread::sleep(cdn_tests::harness::scaled(
        std::time::Duration::from_millis(500),
    ));
    let r = edge.get("/dyn-big", &[]);
    assert!(!r.truncated, "warm: {} of {size} bytes", r.body.len());
    assert!(r.body[..] == body[..]);
    assert_eq!(origin.count("/dyn-big"), 1);
}
