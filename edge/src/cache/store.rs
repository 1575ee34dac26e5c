//! The foyer hybrid cache (memory + optional disk), running on its own small tokio runtime
//! that lives as long as the [`Store`]. Values are [`Entry`]s keyed by strings.
//!
//! Seams for purge (edge-ops): [`Store::remove`] (hard), [`Store::mark_stale`] (soft), and
//! [`IndexHook`], called with every stored object's key, URL and tags, and with every removed
//! key.
//!
//! foyer facts we rely on (DESIGN.md §7): `insert` is visible in memory at once, but the disk
//! write happens later and may be dropped under pressure, so any chunk may be missing; the
//! caller treats that as a miss of that range. Entries are written on insertion so that a
//! restart (clean or `kill -9`) finds them; recovery mode is `Quiet`.

use std::sync::{Arc, OnceLock};

use cdn_shared::config::edge::CacheSection;
use foyer::{
    BlockEngineConfig, DeviceBuilder, EvictionPicker, FifoPicker, FsDeviceBuilder, Hint,
    HybridCache, HybridCacheBuilder, HybridCachePolicy, HybridCacheProperties, InvalidRatioPicker,
    LfuConfig, Load, Location, LruConfig, RecoverMode, S3FifoConfig, Statistics, StorageFilter,
    StorageFilterCondition, StorageFilterResult,
};

use super::hot::HitCounts;
#[cfg(test)]
use super::hot::PROMOTE_AFTER;
use super::meta::{Body, Chunk, Entry, ObjectMeta};
pub use super::placement::{MemoryEviction, Placement};
use crate::error::EdgeError;

/// Told about stored and removed objects (edge-ops's purge index implements it).
pub trait IndexHook: Send + Sync {
    /// An object was stored under `key` for `url` (host + path + query) with `tags`.
    fn record(&self, key: &str, url: &str, tags: &[String]);
    /// The object under `key` was removed.
    fn forget(&self, key: &str);
    /// `key` was read from the cache holding `url`/`tags`, stored at `stored_ms`: when the
    /// index does not know it (its record lost in a crash), index it again — or, when a purge
    /// since `stored_ms` names it, say `false` so the read treats it as purged. Default: keep.
    fn ensure(&self, _key: &str, _url: &str, _tags: &[String], _stored_ms: u64) -> bool {
        true
    }
    /// Did a purge naming `url` or one of `tags` run at or after `since_ms` (this edge's clock)?
    /// An object whose origin request went out before such a purge may hold what was purged:
    /// it is not stored. Default: no.
    fn purged_after(&self, _url: &str, _tags: &[String], _since_ms: u64) -> bool {
        false
    }
    /// Every key stored for `url` (host + path + query): its Vary variants, under either
    /// scheme and any `key_headers`, and their encoded copies. Default: none known.
    fn keys_for_url(&self, _url: &str) -> Vec<String> {
        Vec::new()
    }
    /// May `key`, a Vary variant of `url`, be stored when at most `max` variants per URL are?
    /// (It may when it is already one of them.) Default: yes.
    fn admits_variant(&self, _url: &str, _key: &str, _max: usize) -> bool {
        true
    }
}

/// Cache statistics for reports and metrics.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreStats {
    /// Bytes held in memory (foyer's weighted usage).
    pub memory_bytes: u64,
    /// Configured memory capacity.
    pub memory_capacity: u64,
    /// Bytes written to the disk tier so far (bounded by its capacity).
    pub disk_bytes: u64,
    /// Disk capacity (0 without a disk tier).
    pub disk_capacity: u64,
}

/// One partition of the cache: a foyer hybrid cache with its own memory and disk budget.
/// Partition 0 holds every host without a share of its own (`[cache]`'s sizes); each host with
/// `[hosts.cache]` has its own, so its working set cannot be evicted by another host's tail.
struct Part {
    cache: HybridCache<String, Entry>,
    disk_capacity: u64,
    memory_capacity: u64,
}

/// A host's own share of the cache (`[hosts.cache]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostShare {
    /// The host's configured name (lower case): the host part of its cache keys.
    pub host: String,
    /// Memory tier bytes.
    pub memory: u64,
    /// Disk tier bytes (0: memory only). Stored under `<disk_path>/hosts/<host>`.
    pub disk: u64,
}

