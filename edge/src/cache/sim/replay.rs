//! Replay a trace through the edge's real cache core: [`Store`] (foyer, memory + disk tiers,
//! the given [`Placement`]) driven like the request path drives it. A request looks its key
//! up (`Store::get`); a fresh inline body is a hit; a chunked body reads every chunk with
//! `Store::get_chunk` (CRC checked, counted, promoted as the server promotes them); an object
//! whose first chunk cannot be read is filled again whole (as the request handler does,
//! `render::first_chunk`) and a later missing chunk is refetched from the "origin" and
//! written back (`Store::put_chunk`), as `body.rs` does; a miss (or an expired entry) is
//! filled as `writer.rs` fills: chunks of `chunk_size` written first, then the meta entry
//! (`Store::put_object`).
//!
//! The clock is virtual: request `i` arrives at `i / rate` seconds; objects carry
//! `max-age` = `max_age_s`, and an entry past it is refetched whole. Requests are replayed one
//! at a time (no coalescing: a real server with concurrent clients coalesces requests for an
//! object being filled, which the replay counts as hits once the fill is stored). After every
//! fill the replay waits for foyer's disk writes to be flushed (`Store::settle`), so a replay
//! faster than real time does not drop writes that the server, at its real request rate,
//! makes (switch off with `settle = false` to see the drops).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;

use super::{Ratios, Request};
use crate::cache::meta::{Body, Chunk, Entry, ObjectMeta};
use crate::cache::policy::{self, Class, Freshness, FreshnessSource};
use crate::cache::store::{chunk_key, Placement, Store, REFILL_MAX_CHUNKS};
use crate::error::EdgeError;
use cdn_shared::config::edge::CacheSection;

/// How to replay.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The cache (memory, disk directory and size, chunk size).
    pub cache: CacheSection,
    /// Placement knobs.
    pub placement: Placement,
    /// Virtual request rate (requests per second).
    pub rate: f64,
    /// Freshness lifetime of every object, seconds.
    pub max_age_s: u64,
    /// Wait for foyer's disk flush after every fill.
    pub settle: bool,
}

/// Where the bytes of the measured requests came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tiers {
    /// Requests served from memory only (meta entry and every chunk).
    pub memory_requests: u64,
    /// Requests with at least one disk read and no origin contact.
    pub disk_requests: u64,
    /// Body bytes served from memory.
    pub memory_bytes: u64,
    /// Body bytes served from disk.
    pub disk_bytes: u64,
    /// Lookups (meta entries and chunks) of objects stored before (first requests of an
    /// object are not counted) that missed memory and went to disk.
    pub disk_lookups: u64,
    /// Of those, found on disk.
    pub disk_found: u64,
    /// Body bytes of the lookups that went to disk (object size for meta lookups of inline
    /// bodies and for misses, chunk length for chunks).
    pub disk_lookup_bytes: u64,
    /// Of those, found on disk.
    pub disk_found_bytes: u64,
    /// Origin requests (whole-object fills plus chunk refetches).
    pub origin_requests: u64,
    /// Chunk refetches by range (a chunk after the first missing, its object's meta entry
    /// found; only bodies of more than `REFILL_MAX_CHUNKS` chunks).
    pub refetches: u64,
    /// Fresh objects whose body had left the cache (first chunk unreadable, meta entry found),
    /// filled again whole as the server does; counted in the misses.
    pub refills: u64,
}

/// The outcome of a replay.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Client-visible ratios (a request is a hit when it needed no origin request).
    pub ratios: Ratios,
    /// Tier accounting.
    pub tiers: Tiers,
    /// Memory tier usage at the end (foyer's weight).
    pub memory_used: u64,
    /// Wall time of the replay.
    pub wall: Duration,
    /// Process RSS before the store was opened, at the end of the replay (store still open)
    /// and its peak (bytes; `None` without procfs).
    pub rss: Option<(u64, u64, u64)>,
    /// The measured requests by body size class, smallest first.
    pub by_size: Vec<SizeClass>,
}

