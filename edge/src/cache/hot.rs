//! Hit counts of chunks, by foyer key hash, for two placement decisions of the disk tier:
//!
//! * **promotion**: a disk-only chunk (of an object ≤ memory/8) is copied into the memory tier
//!   on its [`PROMOTE_AFTER`]-th hit, so the few large objects that are really hot are served
//!   from memory while a long tail of large objects read once or twice stays on disk (a 1 MiB
//!   chunk in memory displaces hundreds of small objects);
//! * **reinsertion**: when foyer's disk tier reclaims a block (FIFO), a chunk hit at least
//!   [`REINSERT_AFTER`] times is written again instead of dropped ([`Reinsertion`], foyer's
//!   reinsertion filter), so requested-again large objects survive the stream of new writes.
//!   Reinsertion spends a byte budget that only new writes earn (half their size), so it can
//!   never fill the disk on its own.
//!
//! Counters are 8-bit, saturating, in a fixed table indexed by the low bits of the hash (a
//! collision only makes a chunk look hotter), and all are halved every [`DECAY_EVERY`] hits so
//! the counts follow what is hot now.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;

use foyer::{Statistics, StorageFilterCondition, StorageFilterResult};

/// Hits after which a disk-only chunk is copied into memory.
pub const PROMOTE_AFTER: u8 = 32;
/// Hits after which a chunk is written again when its disk block is reclaimed.
pub const REINSERT_AFTER: u8 = 2;
/// Number of counters (a power of two).
const SLOTS: usize = 1 << 16;
/// All counters are halved after this many hits.
pub const DECAY_EVERY: u64 = 4 * SLOTS as u64;

/// The counters and the reinsertion budget.
#[derive(Debug)]
pub struct HitCounts {
    slots: Box<[AtomicU8]>,
    hits: AtomicU64,
    budget: AtomicI64,
    budget_cap: i64,
}

impl HitCounts {
    /// Counters at zero; the reinsertion budget holds at most `budget_cap` bytes.
    pub fn new(budget_cap: u64) -> Self {
        HitCounts {
            slots: (0..SLOTS).map(|_| AtomicU8::new(0)).collect(),
            hits: AtomicU64::new(0),
            budget: AtomicI64::new(0),
            budget_cap: budget_cap.min(i64::MAX as u64) as i64,
        }
    }

    fn slot(&self, hash: u64) -> &AtomicU8 {
        &self.slots[(hash as usize) & (SLOTS - 1)]
    }

    /// Count a hit; returns the new count.
    pub fn hit(&self, hash: u64) -> u8 {
        let n = match self
            .slot(hash)
            .fetch_update(Relaxed, Relaxed, |v| v.checked_add(1))
        {
            Ok(v) => v + 1,
            Err(_) => u8::MAX,
        };
        if (self.hits.fetch_add(1, Relaxed) + 1).is_multiple_of(DECAY_EVERY) {
            for s in self.slots.iter() {
                let _ = s.fetch_update(Relaxed, Relaxed, |v| Some(v / 2));
            }
        }
        n
    }

    /// The current count.
    pub fn count(&self, hash: u64) -> u8 {
        self.slot(hash).load(Relaxed)
    }

    /// `bytes` were newly written to disk: they earn half as much reinsertion budget.
    pub fn earn(&self, bytes: u64) {
        let add = (bytes / 2).min(self.budget_cap as u64) as i64;
        let cap = self.budget_cap;
        let _ = self
            .budget
            .fetch_update(Relaxed, Relaxed, |b| Some((b + add).min(cap)));
    }

    /// Whether the entry `hash` of `size` bytes is written again on reclaim (hot enough, and
    /// the budget covers it; the budget is spent).
    pub fn admit_reinsertion(&self, hash: u64, size: usize) -> bool {
        if self.count(hash) < REINSERT_AFTER {
            return false;
        }
        let size = size as i64;
        self.budget
            .fetch_update(Relaxed, Relaxed, |b| (b >= size).then_some(b - size))
            .is_ok()
    }
}

/// foyer's reinsertion filter over [`HitCounts`].
#[derive(Debug)]
pub struct Reinsertion(pub Arc<HitCounts>);

impl StorageFilterCondition for Reinsertion {
    fn filter(&self, _: &Arc<Statistics>, hash: u64, size: usize) -> StorageFilterResult {
        if self.0.admit_reinsertion(hash, size) {
            StorageFilterResult::Admit
        } else {
            StorageFilterResult::Reject
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_decay() {
        let h = HitCounts::new(0);
        assert_eq!(h.hit(7), 1);
        assert_eq!(h.hit(7), 2);
        assert_eq!(h.count(7), 2);
        assert_eq!(h.count(8), 0);
        for _ in 0..300 {
            h.hit(9);
        }
        assert_eq!(h.count(9), u8::MAX, "saturates");
        // Bring the total to a multiple of DECAY_EVERY: everything is halved once.
        let done = 302;
        for _ in done..DECAY_EVERY {
            h.hit(10);
        }
        assert_eq!(h.count(7), 1);
        assert_eq!(h.count(9), u8::MAX / 2);
    }

    #[test]
    fn same_low_bits_share_a_counter() {
        let h = HitCounts::new(0);
        h.hit(5);
        assert_eq!(h.count(5 + SLOTS as u64), 1);
    }

    #[test]
    fn reinsertion_needs_hits_and_budget() {
        let h = HitCounts::new(10_000);
        h.earn(4_000); // 2 000 of budget
        assert!(!h.admit_reinsertion(1, 1_000), "cold entry");
        h.hit(1);
        assert!(!h.admit_reinsertion(1, 1_000), "one hit is not enough");
        h.hit(1);
        assert!(h.admit_reinsertion(1, 1_500));
        assert!(!h.admit_reinsertion(1, 1_500), "budget spent");
        assert!(h.admit_reinsertion(1, 500));
        h.earn(1_000_000);
        assert!(!h.admit_reinsertion(1, 10_001), "budget capped");
        assert!(h.admit_reinsertion(1, 10_000));
    }

    #[test]
    fn filter_maps_to_foyer_results() {
        let h = Arc::new(HitCounts::new(1 << 20));
        h.earn(1 << 20);
        let f = Reinsertion(h.clone());
        let stats = Arc::new(Statistics::new(foyer::Throttle::default()));
        assert_eq!(f.filter(&stats, 3, 100), StorageFilterResult::Reject);
        h.hit(3);
        h.hit(3);
        assert_eq!(f.filter(&stats, 3, 100), StorageFilterResult::Admit);
    }
}
