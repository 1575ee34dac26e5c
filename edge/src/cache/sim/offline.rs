//! Reference models on whole objects, capacity in body bytes: LRU, Belady, greedy-dual
//! (frequency / size^alpha, with known or counted frequencies: the online frontier the issue
//! names), and the compulsory-miss limit. The first `warm` requests fill the cache and are not counted.
//!
//! Belady with objects of different sizes is the usual furthest-next-use rule (not the exact
//! optimum, which is NP-hard for sizes): on a miss the object is admitted only if it is used
//! again, then objects with the furthest next use (possibly the new one) are evicted until the
//! cache fits. Objects larger than the capacity are never admitted by either model.

use std::collections::{BTreeSet, HashMap};

use super::{Request, Tally};

/// Object ids (dense) for every request of `trace`, and the number of objects.
fn intern(trace: &[Request]) -> (Vec<u32>, usize) {
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let seq = trace
        .iter()
        .map(|r| {
            let n = ids.len() as u32;
            *ids.entry(r.key.as_str()).or_insert(n)
        })
        .collect();
    (seq, ids.len())
}

fn count(out: &mut Tally, r: &Request, hit: bool) {
    out.count(r.size, hit);
}

/// Objects a model holds, ordered by a rank (last use for LRU, next use for Belady).
struct Held {
    /// Per object: (size held, its rank).
    objs: Vec<Option<(u64, usize)>>,
    /// (rank, object).
    order: BTreeSet<(usize, u32)>,
    used: u64,
}

impl Held {
    fn new(n: usize) -> Held {
        Held {
            objs: vec![None; n],
            order: BTreeSet::new(),
            used: 0,
        }
    }

    /// Take `id` out of the order (it stays held until [`Held::put`] or [`Held::drop_obj`]).
    fn take(&mut self, id: u32) -> Option<u64> {
        let (size, rank) = self.objs[id as usize]?;
        self.order.remove(&(rank, id));
        Some(size)
    }

    /// Hold `id` (already counted in `used`) at `rank`.
    fn put(&mut self, id: u32, size: u64, rank: usize) {
        self.order.insert((rank, id));
        self.objs[id as usize] = Some((size, rank));
    }

    fn drop_obj(&mut self, id: u32) {
        if let Some((s, _)) = self.objs[id as usize].take() {
            self.used -= s;
        }
    }

    /// Admit `id` at `rank`, then evict from the lowest rank (LRU) or the highest (Belady)
    /// until the held bytes fit `capacity`.
    fn admit(&mut self, id: u32, size: u64, rank: usize, capacity: u64, evict_highest: bool) {
        self.put(id, size, rank);
        self.used += size;
        while self.used > capacity {
            let victim = if evict_highest {
                self.order.pop_last()
            } else {
                self.order.pop_first()
            };
            let Some((_, victim)) = victim else { break };
            self.drop_obj(victim);
        }
    }
}

/// LRU by bytes.
pub fn lru(trace: &[Request], warm: usize, capacity: u64) -> Tally {
    let (seq, n) = intern(trace);
    let mut held = Held::new(n);
    let mut out = Tally::default();
    for (i, (r, &id)) in trace.iter().zip(&seq).enumerate() {
        let hit = match held.take(id) {
            Some(size) => {
                held.put(id, size, i);
                true
            }
            None => {
                if r.size <= capacity {
                    held.admit(id, r.size, i, capacity, false);
                }
                false
            }
        };
        if i >= warm {
            count(&mut out, r, hit);
        }
    }
    out
}

/// Belady (furthest next use) by bytes.
pub fn belady(trace: &[Request], warm: usize, capacity: u64) -> Tally {
    let (seq, n) = intern(trace);
    // next[i]: index of the next request of the same object after i (usize::MAX: none).
    let mut next = vec![usize::MAX; seq.len()];
    let mut upcoming = vec![usize::MAX; n];
    for i in (0..seq.len()).rev() {
        next[i] = upcoming[seq[i] as usize];
        upcoming[seq[i] as usize] = i;
    }
    let mut held = Held::new(n);
    let mut out = Tally::default();
    for (i, (r, &id)) in trace.iter().zip(&seq).enumerate() {
        let hit = match held.take(id) {
            Some(size) => {
                if next[i] == usize::MAX {
                    // Never used again: drop it now (what Belady would evict first anyway).
                    held.drop_obj(id);
                } else {
                    held.put(id, size, next[i]);
                }
                true
            }
            None => {
                if r.size <= capacity && next[i] != usize::MAX {
                    held.admit(id, r.size, next[i], capacity, true);
                }
                false
            }
        };
        if i >= warm {
            count(&mut out, r, hit);
        }
    }
    out
}

