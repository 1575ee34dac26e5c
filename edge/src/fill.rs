//! Coalesced fills: one origin request per cache key in flight, whatever worker the requests
//! land on. The first request for a key becomes the *leader* ([`Join::Leader`]) and fetches;
//! later ones are *followers* ([`Join::Follower`]) that wait (at most
//! `cache.fill_wait_timeout`) for the leader's [`FillHead`], then read the same bytes as they
//! arrive ([`Fill::read_at`]). A leader that is dropped before finishing fails the fill
//! ("leader dropped"), so followers never hang; they then serve stale if allowed or retry.
//!
//! Memory stays bounded: the fill keeps only the frames not yet written to the store as
//! chunks; a reader that falls behind reads the chunk from the store instead.
//!
//! Each reader of the fill's body is a [`FillReader`] ([`Fill::reader`]): a position slot
//! that its reads update and that goes away when it is dropped. While the body is stored the
//! slots are only kept up to date (under the lock a read takes anyway). A body without a
//! length that grows past `max_object_size` *overflows* ([`Leader::overflow`]): it is no
//! longer stored, the fill leaves the table and takes no new readers, and since there are no
//! stored chunks to fall back on, frames are dropped only once every live reader has passed
//! them; the writer waits for the readers ([`Fill::wait_readers`]) before it reads more of
//! the origin, so the fill holds a bounded window of the body.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::sync::{watch, Notify};

use crate::cache::meta::ObjectMeta;
use crate::error::EdgeError;

/// What the leader learned from the origin.
#[derive(Debug, Clone)]
pub enum FillHead {
    /// A new object is streaming in and being stored.
    Streaming(Arc<StreamHead>),
    /// The answer is a stored object (revalidated, found, or stale served on error).
    Stored {
        /// The object.
        meta: Arc<ObjectMeta>,
        /// Its store key.
        key: String,
        /// How it came to be the answer.
        how: StoredHow,
    },
    /// The response must not be shared (not storable): each request fetches on its own.
    NotShareable,
}

/// Why a [`FillHead::Stored`] is the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredHow {
    /// The origin answered 304 to our revalidation.
    Revalidated,
    /// Another fill stored it meanwhile.
    Found,
    /// The origin failed and `stale-if-error` allowed the stale copy.
    StaleOnError {
        /// The origin's status, when it answered.
        status: Option<u16>,
    },
}

/// Head of a streaming object.
#[derive(Debug)]
pub struct StreamHead {
    /// Status code.
    pub status: u16,
    /// Headers for clients.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// `Content-Length` when the origin sent one.
    pub length: Option<u64>,
    /// Store key the object is written under.
    pub store_key: String,
    /// Id of the stored version (chunk keys).
    pub object_id: u64,
    /// Chunk size.
    pub chunk_size: u64,
    /// Vary field names of the response (sorted, lower-case).
    pub vary: Vec<String>,
    /// Freshness lifetime in seconds (for `Cache-Status: ttl`).
    pub ttl_s: i64,
    /// Corrected initial age in seconds (the `Age` sent while streaming).
    pub age_s: u64,
    /// What a PoP member asking for the object also gets (tags, `Surrogate-Control`:
    /// [`crate::pop::answer::peer_headers`]).
    pub peer_headers: Vec<(HeaderName, HeaderValue)>,
    /// The leader's `Cache-Status` forward reason (`fwd=peer` when it filled from a peer), for
    /// the followers' `Cache-Status`.
    pub fwd: crate::headers::Fwd,
}

#[derive(Debug)]
enum HeadState {
    Pending,
    Ready(FillHead),
    Failed(EdgeError),
}

#[derive(Debug)]
struct State {
    head: HeadState,
    /// Frames not yet covered by stored chunks: (offset, bytes).
    frames: VecDeque<(u64, Bytes)>,
    /// Bytes received so far.
    received: u64,
    /// CRC32 of each chunk stored so far.
    crcs: Vec<u32>,
    /// `Some(Ok(total))` when complete, `Some(Err)` when the body failed.
    done: Option<Result<u64, EdgeError>>,
    /// The readers' position slots ([`FillReader`]).
    readers: Slots,
    /// Overflow mode ([`Leader::overflow`]): the body is not stored past this offset (the end
    /// of its stored chunks), and no new reader is taken.
    overflow: Option<u64>,
}

