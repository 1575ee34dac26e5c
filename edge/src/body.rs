//! Reading a body by byte range, from wherever its bytes are: the in-flight fill's buffered
//! frames, the stored chunks, or — for a chunk that is missing (evicted, a dropped disk
//! write) or failed its checksum — the origin, by `Range`, verified against the stored CRC
//! and written back. Wrong bytes are never served: a mismatch ends the stream with an error
//! (the client sees a truncated response) and drops the object.
//!
//! Bodies go to the HTTP layer in pieces of at most [`PIECE`] bytes (slices of the stored
//! bytes, not copies). Over HTTP/1.1 the vendored actix-http writes a piece of 16 KiB or
//! more from its own buffer (smaller pieces and chunked bodies are copied into the
//! connection's write buffer), so a connection that stops reading holds a slice of the stored
//! body, never a copy of the whole of it.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::cache::meta::{Body, Chunk, ObjectMeta};
use crate::cache::store::{chunk_key, Store};
use crate::error::EdgeError;
use crate::fill::{FillReader, Read};
use crate::origin::{next_frame, HostRoute, Origins};

/// How to refetch a missing chunk from the origin.
pub struct Refetch {
    /// This worker's origin clients.
    pub origins: Rc<Origins>,
    /// The host.
    pub route: HostRoute,
    /// Origin path and query.
    pub path_and_query: String,
    /// Strong ETag of the stored object (sent as `If-Match`).
    pub etag: Option<HeaderValue>,
}

/// Where the bytes of one object are.
pub struct BodySource {
    /// The store.
    pub store: Arc<Store>,
    /// Store key of the object (chunk keys derive from it).
    pub key: String,
    /// Stored version id.
    pub object_id: u64,
    /// Chunk size.
    pub chunk_size: u64,
    /// Total length when known.
    pub len: Option<u64>,
    /// The stored object (CRCs), when complete.
    pub meta: Option<Arc<ObjectMeta>>,
    /// This reader of the in-flight fill, while it runs.
    pub fill: Option<FillReader>,
    /// Origin access for missing chunks.
    pub refetch: Option<Refetch>,
}

/// Largest piece of a body handed to the HTTP layer at once.
pub const PIECE: usize = 64 * 1024;

/// A stored body sent in [`PIECE`]-sized slices (zero-copy), with its length announced.
pub struct Pieces(pub Bytes);

impl actix_web::body::MessageBody for Pieces {
    type Error = std::convert::Infallible;

    fn size(&self) -> actix_web::body::BodySize {
        actix_web::body::BodySize::Sized(self.0.len() as u64)
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        let b = &mut self.get_mut().0;
        if b.is_empty() {
            return std::task::Poll::Ready(None);
        }
        let n = b.len().min(PIECE);
        std::task::Poll::Ready(Some(Ok(b.split_to(n))))
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        if self.0.len() <= PIECE {
            Ok(self.0)
        } else {
            Err(self)
        }
    }
}

struct Cursor {
    src: BodySource,
    pos: u64,
    end: Option<u64>,
    failed: bool,
    /// The rest of the last chunk read (served in pieces before reading the next).
    pending: Bytes,
}

/// Stream bytes `[start, end)` (`end = None`: to the end of the object).
pub fn body_stream(
    src: BodySource,
    start: u64,
    end: Option<u64>,
) -> impl Stream<Item = Result<Bytes, EdgeError>> {
    body_stream_primed(src, start, end, Bytes::new())
}

/// [`body_stream`] whose first bytes, from `start` on, were already read (`first`: a chunk
/// read before the response was answered).
pub fn body_stream_primed(
    src: BodySource,
    start: u64,
    end: Option<u64>,
    first: Bytes,
) -> impl Stream<Item = Result<Bytes, EdgeError>> {
    let end = end.or(src.len);
    futures_util::stream::unfold(
        Cursor {
            src,
            pos: start,
            end,
            failed: false,
            pending: first,
        },
        |mut c| async move {
            if c.failed {
                return None;
            }
            match next(&mut c).await {
                Ok(Some(b)) => Some((Ok(b), c)),
                Ok(None) => None,
                Err(e) => {
                    c.failed = true;
                    Some((Err(e), c))
                }
            }
        },
    )
}

