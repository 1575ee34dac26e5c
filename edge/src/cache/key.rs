//! Cache keys: `scheme://host/path?query` with the path normalised (dot segments removed,
//! percent-encoding of unreserved characters decoded, hex upper-cased), the query kept,
//! dropped or sorted per host, and configured request headers appended. The same normalised
//! path is what the origin is asked for, so the key always names the bytes that were fetched.
//!
//! Vary: a primary key can hold a variant list; the variant key appends the request's values
//! of the listed headers ([`variant_key`]).

use actix_web::http::header::HeaderMap;
use cdn_shared::config::edge::QueryPolicy;

/// Normalise a request path: percent-decoding of unreserved characters, upper-case hex in
/// the remaining escapes, bytes outside ASCII percent-encoded, `.`/`..` segments resolved
/// (never above `/`), duplicate `/` kept. Returns `None` for a path that is not origin-form
/// (does not start with `/`) or holds an invalid escape.
pub fn normalise_path(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let b = path.as_bytes();
    // Fast path (the common case on the hit path): nothing to rewrite.
    if !b.iter().any(|&c| c == b'%' || c >= 0x80) && !path.contains("/.") {
        return Some(path.to_string());
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out: Vec<u8> = Vec::with_capacity(path.len() + 8);
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |x: u8| (x as char).to_digit(16);
            let (h, l) = (hex(*b.get(i + 1)?)?, hex(*b.get(i + 2)?)?);
            let v = (h * 16 + l) as u8;
            if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                out.push(v);
            } else {
                out.extend_from_slice(&[b'%', HEX[(v >> 4) as usize], HEX[(v & 15) as usize]]);
            }
            i += 3;
        } else {
            if c >= 0x80 {
                out.extend_from_slice(&[b'%', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
            } else {
                out.push(c);
            }
            i += 1;
        }
    }
    // Only ASCII was written.
    let out = String::from_utf8(out).ok()?;
    if !out.contains("/.") {
        return Some(out);
    }
    // RFC 3986 §5.2.4 remove_dot_segments, clamped at the root.
    let mut segs: Vec<&str> = Vec::new();
    let parts: Vec<&str> = out[1..].split('/').collect();
    let last = parts.len() - 1;
    let mut trailing = false;
    for (n, seg) in parts.iter().enumerate() {
        match *seg {
            "." => trailing = n == last,
            ".." => {
                segs.pop();
                trailing = n == last;
            }
            s => {
                segs.push(s);
                trailing = false;
            }
        }
    }
    let mut p = String::with_capacity(out.len());
    for s in &segs {
        p.push('/');
        p.push_str(s);
    }
    if trailing || p.is_empty() {
        p.push('/');
    }
    Some(p)
}

/// Apply the host's query policy; the result has no leading `?`.
pub fn normalise_query(query: &str, policy: QueryPolicy) -> String {
    match policy {
        QueryPolicy::Drop => String::new(),
        QueryPolicy::Keep => query.to_string(),
        QueryPolicy::Sort => {
            let mut parts: Vec<&str> = query.split('&').filter(|p| !p.is_empty()).collect();
            parts.sort_unstable();
            parts.join("&")
        }
    }
}

/// Host + path + query (no scheme): the "url" handed to the purge index.
pub fn url_of(host: &str, path: &str, query: &str) -> String {
    let mut u = String::with_capacity(host.len() + path.len() + query.len() + 1);
    u.push_str(host);
    u.push_str(path);
    if !query.is_empty() {
        u.push('?');
        u.push_str(query);
    }
    u
}

/// The primary key: `scheme://url` plus `\n<name>:<value>` for each configured key header.
pub fn primary_key(scheme: &str, url: &str, key_headers: &[String], req: &HeaderMap) -> String {
    let mut k = String::with_capacity(scheme.len() + 3 + url.len());
    k.push_str(scheme);
    k.push_str("://");
    k.push_str(url);
    for name in key_headers {
        k.push('\n');
        k.push_str(name);
        k.push(':');
        append_values(&mut k, req, name);
    }
    k
}

/// The key of one variant: the primary key plus the request's values of the `vary` fields
/// (already lower-cased and sorted).
pub fn variant_key(primary: &str, vary: &[String], req: &HeaderMap) -> String {
    let mut k = String::with_capacity(primary.len() + 32);
    k.push_str(primary);
    k.push_str("\n#vary");
    for name in vary {
        k.push('\n');
        k.push_str(name);
        k.push(':');
        append_values(&mut k, req, name);
    }
    k
}

/// All values of `name`, comma-joined, whitespace around commas removed.
fn append_values(k: &mut String, req: &HeaderMap, name: &str) {
    let mut first = true;
    for v in req.get_all(name) {
        for part in String::from_utf8_lossy(v.as_bytes()).split(',') {
            if !first {
                k.push(',');
            }
            first = false;
            k.push_str(part.trim());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use proptest::prelude::*;

    #[test]
    fn paths() {
        assert_eq!(normalise_path("/a/b").as_deref(), Some("/a/b"));
        assert_eq!(normalise_path("/a/./b/../c").as_deref(), Some("/a/c"));
        assert_eq!(normalise_path("/../../etc").as_deref(), Some("/etc"));
        assert_eq!(normalise_path("/a/..").as_deref(), Some("/"));
        assert_eq!(normalise_path("/a/b/.").as_deref(), Some("/a/b/"));
        assert_eq!(
            normalise_path("/%7euser/%2f%2e").as_deref(),
            Some("/~user/%2F.")
        );
        assert_eq!(normalise_path("/%2E%2E/x").as_deref(), Some("/x"));
        assert_eq!(normalise_path("/%zz"), None);
        assert_eq!(normalise_path("/%4"), None);
        assert_eq!(normalise_path("a/b"), None);
        // Non-ASCII bytes are percent-encoded, the same as their escaped spelling.
        assert_eq!(normalise_path("/caf\u{e9}").as_deref(), Some("/caf%C3%A9"));
        assert_eq!(normalise_path("/caf%c3%a9").as_deref(), Some("/caf%C3%A9"));
    }

    #[test]
    fn queries() {
        assert_eq!(normalise_query("b=2&a=1", QueryPolicy::Sort), "a=1&b=2");
        assert_eq!(normalise_query("b=2&a=1", QueryPolicy::Keep), "b=2&a=1");
        assert_eq!(normalise_query("b=2&a=1", QueryPolicy::Drop), "");
    }

    #[test]
    fn keys_with_headers_and_vary() {
        let mut h = HeaderMap::new();
        h.append(
            HeaderName::from_static("accept-encoding"),
            HeaderValue::from_static("gzip,  br"),
        );
        let url = url_of("example.com", "/x", "a=1");
        let p = primary_key("http", &url, &["x-dev".into()], &h);
        assert_eq!(p, "http://example.com/x?a=1\nx-dev:");
        let v = variant_key(&p, &["accept-encoding".into()], &h);
        assert!(v.ends_with("#vary\naccept-encoding:gzip,br"));
    }

    proptest! {
        #[test]
        fn normalisation_is_idempotent_and_stays_rooted(p in "/[a-z./%0-9A-F]{0,40}") {
            if let Some(n) = normalise_path(&p) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.split('/').any(|s| s == ".."));
                prop_assert_eq!(normalise_path(&n), Some(n.clone()));
            }
        }
    }
}
