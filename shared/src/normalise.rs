//! The CDN's one path and query normaliser (RFC 3986 §6.2.2), used by the edge's request checks
//! (`limits::check_request`), cache key (`cache::key`), invalidation targets (`pass`), signed
//! URL prefixes (`tenant::signed`) and purge index, and by purge selectors on the router and
//! the edge alike ([`crate::purge::normalize_url`]), so every equivalent spelling of a URL
//! names one key and one purge entry, and a selector the edges would refuse is refused by the
//! router before it fans out.
//!
//! Rules, path and query alike:
//! * a percent-escape of an unreserved character (`A-Z a-z 0-9 - . _ ~`) is decoded
//!   (`%7e` → `~`, `%41` → `A`); every other escape is kept with upper-case hex (`%2f` →
//!   `%2F`: an encoded reserved character is not the character);
//! * a raw character outside `pchar` (unreserved, sub-delims `!$&'()*+,;=`, `:`, `@`) and `/`
//!   (plus `?` in a query) is percent-encoded with upper-case hex, bytes of non-ASCII UTF-8
//!   included (`|` → `%7C`, `é` → `%C3%A9`), so the raw and the encoded spelling agree.
//!
//! Path only:
//! * it must start with `/` (origin-form);
//! * `.` and `..` segments are removed (RFC 3986 §5.2.4) after decoding, so `%2e%2e` counts;
//!   a `..` that would climb above `/` is **refused** ([`UriError::AboveRoot`]; the request
//!   gets 400, a purge selector is invalid, an invalidation target is skipped), never clamped;
//! * a bad escape (`%zz`, a trailing `%`) and `%00` are refused;
//! * empty segments (`//`) are kept: origins may treat them differently.
//!
//! Query only: nothing is refused (origins receive queries as they come): a `%` that does not
//! start a valid escape is encoded as `%25`, which keeps the result idempotent. `+` is not a
//! space and parameter order is kept; the host's `query` policy (keep / sort / drop) is
//! applied on top by the edge's `cache::key::normalise_query`.
//!
//! Both functions are idempotent, and a spelling that needs no change (the common case on the
//! hit path) costs one scan and one copy.

use std::borrow::Cow;

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// Why a path cannot be normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriError {
    /// Does not start with `/`.
    NotOriginForm,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// `%00`.
    EncodedNul,
    /// A `..` segment above the root.
    AboveRoot,
}

impl UriError {
    /// Label for logs and responses.
    pub fn as_str(self) -> &'static str {
        match self {
            UriError::NotOriginForm => "not-origin-form",
            UriError::BadEscape => "bad-escape",
            UriError::EncodedNul => "encoded-nul",
            UriError::AboveRoot => "above-root",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Kept raw: unreserved, sub-delims, `:`, `@`, `/` (and `?` in a query).
fn is_kept_raw(b: u8, query: bool) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
                | b'/'
        )
        || (query && b == b'?')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn push_escaped(out: &mut String, v: u8) {
    out.push('%');
    out.push(HEX[usize::from(v >> 4)] as char);
    out.push(HEX[usize::from(v & 15)] as char);
}

/// Canonical escapes (rules shared by path and query). For a path, bad escapes and `%00` are
/// errors; for a query, a stray `%` becomes `%25` and `%00` stays.
fn canonical_escapes(s: &str, query: bool) -> Result<String, UriError> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len() + 8);
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let h = bytes.get(i + 1).copied().and_then(hex);
            let l = bytes.get(i + 2).copied().and_then(hex);
            let (Some(h), Some(l)) = (h, l) else {
                if !query {
                    return Err(UriError::BadEscape);
                }
                out.push_str("%25");
                i += 1;
                continue;
            };
            let v = h * 16 + l;
            if v == 0 && !query {
                return Err(UriError::EncodedNul);
            }
            if is_unreserved(v) {
                out.push(char::from(v));
            } else {
                push_escaped(&mut out, v);
            }
            i += 3;
        } else {
            if is_kept_raw(b, query) {
                out.push(char::from(b));
            } else {
                push_escaped(&mut out, b);
            }
            i += 1;
        }
    }
    Ok(out)
}

/// Normalise an origin-form path (see the module rules).
pub fn path(p: &str) -> Result<String, UriError> {
    if !p.starts_with('/') {
        return Err(UriError::NotOriginForm);
    }
    // Fast path (the common case on the hit path): no escape to rewrite, no dot segment.
    if p.bytes().all(|c| is_kept_raw(c, false)) {
        if !p.contains("/.") {
            return Ok(p.to_string());
        }
        return remove_dot_segments(p);
    }
    let canonical = canonical_escapes(p, false)?;
    if !canonical.contains("/.") {
        return Ok(canonical);
    }
    remove_dot_segments(&canonical)
}

/// Normalise a query string, without its `?` (see the module rules; never fails).
pub fn query(q: &str) -> String {
    query_cow(q).into_owned()
}

/// [`query`], borrowing when nothing changes.
pub fn query_cow(q: &str) -> Cow<'_, str> {
    if q.bytes().all(|c| is_kept_raw(c, true)) {
        return Cow::Borrowed(q);
    }
    match canonical_escapes(q, true) {
        Ok(s) => Cow::Owned(s),
        // Unreachable: queries refuse nothing.
        Err(_) => Cow::Borrowed(q),
    }
}

