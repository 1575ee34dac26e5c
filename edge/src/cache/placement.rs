//! Where objects are placed in the two tiers and when they move between them
//! ([`Placement`]): the server's rules ([`Placement::for_config`]) and the knobs the cache
//! simulator ([`super::sim`]) varies to compare policies offline. The [`Store`](super::store::Store)
//! applies them.

use cdn_shared::config::edge::CacheSection;

#[cfg(doc)]
use super::hot::PROMOTE_AFTER;

/// Eviction of the memory tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryEviction {
    /// foyer's LRU with its default high-priority pool (the server's choice).
    Lru,
    /// foyer's S3-FIFO with its defaults.
    S3Fifo,
    /// foyer's w-TinyLFU with its defaults.
    Lfu,
}

/// Where objects are placed and when they move between the tiers. The server uses
/// [`Placement::for_config`]; the cache simulator (`cache::sim`) varies the knobs to compare
/// policies offline. Sizes are body lengths of inline (shorter than one chunk) bodies.
#[derive(Debug, Clone)]
pub struct Placement {
    /// With a disk tier, inline bodies of at least this many bytes enter the memory tier with
    /// foyer's low-priority hint (`u64::MAX`: never). Server: chunk / 16 (64 KiB by default).
    pub low_hint_from: u64,
    /// With a disk tier, inline bodies of at least this many bytes are written to disk only;
    /// foyer copies one into memory when it is read from disk (`u64::MAX`: never; server).
    pub disk_only_from: u64,
    /// With a disk tier, inline bodies shorter than this are kept in memory only (not written
    /// to disk, so the disk holds larger objects; lost on restart). Server: 0 (none).
    pub memory_only_below: u64,
    /// A disk-only chunk is copied into memory on this hit. Server: [`PROMOTE_AFTER`].
    pub promote_after: u8,
    /// With a disk tier, bodies of at least this many bytes are stored only on their second
    /// store attempt (AdaptSize/"second hit" admission, counted by key hash in the same
    /// table as [`super::hot`]): a one-hit object never takes cache space; the second request
    /// fetches it again (a chunk by Range, its meta entry being stored) and stores it
    /// (`u64::MAX`: never; server).
    pub second_hit_from: u64,
    /// With a disk tier, when foyer reclaims a disk block, entries with at least this many
    /// counted hits (disk chunks, see [`super::hot`]) are written again instead of dropped
    /// (foyer's reinsertion filter; 0: none). Server: `[cache] disk_reinsert_hits` (1).
    pub disk_reinsert_hits: u8,
    /// Hits of inline bodies of at least this many bytes are counted like chunk hits (so
    /// they count for disk reinsertion); `u64::MAX`: never (only chunks are counted).
    pub count_inline_from: u64,
    /// foyer's disk block size, bytes (`None`: the server's rule in `build`: 4 chunks within
    /// 16–64 MiB, at most disk/16).
    pub disk_block_size: Option<usize>,
    /// Memory-tier eviction. Server: LRU.
    pub memory_eviction: MemoryEviction,
    /// foyer's disk FIFO picker: share of blocks marked for probation. Server: 0.1 (foyer's).
    pub disk_fifo_probation: f64,
    /// foyer's disk picker that evicts a block first when this share of it is invalid
    /// (overwritten or removed entries). Server: 0.8 (foyer's).
    pub disk_invalid_ratio: f64,
}

impl Placement {
    /// The server's placement for `cfg`.
    pub fn for_config(cfg: &CacheSection) -> Placement {
        Placement {
            low_hint_from: cfg.chunk_size.as_u64() / 16,
            disk_only_from: u64::MAX,
            memory_only_below: 0,
            promote_after: cfg.promote_after.max(1),
            second_hit_from: u64::MAX,
            disk_reinsert_hits: cfg.disk_reinsert_hits,
            count_inline_from: u64::MAX,
            disk_block_size: None,
            memory_eviction: MemoryEviction::Lru,
            disk_fifo_probation: 0.1,
            disk_invalid_ratio: 0.8,
        }
    }
}
