//! The store writer of a fill: copies the origin body into the in-flight fill (for readers)
//! and into the store (fixed-size chunks, then the meta entry last, so a meta entry always
//! names a complete object). Runs on its own task, so the object is stored even when the
//! client that led the fill goes away.
//!
//! A body without a length that grows past `max_object_size` *overflows*: it is still
//! streamed to every reader of the fill, to its end, but no longer stored — no more chunks,
//! no meta entry (the next request is a miss), and the chunks already stored are removed once
//! every reader has passed them (left unreferenced, to age out, when a reader stalls that
//! long). With no stored chunks to fall back on, the writer reads the origin only while the
//! fill holds less than `OVERFLOW_WINDOW` (at least two chunks) of the body that some live
//! reader has not read yet ([`Fill::wait_readers`](crate::fill::Fill::wait_readers)); a
//! reader that makes no progress for the host's `idle_timeout` is cut off rather than stall
//! the others, and the fetch stops when no reader is left.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::meta::{Body, Chunk, ObjectMeta};
use crate::cache::store::{chunk_key, Store};
use crate::error::EdgeError;
use crate::fill::{Leader, Readers, StreamHead};
use crate::origin::{next_frame, OriginResponse};

/// The most of an overflowing body ([`StoreWriter`]) held for its slowest reader (or two
/// chunks, when larger).
pub(crate) const OVERFLOW_WINDOW: u64 = 4 * 1024 * 1024;

/// One fill's writer (built by [`lead`](crate::lead)).
pub(crate) struct StoreWriter {
    pub(crate) store: Arc<Store>,
    /// The primary key (gets the Vary list when the response varies).
    pub(crate) primary: String,
    pub(crate) head: Arc<StreamHead>,
    /// The meta entry to store, body filled in at the end.
    pub(crate) template: ObjectMeta,
    /// `max_object_size`: a body announced longer is not stored (lead.rs), one without a
    /// length that grows longer overflows (streamed, not stored).
    pub(crate) max: u64,
    /// Origin idle timeout between frames.
    pub(crate) idle: Duration,
    /// Hit-for-miss: an overflow is remembered there under `fill_key`, so the next answers
    /// without a length are streamed unstored instead of stored up to the limit again.
    pub(crate) hit_for_miss: Arc<crate::hit_for_miss::HitForMiss>,
    /// The key the fill was joined under.
    pub(crate) fill_key: String,
}