/// The cache.
pub struct Store {
    placement: Placement,
    hits: Arc<HitCounts>,
    parts: Vec<Part>,
    /// Host name → index in `parts` (hosts with a share of their own).
    by_host: std::collections::HashMap<String, usize>,
    runtime: Option<tokio::runtime::Runtime>,
    hook: OnceLock<Arc<dyn IndexHook>>,
    chunk_size: usize,
    /// Chunk reads from disk in flight: each holds a chunk-sized buffer, so their number is
    /// bounded ([`DISK_READS`]); further reads wait for a slot before allocating.
    disk_reads: Arc<tokio::sync::Semaphore>,
}

/// Most chunk reads from disk in flight per store.
pub const DISK_READS: usize = 32;

/// The host part of a cache key (`scheme://host/path…`), if it has one.
fn key_host(key: &str) -> Option<&str> {
    let rest = &key[key.find("://")? + 3..];
    Some(&rest[..rest.find('/').unwrap_or(rest.len())])
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("chunk_size", &self.chunk_size)
            .finish()
    }
}

/// Chunked bodies of at most this many chunks whose chunk has left the cache are filled again
/// as misses ([`Store::chunk_gone`]); longer ones refetch missing chunks by range.
pub const REFILL_MAX_CHUNKS: u64 = 16;

/// Key of chunk `idx` of the object stored under `key` with id `object_id`.
/// foyer's disk write buffers and submit queue per partition for chunks of `chunk` bytes:
/// writes queued beyond it are dropped (read back as misses), so a fill that writes chunks
/// faster than the disk takes them waits for the queue every half of this
/// ([`Store::settle_part`], `writer.rs`).
pub fn disk_write_pool(chunk: usize) -> usize {
    (4 * chunk).max(8 * 1024 * 1024)
}

pub fn chunk_key(key: &str, object_id: u64, idx: u64) -> String {
    format!("{key}\n#chunk:{object_id:016x}:{idx}")
}

impl Store {
    /// Open (and, with a disk tier, recover) the cache on its own runtime.
    pub async fn open(cfg: &CacheSection) -> Result<Arc<Store>, EdgeError> {
        Store::open_with(cfg, Placement::for_config(cfg)).await
    }

    /// [`Store::open`] with another placement (the cache simulator's variants).
    pub async fn open_with(
        cfg: &CacheSection,
        placement: Placement,
    ) -> Result<Arc<Store>, EdgeError> {
        Store::open_partitioned(cfg, placement, &[]).await
    }

