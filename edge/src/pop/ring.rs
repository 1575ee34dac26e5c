//! Who owns a key: weighted rendezvous hashing (highest random weight) over a PoP's healthy
//! members, with bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with
//! Bounded Loads"). Pure: the caller passes the members' health and load.
//!
//! Each member `m` scores a key `k` as `weight(m) / -ln(u(k, m))` with `u` a hash of the pair
//! mapped into (0, 1) (the "logarithmic method" of weighted rendezvous hashing): the highest
//! score owns the key, and each member's share of keys is proportional to its weight. A
//! member leaving moves only the keys it owned (each to the next member in that key's own
//! order); a member joining takes only keys from the others, in proportion to its weight.
//!
//! Bounded load: with loads `l` (requests/s) and weights `w`, a member is *full* when
//! `l(m) > ceil((1 + ε) · w(m) · Σl / Σw)` (the paper's capacity, ceiling included, so idle
//! PoPs are never considered full), and never below `floor · w(m)` (`cluster.load_floor`: at
//! low rates load figures are noise, and members acting on noise would disagree about owners).
//! The key goes to the first member of its order that is not full; when all are full, to its
//! plain owner.

/// A stable 64-bit hash of bytes (FNV-1a, then the splitmix64 finaliser): the same in every
/// process and on every machine, so every member computes the same owners.
pub fn hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A member as the ring sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Node {
    /// [`hash`] of the member's id.
    pub id_hash: u64,
    /// Relative share of keys (> 0).
    pub weight: f64,
    /// Usable now.
    pub up: bool,
    /// Its load (requests/s; ≥ 0).
    pub load: f64,
}

/// The rendezvous score of `node` for the key hashed as `key_hash`.
pub fn score(key_hash: u64, node: &Node) -> f64 {
    let h = mix(key_hash ^ mix(node.id_hash));
    // 53 random bits → (0, 1), never 0 or 1.
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    node.weight / -u.ln()
}

/// The healthy members (indices into `nodes`) in the key's rendezvous order, highest score
/// first (ties broken by id hash, so every process agrees).
pub fn order(key_hash: u64, nodes: &[Node]) -> Vec<usize> {
    let mut v: Vec<(f64, u64, usize)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.up)
        .map(|(i, n)| (score(key_hash, n), n.id_hash, i))
        .collect();
    v.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)));
    v.into_iter().map(|(_, _, i)| i).collect()
}

/// The bounded-load knobs: ε and the floor (requests/s per unit of weight).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    /// ε: a member is full above (1 + ε) × its share of the total load.
    pub epsilon: f64,
    /// Never full below `floor × weight`.
    pub floor: f64,
}

/// Is `node` above its bounded-load capacity, given the totals of the healthy members?
pub fn full(node: &Node, total_load: f64, total_weight: f64, b: Bound) -> bool {
    if total_weight <= 0.0 || !total_load.is_finite() || !node.load.is_finite() {
        return false;
    }
    let cap = ((1.0 + b.epsilon) * node.weight * total_load / total_weight).ceil();
    node.load > cap.max(b.floor * node.weight)
}

