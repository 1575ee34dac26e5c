//! The per-thread answer cache of [`crate::handler::respond`]: service answers by client key,
//! in two bounded set-associative tables (clients → network slot; networks → location and
//! decision), with a per-process random seed because clients choose the keys through ECS.
//! Locations live for the config epoch; decisions are recomputed once per network when the
//! health generation changes; identical answers are stored once per era.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;

use cdn_geo::model::{Candidate, ClientLocation};
use foldhash::fast::RandomState;

use crate::route::ServiceAnswer;
use crate::wire::rtype;

/// What a service answer is cached under: (service, type, looked-up address, ECS source
/// prefix, ECS used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheKey {
    /// Service index.
    pub svc: usize,
    /// A or AAAA.
    pub rtype: u16,
    /// The address looked up (`route::ClientKey::addr`).
    pub addr: IpAddr,
    /// ECS source prefix (0 without ECS).
    pub prefix: u8,
    /// Whether ECS decided.
    pub used: bool,
}

/// Interning key of an answer within one era: with the candidates fixed for the era, the
/// chosen candidates, the scope and the rule determine the whole answer.
pub type AnswerKey = (u32, u16, u8, u8, Vec<usize>);

/// Slots per bucket of both tables: a lookup reads at most this many slots (one bucket), so
/// attacker-chosen keys cannot make probing longer; a full bucket overwrites one of its slots.
const WAYS: usize = 4;
/// Most client slots per cache (32 bytes each: 8 MiB). The table starts small and doubles
/// while it is less than half full when a bucket overflows.
pub const CLIENT_SLOTS: usize = 1 << 18;
/// Most network slots per cache (48 bytes each: 6 MiB).
pub const NET_SLOTS: usize = 1 << 17;
/// Slots of a table when first used.
const FIRST_SLOTS: usize = 64;

/// A cache key packed for the tables: the address as two words, then `meta` = occupied (bit
/// 31), IPv6 (30), service (10..30), AAAA (9), ECS used (8), ECS source prefix (0..8); `len`
/// is the prefix length of a network key (0 in a client key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
struct PackedKey {
    hi: u64,
    lo: u64,
    meta: u32,
    len: u8,
}

/// Services with an index at or above this are answered without the cache.
const MAX_CACHED_SERVICE: usize = 1 << 20;

impl PackedKey {
    /// `meta` bits for (service, type, prefix, used); `None` when not cacheable.
    fn meta(svc: usize, rtype: u16, prefix: u8, used: bool) -> Option<u32> {
        if svc >= MAX_CACHED_SERVICE || (rtype != rtype::A && rtype != rtype::AAAA) {
            return None;
        }
        Some(
            1 << 31
                | (svc as u32) << 10
                | u32::from(rtype == rtype::AAAA) << 9
                | u32::from(used) << 8
                | u32::from(prefix),
        )
    }

    fn new(addr: IpAddr, len: u8, meta: u32) -> Self {
        let (bits, v6) = match addr {
            IpAddr::V4(a) => (u128::from(u32::from(a)), 0),
            IpAddr::V6(a) => (u128::from(a), 1 << 30),
        };
        PackedKey {
            hi: (bits >> 64) as u64,
            lo: bits as u64,
            meta: meta | v6,
            len,
        }
    }
}

/// A slot of either table.
trait Slot: Clone + Default {
    /// Its key (`meta == 0`: empty).
    fn key(&self) -> PackedKey;
}

/// Client table slot (32 bytes, four to a 128-byte bucket): the key, the network slot that
/// located the client (index, and that slot's stamp when it was filled: a network slot
/// reused for another network has a new stamp), and the answer reference (era << 16 |
/// index into the era's answers; stale when the era moved on).
#[derive(Debug, Clone, Copy, Default)]
struct ClientSlot {
    hi: u64,
    lo: u64,
    meta: u32,
    net: u32,
    stamp: u32,
    answer: u32,
}

