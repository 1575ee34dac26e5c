//! Hit-for-miss: a memo of the cache keys whose last origin response could not be stored
//! because of what the origin said (`no-store`, `private`, `Set-Cookie`, `Vary: *`, no
//! freshness, over `max_object_size`). For `cache.hit_for_miss` after such a response, a miss on
//! that key skips coalescing ([`follow`](crate::follow)):
//!
//! * a plain request fetches on its own, at once, instead of queueing behind another request's
//!   fill only to learn that the answer cannot be shared (which serialised concurrent requests
//!   for an uncacheable URL in waves of one origin round trip each). Its response is still
//!   judged: if the origin now allows storing, it is stored and the memo ends (a *miss*, not a
//!   *pass*, as in Varnish's hit-for-miss);
//! * a range or conditional request goes to the origin as the client sent it: one origin
//!   request for a video seek in a file too large to store, instead of a ranged fill attempt
//!   first.
//!
//! The memo holds a keyed 64-bit hash of the key and its expiry, at most [`CAPACITY`] entries
//! (expired ones are swept when it fills; past that nothing is added, and it is not swept
//! again before its first entry expires), so no request pattern makes it grow without bound,
//! or makes each answer scan it. A hash collision only costs a key its coalescing for a while.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;

use crate::cache::policy::NoStore;

/// Most keys remembered (≈ 1.5 MiB).
pub const CAPACITY: usize = 65_536;

/// Whether a response not stored for `reason`, with `status`, says the key will not be
/// storable next time either: the origin's own directives and sizes, not this request's
/// `Authorization`, an error status or a transient refusal of ours.
pub fn remembers(reason: NoStore, status: u16) -> bool {
    if status >= 500 {
        return false;
    }
    matches!(
        reason,
        NoStore::NoStoreDirective
            | NoStore::Private
            | NoStore::SetCookie
            | NoStore::VaryStar
            | NoStore::NoFreshness
            | NoStore::TooLarge
    )
}

/// One remembered key.
#[derive(Debug, Clone, Copy)]
struct Memo {
    /// Expiry (unix ms).
    until: u64,
    /// Its body, without a length, grew past `max_object_size` while being stored
    /// ([`HitForMiss::remember_overflow`]).
    overflowed: bool,
}

/// The memo (`cache.hit_for_miss`; a zero duration turns it off).
#[derive(Debug)]
pub struct HitForMiss {
    ttl_ms: u64,
    memos: DashMap<u64, Memo>,
    /// After a sweep left it full: when its first entry expires (no sweep frees room before).
    full_until: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
}

