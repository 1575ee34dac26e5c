//! The purge index's on-disk form: an append-only log of `record` / `forget` operations next
//! to the disk cache (`<cache.disk_path>/purge-index.log`), replayed into memory at start and
//! compacted (rewritten from the live entries) when it holds much more than the live set.
//!
//! File layout: the 8-byte magic `CDNPIX01`, then records
//! `[u32 LE payload length][u32 LE CRC-32 of payload][payload]`, payload =
//! `op u8 (1 = record, 2 = forget) | str key | (record) str url | u16 tag count | str tag…`
//! with `str` = `u32 LE length + UTF-8 bytes`. A torn or corrupt tail (crash mid-write, `kill -9`)
//! ends the replay; the file is truncated back to the last good record.
//!
//! One writer thread owns the file: operations arrive through an unbounded channel (senders
//! never block, so the request path cannot stall on disk, and the channel can be fed while a
//! map shard lock is held), are appended in order, and flushed whenever the channel runs dry.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

const MAGIC: &[u8; 8] = b"CDNPIX01";
const OP_RECORD: u8 = 1;
const OP_FORGET: u8 = 2;
const OP_PURGE: u8 = 3;
/// Largest payload accepted on replay (guards against a corrupt length field).
const MAX_PAYLOAD: usize = 1 << 20;

