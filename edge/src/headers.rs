//! Header handling: what is dropped (hop-by-hop, `Surrogate-*`, `Set-Cookie` in stored
//! copies), purge tags (`Surrogate-Key`, `Cache-Tag`), what is sent to the origin, and the
//! headers added to every answer: `Cache-Status` (RFC 9211), `X-Cache`, `Age`, `Via`.

use std::fmt::Write as _;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// `Cache-Status` (RFC 9211).
pub const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");
/// `X-Cache`.
pub const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
/// `Surrogate-Key` (space-separated purge tags).
pub const SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");
/// `Cache-Tag` (comma-separated purge tags).
pub const CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
/// `Surrogate-Control`.
pub const SURROGATE_CONTROL: HeaderName = HeaderName::from_static("surrogate-control");
/// `Keep-Alive`.
pub const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
/// `Proxy-Connection`.
pub const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
/// `CDN-Loop` (RFC 8586).
pub const CDN_LOOP: HeaderName = HeaderName::from_static("cdn-loop");
/// `X-Forwarded-For`.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus the fields named in `Connection`.
pub fn is_hop_by_hop(name: &HeaderName, connection_listed: &[String]) -> bool {
    matches!(
        *name,
        header::CONNECTION
            | header::TE
            | header::TRAILER
            | header::TRANSFER_ENCODING
            | header::UPGRADE
            | header::PROXY_AUTHENTICATE
            | header::PROXY_AUTHORIZATION
    ) || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
        || connection_listed.iter().any(|c| c == name.as_str())
}

/// The request's end-to-end headers when it has hop-by-hop ones (RFC 9110 §7.6.1: the static
/// list and every field named in `Connection`), `None` when it has none, so that the usual
/// request (at most `Connection: keep-alive` or `close`) costs no copy. Cache keys, Vary
/// matching and the origin request are all computed without hop-by-hop fields, so a client
/// cannot make the origin answer one request while the edge files it under another variant.
pub fn end_to_end(h: &HeaderMap) -> Option<HeaderMap> {
    let listed_other = h.get_all(header::CONNECTION).any(|v| {
        v.to_str().map_or(true, |s| {
            s.split(',').map(str::trim).any(|t| {
                !t.is_empty()
                    && !t.eq_ignore_ascii_case("close")
                    && !t.eq_ignore_ascii_case("keep-alive")
            })
        })
    });
    let static_hop = h
        .keys()
        .any(|n| *n != header::CONNECTION && is_hop_by_hop(n, &[]));
    if !listed_other && !static_hop {
        return None;
    }
    let listed = connection_listed(h);
    let mut out = HeaderMap::with_capacity(h.len());
    for (n, v) in h.iter() {
        if !is_hop_by_hop(n, &listed) {
            out.append(n.clone(), v.clone());
        }
    }
    Some(out)
}

/// Does a `CDN-Loop` field (RFC 8586: `#cdn-info`, `cdn-info = pseudonym *( OWS ";" OWS
/// parameter )`) name `token` (ASCII case-insensitive)? No allocation: requests without the
/// field cost one lookup.
pub fn loops(h: &HeaderMap, token: &str) -> bool {
    h.get_all(CDN_LOOP).any(|v| {
        v.as_bytes().split(|b| *b == b',').any(|member| {
            let name = member.split(|b| *b == b';').next().unwrap_or(b"");
            name.trim_ascii().eq_ignore_ascii_case(token.as_bytes())
        })
    })
}

/// Add our `token` to the `CDN-Loop` of an origin request (after the members it already has,
/// which are forwarded).
pub fn add_cdn_loop(h: &mut HeaderMap, token: &HeaderValue) {
    h.append(CDN_LOOP, token.clone());
}

/// Lower-cased field names listed in `Connection`.
pub fn connection_listed(h: &HeaderMap) -> Vec<String> {
    let mut out = Vec::new();
    for v in h.get_all(header::CONNECTION) {
        if let Ok(s) = v.to_str() {
            out.extend(
                s.split(',')
                    .map(|p| p.trim().to_ascii_lowercase())
                    .filter(|p| !p.is_empty()),
            );
        }
    }
    out
}

