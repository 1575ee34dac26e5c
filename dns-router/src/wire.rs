//! Step 1 of a query: decode only what answering needs — the header, the single question
//! (name lowercased for lookup, raw bytes kept so the answer echoes the client's letter case),
//! and the OPT pseudo-record with its Client Subnet option. Everything else in the packet is
//! skipped without following compression pointers, so no input can loop or allocate much.
//!
//! Errors say what to answer: [`Malformed::Drop`] (no readable header: say nothing) or
//! [`Malformed::FormErr`] (FORMERR with the query's id and opcode).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use crate::cookies::{CookieOpt, OPT_COOKIE};

/// DNS header length.
pub const HEADER_LEN: usize = 12;
/// Longest name in wire form (RFC 1035 §2.3.4).
pub const MAX_NAME_LEN: usize = 255;
/// EDNS option code of Client Subnet (RFC 7871).
pub const OPT_ECS: u16 = 8;

/// DNS RR types by number: the one place the router names them. The query path matches on
/// the `u16` of the wire (a `const` match, no conversion per query); zones are built from
/// presentation data with hickory-proto's `RecordType`, and a test checks these numbers
/// against it.
pub mod rtype {
    /// A (RFC 1035).
    pub const A: u16 = 1;
    /// NS (RFC 1035).
    pub const NS: u16 = 2;
    /// CNAME (RFC 1035).
    pub const CNAME: u16 = 5;
    /// SOA (RFC 1035).
    pub const SOA: u16 = 6;
    /// AAAA (RFC 3596).
    pub const AAAA: u16 = 28;
    /// OPT pseudo-record (RFC 6891): never a question.
    pub const OPT: u16 = 41;
    /// DS (RFC 4034): at a delegation point, answered from the parent side.
    pub const DS: u16 = 43;
    /// IXFR (RFC 1995): zone transfers are refused.
    pub const IXFR: u16 = 251;
    /// AXFR (RFC 5936): zone transfers are refused.
    pub const AXFR: u16 = 252;
    /// MAILB (obsolete meta type): not implemented.
    pub const MAILB: u16 = 253;
    /// MAILA (obsolete meta type): not implemented.
    pub const MAILA: u16 = 254;
    /// ANY (RFC 8482: answered with one RRset).
    pub const ANY: u16 = 255;
}

/// DNS classes by number.
pub mod class {
    /// IN.
    pub const IN: u16 = 1;
    /// ANY (QCLASS `*`).
    pub const ANY: u16 = 255;
}

/// Why a packet cannot be answered normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// Shorter than a header, or a response (QR=1): send nothing.
    Drop,
    /// Answer FORMERR (header fields to echo are in the packet).
    FormErr,
}

/// The Client Subnet option of a query, validated (RFC 7871 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    /// SOURCE PREFIX-LENGTH.
    pub source_prefix: u8,
    /// ADDRESS, zero-extended to a full address (bits beyond the prefix are zero).
    pub addr: IpAddr,
}

impl Ecs {
    /// The address bytes as sent (ceil(source/8) bytes), for the echo.
    pub fn addr_bytes(&self) -> ([u8; 16], usize) {
        let mut out = [0u8; 16];
        let n = (self.source_prefix as usize).div_ceil(8);
        match self.addr {
            IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => out.copy_from_slice(&a.octets()),
        }
        (out, n)
    }
}

/// The OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requester's UDP payload size (values below 512 count as 512).
    pub udp_size: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit (copied to the response, RFC 3225).
    pub dnssec_ok: bool,
    /// Client Subnet, when present and well formed.
    pub ecs: Option<Ecs>,
    /// COOKIE option (RFC 7873), as sent (a repeated one counts as malformed).
    pub cookie: Option<CookieOpt>,
}

