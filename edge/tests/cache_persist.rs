//! Persistence: the disk cache survives a restart (hits with no origin fetch), and a chunk
//! corrupted on disk is detected by its checksum and never served: refetched from the origin
//! by range, or — the first chunk of a whole-object request — the object is a miss, filled
//! again whole.

mod cache_support;
use std::time::Duration;

use cache_support::*;

fn disk_config(origin: &Origin, dir: &std::path::Path) -> cdn_shared::config::edge::EdgeConfig {
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.disk_path = Some(dir.to_path_buf());
    cfg.cache.disk = bytesize::ByteSize::mib(64);
    cfg
}

#[test]
fn restart_keeps_hits_without_origin_fetches() {
    let big = body_of(500_000, 8);
    let b2 = big.clone();
    let origin = Origin::start(move |r, _| {
        let body = if r.path.starts_with("/big") {
            b2.clone()
        } else {
            format!("small {}", r.path).into_bytes()
        };
        OriginResp::new(200, &[("cache-control", "max-age=600")], body)
    });
    let dir = tempfile::tempdir().unwrap();
    let e1 = Edge::start(disk_config(&origin, dir.path()));
    let paths: Vec<String> = (0..20).map(|i| format!("/s{i}")).collect();
    for p in &paths {
        assert_eq!(e1.get(p, &[]).x_cache(), "MISS");
    }
    assert!(e1.get("/big", &[]).body == big);
    e1.stop();
    let before = origin.seen.lock().unwrap().len();

    let e2 = Edge::start(disk_config(&origin, dir.path()));
    for p in &paths {
        let r = e2.get(p, &[]);
        assert_eq!(r.x_cache(), "HIT", "{p} after restart");
        assert_eq!(r.body, format!("small {p}").as_bytes());
    }
    let r = e2.get("/big", &[]);
    assert_eq!(r.x_cache(), "HIT");
    assert!(r.body == big);
    assert_eq!(
        origin.seen.lock().unwrap().len(),
        before,
        "no origin fetch after restart"
    );
}

#[test]
fn corrupted_chunk_on_disk_is_refetched_never_served() {
    let big = body_of(400_000, 6);
    let b2 = big.clone();
    let origin = Origin::start(move |r, _| {
        // Serve ranges for refetches.
        if let Some(range) = r.headers.get("range") {
            let spec = range.trim_start_matches("bytes=");
            let (a, b) = spec.split_once('-').unwrap();
            let (a, b): (usize, usize) = (a.parse().unwrap(), b.parse().unwrap());
            let cr = format!("bytes {a}-{b}/{}", b2.len());
            return OriginResp::new(
                206,
                &[("content-range", cr.as_str()), ("etag", "\"c1\"")],
                b2[a..=b].to_vec(),
            );
        }
        OriginResp::new(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"c1\"")],
            b2.clone(),
        )
    });
    // One byte flipped inside chunk 2 (bytes 131072..196608).
    let (_dir, e2) = stored_then_corrupted(&origin, &big, 140_000);
    let r = e2.get("/obj", &[]);
    assert_eq!(r.status, 200);
    assert!(!r.truncated);
    assert!(r.body == big, "the corrupted byte is never served");
    let ranges: Vec<_> = origin
        .requests("/obj")
        .into_iter()
        .filter_map(|q| q.headers.get("range").cloned())
        .collect();
    assert_eq!(
        ranges,
        vec!["bytes=131072-196607".to_string()],
        "only the bad chunk is refetched"
    );
    assert_eq!(ranges.len(), 1);
    // The refetched chunk was stored again: no further origin traffic.
    let n = origin.seen.lock().unwrap().len();
    assert!(e2.get("/obj", &[]).body == big);
    assert!(wait_until(Duration::from_millis(200), || true));
    assert_eq!(origin.seen.lock().unwrap().len(), n);
}

#[test]
fn corrupted_first_chunk_is_a_miss_filled_again_whole() {
    let big = body_of(400_000, 9);
    let b2 = big.clone();
    let origin = Origin::start(move |_, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=600"), ("etag", "\"c1\"")],
            b2.clone(),
        )
    });
    // One byte flipped inside chunk 0 (bytes 0..65536).
    let (_dir, e2) = stored_then_corrupted(&origin, &big, 1_000);
    let r = e2.get("/obj", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.x_cache(), "MISS", "the body came from the origin");
    assert!(r.body == big, "the corrupted byte is never served");
    let asked = origin.requests("/obj");
    assert_eq!(asked.len(), 2);
    assert!(!asked[1].headers.contains_key("range"), "fetched whole");
}

/// Store `/obj` (`big`) through an edge with a disk cache, stop it, flip the byte at offset
/// `at + 10` of the body wherever foyer put it on disk, and start a second edge on that cache.
fn stored_then_corrupted(origin: &Origin, big: &[u8], at: usize) -> (tempfile::TempDir, Edge) {
    let dir = tempfile::tempdir().unwrap();
    let e1 = Edge::start(disk_config(origin, dir.path()));
    assert!(e1.get("/obj", &[]).body == big);
    e1.stop();
    let needle = &big[at..at + 64];
    let mut corrupted = 0;
    for entry in walk(dir.path()) {
        let mut data = std::fs::read(&entry).unwrap();
        if let Some(pos) = data.windows(needle.len()).position(|w| w == needle) {
            data[pos + 10] ^= 0xff;
            std::fs::write(&entry, &data).unwrap();
            corrupted += 1;
        }
    }
    assert!(corrupted >= 1, "chunk bytes found on disk");
    let e2 = Edge::start(disk_config(origin, dir.path()));
    (dir, e2)
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