impl Slot for ClientSlot {
    fn key(&self) -> PackedKey {
        PackedKey {
            hi: self.hi,
            lo: self.lo,
            meta: self.meta,
            len: 0,
        }
    }
}

/// Network table slot: the network key, a stamp unique within the cache's life, where the
/// network is (kept for the config epoch) and its answer reference.
#[derive(Debug, Clone, Default)]
struct NetSlot {
    key: PackedKey,
    stamp: u32,
    answer: u32,
    location: Option<Arc<ClientLocation>>,
}

impl Slot for NetSlot {
    fn key(&self) -> PackedKey {
        self.key
    }
}

/// A bucket, aligned so that a client bucket is exactly two cache lines.
#[derive(Debug, Clone, Default)]
#[repr(C, align(64))]
struct Bucket<S>([S; WAYS]);

/// A set-associative table with a fixed number of ways per bucket and a size bound: no
/// allocation per insert, lookups read one bucket.
#[derive(Debug)]
struct Table<S> {
    buckets: Vec<Bucket<S>>,
    /// Occupied slots.
    len: usize,
    /// Most slots.
    max: usize,
    /// Rotates the way overwritten in a full bucket.
    victim: usize,
}

impl<S: Slot> Table<S> {
    fn new(max: usize) -> Self {
        Table {
            buckets: Vec::new(),
            len: 0,
            max: max.max(WAYS),
            victim: 0,
        }
    }

    fn slots(&self) -> usize {
        self.buckets.len() * WAYS
    }

    fn bucket_of(&self, h: u64) -> usize {
        (h as usize) & (self.buckets.len() - 1)
    }

    /// Index (bucket × WAYS + way) of the slot holding `k`.
    fn find(&self, h: u64, k: &PackedKey) -> Option<usize> {
        if self.buckets.is_empty() {
            return None;
        }
        let b = self.bucket_of(h);
        let ways = &self.buckets[b].0;
        (0..WAYS)
            .find(|&w| ways[w].key() == *k)
            .map(|w| b * WAYS + w)
    }

