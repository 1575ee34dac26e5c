//! The purge request body: the edge's `POST /api/v1/purge` contract, which the router's
//! `POST /api/v1/purge` accepts and fans out to every edge unchanged.

use serde::{Deserialize, Serialize};

/// `POST /api/v1/purge` body (router and edge).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Exact URLs (`http(s)://host/path?query` or `host/path?query`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes (`host/path-prefix`; a bare `host` = the whole host).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Surrogate keys / cache tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mark stale instead of deleting.
    #[serde(default)]
    pub soft: bool,
}

impl PurgeRequest {
    /// No selector at all (the APIs refuse it with 400).
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty() && self.prefixes.is_empty() && self.tags.is_empty()
    }

    /// At least one selector, every URL and prefix a host/path URL ([`normalize_url`]), no
    /// empty tag. The message names the field and the value.
    pub fn validate(&self) -> Result<(), String> {
        if self.is_empty() {
            return Err("at least one of `urls`, `prefixes`, `tags` must be non-empty".into());
        }
        for (field, list) in [("urls", &self.urls), ("prefixes", &self.prefixes)] {
            for u in list {
                if normalize_url(u).is_none() {
                    return Err(format!("`{field}`: `{u}` is not a host/path URL"));
                }
            }
        }
        if self.tags.iter().any(|t| t.trim().is_empty()) {
            return Err("`tags`: empty tag".into());
        }
        Ok(())
    }
}

/// Normalise `http(s)://host[:port]/path?query` or `host[:port]/path?query` to
/// `host/path?query`: scheme and port dropped, host lower-cased (trailing dot removed), path
/// and query through [`crate::normalise::path`] / [`crate::normalise::query`] (the rules of the
/// cache key), an empty path becomes `/`, an empty query is dropped. `None` for anything else.
pub fn normalize_url(input: &str) -> Option<String> {
    let s = input.trim();
    let lower_start = s
        .get(..8)
        .map(|p| p.to_ascii_lowercase())
        .unwrap_or_default();
    let s = if lower_start.starts_with("https://") {
        &s[8..]
    } else if lower_start.starts_with("http://") {
        &s[7..]
    } else {
        s
    };
    let split = s.find(['/', '?']).unwrap_or(s.len());
    let (authority, rest) = s.split_at(split);
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty()
        || !host.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'[' | b']' | b':')
        })
    {
        return None;
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() { "/" } else { path };
    let mut out = host;
    out.push_str(&crate::normalise::path(path).ok()?);
    if let Some(q) = query.filter(|q| !q.is_empty()) {
        out.push('?');
        out.push_str(&crate::normalise::query_cow(q));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_normalise_to_host_path_query() {
        let n = |s: &str| normalize_url(s);
        assert_eq!(n("http://Example.COM/a").as_deref(), Some("example.com/a"));
        assert_eq!(
            n("https://example.com:8443/a?b=1").as_deref(),
            Some("example.com/a?b=1")
        );
        assert_eq!(n("example.com.").as_deref(), Some("example.com/"));
        assert_eq!(n("example.com?x").as_deref(), Some("example.com/?x"));
        assert_eq!(
            n("example.com/a/../b/%7e?").as_deref(),
            Some("example.com/b/~")
        );
        assert_eq!(n("HTTP://h/x").as_deref(), Some("h/x"));
        assert_eq!(n("/just/a/path"), None);
        assert_eq!(n("h/../../x"), None);
        assert_eq!(n("bad host/x"), None);
        assert_eq!(n(""), None);
    }

    #[test]
    fn validate_names_the_field_and_value() {
        let r = |urls: &[&str], prefixes: &[&str], tags: &[&str]| PurgeRequest {
            urls: urls.iter().map(|s| s.to_string()).collect(),
            prefixes: prefixes.iter().map(|s| s.to_string()).collect(),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            soft: false,
        };
        assert!(r(&[], &[], &[])
            .validate()
            .unwrap_err()
            .contains("at least one"));
        assert_eq!(r(&["http://h/a"], &["h/"], &["t"]).validate(), Ok(()));
        assert_eq!(
            r(&["not a url"], &[], &[]).validate(),
            Err("`urls`: `not a url` is not a host/path URL".into())
        );
        assert_eq!(
            r(&[], &["h/../../x"], &[]).validate(),
            Err("`prefixes`: `h/../../x` is not a host/path URL".into())
        );
        assert_eq!(
            r(&[], &[], &[" "]).validate(),
            Err("`tags`: empty tag".into())
        );
    }
}
