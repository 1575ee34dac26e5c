//! Ranged fills (slice fills): a `Range` request for an object that is not stored fetches
//! only the chunks that cover the range, not the whole object.
//!
//! The leader ([`crate::lead`]) asks [`wanted`] which chunks the client's range covers (one
//! `bytes=a-b` or `bytes=a-` range; at most [`MAX_CHUNKS`] chunks, the rest of an open range is
//! fetched as it is read), then `fill` asks the origin for exactly those chunks. On a `206`
//! with a strong `ETag`, a `Content-Range` that starts where asked and a storable response,
//! the chunks are stored and the object's meta entry is written with the total length but no
//! per-chunk CRCs: the chunks that were not fetched are missing, and every later read of them
//! ([`crate::body`]) fetches them from the origin by `Range` with `If-Match` (so all chunks
//! belong to the same version of the object) and stores them. A 1-byte range therefore costs
//! one chunk from the origin, and video seeking gets its first byte after one chunk fill.
//!
//! An origin that ignores ranges answers `200` with the whole object: the leader fills from
//! that answer as usual. Anything else — no strong ETag, `Vary`, a response that may not be
//! stored, another status — makes the leader fall back to the ordinary whole-object fill (a
//! second origin request).

use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use bytes::{Bytes, BytesMut};

use crate::cache::meta::{Body, Chunk, ObjectMeta};
use crate::cache::policy::{self, ResponseFacts};
use crate::cache::store::chunk_key;
use crate::context::Ctx;
use crate::error::EdgeError;
use crate::headers as hdr;
use crate::origin::{next_frame, OriginResponse};

/// Chunks fetched at most by one ranged fill (the rest of a longer range is fetched as the
/// client reads it).
pub const MAX_CHUNKS: u64 = 16;

