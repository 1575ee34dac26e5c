//! What is stored in foyer: one [`Entry`] per key. An object is an [`ObjectMeta`] (status,
//! headers, freshness, tags, and either the whole body inline or the list of its chunks);
//! a key whose response varies holds a [`Entry::Vary`] list instead; each chunk of a large
//! object is its own [`Entry::Chunk`].
//!
//! The byte encoding is ours (versioned, length-prefixed) and carries a CRC32 of every body
//! byte range: decoding from disk checks it, so a corrupted disk entry fails to load (a miss,
//! refetched) and is never served.

use std::io::{Read, Write};
use std::sync::Arc;

use actix_web::http::header::{HeaderName, HeaderValue};
use bytes::Bytes;
use foyer::{Code, Error as FoyerError};

use super::policy::{Freshness, FreshnessSource};

/// One stored value.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A stored response.
    Object(Arc<ObjectMeta>),
    /// The response varies on these (lower-case, sorted) request headers.
    Vary(Arc<Vec<String>>),
    /// One chunk of a chunked object.
    Chunk(Chunk),
}

/// One chunk of a large body.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// CRC32 of `data`.
    pub crc: u32,
    /// The bytes.
    pub data: Bytes,
}

/// Where the body lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Small bodies: inline in the meta entry.
    Inline {
        /// The bytes.
        data: Bytes,
        /// CRC32 of `data`.
        crc: u32,
    },
    /// Large bodies: `len` bytes in chunks of `chunk_size`, keyed by `object_id`.
    Chunked {
        /// Total length.
        len: u64,
        /// Chunk size (the last chunk may be shorter).
        chunk_size: u32,
        /// Random id of this stored version, part of every chunk key.
        object_id: u64,
        /// CRC32 per chunk.
        crcs: Vec<u32>,
    },
}

impl Body {
    /// Body length.
    pub fn len(&self) -> u64 {
        match self {
            Body::Inline { data, .. } => data.len() as u64,
            Body::Chunked { len, .. } => *len,
        }
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A stored response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Host + path + query (purge by URL/prefix).
    pub url: String,
    /// Status code.
    pub status: u16,
    /// Headers to replay (hop-by-hop, Set-Cookie, Surrogate-* already removed).
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// When the request that produced it was sent (Unix ms).
    pub request_time_ms: u64,
    /// When its response arrived (Unix ms).
    pub response_time_ms: u64,
    /// Corrected initial age (RFC 9111 §4.2.3).
    pub initial_age_ms: u64,
    /// Freshness facts.
    pub freshness: Freshness,
    /// Soft-purged: revalidate before use.
    pub invalidated: bool,
    /// Purge tags (`Surrogate-Key`, `Cache-Tag`).
    pub tags: Vec<String>,
    /// The body.
    pub body: Body,
}

impl ObjectMeta {
    /// First value of header `name`.
    pub fn header(&self, name: &HeaderName) -> Option<&HeaderValue> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Approximate memory weight.
    pub fn weight(&self) -> usize {
        let h: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 48)
            .sum();
        let b = match &self.body {
            Body::Inline { data, .. } => data.len(),
            Body::Chunked { crcs, .. } => crcs.len() * 4,
        };
        256 + self.url.len() + h + b + self.tags.iter().map(|t| t.len() + 24).sum::<usize>()
    }
}

const VERSION: u8 = 1;

fn io(e: std::io::Error) -> FoyerError {
    FoyerError::io_error(e)
}

fn bad(what: &str) -> FoyerError {
    io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        what.to_string(),
    ))
}

struct W<'a, T: Write>(&'a mut T);
impl<T: Write> W<'_, T> {
    fn u8(&mut self, v: u8) -> Result<(), FoyerError> {
        self.0.write_all(&[v]).map_err(io)
    }
    fn u16(&mut self, v: u16) -> Result<(), FoyerError> {
        self.0.write_all(&v.to_le_bytes()).map_err(io)
    }
    fn u32(&mut self, v: u32) -> Result<(), FoyerError> {
        self.0.write_all(&v.to_le_bytes()).map_err(io)
    }
    fn u64(&mut self, v: u64) -> Result<(), FoyerError> {
        self.0.write_all(&v.to_le_bytes()).map_err(io)
    }
    fn bytes(&mut self, v: &[u8]) -> Result<(), FoyerError> {
        self.u32(v.len() as u32)?;
        self.0.write_all(v).map_err(io)
    }
}