/// The measured requests of one body size class.
#[derive(Debug, Clone, Copy, Default)]
pub struct SizeClass {
    /// The class: bodies longer than half this and at most this long (a power of two; the
    /// first class also holds everything shorter than 1 KiB).
    pub size: u64,
    /// Their ratios.
    pub ratios: Ratios,
    /// Of them, first requests of their object in the trace (misses for any cache: the
    /// class's compulsory misses).
    pub first: u64,
}

/// Bodies of `len` zero bytes, each its own allocation (as a fill's bytes from the origin
/// are), so the process's RSS is the store's real footprint.
struct Bodies {
    zeros: Bytes,
}

impl Bodies {
    fn new(max: u64) -> Bodies {
        Bodies {
            zeros: Bytes::from(vec![0u8; max as usize]),
        }
    }

    fn get(&self, len: u64) -> Bytes {
        Bytes::copy_from_slice(&self.zeros[..len as usize])
    }
}

fn header(name: &'static str, value: &str) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(name),
        HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("-")),
    )
}

/// Replay `trace` (the first `warm` requests fill the cache and are not counted).
pub async fn run(trace: &[Request], warm: usize, cfg: &Replay) -> Result<Outcome, EdgeError> {
    let rss_before = super::rss();
    let store = Store::open_with(&cfg.cache, cfg.placement.clone()).await?;
    let started = Instant::now();
    let cs = cfg.cache.chunk_size.as_u64().max(1);
    let bodies = Bodies::new(cs);
    let mut ratios = Ratios::default();
    let mut tiers = Tiers::default();
    let mut by_size: std::collections::BTreeMap<u64, SizeClass> = Default::default();
    let mut seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut next_id: u64 = 1;
    let mut stored_before: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let t0_ms: u64 = 1_800_000_000_000;
    for (i, r) in trace.iter().enumerate() {
        let first = seen.insert(r.key.as_str());
        let now_ms = t0_ms + (i as f64 * 1000.0 / cfg.rate.max(1e-9)) as u64;
        let mut t = Tiers::default();
        let meta_in_memory = store.in_memory(&r.key);
        let found = match store.get(&r.key).await {
            Some(Entry::Object(m)) => {
                let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now_ms);
                (policy::classify(&m.freshness, age, m.invalidated) == Class::Fresh).then_some(m)
            }
            _ => None,
        };
        // handler.rs (render::first_chunk): the first chunk of a short chunked body is read
        // before answering; when it is gone the object is filled again whole.
        let mut read0: Option<(bool, Chunk)> = None;
        let found = match found {
            Some(m) => match &m.body {
                Body::Chunked {
                    len,
                    object_id,
                    crcs,
                    ..
                } if crcs.len() as u64 <= REFILL_MAX_CHUNKS => {
                    let key = chunk_key(&r.key, *object_id, 0);
                    let mem = store.in_memory(&key);
                    let got = store
                        .get_chunk(&key, crcs.first().copied(), Some(*len))
                        .await;
                    match got {
                        Some(c) => {
                            read0 = Some((mem, c));
                            Some(m)
                        }
                        None => {
                            t.refills += 1;
                            if !mem {
                                t.disk_lookups += 1;
                                t.disk_lookup_bytes += cs.min(*len);
                            }
                            None
                        }
                    }
                }
                _ => Some(m),
            },
            None => None,
        };
        let inline_len = match found.as_deref().map(|m| &m.body) {
            Some(Body::Inline { data, .. }) => data.len() as u64,
            _ => 0,
        };
        if !meta_in_memory && !stored_before.insert(r.key.as_str()) {
            t.disk_lookups += 1;
            t.disk_lookup_bytes += if found.is_some() { inline_len } else { r.size };
            if found.is_some() {
                t.disk_found += 1;
                t.disk_found_bytes += inline_len;
            }
        }
        let mut from_disk = !meta_in_memory && found.is_some();
        let mut origin = 0u64;
        match found.as_deref().map(|m| &m.body) {
            Some(Body::Inline { data, .. }) => {
                if meta_in_memory {
                    t.memory_bytes += data.len() as u64;
                } else {
                    t.disk_bytes += data.len() as u64;
                }
            }
            Some(Body::Chunked {
                len,
                chunk_size,
                object_id,
                crcs,
            }) => {
                let ccs = u64::from(*chunk_size);
                for (idx, &crc) in crcs.iter().enumerate() {
                    let idx = idx as u64;
                    let clen = ccs.min(len - idx * ccs);
                    let key = chunk_key(&r.key, *object_id, idx);
                    let (mem, got) = match read0.take() {
                        Some((mem, c)) if idx == 0 => (mem, Some(c)),
                        _ => {
                            let mem = store.in_memory(&key);
                            (mem, store.get_chunk(&key, Some(crc), Some(*len)).await)
                        }
                    };
                    if !mem {
                        t.disk_lookups += 1;
                        t.disk_lookup_bytes += clen;
                    }
                    match got {
                        Some(c) if mem => t.memory_bytes += c.data.len() as u64,
                        Some(c) => {
                            from_disk = true;
                            t.disk_found += 1;
                            t.disk_found_bytes += clen;
                            t.disk_bytes += c.data.len() as u64;
                        }
                        None => {
                            // body.rs: refetch by Range, verify, write back.
                            t.refetches += 1;
                            t.origin_requests += 1;
                            origin += clen;
                            let data = bodies.get(clen);
                            store.put_chunk(
                                key,
                                Chunk {
                                    crc: crc32fast::hash(&data),
                                    data,
                                },
                                *len,
                            );
                        }
                    }
                }
                if origin > 0 && cfg.settle {
                    store.settle().await;
                }
            }
            None => {
                // writer.rs: chunks first, then the meta entry.
                t.origin_requests += 1;
                origin = r.size;
                let object_id = next_id;
                next_id += 1;
                let body = if r.size >= cs {
                    let mut crcs = Vec::new();
                    let mut pos = 0;
                    while pos < r.size {
                        let clen = cs.min(r.size - pos);
                        let data = bodies.get(clen);
                        let crc = crc32fast::hash(&data);
                        let key = chunk_key(&r.key, object_id, crcs.len() as u64);
                        store.put_chunk(key, Chunk { crc, data }, r.size);
                        crcs.push(crc);
                        pos += clen;
                    }
                    Body::Chunked {
                        len: r.size,
                        chunk_size: cs as u32,
                        object_id,
                        crcs,
                    }
                } else {
                    let data = bodies.get(r.size);
                    Body::Inline {
                        crc: crc32fast::hash(&data),
                        data,
                    }
                };
                store.put_object(&r.key, Arc::new(object(r, body, now_ms, cfg.max_age_s)));
                if cfg.settle {
                    store.settle().await;
                }
            }
        }
        if i >= warm {
            let size = super::size_class(r.size);
            let class = by_size.entry(size).or_insert(SizeClass {
                size,
                ..Default::default()
            });
            class.first += u64::from(first);
            for x in [&mut ratios, &mut class.ratios] {
                x.requests += 1;
                x.bytes += r.size;
                x.origin_bytes += origin;
                x.hits += u64::from(origin == 0);
            }
            if origin == 0 {
                if from_disk {
                    t.disk_requests = 1;
                } else {
                    t.memory_requests = 1;
                }
            }
            add(&mut tiers, &t);
        }
    }
    let wall = started.elapsed();
    let memory_used = store.stats().memory_bytes;
    let rss = rss_before
        .zip(super::rss())
        .map(|((b, _), (now, peak))| (b, now, peak));
    store.close().await;
    Ok(Outcome {
        ratios,
        tiers,
        memory_used,
        wall,
        rss,
        by_size: by_size.into_values().collect(),
    })
}