/// The client's single byte range, as chunk indexes `[first, last]` (both included), when the
/// request is a `GET` with one `bytes=a-b` or `bytes=a-` range. Suffix ranges (`-n`) need the
/// length and several ranges are rare: both are `None` (whole-object fill).
pub fn wanted(method: &Method, h: &HeaderMap, chunk_size: u64) -> Option<(u64, u64)> {
    if method != Method::GET || chunk_size == 0 || h.get_all(header::RANGE).count() != 1 {
        return None;
    }
    let v = h.get(header::RANGE)?.to_str().ok()?.trim();
    let spec = v.strip_prefix("bytes=")?.trim();
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let a: u64 = digits(a.trim())?;
    let first = a / chunk_size;
    let last = match b.trim() {
        "" => first.saturating_add(MAX_CHUNKS - 1),
        b => {
            let b = digits(b)?;
            if b < a {
                return None;
            }
            (b / chunk_size).min(first.saturating_add(MAX_CHUNKS - 1))
        }
    };
    Some((first, last))
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `Content-Range: bytes s-e/total` → `(s, e, total)`; `None` when malformed or inconsistent.
pub fn content_range(v: &HeaderValue) -> Option<(u64, u64, u64)> {
    let s = v.to_str().ok()?.trim().strip_prefix("bytes ")?;
    let (range, total) = s.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let (a, b, total) = (digits(a.trim())?, digits(b.trim())?, digits(total.trim())?);
    (a <= b && b < total).then_some((a, b, total))
}

/// What a ranged fill did.
pub enum Ranged {
    /// Stored (the chunks fetched, and the meta entry): serve the client from it.
    Stored(Arc<ObjectMeta>),
    /// The origin ignored the range and is sending the whole object (`200`): the leader fills
    /// from this answer as from an ordinary fill (no second request).
    Whole(OriginResponse),
    /// Not usable as a ranged fill: fill the whole object instead.
    Fallback(&'static str),
}

/// The [`Ranged::Fallback`] reason of an object over the host's `max_object_size`.
pub const TOO_LARGE: &str = "too-large";

/// Fetch chunks `[first, last]` of the object behind `ctx` and store them under `key`.
pub(crate) async fn fill(
    ctx: &Ctx,
    key: &str,
    (first, last): (u64, u64),
    mut headers: HeaderMap,
) -> Result<Ranged, EdgeError> {
    let store = ctx.store();
    let cs = store.chunk_size() as u64;
    let from = first.saturating_mul(cs);
    let to = last.saturating_add(1).saturating_mul(cs).saturating_sub(1);
    headers.insert(
        header::RANGE,
        HeaderValue::from_str(&format!("bytes={from}-{to}"))
            .map_err(|_| EdgeError::BadRequest("range"))?,
    );
    let route = ctx.route().clone();
    let request_time = cdn_shared::unix_ms();
    let t0 = std::time::Instant::now();
    let res = ctx
        .origins
        .send(&route, Method::GET, &ctx.path_q, headers, None)
        .await;
    crate::account::record_origin(&ctx.req, &res, t0);
    let mut resp = res?;
    let now = cdn_shared::unix_ms();
    match resp.status().as_u16() {
        206 => {}
        200 => return Ok(Ranged::Whole(resp)),
        _ => return Ok(Ranged::Fallback("origin-status")),
    }
    let etag = resp.headers().get(header::ETAG).cloned();
    if etag
        .as_ref()
        .is_none_or(|e| e.as_bytes().starts_with(b"W/"))
    {
        return Ok(Ranged::Fallback("no-strong-etag"));
    }
    let Some((s, e, total)) = resp
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(content_range)
    else {
        return Ok(Ranged::Fallback("bad-content-range"));
    };
    if s != from || e != to.min(total.saturating_sub(1)) {
        return Ok(Ranged::Fallback("content-range-mismatch"));
    }
    if total > route.max_object_size {
        return Ok(Ranged::Fallback(TOO_LARGE));
    }
    let facts = ResponseFacts::parse(resp.headers()).received_at(now);
    if !facts.vary.is_empty() {
        return Ok(Ranged::Fallback("vary"));
    }
    let auth = ctx.req.headers().contains_key(header::AUTHORIZATION);
    // Stored as the 200 it is part of.
    let Ok(fr) = policy::storable(&Method::GET, auth, 200, &facts, &route.policy) else {
        return Ok(Ranged::Fallback("not-storable"));
    };
    let object_id: u64 = rand::random();
    let want = e - s + 1;
    let mut buf = BytesMut::new();
    let mut got = 0u64;
    let mut idx = first;
    let mut crcs = Vec::new();
    while let Some(b) = next_frame(&mut resp, route.idle_timeout()).await? {
        got = got.saturating_add(b.len() as u64);
        if got > want {
            return Err(EdgeError::OriginBroken(
                "ranged fill longer than its range".into(),
            ));
        }
        buf.extend_from_slice(&b);
        while buf.len() as u64 >= cs {
            let data = buf.split_to(cs as usize).freeze();
            crcs.push(put(ctx, key, object_id, idx, data, total));
            idx += 1;
        }
    }
    if got != want {
        return Err(EdgeError::OriginBroken(
            "ranged fill shorter than its range".into(),
        ));
    }
    if !buf.is_empty() {
        crcs.push(put(ctx, key, object_id, idx, buf.freeze(), total));
    }
    // Complete when the range was the whole object: then every CRC is known.
    let complete = s == 0 && e + 1 == total;
    let mut stored_headers = hdr::response_headers(resp.headers(), false);
    stored_headers.retain(|(n, _)| *n != header::CONTENT_RANGE);
    let meta = Arc::new(ObjectMeta {
        url: ctx.url.clone(),
        status: 200,
        headers: stored_headers,
        request_time_ms: request_time,
        response_time_ms: now,
        initial_age_ms: policy::initial_age_ms(&facts, request_time, now),
        freshness: fr,
        invalidated: false,
        tags: hdr::purge_tags(resp.headers()),
        body: Body::Chunked {
            len: total,
            chunk_size: cs as u32,
            object_id,
            crcs: if complete { crcs } else { Vec::new() },
        },
    });
    store.put_object(key, meta.clone());
    Ok(Ranged::Stored(meta))
}

fn put(ctx: &Ctx, key: &str, object_id: u64, idx: u64, data: Bytes, total: u64) -> u32 {
    let crc = crc32fast::hash(&data);
    ctx.store()
        .put_chunk(chunk_key(key, object_id, idx), Chunk { crc, data }, total);
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn chunks_covering_the_range() {
        let cs = 1024;
        let w = |v| wanted(&Method::GET, &range(v), cs);
        assert_eq!(w("bytes=0-0"), Some((0, 0)));
        assert_eq!(w("bytes=1023-1024"), Some((0, 1)));
        assert_eq!(w("bytes=5000-"), Some((4, 4 + MAX_CHUNKS - 1)));
        assert_eq!(w("bytes=0-99999999"), Some((0, MAX_CHUNKS - 1)));
        assert_eq!(w("bytes= 2048 - 3000"), Some((2, 2)));
        for bad in [
            "bytes=-500",
            "bytes=0-1,5-6",
            "bytes=9-3",
            "items=0-1",
            "bytes=x-1",
            "bytes=18446744073709551616-",
            "bytes=+1-2",
        ] {
            assert_eq!(w(bad), None, "{bad}");
        }
        assert_eq!(
            wanted(&Method::GET, &range("bytes=18446744073709551615-"), cs),
            Some((u64::MAX / cs, u64::MAX / cs + MAX_CHUNKS - 1))
        );
        assert_eq!(wanted(&Method::HEAD, &range("bytes=0-0"), cs), None);
        assert_eq!(wanted(&Method::GET, &HeaderMap::new(), cs), None);
    }

    #[test]
    fn content_range_parsing() {
        let cr = |v: &'static str| content_range(&HeaderValue::from_static(v));
        assert_eq!(cr("bytes 0-1023/4096"), Some((0, 1023, 4096)));
        assert_eq!(cr("bytes 4095-4095/4096"), Some((4095, 4095, 4096)));
        for bad in [
            "bytes 0-4096/4096",
            "bytes 5-4/10",
            "bytes */4096",
            "bytes 0-1/*",
            "0-1/2",
            "bytes 0-1/99999999999999999999999",
        ] {
            assert_eq!(cr(bad), None, "{bad}");
        }
    }
}
