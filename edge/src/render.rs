//! Response rendering: a stored object, a fill being streamed, or an origin response passed
//! on, with the client's conditionals and `Range` applied ([`plan::not_modified`],
//! [`plan::range`]) and our headers (`Age`, `Via`, `Cache-Status`, `X-Cache`) added. Also the
//! [`Outcome`]s the fill paths share (stale-if-error, revalidated).

use std::sync::Arc;

use actix_web::body::{BodyStream, SizedStream};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use bytes::Bytes;

use crate::body::{body_stream, body_stream_primed, BodySource, Pieces, Refetch};
use crate::cache::meta::{Body, ObjectMeta};
use crate::cache::policy;
use crate::context::Ctx;
use crate::error::EdgeError;
use crate::fill::{FillReader, StreamHead};
use crate::headers::{self as hdr, Fwd, Outcome, XCache};
use crate::origin::{next_frame, OriginResponse};
use crate::plan::{self, RangePlan};

/// Seconds of freshness left for `Cache-Status: ttl`.
pub(crate) fn ttl_of(m: &ObjectMeta, now: u64) -> i64 {
    policy::ttl_s(
        &m.freshness,
        policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now),
    )
}

/// A stale copy served because the origin failed (`status` = its 5xx, if it answered).
pub(crate) fn stale_outcome(
    m: &ObjectMeta,
    now: u64,
    status: Option<u16>,
    collapsed: bool,
) -> Outcome {
    let mut o = Outcome::forward(XCache::Stale, Fwd::Stale);
    o.fwd_status = status;
    o.ttl = Some(ttl_of(m, now));
    o.collapsed = collapsed;
    o.detail = Some("stale-if-error");
    o
}

/// A stored copy the origin confirmed with 304.
pub(crate) fn revalidated_outcome(m: &ObjectMeta, now: u64) -> Outcome {
    let mut o = Outcome::forward(XCache::Revalidated, Fwd::Stale);
    o.fwd_status = Some(304);
    o.ttl = Some(ttl_of(m, now));
    o
}

fn refetch(ctx: &Ctx, etag: Option<&HeaderValue>) -> Refetch {
    Refetch {
        origins: ctx.origins.clone(),
        route: ctx.route().clone(),
        path_and_query: ctx.path_q.clone(),
        etag: etag.cloned(),
    }
}

fn find<'a>(
    headers: &'a [(HeaderName, HeaderValue)],
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn empty_body() -> BodyStream<futures_util::stream::Empty<Result<Bytes, EdgeError>>> {
    BodyStream::new(futures_util::stream::empty())
}

/// Statuses that never have a body or body framing (RFC 9110 §6.4.1, §15.3.5, §15.4.5): no
/// `Content-Length`, no chunked terminator. An empty stream would still be chunk-encoded by
/// actix-http, leaving `0\r\n\r\n` on a kept-alive connection.
pub(crate) fn bodiless_status(status: u16) -> bool {
    status < 200 || status == 204 || status == 304
}

/// Finish a response of a [`bodiless_status`] with no body at all.
fn bodiless(mut b: actix_web::HttpResponseBuilder) -> HttpResponse {
    b.body(actix_web::body::None::new())
}

/// Status, replayed headers and our cache headers.
fn response(
    ctx: &Ctx,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    age_s: u64,
    o: &Outcome,
) -> actix_web::HttpResponseBuilder {
    let mut b =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (n, v) in headers {
        b.append_header((n.clone(), v.clone()));
    }
    b.insert_header((header::AGE, HeaderValue::from(age_s)));
    b.append_header((header::VIA, ctx.shared.via.clone()));
    b.insert_header((hdr::CACHE_STATUS, o.cache_status(&ctx.shared.name)));
    b.insert_header((hdr::X_CACHE, HeaderValue::from_static(o.x_cache.as_str())));
    b
}