/// The preference list for a key: healthy members, the owner first — the first member of the
/// rendezvous order that is not [`full`] (or the plain owner when all are) — then the others
/// in rendezvous order (the fallbacks when the owner fails).
pub fn preference(key_hash: u64, nodes: &[Node], b: Bound) -> Vec<usize> {
    let mut ord = order(key_hash, nodes);
    let (tl, tw) = ord.iter().fold((0.0, 0.0), |(l, w), &i| {
        (l + nodes[i].load.max(0.0), w + nodes[i].weight)
    });
    if let Some(pos) = ord.iter().position(|&i| !full(&nodes[i], tl, tw, b)) {
        let owner = ord.remove(pos);
        ord.insert(0, owner);
    }
    ord
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn nodes(n: usize) -> Vec<Node> {
        (0..n)
            .map(|i| Node {
                id_hash: hash(format!("edge-{i}").as_bytes()),
                weight: 1.0,
                up: true,
                load: 0.0,
            })
            .collect()
    }

    const B: Bound = Bound {
        epsilon: 0.25,
        floor: 0.0,
    };

    fn owner(key: u64, ns: &[Node]) -> Option<u64> {
        preference(key, ns, B).first().map(|&i| ns[i].id_hash)
    }

    #[test]
    fn hash_is_stable_across_builds() {
        // FNV-1a + splitmix64 of fixed inputs: a change here reshuffles every PoP.
        assert_eq!(hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(hash(b"a"), hash(b"a"));
        assert_ne!(hash(b"a"), hash(b"b"));
    }

    #[test]
    fn shares_follow_weights() {
        let mut ns = nodes(3);
        ns[2].weight = 2.0;
        let mut count = [0usize; 3];
        for k in 0..40_000u64 {
            count[preference(hash(&k.to_le_bytes()), &ns, B)[0]] += 1;
        }
        // Expected 10000 / 10000 / 20000.
        for (i, want) in [10_000.0, 10_000.0, 20_000.0].iter().enumerate() {
            let got = count[i] as f64;
            assert!((got - want).abs() / want < 0.05, "{count:?}");
        }
    }

    #[test]
    fn down_members_own_nothing_and_none_up_means_no_owner() {
        let mut ns = nodes(3);
        ns[1].up = false;
        for k in 0..1000u64 {
            let p = preference(hash(&k.to_le_bytes()), &ns, B);
            assert_eq!(p.len(), 2);
            assert!(!p.contains(&1));
        }
        for n in &mut ns {
            n.up = false;
        }
        assert!(preference(1, &ns, B).is_empty());
    }

    #[test]
    fn a_full_owner_hands_its_keys_to_the_next_member() {
        let mut ns = nodes(3);
        let key = hash(b"/hot");
        let ord = order(key, &ns);
        let (first, second) = (ord[0], ord[1]);
        // Average 40, capacity ceil(1.25 × 40) = 50: 100 is full.
        ns[first].load = 100.0;
        ns[second].load = 10.0;
        ns[ord[2]].load = 10.0;
        let p = preference(key, &ns, B);
        assert_eq!(p[0], second);
        assert_eq!(p[1], first, "the full owner stays a fallback");
        // At 50 it is not full.
        ns[first].load = 50.0;
        ns[second].load = 35.0;
        ns[ord[2]].load = 35.0;
        assert_eq!(preference(key, &ns, B)[0], first);
        // Everyone full is impossible (the average bounds it), but an idle PoP never is.
        for n in &mut ns {
            n.load = 0.0;
        }
        assert_eq!(preference(key, &ns, B)[0], first);
    }

    #[test]
    fn capacity_uses_the_ceiling_and_weights() {
        let n = |load, weight| Node {
            id_hash: 1,
            weight,
            up: true,
            load,
        };
        // total 5 over weight 3: cap = ceil(1.25 × 5/3) = 3.
        assert!(!full(&n(3.0, 1.0), 5.0, 3.0, B));
        assert!(full(&n(4.0, 1.0), 5.0, 3.0, B));
        // Weight 2 doubles the capacity: ceil(1.25 × 2 × 5/3) = 5.
        assert!(!full(&n(4.0, 2.0), 5.0, 3.0, B));
        assert!(!full(&n(f64::NAN, 1.0), 5.0, 3.0, B));
        assert!(!full(&n(9.0, 1.0), 9.0, 0.0, B));
        // The floor: 40 of a total 60 over 3 is full (cap 25), not with a floor of 50.
        assert!(full(&n(40.0, 1.0), 60.0, 3.0, B));
        let floor = Bound { floor: 50.0, ..B };
        assert!(!full(&n(40.0, 1.0), 60.0, 3.0, floor));
        assert!(full(&n(51.0, 1.0), 60.0, 3.0, floor));
    }

    proptest! {
        /// A member leaving moves only the keys it owned.
        #[test]
        fn leaving_moves_only_its_keys(n in 2usize..8, gone in 0usize..8, keys in proptest::collection::vec(any::<u64>(), 1..200)) {
            let gone = gone % n;
            let before = nodes(n);
            let mut after = before.clone();
            after[gone].up = false;
            for k in keys {
                let (a, b) = (owner(k, &before).unwrap(), owner(k, &after).unwrap());
                if a != before[gone].id_hash {
                    prop_assert_eq!(a, b);
                } else {
                    prop_assert_ne!(b, before[gone].id_hash);
                    // …to the next member of that key's own order.
                    prop_assert_eq!(b, before[order(k, &before)[1]].id_hash);
                }
            }
        }

        /// A member joining takes keys only for itself.
        #[test]
        fn joining_takes_keys_only_for_itself(n in 1usize..8, keys in proptest::collection::vec(any::<u64>(), 1..200)) {
            let before = nodes(n);
            let after = nodes(n + 1);
            let new = after[n].id_hash;
            for k in keys {
                let (a, b) = (owner(k, &before).unwrap(), owner(k, &after).unwrap());
                prop_assert!(a == b || b == new);
            }
        }

        /// Every member computes the same order whatever the order of its member list.
        #[test]
        fn order_does_not_depend_on_listing(n in 1usize..8, k in any::<u64>(), rot in 0usize..8) {
            let a = nodes(n);
            let mut b = a.clone();
            b.rotate_left(rot % n);
            let oa: Vec<u64> = preference(k, &a, B).iter().map(|&i| a[i].id_hash).collect();
            let ob: Vec<u64> = preference(k, &b, B).iter().map(|&i| b[i].id_hash).collect();
            prop_assert_eq!(oa, ob);
        }
    }
}
