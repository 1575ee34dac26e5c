//! The cache simulator (issue 18, point 2): replays a request trace through the real cache
//! core ([`replay`]: the edge's [`Store`](super::store::Store) over foyer, memory + disk tiers
//! in a temporary directory, the same chunking and placement as the server, a virtual clock)
//! and, for the same trace and capacity, through reference models ([`offline`]): LRU by
//! bytes, Belady (evict the object used furthest in the future; needs the whole trace),
//! greedy-dual by frequency / size^alpha (`--gd-alpha`; LFU at 0, GDSF at 1) with frequencies
//! known in advance or counted online, plus the compulsory-miss limit (every object seen
//! before is a hit).
//!
//! Traces ([`trace`]): the yardstick's Zipf generator (`lua/zipf.lua`: same object count,
//! rank → id mapping, sizes by id; a seeded generator of our own, so the draws are not wrk's)
//! and a recorded access log of the edge (`access_log.rs`, JSON or combined format).
//!
//! Every figure is counted over the measured part of the trace only; the warm-up part is
//! replayed first and not counted. The binary is `edge/src/bin/cache-sim.rs`.

pub mod offline;
pub mod replay;
pub mod trace;

/// One request of a trace: the object (cache key) and its body length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Cache key (host + path + query).
    pub key: String,
    /// Body length in bytes.
    pub size: u64,
}

/// A body length's size class: the smallest power of two at least as large (1 KiB at least).
pub fn size_class(size: u64) -> u64 {
    size.max(1024)
        .checked_next_power_of_two()
        .unwrap_or(u64::MAX)
}

/// Hit counts overall and by [`size_class`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Every counted request.
    pub all: Ratios,
    /// By size class, smallest first.
    pub by_size: std::collections::BTreeMap<u64, Ratios>,
}

impl Tally {
    /// Count one request of `size` bytes, a hit or not.
    pub fn count(&mut self, size: u64, hit: bool) {
        self.all.count(size, hit);
        self.by_size
            .entry(size_class(size))
            .or_default()
            .count(size, hit);
    }
}

/// Hit counts of one replay (measured part only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ratios {
    /// Client requests.
    pub requests: u64,
    /// Requests answered without contacting the origin.
    pub hits: u64,
    /// Body bytes sent to clients.
    pub bytes: u64,
    /// Body bytes fetched from the origin.
    pub origin_bytes: u64,
}

impl Ratios {
    /// Count one request of `size` bytes, a hit or not.
    pub fn count(&mut self, size: u64, hit: bool) {
        self.requests += 1;
        self.bytes += size;
        if hit {
            self.hits += 1;
        } else {
            self.origin_bytes += size;
        }
    }

    /// Request hit ratio.
    pub fn hit_ratio(&self) -> f64 {
        ratio(self.hits, self.requests)
    }

    /// Byte hit ratio: 1 − origin bytes / client bytes.
    pub fn byte_hit_ratio(&self) -> f64 {
        if self.bytes == 0 {
            return 0.0;
        }
        1.0 - self.origin_bytes.min(self.bytes) as f64 / self.bytes as f64
    }
}

/// This process's resident set size and its peak (`VmRSS`, `VmHWM` of `/proc/self/status`),
/// in bytes; `None` where there is no procfs.
pub fn rss() -> Option<(u64, u64)> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        let l = s.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = l[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_and_tallies() {
        assert_eq!(size_class(0), 1024);
        assert_eq!(size_class(4096), 4096);
        assert_eq!(size_class(4097), 8192);
        assert_eq!(size_class(u64::MAX), u64::MAX, "no overflow");
        let mut t = Tally::default();
        t.count(4096, true);
        t.count(3000, false);
        t.count(100_000, false);
        assert_eq!(t.all.requests, 3);
        assert_eq!(t.all.hits, 1);
        assert_eq!(t.all.origin_bytes, 103_000);
        assert_eq!(t.by_size[&4096].requests, 2);
        assert_eq!(t.by_size[&4096].hits, 1);
        assert_eq!(t.by_size[&131_072].origin_bytes, 100_000);
    }
}