/// 304 for a matching client conditional: only the headers RFC 9110 §15.4.5 asks for.
fn not_modified_response(
    ctx: &Ctx,
    headers: &[(HeaderName, HeaderValue)],
    age_s: u64,
    o: &Outcome,
) -> HttpResponse {
    let keep = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ];
    let hs: Vec<_> = headers
        .iter()
        .filter(|(n, _)| keep.contains(n))
        .cloned()
        .collect();
    bodiless(response(ctx, 304, &hs, age_s, o))
}

/// Full / 206 / 416 / 304 / 412 for a body of `len` bytes.
enum Answer {
    PreconditionFailed,
    NotModified,
    Unsatisfiable,
    /// Status and the byte range `[start, end)`; `end` may exceed the length (clamp it).
    Bytes(u16, u64, u64),
}

fn answer(
    ctx: &Ctx,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    len: Option<u64>,
) -> Answer {
    if status != 200 {
        return Answer::Bytes(status, 0, len.unwrap_or(u64::MAX));
    }
    let etag = find(headers, &header::ETAG);
    let lm = find(headers, &header::LAST_MODIFIED);
    if plan::precondition_failed(ctx.req.headers(), etag, lm) {
        return Answer::PreconditionFailed;
    }
    // If-Modified-Since against Last-Modified, else the stored response's Date (RFC 9111
    // §4.3.2).
    let modified = lm.or_else(|| find(headers, &header::DATE));
    if plan::not_modified(ctx.req.headers(), etag, modified) {
        return Answer::NotModified;
    }
    let Some(len) = len else {
        return Answer::Bytes(200, 0, u64::MAX);
    };
    match plan::range(ctx.req.headers(), len, etag, lm) {
        RangePlan::Full => Answer::Bytes(200, 0, len),
        RangePlan::Partial(a, b) => Answer::Bytes(206, a, b),
        RangePlan::Unsatisfiable => Answer::Unsatisfiable,
    }
}

fn unsatisfiable(ctx: &Ctx, len: u64, o: &Outcome) -> HttpResponse {
    let mut b = response(ctx, 416, &[], 0, o);
    b.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
    b.finish()
}

/// 412 for a failed `If-Match` / `If-Unmodified-Since`, with the stored validators so the client
/// sees what is current.
fn precondition_failed(
    ctx: &Ctx,
    headers: &[(HeaderName, HeaderValue)],
    o: &Outcome,
) -> HttpResponse {
    let validators: Vec<_> = headers
        .iter()
        .filter(|(n, _)| *n == header::ETAG || *n == header::LAST_MODIFIED)
        .cloned()
        .collect();
    response(ctx, 412, &validators, 0, o).finish()
}

/// `Content-Range` for a 206 of `[a, e)` (`plan::range` guarantees `a < e`).
fn with_range(b: &mut actix_web::HttpResponseBuilder, code: u16, a: u64, e: u64, len: u64) {
    if code == 206 {
        let last = e.saturating_sub(1);
        b.insert_header((header::CONTENT_RANGE, format!("bytes {a}-{last}/{len}")));
    }
}

/// Whether a request for the stored object `m` needs its whole body read from the chunks: a
/// `GET` without `Range` or validators of a complete chunked body of at most
/// [`REFILL_MAX_CHUNKS`](crate::cache::store::REFILL_MAX_CHUNKS) chunks. A `HEAD` (and most
/// conditional requests: `304`) needs no body, and a range request keeps the object's other
/// stored chunks (a ranged fill stores only some) and refetches missing ones by range.
fn whole_body_wanted(ctx: &Ctx, m: &ObjectMeta) -> bool {
    let h = ctx.req.headers();
    // A complete chunked body (an object stored in part by ranged fills has no CRC list:
    // its gaps, chunk 0 included, are fetched by range as it is served).
    matches!(&m.body, Body::Chunked { crcs, .. }
        if !crcs.is_empty() && crcs.len() as u64 <= crate::cache::store::REFILL_MAX_CHUNKS)
        && !ctx.head
        && !h.contains_key(header::RANGE)
        && !h.contains_key(header::IF_NONE_MATCH)
        && !h.contains_key(header::IF_MODIFIED_SINCE)
}