/// Headers of an origin response as replayed to clients (and stored): hop-by-hop,
/// `Surrogate-Control`, `Surrogate-Key`, `Cache-Tag`, `Age` (recomputed), `Content-Length`
/// (set from the body) removed; `Set-Cookie` removed when `keep_set_cookie` is false.
///
/// Names and values are copied: the HTTP client parses them as slices of its read buffer, so
/// a stored header would otherwise keep that whole buffer (8 KiB and more, often with body
/// bytes in it) alive for as long as the object stays cached.
pub fn response_headers(h: &HeaderMap, keep_set_cookie: bool) -> Vec<(HeaderName, HeaderValue)> {
    let listed = connection_listed(h);
    h.iter()
        .filter(|(n, _)| {
            !is_hop_by_hop(n, &listed)
                && **n != SURROGATE_CONTROL
                && **n != SURROGATE_KEY
                && **n != CACHE_TAG
                && **n != header::AGE
                && **n != header::CONTENT_LENGTH
                && (keep_set_cookie || **n != header::SET_COOKIE)
        })
        .map(|(n, v)| (detach_name(n), detach_value(v)))
        .collect()
}

/// `n` in storage of its own (standard names are static: no copy).
fn detach_name(n: &HeaderName) -> HeaderName {
    HeaderName::from_bytes(n.as_str().as_bytes()).unwrap_or_else(|_| n.clone())
}

/// `v` in an allocation of its own length.
fn detach_value(v: &HeaderValue) -> HeaderValue {
    match HeaderValue::from_maybe_shared(bytes::Bytes::copy_from_slice(v.as_bytes())) {
        Ok(mut c) => {
            c.set_sensitive(v.is_sensitive());
            c
        }
        Err(_) => v.clone(),
    }
}

/// A `Content-Length` value: ASCII digits (surrounding whitespace allowed) that fit in a
/// `u64`; anything else (sign, overflow, list, non-ASCII) is `None`.
pub fn parse_content_length(v: &HeaderValue) -> Option<u64> {
    let s = v.to_str().ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<u64>().ok()
}

/// The message's `Content-Length` (its first field), parsed by [`parse_content_length`]. The
/// one place the edge reads it: origin responses (storing, streaming) and client requests
/// (limits, pass-through).
pub fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH).and_then(parse_content_length)
}

/// Purge tags from `Surrogate-Key` (space-separated) and `Cache-Tag` (comma-separated).
pub fn purge_tags(h: &HeaderMap) -> Vec<String> {
    let mut tags = Vec::new();
    for v in h.get_all(SURROGATE_KEY) {
        if let Ok(s) = v.to_str() {
            tags.extend(s.split_ascii_whitespace().map(str::to_string));
        }
    }
    for v in h.get_all(CACHE_TAG) {
        if let Ok(s) = v.to_str() {
            tags.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
            );
        }
    }
    tags.sort();
    tags.dedup();
    tags
}

/// Request headers never forwarded on a cache fill (the edge fetches whole objects itself).
fn is_fill_excluded(name: &HeaderName) -> bool {
    matches!(
        *name,
        header::HOST
            | header::RANGE
            | header::IF_RANGE
            | header::IF_MATCH
            | header::IF_NONE_MATCH
            | header::IF_MODIFIED_SINCE
            | header::IF_UNMODIFIED_SINCE
            | header::CONTENT_LENGTH
            | header::EXPECT
    )
}

