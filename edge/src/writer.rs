//! The store writer of a fill: copies the origin body into the in-flight fill (for readers)
//! and into the store (fixed-size chunks, then the meta entry last, so a meta entry always
//! names a complete object). Runs on its own task, so the object is stored even when the
//! client that led the fill goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::cache::meta::{Body, Chunk, ObjectMeta};
use crate::cache::store::{chunk_key, Store};
use crate::error::EdgeError;
use crate::fill::{Leader, StreamHead};
use crate::origin::{next_frame, OriginResponse};

/// One fill's writer (built by [`lead`](crate::lead)).
pub(crate) struct StoreWriter {
    pub(crate) store: Arc<Store>,
    /// The primary key (gets the Vary list when the response varies).
    pub(crate) primary: String,
    pub(crate) head: Arc<StreamHead>,
    /// The meta entry to store, body filled in at the end.
    pub(crate) template: ObjectMeta,
    /// `max_object_size`: a longer body fails the fill.
    pub(crate) max: u64,
    /// Origin idle timeout between frames.
    pub(crate) idle: Duration,
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
                    let Some(t) = total
                        .checked_add(b.len() as u64)
                        .filter(|&t| t <= self.max && h.length.is_none_or(|l| t <= l))
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