/// Whether a stored object is to be filled again, whole, because its body has left the
/// cache while its meta entry stayed: its first chunk is no longer indexed
/// ([`Store::chunk_gone`](crate::cache::store::Store::chunk_gone); no I/O). See
/// [`first_chunk`], which reads it.
pub(crate) fn body_gone(ctx: &Ctx, m: &ObjectMeta, key: &str) -> bool {
    whole_body_wanted(ctx, m) && ctx.store().chunk_gone(key, m, 0)
}

/// The first chunk of a stored object, read before answering.
pub(crate) enum FirstChunk {
    /// Not a whole-object `GET` of a short chunked body: nothing read.
    NotRead,
    /// Read (CRC checked): the response's body starts with it.
    Read(Bytes),
    /// Missing or corrupt: the body has left the cache, the request is a miss.
    Gone,
}

/// Read the first chunk of `m` (stored under `key`) when the request wants the whole body
/// ([`whole_body_wanted`]), before the response is answered: a body that has left the cache
/// (its chunk reclaimed while the meta entry stayed, or unreadable) is then filled again as a
/// miss instead of being answered as a hit whose bytes come from the origin by range.
pub(crate) async fn first_chunk(ctx: &Ctx, m: &ObjectMeta, key: &str) -> FirstChunk {
    let Body::Chunked {
        object_id, crcs, ..
    } = &m.body
    else {
        return FirstChunk::NotRead;
    };
    if !whole_body_wanted(ctx, m) {
        return FirstChunk::NotRead;
    }
    let ckey = crate::cache::store::chunk_key(key, *object_id, 0);
    match ctx
        .store()
        .get_chunk(&ckey, crcs.first().copied(), Some(m.body.len()))
        .await
    {
        Some(c) => FirstChunk::Read(c.data),
        None => FirstChunk::Gone,
    }
}

/// Serve a stored object (inline body, or chunks read back by range).
pub(crate) fn serve_stored(
    ctx: &Ctx,
    m: &Arc<ObjectMeta>,
    key: &str,
    o: Outcome,
    now: u64,
) -> HttpResponse {
    serve_stored_primed(ctx, m, key, o, now, None)
}

/// [`serve_stored`] with the object's first chunk already read ([`first_chunk`]).
pub(crate) fn serve_stored_primed(
    ctx: &Ctx,
    m: &Arc<ObjectMeta>,
    key: &str,
    o: Outcome,
    now: u64,
    first: Option<Bytes>,
) -> HttpResponse {
    let age_s = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now) / 1000;
    let len = m.body.len();
    let (code, a, e) = match answer(ctx, m.status, &m.headers, Some(len)) {
        Answer::PreconditionFailed => return precondition_failed(ctx, &m.headers, &o),
        Answer::NotModified => return not_modified_response(ctx, &m.headers, age_s, &o),
        Answer::Unsatisfiable => return unsatisfiable(ctx, len, &o),
        Answer::Bytes(c, a, e) => (c, a, e.min(len)),
    };
    let a = a.min(e);
    let mut b = response(ctx, code, &m.headers, age_s, &o);
    if ctx.hop.is_some() {
        for (n, v) in crate::pop::answer::peer_headers(&m.tags, &m.freshness) {
            b.append_header((n, v));
        }
    }
    if bodiless_status(code) {
        return bodiless(b);
    }
    with_range(&mut b, code, a, e, len);
    if ctx.head {
        return b.no_chunking(e - a).body(empty_body());
    }
    match &m.body {
        Body::Inline { data, .. } => b.body(Pieces(data.slice(plan::span(a, e, data.len())))),
        Body::Chunked {
            object_id,
            chunk_size,
            ..
        } => {
            let src = BodySource {
                store: ctx.store().clone(),
                key: key.to_string(),
                object_id: *object_id,
                chunk_size: *chunk_size as u64,
                len: Some(len),
                meta: Some(m.clone()),
                fill: None,
                refetch: Some(refetch(ctx, m.header(&header::ETAG))),
            };
            match first {
                Some(first) if a == 0 => b.body(SizedStream::new(
                    e,
                    body_stream_primed(src, 0, Some(e), first),
                )),
                _ => b.body(SizedStream::new(e - a, body_stream(src, a, Some(e)))),
            }
        }
    }
}