/// The headers sent to the origin: the client's minus hop-by-hop (and, for fills, ranges
/// and conditionals), plus `X-Forwarded-For`, `X-Forwarded-Proto` and `Via`.
pub fn origin_request_headers(
    client: &HeaderMap,
    fill: bool,
    peer: Option<std::net::IpAddr>,
    scheme: &str,
    via: &HeaderValue,
) -> HeaderMap {
    let listed = connection_listed(client);
    let mut out = HeaderMap::with_capacity(client.len() + 3);
    let mut xff: Option<String> = None;
    for (n, v) in client.iter() {
        // `Expect` is never forwarded: request bodies are buffered before they are sent, and
        // the origin connection drops interim responses (interim.rs).
        if is_hop_by_hop(n, &listed)
            || *n == header::HOST
            || *n == header::EXPECT
            || (fill && is_fill_excluded(n))
        {
            continue;
        }
        if *n == X_FORWARDED_FOR {
            let s = String::from_utf8_lossy(v.as_bytes()).into_owned();
            xff = Some(match xff {
                Some(p) => format!("{p}, {s}"),
                None => s,
            });
            continue;
        }
        if *n == header::VIA || *n == X_FORWARDED_PROTO {
            continue;
        }
        out.append(n.clone(), v.clone());
    }
    if let Some(ip) = peer {
        let v = match xff {
            Some(p) => format!("{p}, {ip}"),
            None => ip.to_string(),
        };
        if let Ok(v) = HeaderValue::from_str(&v) {
            out.insert(X_FORWARDED_FOR, v);
        }
    }
    out.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if scheme == "https" { "https" } else { "http" }),
    );
    let mut via_v = String::new();
    for v in client.get_all(header::VIA) {
        if let Ok(s) = v.to_str() {
            via_v.push_str(s);
            via_v.push_str(", ");
        }
    }
    if via_v.is_empty() {
        out.insert(header::VIA, via.clone());
    } else if let Ok(v) = HeaderValue::from_str(&format!("{via_v}{}", via.to_str().unwrap_or(""))) {
        out.insert(header::VIA, v);
    }
    out
}

/// `X-Cache` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XCache {
    /// Served from cache, fresh.
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Stale copy served (while revalidating, or because the origin failed).
    Stale,
    /// Stale copy revalidated with a 304.
    Revalidated,
    /// Not handled by the cache (unsafe method, pass-through).
    Bypass,
}

impl XCache {
    /// Header value.
    pub fn as_str(self) -> &'static str {
        match self {
            XCache::Hit => "HIT",
            XCache::Miss => "MISS",
            XCache::Stale => "STALE",
            XCache::Revalidated => "REVALIDATED",
            XCache::Bypass => "BYPASS",
        }
    }
}

/// RFC 9211 `fwd` reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fwd {
    /// Nothing stored under the URI.
    UriMiss,
    /// Stored under the URI but not for this variant.
    VaryMiss,
    /// Stored but stale (or `no-cache`): revalidated or refetched.
    Stale,
    /// The request is not cacheable (method, ...).
    Bypass,
    /// Something in the request forced a forward.
    Request,
    /// A miss filled from the key's owner in this PoP (`[cluster]`).
    Peer,
    /// A miss filled from the host's shield PoP (`[cluster.shields]`).
    Shield,
}

impl Fwd {
    /// Parameter value.
    pub fn as_str(self) -> &'static str {
        match self {
            Fwd::UriMiss => "uri-miss",
            Fwd::VaryMiss => "vary-miss",
            Fwd::Stale => "stale",
            Fwd::Bypass => "bypass",
            Fwd::Request => "request",
            Fwd::Peer => "peer",
            Fwd::Shield => "shield",
        }
    }
}

/// Everything `Cache-Status` and `X-Cache` say about one answer.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// `X-Cache`.
    pub x_cache: XCache,
    /// `fwd=` (absent = `hit`).
    pub fwd: Option<Fwd>,
    /// `fwd-status=`.
    pub fwd_status: Option<u16>,
    /// `stored`.
    pub stored: bool,
    /// `collapsed` (this request rode on another request's fill).
    pub collapsed: bool,
    /// `ttl=` seconds of freshness left.
    pub ttl: Option<i64>,
    /// `detail=`.
    pub detail: Option<&'static str>,
}

impl Outcome {
    /// A fresh hit.
    pub fn hit(ttl: i64) -> Self {
        Outcome {
            x_cache: XCache::Hit,
            fwd: None,
            fwd_status: None,
            stored: false,
            collapsed: false,
            ttl: Some(ttl),
            detail: None,
        }
    }