/// A decoded query: header fields and the question, borrowing the packet.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    /// Message id.
    pub id: u16,
    /// Header flags word as received.
    pub flags: u16,
    /// QNAME, QTYPE and QCLASS exactly as received (the echo keeps the letter case).
    pub question: &'a [u8],
    /// QNAME in wire form, lowercased.
    pub name_lower: [u8; MAX_NAME_LEN],
    /// Length of QNAME in wire form.
    pub name_len: usize,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// The OPT record, when the query had one.
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// The lowercased wire name.
    pub fn name(&self) -> &[u8] {
        &self.name_lower[..self.name_len]
    }

    /// The opcode (bits 11..14 of the flags).
    pub fn opcode(&self) -> u8 {
        opcode(self.flags)
    }
}

/// Opcode from a flags word.
pub fn opcode(flags: u16) -> u8 {
    ((flags >> 11) & 0x0f) as u8
}

/// Outcome of [`decode`]: a query, or an opcode we do not implement (answer NOTIMP).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned by value on the hot path: no allocation
pub enum Decoded<'a> {
    /// A standard query.
    Query(Query<'a>),
    /// Opcode other than QUERY: NOTIMP, with the header echoed.
    NotImplemented,
    /// No question (QDCOUNT 0) and an OPT record with a COOKIE option: a client asking for a
    /// server cookie (RFC 7873 §5.4). Any other query without a question is FORMERR.
    CookieOnly {
        /// Message id.
        id: u16,
        /// Header flags word as received.
        flags: u16,
        /// The OPT record (its `cookie` is `Some`).
        edns: Edns,
    },
}

fn u16_at(p: &[u8], at: usize) -> Result<u16, Malformed> {
    match p.get(at..at + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Malformed::FormErr),
    }
}

/// Decode a query packet.
pub fn decode(p: &[u8]) -> Result<Decoded<'_>, Malformed> {
    if p.len() < HEADER_LEN {
        return Err(Malformed::Drop);
    }
    let id = u16::from_be_bytes([p[0], p[1]]);
    let flags = u16::from_be_bytes([p[2], p[3]]);
    if flags & 0x8000 != 0 {
        return Err(Malformed::Drop);
    }
    if opcode(flags) != 0 {
        return Ok(Decoded::NotImplemented);
    }
    let qd = u16_at(p, 4)?;
    let an = u16_at(p, 6)?;
    let ns = u16_at(p, 8)?;
    let ar = u16_at(p, 10)?;
    if qd == 0 {
        return match read_records(p, HEADER_LEN, an, ns, ar)? {
            Some(edns) if edns.cookie.is_some() => Ok(Decoded::CookieOnly { id, flags, edns }),
            _ => Err(Malformed::FormErr),
        };
    }
    if qd != 1 {
        return Err(Malformed::FormErr);
    }
    let mut name_lower = [0u8; MAX_NAME_LEN];
    let name_len = read_question_name(p, HEADER_LEN, &mut name_lower)?;
    let qend = HEADER_LEN + name_len;
    let qtype = u16_at(p, qend)?;
    let qclass = u16_at(p, qend + 2)?;
    let question = &p[HEADER_LEN..qend + 4];
    let edns = read_records(p, qend + 4, an, ns, ar)?;
    Ok(Decoded::Query(Query {
        id,
        flags,
        question,
        name_lower,
        name_len,
        qtype,
        qclass,
        edns,
    }))
}

/// Skip the answer and authority records from `at`, then read the additional ones: the OPT
/// record, when there is one. An OPT anywhere but the additional section, more than one, or
/// one not owned by the root is malformed (RFC 6891 §6.1.1).
fn read_records(
    p: &[u8],
    mut at: usize,
    an: u16,
    ns: u16,
    ar: u16,
) -> Result<Option<Edns>, Malformed> {
    for _ in 0..(an as usize + ns as usize) {
        let (next, rr) = skip_rr(p, at)?;
        if rr.rtype == rtype::OPT {
            // An OPT outside the additional section: RFC 6891 §6.1.1.
            return Err(Malformed::FormErr);
        }
        at = next;
    }
    let mut edns = None;
    for _ in 0..ar {
        let (next, rr) = skip_rr(p, at)?;
        if rr.rtype == rtype::OPT {
            if edns.is_some() || rr.name_len != 1 {
                // Two OPT records, or an OPT not owned by the root: RFC 6891 §6.1.1.
                return Err(Malformed::FormErr);
            }
            edns = Some(decode_opt(p, &rr)?);
        }
        at = next;
    }
    Ok(edns)
}

