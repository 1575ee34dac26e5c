//! Compression at the edge (`[hosts.compress]`, issue 14 point 5): a compressible response
//! that the origin sent uncompressed is served br, zstd or gzip by the client's
//! `Accept-Encoding`, with one origin fetch for every coding.
//!
//! # Design
//!
//! * The identity object stays what it is today: the single origin fill, stored under the
//!   request's key; freshness, revalidation, stale serving and purges are decided on it alone.
//! * On a hit (`serve`), [`decide`] (pure) says whether the object is compressible here and
//!   [`crate::negotiate::choose`] which coding the client gets. The encoded variant lives under a
//!   derived key, `<key>\n#ce:<coding>:<fingerprint>`, where the fingerprint covers the identity
//!   body's version (CRC or chunked object id, length) and its validators, so a refreshed
//!   body never meets an old encoding. The first hit that needs a coding reads the stored
//!   identity body (inline, or its chunks), compresses it once on actix's blocking pool
//!   ([`encode`]), stores the result as an ordinary object (inline body, same URL and purge
//!   tags, so purges by URL, prefix or tag remove it with the identity object) and serves it;
//!   later hits serve the stored bytes. While one request compresses a variant, others for
//!   the same variant get identity (no pile-up); at most [`MAX_COMPRESSING`] compressions run
//!   at once per process.
//! * A miss (the fill) is served identity, streamed as today, with `Vary: Accept-Encoding`
//!   added when the type is compressible (`mark`); the next hit is compressed.
//! * Responses: `Content-Encoding`, `Vary: Accept-Encoding` (on every response of a
//!   compressible object, identity included), the ETag made distinct by a suffix inside the
//!   quotes (`"abc"` → `"abc-br"`, weakness kept; strong stays strong because the stored
//!   encoded bytes are what every hit gets), `Content-Length` of the encoded bytes.
//! * Ranges on an encoded variant are ranges of the encoded bytes (RFC 9110 §14: ranges apply
//!   to the selected representation), with `Content-Range` over the encoded length; `If-Range`
//!   with the suffixed ETag works. HEAD gets the encoded variant's headers and length.
//! * Never compressed: a response with `Content-Encoding` (other than `identity`), a type
//!   outside `types`, `Cache-Control: no-transform`, a status other than 200, bodies outside
//!   `[min_size, max_size]`.
//! * When the origin itself sends `Vary: Accept-Encoding`, the variant key holds the
//!   request's [`crate::negotiate::bucket`] instead of its raw value (see [`crate::cache::key`]).

pub mod encode;

use std::sync::{Arc, OnceLock};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::HttpResponse;
use bytes::{Bytes, BytesMut};
use cdn_shared::config::compress::{Compress, Encoding};
use dashmap::DashMap;
use futures_util::StreamExt;

use crate::body::{body_stream, BodySource, Refetch};
use crate::cache::meta::{Body, Entry, ObjectMeta};
use crate::context::Ctx;
use crate::headers::Outcome;
use crate::metrics;
use crate::negotiate;
use crate::render::{serve_stored, serve_stored_primed};

/// Compressions running at once (per process); a hit that would start one more gets identity.
pub const MAX_COMPRESSING: usize = 64;

/// What a stored (or streaming) response becomes for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Not compressible here (host without `[hosts.compress]`, type, size, status, already
    /// encoded, no-transform): served as it is, nothing added.
    AsIs,
    /// Compressible, but the client gets identity: `Vary: Accept-Encoding` added.
    Identity,
    /// Serve this coding.
    Encode(Encoding),
}

impl Decision {
    /// Label for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::AsIs => "as-is",
            Decision::Identity => "identity",
            Decision::Encode(e) => e.as_str(),
        }
    }
}

fn has_token(v: &HeaderValue, token: &str) -> bool {
    v.to_str()
        .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
}

