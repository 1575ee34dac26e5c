//! The edge's `[cache]` section: the memory and disk tiers, chunking and the fill limits.

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::common::*;
use super::ConfigError;

/// `[cache]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Memory tier size. Default 256 MiB.
    pub memory: ByteSize,
    /// Disk tier directory; unset = memory only (nothing survives a restart).
    pub disk_path: Option<PathBuf>,
    /// Disk tier size. Default 1 GiB.
    pub disk: ByteSize,
    /// Bodies are stored in chunks of this size. Default 1 MiB (at most 8 MiB).
    pub chunk_size: ByteSize,
    /// Largest object stored; larger ones are passed through uncached. Default 1 GiB.
    pub max_object_size: ByteSize,
    /// Heuristic freshness = `heuristic_fraction` × (Date − Last-Modified), capped by this.
    /// Default `1d`.
    #[serde(with = "crate::config::common::duration")]
    pub heuristic_max: Duration,
    /// Default 0.1 (RFC 9111 §4.2.2's suggestion).
    pub heuristic_fraction: f64,
    /// How long a request waits for another request's in-flight fill. Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub fill_wait_timeout: Duration,
    /// Hit-for-miss: after an origin response that may not be stored (`no-store`, `private`,
    /// `Set-Cookie`, `Vary: *`, no freshness, over `max_object_size`), misses on that key skip
    /// coalescing for this long — each fetches at once, a range or conditional request as the
    /// client sent it — and a response that may be stored again is stored and ends it.
    /// `0s` = off. Default `120s`.
    #[serde(with = "crate::config::common::duration")]
    pub hit_for_miss: Duration,
    /// Maximum concurrent origin fills; more → 503. Default 1024.
    pub max_inflight_fills: usize,
    /// Most Vary variants stored per URL; a response for a further variant is served but not
    /// stored (`Cache-Status: detail=too-many-variants`,
    /// `cdn_edge_vary_variants_refused_total`). Default 32.
    pub max_vary_variants: usize,
    /// With a disk tier: a stored chunk that was hit at least this many times (recently) is
    /// written again when its disk block is reclaimed, instead of being dropped (the disk
    /// tier keeps its hot objects like a CLOCK instead of forgetting them FIFO). 0 = off.
    /// Default 1.
    pub disk_reinsert_hits: u8,
    /// With a disk tier: a chunk kept on disk only is copied into memory on this hit.
    /// 1..=255; 255 = (almost) never. Default 128.
    pub promote_after: u8,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            memory: ByteSize::mib(256),
            disk_path: None,
            disk: ByteSize::gib(1),
            chunk_size: ByteSize::mib(1),
            max_object_size: ByteSize::gib(1),
            heuristic_max: Duration::from_secs(86_400),
            heuristic_fraction: 0.1,
            fill_wait_timeout: Duration::from_secs(10),
            hit_for_miss: Duration::from_secs(120),
            max_inflight_fills: 1024,
            max_vary_variants: 32,
            disk_reinsert_hits: 1,
            promote_after: 128,
        }
    }
}

impl CacheSection {
    /// The section's own checks (each error names its `cache.*` key).
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let c = self;
        if c.memory.as_u64() < 1024 * 1024 {
            return Err(ConfigError::new("cache.memory", "must be at least 1 MiB"));
        }
        let chunk = c.chunk_size.as_u64();
        if !(4096..=8 * 1024 * 1024).contains(&chunk) {
            return Err(ConfigError::new(
                "cache.chunk_size",
                "must be between 4 KiB and 8 MiB",
            ));
        }
        if c.disk_path.is_some() && c.disk.as_u64() < 4 * chunk {
            return Err(ConfigError::new(
                "cache.disk",
                "must hold at least four chunks",
            ));
        }
        if !(0.0..=1.0).contains(&c.heuristic_fraction) {
            return Err(ConfigError::new(
                "cache.heuristic_fraction",
                "must be in [0, 1]",
            ));
        }
        require_positive("cache.fill_wait_timeout", c.fill_wait_timeout)?;
        if c.promote_after == 0 {
            return Err(ConfigError::new(
                "cache.promote_after",
                "must be 1..=255 (the hit that copies a disk-only chunk into memory)",
            ));
        }
        if c.max_inflight_fills == 0 {
            return Err(ConfigError::new(
                "cache.max_inflight_fills",
                "must be at least 1",
            ));
        }
        if c.max_vary_variants == 0 {
            return Err(ConfigError::new(
                "cache.max_vary_variants",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}
