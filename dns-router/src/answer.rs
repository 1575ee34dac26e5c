//! Step 4 of a query: write the response bytes. The header echoes id, opcode, RD and CD; the
//! question is copied from the query as received (so the letter case — 0x20 — is kept, and
//! records owned by the question name point back at it with `0xC00C`); sections are
//! appended from precomputed RDATA; the OPT record is added only when the query had one, with
//! our payload size, the extended RCODE, the DO bit copied, and the Client Subnet echo
//! (FAMILY, SOURCE PREFIX-LENGTH, ADDRESS as received, SCOPE from the decision). A response
//! larger than the requester's limit loses its additional records first, without TC (RFC 2181
//! §9); when the answer and authority do not fit, or a referral's in-domain glue does not
//! (RFC 9471), it is cut back to the question with TC=1 (RFC 6891 §7).

use crate::cookies::{OPT_COOKIE, SERVER_COOKIE_LEN};
use crate::wire::{rtype, Ecs, Edns, FormErrEcho, OPT_ECS};
use crate::zone::write_rr;

/// Owner name pointer to the question name (offset 12).
pub const OWNER_QNAME: [u8; 2] = [0xc0, 0x0c];

/// Response codes we send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rcode {
    /// NOERROR.
    NoError,
    /// FORMERR.
    FormErr,
    /// SERVFAIL.
    ServFail,
    /// NXDOMAIN.
    NxDomain,
    /// NOTIMP.
    NotImp,
    /// REFUSED.
    Refused,
    /// BADVERS (extended, 16).
    BadVers,
    /// BADCOOKIE (extended, 23; RFC 7873).
    BadCookie,
}

impl Rcode {
    /// The 12-bit code.
    pub fn code(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::BadVers => 16,
            Rcode::BadCookie => 23,
        }
    }

    /// Name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
            Rcode::BadVers => "BADVERS",
            Rcode::BadCookie => "BADCOOKIE",
        }
    }
}

/// The OPT record to add to a response.
#[derive(Debug, Clone, Copy)]
pub struct OptReply {
    /// Our UDP payload size.
    pub udp_size: u16,
    /// DO bit copied from the query.
    pub dnssec_ok: bool,
    /// Client Subnet echo and its scope.
    pub ecs: Option<(Ecs, u8)>,
    /// COOKIE option: the client cookie and our server cookie (RFC 7873).
    pub cookie: Option<[u8; 8 + SERVER_COOKIE_LEN]>,
}

impl OptReply {
    /// The reply OPT for a query's OPT (no ECS echo yet).
    pub fn for_query(edns: &Edns, udp_size: u16) -> Self {
        Self {
            udp_size,
            dnssec_ok: edns.dnssec_ok,
            ecs: None,
            cookie: None,
        }
    }
}

/// A response being written into a reused buffer.
#[derive(Debug)]
pub struct Response<'b> {
    buf: &'b mut Vec<u8>,
    question_end: usize,
    /// Where the additional section starts (the message length before its first record).
    additional_at: Option<usize>,
    /// The additional records must be sent whole or the message truncated (in-domain glue of
    /// a referral, RFC 9471); otherwise they are dropped first when the message is too big.
    additional_required: bool,
    counts: [u16; 3],
    rcode: Rcode,
}

/// Sections after the question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// Answer.
    Answer = 0,
    /// Authority.
    Authority = 1,
    /// Additional.
    Additional = 2,
}