    fn get(&self, i: usize) -> Option<&S> {
        self.buckets.get(i / WAYS).map(|b| &b.0[i % WAYS])
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut S> {
        self.buckets.get_mut(i / WAYS).map(|b| &mut b.0[i % WAYS])
    }

    /// Store `slot` (its key is not in the table) and return its index, in a free way of its
    /// bucket or over one of the bucket's slots. Below its bound the table first doubles when
    /// half full, or when the bucket is full and the table an eighth full.
    fn insert(&mut self, h: u64, slot: S, hasher: &RandomState) -> usize {
        if self.buckets.is_empty() {
            self.resize(FIRST_SLOTS.min(self.max), hasher);
        }
        let mut b = self.bucket_of(h);
        let full = self.buckets[b].0.iter().all(|s| s.key().meta != 0);
        if self.slots() * 2 <= self.max
            && (self.len * 2 >= self.slots() || (full && self.len * 8 >= self.slots()))
        {
            self.resize(self.slots() * 2, hasher);
            b = self.bucket_of(h);
        }
        let ways = &mut self.buckets[b].0;
        let w = match ways.iter().position(|s| s.key().meta == 0) {
            Some(w) => {
                self.len += 1;
                w
            }
            None => {
                self.victim = self.victim.wrapping_add(1);
                self.victim % WAYS
            }
        };
        ways[w] = slot;
        b * WAYS + w
    }

    /// Rehash into `slots` slots (a power of two); slots that find no free way are dropped.
    fn resize(&mut self, slots: usize, hasher: &RandomState) {
        let n = (slots / WAYS).max(1).next_power_of_two();
        let old = std::mem::replace(
            &mut self.buckets,
            (0..n).map(|_| Bucket::default()).collect(),
        );
        self.len = 0;
        for s in old.into_iter().flat_map(|b| b.0) {
            let k = s.key();
            if k.meta == 0 {
                continue;
            }
            let b = self.bucket_of(hasher.hash_one(k));
            if let Some(w) = self.buckets[b].0.iter().position(|s| s.key().meta == 0) {
                self.buckets[b].0[w] = s;
                self.len += 1;
            }
        }
    }

    /// Empty every slot (the allocation stays).
    fn clear(&mut self) {
        for b in &mut self.buckets {
            b.0 = Default::default();
        }
        self.len = 0;
    }

    fn for_each_mut(&mut self, mut f: impl FnMut(&mut S)) {
        for b in &mut self.buckets {
            b.0.iter_mut().for_each(&mut f);
        }
    }
}

/// Per-thread (and per-TCP-connection) cache of service answers, two levels: by exact client
/// key (a hit reads one bucket and returns the answer), then by the network that located the
/// client (no selection). Locations are kept for the whole config epoch; answers are
/// recomputed (once per network) when the health generation changes, without locating again.
///
/// Answers live in a per-era list (identical answers shared: few distinct ones, so they stay
/// in cache); slots refer to them by era and index. A new era starts when the health
/// generation or the config epoch changes (and when the list is full), which invalidates
/// every answer reference at once; a new epoch also empties the network table (locations
/// depend on the config). Both tables are bounded ([`CLIENT_SLOTS`], [`NET_SLOTS`]) and keyed
/// with a per-cache random seed.
#[derive(Debug)]
pub struct ThreadCache {
    epoch: u64,
    generation: u64,
    hasher: RandomState,
    clients: Table<ClientSlot>,
    nets: Table<NetSlot>,
    /// Stamp of the next network slot filled (0 is never used).
    next_stamp: u32,
    /// Current era, 1..=u16::MAX.
    era: u16,
    answers: Vec<Arc<ServiceAnswer>>,
    interned: HashMap<AnswerKey, u16, RandomState>,
    /// (service, type) → its candidates under the current health generation.
    candidates: Candidates,
}

/// (service, type) → candidates, per health generation.
pub type Candidates = HashMap<(u32, u16), Arc<Vec<Candidate>>, RandomState>;

impl Default for ThreadCache {
    fn default() -> Self {
        Self::with_limits(CLIENT_SLOTS, NET_SLOTS)
    }
}

impl ThreadCache {
    /// An empty cache (it allocates on first use and grows up to its bounds).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty cache holding at most `clients` client keys and `networks` networks.
    pub fn with_limits(clients: usize, networks: usize) -> Self {
        ThreadCache {
            epoch: 0,
            generation: 0,
            hasher: RandomState::default(),
            clients: Table::new(clients),
            nets: Table::new(networks),
            next_stamp: 1,
            era: 1,
            answers: Vec::new(),
            interned: HashMap::default(),
            candidates: HashMap::default(),
        }
    }

    /// The most client and network slots this cache will ever hold.
    pub fn limits(&self) -> (usize, usize) {
        (self.clients.max, self.nets.max)
    }

    /// Bytes of the slot tables when both are at their bound.
    pub fn max_table_bytes(&self) -> usize {
        self.clients.max * std::mem::size_of::<ClientSlot>()
            + self.nets.max * std::mem::size_of::<NetSlot>()
    }

    /// Start using the cache for `epoch` and `generation`.
    pub fn validate(&mut self, epoch: u64, generation: u64) {
        if self.epoch != epoch {
            self.nets.clear();
            self.candidates.clear();
            self.new_era();
            self.epoch = epoch;
        }
        if self.generation != generation {
            self.candidates.clear();
            self.new_era();
            self.generation = generation;
        }
        // A query takes at most one stamp: start over well before they wrap.
        if self.next_stamp >= u32::MAX - 1 {
            self.clients.clear();
            self.nets.clear();
            self.next_stamp = 1;
        }
    }

