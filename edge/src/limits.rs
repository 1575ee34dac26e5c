//! Request limits and bad input: what is refused before a request reaches the cache. Paths are
//! checked by the edge's one normaliser ([`crate::normalise`]), the same that builds cache
//! keys and purge selectors, so a path accepted here always has a key.
//!
//! Enforced where:
//! * **Maximum connections** (`http.max_connections`, per worker) → actix-web
//!   `HttpServer::max_connections`: beyond it the listener stops accepting until a connection
//!   closes (clients wait in the kernel backlog; nothing is queued in the edge).
//! * **Header read timeout** (`http.header_read_timeout`) → `HttpServer::client_request_timeout`:
//!   a client that has not sent its whole request head in time gets `408` and is closed, so a
//!   slow client cannot hold a worker. `http.keep_alive` → `HttpServer::keep_alive`.
//! * **Header size** (`http.max_header_size`, default 32 KiB) → `431`. actix-http 3.20 has a
//!   fixed, non-configurable head buffer: a request head over 128 KiB (its `MAX_BUFFER_SIZE`)
//!   or with more than 96 header fields is answered `431` by actix itself before any
//!   application code runs (h1 dispatcher, `ParseError::TooLarge`). Heads between our limit
//!   and 128 KiB are parsed by actix and refused `431` by [`check_request`] (so the
//!   configured limit is exact up to 128 KiB; above, actix's own 431 applies). A request line
//!   that is over the limit on its own gets `414 URI Too Long` instead (as nginx answers a
//!   target longer than its buffers). A target over 64 KiB is refused `400` by actix's parser
//!   (`http::Uri`'s own limit) before [`check_request`] sees it.
//! * **Body size** (`http.max_body_size`) → `413`: a declared `Content-Length` over the limit
//!   is refused by [`check_request`] before any origin contact; a chunked body is cut off by
//!   [`BodyBudget`] as it streams.
//! * **Malformed requests** → `400`: bad request lines, bad header syntax, conflicting
//!   `Content-Length` / `Transfer-Encoding` are refused by actix-http's parser (400 + close);
//!   [`check_request`] adds: no or several `Host` headers, a path that escapes the root with
//!   `..`, bad percent-encoding, encoded NUL.
//! * **Cache poisoning through unkeyed headers**: [`UNKEYED_OVERRIDE_HEADERS`] (headers some
//!   origins and frameworks use to rewrite the host, path or method) are stripped from requests
//!   forwarded to the origin unless the host lists them in `key_headers`.

use actix_web::http::header::{HeaderMap, CONTENT_LENGTH, HOST};
use actix_web::http::{Method, StatusCode};

use crate::normalise::UriError;

/// Why a request is refused, with the status it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reject {
    /// 400, 413, 414 or 431.
    pub status: StatusCode,
    /// Short reason (response body and the `reason` metric label).
    pub reason: &'static str,
}

impl Reject {
    const fn new(status: StatusCode, reason: &'static str) -> Self {
        Self { status, reason }
    }

    /// The `reason` label for `cdn_edge_rejected_requests_total`.
    pub fn label(&self) -> &'static str {
        match self.status.as_u16() {
            431 => "header_too_large",
            414 => "uri_too_long",
            413 => "body_too_large",
            _ if self.reason.starts_with("path") => "bad_path",
            _ => "bad_request",
        }
    }

    /// The response for this refusal (`Connection: close` for 413/431: the rest of the
    /// request is not read).
    pub fn response(&self) -> actix_web::HttpResponse {
        metrics::counter!(crate::metrics::REJECTED, "reason" => self.label()).increment(1);
        let mut b = actix_web::HttpResponse::build(self.status);
        b.content_type("text/plain; charset=utf-8");
        if self.status != StatusCode::BAD_REQUEST {
            b.force_close();
        }
        b.body(format!("{}\n", self.reason))
    }
}

/// Request-shape limits taken from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// `http.max_header_size` in bytes.
    pub max_header_bytes: usize,
    /// `http.max_body_size` in bytes.
    pub max_body_bytes: u64,
}

impl RequestLimits {
    /// From the edge config's `[http]` section.
    pub fn from_config(http: &cdn_shared::config::edge::HttpSection) -> Self {
        Self {
            max_header_bytes: http.max_header_size.as_u64() as usize,
            max_body_bytes: http.max_body_size.as_u64(),
        }
    }
}

/// Size of the request head as sent on the wire (request line + `name: value\r\n` per field
/// + final CRLF), recomputed from the parsed parts.
pub fn head_size(method: &Method, path_and_query: &str, headers: &HeaderMap) -> usize {
    // "GET /p HTTP/1.1\r\n"
    let mut n = method.as_str().len() + 1 + path_and_query.len() + 1 + 8 + 2;
    for (name, value) in headers.iter() {
        n += name.as_str().len() + 2 + value.len() + 2;
    }
    n + 2
}

