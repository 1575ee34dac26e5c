//! Is an object popular here? A count-min sketch of misses for keys this member does not own
//! (4 rows × 4096 saturating 8-bit counters, 16 KiB), halved every `window` counts (TinyLFU's
//! aging), so "popular" means "missed at least `replicate_after` times recently". Lock-free:
//! relaxed atomics; a lost update under a race only delays a copy by one miss.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

const ROWS: usize = 4;
const WIDTH: usize = 4096;

/// The sketch.
#[derive(Debug)]
pub struct Popularity {
    counters: Vec<AtomicU8>,
    seen: AtomicU32,
    window: u32,
}

impl Popularity {
    /// A sketch halved every `window` counts (at least 16).
    pub fn new(window: u32) -> Self {
        Popularity {
            counters: (0..ROWS * WIDTH).map(|_| AtomicU8::new(0)).collect(),
            seen: AtomicU32::new(0),
            window: window.max(16),
        }
    }

    fn slots(key_hash: u64) -> [usize; ROWS] {
        // Four 16-bit slices of the hash, each reduced to a column of its row.
        let mut out = [0; ROWS];
        for (r, o) in out.iter_mut().enumerate() {
            let col = ((key_hash >> (r * 16)) & 0xffff) as usize % WIDTH;
            *o = r * WIDTH + col;
        }
        out
    }

    /// Count one miss of the key hashed as `key_hash`; the estimate after counting it.
    pub fn count(&self, key_hash: u64) -> u32 {
        let mut est = u8::MAX;
        for s in Self::slots(key_hash) {
            let c = &self.counters[s];
            let v = c
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_add(1))
                .map(|old| old + 1)
                .unwrap_or(u8::MAX);
            est = est.min(v);
        }
        let n = self.seen.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
        if n >= self.window {
            self.seen.store(0, Ordering::Relaxed);
            self.halve();
        }
        u32::from(est)
    }

    /// The current estimate, without counting.
    pub fn estimate(&self, key_hash: u64) -> u32 {
        Self::slots(key_hash)
            .iter()
            .map(|&s| u32::from(self.counters[s].load(Ordering::Relaxed)))
            .min()
            .unwrap_or(0)
    }

    fn halve(&self) {
        for c in &self.counters {
            let _ = c.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v / 2));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pop::ring::hash;

    #[test]
    fn counts_per_key() {
        let p = Popularity::new(1000);
        let (a, b) = (hash(b"/a"), hash(b"/b"));
        assert_eq!(p.count(a), 1);
        assert_eq!(p.count(a), 2);
        assert_eq!(p.estimate(b), 0);
        assert_eq!(p.count(b), 1);
        assert_eq!(p.estimate(a), 2);
    }

    #[test]
    fn estimates_never_undercount_and_rarely_overcount() {
        let p = Popularity::new(1_000_000);
        for k in 0..1000u64 {
            p.count(hash(&k.to_le_bytes()));
        }
        let over = (0..1000u64)
            .filter(|k| {
                let e = p.estimate(hash(&k.to_le_bytes()));
                assert!(e >= 1);
                e > 1
            })
            .count();
        // 1000 keys in 4096 columns: a key shares its column in one row with probability
        // 1 − (1 − 1/4096)^999 ≈ 0.22, in all four ≈ 0.0022 (about 2 keys).
        assert!(over < 20, "{over} over-counted");
    }

    #[test]
    fn counts_age_and_saturate() {
        let p = Popularity::new(16);
        let a = hash(b"/a");
        for _ in 0..15 {
            p.count(a);
        }
        assert_eq!(p.estimate(a), 15);
        // The 16th count reaches the window: everything is halved.
        p.count(a);
        assert_eq!(p.estimate(a), 8);
        let q = Popularity::new(1_000_000);
        for _ in 0..300 {
            q.count(a);
        }
        assert_eq!(q.estimate(a), 255);
    }
}