async fn next(c: &mut Cursor) -> Result<Option<Bytes>, EdgeError> {
    loop {
        if c.end.is_some_and(|e| c.pos >= e) {
            return Ok(None);
        }
        if !c.pending.is_empty() {
            let b = std::mem::take(&mut c.pending);
            return Ok(Some(take(b, c)));
        }
        let cs = c.src.chunk_size;
        let expected_crc = if let Some(fill) = &c.src.fill {
            let mut rx = fill.subscribe();
            match fill.read_at(c.pos, cs) {
                Read::Data(b) => return Ok(Some(take(b, c))),
                Read::Wait => {
                    let _ = rx.changed().await;
                    continue;
                }
                Read::End(total) => {
                    c.src.len = Some(total);
                    if c.end.is_none_or(|e| e > total) {
                        c.end = Some(total);
                    }
                    if c.pos >= total {
                        return Ok(None);
                    }
                    None
                }
                Read::Failed(e) => return Err(e),
                Read::Stored { crc } => crc,
            }
        } else {
            match c.src.meta.as_deref().map(|m| &m.body) {
                Some(Body::Chunked { crcs, .. }) => crcs.get((c.pos / cs) as usize).copied(),
                Some(Body::Inline { data, .. }) => {
                    let d = data.slice((c.pos as usize).min(data.len())..);
                    if d.is_empty() {
                        return Ok(None);
                    }
                    return Ok(Some(take(d, c)));
                }
                None => None,
            }
        };
        let idx = c.pos / cs;
        let chunk = read_chunk(&c.src, idx, expected_crc).await?;
        let off = (c.pos - idx * cs) as usize;
        if off >= chunk.len() {
            return Err(EdgeError::OriginBroken(
                "stored chunk shorter than expected".into(),
            ));
        }
        return Ok(Some(take(chunk.slice(off..), c)));
    }
}

/// The next piece of `b` (at most [`PIECE`] bytes, not past the end); the rest is kept in
/// `c.pending`.
fn take(mut b: Bytes, c: &mut Cursor) -> Bytes {
    if let Some(e) = c.end {
        let left = usize::try_from(e.saturating_sub(c.pos)).unwrap_or(usize::MAX);
        if b.len() > left {
            b.truncate(left);
        }
    }
    if b.len() > PIECE {
        c.pending = b.split_off(PIECE);
    }
    c.pos += b.len() as u64;
    b
}

async fn read_chunk(src: &BodySource, idx: u64, crc: Option<u32>) -> Result<Bytes, EdgeError> {
    let key = chunk_key(&src.key, src.object_id, idx);
    let got = src.store.get_chunk(&key, crc, src.len).await;
    if let Some(c) = got {
        return Ok(c.data);
    }
    let Some(total) = src.len else {
        return Err(EdgeError::OriginBroken(
            "chunk missing and length unknown".into(),
        ));
    };
    let Some(rf) = &src.refetch else {
        return Err(EdgeError::OriginBroken("chunk missing".into()));
    };
    let start = idx * src.chunk_size;
    let end = (start + src.chunk_size).min(total);
    let data = match refetch_range(rf, start, end, total).await {
        Ok(data) => data,
        Err(Refetched::Changed(why)) => {
            // The origin no longer has the object we stored (a 412 to our `If-Match`, another
            // length, no range support): drop ours, so the next request fills it again instead
            // of failing on this chunk until the object expires.
            src.store.remove(&src.key);
            return Err(EdgeError::OriginBroken(why));
        }
        Err(Refetched::Failed(e)) => return Err(e),
    };
    let got_crc = crc32fast::hash(&data);
    if crc.is_some_and(|c| c != got_crc) {
        // The origin's object is not the one we stored: drop ours.
        src.store.remove(&src.key);
        return Err(EdgeError::OriginBroken(
            "origin object changed while a chunk was refetched".into(),
        ));
    }
    tracing::info!(key = %src.key, idx, "chunk refetched from origin");
    metrics::counter!(crate::metrics::CHUNK_REFETCHES).increment(1);
    src.store.put_chunk(
        key,
        Chunk {
            crc: got_crc,
            data: data.clone(),
        },
        total,
    );
    Ok(data)
}

