//! Bounded memory while streaming a big cold object (its own test binary, so no other test
//! allocates in the same process while RSS is sampled).

mod cache_support;
use cache_support::*;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn streaming_a_big_cold_object_keeps_memory_bounded() {
    // 48 MiB object, 4 MiB memory cache, no disk: chunks the slow client has not read yet
    // may be evicted and are then refetched by range. Memory must not follow object size.
    let (growth, _) = stream_cold(48, None);
    assert!(
        growth < 32,
        "RSS grew by {growth} MiB for a 48 MiB object (memory only)"
    );
    // 96 MiB object with a disk tier: its chunks go to disk only.
    let dir = tempfile::tempdir().unwrap();
    let (growth, _) = stream_cold(96, Some(dir.path()));
    assert!(
        growth < 56,
        "RSS grew by {growth} MiB for a 96 MiB object (disk)"
    );
}

/// Stream a cold object of `mib` MiB through a slow client; (RSS growth MiB, refetches).
fn stream_cold(mib: usize, disk: Option<&std::path::Path>) -> (u64, usize) {
    let size = mib * 1024 * 1024;
    let body = bytes::Bytes::from(body_of(size, 12));
    let origin = Origin::start(ranged_body(body.clone()));
    let mut cfg = config(&origin.url(), "", "");
    cfg.cache.memory = bytesize::ByteSize::mib(4);
    if let Some(d) = disk {
        cfg.cache.disk_path = Some(d.to_path_buf());
        cfg.cache.disk = bytesize::ByteSize::mib(2 * mib as u64 + 64);
    }
    let edge = Edge::start(cfg);
    let before = rss_kib();

    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(edge.http).unwrap();
    c.write_all(b"GET /huge-stream HTTP/1.1\r\nhost: example.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut got: Vec<u8> = Vec::new();
    let mut head_done = false;
    let mut received = 0usize;
    let mut peak = before;
    let mut hasher_pos = 0usize;
    let mut mismatch = false;
    loop {
        let n = c.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let data = &buf[..n];
        if !head_done {
            got.extend_from_slice(data);
            let Some(p) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let rest = got[p + 4..].to_vec();
            head_done = true;
            got.clear();
            received += rest.len();
            mismatch |= rest[..] != body[hasher_pos..hasher_pos + rest.len()];
            hasher_pos += rest.len();
            continue;
        }
        received += data.len();
        mismatch |= data != &body[hasher_pos..hasher_pos + data.len()];
        hasher_pos += data.len();
        if received % (4 * 1024 * 1024) < 64 * 1024 {
            peak = peak.max(rss_kib());
            // A slow client: the fill runs ahead.
            std::thread::sleep(std::time::Duration::from_millis(150));
        }
    }
    assert_eq!(received, size, "whole body received");
    assert!(!mismatch, "bytes match the origin's");
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    let refetches = origin
        .requests("/huge-stream")
        .iter()
        .filter(|r| r.headers.contains_key("range"))
        .count();
    eprintln!("{mib} MiB object: rss growth {growth_mib} MiB, {refetches} chunk refetches");
    (growth_mib, refetches)
}