/// One logged operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `key` stores `url` with `tags`.
    Record {
        /// Cache key.
        key: String,
        /// Normalised URL (`host/path?query`).
        url: String,
        /// Surrogate keys / cache tags.
        tags: Vec<String>,
    },
    /// `key` was removed.
    Forget {
        /// Cache key.
        key: String,
    },
    /// A purge selector applied at `at_ms` (kept a while: an object whose record was lost and
    /// that was stored before it is purged when it is next read).
    Purge {
        /// When the purge was applied (Unix ms).
        at_ms: u64,
        /// 1 URL, 2 prefix, 3 tag.
        kind: u8,
        /// The normalised selector.
        value: String,
    },
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    buf.extend_from_slice(&(s.len() as u32).to_le_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// Append `op` in its framed form to `out`.
pub fn encode(op: &Op, out: &mut Vec<u8>) {
    let mut p = Vec::with_capacity(64);
    match op {
        Op::Record { key, url, tags } => {
            p.push(OP_RECORD);
            put_str(&mut p, key);
            put_str(&mut p, url);
            p.extend_from_slice(&(tags.len().min(u16::MAX as usize) as u16).to_le_bytes());
            for t in tags.iter().take(u16::MAX as usize) {
                put_str(&mut p, t);
            }
        }
        Op::Forget { key } => {
            p.push(OP_FORGET);
            put_str(&mut p, key);
        }
        Op::Purge { at_ms, kind, value } => {
            p.push(OP_PURGE);
            p.extend_from_slice(&at_ms.to_le_bytes());
            p.push(*kind);
            put_str(&mut p, value);
        }
    }
    out.extend_from_slice(&(p.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
    out.extend_from_slice(&p);
}

struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn str(&mut self) -> Option<String> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

fn decode_payload(p: &[u8]) -> Option<Op> {
    let mut c = Cursor(p);
    let op = *c.take(1)?.first()?;
    let op = match op {
        OP_RECORD => {
            let key = c.str()?;
            let url = c.str()?;
            let n = c.u16()?;
            let mut tags = Vec::with_capacity(n as usize);
            for _ in 0..n {
                tags.push(c.str()?);
            }
            Op::Record { key, url, tags }
        }
        OP_FORGET => Op::Forget { key: c.str()? },
        OP_PURGE => {
            let at_ms = u64::from_le_bytes(c.take(8)?.try_into().ok()?);
            let kind = *c.take(1)?.first()?;
            Op::Purge {
                at_ms,
                kind,
                value: c.str()?,
            }
        }
        _ => return None,
    };
    c.0.is_empty().then_some(op)
}

/// Decode framed records from `data` (after the magic). Returns the operations and the number
/// of bytes that formed complete, valid records (the rest is a torn or corrupt tail).
pub fn decode_all(data: &[u8]) -> (Vec<Op>, usize) {
    let mut ops = Vec::new();
    let mut good = 0;
    let mut c = Cursor(data);
    while let Some(len) = c.u32() {
        let Some(crc) = c.u32() else { break };
        let len = len as usize;
        if len > MAX_PAYLOAD {
            break;
        }
        let Some(p) = c.take(len) else { break };
        if crc32fast::hash(p) != crc {
            break;
        }
        let Some(op) = decode_payload(p) else { break };
        ops.push(op);
        good += 8 + len;
    }
    (ops, good)
}

/// Read the log at `path` (missing file = empty), truncating a bad tail. Returns the
/// operations in order.
pub fn replay(path: &Path) -> io::Result<Vec<Op>> {
    let mut f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut data = Vec::new();
    f.read_to_end(&mut data)?;
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        tracing::warn!(path = %path.display(), "purge index log has no valid header; starting empty");
        f.set_len(0)?;
        return Ok(Vec::new());
    }
    let (ops, good) = decode_all(&data[MAGIC.len()..]);
    let end = (MAGIC.len() + good) as u64;
    if end < data.len() as u64 {
        tracing::warn!(
            path = %path.display(),
            dropped_bytes = data.len() as u64 - end,
            "purge index log had a torn tail; truncated"
        );
        f.set_len(end)?;
    }
    Ok(ops)
}

/// Write `ops` as a fresh log at `path` atomically (temp file, fsync, rename).
pub fn rewrite(path: &Path, ops: impl Iterator<Item = Op>) -> io::Result<u64> {
    let tmp = path.with_extension("log.tmp");
    let mut w = BufWriter::new(File::create(&tmp)?);
    w.write_all(MAGIC)?;
    let mut buf = Vec::new();
    let mut n = 0;
    for op in ops {
        buf.clear();
        encode(&op, &mut buf);
        w.write_all(&buf)?;
        n += 1;
    }
    let f = w.into_inner().map_err(|e| e.into_error())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(n)
}

/// Open `path` for appending (creating it with the magic when new).
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    if f.seek(SeekFrom::End(0))? == 0 {
        f.write_all(MAGIC)?;
    }
    Ok(f)
}

/// Longest time a written record waits for its fsync.
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Messages to the writer thread.
#[derive(Debug)]
pub enum Msg {
    /// Append this operation.
    Op(Op),
    /// Flush and fsync, then acknowledge.
    Sync(mpsc::Sender<()>),
}

/// Where the writer thread gets a snapshot of the live entries for compaction.
pub trait Snapshot: Send + Sync + 'static {
    /// Number of live keys.
    fn live(&self) -> usize;
    /// Every live entry as a `Record` op.
    fn records(&self) -> Vec<Op>;
}