/// What a FORMERR answer to a packet [`decode`] refused echoes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormErrEcho<'a> {
    /// The question, when QDCOUNT is 1 and it reads (QNAME, QTYPE, QCLASS as received).
    pub question: Option<&'a [u8]>,
    /// QTYPE of that question (0 without one).
    pub qtype: u16,
    /// `Some(DO bit)` when an OPT record was found: the FORMERR then carries an OPT, so the
    /// requester does not conclude that we lack EDNS (RFC 6891 §7).
    pub opt: Option<bool>,
}

/// Read what a FORMERR can echo from a malformed query (a packet with a readable header that
/// [`decode`] refused): the question when there is exactly one and it reads, and whether an
/// OPT record is found (in any section) before the first record that does not read.
pub fn formerr_echo(p: &[u8]) -> FormErrEcho<'_> {
    let mut echo = FormErrEcho {
        question: None,
        qtype: 0,
        opt: None,
    };
    let (Ok(qd), Ok(an), Ok(ns), Ok(ar)) =
        (u16_at(p, 4), u16_at(p, 6), u16_at(p, 8), u16_at(p, 10))
    else {
        return echo;
    };
    let mut at = HEADER_LEN;
    for _ in 0..qd {
        let Ok(name_len) = skip_name(p, at) else {
            return echo;
        };
        let Some(fixed) = p.get(at + name_len..at + name_len + 4) else {
            return echo;
        };
        let mut lower = [0u8; MAX_NAME_LEN];
        if qd == 1 && read_question_name(p, at, &mut lower).is_ok() {
            echo.question = p.get(at..at + name_len + 4);
            echo.qtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        }
        at += name_len + 4;
    }
    for _ in 0..(usize::from(an) + usize::from(ns) + usize::from(ar)) {
        let Ok((next, rr)) = skip_rr(p, at) else {
            break;
        };
        if rr.rtype == rtype::OPT && echo.opt.is_none() {
            echo.opt = Some(rr.ttl & 0x8000 != 0);
        }
        at = next;
    }
    echo
}

/// Length of the name at `start` (a pointer ends it and is not followed).
fn skip_name(p: &[u8], start: usize) -> Result<usize, Malformed> {
    let mut at = start;
    let mut total = 0usize;
    loop {
        let l = *p.get(at).ok_or(Malformed::FormErr)? as usize;
        match l & 0xc0 {
            0x00 => {
                at += 1 + l;
                total += 1 + l;
                if total > MAX_NAME_LEN {
                    return Err(Malformed::FormErr);
                }
                if l == 0 {
                    return Ok(at - start);
                }
            }
            0xc0 => return Ok(at + 2 - start),
            _ => return Err(Malformed::FormErr),
        }
    }
}

/// Read an uncompressed name at `at`, lowercased into `out`; returns its wire length.
/// A compression pointer in the question can only point backwards into the header, so it
/// is refused.
fn read_question_name(
    p: &[u8],
    mut at: usize,
    out: &mut [u8; MAX_NAME_LEN],
) -> Result<usize, Malformed> {
    let mut len = 0usize;
    loop {
        let l = *p.get(at).ok_or(Malformed::FormErr)? as usize;
        if l & 0xc0 != 0 {
            return Err(Malformed::FormErr);
        }
        if len + 1 + l > MAX_NAME_LEN {
            return Err(Malformed::FormErr);
        }
        let label = p.get(at + 1..at + 1 + l).ok_or(Malformed::FormErr)?;
        out[len] = l as u8;
        for (i, b) in label.iter().enumerate() {
            out[len + 1 + i] = b.to_ascii_lowercase();
        }
        len += 1 + l;
        at += 1 + l;
        if l == 0 {
            return Ok(len);
        }
    }
}

/// What [`skip_rr`] saw of a record.
struct RrView {
    name_len: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_len: usize,
}

