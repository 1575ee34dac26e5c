//! Keeps the purge index bounded by what the cache holds. foyer does not report evictions
//! (from the disk tier in particular), so the index is collected against the cache instead:
//! every [`CollectOptions::interval`] the collector takes the next [`CollectOptions::batch`]
//! indexed keys (in host/URL order, wrapping around) and asks the store whether each is still
//! there (memory, or the disk tier's index: `HybridCache::contains`, no I/O). A key found
//! missing becomes a suspect; a suspect still missing on the collector's next visit is
//! forgotten (written to the log as a `Forget`). The two visits, at least one interval apart,
//! keep a key whose object is being inserted right now (the index is told first) from being
//! dropped. A false "present" (foyer's disk index works on hashes) only keeps an entry longer.
//!
//! Cost: `batch` lookups per interval (20,000 per second by default: a full pass over 10
//! million keys in about 8 minutes); memory: the suspects of one batch.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use super::Index;

/// Collector settings.
#[derive(Debug, Clone, Copy)]
pub struct CollectOptions {
    /// Time between batches. Default 1 s.
    pub interval: Duration,
    /// Keys checked per batch. Default 20,000.
    pub batch: usize,
}

impl Default for CollectOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            batch: 20_000,
        }
    }
}

/// The collector's position and its suspects.
#[derive(Debug, Default)]
pub struct Collector {
    cursor: Option<(String, String)>,
    suspects: HashSet<String>,
}

impl Collector {
    /// One batch: check up to `batch` keys after the cursor with `present`, forget suspects
    /// still absent, remember new ones. Returns how many keys were forgotten.
    pub fn step(&mut self, index: &Index, batch: usize, present: impl Fn(&str) -> bool) -> usize {
        let (keys, next) = index.scan(self.cursor.as_ref(), batch.max(1));
        self.cursor = next;
        let mut forgotten = 0;
        for k in keys {
            if present(&k) {
                self.suspects.remove(&k);
            } else if self.suspects.remove(&k) {
                index.forget(&k);
                forgotten += 1;
            } else {
                self.suspects.insert(k);
            }
        }
        // A suspect the index no longer holds (purged meanwhile) is not a suspect any more.
        if self.cursor.is_none() {
            self.suspects.retain(|k| index.contains(k));
        }
        forgotten
    }
}

/// Run the collector on its own thread until `stop` is cancelled, checking keys with
/// `present` (the store's `contains`).
pub fn spawn(
    index: Arc<Index>,
    present: impl Fn(&str) -> bool + Send + 'static,
    opts: CollectOptions,
    stop: cdn_shared::shutdown::Shutdown,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("purge-index-gc".into())
        .spawn(move || {
            let mut c = Collector::default();
            while !stop.is_cancelled() {
                std::thread::sleep(opts.interval);
                let n = c.step(&index, opts.batch, &present);
                if n > 0 {
                    tracing::debug!(forgotten = n, left = index.len(), "purge index collected");
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    #[test]
    fn scan_walks_every_key_in_batches() {
        let idx = Index::in_memory();
        for h in ["b.test", "a.test"] {
            for i in 0..25 {
                idx.record(&format!("k:{h}:{i}"), &format!("{h}/p/{i:02}"), &[]);
            }
        }
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (keys, next) = idx.scan(cursor.as_ref(), 7);
            assert!(keys.len() <= 7);
            seen.extend(keys);
            match next {
                None => break,
                c => cursor = c,
            }
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn keys_leave_after_two_absent_visits_only() {
        let idx = Index::in_memory();
        for i in 0..10 {
            idx.record(&format!("k{i}"), &format!("h.test/{i}"), &[]);
        }
        let cache: Mutex<HashSet<String>> = Mutex::new((0..10).map(|i| format!("k{i}")).collect());
        let present = |k: &str| cache.lock().contains(k);
        let mut c = Collector::default();
        assert_eq!(c.step(&idx, 100, present), 0);
        // Evicted from the cache: suspect on the next visit, forgotten on the one after.
        for i in 0..5 {
            cache.lock().remove(&format!("k{i}"));
        }
        // k5 is "being inserted": absent once, present on the next visit.
        cache.lock().remove("k5");
        assert_eq!(c.step(&idx, 100, present), 0);
        assert_eq!(idx.len(), 10);
        cache.lock().insert("k5".into());
        assert_eq!(c.step(&idx, 100, present), 5);
        assert_eq!(idx.len(), 5);
        assert!(idx.contains("k5"));
        assert!(!idx.contains("k0"));
        assert!(idx.keys_for_url("h.test/0").is_empty());
        // Nothing more to do while the cache holds the rest.
        assert_eq!(c.step(&idx, 100, present), 0);
    }

    #[test]
    fn the_index_stays_bounded_by_the_cache_under_a_long_tail() {
        // A cache of 1,000 objects under a tail of unique keys: the index follows it.
        let idx = Index::in_memory();
        let cache: Mutex<std::collections::VecDeque<String>> = Mutex::default();
        let mut c = Collector::default();
        for i in 0..50_000 {
            let k = format!("https://h.test/tail/{i}");
            idx.record(&k, &format!("h.test/tail/{i}"), &[]);
            let mut q = cache.lock();
            q.push_back(k);
            if q.len() > 1_000 {
                q.pop_front();
            }
            drop(q);
            if i % 500 == 0 {
                c.step(&idx, 2_000, |k| cache.lock().contains(&k.to_string()));
            }
        }
        for _ in 0..100 {
            c.step(&idx, 2_000, |k| cache.lock().contains(&k.to_string()));
        }
        assert!(idx.len() <= 1_000 + 2_000, "index holds {} keys", idx.len());
    }

    #[test]
    fn remembered_purges_name_unindexed_objects_stored_before_them() {
        let idx = Index::in_memory();
        idx.note_purge(
            1_000,
            &["http://h.test/a?x=1".into()],
            &["h.test/dir/".into()],
            &["t1".into()],
        );
        assert!(idx.purged_since("h.test/a?x=1", &[], 999));
        assert!(
            !idx.purged_since("h.test/a?x=1", &[], 1_001),
            "stored after the purge"
        );
        assert!(idx.purged_since("h.test/dir/sub/f", &[], 10));
        assert!(!idx.purged_since("h.test/other", &[], 10));
        assert!(idx.purged_since("h.test/other", &["t1".into()], 10));
    }
}
