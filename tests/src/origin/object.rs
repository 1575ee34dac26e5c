//! What an object *is*: its size (parsed from the path), its deterministic body, its
//! validators (ETag, Last-Modified), and the pure decision of what to answer for a request's
//! conditional and range headers. No I/O here.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest object the demo origin serves (2 GiB).
pub const MAX_SIZE: u64 = 2 * 1024 * 1024 * 1024;

/// Base of every object's `Last-Modified` (2026-01-01T00:00:00Z); each version adds a minute.
const LAST_MODIFIED_BASE: u64 = 1_767_225_600;

/// Parse a size such as `512`, `1k`, `64K`, `1m`, `1g` (binary units). `None` when malformed
/// or above [`MAX_SIZE`].
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1024),
        b'm' | b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'g' | b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let size = n.checked_mul(mult)?;
    (size <= MAX_SIZE).then_some(size)
}

/// One object's identity: size, id (the rest of the path) and the origin's content version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    /// Body length in bytes.
    pub size: u64,
    /// The id part of `/obj/<size>/<id>`.
    pub id: String,
    /// Content version (changed through `POST /_control`); changes body and validators.
    pub version: u64,
}

impl Object {
    /// The seed every body byte and the ETag derive from.
    pub fn seed(&self) -> u64 {
        let mut h = Fnv::new();
        h.write(&self.size.to_le_bytes());
        h.write(self.id.as_bytes());
        h.write(&[0]);
        h.write(&self.version.to_le_bytes());
        h.finish()
    }

    /// Strong ETag, quoted: stable for (size, id, version).
    pub fn etag(&self) -> String {
        format!("\"{:016x}\"", self.seed())
    }

    /// Last-Modified time (whole seconds).
    pub fn last_modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(LAST_MODIFIED_BASE + self.version * 60)
    }

    /// Write the body bytes `[offset, offset + buf.len())` into `buf`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        fill_body(self.seed(), offset, buf)
    }

    /// The whole body (tests; small objects only).
    pub fn body(&self) -> Vec<u8> {
        let mut v = vec![0; self.size as usize];
        self.fill(0, &mut v);
        v
    }
}

/// The body bytes of an object with `seed`, from `offset`: every aligned 8-byte word is
/// `splitmix64(seed ^ word_index)`, so any range can be produced without the rest.
pub fn fill_body(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = splitmix64(seed ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// FNV-1a 64: stable across processes and Rust versions (unlike `DefaultHasher`).
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The request headers that decide the answer (raw values, `None` when absent).
#[derive(Debug, Clone, Default)]
pub struct Conditions<'a> {
    /// `If-None-Match`.
    pub if_none_match: Option<&'a str>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a str>,
    /// `Range`.
    pub range: Option<&'a str>,
    /// `If-Range`.
    pub if_range: Option<&'a str>,
}

/// What to send for a GET of an existing object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the whole body.
    Full,
    /// 304 Not Modified.
    NotModified,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// 416 Range Not Satisfiable.
    Unsatisfiable,
}

impl Outcome {
    /// Name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Full => "full",
            Outcome::NotModified => "not_modified",
            Outcome::Partial { .. } => "partial",
            Outcome::Unsatisfiable => "unsatisfiable",
        }
    }
}

/// RFC 9110 §13.2.2 order: If-None-Match (weak comparison) decides when present, else
/// If-Modified-Since; then Range (single range only; several ranges or bad syntax → the
/// whole body), guarded by If-Range.
pub fn evaluate(obj: &Object, cond: &Conditions<'_>) -> Outcome {
    let etag = obj.etag();
    if let Some(inm) = cond.if_none_match {
        if etag_list_matches(inm, &etag) {
            return Outcome::NotModified;
        }
    } else if let Some(ims) = cond.if_modified_since {
        if let Ok(since) = httpdate::parse_http_date(ims.trim()) {
            if obj.last_modified() <= since {
                return Outcome::NotModified;
            }
        }
    }
    let Some(range) = cond.range else {
        return Outcome::Full;
    };
    if let Some(ir) = cond.if_range {
        let ir = ir.trim();
        let current = if ir.starts_with('"') || ir.starts_with("W/") {
            // Strong comparison: a weak validator never matches.
            ir == etag
        } else {
            httpdate::parse_http_date(ir)
                .map(|d| d == obj.last_modified())
                .unwrap_or(false)
        };
        if !current {
            return Outcome::Full;
        }
    }
    match parse_range(range, obj.size) {
        RangeSpec::Ignore => Outcome::Full,
        RangeSpec::Unsatisfiable => Outcome::Unsatisfiable,
        RangeSpec::Bytes(start, end) => Outcome::Partial { start, end },
    }
}

fn etag_list_matches(list: &str, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

/// A parsed `Range` header against a body of known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Not a single byte range we serve: answer the whole body.
    Ignore,
    /// A syntactically valid range outside the body.
    Unsatisfiable,
    /// Bytes `start..=end`, clamped to the body.
    Bytes(u64, u64),
}