/// Skip one resource record starting at `at` (names may end in a pointer, which is not
/// followed); returns the offset after it.
fn skip_rr(p: &[u8], start: usize) -> Result<(usize, RrView), Malformed> {
    let name_len = skip_name(p, start)?;
    let at = start + name_len;
    let rtype = u16_at(p, at)?;
    let class = u16_at(p, at + 2)?;
    let ttl = (u16_at(p, at + 4)? as u32) << 16 | u16_at(p, at + 6)? as u32;
    let rdata_len = u16_at(p, at + 8)? as usize;
    let rdata_start = at + 10;
    let end = rdata_start + rdata_len;
    if end > p.len() {
        return Err(Malformed::FormErr);
    }
    Ok((
        end,
        RrView {
            name_len,
            rtype,
            class,
            ttl,
            rdata_start,
            rdata_len,
        },
    ))
}

fn decode_opt(p: &[u8], rr: &RrView) -> Result<Edns, Malformed> {
    let mut edns = Edns {
        udp_size: rr.class.max(512),
        version: (rr.ttl >> 16) as u8,
        dnssec_ok: rr.ttl & 0x8000 != 0,
        ecs: None,
        cookie: None,
    };
    let rdata = &p[rr.rdata_start..rr.rdata_start + rr.rdata_len];
    let mut at = 0usize;
    while at < rdata.len() {
        let code = u16_at(rdata, at)?;
        let len = u16_at(rdata, at + 2)? as usize;
        let data = rdata.get(at + 4..at + 4 + len).ok_or(Malformed::FormErr)?;
        if code == OPT_ECS {
            if edns.ecs.is_some() {
                return Err(Malformed::FormErr);
            }
            edns.ecs = Some(decode_ecs(data)?);
        } else if code == OPT_COOKIE {
            edns.cookie = Some(match edns.cookie {
                None => CookieOpt::parse(data),
                Some(_) => CookieOpt::Malformed,
            });
        }
        at += 4 + len;
    }
    Ok(edns)
}

/// The Client Subnet address of a query packet, read without decoding the rest (the UDP loop
/// uses it to bring the geo map's entries of a whole batch into the cache before answering
/// it); `None` when the packet has none or is not a plain query. Not a validation: `decode`
/// decides what the packet is.
pub fn peek_ecs(p: &[u8]) -> Option<IpAddr> {
    if p.len() < HEADER_LEN {
        return None;
    }
    let an = u16_at(p, 6).ok()? as usize;
    let ns = u16_at(p, 8).ok()? as usize;
    let ar = u16_at(p, 10).ok()?;
    let mut at = HEADER_LEN;
    loop {
        let l = *p.get(at)? as usize;
        if l & 0xc0 != 0 {
            return None;
        }
        at += 1 + l;
        if l == 0 {
            break;
        }
    }
    at += 4;
    for _ in 0..an + ns {
        at = skip_rr(p, at).ok()?.0;
    }
    for _ in 0..ar {
        let (next, rr) = skip_rr(p, at).ok()?;
        if rr.rtype == rtype::OPT {
            let rdata = p.get(rr.rdata_start..rr.rdata_start + rr.rdata_len)?;
            let mut o = 0usize;
            while o + 4 <= rdata.len() {
                let code = u16_at(rdata, o).ok()?;
                let len = u16_at(rdata, o + 2).ok()? as usize;
                let data = rdata.get(o + 4..o + 4 + len)?;
                if code == OPT_ECS {
                    return decode_ecs(data).ok().map(|e| e.addr);
                }
                o += 4 + len;
            }
            return None;
        }
        at = next;
    }
    None
}