    /// A forward with reason `fwd`.
    pub fn forward(x_cache: XCache, fwd: Fwd) -> Self {
        Outcome {
            x_cache,
            fwd: Some(fwd),
            fwd_status: None,
            stored: false,
            collapsed: false,
            ttl: None,
            detail: None,
        }
    }

    /// The `Cache-Status` member for cache `name`.
    pub fn cache_status(&self, name: &str) -> HeaderValue {
        let mut s = String::with_capacity(64);
        s.push_str(name);
        match self.fwd {
            None => s.push_str("; hit"),
            Some(f) => {
                s.push_str("; fwd=");
                s.push_str(f.as_str());
            }
        }
        if let Some(st) = self.fwd_status {
            let _ = write!(s, "; fwd-status={st}");
        }
        if self.stored {
            s.push_str("; stored");
        }
        if self.collapsed {
            s.push_str("; collapsed");
        }
        if let Some(t) = self.ttl {
            let _ = write!(s, "; ttl={t}");
        }
        if let Some(d) = self.detail {
            s.push_str("; detail=");
            s.push_str(d);
        }
        HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static("edge; fwd=request"))
    }
}

/// The request's host, lower-cased, without port or trailing dot: the request target's
/// authority when it has one (HTTP/2's `:authority`; an HTTP/1.1 absolute-form target, for
/// which RFC 9112 §3.2.2 says `Host` is ignored), else `Host`. An upstream proxy that routes
/// by the target's authority and the edge therefore agree on the host.
/// Borrowed from the request when it is already in that form (the common case): no allocation.
pub(crate) fn host_of(req: &actix_web::HttpRequest) -> std::borrow::Cow<'_, str> {
    let raw = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
        })
        .unwrap_or("");
    let h = if raw.starts_with('[') {
        raw.split_once(']').map(|(a, _)| &a[1..]).unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map(|(a, _)| a).unwrap_or(raw)
    };
    let h = h.trim_end_matches('.');
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(h.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn drops_hop_by_hop_and_surrogates() {
        let h = map(&[
            ("connection", "close, x-private"),
            ("x-private", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("surrogate-control", "max-age=5"),
            ("surrogate-key", "a b"),
            ("cache-tag", "c"),
            ("set-cookie", "s=1"),
            ("age", "3"),
            ("content-type", "text/plain"),
        ]);
        let kept: Vec<_> = response_headers(&h, false)
            .into_iter()
            .map(|(n, _)| n.as_str().to_string())
            .collect();
        assert_eq!(kept, vec!["content-type"]);
        assert!(response_headers(&h, true)
            .iter()
            .any(|(n, _)| n == header::SET_COOKIE));
    }

    #[test]
    fn end_to_end_drops_hop_by_hop_and_listed_fields_and_copies_only_when_needed() {
        assert!(end_to_end(&map(&[("accept", "*/*"), ("connection", "keep-alive")])).is_none());
        assert!(end_to_end(&map(&[("connection", "Close"), ("origin", "o")])).is_none());
        let e = end_to_end(&map(&[
            ("connection", "keep-alive, Origin"),
            ("origin", "https://app.example"),
            ("accept", "*/*"),
        ]))
        .unwrap();
        assert!(e.get("origin").is_none() && e.get(header::CONNECTION).is_none());
        assert_eq!(e.get(header::ACCEPT).unwrap(), "*/*");
        let e = end_to_end(&map(&[("te", "trailers"), ("accept", "a")])).unwrap();
        assert!(e.get(header::TE).is_none() && e.get(header::ACCEPT).is_some());
    }

    #[test]
    fn cdn_loop_members_are_matched_by_pseudonym() {
        let l = |v: &str| loops(&map(&[("cdn-loop", v)]), "e1");
        assert!(l("e1"));
        assert!(l("other, E1; v=1"));
        assert!(l(" foo ;a=b , e1 "));
        assert!(!l("e10, xe1, e1x"));
        assert!(!l("other; e1"), "a parameter is not a pseudonym");
        assert!(!loops(&map(&[]), "e1"));
        assert!(loops(&map(&[("cdn-loop", "a"), ("cdn-loop", "e1")]), "e1"));
        let mut h = map(&[("cdn-loop", "upstream")]);
        add_cdn_loop(&mut h, &HeaderValue::from_static("e1"));
        let all: Vec<_> = h.get_all(CDN_LOOP).map(|v| v.to_str().unwrap()).collect();
        assert_eq!(all, ["upstream", "e1"]);
    }

    #[test]
    fn tags_from_both_headers() {
        let h = map(&[("surrogate-key", "a  b"), ("cache-tag", "c, a")]);
        assert_eq!(purge_tags(&h), vec!["a", "b", "c"]);
    }

    #[test]
    fn origin_headers() {
        let h = map(&[
            ("host", "x"),
            ("range", "bytes=0-1"),
            ("accept", "*/*"),
            ("x-forwarded-for", "1.1.1.1"),
            ("via", "1.1 a"),
        ]);
        let via = HeaderValue::from_static("1.1 e1");
        let o = origin_request_headers(&h, true, Some([10, 0, 0, 1].into()), "https", &via);
        assert!(o.get(header::HOST).is_none() && o.get(header::RANGE).is_none());
        assert_eq!(o.get(X_FORWARDED_FOR).unwrap(), "1.1.1.1, 10.0.0.1");
        assert_eq!(o.get(X_FORWARDED_PROTO).unwrap(), "https");
        assert_eq!(o.get(header::VIA).unwrap(), "1.1 a, 1.1 e1");
        assert_eq!(o.get(header::ACCEPT).unwrap(), "*/*");
    }

    #[test]
    fn cache_status_forms() {
        assert_eq!(Outcome::hit(42).cache_status("e1"), "e1; hit; ttl=42");
        let mut o = Outcome::forward(XCache::Miss, Fwd::UriMiss);
        o.fwd_status = Some(200);
        o.stored = true;
        o.collapsed = true;
        assert_eq!(
            o.cache_status("e1"),
            "e1; fwd=uri-miss; fwd-status=200; stored; collapsed"
        );
    }
    #[test]
    fn content_length_is_digits_that_fit() {
        let cl = |v: &str| parse_content_length(&HeaderValue::from_str(v).unwrap());
        assert_eq!(cl("0"), Some(0));
        assert_eq!(cl(" 42 "), Some(42));
        assert_eq!(cl("18446744073709551615"), Some(u64::MAX));
        assert_eq!(cl("18446744073709551616"), None);
        for bad in ["", "+5", "-1", "1,1", "0x10", "1 2", "1e3"] {
            assert_eq!(cl(bad), None, "{bad:?}");
        }
        assert_eq!(content_length(&map(&[("content-length", "7")])), Some(7));
        assert_eq!(content_length(&map(&[])), None);
    }

    #[test]
    fn host_drops_port_brackets_and_trailing_dot() {
        let h = |v: &str| {
            host_of(
                &actix_web::test::TestRequest::default()
                    .insert_header(("host", v))
                    .to_http_request(),
            )
            .into_owned()
        };
        assert_eq!(h("Example.COM"), "example.com");
        assert_eq!(h("example.com.:8080"), "example.com");
        assert_eq!(h("[::1]:443"), "::1");
        assert_eq!(h("[::1]"), "::1");
        assert_eq!(
            host_of(&actix_web::test::TestRequest::default().to_http_request()),
            ""
        );
        // An absolute-form target's authority wins over Host (RFC 9112 §3.2.2).
        let abs = actix_web::test::TestRequest::default()
            .uri("http://Other.Example:8080/x")
            .insert_header(("host", "www.example"))
            .to_http_request();
        assert_eq!(host_of(&abs), "other.example");
        // Already lower-case: borrowed, not copied.
        let lower = actix_web::test::TestRequest::default()
            .insert_header(("host", "www.example:80"))
            .to_http_request();
        assert!(matches!(
            host_of(&lower),
            std::borrow::Cow::Borrowed("www.example")
        ));
    }
}
