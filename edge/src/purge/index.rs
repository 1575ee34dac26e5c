//! The in-memory purge index: key → (url, tags), url → keys (per host, sorted for prefix
//! scans), tag → keys; persisted through [`super::log`].
//!
//! Memory: each stored key costs its key and URL strings once (shared `Arc<str>`) plus about
//! 150 bytes of map overhead and 16 bytes per tag, so a million objects with ~100-byte keys and
//! URLs take roughly 350 MB... 400 MB. Lookups: by URL O(log n) within the host, by prefix
//! O(log n + matches), by tag O(matches).
//!
//! Locking: every mutation holds the key's `by_key` shard lock while it updates the other
//! maps and queues the log record, so the maps and the log agree per key; readers take the
//! secondary maps' locks only (never nested), so there is no lock-order cycle.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;

use super::log::{self, Msg, Op};
use super::normalize_url;
use cdn_shared::config::edge::QueryPolicy;

/// At most this many tags are kept per object (the rest are ignored).
pub const MAX_TAGS: usize = 128;
/// Tags longer than this are ignored.
pub const MAX_TAG_LEN: usize = 256;

#[derive(Debug, Clone)]
struct Entry {
    url: Arc<str>,
    tags: Box<[Arc<str>]>,
}

/// Options for [`Index::open`].
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// Compact the log only once it holds at least this many records (default 100 000).
    pub compact_min_records: u64,
}

impl Default for IndexOptions {
    fn default() -> Self {
        Self {
            compact_min_records: 100_000,
        }
    }
}

/// One host's URLs (sorted, for prefix ranges) → the keys stored for each.
type HostTree = BTreeMap<Arc<str>, Keys>;

/// The keys stored for one URL: almost always one (several only with Vary), kept inline.
#[derive(Debug, Clone)]
enum Keys {
    One(Arc<str>),
    Many(Vec<Arc<str>>),
}

impl Keys {
    fn iter(&self) -> std::slice::Iter<'_, Arc<str>> {
        match self {
            Keys::One(k) => std::slice::from_ref(k).iter(),
            Keys::Many(v) => v.iter(),
        }
    }

    fn add(&mut self, key: &Arc<str>) {
        if self.iter().any(|k| k == key) {
            return;
        }
        match self {
            Keys::One(k) => *self = Keys::Many(vec![k.clone(), key.clone()]),
            Keys::Many(v) => v.push(key.clone()),
        }
    }

    /// Remove `key`; true when no key is left.
    fn remove(&mut self, key: &str) -> bool {
        let last = match self {
            Keys::One(k) => return &**k == key,
            Keys::Many(v) => {
                v.retain(|k| &**k != key);
                match v.len() {
                    0 => return true,
                    1 => v[0].clone(),
                    _ => return false,
                }
            }
        };
        *self = Keys::One(last);
        false
    }
}

#[derive(Debug, Default)]
struct Maps {
    by_key: DashMap<Arc<str>, Entry>,
    /// host → (url → keys). URLs include the host so prefix ranges are plain string ranges.
    by_host: DashMap<Arc<str>, HostTree>,
    by_tag: DashMap<Arc<str>, HashSet<Arc<str>>>,
    /// Recent purge selectors, oldest first, at most [`RECENT_PURGES`] (see
    /// [`Index::purged_since`]).
    recent: parking_lot::Mutex<std::collections::VecDeque<Recent>>,
}

/// Purge selectors remembered at most (≈ 100 B each).
pub const RECENT_PURGES: usize = 10_000;

/// One remembered purge selector.
#[derive(Debug, Clone)]
struct Recent {
    at_ms: u64,
    kind: u8,
    value: String,
}

impl Recent {
    fn matches(&self, url: &str, tags: &[String]) -> bool {
        match self.kind {
            1 => url == self.value,
            2 => url.starts_with(self.value.as_str()),
            _ => tags.iter().any(|t| t.trim() == self.value),
        }
    }
}

/// The URL / prefix / tag index over stored cache keys. Cheap to share (`Arc<Index>`).
#[derive(Debug)]
pub struct Index {
    maps: Arc<Maps>,
    log: Option<mpsc::Sender<Msg>>,
    writer: Option<std::thread::JoinHandle<()>>,
    path: Option<PathBuf>,
    /// Host alias → primary host name (selectors naming an alias find the primary's keys).
    aliases: std::sync::OnceLock<std::collections::HashMap<String, String>>,
    /// Primary host name → its `query` policy when not `keep` (URL selectors are keyed as the
    /// cache keys that host's requests: sorted or dropped query).
    queries: std::sync::OnceLock<std::collections::HashMap<String, QueryPolicy>>,
}

