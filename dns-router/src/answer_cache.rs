//! The per-thread (and per-TCP-connection) state of the service answer path: the live state of
//! each pool under the current health generation ([`PoolState`]: candidates with their health
//! and exclusions, built once per generation instead of once per query), and the answers of the
//! generation, interned: identical answers (same service, type, chosen edges, rule and ECS
//! scope) are built once and shared, so a query answered from the precompiled geo map
//! allocates nothing.
//!
//! It never decides: every query is decided by `route::pick` (the precompiled map) or, where the
//! map holds nothing, `route::decide_located`; a hit here only reuses an identical answer. Both
//! tables start over when the config epoch or the health generation changes, and the answers
//! are bounded ([`MAX_ANSWERS`] per UDP thread, [`TCP_MAX_ANSWERS`] per TCP connection): when
//! full they are dropped and built again as they are asked.

use std::collections::HashMap;
use std::sync::Arc;

use cdn_geo::model::Rule;
use foldhash::fast::RandomState;

use crate::route::{PoolState, ServiceAnswer};

/// Most answers kept per UDP thread (each a few hundred bytes at most).
pub const MAX_ANSWERS: usize = 1 << 14;
/// Most answers kept per TCP connection.
pub const TCP_MAX_ANSWERS: usize = 64;
/// Answers with more chosen edges than this are not interned (built per query).
pub const MAX_INTERNED_EDGES: usize = 8;

/// What identifies an answer within one health generation and config epoch: with the
/// candidates fixed, the chosen ones, the rule and the scope determine the whole answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AnswerKey {
    svc: u32,
    rtype: u16,
    scope: u8,
    rule: u8,
    len: u8,
    chosen: [u32; MAX_INTERNED_EDGES],
}

impl AnswerKey {
    /// The key of an answer; `None` when it cannot be interned (too many edges, or a service
    /// index beyond `u32`).
    pub fn new(svc: usize, rtype: u16, scope: u8, rule: Rule, chosen: &[usize]) -> Option<Self> {
        if chosen.len() > MAX_INTERNED_EDGES {
            return None;
        }
        let mut key = AnswerKey {
            svc: u32::try_from(svc).ok()?,
            rtype,
            scope,
            rule: rule as u8,
            len: chosen.len() as u8,
            chosen: [0; MAX_INTERNED_EDGES],
        };
        for (slot, &i) in key.chosen.iter_mut().zip(chosen) {
            *slot = u32::try_from(i).ok()?;
        }
        Some(key)
    }
}

/// The interned answers of a [`ThreadCache`], borrowed (see [`ThreadCache::parts`]).
#[derive(Debug)]
pub struct Answers<'c> {
    answers: &'c mut HashMap<AnswerKey, Arc<ServiceAnswer>, RandomState>,
    max: usize,
}

impl Answers<'_> {
    /// As [`ThreadCache::intern`].
    pub fn intern(
        &mut self,
        key: Option<AnswerKey>,
        make: impl FnOnce() -> ServiceAnswer,
    ) -> Arc<ServiceAnswer> {
        let Some(key) = key else {
            return Arc::new(make());
        };
        if let Some(a) = self.answers.get(&key) {
            return a.clone();
        }
        if self.answers.len() >= self.max {
            self.answers.clear();
        }
        let a = Arc::new(make());
        self.answers.insert(key, a.clone());
        a
    }
}

/// Per-thread (per-connection) pool states and interned answers (see the module docs).
#[derive(Debug)]
pub struct ThreadCache {
    epoch: u64,
    generation: u64,
    /// By `route::pool(svc, rtype)`.
    pools: Vec<Option<Arc<PoolState>>>,
    answers: HashMap<AnswerKey, Arc<ServiceAnswer>, RandomState>,
    max_answers: usize,
    /// Scratch list of chosen candidates, reused by every query.
    chosen: Vec<usize>,
}

impl Default for ThreadCache {
    fn default() -> Self {
        Self::with_limit(MAX_ANSWERS)
    }
}

impl ThreadCache {
    /// The state of a UDP thread (up to [`MAX_ANSWERS`] answers).
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of a TCP connection (up to [`TCP_MAX_ANSWERS`] answers).
    pub fn small() -> Self {
        Self::with_limit(TCP_MAX_ANSWERS)
    }

    /// Empty, keeping at most `max_answers` answers.
    pub fn with_limit(max_answers: usize) -> Self {
        ThreadCache {
            epoch: 0,
            generation: 0,
            pools: Vec::new(),
            answers: HashMap::default(),
            max_answers: max_answers.max(1),
            chosen: Vec::new(),
        }
    }

    /// The most answers kept.
    pub fn max_answers(&self) -> usize {
        self.max_answers
    }