/// Validate a Client Subnet option body (RFC 7871 §6): known family, prefix within the
/// family, ADDRESS exactly ceil(prefix/8) bytes, no bits set beyond the prefix.
pub fn decode_ecs(data: &[u8]) -> Result<Ecs, Malformed> {
    if data.len() < 4 {
        return Err(Malformed::FormErr);
    }
    let family = u16::from_be_bytes([data[0], data[1]]);
    let source_prefix = data[2];
    let addr = &data[4..];
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return Err(Malformed::FormErr),
    };
    if source_prefix > max || addr.len() != (source_prefix as usize).div_ceil(8) {
        return Err(Malformed::FormErr);
    }
    let mut full = [0u8; 16];
    full[..addr.len()].copy_from_slice(addr);
    if !source_prefix.is_multiple_of(8) {
        let last = addr[addr.len() - 1];
        let mask = 0xffu8 >> (source_prefix % 8);
        if last & mask != 0 {
            return Err(Malformed::FormErr);
        }
    }
    let addr = if family == 1 {
        IpAddr::V4(Ipv4Addr::new(full[0], full[1], full[2], full[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(full))
    };
    Ok(Ecs {
        family,
        source_prefix,
        addr,
    })
}

/// Convert a presentation name (`www.example.test`, trailing dot optional) to lowercase
/// wire form. Returns `None` for names that are not valid DNS names.
pub fn name_to_wire(name: &str) -> Option<Vec<u8>> {
    let n = name.strip_suffix('.').unwrap_or(name);
    let mut out = Vec::with_capacity(n.len() + 2);
    if !n.is_empty() {
        for label in n.split('.') {
            if label.is_empty() || label.len() > 63 {
                return None;
            }
            out.push(label.len() as u8);
            out.extend(label.bytes().map(|b| b.to_ascii_lowercase()));
        }
    }
    out.push(0);
    (out.len() <= MAX_NAME_LEN).then_some(out)
}

/// Presentation form of a wire name (for logs, the query log and metrics).
pub fn wire_to_string(wire: &[u8]) -> String {
    let mut s = String::with_capacity(wire.len());
    let mut at = 0usize;
    while let Some(&l) = wire.get(at) {
        if l == 0 || l & 0xc0 != 0 {
            break;
        }
        let label = wire.get(at + 1..at + 1 + l as usize).unwrap_or(&[]);
        for &b in label {
            if b.is_ascii_graphic() && b != b'.' && b != b'\\' {
                s.push(b as char);
            } else {
                s.push_str(&format!("\\{b:03}"));
            }
        }
        s.push('.');
        at += 1 + l as usize;
    }
    if s.is_empty() {
        s.push('.');
    }
    s
}

/// Offsets where each label of a wire name starts (the suffix from each offset is an
/// ancestor name), the root excluded.
pub fn label_starts(wire: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let l = *wire.get(at)? as usize;
        if l == 0 {
            return None;
        }
        let here = at;
        at += 1 + l;
        Some(here)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &[u8], qtype: u16, additional: &[u8], arcount: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&arcount.to_be_bytes());
        p.extend_from_slice(name);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p.extend_from_slice(additional);
        p
    }

    fn opt(options: &[u8], version: u8) -> Vec<u8> {
        let mut o = vec![0, 0, 41, 0x04, 0xd0, 0, version, 0x80, 0];
        o.extend_from_slice(&(options.len() as u16).to_be_bytes());
        o.extend_from_slice(options);
        o
    }

    fn ecs_opt(family: u16, prefix: u8, addr: &[u8]) -> Vec<u8> {
        let mut o = vec![0, 8];
        o.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
        o.extend_from_slice(&family.to_be_bytes());
        o.push(prefix);
        o.push(0);
        o.extend_from_slice(addr);
        o
    }

    #[test]
    fn decodes_question_lowercased_and_raw() {
        let p = query(b"\x03WwW\x07example\x04test\x00", 1, &[], 0);
        let Decoded::Query(q) = decode(&p).unwrap() else {
            panic!("not a query")
        };
        assert_eq!(q.name(), b"\x03www\x07example\x04test\x00");
        assert_eq!(&q.question[..4], b"\x03WwW");
        assert_eq!(q.qtype, 1);
        assert!(q.edns.is_none());
    }

    #[test]
    fn decodes_edns_and_ecs() {
        let p = query(b"\x00", 1, &opt(&ecs_opt(1, 24, &[192, 0, 2]), 0), 1);
        let Decoded::Query(q) = decode(&p).unwrap() else {
            panic!()
        };
        let e = q.edns.unwrap();
        assert_eq!(e.udp_size, 1232);
        assert!(e.dnssec_ok);
        let ecs = e.ecs.unwrap();
        assert_eq!(ecs.source_prefix, 24);
        assert_eq!(ecs.addr, "192.0.2.0".parse::<IpAddr>().unwrap());
        assert_eq!(ecs.addr_bytes().1, 3);
    }

    #[test]
    fn malformed_cases() {
        assert_eq!(decode(&[0; 5]).unwrap_err(), Malformed::Drop);
        // Two OPTs.
        let mut two = opt(&[], 0);
        two.extend(opt(&[], 0));
        assert_eq!(
            decode(&query(b"\x00", 1, &two, 2)).unwrap_err(),
            Malformed::FormErr
        );
        // ECS: bits beyond prefix, unknown family, wrong length, prefix too long.
        for bad in [
            ecs_opt(1, 23, &[192, 0, 3]),
            ecs_opt(3, 0, &[]),
            ecs_opt(1, 24, &[192, 0]),
            ecs_opt(1, 33, &[1, 2, 3, 4, 5]),
        ] {
            assert_eq!(
                decode(&query(b"\x00", 1, &opt(&bad, 0), 1)).unwrap_err(),
                Malformed::FormErr
            );
        }
        // Label running past the end; pointer in question; qdcount 2.
        assert!(decode(&query(b"\x09abc", 1, &[], 0)).is_err());
        assert!(decode(&query(b"\xc0\x0c", 1, &[], 0)).is_err());
        let mut p = query(b"\x00", 1, &[], 0);
        p[5] = 2;
        assert_eq!(decode(&p).unwrap_err(), Malformed::FormErr);
        // A name longer than 255 bytes.
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend([b'a'; 63]);
        }
        long.push(0);
        assert!(decode(&query(&long, 1, &[], 0)).is_err());
    }

    #[test]
    fn an_opt_outside_the_additional_section_is_formerr() {
        // ANCOUNT 1 (the OPT), ARCOUNT 0; then NSCOUNT 1 with a proper OPT in additional too.
        let mut p = query(b"\x00", 1, &opt(&[], 0), 0);
        p[7] = 1;
        assert_eq!(decode(&p).unwrap_err(), Malformed::FormErr);
        let mut o = opt(&[], 0);
        o.extend(opt(&[], 0));
        let mut p = query(b"\x00", 1, &o, 1);
        p[9] = 1;
        assert_eq!(decode(&p).unwrap_err(), Malformed::FormErr);
        assert_eq!(
            formerr_echo(&p).opt,
            Some(true),
            "the FORMERR carries an OPT"
        );
        // Another type in the answer section is skipped as before.
        let mut p = query(b"\x00", 1, &[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0], 0);
        p[7] = 1;
        assert!(decode(&p).is_ok());
    }

    #[test]
    fn no_question_is_a_cookie_query_or_formerr() {
        let header = |ar: u16| {
            let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 0, 0, 0, 0, 0];
            p.extend_from_slice(&ar.to_be_bytes());
            p
        };
        assert_eq!(decode(&header(0)).unwrap_err(), Malformed::FormErr);
        let mut p = header(1);
        p.extend(opt(&[], 0));
        assert_eq!(
            decode(&p).unwrap_err(),
            Malformed::FormErr,
            "OPT, no cookie"
        );
        let mut p = header(1);
        p.extend(opt(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8], 0));
        let Ok(Decoded::CookieOnly { id, edns, .. }) = decode(&p) else {
            panic!("not a cookie query")
        };
        assert_eq!(id, 0x1234);
        assert!(matches!(
            edns.cookie,
            Some(CookieOpt::Cookie { server_len: 0, .. })
        ));
    }

    #[test]
    fn formerr_echo_finds_the_question_and_the_opt() {
        let bad_ecs = opt(&ecs_opt(1, 23, &[192, 0, 3]), 0);
        let p = query(b"\x03www\x00", 28, &bad_ecs, 1);
        assert_eq!(decode(&p).unwrap_err(), Malformed::FormErr);
        let e = formerr_echo(&p);
        assert_eq!(e.question, Some(&b"\x03www\x00\x00\x1c\x00\x01"[..]));
        assert_eq!((e.qtype, e.opt), (28, Some(true)));
        // Two questions: none echoed, the OPT after them still found.
        let mut p = query(b"\x01a\x00", 1, &[], 0);
        p.extend_from_slice(b"\x01b\x00\x00\x01\x00\x01");
        p.extend_from_slice(&opt(&[], 0));
        p[5] = 2;
        p[11] = 1;
        let e = formerr_echo(&p);
        assert_eq!((e.question, e.qtype, e.opt), (None, 0, Some(true)));
        // No OPT; a cut question; a record that does not read before the OPT.
        let mut p = query(b"\x00", 1, &[], 0);
        p[5] = 0;
        assert_eq!(formerr_echo(&p).opt, None);
        let p = query(b"\x03www\x00", 1, &[], 0);
        let e = formerr_echo(&p[..p.len() - 1]);
        assert_eq!((e.question, e.opt), (None, None));
        let mut p = query(b"\x00", 1, &[0x41], 2);
        p.extend_from_slice(&opt(&[], 0));
        assert_eq!(formerr_echo(&p).opt, None);
        // Never panics on cut packets.
        let p = query(b"\x03www\x00", 1, &bad_ecs, 1);
        for n in 0..p.len() {
            let _ = formerr_echo(&p[..n]);
        }
    }

    #[test]
    fn peek_ecs_finds_what_decode_finds() {
        let with = |o: &[u8]| query(b"\x03www\x00", 1, &opt(o, 0), 1);
        for (p, want) in [
            (with(&ecs_opt(1, 24, &[192, 0, 2])), Some("192.0.2.0")),
            (
                with(&ecs_opt(2, 48, &[0x20, 1, 0xd, 0xb8, 0, 1])),
                Some("2001:db8:1::"),
            ),
            (with(&[0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8]), None),
            (query(b"\x00", 1, &[], 0), None),
            (with(&ecs_opt(1, 23, &[192, 0, 3])), None),
        ] {
            assert_eq!(peek_ecs(&p), want.map(|w| w.parse::<IpAddr>().unwrap()));
            if let Some(w) = want {
                let Ok(Decoded::Query(q)) = decode(&p) else {
                    panic!()
                };
                assert_eq!(q.edns.unwrap().ecs.unwrap().addr.to_string(), w);
            }
        }
        // Never panics on cut packets.
        let p = with(&ecs_opt(2, 56, &[0x20, 1, 0xd, 0xb8, 0, 1, 2]));
        for n in 0..p.len() {
            let _ = peek_ecs(&p[..n]);
        }
    }

    #[test]
    fn type_numbers_match_hickory() {
        use hickory_proto::rr::{DNSClass, RecordType};
        for (n, t) in [
            (rtype::A, RecordType::A),
            (rtype::NS, RecordType::NS),
            (rtype::CNAME, RecordType::CNAME),
            (rtype::SOA, RecordType::SOA),
            (rtype::AAAA, RecordType::AAAA),
            (rtype::OPT, RecordType::OPT),
            (rtype::DS, RecordType::DS),
            (rtype::IXFR, RecordType::IXFR),
            (rtype::AXFR, RecordType::AXFR),
            (rtype::ANY, RecordType::ANY),
        ] {
            assert_eq!(n, u16::from(t), "{t}");
        }
        assert_eq!(class::IN, u16::from(DNSClass::IN));
        assert_eq!(class::ANY, u16::from(DNSClass::ANY));
    }

    #[test]
    fn names_round_trip() {
        let w = name_to_wire("Cdn.Example.test.").unwrap();
        assert_eq!(w, b"\x03cdn\x07example\x04test\x00");
        assert_eq!(wire_to_string(&w), "cdn.example.test.");
        assert_eq!(label_starts(&w).collect::<Vec<_>>(), vec![0, 4, 12]);
        assert_eq!(name_to_wire(".").unwrap(), vec![0]);
    }
}