impl HitForMiss {
    /// A memo whose entries last `ttl`.
    pub fn new(ttl: Duration) -> HitForMiss {
        HitForMiss {
            ttl_ms: u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX),
            memos: DashMap::new(),
            full_until: AtomicU64::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Remember at `now_ms` that `key`'s response could not be stored.
    pub fn remember(&self, key: &str, now_ms: u64) {
        self.insert(key, now_ms, false);
    }

    /// Remember at `now_ms` that `key`'s body, sent without a length, grew past
    /// `max_object_size` while it was being stored ([`writer`](crate::writer)): its next
    /// answers without a length are streamed without storing anything (not stored up to the
    /// limit again, then dropped).
    pub fn remember_overflow(&self, key: &str, now_ms: u64) {
        self.insert(key, now_ms, true);
    }

    /// Whether `key` is remembered at `now_ms` as a body that overflowed `max_object_size`.
    pub fn overflowed(&self, key: &str, now_ms: u64) -> bool {
        self.memo(key, now_ms).is_some_and(|m| m.overflowed)
    }

    fn insert(&self, key: &str, now_ms: u64, overflowed: bool) {
        if self.ttl_ms == 0 {
            return;
        }
        if self.memos.len() >= CAPACITY {
            if now_ms < self.full_until.load(Ordering::Relaxed) {
                return;
            }
            let mut first = u64::MAX;
            self.memos.retain(|_, m| {
                first = first.min(m.until);
                m.until > now_ms
            });
            if self.memos.len() >= CAPACITY {
                self.full_until.store(first, Ordering::Relaxed);
                return;
            }
        }
        let until = now_ms.saturating_add(self.ttl_ms);
        self.memos
            .insert(self.hash(key), Memo { until, overflowed });
    }

    /// Whether `key` is remembered as not storable at `now_ms`.
    pub fn holds(&self, key: &str, now_ms: u64) -> bool {
        self.memo(key, now_ms).is_some()
    }

    fn memo(&self, key: &str, now_ms: u64) -> Option<Memo> {
        if self.memos.is_empty() {
            return None;
        }
        let h = self.hash(key);
        match self.memos.get(&h).map(|m| *m) {
            Some(m) if m.until > now_ms => Some(m),
            Some(_) => {
                self.memos.remove_if(&h, |_, m| m.until <= now_ms);
                None
            }
            None => None,
        }
    }

    /// `key` was stored: forget it.
    pub fn forget(&self, key: &str) {
        if !self.memos.is_empty() {
            self.memos.remove(&self.hash(key));
        }
    }

    /// Keys remembered (expired ones included until swept).
    pub fn len(&self) -> usize {
        self.memos.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.memos.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_origins_own_reasons_are_remembered() {
        assert!(remembers(NoStore::Private, 200));
        assert!(remembers(NoStore::TooLarge, 200));
        assert!(remembers(NoStore::SetCookie, 404));
        assert!(!remembers(NoStore::Private, 503), "errors pass");
        assert!(
            !remembers(NoStore::Authorization, 200),
            "this request's own"
        );
        assert!(!remembers(NoStore::Status, 403));
        assert!(!remembers(NoStore::Partial, 206));
    }

    #[test]
    fn entries_expire_and_a_store_forgets_them() {
        let m = HitForMiss::new(Duration::from_secs(10));
        m.remember("a", 1_000);
        assert!(m.holds("a", 1_000));
        assert!(m.holds("a", 10_999));
        assert!(!m.holds("a", 11_000), "expired");
        assert!(m.is_empty(), "an expired entry is removed when seen");
        m.remember("b", 0);
        m.forget("b");
        assert!(!m.holds("b", 1));
        assert!(!m.holds("c", 1));
    }

    #[test]
    fn an_overflow_is_remembered_as_such() {
        let m = HitForMiss::new(Duration::from_secs(10));
        m.remember("private", 0);
        m.remember_overflow("grew", 0);
        assert!(m.holds("grew", 1) && m.overflowed("grew", 1));
        assert!(m.holds("private", 1) && !m.overflowed("private", 1));
        assert!(!m.overflowed("grew", 10_000), "expired");
    }

    #[test]
    fn off_with_a_zero_duration() {
        let m = HitForMiss::new(Duration::ZERO);
        m.remember("a", 0);
        assert!(!m.holds("a", 0));
    }

    #[test]
    fn bounded_expired_entries_are_swept_first() {
        let m = HitForMiss::new(Duration::from_millis(5));
        for i in 0..CAPACITY {
            m.remember(&i.to_string(), 0);
        }
        assert_eq!(m.len(), CAPACITY);
        m.remember("still-full", 1);
        assert!(!m.holds("still-full", 1), "full of live entries: not added");
        m.remember("later", 10);
        assert!(m.holds("later", 10), "expired entries were swept");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn a_full_memo_is_not_scanned_again_before_an_entry_expires() {
        // Full of live entries (a site with more private URLs than CAPACITY in a TTL): each
        // further unstorable answer must not sweep all of them again (under every shard's lock).
        let m = HitForMiss::new(Duration::from_secs(120));
        for i in 0..CAPACITY {
            m.remember(&i.to_string(), 0);
        }
        let t = std::time::Instant::now();
        for i in 0..2_000 {
            m.remember(&format!("more-{i}"), 1 + i);
        }
        let took = t.elapsed();
        assert!(
            took < Duration::from_millis(500),
            "2000 answers on a full memo took {took:?}"
        );
        assert!(!m.holds("more-0", 2_001), "full: not added");
        m.remember("after", 120_000);
        assert!(m.holds("after", 120_000), "swept once the entries expired");
        assert_eq!(m.len(), 1);
    }
}
