//! Purge: by URL, by prefix, by tag; hard (remove) or soft (mark stale).
//!
//! # For the cache (edge-cache): how to feed the index
//!
//! ```text
//! let index: Arc<purge::Index> = match &config.cache.disk_path {
//!     Some(dir) => purge::Index::open(dir, purge::IndexOptions::default())?, // persisted
//!     None => purge::Index::in_memory(),
//! };
//! // when an object (its metadata entry) is stored under `key`:
//! index.record(&key, &url, &purge::tags_from_headers(origin_response.headers()));
//! // when the store removes `key` (hard purge, unsafe-method invalidation, corrupt entry):
//! index.forget(&key);
//! ```
//! * `key` is the store's key for the object's metadata entry (one per Vary variant);
//! * `url` is `host/path?query` as the client asked for it (an absolute `http(s)://` URL is
//!   accepted too); the index normalises it exactly like purge selectors (lower-case host, port
//!   dropped, path and query through the edge's one normaliser, [`crate::normalise`]), so both
//!   sides meet;
//! * `record` is idempotent and cheap when nothing changed (refreshes after a 304 may call it
//!   again); it never blocks on disk: the log is written by its own thread.
//!
//! The store plugs in through [`PurgeTarget`] (`remove` = hard, `mark_stale` = soft: the entry
//! stays, is revalidated on the next request, and `stale-if-error` still applies).
//!
//! # Design (persistence and scale)
//!
//! The index is three in-memory maps ([`index`]): key → (url, tags); per host a sorted
//! `BTreeMap` url → keys (exact URL lookups and prefix range scans); tag → keys (dashmap).
//! Every change is appended to a CRC-framed log next to the disk cache
//! (`<cache.disk_path>/purge-index.log`, [`log`]), replayed at start (a torn tail after a crash is
//! cut off) and compacted (rewritten from the live entries, atomically by rename) when it holds
//! more than twice the live records. So the index survives restarts exactly as far as the log
//! was flushed (it is flushed whenever the writer's queue runs dry, i.e. within milliseconds),
//! and scales to millions of keys at roughly 350–400 bytes of memory per key.
//!
//! Objects evicted by foyer are not reported to the index; their entries stay until purged
//! or overwritten (a purge of an evicted key is a harmless no-op on the store).
//!
//! Tags come from the origin's `Surrogate-Key` (space-separated) and `Cache-Tag`
//! (comma-separated) response headers ([`tags_from_headers`]).

pub mod collect;
pub mod index;
pub mod log;

use std::collections::HashSet;

use actix_web::http::header::HeaderMap;
use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use index::{Index, IndexOptions};

/// The store operations a purge needs (implemented by the cache store).
pub trait PurgeTarget: Send + Sync + 'static {
    /// Hard purge: delete the object stored under `key` (all its chunks).
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
    /// Soft purge: keep the object but make it stale, so it is revalidated next time and can
    /// still be served under stale-if-error.
    fn mark_stale<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()>;
}

/// The cache store as a purge target (hard = `Store::remove`, which also tells the index;
/// soft = `Store::mark_stale`).
impl PurgeTarget for crate::cache::store::Store {
    fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move { crate::cache::store::Store::remove(self, key) })
    }
    fn mark_stale<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            crate::cache::store::Store::mark_stale(self, key).await;
        })
    }
}

/// The index is the store's index hook.
impl crate::cache::store::IndexHook for Index {
    fn record(&self, key: &str, url: &str, tags: &[String]) {
        Index::record(self, key, url, tags)
    }
    fn forget(&self, key: &str) {
        Index::forget(self, key)
    }
    fn ensure(&self, key: &str, url: &str, tags: &[String], stored_ms: u64) -> bool {
        if self.contains(key) {
            return true;
        }
        if self.purged_since(url, tags, stored_ms) {
            return false;
        }
        Index::record(self, key, url, tags);
        true
    }
    fn keys_for_url(&self, url: &str) -> Vec<String> {
        Index::keys_for_url(self, url)
    }
    fn purged_after(&self, url: &str, tags: &[String], since_ms: u64) -> bool {
        // Strictly after: a fill whose origin request went out in the purge's own millisecond
        // is taken as sent after it (a client that purges, then asks again, is that fast).
        self.purged_since(url, tags, since_ms.saturating_add(1))
    }
    fn admits_variant(&self, url: &str, key: &str, max: usize) -> bool {
        Index::admits_variant(self, url, key, max)
    }
}

pub use cdn_shared::purge::{normalize_url, PurgeRequest};

/// `POST /api/v1/purge` answer.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct PurgeResponse {
    /// Cache keys removed (hard) or marked stale (soft).
    pub purged: usize,
    /// Echo of the request's mode.
    pub soft: bool,
}