/// Whether a response (status, header lookup, body length when known) is one the host
/// compresses: it then varies on `Accept-Encoding`.
pub fn compressible<'a>(
    cfg: &Compress,
    status: u16,
    get: impl Fn(&HeaderName) -> Option<&'a HeaderValue>,
    len: Option<u64>,
) -> bool {
    if status != 200 {
        return false;
    }
    if get(&header::CONTENT_ENCODING).is_some_and(|v| !has_token(v, "identity")) {
        return false;
    }
    if get(&header::CACHE_CONTROL).is_some_and(|v| has_token(v, "no-transform")) {
        return false;
    }
    let Some(ct) = get(&header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    if !cfg.compressible(ct) {
        return false;
    }
    len.is_none_or(|l| l >= cfg.min_size.as_u64() && l <= cfg.max_size.as_u64())
}

/// Decide for a stored response and a request's `Accept-Encoding` (pure).
pub fn decide(
    cfg: Option<&Compress>,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    len: u64,
    accept_encoding: Option<&str>,
) -> Decision {
    let Some(cfg) = cfg else {
        return Decision::AsIs;
    };
    let get = |n: &HeaderName| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v);
    if !compressible(cfg, status, get, Some(len)) {
        return Decision::AsIs;
    }
    match negotiate::choose(accept_encoding, &cfg.encodings) {
        Some(e) => Decision::Encode(e),
        None => Decision::Identity,
    }
}

/// [`decide`] for a hit on `m`: the route's `[hosts.compress]` and the request's
/// `Accept-Encoding`.
fn decision(ctx: &Ctx, m: &ObjectMeta) -> Decision {
    let ae = negotiate::accept_encoding(ctx.end_to_end());
    decide(
        ctx.route().cfg.compress.as_ref(),
        m.status,
        &m.headers,
        m.body.len(),
        ae.as_deref(),
    )
}

/// Whether a hit on `m` is answered with an encoded variant, so its identity body is not read
/// (stored under its own key, the variant does not need it once made).
pub(crate) fn encodes(ctx: &Ctx, m: &ObjectMeta) -> bool {
    matches!(decision(ctx, m), Decision::Encode(_))
}

/// Serve a stored object for a hit: the encoded variant the client asks for (compressed and
/// stored on first use), else the object as [`render::serve_stored`](crate::render) does,
/// with `Vary: Accept-Encoding` when it is compressible. `first`: the object's first chunk when
/// the caller read it already (used when the object is served as stored).
pub(crate) async fn serve(
    ctx: &Ctx,
    m: &Arc<ObjectMeta>,
    key: &str,
    o: Outcome,
    now: u64,
    first: Option<Bytes>,
) -> HttpResponse {
    let cfg = ctx.route().cfg.compress.as_ref();
    match (decision(ctx, m), cfg) {
        (Decision::AsIs, _) | (_, None) => serve_stored_primed(ctx, m, key, o, now, first),
        (Decision::Identity, _) => with_vary(serve_stored_primed(ctx, m, key, o, now, first)),
        (Decision::Encode(enc), Some(cfg)) => match variant(ctx, cfg, m, key, enc).await {
            Some((vkey, v)) => serve_stored(ctx, &v, &vkey, o, now),
            None => with_vary(serve_stored_primed(ctx, m, key, o, now, first)),
        },
    }
}

/// A response from the fill path (a miss or a revalidation, served identity): add
/// `Vary: Accept-Encoding` when the host would compress it.
pub(crate) fn mark(ctx: &Ctx, resp: HttpResponse) -> HttpResponse {
    let Some(cfg) = ctx.route().cfg.compress.as_ref() else {
        return resp;
    };
    // A 206 of a compressible object varies too: judge the representation (status 200).
    let status = match resp.status().as_u16() {
        200 | 206 => 200,
        s => s,
    };
    let len = match (resp.status().as_u16(), ctx.head, resp.body().size()) {
        (200, false, BodySize::Sized(n)) => Some(n),
        _ => None,
    };
    if compressible(cfg, status, |n| resp.headers().get(n), len) {
        with_vary(resp)
    } else {
        resp
    }
}

/// Add `Vary: Accept-Encoding` unless the response already varies on it (or on `*`).
pub(crate) fn with_vary(mut resp: HttpResponse) -> HttpResponse {
    add_vary(resp.headers_mut());
    resp
}