/// Where a greedy-dual model takes an object's frequency from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frequency {
    /// The object's request count over the whole trace (known in advance: the issue's
    /// "perfectly known frequencies").
    Known,
    /// Requests of the object so far (warm-up included), kept across evictions: what an
    /// online cache with an unbounded frequency table could know.
    Counted,
}

/// Greedy-dual by bytes: an object's priority is `L + f / size^alpha`, refreshed on each hit;
/// the lowest priority is evicted and its value becomes the new `L` (the aging floor).
/// `alpha` 0 is LFU with aging, 1 is GDSF. A new object is admitted and may be the first one
/// evicted (so an object colder than everything held is not kept).
pub fn greedy_dual(
    trace: &[Request],
    warm: usize,
    capacity: u64,
    alpha: f64,
    freq: Frequency,
) -> Tally {
    let (seq, n) = intern(trace);
    let mut total = vec![0u64; n];
    if freq == Frequency::Known {
        for &id in &seq {
            total[id as usize] += 1;
        }
    }
    let mut seen = vec![0u64; n];
    // Per object: (size, priority bits) while held; priorities are positive finite f64s, whose
    // bit patterns order like the values.
    let mut held: Vec<Option<(u64, u64)>> = vec![None; n];
    let mut order: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut used = 0u64;
    let mut floor = 0f64;
    let mut out = Tally::default();
    for (i, (r, &id)) in trace.iter().zip(&seq).enumerate() {
        seen[id as usize] += 1;
        let f = match freq {
            Frequency::Known => total[id as usize],
            Frequency::Counted => seen[id as usize],
        } as f64;
        let prio = |size: u64| (floor + f / (size.max(1) as f64).powf(alpha)).to_bits();
        let hit = match held[id as usize] {
            Some((size, p)) => {
                order.remove(&(p, id));
                let p = prio(size);
                order.insert((p, id));
                held[id as usize] = Some((size, p));
                true
            }
            None => {
                if r.size <= capacity {
                    let p = prio(r.size);
                    order.insert((p, id));
                    held[id as usize] = Some((r.size, p));
                    used += r.size;
                    while used > capacity {
                        let Some((p, victim)) = order.pop_first() else {
                            break;
                        };
                        floor = f64::from_bits(p);
                        if let Some((s, _)) = held[victim as usize].take() {
                            used -= s;
                        }
                    }
                }
                false
            }
        };
        if i >= warm {
            count(&mut out, r, hit);
        }
    }
    out
}