/// Check a parsed request against the limits (pure; called first in the request handler).
/// `h1` is true for HTTP/1.x (where exactly one `Host` header is required).
pub fn check_request(
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
    h1: bool,
    limits: &RequestLimits,
) -> Result<(), Reject> {
    if head_size(method, path_and_query, headers) > limits.max_header_bytes {
        if head_size(method, path_and_query, &HeaderMap::new()) > limits.max_header_bytes {
            // The request line alone is over the limit: the target is what is too long.
            return Err(Reject::new(
                StatusCode::URI_TOO_LONG,
                "request target too long",
            ));
        }
        return Err(Reject::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request header fields too large",
        ));
    }
    let hosts = headers.get_all(HOST).count();
    if hosts > 1 || (h1 && hosts == 0) {
        return Err(Reject::new(
            StatusCode::BAD_REQUEST,
            "exactly one Host header is required",
        ));
    }
    let mut lengths = headers.get_all(CONTENT_LENGTH);
    if let Some(first) = lengths.next() {
        let Some(len) = crate::headers::parse_content_length(first) else {
            return Err(Reject::new(StatusCode::BAD_REQUEST, "bad Content-Length"));
        };
        if lengths.any(|v| v != first) {
            return Err(Reject::new(
                StatusCode::BAD_REQUEST,
                "conflicting Content-Length headers",
            ));
        }
        if len > limits.max_body_bytes {
            return Err(Reject::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            ));
        }
    }
    let path = path_and_query.split('?').next().unwrap_or("");
    check_path(path)
}

/// Refuse a path the normaliser refuses ([`crate::normalise::path`]): not origin-form, a bad
/// escape, `%00`, or `..` above the root. A path with no `%` escape and no dot segment cannot
/// be refused (raw characters are only re-encoded), so the common case allocates nothing.
pub fn check_path(path: &str) -> Result<(), Reject> {
    if !path.starts_with('/') {
        return Err(PATH_INVALID);
    }
    let b = path.as_bytes();
    let dot_segment = b.windows(2).any(|w| w == b"/.");
    if !dot_segment && !b.contains(&b'%') {
        return Ok(());
    }
    crate::normalise::path(path)
        .map(|_| ())
        .map_err(path_reject)
}

/// The refusal for a path the normaliser refuses.
fn path_reject(e: UriError) -> Reject {
    match e {
        UriError::NotOriginForm => PATH_INVALID,
        UriError::AboveRoot => PATH_ESCAPE,
        UriError::BadEscape => PATH_BAD_ESCAPE,
        UriError::EncodedNul => PATH_NUL,
    }
}

/// Counts streamed request-body bytes against `http.max_body_size` (for bodies without a
/// `Content-Length`).
#[derive(Debug, Clone, Copy)]
pub struct BodyBudget {
    left: u64,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub fn new(max: u64) -> Self {
        Self { left: max }
    }

    /// Take `n` bytes; `Err(413)` once the body exceeds the limit.
    pub fn take(&mut self, n: usize) -> Result<(), Reject> {
        match self.left.checked_sub(n as u64) {
            Some(left) => {
                self.left = left;
                Ok(())
            }
            None => Err(Reject::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            )),
        }
    }
}

/// Request headers that some origins or frameworks honour to rewrite the host, URL or method.
/// They are not part of the cache key, so a client could make the origin answer a different
/// resource and have it stored for everyone: they are dropped before forwarding unless the
/// host configures them in `key_headers`.
pub const UNKEYED_OVERRIDE_HEADERS: &[&str] = &[
    "x-forwarded-host",
    "x-forwarded-server",
    "x-host",
    "x-original-url",
    "x-rewrite-url",
    "x-original-host",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "forwarded",
];

/// True when `name` (lower-case) must not be forwarded for a host keyed on `key_headers`.
pub fn is_unkeyed_override(name: &str, key_headers: &[String]) -> bool {
    UNKEYED_OVERRIDE_HEADERS.contains(&name) && !key_headers.iter().any(|k| k == name)
}