/// A reader's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// Not in use.
    Free,
    /// The reader has read everything below this offset.
    At(u64),
    /// The reader stalled the overflowing fill too long and was cut off.
    Cut,
}

/// Position slots, reused (a dropped reader's index goes on `free`).
#[derive(Debug, Default)]
struct Slots {
    slots: Vec<Slot>,
    free: Vec<usize>,
}

impl Slots {
    fn add(&mut self, pos: u64) -> usize {
        match self.free.pop() {
            Some(i) => {
                self.slots[i] = Slot::At(pos);
                i
            }
            None => {
                self.slots.push(Slot::At(pos));
                self.slots.len() - 1
            }
        }
    }

    fn remove(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            *s = Slot::Free;
            self.free.push(i);
        }
    }

    /// The lowest position of a live (not cut) reader.
    fn min(&self) -> Option<u64> {
        self.slots
            .iter()
            .filter_map(|s| match s {
                Slot::At(p) => Some(*p),
                _ => None,
            })
            .min()
    }
}

/// One in-flight fill.
#[derive(Debug)]
pub struct Fill {
    key: String,
    /// Its leader fetches from a peer of this PoP ([`Fills::join_asking`]).
    asks_peer: bool,
    state: Mutex<State>,
    tx: watch::Sender<u64>,
    /// Readers moved or left (only signalled in overflow mode, for [`Fill::wait_readers`]).
    moved: Notify,
}

/// How [`Fill::wait_readers`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// Every live reader reached the offset.
    Reached,
    /// No reader is left.
    None,
    /// No reader moved for the whole `idle` wait (and `cut` was not asked).
    Stalled,
}

/// What a reader gets at an offset.
#[derive(Debug)]
pub enum Read {
    /// Bytes starting at the requested offset.
    Data(Bytes),
    /// The offset is no longer buffered: read chunk `idx` from the store (expected CRC, if
    /// the chunk is complete).
    Stored {
        /// CRC of the chunk, known once it was written.
        crc: Option<u32>,
    },
    /// Wait for more bytes.
    Wait,
    /// Body complete at this total length.
    End(u64),
    /// Body failed.
    Failed(EdgeError),
}

impl Fill {
    fn new(key: String, asks_peer: bool) -> Arc<Fill> {
        let (tx, _) = watch::channel(0);
        Arc::new(Fill {
            key,
            asks_peer,
            state: Mutex::new(State {
                head: HeadState::Pending,
                frames: VecDeque::new(),
                received: 0,
                crcs: Vec::new(),
                done: None,
                readers: Slots::default(),
                overflow: None,
            }),
            tx,
            moved: Notify::new(),
        })
    }

    /// A reader of the body from its start, with its position slot; `None` once the fill
    /// overflowed (its first bytes may be gone: such a request fetches on its own).
    pub fn reader(self: &Arc<Self>) -> Option<FillReader> {
        let mut st = self.state.lock();
        if st.overflow.is_some() {
            return None;
        }
        let slot = st.readers.add(0);
        Some(FillReader {
            fill: self.clone(),
            slot,
        })
    }

    fn reader_anyway(self: &Arc<Self>) -> FillReader {
        let slot = self.state.lock().readers.add(0);
        FillReader {
            fill: self.clone(),
            slot,
        }
    }

    /// Whether the body overflowed `max_object_size` (streamed, not stored).
    pub fn overflowed(&self) -> bool {
        self.state.lock().overflow.is_some()
    }

    /// The lowest position of a live reader (`None`: no reader).
    pub fn min_reader(&self) -> Option<u64> {
        self.state.lock().readers.min()
    }