/// Why a chunk refetch brought no bytes.
enum Refetched {
    /// The origin answered, but not with that range of the object we stored: ours is outdated.
    Changed(String),
    /// The origin could not be asked or failed (a timeout, a 5xx, a short body): ours may
    /// still be right.
    Failed(EdgeError),
}

impl From<EdgeError> for Refetched {
    fn from(e: EdgeError) -> Self {
        Refetched::Failed(e)
    }
}

/// Whether an origin's answer to a chunk refetch means the stored object is outdated: any
/// answer below 500 other than the expected `206` with our `Content-Range` (`412` for our
/// `If-Match`, `200` whole, another length in `Content-Range`, `416`, `404` …). A 5xx is the
/// origin failing, not a new object.
pub(crate) fn refetch_outdates(status: u16, content_range_ok: bool) -> bool {
    status < 500 && !(status == 206 && content_range_ok)
}

/// Fetch bytes `[start, end)` of an object of `total` bytes by `Range`.
async fn refetch_range(rf: &Refetch, start: u64, end: u64, total: u64) -> Result<Bytes, Refetched> {
    let mut h = HeaderMap::new();
    h.insert(
        header::RANGE,
        HeaderValue::from_str(&format!("bytes={start}-{}", end - 1))
            .map_err(|_| EdgeError::OriginBroken("range".into()))?,
    );
    if let Some(e) = rf
        .etag
        .as_ref()
        .filter(|e| !e.as_bytes().starts_with(b"W/"))
    {
        h.insert(header::IF_MATCH, e.clone());
    }
    let mut resp = rf
        .origins
        .send(&rf.route, Method::GET, &rf.path_and_query, h, None)
        .await?;
    let expect_cr = format!("bytes {start}-{}/{total}", end - 1);
    let cr_ok = resp
        .headers()
        .get(header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == expect_cr);
    let status = resp.status().as_u16();
    if status != 206 || !cr_ok {
        let why = format!("range refetch answered {status} (expected 206 {expect_cr})");
        return Err(if refetch_outdates(status, cr_ok) {
            Refetched::Changed(why)
        } else {
            Refetched::Failed(EdgeError::OriginBroken(why))
        });
    }
    let want = (end - start) as usize;
    let mut buf = BytesMut::with_capacity(want);
    while let Some(b) = next_frame(&mut resp, rf.route.idle_timeout()).await? {
        if buf.len() + b.len() > want {
            return Err(EdgeError::OriginBroken("range refetch too long".into()).into());
        }
        buf.extend_from_slice(&b);
    }
    if buf.len() != want {
        return Err(EdgeError::OriginBroken("range refetch too short".into()).into());
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::{BodySize, MessageBody};

    #[test]
    fn a_refetch_answer_outdates_the_stored_object_unless_it_is_our_range_or_a_failure() {
        assert!(!refetch_outdates(206, true));
        for (status, cr_ok) in [
            (206, false),
            (200, false),
            (412, false),
            (416, false),
            (404, false),
        ] {
            assert!(refetch_outdates(status, cr_ok), "{status}");
        }
        for status in [500, 502, 503, 504] {
            assert!(!refetch_outdates(status, false), "{status}");
        }
    }

    #[actix_web::test]
    async fn pieces_are_slices_of_at_most_a_piece() {
        let data = Bytes::from((0..(2 * PIECE + 10)).map(|i| i as u8).collect::<Vec<_>>());
        let mut body = Pieces(data.clone());
        assert_eq!(body.size(), BodySize::Sized(data.len() as u64));
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        while let Some(p) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_next(cx)).await
        {
            let p = p.unwrap();
            sizes.push(p.len());
            got.extend_from_slice(&p);
        }
        assert_eq!(sizes, vec![PIECE, PIECE, 10]);
        assert_eq!(got, data);
        assert!(Pieces(Bytes::from_static(b"small"))
            .try_into_bytes()
            .is_ok());
        assert!(
            Pieces(data).try_into_bytes().is_err(),
            "a large body is not handed over whole"
        );
    }
}
