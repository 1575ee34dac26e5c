//! Pass-through and invalidation: requests the cache does not answer (unsafe methods, and
//! GETs whose response must not be shared) go to the origin as they are, the request body
//! buffered up to `http.max_body_size`. A successful unsafe request invalidates the stored URL
//! (RFC 9111 §4.4) and same-host `Location` / `Content-Location` targets.

use std::time::Instant;

use actix_web::http::header::{self, HeaderMap};
use actix_web::http::Method;
use actix_web::{web, HttpResponse};
use bytes::BytesMut;
use futures_util::StreamExt;

use crate::account::record_origin;
use crate::cache::key::{normalise_path, normalise_query, primary_key, url_of};
use crate::context::Ctx;
use crate::error::{error_response, EdgeError};
use crate::headers::{self as hdr, Fwd, Outcome, XCache};
use crate::render::stream_origin;

/// Pass the request to the origin and stream its answer back, storing nothing. `payload` is
/// the client's body (unsafe methods); `bypass` marks a request the cache never considered
/// (`fwd=bypass`) rather than an unshareable response (`fwd=request`).
pub(crate) async fn pass(ctx: Ctx, payload: Option<web::Payload>, bypass: bool) -> HttpResponse {
    let name = &ctx.shared.name;
    let method = ctx.req.method().clone();
    let mut body = None;
    if let Some(mut p) = payload {
        let declared = hdr::content_length(ctx.req.headers());
        if declared.is_some_and(|l| l > ctx.shared.max_body) {
            return error_response(&EdgeError::BodyTooLarge, name);
        }
        let mut buf = BytesMut::new();
        let deadline = tokio::time::Instant::now() + ctx.shared.body_read_timeout;
        loop {
            let chunk = match tokio::time::timeout_at(deadline, p.next()).await {
                Err(_) => return error_response(&EdgeError::BodyTimeout, name),
                Ok(None) => break,
                Ok(Some(c)) => c,
            };
            match chunk {
                Ok(c) => {
                    let within = (buf.len() as u64)
                        .checked_add(c.len() as u64)
                        .is_some_and(|n| n <= ctx.shared.max_body);
                    if !within {
                        return error_response(&EdgeError::BodyTooLarge, name);
                    }
                    buf.extend_from_slice(&c);
                }
                Err(_) => {
                    return error_response(&EdgeError::BadRequest("request body unreadable"), name)
                }
            }
        }
        if !buf.is_empty() || ctx.req.headers().contains_key(header::CONTENT_LENGTH) {
            body = Some(buf.freeze());
        }
    }
    let headers = hdr::origin_request_headers(
        ctx.req.headers(),
        false,
        ctx.req.peer_addr().map(|a| a.ip()),
        ctx.scheme,
        &ctx.shared.via,
    );
    let t0 = Instant::now();
    // An unshareable GET/HEAD (a follower of a fill that was not stored) goes where its
    // fill went: through the PoP (upstream.rs).
    let res = if !bypass && body.is_none() && (method == Method::GET || method == Method::HEAD) {
        crate::upstream::fetch(&ctx, method.clone(), headers)
            .await
            .res
    } else {
        ctx.origins
            .send(ctx.route(), method.clone(), &ctx.path_q, headers, body)
            .await
    };
    record_origin(&ctx.req, &res, t0);
    let resp = match res {
        Ok(r) => r,
        Err(e) => return error_response(&e, name),
    };
    let status = resp.status().as_u16();
    if invalidates(&method, status) {
        invalidate(&ctx, resp.headers());
    }
    let mut o = if bypass {
        Outcome::forward(XCache::Bypass, Fwd::Bypass)
    } else {
        Outcome::forward(XCache::Miss, Fwd::Request)
    };
    o.fwd_status = Some(status);
    let length = hdr::content_length(resp.headers());
    stream_origin(&ctx, resp, length, o)
}

/// RFC 9111 §4.4: an unsafe method answered with a non-error status invalidates.
fn invalidates(method: &Method, status: u16) -> bool {
    let safe = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    !safe && status < 400
}

/// Remove what is stored for the request's URL and for same-host `Location` /
/// `Content-Location` targets: every variant, under either scheme (`Store::invalidate_url`).
fn invalidate(ctx: &Ctx, resp: &HeaderMap) {
    let store = ctx.store();
    store.invalidate_url(&ctx.url, &ctx.key);
    let route = ctx.route();
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(p) = same_host_target(v, |h| {
            ctx.shared.hosts.get(&h.to_ascii_lowercase()) == Some(&ctx.route)
        }) else {
            continue;
        };
        let (p, q) = p.split_once('?').unwrap_or((&p, ""));
        if let Some(np) = normalise_path(p) {
            let url = url_of(&route.name, &np, &normalise_query(q, route.cfg.query));
            let key = primary_key(ctx.scheme, &url, &route.cfg.key_headers, ctx.end_to_end());
            store.invalidate_url(&url, &key);
        }
    }
}

/// The path and query a `Location`-style value names when it is this host's: an absolute
/// path, or an absolute URL whose host `is_ours`.
fn same_host_target(v: &str, is_ours: impl Fn(&str) -> bool) -> Option<String> {
    if v.starts_with('/') {
        return Some(v.to_string());
    }
    let u = url::Url::parse(v).ok()?;
    if !u.host_str().is_some_and(is_ours) {
        return None;
    }
    Some(match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unsafe_non_errors_invalidate() {
        for m in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
            assert!(invalidates(&m, 200), "{m}");
            assert!(invalidates(&m, 303), "{m}");
            assert!(!invalidates(&m, 400), "{m}");
            assert!(!invalidates(&m, 503), "{m}");
        }
        for m in [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE] {
            assert!(!invalidates(&m, 200), "{m}");
        }
    }

    #[test]
    fn targets_on_this_host_only() {
        let ours = |h: &str| h.eq_ignore_ascii_case("a.test");
        assert_eq!(same_host_target("/x?y=1", ours).as_deref(), Some("/x?y=1"));
        assert_eq!(
            same_host_target("http://A.test/p?q", ours).as_deref(),
            Some("/p?q")
        );
        assert_eq!(
            same_host_target("https://a.test", ours).as_deref(),
            Some("/")
        );
        assert_eq!(same_host_target("http://b.test/p", ours), None);
        assert_eq!(same_host_target("relative/p", ours), None);
    }
}