/// The writer thread's loop: append, flush when idle, compact when the file holds more than
/// `compact_factor` × live records (and at least `compact_min` records).
pub fn writer_loop(
    path: PathBuf,
    mut file_records: u64,
    rx: mpsc::Receiver<Msg>,
    snap: std::sync::Arc<dyn Snapshot>,
    compact_min: u64,
) {
    let open = |p: &Path| open_append(p).map(|f| BufWriter::with_capacity(64 * 1024, f));
    let mut w = match open(&path) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "purge index log unavailable; index is memory-only");
            // Keep draining so senders never see a closed channel.
            for msg in rx {
                if let Msg::Sync(ack) = msg {
                    let _ = ack.send(());
                }
            }
            return;
        }
    };
    let mut buf = Vec::with_capacity(256);
    let mut failed = false;
    // Records reach the disk (fsync) within SYNC_EVERY of being written.
    let mut dirty_since: Option<std::time::Instant> = None;
    loop {
        let first = match dirty_since {
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => break,
            },
            Some(t) => {
                let left = SYNC_EVERY.saturating_sub(t.elapsed());
                match rx.recv_timeout(left) {
                    Ok(m) => m,
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        let _ = w.flush().and_then(|_| w.get_ref().sync_data());
                        dirty_since = None;
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                }
            }
        };
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Op(op) => {
                    buf.clear();
                    encode(&op, &mut buf);
                    if let Err(e) = w.write_all(&buf) {
                        if !failed {
                            tracing::error!(error = %e, "purge index log write failed");
                            failed = true;
                        }
                    }
                    file_records += 1;
                    dirty_since.get_or_insert_with(std::time::Instant::now);
                }
                Msg::Sync(ack) => {
                    let _ = w.flush().and_then(|_| w.get_ref().sync_data());
                    dirty_since = None;
                    let _ = ack.send(());
                }
            }
            next = rx.try_recv().ok();
        }
        let _ = w.flush();
        let live = snap.live() as u64;
        if file_records >= compact_min && file_records > 2 * live {
            match rewrite(&path, snap.records().into_iter()) {
                Ok(n) => {
                    tracing::info!(
                        before = file_records,
                        after = n,
                        "purge index log compacted"
                    );
                    file_records = n;
                    match open(&path) {
                        Ok(nw) => w = nw,
                        Err(e) => {
                            tracing::error!(error = %e, "purge index log reopen failed");
                        }
                    }
                }
                Err(e) => tracing::error!(error = %e, "purge index log compaction failed"),
            }
        }
    }
    let _ = w.flush().and_then(|_| w.get_ref().sync_data());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, u: &str, t: &[&str]) -> Op {
        Op::Record {
            key: k.into(),
            url: u.into(),
            tags: t.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let ops = vec![
            rec("k1", "h/a", &["t1", "t2"]),
            Op::Forget { key: "k1".into() },
            rec("k2", "h/b", &[]),
            Op::Purge {
                at_ms: 1_796_000_000_123,
                kind: 2,
                value: "h/dir/".into(),
            },
        ];
        let mut data = Vec::new();
        for op in &ops {
            encode(op, &mut data);
        }
        let (back, good) = decode_all(&data);
        assert_eq!(back, ops);
        assert_eq!(good, data.len());
        // Torn: cut the last record in half.
        let cut = data.len() - 3;
        let (back, good) = decode_all(&data[..cut]);
        assert_eq!(back.len(), 3);
        assert!(good < cut);
        // Corrupt a byte in the second record: replay stops before it.
        let mut bad = data.clone();
        let first_len = 8 + u32::from_le_bytes(data[..4].try_into().unwrap()) as usize;
        bad[first_len + 9] ^= 0xff;
        assert_eq!(decode_all(&bad).0.len(), 1);
    }

    #[test]
    fn replay_truncates_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("purge-index.log");
        assert!(replay(&path).unwrap().is_empty());
        let mut f = open_append(&path).unwrap();
        let mut buf = Vec::new();
        encode(&rec("k1", "h/a", &["t"]), &mut buf);
        encode(&rec("k2", "h/b", &[]), &mut buf);
        f.write_all(&buf).unwrap();
        f.write_all(&[1, 2, 3]).unwrap(); // torn tail
        drop(f);
        assert_eq!(replay(&path).unwrap().len(), 2);
        let mut f = open_append(&path).unwrap();
        buf.clear();
        encode(&Op::Forget { key: "k1".into() }, &mut buf);
        f.write_all(&buf).unwrap();
        drop(f);
        let ops = replay(&path).unwrap();
        assert_eq!(ops.len(), 3);
        assert_eq!(ops[2], Op::Forget { key: "k1".into() });
        // rewrite replaces atomically
        rewrite(&path, vec![rec("k9", "h/z", &[])].into_iter()).unwrap();
        assert_eq!(replay(&path).unwrap(), vec![rec("k9", "h/z", &[])]);
    }

    #[test]
    fn garbage_header_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(replay(&path).unwrap().is_empty());
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