/// A purge request that cannot be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPurge(pub String);

/// At least one selector, every URL / prefix normalisable, no empty tag
/// ([`PurgeRequest::validate`], the check the router makes before it fans out).
pub fn validate(req: &PurgeRequest) -> Result<(), BadPurge> {
    req.validate().map_err(BadPurge)
}

/// Carry out a validated purge: collect the matching keys (deduplicated), then remove or mark
/// each one stale; a hard purge also forgets the keys in the index. Returns the number of keys.
pub async fn execute(req: &PurgeRequest, index: &Index, target: &dyn PurgeTarget) -> usize {
    let mode = if req.soft { "soft" } else { "hard" };
    index.note_purge(cdn_shared::unix_ms(), &req.urls, &req.prefixes, &req.tags);
    let mut keys: HashSet<String> = HashSet::new();
    for u in &req.urls {
        metrics::counter!(crate::metrics::PURGES, "kind" => "url", "mode" => mode).increment(1);
        keys.extend(index.keys_for_url(u));
    }
    for p in &req.prefixes {
        metrics::counter!(crate::metrics::PURGES, "kind" => "prefix", "mode" => mode).increment(1);
        keys.extend(index.keys_with_prefix(p));
    }
    for t in &req.tags {
        metrics::counter!(crate::metrics::PURGES, "kind" => "tag", "mode" => mode).increment(1);
        keys.extend(index.keys_for_tag(t));
    }
    for k in &keys {
        if req.soft {
            target.mark_stale(k).await;
        } else {
            target.remove(k).await;
            index.forget(k);
        }
    }
    metrics::counter!(crate::metrics::PURGED_OBJECTS, "mode" => mode).increment(keys.len() as u64);
    metrics::gauge!(crate::metrics::CACHE_OBJECTS).set(index.len() as f64);
    tracing::info!(
        purged = keys.len(),
        soft = req.soft,
        urls = req.urls.len(),
        prefixes = req.prefixes.len(),
        tags = req.tags.len(),
        "purge"
    );
    keys.len()
}