fn add_vary(h: &mut HeaderMap) {
    let present = h
        .get_all(header::VARY)
        .any(|v| has_token(v, "accept-encoding") || has_token(v, "*"));
    if !present {
        h.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The fingerprint of an identity object's version: its body (CRC, or chunked object id and
/// CRCs) and validators.
fn fingerprint(m: &ObjectMeta) -> u32 {
    let mut h = crc32fast::Hasher::new();
    match &m.body {
        Body::Inline { data, crc } => {
            h.update(&[1]);
            h.update(&(data.len() as u64).to_le_bytes());
            h.update(&crc.to_le_bytes());
        }
        Body::Chunked {
            len,
            object_id,
            crcs,
            ..
        } => {
            h.update(&[2]);
            h.update(&len.to_le_bytes());
            h.update(&object_id.to_le_bytes());
            for c in crcs {
                h.update(&c.to_le_bytes());
            }
        }
    }
    for n in [header::ETAG, header::LAST_MODIFIED] {
        h.update(m.header(&n).map(|v| v.as_bytes()).unwrap_or(b"-"));
        h.update(b"\n");
    }
    h.finalize()
}

/// The store key of the `enc` variant of the identity object `m` stored under `key`.
pub fn variant_key(key: &str, enc: Encoding, m: &ObjectMeta) -> String {
    format!(
        "{key}{}{}:{:08x}",
        crate::cache::key::ENCODED_COPY,
        enc.as_str(),
        fingerprint(m)
    )
}

/// The ETag of an encoded variant: the coding appended inside the quotes (`"v1"` →
/// `"v1-br"`, `W/"v1"` → `W/"v1-br"`); `None` for a malformed ETag (then none is sent).
pub fn variant_etag(etag: &HeaderValue, enc: Encoding) -> Option<HeaderValue> {
    let s = etag.to_str().ok()?.trim();
    let (weak, opaque) = match s.strip_prefix("W/") {
        Some(rest) => ("W/", rest),
        None => ("", s),
    };
    let inner = opaque.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('"') {
        return None;
    }
    HeaderValue::from_str(&format!("{weak}\"{inner}-{}\"", enc.as_str())).ok()
}

/// The encoded variant's stored object: the identity's headers with `Content-Encoding`,
/// the variant ETag and `Vary: Accept-Encoding`; the identity's times, freshness, URL and tags.
fn encoded_meta(m: &ObjectMeta, enc: Encoding, data: Bytes) -> ObjectMeta {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::with_capacity(m.headers.len() + 2);
    for (n, v) in &m.headers {
        if *n == header::CONTENT_LENGTH || *n == header::CONTENT_ENCODING {
            continue;
        }
        if *n == header::ETAG {
            if let Some(e) = variant_etag(v, enc) {
                headers.push((n.clone(), e));
            }
            continue;
        }
        headers.push((n.clone(), v.clone()));
    }
    let varies = headers
        .iter()
        .any(|(n, v)| *n == header::VARY && (has_token(v, "accept-encoding") || has_token(v, "*")));
    if !varies {
        headers.push((header::VARY, HeaderValue::from_static("Accept-Encoding")));
    }
    headers.push((
        header::CONTENT_ENCODING,
        HeaderValue::from_static(enc.as_str()),
    ));
    ObjectMeta {
        url: m.url.clone(),
        status: m.status,
        headers,
        request_time_ms: m.request_time_ms,
        response_time_ms: m.response_time_ms,
        initial_age_ms: m.initial_age_ms,
        freshness: m.freshness,
        invalidated: false,
        tags: m.tags.clone(),
        body: Body::Inline {
            crc: crc32fast::hash(&data),
            data,
        },
    }
}

/// A stored variant served for identity `m`: with `m`'s times (the identity may have been
/// revalidated since the variant was made, which refreshes its age but not its bytes).
fn aligned(v: Arc<ObjectMeta>, m: &ObjectMeta) -> Arc<ObjectMeta> {
    if v.response_time_ms == m.response_time_ms
        && v.initial_age_ms == m.initial_age_ms
        && v.request_time_ms == m.request_time_ms
    {
        return v;
    }
    let mut a = (*v).clone();
    a.request_time_ms = m.request_time_ms;
    a.response_time_ms = m.response_time_ms;
    a.initial_age_ms = m.initial_age_ms;
    a.freshness = m.freshness;
    Arc::new(a)
}

/// Variant keys being compressed right now.
fn compressing() -> &'static DashMap<String, ()> {
    static SET: OnceLock<DashMap<String, ()>> = OnceLock::new();
    SET.get_or_init(DashMap::new)
}

/// A claim on compressing one variant; released on drop.
struct Claim(String);

impl Claim {
    fn take(vkey: &str) -> Option<Claim> {
        let set = compressing();
        if set.len() >= MAX_COMPRESSING {
            return None;
        }
        match set.entry(vkey.to_string()) {
            dashmap::mapref::entry::Entry::Occupied(_) => None,
            dashmap::mapref::entry::Entry::Vacant(v) => {
                v.insert(());
                Some(Claim(vkey.to_string()))
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        compressing().remove(&self.0);
    }
}

fn count(enc: Encoding, result: &'static str) {
    ::metrics::counter!(metrics::COMPRESS, "encoding" => enc.as_str(), "result" => result)
        .increment(1);
}

/// The stored `enc` variant of `m`, made (and stored) now if there is none; `None` when it
/// cannot be had now (another request is making it, too many compressions, or the identity
/// body could not be read): the caller serves identity.
async fn variant(
    ctx: &Ctx,
    cfg: &Compress,
    m: &Arc<ObjectMeta>,
    key: &str,
    enc: Encoding,
) -> Option<(String, Arc<ObjectMeta>)> {
    let vkey = variant_key(key, enc, m);
    if let Some(Entry::Object(v)) = ctx.store().get(&vkey).await {
        count(enc, "cached");
        return Some((vkey, aligned(v, m)));
    }
    let Some(_claim) = Claim::take(&vkey) else {
        count(enc, "busy");
        return None;
    };
    let data = match identity_body(ctx, m, key, cfg.max_size.as_u64()).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(key, error = %e, "identity body unreadable; served uncompressed");
            count(enc, "error");
            return None;
        }
    };
    let levels = encode::Levels::from(cfg);
    let in_len = data.len() as u64;
    let encoded = match actix_web::web::block(move || encode::encode(enc, levels, &data)).await {
        Ok(Ok(e)) => e,
        Ok(Err(e)) => {
            tracing::warn!(key, error = %e, "compression failed; served uncompressed");
            count(enc, "error");
            return None;
        }
        Err(e) => {
            tracing::warn!(key, error = %e, "compression task failed; served uncompressed");
            count(enc, "error");
            return None;
        }
    };
    ::metrics::counter!(metrics::COMPRESS_BYTES_IN, "encoding" => enc.as_str()).increment(in_len);
    ::metrics::counter!(metrics::COMPRESS_BYTES_OUT, "encoding" => enc.as_str())
        .increment(encoded.len() as u64);
    count(enc, "encoded");
    let v = Arc::new(encoded_meta(m, enc, Bytes::from(encoded)));
    ctx.store().put_object(&vkey, v.clone());
    Some((vkey, v))
}

/// The whole identity body of a stored object (inline, or its chunks read back — a missing
/// chunk is refetched from the origin by range, as for any hit), at most `max` bytes.
async fn identity_body(
    ctx: &Ctx,
    m: &Arc<ObjectMeta>,
    key: &str,
    max: u64,
) -> Result<Bytes, crate::error::EdgeError> {
    let len = m.body.len();
    if len > max {
        return Err(crate::error::EdgeError::OriginBroken(
            "body larger than compress.max_size".into(),
        ));
    }
    match &m.body {
        Body::Inline { data, .. } => Ok(data.clone()),
        Body::Chunked {
            object_id,
            chunk_size,
            ..
        } => {
            let src = BodySource {
                store: ctx.store().clone(),
                key: key.to_string(),
                object_id: *object_id,
                chunk_size: u64::from(*chunk_size),
                len: Some(len),
                meta: Some(m.clone()),
                fill: None,
                refetch: Some(Refetch {
                    origins: ctx.origins.clone(),
                    route: ctx.route().clone(),
                    path_and_query: ctx.path_q.clone(),
                    etag: m.header(&header::ETAG).cloned(),
                }),
            };
            let mut buf = BytesMut::with_capacity(usize::try_from(len).unwrap_or(0));
            let stream = body_stream(src, 0, Some(len));
            futures_util::pin_mut!(stream);
            while let Some(b) = stream.next().await {
                let b = b?;
                if (buf.len() + b.len()) as u64 > len {
                    return Err(crate::error::EdgeError::OriginBroken(
                        "stored body longer than its length".into(),
                    ));
                }
                buf.extend_from_slice(&b);
            }
            if buf.len() as u64 != len {
                return Err(crate::error::EdgeError::OriginBroken(
                    "stored body shorter than its length".into(),
                ));
            }
            Ok(buf.freeze())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(pairs: &[(&'static str, &'static str)]) -> Vec<(HeaderName, HeaderValue)> {
        pairs
            .iter()
            .map(|(k, v)| (HeaderName::from_static(k), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn decisions() {
        let cfg = Compress::default();
        let text = hs(&[("content-type", "text/plain")]);
        let d = |h: &[(HeaderName, HeaderValue)], status, len, ae| {
            decide(Some(&cfg), status, h, len, ae)
        };
        assert_eq!(
            d(&text, 200, 5000, Some("gzip, br")),
            Decision::Encode(Encoding::Br)
        );
        assert_eq!(
            d(&text, 200, 5000, Some("gzip")),
            Decision::Encode(Encoding::Gzip)
        );
        assert_eq!(d(&text, 200, 5000, None), Decision::Identity);
        assert_eq!(d(&text, 200, 5000, Some("*;q=0")), Decision::Identity);
        assert_eq!(decide(None, 200, &text, 5000, Some("br")), Decision::AsIs);
        assert_eq!(d(&text, 404, 5000, Some("br")), Decision::AsIs);
        assert_eq!(
            d(&text, 200, 10, Some("br")),
            Decision::AsIs,
            "below min_size"
        );
        assert_eq!(
            d(&text, 200, 9 * 1024 * 1024, Some("br")),
            Decision::AsIs,
            "above max_size"
        );
        let png = hs(&[("content-type", "image/png")]);
        assert_eq!(d(&png, 200, 5000, Some("br")), Decision::AsIs);
        let none = hs(&[]);
        assert_eq!(d(&none, 200, 5000, Some("br")), Decision::AsIs);
        let gz = hs(&[("content-type", "text/plain"), ("content-encoding", "gzip")]);
        assert_eq!(d(&gz, 200, 5000, Some("br")), Decision::AsIs);
        let id = hs(&[
            ("content-type", "text/plain"),
            ("content-encoding", "identity"),
        ]);
        assert_eq!(
            d(&id, 200, 5000, Some("br")),
            Decision::Encode(Encoding::Br)
        );
        let nt = hs(&[
            ("content-type", "application/json"),
            ("cache-control", "max-age=60, No-Transform"),
        ]);
        assert_eq!(d(&nt, 200, 5000, Some("br")), Decision::AsIs);
    }

    #[test]
    fn etags() {
        let e = |v: &'static str| {
            variant_etag(&HeaderValue::from_static(v), Encoding::Br)
                .map(|h| h.to_str().unwrap().to_string())
        };
        assert_eq!(e("\"v1\"").as_deref(), Some("\"v1-br\""));
        assert_eq!(e("W/\"v1\"").as_deref(), Some("W/\"v1-br\""));
        assert_eq!(e("\"\"").as_deref(), Some("\"-br\""));
        assert_eq!(e("v1"), None);
        assert_eq!(e("\"v1"), None);
        assert_eq!(e("\"a\"b\""), None);
    }

    #[test]
    fn vary_is_added_once() {
        let mut h = HeaderMap::new();
        add_vary(&mut h);
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).count(), 1);
        let mut h = HeaderMap::new();
        h.insert(
            header::VARY,
            HeaderValue::from_static("Origin, accept-encoding"),
        );
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).count(), 1);
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("Origin"));
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).count(), 2);
    }
}