impl<'b> Response<'b> {
    /// Start a response to a query: header (QR=1, opcode/RD/CD echoed, AA as given) and the
    /// question copied verbatim (`question` may be empty for errors before the question).
    pub fn start(
        buf: &'b mut Vec<u8>,
        id: u16,
        query_flags: u16,
        question: &[u8],
        aa: bool,
        rcode: Rcode,
    ) -> Self {
        buf.clear();
        let mut flags =
            0x8000 | (query_flags & 0x7800) | (query_flags & 0x0100) | (query_flags & 0x0010);
        if aa {
            flags |= 0x0400;
        }
        flags |= rcode.code() & 0x0f;
        buf.extend_from_slice(&id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        let qd: u16 = if question.is_empty() { 0 } else { 1 };
        buf.extend_from_slice(&qd.to_be_bytes());
        buf.extend_from_slice(&[0; 6]);
        buf.extend_from_slice(question);
        let question_end = buf.len();
        Response {
            buf,
            question_end,
            additional_at: None,
            additional_required: false,
            counts: [0; 3],
            rcode,
        }
    }

    /// The response code.
    pub fn rcode(&self) -> Rcode {
        self.rcode
    }

    /// Change the response code (an NXDOMAIN found at the end of a CNAME chain).
    pub fn set_rcode(&mut self, rcode: Rcode) {
        self.rcode = rcode;
        if let Some(b) = self.buf.get_mut(3) {
            *b = (*b & 0xf0) | (rcode.code() & 0x0f) as u8;
        }
    }

    /// Append one record (sections in order: answer, authority, additional).
    pub fn record(&mut self, section: Section, owner: &[u8], rtype: u16, ttl: u32, rdata: &[u8]) {
        self.mark(section);
        write_rr(self.buf, owner, rtype, ttl, rdata);
        self.counts[section as usize] = self.counts[section as usize].saturating_add(1);
    }

    /// Append pre-encoded records.
    pub fn raw(&mut self, section: Section, bytes: &[u8], count: u16) {
        if count == 0 {
            return;
        }
        self.mark(section);
        self.buf.extend_from_slice(bytes);
        self.counts[section as usize] = self.counts[section as usize].saturating_add(count);
    }

    fn mark(&mut self, section: Section) {
        if section == Section::Additional && self.additional_at.is_none() {
            self.additional_at = Some(self.buf.len());
        }
    }

    /// The additional records written must all be sent, or the message is truncated (TC=1):
    /// the in-domain glue of a referral (RFC 9471).
    pub fn require_additional(&mut self) {
        self.additional_required = true;
    }

    /// Number of records in a section so far.
    pub fn count(&self, section: Section) -> u16 {
        self.counts[section as usize]
    }

    /// Finish: add the OPT (when given), cut to `limit` bytes when needed, and write the
    /// counts. Returns the message length. Too big: the additional records go first, without
    /// TC (RFC 2181 §9), unless they are required; when the answer and authority do not fit
    /// either (or required additional records do not), the message is cut back to the
    /// question with TC=1.
    pub fn finish(self, opt: Option<OptReply>, limit: usize) -> usize {
        let Response {
            buf,
            question_end,
            additional_at,
            additional_required,
            mut counts,
            rcode,
        } = self;
        let opt_len = opt.map(|o| opt_size(&o)).unwrap_or(0);
        if buf.len() + opt_len > limit {
            match additional_at {
                Some(at) if !additional_required && at + opt_len <= limit => {
                    buf.truncate(at);
                    counts[2] = 0;
                }
                _ => {
                    buf.truncate(question_end);
                    counts = [0; 3];
                    if let Some(b) = buf.get_mut(2) {
                        *b |= 0x02; // TC
                    }
                }
            }
        }
        if let Some(o) = opt {
            write_opt(buf, &o, rcode);
            counts[2] += 1;
        }
        buf[6..8].copy_from_slice(&counts[0].to_be_bytes());
        buf[8..10].copy_from_slice(&counts[1].to_be_bytes());
        buf[10..12].copy_from_slice(&counts[2].to_be_bytes());
        buf.len()
    }
}

fn opt_size(o: &OptReply) -> usize {
    11 + o.ecs.map(|(e, _)| 8 + e.addr_bytes().1).unwrap_or(0)
        + o.cookie.map(|c| 4 + c.len()).unwrap_or(0)
}

fn write_opt(buf: &mut Vec<u8>, o: &OptReply, rcode: Rcode) {
    buf.push(0); // root
    buf.extend_from_slice(&rtype::OPT.to_be_bytes());
    buf.extend_from_slice(&o.udp_size.to_be_bytes());
    buf.push((rcode.code() >> 4) as u8); // extended RCODE
    buf.push(0); // version
    buf.extend_from_slice(&(if o.dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    let rdlen = opt_size(o) - 11;
    buf.extend_from_slice(&(rdlen as u16).to_be_bytes());
    if let Some((ecs, scope)) = o.ecs {
        let (addr, n) = ecs.addr_bytes();
        buf.extend_from_slice(&OPT_ECS.to_be_bytes());
        buf.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        buf.extend_from_slice(&ecs.family.to_be_bytes());
        buf.push(ecs.source_prefix);
        buf.push(scope);
        buf.extend_from_slice(&addr[..n]);
    }
    if let Some(c) = o.cookie {
        buf.extend_from_slice(&OPT_COOKIE.to_be_bytes());
        buf.extend_from_slice(&(c.len() as u16).to_be_bytes());
        buf.extend_from_slice(&c);
    }
}

/// A header-only error response (FORMERR/NOTIMP before or without a usable question).
pub fn header_only(buf: &mut Vec<u8>, packet: &[u8], rcode: Rcode) -> usize {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    Response::start(buf, id, flags, &[], false, rcode).finish(None, usize::MAX)
}

/// FORMERR for a query `wire::decode` refused (`packet` has a readable header): id, opcode,
/// RD and CD echoed, the question when it read, and a bare OPT (our payload size, DO copied,
/// no options) when the query had one (RFC 6891 §7).
pub fn formerr(buf: &mut Vec<u8>, packet: &[u8], echo: &FormErrEcho<'_>, udp_size: u16) -> usize {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]);
    let opt = echo.opt.map(|dnssec_ok| OptReply {
        udp_size,
        dnssec_ok,
        ecs: None,
        cookie: None,
    });
    let question = echo.question.unwrap_or(&[]);
    Response::start(buf, id, flags, question, false, Rcode::FormErr).finish(opt, usize::MAX)
}

/// NOTIMP for an opcode other than QUERY: id and opcode echoed, nothing else. RD and CD are
/// defined for QUERY only, so they are not copied (RFC 1035 §4.1.1, RFC 6840 §5.9), and there
/// is no question or OPT to echo because we do not read the body of an unknown opcode.
pub fn not_implemented(buf: &mut Vec<u8>, packet: &[u8]) -> usize {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags = u16::from_be_bytes([packet[2], packet[3]]) & 0x7800;
    Response::start(buf, id, flags, &[], false, Rcode::NotImp).finish(None, usize::MAX)
}

/// Size limit of a UDP response: the requester's EDNS size capped by ours, 512 without EDNS.
pub fn udp_limit(edns: Option<&Edns>, ours: u16) -> usize {
    match edns {
        Some(e) => e.udp_size.clamp(512, ours.max(512)) as usize,
        None => 512,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn notimp_echoes_id_and_opcode_only() {
        let mut buf = Vec::new();
        // Opcode 2 (STATUS) with RD, CD, AD and TC set; QDCOUNT 1 and a body.
        let q = [
            0x12, 0x34, 0x13, 0x30, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,
        ];
        let n = not_implemented(&mut buf, &q);
        assert_eq!(n, 12);
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(buf[2], 0x80 | 0x10, "QR and opcode 2; RD, TC and AA clear");
        assert_eq!(buf[3], 0x04, "CD, AD and RA clear, RCODE 4");
        assert_eq!(&buf[4..12], &[0; 8]);
    }

    #[test]
    fn header_echo_and_counts() {
        let mut buf = Vec::new();
        let q = b"\x03www\x00\x00\x01\x00\x01";
        let mut r = Response::start(&mut buf, 0xbeef, 0x0110, q, true, Rcode::NoError);
        r.record(Section::Answer, &OWNER_QNAME, 1, 30, &[192, 0, 2, 1]);
        let n = r.finish(None, 512);
        assert_eq!(&buf[..2], &[0xbe, 0xef]);
        assert_eq!(buf[2], 0x85, "QR, AA, RD");
        assert_eq!(buf[3], 0x10, "CD echoed, RA clear");
        assert_eq!(&buf[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        assert_eq!(n, 12 + q.len() + 16);
    }

    #[test]
    fn truncates_with_tc_and_keeps_opt() {
        let mut buf = Vec::new();
        let q = b"\x00\x00\x10\x00\x01";
        let mut r = Response::start(&mut buf, 1, 0, q, true, Rcode::NoError);
        for _ in 0..10 {
            r.record(Section::Answer, &OWNER_QNAME, 16, 30, &[200; 201]);
        }
        let ecs = Ecs {
            family: 1,
            source_prefix: 24,
            addr: "192.0.2.0".parse::<IpAddr>().unwrap(),
        };
        let opt = OptReply {
            udp_size: 1232,
            dnssec_ok: false,
            ecs: Some((ecs, 16)),
            cookie: None,
        };
        let n = r.finish(Some(opt), 1232);
        assert_eq!(buf[2] & 0x02, 0x02);
        assert_eq!(&buf[6..12], &[0, 0, 0, 0, 0, 1]);
        assert_eq!(n, 12 + q.len() + 11 + 8 + 3);
        assert_eq!(&buf[n - 4..], &[16, 192, 0, 2]);
    }

    #[test]
    fn additional_records_go_first_without_tc_unless_required() {
        let q = b"\x00\x00\x02\x00\x01";
        let write = |buf: &mut Vec<u8>, required: bool| {
            let mut r = Response::start(buf, 1, 0, q, true, Rcode::NoError);
            r.record(Section::Answer, &OWNER_QNAME, 2, 30, b"\x02ns\x00");
            for _ in 0..40 {
                r.record(Section::Additional, b"\x02ns\x00", 1, 30, &[192, 0, 2, 1]);
            }
            if required {
                r.require_additional();
            }
            r.finish(None, 512)
        };
        // Glue that does not fit is dropped; the answer stays, no TC.
        let mut buf = Vec::new();
        let n = write(&mut buf, false);
        assert_eq!(n, 12 + q.len() + 16);
        assert_eq!(buf[2] & 0x02, 0, "no TC");
        assert_eq!(&buf[6..12], &[0, 1, 0, 0, 0, 0]);
        // Required glue (a referral's in-domain glue): TC.
        let n = write(&mut buf, true);
        assert_eq!(n, 12 + q.len());
        assert_eq!(buf[2] & 0x02, 0x02, "TC");
        assert_eq!(&buf[6..12], &[0; 6]);
        // When it fits, all of it is sent.
        let mut r = Response::start(&mut buf, 1, 0, q, true, Rcode::NoError);
        r.record(Section::Authority, b"\x00", 2, 30, b"\x02ns\x00");
        r.record(Section::Additional, b"\x02ns\x00", 1, 30, &[192, 0, 2, 1]);
        r.require_additional();
        r.finish(None, 512);
        assert_eq!(&buf[6..12], &[0, 0, 0, 1, 0, 1]);
    }

    #[test]
    fn badvers_goes_to_extended_rcode() {
        let mut buf = Vec::new();
        let r = Response::start(
            &mut buf,
            1,
            0,
            b"\x00\x00\x01\x00\x01",
            false,
            Rcode::BadVers,
        );
        let opt = OptReply {
            udp_size: 1232,
            dnssec_ok: false,
            ecs: None,
            cookie: None,
        };
        let n = r.finish(Some(opt), 512);
        assert_eq!(buf[3] & 0x0f, 0);
        assert_eq!(buf[n - 6], 1, "extended rcode 1 => 16");
    }

    #[test]
    fn udp_limits() {
        let e = |s| Edns {
            udp_size: s,
            version: 0,
            dnssec_ok: false,
            ecs: None,
            cookie: None,
        };
        assert_eq!(udp_limit(None, 1232), 512);
        assert_eq!(udp_limit(Some(&e(4096)), 1232), 1232);
        assert_eq!(udp_limit(Some(&e(512)), 1232), 512);
        assert_eq!(udp_limit(Some(&e(1400)), 1232), 1232);
    }
}