/// RFC 3986 §5.2.4 on an absolute path, refusing to climb above the root.
fn remove_dot_segments(path: &str) -> Result<String, UriError> {
    let mut segs: Vec<&str> = Vec::new();
    // `path` starts with '/', so everything after it is a list of segments.
    let parts: Vec<&str> = path.get(1..).unwrap_or("").split('/').collect();
    let last = parts.len().saturating_sub(1);
    let mut trailing_slash = false;
    for (i, seg) in parts.iter().enumerate() {
        match *seg {
            "." => trailing_slash = i == last,
            ".." => {
                if segs.pop().is_none() {
                    return Err(UriError::AboveRoot);
                }
                trailing_slash = i == last;
            }
            s => {
                segs.push(s);
                trailing_slash = false;
            }
        }
    }
    let mut out = String::with_capacity(path.len());
    for s in &segs {
        out.push('/');
        out.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<String, UriError> {
        path(s)
    }

    #[test]
    fn dot_segments_resolve_but_never_climb_above_the_root() {
        assert_eq!(p("/a/b/../c").unwrap(), "/a/c");
        assert_eq!(p("/a/./b/.").unwrap(), "/a/b/");
        assert_eq!(p("/a/b/..").unwrap(), "/a/");
        assert_eq!(p("/a/..").unwrap(), "/");
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("/a//b").unwrap(), "/a//b");
        assert_eq!(p("/.hidden/x.").unwrap(), "/.hidden/x.");
        assert_eq!(p("/.."), Err(UriError::AboveRoot));
        assert_eq!(p("/../../etc"), Err(UriError::AboveRoot));
        assert_eq!(p("/a/../../etc/passwd"), Err(UriError::AboveRoot));
        assert_eq!(
            p("/%2e%2e/x"),
            Err(UriError::AboveRoot),
            "encoded dots count"
        );
        assert_eq!(p("/a/%2E%2e/b").unwrap(), "/b");
        assert_eq!(p("relative"), Err(UriError::NotOriginForm));
        assert_eq!(p(""), Err(UriError::NotOriginForm));
    }

    #[test]
    fn path_escapes_are_canonical() {
        assert_eq!(p("/%7euser/%41").unwrap(), "/~user/A");
        assert_eq!(p("/%7euser/%2f%2e").unwrap(), "/~user/%2F.");
        assert_eq!(
            p("/a%2fb").unwrap(),
            "/a%2Fb",
            "encoded slash stays encoded"
        );
        assert_eq!(p("/a|b").unwrap(), "/a%7Cb");
        assert_eq!(p("/a%7cb").unwrap(), "/a%7Cb");
        assert_eq!(p("/caf%c3%a9").unwrap(), "/caf%C3%A9");
        assert_eq!(p("/caf\u{e9}").unwrap(), "/caf%C3%A9");
        assert_eq!(p("/a:b@c!$&'()*+,;=").unwrap(), "/a:b@c!$&'()*+,;=");
        assert_eq!(
            p("/a?b").unwrap(),
            "/a%3Fb",
            "a raw `?` is not part of a path"
        );
        assert_eq!(p("/a%zz"), Err(UriError::BadEscape));
        assert_eq!(p("/a%4"), Err(UriError::BadEscape));
        assert_eq!(p("/a%"), Err(UriError::BadEscape));
        assert_eq!(p("/a%00b"), Err(UriError::EncodedNul));
    }

    #[test]
    fn query_escapes_are_canonical_and_nothing_is_refused() {
        assert_eq!(query("a=%7e&b=c%2f?/"), "a=~&b=c%2F?/");
        assert_eq!(query("q=a b"), "q=a%20b");
        assert_eq!(query("q=a+b"), "q=a+b", "`+` is not a space");
        assert_eq!(query("q=%zz&r=%4"), "q=%25zz&r=%254");
        assert_eq!(query("q=%2%41"), "q=%252A");
        assert_eq!(query("q=%00"), "q=%00");
        assert_eq!(
            query("x=%3d%26"),
            "x=%3D%26",
            "encoded delimiters stay encoded"
        );
        assert_eq!(query(""), "");
    }

    #[test]
    fn labels() {
        assert_eq!(UriError::AboveRoot.as_str(), "above-root");
        assert_eq!(UriError::BadEscape.as_str(), "bad-escape");
        assert_eq!(UriError::EncodedNul.as_str(), "encoded-nul");
        assert_eq!(UriError::NotOriginForm.as_str(), "not-origin-form");
    }

    proptest! {
        #[test]
        fn path_is_idempotent_rooted_and_dot_free(s in "/[a-z./%0-9A-Fé|~ ?]{0,40}") {
            if let Ok(n) = path(&s) {
                prop_assert!(n.starts_with('/'));
                prop_assert!(!n.split('/').any(|seg| seg == ".." || seg == "."));
                prop_assert!(n.bytes().all(|b| b == b'%' || is_kept_raw(b, false)));
                prop_assert_eq!(path(&n), Ok(n.clone()));
            }
        }

        #[test]
        fn query_is_idempotent_and_total(s in "[a-z=&%0-9A-Fé|~ ?/+]{0,40}") {
            let n = query(&s);
            prop_assert!(n.bytes().all(|b| b == b'%' || is_kept_raw(b, true)));
            prop_assert_eq!(query(&n), n.clone());
        }
    }
}
