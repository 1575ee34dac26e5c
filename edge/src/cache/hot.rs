//! Hit counts of chunks, by foyer key hash, for one placement decision of the disk tier:
//! a disk-only chunk (of an object ≤ memory/8) is copied into the memory tier on its
//! [`PROMOTE_AFTER`]-th hit, so the few large objects that are really hot are served from
//! memory while a long tail of large objects read a few times stays on disk (a 1 MiB chunk
//! in memory displaces hundreds of small objects).
//!
//! Counters are 8-bit, saturating, in a fixed table indexed by the low bits of the hash (a
//! collision only makes a chunk look hotter), and all are halved every [`DECAY_EVERY`] hits so
//! the counts follow what is hot now.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

/// Hits after which a disk-only chunk is copied into memory.
pub const PROMOTE_AFTER: u8 = 128;
/// Number of counters (a power of two).
const SLOTS: usize = 1 << 16;
/// All counters are halved after this many hits.
pub const DECAY_EVERY: u64 = 4 * SLOTS as u64;

/// The counters.
#[derive(Debug)]
pub struct HitCounts {
    slots: Box<[AtomicU8]>,
    hits: AtomicU64,
}

impl Default for HitCounts {
    fn default() -> Self {
        HitCounts {
            slots: (0..SLOTS).map(|_| AtomicU8::new(0)).collect(),
            hits: AtomicU64::new(0),
        }
    }
}

impl HitCounts {
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_decay() {
        let h = HitCounts::default();
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
        let h = HitCounts::default();
        h.hit(5);
        assert_eq!(h.count(5 + SLOTS as u64), 1);
    }
}
