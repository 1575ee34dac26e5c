//! Cache keys: `scheme://host/path?query` with path and query normalised by the edge's one
//! normaliser ([`crate::normalise`]: RFC 3986 §6.2.2), the query then kept, dropped or sorted
//! per host, and configured request headers appended. The same normalised
//! path is what the origin is asked for, so the key always names the bytes that were fetched.
//!
//! Vary: a primary key can hold a variant list; the variant key appends the request's values
//! of the listed headers ([`variant_key`]).

use actix_web::http::header::HeaderMap;
use cdn_shared::config::edge::QueryPolicy;

/// Normalise a request path by the edge's one set of rules ([`crate::normalise`]): `None`
/// for a path that is not origin-form, holds a bad escape or `%00`, or climbs above `/`.
pub fn normalise_path(path: &str) -> Option<String> {
    crate::normalise::path(path).ok()
}

/// Normalise a query ([`crate::normalise::query`]), then apply the host's query policy; the
/// result has no leading `?`.
pub fn normalise_query(query: &str, policy: QueryPolicy) -> String {
    match policy {
        QueryPolicy::Drop => String::new(),
        QueryPolicy::Keep => crate::normalise::query(query),
        QueryPolicy::Sort => {
            let q = crate::normalise::query_cow(query);
            let mut parts: Vec<&str> = q.split('&').filter(|p| !p.is_empty()).collect();
            parts.sort_unstable();
            parts.join("&")
        }
    }
}

/// What follows an identity object's key in the key of one of its encoded copies
/// (`<key>\n#ce:<coding>:<fingerprint>`, `compress::variant_key`).
pub const ENCODED_COPY: &str = "\n#ce:";

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

/// All values of `name`, comma-joined, whitespace around commas removed; for
/// `accept-encoding`, the normalised bucket of its values
/// ([`crate::negotiate::bucket`]: the accepted codings among br, deflate, gzip,
/// zstd), so clients' endless spellings of it share a few variants.
fn append_values(k: &mut String, req: &HeaderMap, name: &str) {
    if name.eq_ignore_ascii_case("accept-encoding") {
        let ae = crate::negotiate::accept_encoding(req).unwrap_or_default();
        k.push_str(crate::negotiate::bucket(&ae));
        return;
    }
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
        assert_eq!(
            normalise_path("/../../etc"),
            None,
            "never clamped at the root"
        );
        assert_eq!(normalise_path("/a/..").as_deref(), Some("/"));
        assert_eq!(normalise_path("/a/b/.").as_deref(), Some("/a/b/"));
        assert_eq!(
            normalise_path("/%7euser/%2f%2e").as_deref(),
            Some("/~user/%2F.")
        );
        assert_eq!(normalise_path("/%2E%2E/x"), None);
        assert_eq!(normalise_path("/a/%2E%2E/x").as_deref(), Some("/x"));
        assert_eq!(normalise_path("/a|b").as_deref(), Some("/a%7Cb"));
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
        assert_eq!(
            normalise_query("b=%7e&a=%2f", QueryPolicy::Keep),
            "b=~&a=%2F"
        );
        // Escapes are canonical before sorting, so both spellings sort alike.
        assert_eq!(normalise_query("b=1&%61=2", QueryPolicy::Sort), "a=2&b=1");
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
        assert!(v.ends_with("#vary\naccept-encoding:br,gzip"), "{v}");
        // Other spellings of the same acceptable set share the variant.
        let mut h2 = HeaderMap::new();
        h2.append(
            HeaderName::from_static("accept-encoding"),
            HeaderValue::from_static("BR;q=0.5, x-gzip, deflate;q=0"),
        );
        assert_eq!(variant_key(&p, &["accept-encoding".into()], &h2), v);
    }

    /// Pieces of a path or query with every spelling that means the same (RFC 3986 §6.2.2):
    /// (canonical form, spellings).
    const ATOMS: &[(&str, &[&str])] = &[
        ("a", &["a", "%61"]),
        ("Z", &["Z", "%5a", "%5A"]),
        ("~", &["~", "%7e", "%7E"]),
        ("-", &["-", "%2d", "%2D"]),
        ("%C3%A9", &["\u{e9}", "%c3%a9", "%C3%a9", "%C3%A9"]),
        ("%7C", &["|", "%7c", "%7C"]),
        ("%2F", &["%2f", "%2F"]),
        ("%20", &[" ", "%20"]),
        (";", &[";"]),
        ("%3B", &["%3b", "%3B"]),
    ];

    /// A segment: atom indices and a spelling choice for each.
    fn segment() -> impl Strategy<Value = Vec<(usize, usize)>> {
        proptest::collection::vec((0..ATOMS.len(), 0..4usize), 1..4)
    }

    fn canonical(seg: &[(usize, usize)]) -> String {
        seg.iter().map(|&(a, _)| ATOMS[a].0).collect()
    }

    fn spelled(seg: &[(usize, usize)]) -> String {
        seg.iter()
            .map(|&(a, c)| ATOMS[a].1[c % ATOMS[a].1.len()])
            .collect()
    }

    /// Dot-segment noise inserted before a real segment: nothing, `.`, or `x/..`.
    const NOISE: &[&str] = &["", "./", "%2e/", "a/../", "%7e/%2E%2e/", "./b/./../"];

    fn key_of(path: &str, query: &str, policy: QueryPolicy) -> Option<String> {
        let p = normalise_path(path)?;
        let url = url_of("example.com", &p, &normalise_query(query, policy));
        Some(primary_key("http", &url, &[], &HeaderMap::new()))
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

        /// Equivalent spellings of a path and query give one key, and that key is the one
        /// built from the canonical pieces.
        #[test]
        fn equivalent_spellings_give_one_key(
            segs in proptest::collection::vec((segment(), 0..NOISE.len()), 1..5),
            params in proptest::collection::vec((segment(), segment()), 0..4),
            shuffle in any::<proptest::sample::Index>(),
        ) {
            let canon_path: String = segs.iter().map(|(s, _)| format!("/{}", canonical(s))).collect();
            let alt_path: String = segs
                .iter()
                .map(|(s, n)| format!("/{}{}", NOISE[*n], spelled(s)))
                .collect();
            let canon_q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", canonical(k), canonical(v)))
                .collect();
            let alt_q: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{}={}", spelled(k), spelled(v)))
                .collect();
            let expected = format!(
                "http://example.com{canon_path}{}{}",
                if canon_q.is_empty() { "" } else { "?" },
                canon_q.join("&")
            );
            prop_assert_eq!(key_of(&alt_path, &alt_q.join("&"), QueryPolicy::Keep), Some(expected));
            // Sort: any order of the parameters, in any spelling, gives one key.
            let mut rotated = alt_q.clone();
            if !rotated.is_empty() {
                let n = shuffle.index(rotated.len());
                rotated.rotate_left(n);
            }
            prop_assert_eq!(
                key_of(&alt_path, &rotated.join("&"), QueryPolicy::Sort),
                key_of(&canon_path, &canon_q.join("&"), QueryPolicy::Sort)
            );
        }
    }
}