/// Parse `bytes=a-b`, `bytes=a-` or `bytes=-n` for a body of `size` bytes.
pub fn parse_range(header: &str, size: u64) -> RangeSpec {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignore;
    };
    if spec.contains(',') {
        return RangeSpec::Ignore;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignore;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => RangeSpec::Ignore,
        (true, false) => match num(b) {
            None => RangeSpec::Ignore,
            Some(0) => RangeSpec::Unsatisfiable,
            Some(_) if size == 0 => RangeSpec::Unsatisfiable,
            Some(n) => RangeSpec::Bytes(size - n.min(size), size - 1),
        },
        (false, open_end) => {
            let Some(start) = num(a) else {
                return RangeSpec::Ignore;
            };
            let end = if open_end {
                u64::MAX
            } else {
                match num(b) {
                    Some(e) => e,
                    None => return RangeSpec::Ignore,
                }
            };
            if end < start {
                return RangeSpec::Ignore;
            }
            if start >= size {
                return RangeSpec::Unsatisfiable;
            }
            RangeSpec::Bytes(start, end.min(size - 1))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(size: u64) -> Object {
        Object {
            size,
            id: "hello".into(),
            version: 0,
        }
    }

    #[test]
    fn sizes_parse_with_binary_suffixes_and_a_cap() {
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("64K"), Some(65536));
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("2g"), Some(MAX_SIZE));
        assert_eq!(parse_size("3g"), None);
        assert_eq!(parse_size("k"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1.5k"), None);
        assert_eq!(parse_size("99999999999999999999"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn bodies_are_deterministic_and_any_range_matches_the_whole() {
        let o = obj(1000);
        let whole = o.body();
        assert_eq!(whole.len(), 1000);
        assert_eq!(whole, obj(1000).body());
        for (start, len) in [(0, 1), (3, 17), (7, 9), (8, 8), (999, 1), (500, 500)] {
            let mut part = vec![0; len];
            o.fill(start as u64, &mut part);
            assert_eq!(part, whole[start..start + len], "range {start}+{len}");
        }
        // Not a constant or short-period pattern.
        assert_ne!(whole[..8], whole[8..16]);
        let other = Object {
            id: "other".into(),
            ..obj(1000)
        };
        assert_ne!(whole, other.body());
    }

    #[test]
    fn version_changes_etag_body_and_last_modified() {
        let a = obj(64);
        let b = Object {
            version: 1,
            ..a.clone()
        };
        assert_ne!(a.etag(), b.etag());
        assert_ne!(a.body(), b.body());
        assert!(b.last_modified() > a.last_modified());
        assert!(a.etag().starts_with('"') && a.etag().ends_with('"'));
    }

    fn inm(v: &str) -> Conditions<'_> {
        Conditions {
            if_none_match: Some(v),
            ..Default::default()
        }
    }

    fn ims(v: &str) -> Conditions<'_> {
        Conditions {
            if_modified_since: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn conditionals_follow_rfc_9110_precedence() {
        let o = obj(100);
        let etag = o.etag();
        let lm = httpdate::fmt_http_date(o.last_modified());
        assert_eq!(evaluate(&o, &inm(&etag)), Outcome::NotModified);
        assert_eq!(
            evaluate(&o, &inm(&format!("W/{etag}"))),
            Outcome::NotModified
        );
        assert_eq!(evaluate(&o, &inm("*")), Outcome::NotModified);
        let list = format!("\"x\", {etag}");
        assert_eq!(evaluate(&o, &inm(&list)), Outcome::NotModified);
        assert_eq!(evaluate(&o, &inm("\"nope\"")), Outcome::Full);
        // If-None-Match present: If-Modified-Since is ignored.
        let both = Conditions {
            if_modified_since: Some(&lm),
            ..inm("\"nope\"")
        };
        assert_eq!(evaluate(&o, &both), Outcome::Full);
        assert_eq!(evaluate(&o, &ims(&lm)), Outcome::NotModified);
        let old = "Thu, 01 Jan 2015 00:00:00 GMT";
        assert_eq!(evaluate(&o, &ims(old)), Outcome::Full);
        assert_eq!(evaluate(&o, &ims("garbage")), Outcome::Full);
    }

    #[test]
    fn ranges_parse_clamp_and_reject() {
        assert_eq!(parse_range("bytes=0-9", 100), RangeSpec::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-200", 100), RangeSpec::Bytes(90, 99));
        assert_eq!(parse_range("bytes=10-", 100), RangeSpec::Bytes(10, 99));
        assert_eq!(parse_range("bytes=-10", 100), RangeSpec::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), RangeSpec::Bytes(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), RangeSpec::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=9-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("items=0-1", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=a-b", 100), RangeSpec::Ignore);
        assert_eq!(parse_range("bytes=-", 100), RangeSpec::Ignore);
    }

    fn ranged(if_range: Option<&str>) -> Conditions<'_> {
        Conditions {
            range: Some("bytes=0-9"),
            if_range,
            ..Default::default()
        }
    }

    #[test]
    fn if_range_guards_the_range() {
        let o = obj(100);
        let etag = o.etag();
        let lm = httpdate::fmt_http_date(o.last_modified());
        let part = Outcome::Partial { start: 0, end: 9 };
        assert_eq!(evaluate(&o, &ranged(None)), part);
        assert_eq!(evaluate(&o, &ranged(Some(&etag))), part);
        assert_eq!(evaluate(&o, &ranged(Some("\"old\""))), Outcome::Full);
        assert_eq!(evaluate(&o, &ranged(Some(&lm))), part);
        let old = "Thu, 01 Jan 2015 00:00:00 GMT";
        assert_eq!(evaluate(&o, &ranged(Some(old))), Outcome::Full);
    }
}
