//! A bounded, lock-free, direct-mapped cache of small fixed-size values (`[u64; N]`), used by
//! [`super::GeoDb`] to keep the MaxMind tree walk and record decode off the hot path.
//!
//! Each slot is a seqlock made of atomics (no `unsafe`, no mutex): a reader that races a
//! writer, or finds another key in the slot, simply misses and does the real lookup; a writer
//! that finds the slot busy skips caching. Values never go stale: each open database has its
//! own caches, and what they hold is a pure function of the (immutable) database.

use std::sync::atomic::{fence, AtomicU64, Ordering};

struct Slot<const N: usize> {
    seq: AtomicU64,
    key: AtomicU64,
    value: [AtomicU64; N],
}

/// `2^bits` slots, each holding one `(key, [u64; N])`. Key 0 is reserved (empty).
pub struct SeqCache<const N: usize> {
    slots: Box<[Slot<N>]>,
    shift: u32,
}

impl<const N: usize> std::fmt::Debug for SeqCache<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeqCache")
            .field("slots", &self.slots.len())
            .field("words", &N)
            .finish()
    }
}

impl<const N: usize> SeqCache<N> {
    /// An empty cache of `2^bits` slots (`bits` in 1..=30).
    pub fn new(bits: u32) -> SeqCache<N> {
        let bits = bits.clamp(1, 30);
        let slots = (0..1usize << bits)
            .map(|_| Slot {
                seq: AtomicU64::new(0),
                key: AtomicU64::new(0),
                value: std::array::from_fn(|_| AtomicU64::new(0)),
            })
            .collect();
        SeqCache {
            slots,
            shift: 64 - bits,
        }
    }

    fn slot(&self, key: u64) -> &Slot<N> {
        // Fibonacci hashing: keys are clustered, the top bits of the product are not.
        &self.slots[(key.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize]
    }

    /// The value stored under `key` (≠ 0), if its slot holds it.
    pub fn get(&self, key: u64) -> Option<[u64; N]> {
        let slot = self.slot(key);
        let s1 = slot.seq.load(Ordering::Acquire);
        if s1 & 1 == 1 {
            return None;
        }
        let found = slot.key.load(Ordering::Relaxed);
        let value: [u64; N] = std::array::from_fn(|i| slot.value[i].load(Ordering::Relaxed));
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != s1 || found != key || key == 0 {
            return None;
        }
        Some(value)
    }

    /// Store `value` under `key` (≠ 0), replacing whatever shared the slot; skipped when
    /// another thread is writing the slot.
    pub fn put(&self, key: u64, value: [u64; N]) {
        if key == 0 {
            return;
        }
        let slot = self.slot(key);
        let s = slot.seq.load(Ordering::Relaxed);
        if s & 1 == 1
            || slot
                .seq
                .compare_exchange(s, s + 1, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        fence(Ordering::Release);
        slot.key.store(key, Ordering::Relaxed);
        for (cell, word) in slot.value.iter().zip(value) {
            cell.store(word, Ordering::Relaxed);
        }
        slot.seq.store(s + 2, Ordering::Release);
    }

    /// Whether `a` and `b` share a slot (for tests).
    #[cfg(test)]
    fn same_slot(&self, a: u64, b: u64) -> bool {
        std::ptr::eq(self.slot(a), self.slot(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_misses_and_collisions() {
        let cache: SeqCache<3> = SeqCache::new(8);
        assert_eq!(cache.get(5), None);
        cache.put(5, [1, 2, 3]);
        assert_eq!(cache.get(5), Some([1, 2, 3]));
        assert_eq!(cache.get(6), None);
        cache.put(0, [9, 9, 9]);
        assert_eq!(cache.get(0), None, "key 0 is reserved");
        let other = (6..u64::MAX).find(|&k| cache.same_slot(k, 5)).unwrap();
        cache.put(other, [4, 5, 6]);
        assert_eq!(cache.get(5), None);
        assert_eq!(cache.get(other), Some([4, 5, 6]));
    }

    #[test]
    fn concurrent_readers_never_see_torn_values() {
        let cache: std::sync::Arc<SeqCache<3>> = std::sync::Arc::new(SeqCache::new(4));
        // four keys that share one slot, so writers and readers fight over it
        let keys: Vec<u64> = (1..u64::MAX)
            .filter(|&k| cache.same_slot(k, 1))
            .take(4)
            .collect();
        let value = |k: u64| [k, k.wrapping_mul(3), !k];
        std::thread::scope(|s| {
            for t in 0..2 {
                let (cache, keys) = (cache.clone(), keys.clone());
                s.spawn(move || {
                    for i in 0..200_000usize {
                        let k = keys[(i + t) % 4];
                        cache.put(k, value(k));
                    }
                });
            }
            for _ in 0..2 {
                let (cache, keys) = (cache.clone(), keys.clone());
                s.spawn(move || {
                    let mut hits = 0;
                    for i in 0..200_000usize {
                        let k = keys[i % 4];
                        if let Some(v) = cache.get(k) {
                            assert_eq!(v, value(k));
                            hits += 1;
                        }
                    }
                    hits
                });
            }
        });
    }
}