struct R<'a, T: Read>(&'a mut T);
impl<T: Read> R<'_, T> {
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], FoyerError> {
        let mut b = [0u8; N];
        self.0.read_exact(&mut b).map_err(io)?;
        Ok(b)
    }
    fn u8(&mut self) -> Result<u8, FoyerError> {
        Ok(self.arr::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FoyerError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    fn u32(&mut self) -> Result<u32, FoyerError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    fn u64(&mut self) -> Result<u64, FoyerError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    fn bytes(&mut self) -> Result<Vec<u8>, FoyerError> {
        let n = self.u32()? as usize;
        if n > 64 * 1024 * 1024 {
            return Err(bad("length out of range"));
        }
        let mut v = vec![0u8; n];
        self.0.read_exact(&mut v).map_err(io)?;
        Ok(v)
    }
    fn string(&mut self) -> Result<String, FoyerError> {
        String::from_utf8(self.bytes()?).map_err(|_| bad("invalid utf-8"))
    }
}

fn source_code(s: FreshnessSource) -> u8 {
    match s {
        FreshnessSource::CdnCacheControl => 1,
        FreshnessSource::SurrogateControl => 2,
        FreshnessSource::SMaxAge => 3,
        FreshnessSource::MaxAge => 4,
        FreshnessSource::Expires => 5,
        FreshnessSource::Heuristic => 6,
        FreshnessSource::DefaultTtl => 7,
        FreshnessSource::None => 0,
    }
}

fn source_of(c: u8) -> FreshnessSource {
    match c {
        1 => FreshnessSource::CdnCacheControl,
        2 => FreshnessSource::SurrogateControl,
        3 => FreshnessSource::SMaxAge,
        4 => FreshnessSource::MaxAge,
        5 => FreshnessSource::Expires,
        6 => FreshnessSource::Heuristic,
        7 => FreshnessSource::DefaultTtl,
        _ => FreshnessSource::None,
    }
}

impl Code for Entry {
    fn encode(&self, writer: &mut impl Write) -> foyer::Result<()> {
        let mut w = W(writer);
        w.u8(VERSION)?;
        match self {
            Entry::Chunk(c) => {
                w.u8(3)?;
                w.u32(c.crc)?;
                w.bytes(&c.data)
            }
            Entry::Vary(names) => {
                w.u8(2)?;
                w.u32(names.len() as u32)?;
                for n in names.iter() {
                    w.bytes(n.as_bytes())?;
                }
                Ok(())
            }
            Entry::Object(m) => {
                w.u8(1)?;
                w.bytes(m.url.as_bytes())?;
                w.u16(m.status)?;
                w.u32(m.headers.len() as u32)?;
                for (n, v) in &m.headers {
                    w.bytes(n.as_str().as_bytes())?;
                    w.bytes(v.as_bytes())?;
                }
                w.u64(m.request_time_ms)?;
                w.u64(m.response_time_ms)?;
                w.u64(m.initial_age_ms)?;
                let f = &m.freshness;
                w.u64(f.lifetime_ms)?;
                w.u8(source_code(f.source))?;
                w.u64(f.swr_ms)?;
                w.u64(f.sie_ms)?;
                w.u8(f.no_cache as u8 | (f.forbid_stale as u8) << 1 | (m.invalidated as u8) << 2)?;
                w.u32(m.tags.len() as u32)?;
                for t in &m.tags {
                    w.bytes(t.as_bytes())?;
                }
                match &m.body {
                    Body::Inline { data, crc } => {
                        w.u8(1)?;
                        w.u32(*crc)?;
                        w.bytes(data)
                    }
                    Body::Chunked {
                        len,
                        chunk_size,
                        object_id,
                        crcs,
                    } => {
                        w.u8(2)?;
                        w.u64(*len)?;
                        w.u32(*chunk_size)?;
                        w.u64(*object_id)?;
                        w.u32(crcs.len() as u32)?;
                        for c in crcs {
                            w.u32(*c)?;
                        }
                        Ok(())
                    }
                }
            }
        }
    }

    fn decode(reader: &mut impl Read) -> foyer::Result<Self> {
        let mut r = R(reader);
        if r.u8()? != VERSION {
            return Err(bad("unknown entry version"));
        }
        match r.u8()? {
            3 => {
                let crc = r.u32()?;
                let data = Bytes::from(r.bytes()?);
                if crc32fast::hash(&data) != crc {
                    return Err(bad("chunk checksum mismatch"));
                }
                Ok(Entry::Chunk(Chunk { crc, data }))
            }
            2 => {
                let n = r.u32()? as usize;
                let mut names = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    names.push(r.string()?);
                }
                Ok(Entry::Vary(Arc::new(names)))
            }
            1 => {
                let url = r.string()?;
                let status = r.u16()?;
                let nh = r.u32()? as usize;
                let mut headers = Vec::with_capacity(nh.min(128));
                for _ in 0..nh {
                    let n = HeaderName::from_bytes(&r.bytes()?).map_err(|_| bad("header name"))?;
                    let v =
                        HeaderValue::from_bytes(&r.bytes()?).map_err(|_| bad("header value"))?;
                    headers.push((n, v));
                }
                let request_time_ms = r.u64()?;
                let response_time_ms = r.u64()?;
                let initial_age_ms = r.u64()?;
                let lifetime_ms = r.u64()?;
                let source = source_of(r.u8()?);
                let swr_ms = r.u64()?;
                let sie_ms = r.u64()?;
                let flags = r.u8()?;
                let nt = r.u32()? as usize;
                let mut tags = Vec::with_capacity(nt.min(64));
                for _ in 0..nt {
                    tags.push(r.string()?);
                }
                let body = match r.u8()? {
                    1 => {
                        let crc = r.u32()?;
                        let data = Bytes::from(r.bytes()?);
                        if crc32fast::hash(&data) != crc {
                            return Err(bad("body checksum mismatch"));
                        }
                        Body::Inline { data, crc }
                    }
                    2 => {
                        let len = r.u64()?;
                        let chunk_size = r.u32()?;
                        let object_id = r.u64()?;
                        let n = r.u32()? as usize;
                        // No CRCs at all: an object a ranged fill stored in part (its chunks
                        // are verified against the origin by `If-Match` instead).
                        if chunk_size == 0
                            || (n != 0 && n as u64 != len.div_ceil(chunk_size as u64))
                        {
                            return Err(bad("chunk list does not match length"));
                        }
                        let mut crcs = Vec::with_capacity(n);
                        for _ in 0..n {
                            crcs.push(r.u32()?);
                        }
                        Body::Chunked {
                            len,
                            chunk_size,
                            object_id,
                            crcs,
                        }
                    }
                    _ => return Err(bad("unknown body kind")),
                };
                Ok(Entry::Object(Arc::new(ObjectMeta {
                    url,
                    status,
                    headers,
                    request_time_ms,
                    response_time_ms,
                    initial_age_ms,
                    freshness: Freshness {
                        lifetime_ms,
                        source,
                        swr_ms,
                        sie_ms,
                        no_cache: flags & 1 != 0,
                        forbid_stale: flags & 2 != 0,
                    },
                    invalidated: flags & 4 != 0,
                    tags,
                    body,
                })))
            }
            _ => Err(bad("unknown entry kind")),
        }
    }

    fn estimated_size(&self) -> usize {
        match self {
            Entry::Chunk(c) => 10 + c.data.len(),
            Entry::Vary(v) => 6 + v.iter().map(|n| n.len() + 4).sum::<usize>(),
            Entry::Object(m) => {
                let h: usize = m
                    .headers
                    .iter()
                    .map(|(n, v)| 8 + n.as_str().len() + v.len())
                    .sum();
                let b = match &m.body {
                    Body::Inline { data, .. } => 9 + data.len(),
                    Body::Chunked { crcs, .. } => 25 + 4 * crcs.len(),
                };
                66 + m.url.len() + h + m.tags.iter().map(|t| 4 + t.len()).sum::<usize>() + b
            }
        }
    }
}

