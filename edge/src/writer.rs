//! The store writer of a fill: copies the origin body into the in-flight fill (for readers)
//! and into the store (fixed-size chunks, then the meta entry last, so a meta entry always
//! names a complete object). Runs on its own task, so the object is stored even when the
//! client that led the fill goes away.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

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
        let mut buf = BytesMut::new();
        let mut crcs: Vec<u32> = Vec::new();
        let mut total: u64 = 0;
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
                    buf.extend_from_slice(&b);
                    leader.push(b);
                    while buf.len() >= cs {
                        let data = buf.split_to(cs).freeze();
                        let len = h.length.unwrap_or(total);
                        self.put_chunk(&mut crcs, data, len);
                        // Chunks kept on disk only become readable after foyer's flush:
                        // keep two chunks of frames for readers just behind the fill.
                        let keep = if self.store.disk_only(&self.primary, len) {
                            2 * cs as u64
                        } else {
                            0
                        };
                        leader.chunk_stored(
                            *crcs.last().unwrap_or(&0),
                            crcs.len() as u64 * cs as u64,
                            keep,
                        );
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
            let data = buf.freeze();
            Body::Inline {
                crc: crc32fast::hash(&data),
                data,
            }
        } else {
            if !buf.is_empty() {
                self.put_chunk(&mut crcs, buf.freeze(), total);
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