    /// [`Store::open`] with a partition of its own for each host in `shares` (its memory and
    /// disk budget; the disk tier in `<disk_path>/hosts/<host>`), all on one runtime.
    pub async fn open_partitioned(
        cfg: &CacheSection,
        placement: Placement,
        shares: &[HostShare],
    ) -> Result<Arc<Store>, EdgeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("foyer")
            .enable_all()
            .build()
            .map_err(|e| EdgeError::Cache(format!("cannot start cache runtime: {e}")))?;
        let cfg2 = cfg.clone();
        let placement2 = placement.clone();
        let hits = Arc::new(HitCounts::default());
        let hits2 = hits.clone();
        let mut cfgs = vec![cfg2];
        for s in shares {
            let mut c = cfg.clone();
            c.memory = bytesize::ByteSize::b(s.memory);
            c.disk = bytesize::ByteSize::b(s.disk);
            c.disk_path = match (&cfg.disk_path, s.disk) {
                (Some(dir), d) if d > 0 => Some(dir.join("hosts").join(&s.host)),
                _ => None,
            };
            cfgs.push(c);
        }
        let mut parts = Vec::with_capacity(cfgs.len());
        for c in cfgs {
            let handle = runtime.handle().clone();
            let (c2, p2, h2) = (c.clone(), placement2.clone(), hits2.clone());
            let built = runtime
                .spawn(async move { build(&c2, &p2, h2, handle).await })
                .await;
            let cache = match built {
                Ok(Ok(cache)) => cache,
                Ok(Err(e)) => {
                    // A runtime cannot be dropped (blocking) inside this async context: let it
                    // wind down in the background, so the error reaches the operator instead
                    // of a panic.
                    runtime.shutdown_background();
                    return Err(EdgeError::Cache(match &c.disk_path {
                        Some(dir) => format!(
                            "cannot open the disk cache in {} (cache.disk_path, cache.disk = {}): {e}",
                            dir.display(),
                            c.disk
                        ),
                        None => format!("cannot open cache: {e}"),
                    }));
                }
                Err(e) => {
                    runtime.shutdown_background();
                    return Err(EdgeError::Cache(format!("cannot open cache: {e}")));
                }
            };
            parts.push(Part {
                cache,
                disk_capacity: if c.disk_path.is_some() {
                    c.disk.as_u64()
                } else {
                    0
                },
                memory_capacity: c.memory.as_u64(),
            });
        }
        let by_host = shares
            .iter()
            .enumerate()
            .map(|(i, s)| (s.host.clone(), i + 1))
            .collect();
        Ok(Arc::new(Store {
            placement,
            hits,
            parts,
            by_host,
            runtime: Some(runtime),
            hook: OnceLock::new(),
            chunk_size: cfg.chunk_size.as_u64() as usize,
            disk_reads: Arc::new(tokio::sync::Semaphore::new(DISK_READS)),
        }))
    }

    /// The partition `key` lives in.
    fn part(&self, key: &str) -> &Part {
        let i = if self.by_host.is_empty() {
            0
        } else {
            key_host(key)
                .and_then(|h| self.by_host.get(h))
                .copied()
                .unwrap_or(0)
        };
        &self.parts[i]
    }

    /// Install the purge index hook (once).
    pub fn set_index_hook(&self, hook: Arc<dyn IndexHook>) {
        let _ = self.hook.set(hook);
    }

    /// Configured chunk size.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Look a key up (memory, then disk). A disk entry that fails its checksum is removed
    /// and reported as a miss.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        let cache = &self.part(key).cache;
        // A memory hit straight from the memory tier: foyer's hybrid `get` prepares for a disk
        // load on every call (a shared context, a clock reading, a span).
        let found = match cache.memory().get(key) {
            Some(e) => Ok(Some(e)),
            None => cache.get(key).await,
        };
        match found {
            Ok(Some(e)) => {
                if let Entry::Object(m) = e.value() {
                    if matches!(&m.body, Body::Inline { data, .. }
                        if data.len() as u64 >= self.placement.count_inline_from)
                    {
                        self.hits.hit(e.hash());
                    }
                }
                if let (Entry::Object(m), Some(h)) = (e.value(), self.hook.get()) {
                    if !h.ensure(key, &m.url, &m.tags, m.response_time_ms) {
                        tracing::info!(key, "unindexed object purged since it was stored; dropped");
                        cache.remove(key);
                        return None;
                    }
                }
                Some(e.value().clone())
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "cache entry unreadable; dropped");
                cache.remove(key);
                None
            }
        }
    }

    /// Store an object's meta entry and tell the purge index.
    pub fn put_object(&self, key: &str, meta: Arc<ObjectMeta>) {
        if let Some(h) = self.hook.get() {
            // A purge that ran while this object was being fetched names it: what the origin
            // sent may predate the purge, so it is served to the requests that waited for it
            // but not stored (and not brought back for later requests).
            if h.purged_after(&meta.url, &meta.tags, meta.request_time_ms) {
                tracing::debug!(key, "not stored: purged while it was being fetched");
                return;
            }
            h.record(key, &meta.url, &meta.tags);
        }
        if let Body::Inline { data, .. } = &meta.body {
            if !self.admit(key, data.len() as u64) {
                return;
            }
        }
        let part = self.part(key);
        let mut props = HybridCacheProperties::default();
        if self.low_priority(part, &meta.body) {
            props = props.with_hint(Hint::Low);
        }
        if let (true, Body::Inline { data, .. }) = (part.disk_capacity > 0, &meta.body) {
            let len = data.len() as u64;
            if len >= self.placement.disk_only_from {
                props = props.with_location(Location::OnDisk);
            } else if len < self.placement.memory_only_below {
                props = props.with_location(Location::InMem);
            }
        }
        part.cache
            .insert_with_properties(key.to_string(), Entry::Object(meta), props);
    }

    /// Whether an object enters the memory tier with a low priority: with a disk tier, inline
    /// bodies of at least [`Placement::low_hint_from`] (1/16 of a chunk, 64 KiB by default).
    /// foyer's LRU evicts low-priority entries first, so under pressure the memory tier keeps
    /// many small objects rather than a few large ones (more request hits per byte; the large
    /// ones stay readable from disk, and a disk hit brings one back with normal priority).
    fn low_priority(&self, part: &Part, body: &Body) -> bool {
        part.disk_capacity > 0
            && matches!(body, Body::Inline { .. })
            && body.len() >= self.placement.low_hint_from
    }

    /// Second-hit admission ([`Placement::second_hit_from`]) of a body of `len` bytes under
    /// `key`: counts the attempt, true when it is to be stored.
    fn admit(&self, key: &str, len: u64) -> bool {
        let part = self.part(key);
        if part.disk_capacity == 0 || len < self.placement.second_hit_from {
            return true;
        }
        let hash = std::hash::BuildHasher::hash_one(&**part.cache.memory().hash_builder(), key);
        self.hits.hit(hash) >= 2
    }

    /// Whether the cache holds `key` (memory, or the disk tier's index; no I/O). May say yes
    /// for a key whose hash collides with a stored one. The purge index collector's question.
    pub fn contains(&self, key: &str) -> bool {
        self.part(key).cache.contains(key)
    }

    /// Whether the body of `meta`, stored under `key`, has left the cache while its meta
    /// entry has not: chunk `idx` of a chunked body of at most [`REFILL_MAX_CHUNKS`] chunks is
    /// no longer stored (memory or the disk tier's index; no I/O). Such a request is filled
    /// again as a miss — the whole object (or the client's range), once for every request
    /// that arrives meanwhile — rather than answered as a hit whose body comes from the origin
    /// chunk by chunk (a chunk written with its object leaves the disk tier with it). Longer
    /// bodies and inline ones are never "gone": a missing chunk of a long body is refetched by
    /// range as it is read. (foyer indexes a disk write once it is flushed, so a chunk still
    /// in its write queue looks gone too; a read of it would miss as well, and a refill costs
    /// the origin what a range refetch would. Measured: no refills in a hot-object run.)
    pub fn chunk_gone(&self, key: &str, meta: &ObjectMeta, idx: u64) -> bool {
        match &meta.body {
            Body::Chunked {
                object_id, crcs, ..
            } if (crcs.len() as u64) <= REFILL_MAX_CHUNKS && idx < crcs.len() as u64 => {
                !self.contains(&chunk_key(key, *object_id, idx))
            }
            _ => false,
        }
    }

    /// Whether `key` is in the memory tier now (the simulator's tier accounting).
    pub fn in_memory(&self, key: &str) -> bool {
        self.part(key).cache.memory().contains(key)
    }

    /// Wait until foyer's disk writes queued so far are flushed, for the partition holding
    /// `key` (a fill's backpressure: see [`disk_write_pool`]).
    pub async fn settle_part(&self, key: &str) {
        if let Some(rt) = &self.runtime {
            let cache = self.part(key).cache.clone();
            let _ = rt.spawn(async move { cache.storage().wait().await }).await;
        }
    }

    /// Wait until foyer's disk writes queued so far are flushed (the simulator calls it so a
    /// replay faster than real time does not drop disk writes a real server would make).
    pub async fn settle(&self) {
        if let Some(rt) = &self.runtime {
            for p in &self.parts {
                let cache = p.cache.clone();
                let _ = rt.spawn(async move { cache.storage().wait().await }).await;
            }
        }
    }

    /// May `key`, a Vary variant of `url`, be stored with at most `max` variants per URL
    /// ([`IndexHook::admits_variant`]; yes without an index).
    pub fn admits_variant(&self, url: &str, key: &str, max: usize) -> bool {
        self.hook
            .get()
            .is_none_or(|h| h.admits_variant(url, key, max))
    }

    /// Store a Vary variant list under a primary key.
    pub fn put_vary(&self, key: &str, names: Arc<Vec<String>>) {
        self.part(key)
            .cache
            .insert(key.to_string(), Entry::Vary(names));
    }

    /// Whether an object of `len` bytes is written with its chunks on disk only. With a disk
    /// tier, every chunked body (at least one chunk long; shorter bodies are inline in the
    /// object's meta entry) is: the memory tier holds meta entries, small bodies and large
    /// bodies requested again, so a long tail of large one-hit objects does not wash it out
    /// (request hit ratio under Zipf), and a cold stream of a huge object does not grow memory.
    pub fn disk_only(&self, key: &str, len: u64) -> bool {
        let p = self.part(key);
        p.disk_capacity > 0 && (len >= self.chunk_size as u64 || len > p.memory_capacity / 8)
    }

    /// Whether chunks of an object of `len` bytes stay out of memory even when read (objects
    /// above 1/8 of the memory tier, with a disk tier). Chunks of smaller disk-only objects
    /// are copied into memory on their [`PROMOTE_AFTER`]-th hit (see [`super::hot`]).
    fn never_in_memory(&self, key: &str, len: u64) -> bool {
        let p = self.part(key);
        p.disk_capacity > 0 && len > p.memory_capacity / 8
    }

    /// Store one chunk of an object of (at least) `object_len` bytes.
    pub fn put_chunk(&self, key: String, chunk: Chunk, object_len: u64) {
        if !self.admit(&key, object_len) {
            return;
        }
        let cache = &self.part(&key).cache;
        if self.disk_only(&key, object_len) {
            cache.insert_with_properties(
                key,
                Entry::Chunk(chunk),
                HybridCacheProperties::default().with_location(Location::OnDisk),
            );
        } else {
            cache.insert(key, Entry::Chunk(chunk));
        }
    }

    /// Read one chunk of an object of `object_len` bytes (when known); `None` when missing
    /// (evicted, dropped disk write, or corrupt on disk), or — with `expect_crc` — when its CRC
    /// differs. Every hit is counted (see [`super::hot`]); chunks of objects above 1/8 of the
    /// memory tier are never promoted into memory.
    pub async fn get_chunk(
        &self,
        key: &str,
        expect_crc: Option<u32>,
        object_len: Option<u64>,
    ) -> Option<Chunk> {
        let promote = !object_len.is_some_and(|l| self.never_in_memory(key, l));
        let got = self.get_counted(key, promote).await;
        match got {
            Some(Entry::Chunk(c)) if expect_crc.is_none_or(|crc| c.crc == crc) => Some(c),
            Some(_) => {
                self.part(key).cache.remove(key);
                None
            }
            None => None,
        }
    }

    /// Look a key up in memory, then on disk, counting the hit; with `promote`, a disk hit
    /// is copied into memory (not written again) once the key has [`PROMOTE_AFTER`] hits.
    async fn get_counted(&self, key: &str, promote: bool) -> Option<Entry> {
        let part = self.part(key);
        if let Some(e) = part.cache.memory().get(key) {
            self.hits.hit(e.hash());
            return Some(e.value().clone());
        }
        if part.disk_capacity == 0 {
            return None;
        }
        let v = self.load_disk(key).await?;
        let hash = std::hash::BuildHasher::hash_one(&**part.cache.memory().hash_builder(), key);
        if self.hits.hit(hash) >= self.placement.promote_after && promote {
            part.cache.memory().insert(key.to_string(), v.clone());
        }
        Some(v)
    }

    /// Look a key up on disk (including writes not yet flushed), without inserting a hit into
    /// the memory tier.
    async fn load_disk(&self, key: &str) -> Option<Entry> {
        let rt = self.runtime.as_ref()?;
        let cache = self.part(key).cache.clone();
        let k = key.to_string();
        let slots = self.disk_reads.clone();
        match rt
            .spawn(async move {
                // Held until the read is done, even when the request that asked is gone.
                let _slot = slots.acquire_owned().await;
                cache.storage().load(&k).await
            })
            .await
        {
            Ok(Ok(Load::Entry { value, .. })) => Some(value),
            Ok(Ok(Load::Piece { piece, .. })) => Some(piece.value().clone()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::warn!(key, error = %e, "cache entry unreadable; dropped");
                self.part(key).cache.remove(key);
                None
            }
            Err(_) => None,
        }
    }

    /// Delete one chunk (of an object whose meta entry was never written).
    pub fn remove_chunk(&self, key: &str) {
        self.part(key).cache.remove(key);
    }

    /// Hard purge: delete the entry under `key` (its chunks become unreachable and age out).
    pub fn remove(&self, key: &str) {
        self.part(key).cache.remove(key);
        if let Some(h) = self.hook.get() {
            h.forget(key);
        }
    }

    /// Remove everything stored for `url` (RFC 9111 §4.4, an unsafe method's target): the keys
    /// the index holds for it (every variant, both schemes, encoded copies) and `primary`, the
    /// request's own key (also the Vary list's). Returns how many keys the index named.
    pub fn invalidate_url(&self, url: &str, primary: &str) -> usize {
        let keys = self
            .hook
            .get()
            .map(|h| h.keys_for_url(url))
            .unwrap_or_default();
        for k in &keys {
            self.remove(k);
        }
        self.remove(primary);
        keys.len()
    }

    /// Soft purge: keep the object but mark it stale, so the next request revalidates it and
    /// stale-if-error can still serve it. Returns whether an object was found.
    pub async fn mark_stale(&self, key: &str) -> bool {
        match self.get(key).await {
            Some(Entry::Object(m)) => {
                let mut m = (*m).clone();
                m.invalidated = true;
                self.part(key)
                    .cache
                    .insert(key.to_string(), Entry::Object(Arc::new(m)));
                true
            }
            _ => false,
        }
    }

    /// Figures for reports: every partition together.
    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats::default();
        for p in &self.parts {
            let one = Self::part_stats(p);
            s.memory_bytes += one.memory_bytes;
            s.memory_capacity += one.memory_capacity;
            s.disk_capacity += one.disk_capacity;
        }
        s
    }

    fn part_stats(p: &Part) -> StoreStats {
        StoreStats {
            memory_bytes: p.cache.memory().usage() as u64,
            memory_capacity: p.cache.memory().capacity() as u64,
            disk_bytes: 0,
            disk_capacity: p.disk_capacity,
        }
    }

    /// Figures of each host with a share of its own (`[hosts.cache]`), by host name.
    pub fn host_stats(&self) -> Vec<(String, StoreStats)> {
        let mut v: Vec<(String, StoreStats)> = self
            .by_host
            .iter()
            .map(|(h, &i)| (h.clone(), Self::part_stats(&self.parts[i])))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Flush and close the cache (waits for pending disk writes).
    pub async fn close(&self) {
        if let Some(rt) = &self.runtime {
            for p in &self.parts {
                let cache = p.cache.clone();
                let _ = rt.spawn(async move { cache.close().await }).await;
            }
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn build(
    cfg: &CacheSection,
    placement: &Placement,
    hits: Arc<HitCounts>,
    handle: tokio::runtime::Handle,
) -> foyer::Result<HybridCache<String, Entry>> {
    let memory = HybridCacheBuilder::new()
        .with_name("edge")
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .with_flush_on_close(true)
        .memory(cfg.memory.as_u64() as usize);
    let memory = match placement.memory_eviction {
        MemoryEviction::Lru => memory.with_eviction_config(LruConfig::default()),
        MemoryEviction::S3Fifo => memory.with_eviction_config(S3FifoConfig::default()),
        MemoryEviction::Lfu => memory.with_eviction_config(LfuConfig::default()),
    };
    let builder = memory
        .with_weighter(|k: &String, v: &Entry| k.len() + v.weight())
        .storage()
        .with_spawner(handle.into());
    match &cfg.disk_path {
        None => builder.build().await,
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(foyer::Error::io_error)?;
            let device = FsDeviceBuilder::new(dir)
                .with_capacity(cfg.disk.as_u64() as usize)
                .build()?;
            // Blocks hold whole entries: a chunk plus its header must fit.
            let chunk = cfg.chunk_size.as_u64() as usize;
            let mut block = (4 * chunk).clamp(16 * 1024 * 1024, 64 * 1024 * 1024);
            // Keep enough blocks for foyer's flushers and reclaimers to work with.
            if block > cfg.disk.as_u64() as usize / 16 {
                block = (cfg.disk.as_u64() as usize / 16).max(chunk + 64 * 1024);
            }
            // foyer's write path holds up to 2 I/O buffers of `pool / flushers` per flusher
            // plus a submit queue (entries beyond it are dropped, read back as misses):
            // 8 MiB + 8 MiB keeps the edge's RSS while streaming a cold huge object well
            // under 64 MiB above idle (a 32 MiB pool measured +217 MiB, 1 GiB cold stream).
            let pool = disk_write_pool(chunk);
            let pickers: Vec<Box<dyn EvictionPicker>> = vec![
                Box::new(InvalidRatioPicker::new(placement.disk_invalid_ratio)),
                Box::new(FifoPicker::new(placement.disk_fifo_probation)),
            ];
            let block = placement.disk_block_size.unwrap_or(block);
            let mut engine = BlockEngineConfig::new(device);
            if placement.disk_reinsert_hits > 0 {
                engine = engine.with_reinsertion_filter(StorageFilter::new().with_condition(
                    HotEnough {
                        hits,
                        min: placement.disk_reinsert_hits,
                    },
                ));
            }
            let engine = engine
                .with_eviction_pickers(pickers)
                .with_block_size(block)
                .with_flushers(2)
                .with_buffer_pool_size(pool)
                .with_submit_queue_size_threshold(pool);
            builder
                .with_engine_config(engine)
                .with_recover_mode(RecoverMode::Quiet)
                .build()
                .await
        }
    }
}

/// Reinsertion condition: the entry's counted hits reach `min`.
#[derive(Debug)]
struct HotEnough {
    hits: Arc<HitCounts>,
    min: u8,
}

impl StorageFilterCondition for HotEnough {
    fn filter(&self, _: &Arc<Statistics>, hash: u64, _: usize) -> StorageFilterResult {
        if self.hits.count(hash) >= self.min.max(1) {
            StorageFilterResult::Admit
        } else {
            StorageFilterResult::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_config_default_is_the_documented_promotion_hit() {
        let c = CacheSection::default();
        assert_eq!(c.promote_after, PROMOTE_AFTER);
        assert_eq!(Placement::for_config(&c).promote_after, PROMOTE_AFTER);
    }

    use bytes::Bytes;
    use bytesize::ByteSize;

    use super::*;
    use crate::cache::policy::{Freshness, FreshnessSource};

    /// A store of 16 MiB memory + 64 MiB disk in `dir`, chunks of 64 KiB.
    async fn small_disk_store(dir: &tempfile::TempDir) -> Arc<Store> {
        let cfg = CacheSection {
            memory: ByteSize::mib(16),
            disk_path: Some(dir.path().to_path_buf()),
            disk: ByteSize::mib(64),
            chunk_size: ByteSize::kib(64),
            ..Default::default()
        };
        Store::open(&cfg).await.unwrap()
    }

    fn chunk(n: usize) -> Chunk {
        let data = Bytes::from(vec![7u8; n]);
        Chunk {
            crc: crc32fast::hash(&data),
            data,
        }
    }

    #[actix_rt::test]
    async fn an_unusable_disk_path_is_an_error_naming_it_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, b"x").unwrap();
        let cfg = CacheSection {
            memory: ByteSize::mib(16),
            disk_path: Some(file.join("sub")),
            disk: ByteSize::mib(64),
            ..Default::default()
        };
        let Err(e) = Store::open(&cfg).await else {
            panic!("a cache under a file opened");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("cache.disk_path") && msg.contains("a-file"),
            "{msg}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn disk_only_chunks_enter_memory_only_when_hot() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_disk_store(&dir).await;
        // An object of two chunks (≤ memory/8): disk-only, promoted on its PROMOTE_AFTER-th hit.
        let len = 128 * 1024;
        let key = chunk_key("k", 1, 0);
        store.put_chunk(key.clone(), chunk(64 * 1024), len);
        assert!(
            !store.parts[0].cache.memory().contains(&key),
            "written to disk only"
        );
        for i in 1..PROMOTE_AFTER {
            assert!(store.get_chunk(&key, None, Some(len)).await.is_some());
            assert!(
                !store.parts[0].cache.memory().contains(&key),
                "in memory after {i} hits"
            );
        }
        assert!(store.get_chunk(&key, None, Some(len)).await.is_some());
        assert!(
            store.parts[0].cache.memory().contains(&key),
            "hot chunk promoted"
        );

        // An object above memory/8 never enters memory, however hot.
        let big = 3 * 1024 * 1024;
        let key = chunk_key("big", 2, 0);
        store.put_chunk(key.clone(), chunk(64 * 1024), big);
        for _ in 0..2 * PROMOTE_AFTER as usize {
            assert!(store.get_chunk(&key, None, Some(big)).await.is_some());
        }
        assert!(!store.parts[0].cache.memory().contains(&key));
        store.close().await;
    }

    fn object(n: usize) -> Arc<ObjectMeta> {
        let data = Bytes::from(vec![1u8; n]);
        Arc::new(ObjectMeta {
            url: "h/p".into(),
            status: 200,
            headers: Vec::new(),
            request_time_ms: 0,
            response_time_ms: 0,
            initial_age_ms: 0,
            freshness: Freshness {
                lifetime_ms: 0,
                source: FreshnessSource::None,
                swr_ms: 0,
                sie_ms: 0,
                no_cache: false,
                forbid_stale: false,
            },
            invalidated: false,
            tags: Vec::new(),
            body: Body::Inline {
                crc: crc32fast::hash(&data),
                data,
            },
        })
    }

    fn hint_of(store: &Store, key: &str) -> Hint {
        store.parts[0]
            .cache
            .memory()
            .get(key)
            .unwrap()
            .properties()
            .hint()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn a_body_is_gone_when_its_chunk_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = small_disk_store(&dir).await;
        let chunked = |n: usize| {
            let mut m = (*object(0)).clone();
            m.body = Body::Chunked {
                len: n as u64 * 65_536,
                chunk_size: 65_536,
                object_id: 9,
                crcs: vec![0; n],
            };
            m
        };
        let (two, long) = (chunked(2), chunked(REFILL_MAX_CHUNKS as usize + 1));
        // Chunk 0 stored, chunk 1 not.
        store.put_chunk(chunk_key("k", 9, 0), chunk(65_536), 2 * 65_536);
        store.settle().await;
        assert!(!store.chunk_gone("k", &two, 0));
        assert!(store.chunk_gone("k", &two, 1));
        assert!(!store.chunk_gone("k", &two, 2), "no such chunk");
        assert!(
            !store.chunk_gone("k", &long, 1),
            "long bodies refetch chunks by range"
        );
        assert!(!store.chunk_gone("k", &object(10), 0), "inline body");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn large_inline_bodies_enter_memory_with_low_priority() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = CacheSection {
            memory: ByteSize::mib(16),
            disk_path: Some(dir.path().to_path_buf()),
            disk: ByteSize::mib(64),
            chunk_size: ByteSize::kib(256),
            ..Default::default()
        };
        let store = Store::open(&cfg).await.unwrap();
        store.put_object("small", object(16 * 1024 - 1));
        store.put_object("large", object(16 * 1024));
        assert_eq!(hint_of(&store, "small"), Hint::Normal);
        assert_eq!(hint_of(&store, "large"), Hint::Low);
        store.close().await;

        // Without a disk tier nothing is deprioritised (there is no other copy to read).
        cfg.disk_path = None;
        let store = Store::open(&cfg).await.unwrap();
        store.put_object("large", object(64 * 1024));
        assert_eq!(hint_of(&store, "large"), Hint::Normal);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn second_hit_admission_stores_large_bodies_on_their_second_fill() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = CacheSection {
            memory: ByteSize::mib(16),
            disk_path: Some(dir.path().to_path_buf()),
            disk: ByteSize::mib(64),
            chunk_size: ByteSize::kib(256),
            ..Default::default()
        };
        let mut p = Placement::for_config(&cfg);
        p.second_hit_from = 64 * 1024;
        let store = Store::open_with(&cfg, p).await.unwrap();
        store.put_object("small", object(1024));
        assert!(
            store.get("small").await.is_some(),
            "below the threshold: stored"
        );
        store.put_object("large", object(64 * 1024));
        assert!(store.get("large").await.is_none(), "first fill not stored");
        store.put_object("large", object(64 * 1024));
        assert!(store.get("large").await.is_some(), "second fill stored");
        let key = chunk_key("big", 1, 0);
        store.put_chunk(key.clone(), chunk(1000), 512 * 1024);
        assert!(store.get_chunk(&key, None, None).await.is_none());
        store.put_chunk(key.clone(), chunk(1000), 512 * 1024);
        store.settle().await;
        assert!(store.get_chunk(&key, None, None).await.is_some());
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn memory_only_store_serves_chunks_from_memory() {
        let cfg = CacheSection {
            memory: ByteSize::mib(16),
            chunk_size: ByteSize::kib(64),
            ..Default::default()
        };
        let store = Store::open(&cfg).await.unwrap();
        let key = chunk_key("k", 1, 0);
        store.put_chunk(key.clone(), chunk(1000), 1000);
        assert!(store.get_chunk(&key, None, Some(1000)).await.is_some());
        assert!(store.get_chunk("missing", None, Some(1000)).await.is_none());
        store.close().await;
    }

    #[test]
    fn keys_route_to_their_host_partition() {
        assert_eq!(key_host("https://a.example/x?y"), Some("a.example"));
        assert_eq!(key_host("http://a.example"), Some("a.example"));
        assert_eq!(
            key_host("http://a.example/x\n#chunk:1:2"),
            Some("a.example")
        );
        assert_eq!(key_host("no-scheme"), None);
    }

    #[tokio::test]
    async fn a_host_share_is_its_own_partition() {
        let cfg = CacheSection {
            memory: ByteSize::mib(1),
            ..CacheSection::default()
        };
        let shares = [HostShare {
            host: "own.test".into(),
            memory: 2 * 1024 * 1024,
            disk: 0,
        }];
        let store = Store::open_partitioned(&cfg, Placement::for_config(&cfg), &shares)
            .await
            .unwrap();
        assert_eq!(store.parts.len(), 2);
        store.put_object("http://own.test/a", object(16));
        store.put_object("http://other.test/a", object(16));
        assert!(store.parts[1].cache.memory().contains("http://own.test/a"));
        assert!(!store.parts[0].cache.memory().contains("http://own.test/a"));
        assert!(store.parts[0]
            .cache
            .memory()
            .contains("http://other.test/a"));
        assert!(store.get("http://own.test/a").await.is_some());
        store.remove("http://own.test/a");
        assert!(store.get("http://own.test/a").await.is_none());
        let s = store.stats();
        assert_eq!(s.memory_capacity, 3 * 1024 * 1024);
        assert_eq!(store.host_stats()[0].0, "own.test");
    }
}