impl Entry {
    /// Memory weight for foyer's weighter.
    pub fn weight(&self) -> usize {
        match self {
            Entry::Chunk(c) => 64 + c.data.len(),
            Entry::Vary(v) => 64 + v.iter().map(|n| n.len() + 24).sum::<usize>(),
            Entry::Object(m) => m.weight(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(body: Body) -> ObjectMeta {
        ObjectMeta {
            url: "example.com/a?b".into(),
            status: 200,
            headers: vec![
                (
                    HeaderName::from_static("content-type"),
                    HeaderValue::from_static("text/plain"),
                ),
                (
                    HeaderName::from_static("etag"),
                    HeaderValue::from_static("\"x\""),
                ),
            ],
            request_time_ms: 1,
            response_time_ms: 2,
            initial_age_ms: 3,
            freshness: Freshness {
                lifetime_ms: 4,
                source: FreshnessSource::MaxAge,
                swr_ms: 5,
                sie_ms: 6,
                no_cache: false,
                forbid_stale: true,
            },
            invalidated: true,
            tags: vec!["t1".into(), "t2".into()],
            body,
        }
    }

    fn roundtrip(e: &Entry) -> foyer::Result<Entry> {
        let mut buf = Vec::new();
        e.encode(&mut buf)?;
        assert_eq!(buf.len(), e.estimated_size(), "estimated size is exact");
        Entry::decode(&mut buf.as_slice())
    }

    #[test]
    fn objects_roundtrip() {
        let data = Bytes::from_static(b"hello");
        let m = meta(Body::Inline {
            crc: crc32fast::hash(&data),
            data,
        });
        match roundtrip(&Entry::Object(Arc::new(m.clone()))).unwrap() {
            Entry::Object(d) => assert_eq!(*d, m),
            other => panic!("{other:?}"),
        }
        let m = meta(Body::Chunked {
            len: 10,
            chunk_size: 4,
            object_id: 99,
            crcs: vec![1, 2, 3],
        });
        match roundtrip(&Entry::Object(Arc::new(m.clone()))).unwrap() {
            Entry::Object(d) => assert_eq!(*d, m),
            other => panic!("{other:?}"),
        }
        // Stored in part by a ranged fill: no CRCs yet. It reads back from disk (it was
        // refused, so such objects lived in memory only and were lost on restart).
        let m = meta(Body::Chunked {
            len: 300_000,
            chunk_size: 65_536,
            object_id: 7,
            crcs: Vec::new(),
        });
        match roundtrip(&Entry::Object(Arc::new(m.clone()))).unwrap() {
            Entry::Object(d) => assert_eq!(*d, m),
            other => panic!("{other:?}"),
        }
        // A list of another length than the chunks is still refused.
        let bad = meta(Body::Chunked {
            len: 10,
            chunk_size: 4,
            object_id: 99,
            crcs: vec![1, 2],
        });
        assert!(roundtrip(&Entry::Object(Arc::new(bad))).is_err());
    }

    #[test]
    fn corrupt_bodies_fail_to_decode() {
        let data = Bytes::from_static(b"hello world");
        let c = Entry::Chunk(Chunk {
            crc: crc32fast::hash(&data),
            data,
        });
        let mut buf = Vec::new();
        c.encode(&mut buf).unwrap();
        assert!(Entry::decode(&mut buf.as_slice()).is_ok());
        let last = buf.len() - 1;
        buf[last] ^= 0x20;
        assert!(Entry::decode(&mut buf.as_slice()).is_err());

        let data = Bytes::from_static(b"inline body");
        let m = Entry::Object(Arc::new(meta(Body::Inline {
            crc: crc32fast::hash(&data),
            data,
        })));
        let mut buf = Vec::new();
        m.encode(&mut buf).unwrap();
        let last = buf.len() - 1;
        buf[last] ^= 1;
        assert!(Entry::decode(&mut buf.as_slice()).is_err());
    }

    #[test]
    fn vary_roundtrip() {
        let v = Entry::Vary(Arc::new(vec!["accept-encoding".into()]));
        match roundtrip(&v).unwrap() {
            Entry::Vary(n) => assert_eq!(*n, vec!["accept-encoding".to_string()]),
            other => panic!("{other:?}"),
        }
    }
}