const PATH_INVALID: Reject = Reject::new(StatusCode::BAD_REQUEST, "path: must start with /");
const PATH_ESCAPE: Reject = Reject::new(StatusCode::BAD_REQUEST, "path: `..` escapes the root");
const PATH_BAD_ESCAPE: Reject = Reject::new(StatusCode::BAD_REQUEST, "path: bad percent-encoding");
const PATH_NUL: Reject = Reject::new(StatusCode::BAD_REQUEST, "path: encoded NUL");

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn n(p: &str) -> Result<(), &'static str> {
        check_path(p).map_err(|r| {
            assert_eq!(r.status, StatusCode::BAD_REQUEST);
            r.reason
        })
    }

    #[test]
    fn paths_are_refused_as_the_normaliser_refuses_them() {
        assert_eq!(n("/a/b/../c"), Ok(()));
        assert_eq!(n("/a/%2E%2e/b"), Ok(()));
        assert_eq!(n("/a|b"), Ok(()));
        assert_eq!(n("/.."), Err(PATH_ESCAPE.reason));
        assert_eq!(n("/a/../../etc/passwd"), Err(PATH_ESCAPE.reason));
        assert_eq!(
            n("/%2e%2e/x"),
            Err(PATH_ESCAPE.reason),
            "encoded dots count"
        );
        assert_eq!(n("relative"), Err(PATH_INVALID.reason));
        assert_eq!(n("/a%zz"), Err(PATH_BAD_ESCAPE.reason));
        assert_eq!(n("/a%4"), Err(PATH_BAD_ESCAPE.reason));
        assert_eq!(n("/a%00b"), Err(PATH_NUL.reason));
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const LIM: RequestLimits = RequestLimits {
        max_header_bytes: 1024,
        max_body_bytes: 100,
    };

    fn check(path: &str, h: &[(&str, &str)]) -> Result<(), u16> {
        check_request(&Method::GET, path, &headers(h), true, &LIM).map_err(|r| r.status.as_u16())
    }

    #[test]
    fn request_checks_map_to_statuses() {
        assert_eq!(check("/ok", &[("host", "a")]), Ok(()));
        assert_eq!(check("/ok", &[]), Err(400));
        assert_eq!(check("/ok", &[("host", "a"), ("host", "b")]), Err(400));
        let big = "x".repeat(1100);
        assert_eq!(check("/ok", &[("host", "a"), ("x-big", &big)]), Err(431));
        // A request line over the limit on its own: the target is too long (414); a long
        // target that fits only without the fields is still a 431.
        let long = format!("/{}", "a".repeat(1100));
        assert_eq!(check(&long, &[("host", "a")]), Err(414));
        let mid = format!("/{}", "a".repeat(900));
        assert_eq!(
            check(&mid, &[("host", "a"), ("x-b", &"b".repeat(200))]),
            Err(431)
        );
        assert_eq!(
            check("/ok", &[("host", "a"), ("content-length", "101")]),
            Err(413)
        );
        assert_eq!(
            check("/ok", &[("host", "a"), ("content-length", "100")]),
            Ok(())
        );
        assert_eq!(
            check("/ok", &[("host", "a"), ("content-length", "x")]),
            Err(400)
        );
        assert_eq!(
            check(
                "/ok",
                &[
                    ("host", "a"),
                    ("content-length", "5"),
                    ("content-length", "6")
                ]
            ),
            Err(400)
        );
        assert_eq!(check("/../x?y", &[("host", "a")]), Err(400));
        // h2 has :authority instead of Host.
        assert!(check_request(&Method::GET, "/", &HeaderMap::new(), false, &LIM).is_ok());
    }

    #[test]
    fn check_path_agrees_with_normalize_path() {
        for p in [
            "/a/b",
            "/a/../b",
            "/..",
            "/a/%2e%2e/%2e%2e",
            "/%zz",
            "/a%00",
            "x",
            "/.hidden",
            "/a/.",
            "/caf\u{e9}",
            "/a|b",
        ] {
            assert_eq!(
                check_path(p).is_ok(),
                crate::normalise::path(p).is_ok(),
                "{p}"
            );
        }
    }

    #[test]
    fn head_size_counts_the_wire_bytes() {
        let h = headers(&[("host", "ab")]);
        // "GET / HTTP/1.1\r\n" (16) + "host: ab\r\n" (10) + "\r\n" (2)
        assert_eq!(head_size(&Method::GET, "/", &h), 28);
    }

    #[test]
    fn body_budget_cuts_at_the_limit() {
        let mut b = BodyBudget::new(10);
        assert!(b.take(6).is_ok());
        assert!(b.take(4).is_ok());
        assert_eq!(b.take(1).unwrap_err().status.as_u16(), 413);
    }

    #[test]
    fn override_headers_are_dropped_unless_keyed() {
        assert!(is_unkeyed_override("x-forwarded-host", &[]));
        assert!(!is_unkeyed_override(
            "x-forwarded-host",
            &["x-forwarded-host".into()]
        ));
        assert!(!is_unkeyed_override("accept-encoding", &[]));
    }

    #[test]
    fn reject_labels() {
        assert_eq!(PATH_ESCAPE.label(), "bad_path");
        assert_eq!(
            Reject::new(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "x").label(),
            "header_too_large"
        );
    }
}