/// Serve a fill in progress: frames from the fill, then stored chunks for readers behind it.
pub(crate) fn serve_streaming(
    ctx: &Ctx,
    fill: FillReader,
    h: &StreamHead,
    o: Outcome,
    extra: &[(HeaderName, HeaderValue)],
) -> HttpResponse {
    let (code, a, e) = match answer(ctx, h.status, &h.headers, h.length) {
        Answer::PreconditionFailed => return precondition_failed(ctx, &h.headers, &o),
        Answer::NotModified => return not_modified_response(ctx, &h.headers, h.age_s, &o),
        Answer::Unsatisfiable => return unsatisfiable(ctx, h.length.unwrap_or(0), &o),
        Answer::Bytes(c, a, e) => (c, a, e),
    };
    let mut b = response(ctx, code, &h.headers, h.age_s, &o);
    for (n, v) in extra {
        b.append_header((n.clone(), v.clone()));
    }
    if ctx.hop.is_some() {
        for (n, v) in &h.peer_headers {
            b.append_header((n.clone(), v.clone()));
        }
    }
    if bodiless_status(code) {
        return bodiless(b);
    }
    if let Some(len) = h.length {
        with_range(&mut b, code, a, e, len);
    }
    if ctx.head {
        if let Some(len) = h.length {
            b.no_chunking(e.min(len).saturating_sub(a));
        }
        return b.body(empty_body());
    }
    let src = BodySource {
        store: ctx.store().clone(),
        key: h.store_key.clone(),
        object_id: h.object_id,
        chunk_size: h.chunk_size,
        len: h.length,
        meta: None,
        fill: Some(fill),
        refetch: Some(refetch(ctx, find(&h.headers, &header::ETAG))),
    };
    match h.length {
        Some(len) => {
            let e = e.min(len);
            let a = a.min(e);
            b.body(SizedStream::new(e - a, body_stream(src, a, Some(e))))
        }
        None => b.body(BodyStream::new(body_stream(src, 0, None))),
    }
}

/// Stream an origin response straight to the client (nothing stored). `length` is the
/// response's [`hdr::content_length`], read once by the caller.
pub(crate) fn stream_origin(
    ctx: &Ctx,
    resp: OriginResponse,
    length: Option<u64>,
    o: Outcome,
) -> HttpResponse {
    let status = resp.status().as_u16();
    let headers = hdr::response_headers(resp.headers(), true);
    // Not stored here, so its age is what the upstream said (an origin-side cache, a PoP
    // peer), not 0: downstream caches count freshness from it (RFC 9111 §5.1).
    let age_s = resp
        .headers()
        .get(header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(crate::cache::fields::age_s)
        .unwrap_or(0);
    let mut b = response(ctx, status, &headers, age_s, &o);
    if bodiless_status(status) {
        return bodiless(b);
    }
    if ctx.head {
        if let Some(l) = length {
            b.no_chunking(l);
        }
        return b.body(empty_body());
    }
    let idle = ctx.route().idle_timeout();
    let body = futures_util::stream::unfold(Some(resp), move |r| async move {
        let mut r = r?;
        match next_frame(&mut r, idle).await {
            Ok(Some(b)) => Some((Ok(b), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    match length {
        Some(l) => b.body(SizedStream::new(l, body)),
        None => b.body(BodyStream::new(body)),
    }
}