    /// Overflow mode: wait until every live reader has read up to `upto`, dropping the frames
    /// all of them passed. When no reader moves for `idle`, the slowest are cut off (their
    /// next read fails) with `cut`, else the wait ends [`Readers::Stalled`].
    pub async fn wait_readers(&self, upto: u64, idle: Duration, cut: bool) -> Readers {
        loop {
            let moved = self.moved.notified();
            {
                let mut st = self.state.lock();
                let Some(min) = st.readers.min() else {
                    // No live reader needs a frame (a cut one only fails from now on, yet
                    // keeps the fill alive as long as its connection stays open).
                    st.frames.clear();
                    return Readers::None;
                };
                while let Some((off, b)) = st.frames.front() {
                    if off.saturating_add(b.len() as u64) <= min {
                        st.frames.pop_front();
                    } else {
                        break;
                    }
                }
                if min >= upto {
                    return Readers::Reached;
                }
            }
            if tokio::time::timeout(idle, moved).await.is_ok() {
                continue;
            }
            if !cut {
                return Readers::Stalled;
            }
            let cut_off = {
                let mut st = self.state.lock();
                let min = st.readers.min();
                let mut n = 0;
                for s in st.readers.slots.iter_mut() {
                    if matches!(s, Slot::At(p) if Some(*p) == min) {
                        *s = Slot::Cut;
                        n += 1;
                    }
                }
                n
            };
            tracing::info!(key = %self.key, readers = cut_off, "readers stalled an unstored fill; cut off");
            // Wake the cut readers' streams so they fail now.
            self.bump();
        }
    }

    /// The key this fill is for.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether its leader fetches from a peer of this PoP (so a peer's request must not wait
    /// on it: the two members would wait on each other).
    pub fn asks_peer(&self) -> bool {
        self.asks_peer
    }

    fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// A change subscription (create it *before* checking state to not miss a wake-up).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Wait for the head, at most `timeout`.
    pub async fn wait_head(&self, timeout: Duration) -> Result<FillHead, EdgeError> {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let st = self.state.lock();
                match &st.head {
                    HeadState::Ready(h) => return Ok(h.clone()),
                    HeadState::Failed(e) => return Err(e.clone()),
                    HeadState::Pending => {}
                }
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Err(_) => return Err(EdgeError::FillTimeout),
                Ok(Err(_)) => {
                    return Err(EdgeError::OriginBroken("fill leader dropped".into()));
                }
                Ok(Ok(())) => {}
            }
        }
    }

    /// What is available at byte `pos` of chunk size `chunk` (without a reader's slot: it
    /// does not hold the frames back in overflow mode; bodies are read through
    /// [`FillReader::read_at`]).
    pub fn read_at(&self, pos: u64, chunk: u64) -> Read {
        read_locked(&self.state.lock(), pos, chunk)
    }
}

/// One reader of a fill's body: its position slot (see the module docs) goes away on drop.
#[derive(Debug)]
pub struct FillReader {
    fill: Arc<Fill>,
    slot: usize,
}

impl FillReader {
    /// The fill.
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// A change subscription ([`Fill::subscribe`]).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.fill.subscribe()
    }

    /// [`Fill::read_at`], by a reader that has read everything below `pos`.
    pub fn read_at(&self, pos: u64, chunk: u64) -> Read {
        let (read, overflow) = {
            let mut st = self.fill.state.lock();
            match st.readers.slots.get_mut(self.slot) {
                Some(Slot::Cut) => {
                    return Read::Failed(EdgeError::OriginBroken(
                        "reader fell too far behind an unstored body".into(),
                    ))
                }
                Some(s) => *s = Slot::At(pos),
                None => {}
            }
            (read_locked(&st, pos, chunk), st.overflow.is_some())
        };
        if overflow {
            self.fill.moved.notify_one();
        }
        read
    }
}

impl Drop for FillReader {
    fn drop(&mut self) {
        let overflow = {
            let mut st = self.fill.state.lock();
            st.readers.remove(self.slot);
            st.overflow.is_some()
        };
        if overflow {
            self.fill.moved.notify_one();
        }
    }
}

fn read_locked(st: &State, pos: u64, chunk: u64) -> Read {
    if let Some((first_off, _)) = st.frames.front() {
        if pos >= *first_off && pos < st.received {
            for (off, b) in st.frames.iter() {
                let end = off + b.len() as u64;
                if pos >= *off && pos < end {
                    return Read::Data(b.slice((pos - off) as usize..));
                }
            }
        }
    }
    if pos < st.received {
        if st.overflow.is_some_and(|stored| pos >= stored) {
            // Neither buffered nor stored (only a reader without a slot gets here).
            return Read::Failed(EdgeError::OriginBroken(
                "bytes of an unstored body no longer buffered".into(),
            ));
        }
        let idx = (pos / chunk) as usize;
        return Read::Stored {
            crc: st.crcs.get(idx).copied(),
        };
    }
    match &st.done {
        Some(Ok(total)) => Read::End(*total),
        Some(Err(e)) => Read::Failed(e.clone()),
        None => Read::Wait,
    }
}