impl Drop for Index {
    /// Stop the writer thread after it has written everything queued.
    fn drop(&mut self) {
        self.log.take();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

fn host_of(url: &str) -> &str {
    url.split('/').next().unwrap_or(url)
}

impl Maps {
    fn remember(&self, r: Recent) {
        let mut q = self.recent.lock();
        q.push_back(r);
        while q.len() > RECENT_PURGES {
            q.pop_front();
        }
    }

    fn insert_secondary(&self, key: &Arc<str>, e: &Entry) {
        let host = host_of(&e.url);
        let mut tree = match self.by_host.get_mut(host) {
            Some(t) => t,
            None => self.by_host.entry(Arc::from(host)).or_default(),
        };
        match tree.get_mut(&e.url) {
            Some(keys) => keys.add(key),
            None => {
                tree.insert(e.url.clone(), Keys::One(key.clone()));
            }
        }
        drop(tree);
        for t in e.tags.iter() {
            self.by_tag
                .entry(t.clone())
                .or_default()
                .insert(key.clone());
        }
    }

    fn remove_secondary(&self, key: &str, e: &Entry) {
        let host = host_of(&e.url);
        if let Some(mut tree) = self.by_host.get_mut(host) {
            if let Some(keys) = tree.get_mut(&e.url) {
                if keys.remove(key) {
                    tree.remove(&e.url);
                }
            }
            let empty = tree.is_empty();
            drop(tree);
            if empty {
                self.by_host.remove_if(host, |_, t| t.is_empty());
            }
        }
        for t in e.tags.iter() {
            if let Some(mut set) = self.by_tag.get_mut(t) {
                set.remove(key);
                let empty = set.is_empty();
                drop(set);
                if empty {
                    self.by_tag.remove_if(t, |_, s| s.is_empty());
                }
            }
        }
    }

    /// Apply a record; returns false when nothing changed.
    fn record(
        &self,
        key: &str,
        url: Arc<str>,
        tags: &[Arc<str>],
        log: Option<&mpsc::Sender<Msg>>,
    ) -> bool {
        // Intern tags: every object tagged `all` shares one `Arc<str>`.
        let tags = tags
            .iter()
            .map(|t| match self.by_tag.get(&**t) {
                Some(r) => r.key().clone(),
                None => t.clone(),
            })
            .collect();
        let new = Entry { url, tags };
        match self.by_key.entry(Arc::from(key)) {
            MapEntry::Occupied(mut o) => {
                if o.get().url == new.url && o.get().tags == new.tags {
                    return false;
                }
                let k = o.key().clone();
                self.remove_secondary(&k, o.get());
                self.insert_secondary(&k, &new);
                send(log, &k, &new);
                o.insert(new);
            }
            MapEntry::Vacant(v) => {
                let k = v.key().clone();
                self.insert_secondary(&k, &new);
                send(log, &k, &new);
                v.insert(new);
            }
        }
        true
    }

    fn forget(&self, key: &str, log: Option<&mpsc::Sender<Msg>>) -> bool {
        match self.by_key.entry(Arc::from(key)) {
            MapEntry::Occupied(o) => {
                self.remove_secondary(key, o.get());
                if let Some(tx) = log {
                    let _ = tx.send(Msg::Op(Op::Forget {
                        key: key.to_string(),
                    }));
                }
                o.remove();
                true
            }
            MapEntry::Vacant(_) => false,
        }
    }
}

fn send(log: Option<&mpsc::Sender<Msg>>, key: &str, e: &Entry) {
    if let Some(tx) = log {
        let _ = tx.send(Msg::Op(Op::Record {
            key: key.to_string(),
            url: e.url.to_string(),
            tags: e.tags.iter().map(|t| t.to_string()).collect(),
        }));
    }
}

impl log::Snapshot for Maps {
    fn live(&self) -> usize {
        self.by_key.len()
    }
    fn records(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = self
            .by_key
            .iter()
            .map(|r| Op::Record {
                key: r.key().to_string(),
                url: r.value().url.to_string(),
                tags: r.value().tags.iter().map(|t| t.to_string()).collect(),
            })
            .collect();
        ops.extend(self.recent.lock().iter().map(|r| Op::Purge {
            at_ms: r.at_ms,
            kind: r.kind,
            value: r.value.clone(),
        }));
        ops
    }
}

fn clean_tags(tags: &[String]) -> Box<[Arc<str>]> {
    let mut out: Vec<Arc<str>> = Vec::new();
    for t in tags {
        let t = t.trim();
        if t.is_empty() || t.len() > MAX_TAG_LEN || out.iter().any(|o| &**o == t) {
            continue;
        }
        out.push(Arc::from(t));
        if out.len() == MAX_TAGS {
            break;
        }
    }
    out.sort();
    out.into_boxed_slice()
}

impl Index {
    /// A memory-only index (nothing survives a restart; for a cache without a disk tier).
    pub fn in_memory() -> Arc<Self> {
        Arc::new(Self {
            maps: Arc::default(),
            log: None,
            writer: None,
            path: None,
            aliases: std::sync::OnceLock::new(),
            queries: std::sync::OnceLock::new(),
        })
    }

    /// Open the index persisted in `dir` (`dir/purge-index.log`): replay the log, compact it
    /// when it is mostly garbage, and start the writer thread.
    pub fn open(dir: &Path, opts: IndexOptions) -> std::io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("purge-index.log");
        let ops = log::replay(&path)?;
        let replayed = ops.len() as u64;
        let maps = Arc::new(Maps::default());
        for op in ops {
            match op {
                Op::Record { key, url, tags } => {
                    maps.record(&key, Arc::from(url.as_str()), &clean_tags(&tags), None);
                }
                Op::Forget { key } => {
                    maps.forget(&key, None);
                }
                Op::Purge { at_ms, kind, value } => {
                    maps.remember(Recent { at_ms, kind, value });
                }
            }
        }
        let live = maps.by_key.len() as u64;
        let mut file_records = replayed;
        if replayed >= opts.compact_min_records && replayed > 2 * live {
            file_records = log::rewrite(&path, log::Snapshot::records(&*maps).into_iter())?;
        }
        tracing::info!(path = %path.display(), objects = live, log_records = replayed, "purge index loaded");
        let (tx, rx) = mpsc::channel();
        let snap: Arc<dyn log::Snapshot> = maps.clone();
        let wpath = path.clone();
        let min = opts.compact_min_records;
        let writer = std::thread::Builder::new()
            .name("purge-index-log".into())
            .spawn(move || log::writer_loop(wpath, file_records, rx, snap, min))?;
        Ok(Arc::new(Self {
            maps,
            log: Some(tx),
            writer: Some(writer),
            path: Some(path),
            aliases: std::sync::OnceLock::new(),
            queries: std::sync::OnceLock::new(),
        }))
    }

    /// The log file, when persisted.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Remember that cache key `key` holds `url` (`host/path?query`, or an absolute URL;
    /// normalised the same way purge selectors are) tagged with `tags`. Idempotent: a repeat
    /// with the same URL and tags writes nothing. A URL that cannot be normalised is skipped.
    pub fn record(&self, key: &str, url: &str, tags: &[String]) {
        let Some(norm) = normalize_url(url) else {
            tracing::debug!(key, url, "purge index: URL not indexable");
            return;
        };
        self.maps.record(
            key,
            Arc::from(norm.as_str()),
            &clean_tags(tags),
            self.log.as_ref(),
        );
    }

    /// Forget `key` (it was removed from the store). Unknown keys are ignored.
    pub fn forget(&self, key: &str) {
        self.maps.forget(key, self.log.as_ref());
    }

    /// Number of indexed keys.
    pub fn len(&self) -> usize {
        self.maps.by_key.len()
    }

    /// True when nothing is indexed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Declare host aliases (`alias → primary name`, lower case), once: the cache stores
    /// objects under the primary name, so a purge selector naming an alias is rewritten to it.
    pub fn set_aliases(&self, aliases: impl IntoIterator<Item = (String, String)>) {
        let map = aliases
            .into_iter()
            .map(|(a, n)| (a.to_ascii_lowercase(), n.to_ascii_lowercase()))
            .collect();
        let _ = self.aliases.set(map);
    }

    /// Declare the hosts whose `query` policy is not `keep` (primary name, lower case), once.
    pub fn set_query_policies(&self, policies: impl IntoIterator<Item = (String, QueryPolicy)>) {
        let map = policies
            .into_iter()
            .filter(|(_, p)| *p != QueryPolicy::Keep)
            .map(|(h, p)| (h.to_ascii_lowercase(), p))
            .collect();
        let _ = self.queries.set(map);
    }

    /// Normalise a selector and map an alias host to its primary name.
    fn selector(&self, input: &str) -> Option<String> {
        let norm = normalize_url(input)?;
        let host = host_of(&norm);
        match self.aliases.get().and_then(|m| m.get(host)) {
            Some(primary) => Some(format!("{primary}{}", &norm[host.len()..])),
            None => Some(norm),
        }
    }

    /// A URL selector ([`Index::selector`]) with its host's query policy applied, as the cache
    /// keyed that host's requests: `?b=2&a=1` is found as `?a=1&b=2` (`sort`), `?v=7` as no
    /// query (`drop`).
    fn url_selector(&self, input: &str) -> Option<String> {
        let norm = self.selector(input)?;
        let Some(&policy) = self.queries.get().and_then(|m| m.get(host_of(&norm))) else {
            return Some(norm);
        };
        let (base, query) = norm.split_once('?').unwrap_or((&norm, ""));
        Some(crate::cache::key::url_of(
            "",
            base,
            &crate::cache::key::normalise_query(query, policy),
        ))
    }

    /// May `key` be stored for `url` when at most `max` keys (Vary variants) per URL are: yes
    /// when it is already one of them or there are fewer than `max`. Encoded copies of the
    /// variants (`compress`) are indexed under the same URL but do not count. One map lookup
    /// and a scan of the URL's keys.
    pub fn admits_variant(&self, url: &str, key: &str, max: usize) -> bool {
        let Some(norm) = normalize_url(url) else {
            return true;
        };
        let Some(tree) = self.maps.by_host.get(host_of(&norm)) else {
            return true;
        };
        match tree.get(norm.as_str()) {
            None => true,
            Some(ks) => {
                ks.iter().any(|k| &**k == key)
                    || ks
                        .iter()
                        .filter(|k| !k.contains(crate::cache::key::ENCODED_COPY))
                        .count()
                        < max
            }
        }
    }

    /// Keys stored for exactly this URL (all Vary variants).
    pub fn keys_for_url(&self, url: &str) -> Vec<String> {
        let Some(norm) = self.url_selector(url) else {
            return Vec::new();
        };
        self.maps
            .by_host
            .get(host_of(&norm))
            .and_then(|tree| {
                tree.get(norm.as_str())
                    .map(|ks| ks.iter().map(|k| k.to_string()).collect())
            })
            .unwrap_or_default()
    }

    /// Keys whose URL starts with `prefix` (`host/path-prefix`; the host must match exactly).
    pub fn keys_with_prefix(&self, prefix: &str) -> Vec<String> {
        let Some(norm) = self.selector(prefix) else {
            return Vec::new();
        };
        let Some(tree) = self.maps.by_host.get(host_of(&norm)) else {
            return Vec::new();
        };
        tree.range::<str, _>((
            std::ops::Bound::Included(norm.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .take_while(|(u, _)| u.starts_with(norm.as_str()))
        .flat_map(|(_, ks)| ks.iter().map(|k| k.to_string()))
        .collect()
    }

    /// Keys tagged `tag`.
    pub fn keys_for_tag(&self, tag: &str) -> Vec<String> {
        self.maps
            .by_tag
            .get(tag.trim())
            .map(|s| s.iter().map(|k| k.to_string()).collect())
            .unwrap_or_default()
    }

    /// Up to `max` indexed keys after `cursor` (`(host, url)`, exclusive; `None` = from the
    /// start), in (host, url) order, and the cursor to continue from (`None` at the end). The
    /// collector ([`super::collect`]) walks the index with it, a batch at a time.
    pub fn scan(
        &self,
        cursor: Option<&(String, String)>,
        max: usize,
    ) -> (Vec<String>, Option<(String, String)>) {
        use std::ops::Bound;
        let mut hosts: Vec<Arc<str>> = self.maps.by_host.iter().map(|e| e.key().clone()).collect();
        hosts.sort();
        let start = match cursor {
            None => 0,
            Some((h, _)) => hosts.partition_point(|x| &**x < h.as_str()),
        };
        let mut out = Vec::new();
        for host in &hosts[start..] {
            let Some(tree) = self.maps.by_host.get(host) else {
                continue;
            };
            let lower = match cursor {
                Some((h, u)) if h.as_str() == &**host => Bound::Excluded(u.as_str()),
                _ => Bound::Unbounded,
            };
            for (url, ks) in tree.range::<str, _>((lower, Bound::Unbounded)) {
                out.extend(ks.iter().map(|k| k.to_string()));
                if out.len() >= max {
                    return (out, Some((host.to_string(), url.to_string())));
                }
            }
        }
        (out, None)
    }

    /// Whether `key` is indexed.
    pub fn contains(&self, key: &str) -> bool {
        self.maps.by_key.contains_key(key)
    }

    /// Remember the selectors of a purge applied at `at_ms` (persisted in the log; the last
    /// [`RECENT_PURGES`] are kept), for [`Index::purged_since`].
    pub fn note_purge(&self, at_ms: u64, urls: &[String], prefixes: &[String], tags: &[String]) {
        let sel = |kind: u8, v: &String| match kind {
            1 => self.url_selector(v),
            3 => Some(v.trim().to_string()),
            _ => self.selector(v),
        };
        let all = urls
            .iter()
            .map(|u| (1u8, u))
            .chain(prefixes.iter().map(|p| (2u8, p)))
            .chain(tags.iter().map(|t| (3u8, t)));
        for (kind, v) in all {
            let Some(value) = sel(kind, v) else { continue };
            if let Some(tx) = &self.log {
                let _ = tx.send(Msg::Op(Op::Purge {
                    at_ms,
                    kind,
                    value: value.clone(),
                }));
            }
            self.maps.remember(Recent { at_ms, kind, value });
        }
    }

    /// Whether a remembered purge applied after `stored_ms` names `url` (normalised form, as
    /// stored in an object's meta) or one of `tags`: an object the index did not know (its
    /// record lost in a crash) that such a purge would have removed.
    pub fn purged_since(&self, url: &str, tags: &[String], stored_ms: u64) -> bool {
        let Some(norm) = normalize_url(url) else {
            return false;
        };
        self.maps
            .recent
            .lock()
            .iter()
            .any(|r| r.at_ms >= stored_ms && r.matches(&norm, tags))
    }

    /// Flush and fsync the log (shutdown, tests). Returns once the writer has caught up.
    pub fn sync(&self) {
        if let Some(tx) = &self.log {
            let (ack, done) = mpsc::channel();
            if tx.send(Msg::Sync(ack)).is_ok() {
                let _ = done.recv_timeout(std::time::Duration::from_secs(10));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn lookups_by_url_prefix_and_tag() {
        let ix = Index::in_memory();
        ix.record("k1", "example.com/a/1.js", &tags(&["js", "all"]));
        ix.record("k1v", "example.com/a/1.js", &tags(&["js"])); // a Vary variant
        ix.record("k2", "example.com/a/2.css?x=1", &tags(&["all"]));
        ix.record("k3", "example.com/b/3", &[]);
        ix.record("k4", "other.org/a/1.js", &tags(&["all"]));
        assert_eq!(ix.len(), 5);
        assert_eq!(
            sorted(ix.keys_for_url("http://example.com/a/1.js")),
            ["k1", "k1v"]
        );
        assert_eq!(
            sorted(ix.keys_for_url("EXAMPLE.com:8080/a/./1.js")),
            ["k1", "k1v"]
        );
        assert!(
            ix.keys_for_url("example.com/a/2.css").is_empty(),
            "query is part of the URL"
        );
        assert_eq!(ix.keys_for_url("example.com/a/2.css?x=1"), ["k2"]);
        assert_eq!(
            sorted(ix.keys_with_prefix("example.com/a/")),
            ["k1", "k1v", "k2"]
        );
        assert_eq!(
            sorted(ix.keys_with_prefix("https://example.com/a")),
            ["k1", "k1v", "k2"]
        );
        assert_eq!(sorted(ix.keys_with_prefix("example.com")).len(), 4);
        assert!(ix.keys_with_prefix("example.com/c").is_empty());
        assert_eq!(sorted(ix.keys_for_tag("all")), ["k1", "k2", "k4"]);
        assert_eq!(sorted(ix.keys_for_tag("js")), ["k1", "k1v"]);
        assert!(ix.keys_for_tag("none").is_empty());
    }

    #[test]
    fn variants_are_admitted_up_to_the_cap() {
        let ix = Index::in_memory();
        for i in 0..3 {
            let k = format!("k{i}");
            assert!(ix.admits_variant("example.com/v", &k, 3));
            ix.record(&k, "example.com/v", &[]);
        }
        assert!(!ix.admits_variant("example.com/v", "k3", 3));
        assert!(
            ix.admits_variant("example.com/v", "k1", 3),
            "a stored variant is refreshed"
        );
        assert!(ix.admits_variant("example.com/other", "k3", 3));
        ix.forget("k0");
        assert!(ix.admits_variant("example.com/v", "k3", 3));
    }

    #[test]
    fn encoded_copies_do_not_count_as_variants() {
        let ix = Index::in_memory();
        ix.record("k0", "example.com/v", &[]);
        for c in ["br:0000aaaa", "gzip:0000aaaa", "br:0000bbbb"] {
            ix.record(
                &format!("k0{}{c}", crate::cache::key::ENCODED_COPY),
                "example.com/v",
                &[],
            );
        }
        assert!(ix.admits_variant("example.com/v", "k1", 2));
        ix.record("k1", "example.com/v", &[]);
        assert!(!ix.admits_variant("example.com/v", "k2", 2));
        // Still found (and purged) with the URL.
        assert_eq!(ix.keys_for_url("example.com/v").len(), 5);
    }

    #[test]
    fn url_selectors_follow_the_hosts_query_policy() {
        let ix = Index::in_memory();
        ix.set_query_policies([
            ("Sorted.test".to_string(), QueryPolicy::Sort),
            ("dropped.test".to_string(), QueryPolicy::Drop),
            ("kept.test".to_string(), QueryPolicy::Keep),
        ]);
        ix.set_aliases([("alias.test".to_string(), "sorted.test".to_string())]);
        ix.record("s", "sorted.test/p?a=1&b=2", &["t".into()]);
        ix.record("d", "dropped.test/p", &[]);
        ix.record("k", "kept.test/p?b=2&a=1", &[]);
        assert_eq!(ix.keys_for_url("sorted.test/p?b=2&a=1"), ["s"]);
        assert_eq!(ix.keys_for_url("http://alias.test/p?b=2&a=1"), ["s"]);
        assert_eq!(ix.keys_for_url("http://dropped.test/p?v=7"), ["d"]);
        assert_eq!(ix.keys_for_url("kept.test/p?b=2&a=1"), ["k"]);
        assert!(ix.keys_for_url("kept.test/p?a=1&b=2").is_empty());
        // Remembered purges match the stored (policy-applied) URL too.
        ix.note_purge(1_000, &["dropped.test/p?x=1".to_string()], &[], &[]);
        assert!(ix.purged_since("dropped.test/p", &[], 500));
        ix.note_purge(1_000, &["sorted.test/p?b=2&a=1".to_string()], &[], &[]);
        assert!(ix.purged_since("sorted.test/p?a=1&b=2", &[], 500));
    }

    #[test]
    fn vary_variants_come_and_go_one_by_one() {
        let ix = Index::in_memory();
        for k in ["v1", "v2", "v3"] {
            ix.record(k, "h/a", &[]);
        }
        assert_eq!(sorted(ix.keys_for_url("h/a")), ["v1", "v2", "v3"]);
        ix.forget("v2");
        assert_eq!(sorted(ix.keys_for_url("h/a")), ["v1", "v3"]);
        ix.forget("v1");
        assert_eq!(ix.keys_for_url("h/a"), ["v3"]);
        ix.record("v4", "h/a", &[]);
        assert_eq!(sorted(ix.keys_for_url("h/a")), ["v3", "v4"]);
        ix.forget("v3");
        ix.forget("v4");
        assert!(ix.keys_for_url("h/a").is_empty());
        assert!(ix.maps.by_host.is_empty());
    }

    #[test]
    fn alias_selectors_find_the_primary_hosts_keys() {
        let ix = Index::in_memory();
        ix.set_aliases([("Alias.test".to_string(), "example.test".to_string())]);
        ix.record("k", "example.test/a/1", &[]);
        assert_eq!(ix.keys_for_url("http://alias.test/a/1"), ["k"]);
        assert_eq!(ix.keys_with_prefix("ALIAS.test/a"), ["k"]);
        assert_eq!(ix.keys_for_url("example.test/a/1"), ["k"]);
        assert!(ix.keys_for_url("other.test/a/1").is_empty());
    }

    #[test]
    fn re_record_moves_and_forget_cleans_every_map() {
        let ix = Index::in_memory();
        ix.record("k", "h/a", &tags(&["t1"]));
        ix.record("k", "h/b", &tags(&["t2"]));
        assert!(ix.keys_for_url("h/a").is_empty());
        assert!(ix.keys_for_tag("t1").is_empty());
        assert_eq!(ix.keys_for_url("h/b"), ["k"]);
        assert_eq!(ix.keys_for_tag("t2"), ["k"]);
        ix.forget("k");
        ix.forget("k");
        assert!(ix.is_empty());
        assert!(ix.keys_for_tag("t2").is_empty());
        assert!(ix.keys_with_prefix("h/").is_empty());
        assert!(ix.maps.by_host.is_empty() && ix.maps.by_tag.is_empty());
    }

    #[test]
    fn tags_are_bounded_and_deduplicated() {
        let many: Vec<String> = (0..500).map(|i| format!("t{i}")).collect();
        let ix = Index::in_memory();
        ix.record("k", "h/x", &many);
        assert_eq!(ix.maps.by_key.get("k").unwrap().tags.len(), MAX_TAGS);
        ix.record("k2", "h/y", &tags(&["a", "a", " ", &"z".repeat(300)]));
        assert_eq!(ix.maps.by_key.get("k2").unwrap().tags.len(), 1);
    }

    #[test]
    fn survives_reopen_and_compacts() {
        let dir = tempfile::tempdir().unwrap();
        let opts = IndexOptions {
            compact_min_records: 10,
        };
        {
            let ix = Index::open(dir.path(), opts.clone()).unwrap();
            for i in 0..50 {
                ix.record(&format!("k{i}"), &format!("h/p/{i}"), &tags(&["all"]));
            }
            for i in 0..40 {
                ix.forget(&format!("k{i}"));
            }
            ix.sync();
        }
        let ix = Index::open(dir.path(), opts).unwrap();
        assert_eq!(ix.len(), 10);
        assert_eq!(ix.keys_for_tag("all").len(), 10);
        assert_eq!(ix.keys_for_url("h/p/45"), ["k45"]);
        // 90 records for 10 live keys: compacted at open (or by the writer).
        let records = log::replay(ix.path().unwrap()).unwrap().len();
        assert!(records <= 20, "log compacted, {records} records left");
        // Appends keep working after compaction.
        ix.record("new", "h/new", &[]);
        ix.sync();
        let ops = log::replay(ix.path().unwrap()).unwrap();
        assert!(ops
            .iter()
            .any(|o| matches!(o, Op::Record { key, .. } if key == "new")));
    }

    #[test]
    fn repeated_record_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ix = Index::open(dir.path(), IndexOptions::default()).unwrap();
        for _ in 0..100 {
            ix.record("k", "h/a", &tags(&["t"]));
        }
        ix.sync();
        assert_eq!(log::replay(ix.path().unwrap()).unwrap().len(), 1);
    }

    #[test]
    fn concurrent_records_and_forgets_stay_consistent() {
        let ix = Index::in_memory();
        std::thread::scope(|s| {
            for t in 0..4 {
                let ix = &ix;
                s.spawn(move || {
                    for i in 0..2000 {
                        let k = format!("k{}", i % 100);
                        if (i + t) % 3 == 0 {
                            ix.forget(&k);
                        } else {
                            ix.record(&k, &format!("h/{}", i % 7), &[format!("t{}", i % 5)]);
                        }
                    }
                });
            }
        });
        // Every key in a secondary map is live with that URL / tag.
        for r in ix.maps.by_key.iter() {
            assert!(ix
                .keys_for_url(&r.value().url)
                .contains(&r.key().to_string()));
        }
        let total: usize = ix
            .maps
            .by_host
            .iter()
            .map(|t| t.values().map(|v| v.iter().count()).sum::<usize>())
            .sum();
        assert_eq!(total, ix.len());
        let tagged: usize = ix.maps.by_tag.iter().map(|s| s.len()).sum();
        assert_eq!(tagged, ix.len());
    }
}