    fn new_era(&mut self) {
        self.answers.clear();
        self.interned.clear();
        if self.era == u16::MAX {
            // Era numbers wrap: forget every reference so that none matches by accident.
            self.clients.for_each_mut(|s| s.answer = 0);
            self.nets.for_each_mut(|s| s.answer = 0);
            self.era = 1;
        } else {
            self.era += 1;
        }
    }

    /// The answer `r` refers to, if it is of the current era.
    fn live(&self, r: u32) -> Option<&Arc<ServiceAnswer>> {
        if r >> 16 == u32::from(self.era) {
            self.answers.get((r & 0xffff) as usize)
        } else {
            None
        }
    }

    /// The era's copy of `answer` (added when new) and its reference.
    fn intern(&mut self, key: AnswerKey, answer: ServiceAnswer) -> (u32, Arc<ServiceAnswer>) {
        if let Some(&i) = self.interned.get(&key) {
            if let Some(a) = self.answers.get(usize::from(i)) {
                return (u32::from(self.era) << 16 | u32::from(i), a.clone());
            }
        }
        if self.answers.len() >= usize::from(u16::MAX) {
            self.new_era();
        }
        let i = self.answers.len() as u16;
        let a = Arc::new(answer);
        self.answers.push(a.clone());
        self.interned.insert(key, i);
        (u32::from(self.era) << 16 | u32::from(i), a)
    }