/// The result of joining the table.
#[derive(Debug)]
pub enum Join {
    /// Fetch it; publish through the guard.
    Leader(Leader),
    /// Someone else is fetching it.
    Follower(Arc<Fill>),
}

/// The in-flight table.
#[derive(Debug)]
pub struct Fills {
    table: DashMap<String, Arc<Fill>>,
    max: usize,
}

impl Fills {
    /// A table allowing `max` concurrent fills.
    pub fn new(max: usize) -> Arc<Fills> {
        Arc::new(Fills {
            table: DashMap::new(),
            max,
        })
    }

    /// Number of fills in flight.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no fill is in flight.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Whether a fill for `key` is in flight.
    pub fn contains(&self, key: &str) -> bool {
        self.table.contains_key(key)
    }

    /// Become the leader for `key` or follow the fill in flight.
    pub fn join(self: &Arc<Self>, key: &str) -> Result<Join, EdgeError> {
        self.join_asking(key, false)
    }

    /// [`Fills::join`]; a new fill is marked as one whose leader fetches from a peer when
    /// `asks_peer` ([`Fill::asks_peer`]).
    pub fn join_asking(self: &Arc<Self>, key: &str, asks_peer: bool) -> Result<Join, EdgeError> {
        if let Some(f) = self.table.get(key) {
            return Ok(Join::Follower(f.clone()));
        }
        if self.table.len() >= self.max {
            return Err(EdgeError::Overloaded("too many origin fills in flight"));
        }
        match self.table.entry(key.to_string()) {
            MapEntry::Occupied(o) => Ok(Join::Follower(o.get().clone())),
            MapEntry::Vacant(v) => {
                let fill = Fill::new(key.to_string(), asks_peer);
                v.insert(fill.clone());
                Ok(Join::Leader(Leader {
                    fill,
                    fills: self.clone(),
                    finished: false,
                }))
            }
        }
    }

    /// A leader for `key` that no one can follow (not in the table, not counted against the
    /// limit): a [`hit_for_miss`](crate::hit_for_miss) fetch, which stores what it may
    /// without making other requests wait for it.
    pub fn detached(self: &Arc<Self>, key: &str) -> Leader {
        Leader {
            fill: Fill::new(key.to_string(), false),
            fills: self.clone(),
            finished: false,
        }
    }

    fn remove(&self, fill: &Arc<Fill>) {
        self.table.remove_if(&fill.key, |_, f| Arc::ptr_eq(f, fill));
    }
}

/// The leader's handle. Dropping it before [`Leader::finish`] or [`Leader::fail`] fails the
/// fill with "leader dropped".
#[derive(Debug)]
pub struct Leader {
    fill: Arc<Fill>,
    fills: Arc<Fills>,
    finished: bool,
}

impl Leader {
    /// The fill (for this request's own reader).
    pub fn fill(&self) -> &Arc<Fill> {
        &self.fill
    }

    /// The leader's own client's reader (registered before the writer runs, which alone
    /// overflows the fill).
    pub fn reader(&self) -> FillReader {
        self.fill.reader_anyway()
    }

    /// Publish the head. Non-streaming heads finish the fill (and leave the table).
    pub fn publish(&mut self, head: FillHead) {
        let streaming = matches!(head, FillHead::Streaming(_));
        self.fill.state.lock().head = HeadState::Ready(head);
        if !streaming {
            self.fills.remove(&self.fill);
            self.finished = true;
        }
        self.fill.bump();
    }

    /// Append body bytes.
    pub fn push(&self, b: Bytes) {
        {
            let mut st = self.fill.state.lock();
            let off = st.received;
            st.received += b.len() as u64;
            st.frames.push_back((off, b));
        }
        self.fill.bump();
    }