    /// Answers kept now.
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty()
    }

    /// Start using the cache for `epoch` and `generation`: anything from another one is dropped.
    pub fn validate(&mut self, epoch: u64, generation: u64) {
        if self.epoch != epoch || self.generation != generation {
            self.pools.clear();
            self.answers.clear();
            self.epoch = epoch;
            self.generation = generation;
        }
    }

    /// The state of pool `pool` under the current generation, built by `make` the first time.
    pub fn pool(&mut self, pool: usize, make: impl FnOnce() -> PoolState) -> Arc<PoolState> {
        self.parts(pool, make).0.clone()
    }

    /// The state of pool `pool` (built by `make` the first time in the generation), with the
    /// answers and the scratch list of chosen candidates: everything a service answer needs,
    /// borrowed at once.
    pub fn parts(
        &mut self,
        pool: usize,
        make: impl FnOnce() -> PoolState,
    ) -> (&Arc<PoolState>, Answers<'_>, &mut Vec<usize>) {
        if self.pools.len() <= pool {
            self.pools.resize(pool + 1, None);
        }
        let state = self.pools[pool].get_or_insert_with(|| Arc::new(make()));
        (
            state,
            Answers {
                answers: &mut self.answers,
                max: self.max_answers,
            },
            &mut self.chosen,
        )
    }

    /// The generation's copy of the answer `key` names, built by `make` when new. Without a key
    /// (not internable) the answer is built and not kept.
    pub fn intern(
        &mut self,
        key: Option<AnswerKey>,
        make: impl FnOnce() -> ServiceAnswer,
    ) -> Arc<ServiceAnswer> {
        Answers {
            answers: &mut self.answers,
            max: self.max_answers,
        }
        .intern(key, make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rtype;
    use cdn_geo::ranking::Eligibility;
    use std::net::IpAddr;

    fn answer(tag: u8) -> ServiceAnswer {
        ServiceAnswer {
            rtype: rtype::A,
            ttl: 30,
            addrs: vec![IpAddr::from([192, 0, 2, tag])],
            scope: 24,
            rule: Rule::Nearest,
            region: None,
            edges: vec![format!("e{tag}")],
        }
    }

    fn state() -> PoolState {
        PoolState {
            candidates: Arc::new(Vec::new()),
            eligibility: Eligibility {
                excluded: Vec::new(),
                eligible: 0,
                usable: 0,
            },
        }
    }

    #[test]
    fn equal_answers_are_built_once_per_generation() {
        let mut c = ThreadCache::new();
        c.validate(1, 1);
        let k = AnswerKey::new(0, rtype::A, 24, Rule::Nearest, &[1]);
        let mut built = 0;
        let a = c.intern(k, || {
            built += 1;
            answer(1)
        });
        let b = c.intern(k, || {
            built += 1;
            answer(1)
        });
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(built, 1);
        // Every field is part of the key.
        for other in [
            AnswerKey::new(1, rtype::A, 24, Rule::Nearest, &[1]),
            AnswerKey::new(0, rtype::AAAA, 24, Rule::Nearest, &[1]),
            AnswerKey::new(0, rtype::A, 20, Rule::Nearest, &[1]),
            AnswerKey::new(0, rtype::A, 24, Rule::Backup, &[1]),
            AnswerKey::new(0, rtype::A, 24, Rule::Nearest, &[1, 2]),
            AnswerKey::new(0, rtype::A, 24, Rule::Nearest, &[2]),
            AnswerKey::new(0, rtype::A, 24, Rule::Nearest, &[]),
        ] {
            assert_ne!(other, k);
            let x = c.intern(other, || answer(9));
            assert!(!Arc::ptr_eq(&x, &a));
        }
        // A new generation (or epoch) builds again.
        c.validate(1, 2);
        let d = c.intern(k, || answer(1));
        assert!(!Arc::ptr_eq(&a, &d));
        c.validate(2, 2);
        assert!(c.is_empty());
    }

    #[test]
    fn pools_are_built_once_per_generation() {
        let mut c = ThreadCache::new();
        c.validate(1, 1);
        let mut built = 0;
        for _ in 0..3 {
            c.pool(3, || {
                built += 1;
                state()
            });
        }
        assert_eq!(built, 1);
        c.validate(1, 2);
        c.pool(3, || {
            built += 1;
            state()
        });
        assert_eq!(built, 2);
    }

    #[test]
    fn bounded_and_uninternable_answers() {
        let mut c = ThreadCache::with_limit(4);
        c.validate(1, 1);
        for i in 0..100usize {
            c.intern(AnswerKey::new(i, rtype::A, 0, Rule::Nearest, &[0]), || {
                answer(0)
            });
            assert!(c.len() <= 4);
        }
        let many: Vec<usize> = (0..=MAX_INTERNED_EDGES).collect();
        assert_eq!(AnswerKey::new(0, rtype::A, 0, Rule::Nearest, &many), None);
        let a = c.intern(None, || answer(1));
        let b = c.intern(None, || answer(1));
        assert!(!Arc::ptr_eq(&a, &b));
        assert_eq!(ThreadCache::small().max_answers(), TCP_MAX_ANSWERS);
    }
}