    /// The answer for `key` under the epoch and generation last given to [`Self::validate`]:
    /// from the client table; else from the network that located the client (`locate` runs
    /// only when the client's network is not known); else `decide` (given the per-generation
    /// candidates map and the location) computes it.
    pub fn answer(
        &mut self,
        key: CacheKey,
        locate: impl Fn() -> ClientLocation,
        decide: impl FnOnce(&mut Candidates, Arc<ClientLocation>) -> (AnswerKey, ServiceAnswer),
    ) -> Arc<ServiceAnswer> {
        let Some(meta) = PackedKey::meta(key.svc, key.rtype, key.prefix, key.used) else {
            let (_, a) = decide(&mut self.candidates, Arc::new(locate()));
            return Arc::new(a);
        };
        let ck = PackedKey::new(key.addr, 0, meta);
        let h = self.hasher.hash_one(ck);
        let found = self.clients.find(h, &ck);
        let mut net = None;
        if let Some(s) = found.and_then(|ci| self.clients.get(ci)).copied() {
            if let Some(a) = self.live(s.answer) {
                return a.clone();
            }
            if self.nets.get(s.net as usize).map(|n| n.stamp) == Some(s.stamp) && s.stamp != 0 {
                net = Some(s.net as usize);
            }
        }
        let ni = match net {
            Some(ni) => ni,
            None => {
                let location = Arc::new(locate());
                let network = location.network;
                let nk = PackedKey::new(network.addr(), network.prefix_len(), meta);
                let nh = self.hasher.hash_one(nk);
                match self.nets.find(nh, &nk) {
                    Some(ni) => {
                        let stale = self
                            .nets
                            .get(ni)
                            .is_some_and(|n| self.live(n.answer).is_none());
                        if let (true, Some(n)) = (stale, self.nets.get_mut(ni)) {
                            // As if freshly located: this client's location decides.
                            n.location = Some(location);
                        }
                        ni
                    }
                    None => {
                        let stamp = self.next_stamp;
                        self.next_stamp += 1;
                        let slot = NetSlot {
                            key: nk,
                            stamp,
                            answer: 0,
                            location: Some(location),
                        };
                        self.nets.insert(nh, slot, &self.hasher)
                    }
                }
            }
        };
        let (stamp, r, location) = match self.nets.get(ni) {
            Some(n) => (n.stamp, n.answer, n.location.clone()),
            None => (0, 0, None),
        };
        let (r, answer) = match self.live(r) {
            Some(a) => (r, a.clone()),
            None => {
                let location = location.unwrap_or_else(|| Arc::new(locate()));
                let (akey, a) = decide(&mut self.candidates, location);
                let (r, a) = self.intern(akey, a);
                if let Some(n) = self.nets.get_mut(ni) {
                    n.answer = r;
                }
                (r, a)
            }
        };
        let slot = ClientSlot {
            hi: ck.hi,
            lo: ck.lo,
            meta: ck.meta,
            net: ni as u32,
            stamp,
            answer: r,
        };
        match found.and_then(|ci| self.clients.get_mut(ci)) {
            Some(s) => *s = slot,
            None => {
                self.clients.insert(h, slot, &self.hasher);
            }
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_geo::model::{LocationSource, Rule};
    use ipnet::IpNet;
    use std::cell::Cell;

    /// A fake world: an address is located in its /16 (IPv4) or /32 (IPv6); the answer of a
    /// network under a health generation is tagged with both, so a wrong cache hit shows.
    #[derive(Default)]
    struct World {
        epoch: Cell<u64>,
        generation: Cell<u64>,
        locates: Cell<usize>,
        decides: Cell<usize>,
    }

    fn network(addr: IpAddr) -> IpNet {
        let len = if addr.is_ipv4() { 16 } else { 32 };
        IpNet::new(addr, len).unwrap().trunc()
    }

    fn tag(net: IpNet, generation: u64) -> usize {
        let bits = match net.addr() {
            IpAddr::V4(a) => u128::from(u32::from(a)),
            IpAddr::V6(a) => u128::from(a) ^ 1,
        };
        (bits % 1_000_003) as usize * 100 + generation as usize
    }

    fn service_answer(tag: usize) -> ServiceAnswer {
        ServiceAnswer {
            rtype: rtype::A,
            ttl: 30,
            addrs: vec![IpAddr::from([192, 0, 2, (tag % 251) as u8])],
            scope: 16,
            rule: Rule::Nearest,
            region: None,
            edges: vec![format!("e{tag}")],
        }
    }

    fn key(addr: &str) -> CacheKey {
        CacheKey {
            svc: 0,
            rtype: rtype::A,
            addr: addr.parse().unwrap(),
            prefix: 24,
            used: true,
        }
    }

    impl World {
        fn new() -> Self {
            let w = World::default();
            w.epoch.set(1);
            w.generation.set(1);
            w
        }

        fn ask(&self, c: &mut ThreadCache, k: CacheKey) -> Arc<ServiceAnswer> {
            let generation = self.generation.get();
            c.validate(self.epoch.get(), generation);
            c.answer(
                k,
                || {
                    self.locates.set(self.locates.get() + 1);
                    ClientLocation {
                        lat: 0.0,
                        lon: 0.0,
                        country: None,
                        continent: None,
                        region: None,
                        network: network(k.addr),
                        source: LocationSource::GeoIp,
                    }
                },
                |_, location| {
                    self.decides.set(self.decides.get() + 1);
                    let t = tag(location.network, generation);
                    ((0, rtype::A, 16, 0, vec![t]), service_answer(t))
                },
            )
        }

        /// Ask, and check the answer is the right one for `k`.
        fn check(&self, c: &mut ThreadCache, k: CacheKey) -> Arc<ServiceAnswer> {
            let a = self.ask(c, k);
            let want = service_answer(tag(network(k.addr), self.generation.get()));
            assert_eq!(*a, want, "answer for {k:?}");
            a
        }

        fn counts(&self) -> (usize, usize) {
            (self.locates.get(), self.decides.get())
        }
    }

    #[test]
    fn client_slot_is_a_quarter_of_a_two_line_bucket() {
        assert_eq!(std::mem::size_of::<ClientSlot>(), 32);
        assert_eq!(std::mem::size_of::<Bucket<ClientSlot>>(), 128);
        assert_eq!(std::mem::align_of::<Bucket<ClientSlot>>(), 64);
    }

    #[test]
    fn a_hit_neither_locates_nor_decides() {
        let w = World::new();
        let mut c = ThreadCache::new();
        let a = w.check(&mut c, key("198.51.100.0"));
        let b = w.check(&mut c, key("198.51.100.0"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(w.counts(), (1, 1));
    }

    #[test]
    fn key_fields_are_all_part_of_the_key() {
        let w = World::new();
        let mut c = ThreadCache::new();
        let base = key("198.51.100.0");
        w.check(&mut c, base);
        let variants = [
            CacheKey { svc: 1, ..base },
            CacheKey {
                rtype: rtype::AAAA,
                ..base
            },
            CacheKey { prefix: 25, ..base },
            CacheKey {
                used: false,
                ..base
            },
            // The IPv4-mapped IPv6 form is another key (and another network here).
            key("::ffff:198.51.100.0"),
        ];
        for (i, k) in variants.into_iter().enumerate() {
            w.check(&mut c, k);
            assert_eq!(w.locates.get(), i + 2, "{k:?} must miss");
        }
        w.check(&mut c, base);
        assert_eq!(w.locates.get(), variants.len() + 1);
    }

    #[test]
    fn clients_of_one_network_share_the_decision_and_equal_answers_are_shared() {
        let w = World::new();
        let mut c = ThreadCache::new();
        let a = w.check(&mut c, key("198.51.100.0"));
        let b = w.check(&mut c, key("198.51.7.0"));
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(w.counts(), (2, 1));
        // Another network with the same decision key: decided again, same shared answer.
        let mut c2 = ThreadCache::new();
        let w2 = World::new();
        let x = w2.ask(&mut c2, key("10.1.0.0"));
        let mut k = key("10.2.0.0");
        k.svc = 0;
        c2.validate(1, 1);
        let y = c2.answer(
            k,
            || ClientLocation {
                lat: 0.0,
                lon: 0.0,
                country: None,
                continent: None,
                region: None,
                network: network(k.addr),
                source: LocationSource::GeoIp,
            },
            |_, _| {
                let t = tag(network("10.1.0.0".parse().unwrap()), 1);
                ((0, rtype::A, 16, 0, vec![t]), service_answer(t))
            },
        );
        assert!(Arc::ptr_eq(&x, &y));
    }

    #[test]
    fn a_new_health_generation_decides_again_but_keeps_locations() {
        let w = World::new();
        let mut c = ThreadCache::new();
        let keys = ["198.51.100.0", "198.51.7.0", "203.0.113.0", "2001:db8:1::"];
        for k in keys {
            w.check(&mut c, key(k));
        }
        assert_eq!(w.counts(), (4, 3));
        w.generation.set(2);
        for k in keys {
            w.check(&mut c, key(k));
        }
        assert_eq!(w.counts(), (4, 6), "one decision per network, no locate");
        for k in keys {
            w.check(&mut c, key(k));
        }
        assert_eq!(w.counts(), (4, 6));
    }

    #[test]
    fn a_new_config_epoch_locates_again() {
        let w = World::new();
        let mut c = ThreadCache::new();
        w.check(&mut c, key("198.51.100.0"));
        w.epoch.set(2);
        w.check(&mut c, key("198.51.100.0"));
        assert_eq!(w.counts(), (2, 2));
        w.check(&mut c, key("198.51.100.0"));
        assert_eq!(w.counts(), (2, 2));
    }

    #[test]
    fn a_full_table_overwrites_and_collisions_answer_right() {
        // One bucket per table: every key collides with every other.
        let w = World::new();
        let mut c = ThreadCache::with_limits(WAYS, WAYS);
        let keys: Vec<CacheKey> = (0..40u8)
            .map(|i| key(&format!("10.{i}.0.0")))
            .chain((0..10u16).map(|i| key(&format!("2001:db8:{i:x}::"))))
            .collect();
        for round in 0..3u64 {
            w.generation.set(1 + round / 2);
            for k in &keys {
                w.check(&mut c, *k);
                assert!(c.clients.len <= WAYS && c.clients.slots() <= WAYS);
                assert!(c.nets.len <= WAYS && c.nets.slots() <= WAYS);
            }
        }
        // The last keys asked are still there.
        let before = w.counts();
        for k in &keys[keys.len() - 2..] {
            w.check(&mut c, *k);
        }
        assert_eq!(w.counts(), before);
    }

    #[test]
    fn a_client_whose_network_slot_was_reused_locates_again() {
        let w = World::new();
        let mut c = ThreadCache::with_limits(256, WAYS);
        w.check(&mut c, key("10.0.0.0"));
        for i in 1..20u8 {
            w.check(&mut c, key(&format!("10.{i}.0.0")));
        }
        assert!(c.nets.len <= WAYS);
        w.generation.set(2);
        let (locates, _) = w.counts();
        // Its client slot survived (room for 256), its network slot did not: located again,
        // and the answer is right.
        w.check(&mut c, key("10.0.0.0"));
        assert_eq!(w.locates.get(), locates + 1);
    }

    #[test]
    fn the_table_grows_to_its_bound_and_keeps_what_fits() {
        let w = World::new();
        let mut c = ThreadCache::with_limits(1 << 12, 1 << 12);
        // A network each.
        let keys: Vec<CacheKey> = (0..1000u32)
            .map(|i| key(&format!("{}.{}.0.0", 10 + i / 256, i % 256)))
            .collect();
        for k in &keys {
            w.check(&mut c, *k);
        }
        for (len, slots) in [
            (c.clients.len, c.clients.slots()),
            (c.nets.len, c.nets.slots()),
        ] {
            assert!((970..=1000).contains(&len), "{len}");
            assert!(slots == 1 << 12 || slots >= 2 * len, "{len} in {slots}");
        }
        let (locates, _) = w.counts();
        for k in &keys {
            w.check(&mut c, *k);
        }
        // A few collisions in full buckets at most.
        assert!(
            w.locates.get() - locates < 30,
            "{}",
            w.locates.get() - locates
        );
    }

    #[test]
    fn a_small_cache_never_grows_past_its_limits() {
        let w = World::new();
        let mut c = ThreadCache::with_limits(256, 128);
        for i in 0..20_000u32 {
            let a = std::net::Ipv4Addr::from(i << 12);
            w.check(&mut c, key(&a.to_string()));
        }
        assert!(c.clients.slots() <= 256, "{}", c.clients.slots());
        assert!(c.nets.slots() <= 128, "{}", c.nets.slots());
        assert_eq!(c.limits(), (256, 128));
        assert!(c.max_table_bytes() <= 16 * 1024, "{}", c.max_table_bytes());
        // The default (UDP thread) cache may grow to about 14 MiB.
        assert!(ThreadCache::new().max_table_bytes() > 8 << 20);
    }

    #[test]
    fn era_and_stamp_wrap_forget_references() {
        let w = World::new();
        let mut c = ThreadCache::new();
        c.validate(1, 1);
        c.era = u16::MAX;
        c.answers.clear();
        w.check(&mut c, key("198.51.100.0"));
        w.generation.set(2);
        w.check(&mut c, key("198.51.100.0"));
        assert_eq!(c.era, 1);
        assert_eq!(w.counts(), (1, 2));
        c.next_stamp = u32::MAX - 1;
        w.check(&mut c, key("198.51.100.0"));
        assert_eq!(w.counts(), (2, 3));
        assert_eq!(c.next_stamp, 2);
    }

    #[test]
    fn uncacheable_services_are_answered_directly() {
        let w = World::new();
        let mut c = ThreadCache::new();
        let mut k = key("198.51.100.0");
        k.svc = MAX_CACHED_SERVICE;
        w.check(&mut c, k);
        w.check(&mut c, k);
        assert_eq!(w.counts(), (2, 2));
    }
}