    /// Bytes `[start, start + data.len())` were copied into `data` (the stored chunk or body):
    /// frames that lie wholly inside that span are replaced by `data`, so the fill's readers
    /// share the stored copy and the fill does not hold the body twice.
    pub fn share_stored(&self, start: u64, data: &Bytes) {
        let end = start.saturating_add(data.len() as u64);
        let mut st = self.fill.state.lock();
        let inside = |(off, b): &(u64, Bytes)| *off >= start && off + b.len() as u64 <= end;
        let Some(first) = st.frames.iter().position(inside) else {
            return;
        };
        st.frames.retain(|f| !inside(f));
        st.frames.insert(first, (start, data.clone()));
    }

    /// The next chunk was stored with `crc`, so the body is stored up to `stored_upto`:
    /// frames ending more than `keep_behind` bytes below that may be dropped (readers that
    /// far behind read the stored chunks).
    pub fn chunk_stored(&self, crc: u32, stored_upto: u64, keep_behind: u64) {
        let mut st = self.fill.state.lock();
        st.crcs.push(crc);
        let limit = stored_upto.saturating_sub(keep_behind);
        while let Some((off, b)) = st.frames.front() {
            if off + b.len() as u64 <= limit {
                st.frames.pop_front();
            } else {
                break;
            }
        }
    }

    /// The body (without a length) grew past `max_object_size`: it is no longer stored
    /// beyond `stored_upto` (the end of its stored chunks). The fill leaves the table (a new
    /// request leads its own fill) and takes no new reader ([`Fill::reader`]); frames are
    /// kept until every live reader has passed them ([`Fill::wait_readers`]).
    pub fn overflow(&self, stored_upto: u64) {
        self.fill.state.lock().overflow = Some(stored_upto);
        self.fills.remove(&self.fill);
    }

    /// Body complete (`total` bytes).
    pub fn finish(mut self, total: u64) {
        self.fill.state.lock().done = Some(Ok(total));
        self.finished = true;
        self.fills.remove(&self.fill);
        self.fill.bump();
    }

    /// The fill failed (before or after the head).
    pub fn fail(mut self, err: EdgeError) {
        self.fail_inner(err);
    }