fn add(a: &mut Tiers, b: &Tiers) {
    a.memory_requests += b.memory_requests;
    a.disk_requests += b.disk_requests;
    a.memory_bytes += b.memory_bytes;
    a.disk_bytes += b.disk_bytes;
    a.disk_lookups += b.disk_lookups;
    a.disk_found += b.disk_found;
    a.disk_lookup_bytes += b.disk_lookup_bytes;
    a.disk_found_bytes += b.disk_found_bytes;
    a.origin_requests += b.origin_requests;
    a.refetches += b.refetches;
    a.refills += b.refills;
}

/// The meta entry the edge stores for the yardstick origin's response (its headers, so the
/// memory weight is the server's).
fn object(r: &Request, body: Body, now_ms: u64, max_age_s: u64) -> ObjectMeta {
    ObjectMeta {
        url: r.key.clone(),
        status: 200,
        headers: vec![
            header("content-type", "application/octet-stream"),
            header("cache-control", &format!("public, max-age={max_age_s}")),
            header("etag", "\"0123456789abcdef0123\""),
            header("last-modified", "Sun, 22 Nov 2026 00:00:00 GMT"),
            header("x-origin-seq", "12345"),
        ],
        request_time_ms: now_ms,
        response_time_ms: now_ms,
        initial_age_ms: 0,
        freshness: Freshness {
            lifetime_ms: max_age_s * 1000,
            source: FreshnessSource::MaxAge,
            swr_ms: 0,
            sie_ms: 0,
            no_cache: false,
            forbid_stale: false,
        },
        invalidated: false,
        tags: Vec::new(),
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(dir: &std::path::Path) -> CacheSection {
        serde_json::from_value(serde_json::json!({
            "memory": 4u64 << 20,
            "disk_path": dir,
            "disk": 16u64 << 20,
            "chunk_size": 256u64 << 10,
        }))
        .unwrap()
    }

    fn req(key: &str, size: u64) -> Request {
        Request {
            key: key.into(),
            size,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn replay_counts_hits_misses_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let c = cache(dir.path());
        let cfg = Replay {
            placement: Placement::for_config(&c),
            cache: c,
            rate: 1.0,
            max_age_s: 3,
            settle: true,
        };
        // a (1 KiB) at t=0 miss; b (600 KiB, 3 chunks) at t=1 miss; a at t=2 hit;
        // b at t=3 hit; a at t=4 expired (age 4 s > 3 s) → refetched.
        let tr = vec![
            req("a", 1024),
            req("b", 600 << 10),
            req("a", 1024),
            req("b", 600 << 10),
            req("a", 1024),
        ];
        let out = run(&tr, 0, &cfg).await.unwrap();
        assert_eq!(
            out.ratios,
            Ratios {
                requests: 5,
                hits: 2,
                bytes: 3 * 1024 + 2 * (600 << 10),
                origin_bytes: 2 * 1024 + (600 << 10),
            }
        );
        assert_eq!(out.tiers.origin_requests, 3);
        // b's chunks are disk-only and not yet promoted: its hit read them from disk.
        assert_eq!(out.tiers.disk_requests, 1);
        assert_eq!(out.tiers.disk_bytes, 600 << 10);
        assert_eq!(out.tiers.memory_requests, 1);
        // Warm-up requests are replayed but not counted (a new disk directory: the first
        // store's entries would be recovered from the old one).
        let dir2 = tempfile::tempdir().unwrap();
        let cfg = Replay {
            cache: cache(dir2.path()),
            ..cfg
        };
        let out = run(&tr, 2, &cfg).await.unwrap();
        assert_eq!(out.ratios.requests, 3);
        assert_eq!(out.ratios.hits, 2);
    }
}