impl StoreWriter {
    pub(crate) async fn run(self, leader: Leader, mut resp: OriginResponse) {
        let h = &self.head;
        let cs = h.chunk_size as usize;
        // The body is kept as the origin's frames (shared with the fill's readers, not a
        // second copy while the fill runs) and copied once, at a chunk's end or the body's
        // end, into an allocation of exactly its length: a stored body never keeps a larger
        // buffer (a frame's read buffer, a doubling `BytesMut`) alive in the memory tier.
        let mut parts: Vec<Bytes> = Vec::new();
        let mut have: usize = 0;
        let mut crcs: Vec<u32> = Vec::new();
        let mut total: u64 = 0;
        // Bytes of disk-only chunks handed to foyer since its queue was last drained: at half
        // its write pool the fill waits (backpressure), so no chunk write is dropped — a lost
        // chunk of a body without a length could not be refetched, and readers behind the
        // fill would get it truncated.
        let mut queued: usize = 0;
        let batch = crate::cache::store::disk_write_pool(cs) / 2;
        loop {
            match next_frame(&mut resp, self.idle).await {
                Ok(Some(b)) => {
                    let next = total.checked_add(b.len() as u64);
                    if h.length.is_none() && next.is_none_or(|t| t > self.max) {
                        let stored_chunks = crcs.len() as u64;
                        self.overflow(leader, resp, b, total, stored_chunks).await;
                        return;
                    }
                    let Some(t) =
                        next.filter(|&t| t <= self.max && h.length.is_none_or(|l| t <= l))
                    else {
                        leader.fail(EdgeError::OriginBroken(
                            "body longer than allowed or announced".into(),
                        ));
                        return;
                    };
                    total = t;
                    leader.push(b.clone());
                    let mut rest = b;
                    while !rest.is_empty() {
                        let take = cs.saturating_sub(have).min(rest.len());
                        parts.push(rest.split_to(take));
                        have += take;
                        if have < cs {
                            continue;
                        }
                        let data = concat(&mut parts, &mut have);
                        let stored = (crcs.len() as u64 + 1).saturating_mul(cs as u64);
                        leader.share_stored(stored.saturating_sub(cs as u64), &data);
                        let len = h.length.unwrap_or(total);
                        self.put_chunk(&mut crcs, data, len);
                        // Chunks kept on disk only become readable after foyer's flush:
                        // keep two chunks of frames for readers just behind the fill.
                        let disk_only = self.store.disk_only(&self.primary, len);
                        let keep = if disk_only { 2 * cs as u64 } else { 0 };
                        leader.chunk_stored(*crcs.last().unwrap_or(&0), stored, keep);
                        if disk_only {
                            queued = queued.saturating_add(cs);
                            if queued >= batch {
                                self.store.settle_part(&h.store_key).await;
                                queued = 0;
                            }
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(key = %h.store_key, error = %e, "origin body failed");
                    leader.fail(e);
                    return;
                }
            }
        }
        if h.length.is_some_and(|l| l != total) {
            leader.fail(EdgeError::OriginBroken(
                "body shorter than Content-Length".into(),
            ));
            return;
        }
        let body = if crcs.is_empty() {
            let data = concat(&mut parts, &mut have);
            leader.share_stored(0, &data);
            Body::Inline {
                crc: crc32fast::hash(&data),
                data,
            }
        } else {
            if have > 0 {
                let data = concat(&mut parts, &mut have);
                leader.share_stored(total.saturating_sub(data.len() as u64), &data);
                self.put_chunk(&mut crcs, data, total);
            }
            Body::Chunked {
                len: total,
                chunk_size: cs as u32,
                object_id: h.object_id,
                crcs,
            }
        };
        let mut meta = self.template;
        meta.body = body;
        self.store.put_object(&h.store_key, Arc::new(meta));
        if !h.vary.is_empty() {
            self.store.put_vary(&self.primary, Arc::new(h.vary.clone()));
        }
        leader.finish(total);
    }

    /// The body (no length) grew past `max_object_size` with `first`, after `total` bytes of
    /// which `stored_chunks` whole chunks were stored: stream the rest to the fill's readers,
    /// no faster than they read it, and store nothing more (module docs).
    async fn overflow(
        self,
        leader: Leader,
        mut resp: OriginResponse,
        first: Bytes,
        mut total: u64,
        stored_chunks: u64,
    ) {
        let h = &self.head;
        let stored_upto = stored_chunks.saturating_mul(h.chunk_size);
        tracing::info!(
            key = %h.store_key,
            max_object_size = self.max,
            "body without Content-Length grew past max_object_size: streamed, not stored"
        );
        metrics::counter!(crate::metrics::FILL_OVERFLOWS).increment(1);
        self.hit_for_miss
            .remember_overflow(&self.fill_key, cdn_shared::unix_ms());
        leader.overflow(stored_upto);
        let fill = leader.fill().clone();
        let window = OVERFLOW_WINDOW.max(h.chunk_size.saturating_mul(2));
        let mut chunks_left = stored_chunks > 0;
        let mut frame = Some(first);
        loop {
            let b = match frame.take() {
                Some(b) => b,
                None => match next_frame(&mut resp, self.idle).await {
                    Ok(Some(b)) => b,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::info!(key = %h.store_key, error = %e, "origin body failed");
                        leader.fail(e);
                        self.remove_chunks(chunks_left, stored_chunks);
                        return;
                    }
                },
            };
            let Some(t) = total.checked_add(b.len() as u64) else {
                leader.fail(EdgeError::OriginBroken("body too long".into()));
                self.remove_chunks(chunks_left, stored_chunks);
                return;
            };
            total = t;
            leader.push(b);
            let upto = total.saturating_sub(window);
            if fill.wait_readers(upto, self.idle, true).await == Readers::None {
                tracing::debug!(key = %h.store_key, "no reader left for an unstored body; fetch stopped");
                leader.fail(EdgeError::OriginBroken("no reader left".into()));
                self.remove_chunks(chunks_left, stored_chunks);
                return;
            }
            if chunks_left && fill.min_reader().is_none_or(|m| m >= stored_upto) {
                self.remove_chunks(true, stored_chunks);
                chunks_left = false;
            }
        }
        leader.finish(total);
        if chunks_left {
            match fill.wait_readers(stored_upto, self.idle, false).await {
                Readers::Stalled => {
                    tracing::debug!(key = %h.store_key, "chunks of an unstored body left to age out");
                }
                Readers::Reached | Readers::None => self.remove_chunks(true, stored_chunks),
            }
        }
    }

    /// Remove the first `n` chunks stored for this object (when `any`).
    fn remove_chunks(&self, any: bool, n: u64) {
        if !any {
            return;
        }
        for idx in 0..n {
            let key = chunk_key(&self.head.store_key, self.head.object_id, idx);
            self.store.remove_chunk(&key);
        }
    }

    fn put_chunk(&self, crcs: &mut Vec<u32>, data: Bytes, object_len: u64) {
        let crc = crc32fast::hash(&data);
        let key = chunk_key(&self.head.store_key, self.head.object_id, crcs.len() as u64);
        self.store.put_chunk(key, Chunk { crc, data }, object_len);
        crcs.push(crc);
    }
}

/// The `have` bytes of `parts`, copied into one allocation of exactly that length; empties
/// both.
fn concat(parts: &mut Vec<Bytes>, have: &mut usize) -> Bytes {
    let mut v = Vec::with_capacity(*have);
    for p in parts.drain(..) {
        v.extend_from_slice(&p);
    }
    *have = 0;
    Bytes::from(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concat_copies_into_an_exact_allocation() {
        let big = Bytes::from(vec![1u8; 64 * 1024]);
        let mut parts = vec![big.slice(..10), Bytes::from_static(b"abc")];
        let mut have = 13;
        let b = concat(&mut parts, &mut have);
        assert_eq!(b.len(), 13);
        assert_eq!(&b[10..], b"abc");
        assert!(parts.is_empty());
        assert_eq!(have, 0);
        let v: Vec<u8> = b.into();
        assert_eq!(v.capacity(), 13, "not the 64 KiB the slice came from");
    }
}