/// Tags of a response: `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated).
pub fn tags_from_headers(headers: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in headers.get_all("surrogate-key") {
        if let Ok(s) = v.to_str() {
            out.extend(s.split_ascii_whitespace().map(str::to_string));
        }
    }
    for v in headers.get_all("cache-tag") {
        if let Ok(s) = v.to_str() {
            out.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use parking_lot::Mutex;

    #[test]
    fn tags_from_both_headers() {
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("surrogate-key"),
            HeaderValue::from_static("a  b"),
        );
        h.append(
            HeaderName::from_static("cache-tag"),
            HeaderValue::from_static("c, d,,"),
        );
        assert_eq!(tags_from_headers(&h), ["a", "b", "c", "d"]);
    }

    #[test]
    fn request_validation() {
        assert!(validate(&PurgeRequest::default()).is_err());
        let ok = PurgeRequest {
            urls: vec!["h/a".into()],
            ..Default::default()
        };
        assert!(validate(&ok).is_ok());
        let bad = PurgeRequest {
            prefixes: vec!["/no-host".into()],
            ..Default::default()
        };
        assert!(validate(&bad).unwrap_err().0.contains("prefixes"));
        let parsed: Result<PurgeRequest, _> = serde_json::from_str(r#"{"urls":["h/a"],"bogus":1}"#);
        assert!(parsed.is_err());
    }

    #[derive(Default)]
    struct FakeStore {
        removed: Mutex<Vec<String>>,
        staled: Mutex<Vec<String>>,
    }

    impl PurgeTarget for FakeStore {
        fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.removed.lock().push(key.to_string()) })
        }
        fn mark_stale<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.staled.lock().push(key.to_string()) })
        }
    }

    #[tokio::test]
    async fn hard_purge_removes_and_forgets_soft_only_marks() {
        let ix = Index::in_memory();
        ix.record("k1", "h/a/1", &["t".to_string()]);
        ix.record("k2", "h/a/2", &["t".to_string()]);
        ix.record("k3", "h/b/3", &[]);
        let store = FakeStore::default();
        let soft = PurgeRequest {
            tags: vec!["t".into()],
            soft: true,
            ..Default::default()
        };
        assert_eq!(execute(&soft, &ix, &store).await, 2);
        assert_eq!(store.staled.lock().len(), 2);
        assert_eq!(ix.len(), 3, "soft purge keeps the index");
        let hard = PurgeRequest {
            urls: vec!["http://h/a/1".into()],
            prefixes: vec!["h/a/".into()],
            ..Default::default()
        };
        assert_eq!(execute(&hard, &ix, &store).await, 2, "k1 counted once");
        let mut removed = store.removed.lock().clone();
        removed.sort();
        assert_eq!(removed, ["k1", "k2"]);
        assert_eq!(ix.len(), 1);
        assert!(ix.keys_for_tag("t").is_empty());
    }
    /// Path pieces with their equivalent spellings: (canonical, spellings).
    const ATOMS: &[(&str, &[&str])] = &[
        ("a", &["a", "%61"]),
        ("b", &["b", "%62"]),
        ("~", &["~", "%7e", "%7E"]),
        ("%7C", &["|", "%7c", "%7C"]),
        ("%2F", &["%2f", "%2F"]),
        (";", &[";"]),
    ];

    /// A resource: host (0 or 1), segments of atoms (with a spelling choice), query or none.
    type Resource = (usize, Vec<Vec<(usize, usize)>>, Option<Vec<(usize, usize)>>);

    fn atoms() -> impl proptest::strategy::Strategy<Value = Vec<(usize, usize)>> {
        proptest::collection::vec((0..ATOMS.len(), 0..3usize), 1..3)
    }

    fn resource() -> impl proptest::strategy::Strategy<Value = Resource> {
        (
            0..2usize,
            proptest::collection::vec(atoms(), 1..4),
            proptest::option::of(atoms()),
        )
    }

    fn canon(a: &[(usize, usize)]) -> String {
        a.iter().map(|&(i, _)| ATOMS[i].0).collect()
    }

    fn spell(a: &[(usize, usize)]) -> String {
        a.iter()
            .map(|&(i, c)| ATOMS[i].1[c % ATOMS[i].1.len()])
            .collect()
    }

    const HOSTS: [&str; 2] = ["h.test", "g.test"];
    /// Host spellings a selector may use for `h.test`/`g.test`.
    const HOST_FORMS: [&str; 3] = ["{}", "http://{}:8080", "HTTPS://{}."];

    /// `host/path?query`: canonical, or spelled another way (dot segments included).
    fn url(r: &Resource, spelled: bool, form: usize) -> String {
        let (h, segs, q) = r;
        let mut u = if spelled {
            HOST_FORMS[form % 3].replace("{}", &HOSTS[*h].to_ascii_uppercase())
        } else {
            HOSTS[*h].to_string()
        };
        for s in segs {
            u.push('/');
            if spelled {
                u.push_str("x/%2e%2E/./");
                u.push_str(&spell(s));
            } else {
                u.push_str(&canon(s));
            }
        }
        if let Some(q) = q {
            u.push('?');
            u.push_str(&if spelled { spell(q) } else { canon(q) });
        }
        u
    }

    fn canon_segs(r: &Resource) -> Vec<String> {
        r.1.iter().map(|s| canon(s)).collect()
    }

    proptest::proptest! {
        /// A URL purge, in any spelling, names exactly the keys stored for that URL; a prefix
        /// purge names exactly the keys under it (same host, same leading segments) and no
        /// others.
        #[test]
        fn selectors_match_exactly_the_keys_they_name(
            stored in proptest::collection::vec(resource(), 1..8),
            pick in proptest::prelude::any::<proptest::sample::Index>(),
            depth in 0..4usize,
            form in 0..3usize,
        ) {
            let ix = Index::in_memory();
            for (n, r) in stored.iter().enumerate() {
                // The store records the key's URL, which is already normalised; the index
                // normalises again (a no-op), so record some in another spelling.
                ix.record(&format!("k{n}"), &url(r, n % 2 == 1, n), &[]);
            }
            let target = &stored[pick.index(stored.len())];
            let mut got = ix.keys_for_url(&url(target, true, form));
            got.sort();
            let mut want: Vec<String> = stored
                .iter()
                .enumerate()
                .filter(|(_, r)| url(r, false, 0) == url(target, false, 0))
                .map(|(n, _)| format!("k{n}"))
                .collect();
            want.sort();
            proptest::prop_assert_eq!(&got, &want);

            // Prefix: the target's host and first `depth` segments, ending in `/`.
            let depth = depth.min(target.1.len());
            let mut prefix = HOST_FORMS[form].replace("{}", HOSTS[target.0]);
            for s in &target.1[..depth] {
                prefix.push('/');
                prefix.push_str(&spell(s));
            }
            prefix.push('/');
            let lead = &canon_segs(target)[..depth];
            let mut got = ix.keys_with_prefix(&prefix);
            got.sort();
            let mut want: Vec<String> = stored
                .iter()
                .enumerate()
                .filter(|(_, r)| {
                    let segs = canon_segs(r);
                    r.0 == target.0 && segs.len() > depth && segs[..depth] == *lead
                })
                .map(|(n, _)| format!("k{n}"))
                .collect();
            want.sort();
            proptest::prop_assert_eq!(got, want, "prefix {}", prefix);
        }
    }
}