    fn fail_inner(&mut self, err: EdgeError) {
        {
            let mut st = self.fill.state.lock();
            if matches!(st.head, HeadState::Pending) {
                st.head = HeadState::Failed(err.clone());
            }
            if st.done.is_none() {
                st.done = Some(Err(err));
            }
        }
        self.finished = true;
        self.fills.remove(&self.fill);
        self.fill.bump();
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.finished {
            self.fail_inner(EdgeError::OriginBroken("fill leader dropped".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_leader_is_not_joined_and_leaves_the_table_alone() {
        let fills = Fills::new(1);
        let Join::Leader(_joined) = fills.join("k").unwrap() else {
            panic!("first must lead")
        };
        let detached = fills.detached("k");
        assert_eq!(fills.len(), 1, "not in the table, not counted");
        drop(detached);
        assert!(
            fills.contains("k"),
            "dropping it does not remove the real fill"
        );
    }

    #[tokio::test]
    async fn one_leader_many_followers_same_bytes() {
        let fills = Fills::new(10);
        let Join::Leader(mut leader) = fills.join("k").unwrap() else {
            panic!("first must lead")
        };
        let Join::Follower(f) = fills.join("k").unwrap() else {
            panic!("second must follow")
        };
        assert!(Arc::ptr_eq(&f, leader.fill()));
        leader.publish(FillHead::NotShareable);
        assert!(matches!(
            f.wait_head(Duration::from_secs(1)).await,
            Ok(FillHead::NotShareable)
        ));
        // Non-streaming heads leave the table.
        assert!(!fills.contains("k"));
    }

    #[tokio::test]
    async fn readers_share_the_stored_copy() {
        let fills = Fills::new(10);
        let Join::Leader(leader) = fills.join("k").unwrap() else {
            panic!()
        };
        let f = leader.fill().clone();
        leader.push(Bytes::from_static(b"ab"));
        leader.push(Bytes::from_static(b"cdef"));
        leader.push(Bytes::from_static(b"gh"));
        // Bytes 0..6 stored (one copy): the two frames inside become that copy; "gh" stays.
        let stored = Bytes::from(b"abcdef".to_vec());
        leader.share_stored(0, &stored);
        {
            let st = f.state.lock();
            let offs: Vec<(u64, usize)> = st.frames.iter().map(|(o, b)| (*o, b.len())).collect();
            assert_eq!(offs, vec![(0, 6), (6, 2)]);
            assert_eq!(
                st.frames[0].1.as_ptr(),
                stored.as_ptr(),
                "the stored allocation"
            );
        }
        for (pos, want) in [(0, &b"abcdef"[..]), (3, b"def"), (6, b"gh")] {
            match f.read_at(pos, 4) {
                Read::Data(b) => assert_eq!(&b[..], want),
                other => panic!("{other:?}"),
            }
        }
        // A span no frame lies wholly inside changes nothing.
        leader.share_stored(5, &Bytes::from_static(b"fg"));
        assert_eq!(f.state.lock().frames.len(), 2);
        leader.finish(8);
    }

    #[tokio::test]
    async fn streaming_reads_and_trims() {
        let fills = Fills::new(10);
        let Join::Leader(mut leader) = fills.join("k").unwrap() else {
            panic!()
        };
        let head = StreamHead {
            status: 200,
            headers: vec![],
            length: Some(8),
            store_key: "k".into(),
            object_id: 1,
            chunk_size: 4,
            vary: vec![],
            ttl_s: 1,
            age_s: 0,
            peer_headers: vec![],
            fwd: crate::headers::Fwd::UriMiss,
        };
        leader.publish(FillHead::Streaming(Arc::new(head)));
        let f = leader.fill().clone();
        assert!(matches!(f.read_at(0, 4), Read::Wait));
        leader.push(Bytes::from_static(b"abcdef"));
        match f.read_at(2, 4) {
            Read::Data(b) => assert_eq!(&b[..], b"cdef"),
            other => panic!("{other:?}"),
        }
        leader.push(Bytes::from_static(b"gh"));
        leader.chunk_stored(7, 4, 0);
        // Frame 0..6 is not wholly stored yet, still readable.
        assert!(matches!(f.read_at(0, 4), Read::Data(_)));
        leader.chunk_stored(9, 8, 0);
        assert!(matches!(f.read_at(5, 4), Read::Stored { crc: Some(9) }));
        leader.finish(8);
        assert!(matches!(f.read_at(8, 4), Read::End(8)));
        assert!(!fills.contains("k"));
    }

    /// A leader of `k` and two readers of its body, with four 4-byte frames pushed.
    fn overflowing() -> (Arc<Fills>, Leader, FillReader, FillReader) {
        let fills = Fills::new(10);
        let Join::Leader(leader) = fills.join("k").unwrap() else {
            panic!()
        };
        let r1 = leader.reader();
        let r2 = leader.fill().reader().expect("not overflowed yet");
        for f in [b"abcd", b"efgh", b"ijkl", b"mnop"] {
            leader.push(Bytes::from_static(f));
        }
        (fills, leader, r1, r2)
    }

    fn frame_offsets(f: &Fill) -> Vec<u64> {
        f.state.lock().frames.iter().map(|(o, _)| *o).collect()
    }

    #[tokio::test]
    async fn an_overflowing_fill_keeps_frames_until_every_reader_passed_them() {
        let (fills, leader, r1, r2) = overflowing();
        let f = leader.fill().clone();
        leader.overflow(0);
        assert!(f.overflowed());
        assert!(!fills.contains("k"), "a new request leads its own fill");
        assert!(
            f.reader().is_none(),
            "no new reader: its first bytes may go"
        );
        let wait = {
            let f = f.clone();
            tokio::spawn(async move { f.wait_readers(8, Duration::from_secs(30), true).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!wait.is_finished(), "both readers are at 0");
        assert!(matches!(r1.read_at(0, 4), Read::Data(b) if &b[..] == b"abcd"));
        assert!(matches!(r1.read_at(12, 4), Read::Data(b) if &b[..] == b"mnop"));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!wait.is_finished(), "the slow reader holds the writer back");
        assert_eq!(
            frame_offsets(&f),
            vec![0, 4, 8, 12],
            "r2 has read nothing yet"
        );
        assert!(matches!(r2.read_at(8, 4), Read::Data(b) if &b[..] == b"ijkl"));
        let got = tokio::time::timeout(Duration::from_secs(5), wait).await;
        assert_eq!(got.unwrap().unwrap(), Readers::Reached);
        assert_eq!(
            frame_offsets(&f),
            vec![8, 12],
            "frames both readers passed are dropped"
        );
        // A reader that leaves does not hold the others back; with none left the fetch stops.
        drop(r2);
        assert_eq!(f.min_reader(), Some(12));
        assert!(matches!(r1.read_at(16, 4), Read::Wait));
        assert_eq!(
            f.wait_readers(16, Duration::from_secs(30), true).await,
            Readers::Reached
        );
        assert!(f.state.lock().frames.is_empty());
        drop(r1);
        assert_eq!(
            f.wait_readers(20, Duration::from_secs(30), true).await,
            Readers::None
        );
        leader.finish(16);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reader_that_stalls_an_overflowing_fill_is_cut_off() {
        let (_fills, leader, r1, r2) = overflowing();
        let f = leader.fill().clone();
        leader.overflow(0);
        assert!(matches!(r2.read_at(12, 4), Read::Data(_)));
        // Without `cut`, the wait gives up after `idle`.
        assert_eq!(
            f.wait_readers(8, Duration::from_secs(1), false).await,
            Readers::Stalled
        );
        assert!(matches!(r1.read_at(0, 4), Read::Data(_)), "still reading");
        assert_eq!(
            f.wait_readers(8, Duration::from_secs(1), true).await,
            Readers::Reached
        );
        assert!(
            matches!(r1.read_at(4, 4), Read::Failed(_)),
            "the stalled reader is cut off"
        );
        assert!(matches!(r2.read_at(12, 4), Read::Data(b) if &b[..] == b"mnop"));
        // Bytes below the stored end and no longer buffered are an error, not a chunk read.
        assert!(matches!(f.read_at(0, 4), Read::Failed(_)));
        leader.finish(16);
    }

    #[tokio::test(start_paused = true)]
    async fn an_overflowing_fill_with_no_live_reader_left_drops_its_frames() {
        let (_fills, leader, r1, r2) = overflowing();
        let f = leader.fill().clone();
        leader.overflow(0);
        drop(r2);
        // r1 stalls (its client stopped reading, its connection stays open): it is cut off,
        // and the fetch stops with no live reader left. The cut reader only fails from now
        // on, so the frames it keeps the fill alive with are of no use to anyone.
        assert_eq!(
            f.wait_readers(8, Duration::from_secs(1), true).await,
            Readers::None
        );
        assert!(matches!(r1.read_at(0, 4), Read::Failed(_)));
        assert!(
            frame_offsets(&f).is_empty(),
            "frames pinned by a cut reader: {:?}",
            frame_offsets(&f)
        );
        leader.fail(EdgeError::OriginBroken("no reader left".into()));
    }

    #[tokio::test]
    async fn dropped_leader_fails_followers_and_frees_key() {
        let fills = Fills::new(10);
        let Join::Leader(leader) = fills.join("k").unwrap() else {
            panic!()
        };
        let Join::Follower(f) = fills.join("k").unwrap() else {
            panic!()
        };
        drop(leader);
        assert!(f.wait_head(Duration::from_secs(1)).await.is_err());
        assert!(matches!(fills.join("k").unwrap(), Join::Leader(_)));
    }

    #[tokio::test(start_paused = true)]
    async fn follower_wait_times_out() {
        let fills = Fills::new(10);
        let Join::Leader(_leader) = fills.join("k").unwrap() else {
            panic!()
        };
        let Join::Follower(f) = fills.join("k").unwrap() else {
            panic!()
        };
        assert!(matches!(
            f.wait_head(Duration::from_secs(2)).await,
            Err(EdgeError::FillTimeout)
        ));
    }

    #[test]
    fn table_is_bounded() {
        let fills = Fills::new(1);
        let _a = fills.join("a").unwrap();
        assert!(matches!(fills.join("b"), Err(EdgeError::Overloaded(_))));
    }
}