/// The compulsory-miss limit: every object requested before (warm-up included) is a hit.
pub fn infinite(trace: &[Request], warm: usize) -> Tally {
    let (seq, n) = intern(trace);
    let mut seen = vec![false; n];
    let mut out = Tally::default();
    for (i, (r, &id)) in trace.iter().zip(&seq).enumerate() {
        let hit = std::mem::replace(&mut seen[id as usize], true);
        if i >= warm {
            count(&mut out, r, hit);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::sim::Ratios;

    fn t(spec: &[(&str, u64)]) -> Vec<Request> {
        spec.iter()
            .map(|&(k, size)| Request {
                key: k.to_string(),
                size,
            })
            .collect()
    }

    fn r(requests: u64, hits: u64, bytes: u64, origin_bytes: u64) -> Ratios {
        Ratios {
            requests,
            hits,
            bytes,
            origin_bytes,
        }
    }

    #[test]
    fn unit_sizes() {
        // a b c a d b, capacity 3.
        // LRU: a b c miss; a hit (order b c a); d miss evicts b; b miss evicts c → 1 hit.
        // Belady: a b c miss; a hit; d is never used again → not admitted; b hit → 2 hits.
        let tr = t(&[("a", 1), ("b", 1), ("c", 1), ("a", 1), ("d", 1), ("b", 1)]);
        assert_eq!(lru(&tr, 0, 3).all, r(6, 1, 6, 5));
        assert_eq!(belady(&tr, 0, 3).all, r(6, 2, 6, 4));
        assert_eq!(infinite(&tr, 0).all, r(6, 2, 6, 4));
        // Capacity 2: LRU a b; c evicts a; a evicts b; d evicts c; b evicts a → 0 hits.
        // Belady: a b; c (never again) not admitted; a hit; d not admitted; b hit → 2.
        assert_eq!(lru(&tr, 0, 2).all, r(6, 0, 6, 6));
        assert_eq!(belady(&tr, 0, 2).all, r(6, 2, 6, 4));
        // Capacity 1: Belady keeps a until its reuse at 3 (b's reuse at 5 is further) → 1.
        assert_eq!(belady(&tr, 0, 1).all, r(6, 1, 6, 5));
    }

    #[test]
    fn sizes_and_warm_up() {
        // A(6) B(4) C(5) A B, capacity 10.
        // LRU: A, B (10); C evicts A (9); A evicts B then C (6); B (10) → 0 hits.
        // Belady: A, B; C never used again → not admitted; A hit; B hit.
        let tr = t(&[("A", 6), ("B", 4), ("C", 5), ("A", 6), ("B", 4)]);
        assert_eq!(lru(&tr, 0, 10).all, r(5, 0, 25, 25));
        assert_eq!(belady(&tr, 0, 10).all, r(5, 2, 25, 15));
        // Only the last two requests counted.
        assert_eq!(lru(&tr, 3, 10).all, r(2, 0, 10, 10));
        assert_eq!(belady(&tr, 3, 10).all, r(2, 2, 10, 0));
        assert_eq!(infinite(&tr, 3).all, r(2, 2, 10, 0));
        // An object larger than the cache is never admitted.
        let big = t(&[("X", 11), ("X", 11)]);
        assert_eq!(lru(&big, 0, 10).all, r(2, 0, 22, 22));
        assert_eq!(belady(&big, 0, 10).all, r(2, 0, 22, 22));
    }

    #[test]
    fn greedy_dual_keeps_the_frequent_and_the_small() {
        // A(5) ×3 then B(5) C(5) A, capacity 10, alpha 0 (LFU with aging).
        // A held at 3 (known) / counts up to 3 (counted). B admitted (10 used). C: 15 used,
        // evict the lowest: B (1) → floor 1; C held at 1 + 1 = 2. A hit.
        let tr = t(&[("A", 5), ("A", 5), ("A", 5), ("B", 5), ("C", 5), ("A", 5)]);
        assert_eq!(
            greedy_dual(&tr, 0, 10, 0.0, Frequency::Known).all,
            r(6, 3, 30, 15)
        );
        assert_eq!(
            greedy_dual(&tr, 0, 10, 0.0, Frequency::Counted).all,
            r(6, 3, 30, 15)
        );
        // Known frequencies keep B (used twice) over a once-used C; counted ones cannot tell
        // them apart and evict B (equal priority, lower id first), so B's second use misses.
        let tr = t(&[("B", 5), ("A", 5), ("C", 5), ("B", 5)]);
        assert_eq!(
            greedy_dual(&tr, 0, 10, 0.0, Frequency::Known).all,
            r(4, 1, 20, 15)
        );
        assert_eq!(
            greedy_dual(&tr, 0, 10, 0.0, Frequency::Counted).all,
            r(4, 0, 20, 20)
        );
        // alpha 1 (GDSF): a small object outranks a large one of the same frequency.
        // S(2) L(8) X(8): X evicts L (1/8 < 1/2), then S hits.
        let tr = t(&[("S", 2), ("L", 8), ("X", 8), ("S", 2)]);
        assert_eq!(
            greedy_dual(&tr, 0, 10, 1.0, Frequency::Counted).all,
            r(4, 1, 20, 18)
        );
    }

    #[test]
    fn belady_evicts_the_furthest_next_use() {
        // A(5) B(5) C(5) C B A, capacity 10: at C, A's next use (5) is further than B's (4)
        // → A evicted; C hit, B hit, A miss. LRU evicts A (least recent) too: same here.
        let tr = t(&[("A", 5), ("B", 5), ("C", 5), ("C", 5), ("B", 5), ("A", 5)]);
        assert_eq!(belady(&tr, 0, 10).all, r(6, 2, 30, 20));
        // A(5) B(5) C(5) A C B: at C, B is used furthest (5) → B evicted: A hit, C hit.
        // LRU evicts A instead: A miss (evicts B), C hit, B miss.
        let tr = t(&[("A", 5), ("B", 5), ("C", 5), ("A", 5), ("C", 5), ("B", 5)]);
        assert_eq!(belady(&tr, 0, 10).all, r(6, 2, 30, 20));
        assert_eq!(lru(&tr, 0, 10).all, r(6, 1, 30, 25));
    }
}
