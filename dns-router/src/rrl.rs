//! Response-rate limiting (RRL, as BIND and Knot have it), for UDP answers: a forged source
//! address must not turn the router into an amplifier aimed at that address.
//!
//! Every response is classed after it is written ([`classify`], with the [`Kind`] of answer
//! `decide::resolve` reported), as Knot and BIND class them, so that varying the name or the
//! type cannot buy a fresh bucket: an error (NXDOMAIN, REFUSED, FORMERR, SERVFAIL, NOTIMP,
//! BADVERS, BADCOOKIE) counts against one bucket per client network; NODATA against one per
//! network and zone (any name, any type); a referral against one per network and delegation
//! point (any name below it, any type); a static wildcard answer against one per network,
//! wildcard and type; a service's answer against one per network, service and type (so random
//! names under a wildcard service share one); any other response against one per network
//! *and* question (lowercased name, type: "identical responses"). Client networks are the source address cut to
//! `dns.rrl.ipv4_prefix` / `ipv6_prefix` (/24, /56). A bucket refills at its rate per second
//! and holds `window` seconds of it. A response over its bucket is dropped, except every
//! `slip`-th, which is sent as an empty TC=1 answer so a real resolver retries over TCP (which
//! a forged source cannot). Queries with a valid server cookie are not limited at all (the
//! caller skips [`RateLimiter::check`]), nor are loopback sources unless
//! `dns.rrl.exempt_loopback = false` (they cannot be forged from outside the host).
//!
//! The buckets live in a [`RateLimiter`] per UDP thread: a fixed table (4-way sets, the
//! least recently used entry of a set replaced), sized once, so memory does not grow with the
//! number of sources and the hot path takes no lock and allocates nothing. Keys are hashed
//! with a per-table random seed (clients choose their addresses and names). A flood from very
//! many networks evicts entries early, which only ever restarts a bucket full: the table can
//! under-limit under such a flood, never limit a network that stays under its rate.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;

use cdn_shared::config::router::RrlSection;
use metrics::Counter;

use crate::answer::Rcode;
use crate::metrics::names;

/// What to do with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit: send it.
    Send,
    /// Over the limit: send nothing.
    Drop,
    /// Over the limit, the `slip`-th: send an empty answer with TC=1.
    Slip,
}

impl Verdict {
    /// Label of `cdn_dns_rrl_total{action}`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Send => "sent",
            Verdict::Drop => "dropped",
            Verdict::Slip => "slipped",
        }
    }
}

/// What kind of non-error answer a response is, as `decide::resolve` found it: the part of
/// its bucket key that does not come from the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    /// An answer for the question's own name (a bucket per name and type).
    #[default]
    Name,
    /// A service's answer (service index).
    Service(u32),
    /// NODATA, also at the end of a CNAME chain (zone id): one bucket per zone, whatever the
    /// name and type.
    NoData(u32),
    /// A referral (node id of the delegation point): one bucket per delegation point,
    /// whatever the name below it and the type.
    Referral(u32),
    /// A static answer synthesised from a wildcard (node id of the `*` owner): one bucket per
    /// wildcard and type, whatever the name it covers.
    Wildcard(u32),
}

/// Which bucket a response counts against (as Knot and BIND class them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class<'a> {
    /// A non-error response to this question (wire name in any letter case, and type).
    Response(&'a [u8], u16),
    /// A service's answer (service index, type): every name a wildcard service answers
    /// counts as one response, so random names under `*.img…` share one bucket.
    Service(u32, u16),
    /// NODATA from a zone (zone id): random names and types share one bucket.
    NoData(u32),
    /// A referral to a delegation point (node id): random names below it share one bucket.
    Referral(u32),
    /// A static wildcard answer (node id of the wildcard, type).
    Wildcard(u32, u16),
    /// An NXDOMAIN or error response.
    Error,
}

/// The class of `response` (a response this process wrote) with `rcode`; `kind` is what
/// `decide::resolve` reported about it.
pub fn classify(rcode: Rcode, kind: Kind, response: &[u8]) -> Class<'_> {
    match rcode {
        Rcode::NoError => match (kind, question(response)) {
            (_, None) => Class::Error,
            (Kind::Name, Some((name, qtype, _))) => Class::Response(name, qtype),
            (Kind::Service(s), Some((_, qtype, _))) => Class::Service(s, qtype),
            (Kind::NoData(z), Some(_)) => Class::NoData(z),
            (Kind::Referral(n), Some(_)) => Class::Referral(n),
            (Kind::Wildcard(n), Some((_, qtype, _))) => Class::Wildcard(n, qtype),
        },
        Rcode::NxDomain
        | Rcode::FormErr
        | Rcode::ServFail
        | Rcode::NotImp
        | Rcode::Refused
        | Rcode::BadVers
        | Rcode::BadCookie => Class::Error,
    }
}

/// The question of a message: (wire name, QTYPE, offset after the question), when QDCOUNT is 1
/// and the name is uncompressed and complete.
fn question(m: &[u8]) -> Option<(&[u8], u16, usize)> {
    if m.len() < 12 || m[4..6] != [0, 1] {
        return None;
    }
    let mut at = 12usize;
    loop {
        let l = *m.get(at)? as usize;
        if l & 0xc0 != 0 || at - 12 + 1 + l > crate::wire::MAX_NAME_LEN {
            return None;
        }
        at += 1 + l;
        if l == 0 {
            break;
        }
    }
    let t = m.get(at..at + 4)?;
    Some((&m[12..at], u16::from_be_bytes([t[0], t[1]]), at + 4))
}

/// Ways per set.
const WAYS: usize = 4;

/// One bucket (32 bytes).
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Key hash with the low bit forced to 1 (0 = empty slot).
    tag: u64,
    /// Unix ms of the last refill.
    at_ms: u64,
    /// Tokens left.
    tokens: f64,
    /// Limited responses so far (for slip).
    limited: u32,
}

/// The limits in force (from `dns.rrl`).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    responses_per_ms: f64,
    responses_burst: f64,
    errors_per_ms: f64,
    errors_burst: f64,
    slip: u32,
    v4_prefix: u8,
    v6_prefix: u8,
    exempt_loopback: bool,
}

impl Params {
    fn of(c: &RrlSection) -> Self {
        let window = c.window.as_secs_f64();
        Self {
            responses_per_ms: f64::from(c.responses_per_second) / 1000.0,
            responses_burst: (f64::from(c.responses_per_second) * window).max(1.0),
            errors_per_ms: f64::from(c.errors_per_second) / 1000.0,
            errors_burst: (f64::from(c.errors_per_second) * window).max(1.0),
            slip: c.slip,
            v4_prefix: c.ipv4_prefix.min(32),
            v6_prefix: c.ipv6_prefix.min(128),
            exempt_loopback: c.exempt_loopback,
        }
    }
}

/// One UDP thread's buckets (see the module docs).
#[derive(Debug)]
pub struct RateLimiter {
    enabled: bool,
    params: Params,
    table: Vec<Entry>,
    /// `table.len() / WAYS - 1` (the set count is a power of two).
    set_mask: usize,
    seed: foldhash::fast::RandomState,
    dropped: Counter,
    slipped: Counter,
}

impl RateLimiter {
    /// A limiter with `config`'s limits and a table of `config.table_size` entries (rounded
    /// up to a power of two, at least 64).
    pub fn new(config: &RrlSection) -> Self {
        let sets = (config.table_size.clamp(64, 1 << 24) / WAYS).next_power_of_two();
        Self {
            enabled: config.enabled,
            params: Params::of(config),
            table: vec![Entry::default(); sets * WAYS],
            set_mask: sets - 1,
            seed: foldhash::fast::RandomState::default(),
            dropped: metrics::counter!(names::DNS_RRL, "action" => Verdict::Drop.as_str()),
            slipped: metrics::counter!(names::DNS_RRL, "action" => Verdict::Slip.as_str()),
        }
    }

    /// Take new limits after a reload; the table is kept (rebuilt only when its size changed).
    pub fn configure(&mut self, config: &RrlSection) {
        let sets = (config.table_size.clamp(64, 1 << 24) / WAYS).next_power_of_two();
        if sets * WAYS != self.table.len() {
            *self = Self::new(config);
            return;
        }
        self.enabled = config.enabled;
        self.params = Params::of(config);
    }

    /// Whether limiting is on.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Count one response of `class` to `client` at `now_ms` and say whether to send it.
    pub fn check(&mut self, client: IpAddr, class: Class<'_>, now_ms: u64) -> Verdict {
        if !self.enabled {
            return Verdict::Send;
        }
        let p = self.params;
        if p.exempt_loopback && client.is_loopback() {
            return Verdict::Send;
        }
        let mut h = self.seed.build_hasher();
        match client {
            IpAddr::V4(a) => {
                let bits = u32::from(a) & prefix_mask_32(p.v4_prefix);
                h.write_u8(4);
                h.write_u32(bits);
            }
            IpAddr::V6(a) => {
                let bits = u128::from(a) & prefix_mask_128(p.v6_prefix);
                h.write_u8(6);
                h.write_u128(bits);
            }
        }
        let (rate, burst) = match class {
            Class::Response(name, qtype) => {
                // Letter case does not make a response another one (0x20 would split buckets).
                let mut lower = [0u8; crate::wire::MAX_NAME_LEN];
                let n = name.len().min(lower.len());
                for (d, s) in lower.iter_mut().zip(&name[..n]) {
                    *d = s.to_ascii_lowercase();
                }
                h.write_u8(1);
                h.write(&lower[..n]);
                h.write_u16(qtype);
                (p.responses_per_ms, p.responses_burst)
            }
            Class::Service(svc, qtype) => {
                h.write_u8(3);
                h.write_u32(svc);
                h.write_u16(qtype);
                (p.responses_per_ms, p.responses_burst)
            }
            Class::NoData(zone) => {
                h.write_u8(4);
                h.write_u32(zone);
                (p.responses_per_ms, p.responses_burst)
            }
            Class::Referral(node) => {
                h.write_u8(5);
                h.write_u32(node);
                (p.responses_per_ms, p.responses_burst)
            }
            Class::Wildcard(node, qtype) => {
                h.write_u8(6);
                h.write_u32(node);
                h.write_u16(qtype);
                (p.responses_per_ms, p.responses_burst)
            }
            Class::Error => {
                h.write_u8(2);
                (p.errors_per_ms, p.errors_burst)
            }
        };
        let hash = h.finish();
        let tag = hash | 1;
        let set = ((hash >> 32) as usize & self.set_mask) * WAYS;
        let ways = &mut self.table[set..set + WAYS];
        let e = match ways.iter().position(|e| e.tag == tag) {
            Some(i) => {
                let e = &mut ways[i];
                let elapsed = now_ms.saturating_sub(e.at_ms) as f64;
                e.tokens = (e.tokens + elapsed * rate).min(burst);
                e.at_ms = now_ms.max(e.at_ms);
                e
            }
            None => {
                // Replace the least recently used entry of the set (empty ones have at 0).
                let mut victim = 0;
                for i in 1..WAYS {
                    if ways[i].at_ms < ways[victim].at_ms {
                        victim = i;
                    }
                }
                ways[victim] = Entry {
                    tag,
                    at_ms: now_ms,
                    tokens: burst,
                    limited: 0,
                };
                &mut ways[victim]
            }
        };
        if e.tokens >= 1.0 {
            e.tokens -= 1.0;
            return Verdict::Send;
        }
        e.limited = e.limited.wrapping_add(1);
        if p.slip != 0 && e.limited.is_multiple_of(p.slip) {
            self.slipped.increment(1);
            Verdict::Slip
        } else {
            self.dropped.increment(1);
            Verdict::Drop
        }
    }
}

fn prefix_mask_32(len: u8) -> u32 {
    match len {
        0 => 0,
        l if l >= 32 => u32::MAX,
        l => u32::MAX << (32 - u32::from(l)),
    }
}

fn prefix_mask_128(len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => u128::MAX,
        l => u128::MAX << (128 - u32::from(l)),
    }
}

/// Turn the response in `out` into its slip form: header and question only, TC=1, no records
/// (and no OPT). `out` is a response this process wrote (QDCOUNT 0 or 1, question well formed);
/// anything else is cut to the header.
pub fn slip_in_place(out: &mut Vec<u8>) {
    if out.len() < 12 {
        return;
    }
    let end = match question(out) {
        Some((_, _, end)) => end,
        None => {
            out[4..6].copy_from_slice(&[0, 0]);
            12
        }
    };
    out.truncate(end);
    out[2] |= 0x02; // TC
    out[6..12].copy_from_slice(&[0; 6]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn config(rps: u32, eps: u32, slip: u32) -> RrlSection {
        RrlSection {
            responses_per_second: rps,
            errors_per_second: eps,
            window: Duration::from_secs(1),
            slip,
            table_size: 64,
            exempt_loopback: false,
            ..RrlSection::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const WWW: &[u8] = b"\x03www\x04test\x00";

    #[test]
    fn a_network_is_limited_per_identical_response_and_refills() {
        let mut r = RateLimiter::new(&config(5, 5, 0));
        let q = Class::Response(WWW, 1);
        for _ in 0..5 {
            assert_eq!(r.check(ip("192.0.2.1"), q, 1_000), Verdict::Send);
        }
        // The same /24, another address: the same bucket.
        assert_eq!(r.check(ip("192.0.2.77"), q, 1_000), Verdict::Drop);
        // Another question, another network: their own buckets.
        assert_eq!(
            r.check(ip("192.0.2.1"), Class::Response(WWW, 28), 1_000),
            Verdict::Send
        );
        assert_eq!(r.check(ip("192.0.3.1"), q, 1_000), Verdict::Send);
        // 200 ms later: one token back (5/s), and only one.
        assert_eq!(r.check(ip("192.0.2.1"), q, 1_200), Verdict::Send);
        assert_eq!(r.check(ip("192.0.2.1"), q, 1_200), Verdict::Drop);
        // A long pause refills no more than the burst.
        for _ in 0..5 {
            assert_eq!(r.check(ip("192.0.2.1"), q, 60_000), Verdict::Send);
        }
        assert_eq!(r.check(ip("192.0.2.1"), q, 60_000), Verdict::Drop);
    }

    #[test]
    fn errors_share_one_bucket_per_network() {
        let mut r = RateLimiter::new(&config(100, 2, 0));
        let mut resp = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        resp.extend_from_slice(b"\x03WwW\x04test\x00\x00\x1c\x00\x01");
        assert_eq!(classify(Rcode::NxDomain, Kind::Name, &resp), Class::Error);
        assert_eq!(classify(Rcode::Refused, Kind::Name, &resp), Class::Error);
        assert_eq!(
            classify(Rcode::NoError, Kind::Name, &resp),
            Class::Response(b"\x03WwW\x04test\x00", 28)
        );
        assert_eq!(
            classify(Rcode::NxDomain, Kind::NoData(0), &resp),
            Class::Error
        );
        // Letter case does not matter.
        let mut c = RateLimiter::new(&config(1, 1, 0));
        assert_eq!(
            c.check(
                ip("192.0.2.1"),
                classify(Rcode::NoError, Kind::Name, &resp),
                0
            ),
            Verdict::Send
        );
        assert_eq!(
            c.check(
                ip("192.0.2.1"),
                Class::Response(b"\x03www\x04TEST\x00", 28),
                0
            ),
            Verdict::Drop
        );
        assert_eq!(
            r.check(ip("2001:db8:0:1::1"), Class::Error, 0),
            Verdict::Send
        );
        assert_eq!(
            r.check(ip("2001:db8:0:2::9"), Class::Error, 0),
            Verdict::Send
        );
        // Same /56 (2001:db8:0:0/56 holds both): the third error is over.
        assert_eq!(
            r.check(ip("2001:db8:0:3::1"), Class::Error, 0),
            Verdict::Drop
        );
        // Another /56.
        assert_eq!(
            r.check(ip("2001:db8:0:100::1"), Class::Error, 0),
            Verdict::Send
        );
        // Non-error answers of the limited network still go out.
        assert_eq!(
            r.check(ip("2001:db8:0:1::1"), Class::Response(WWW, 1), 0),
            Verdict::Send
        );
    }

    #[test]
    fn names_answered_by_one_service_share_its_bucket() {
        let mut r = RateLimiter::new(&config(2, 100, 0));
        let answer = |name: &[u8]| {
            let mut m = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0];
            m.extend_from_slice(name);
            m.extend_from_slice(&[0, 1, 0, 1]);
            m
        };
        let (a, b, c) = (
            answer(b"\x02r1\x03img\x04test\x00"),
            answer(b"\x02r2\x03img\x04test\x00"),
            answer(b"\x02r3\x03img\x04test\x00"),
        );
        assert_eq!(
            classify(Rcode::NoError, Kind::Service(4), &a),
            Class::Service(4, 1)
        );
        let client = ip("192.0.2.1");
        assert_eq!(
            r.check(client, classify(Rcode::NoError, Kind::Service(4), &a), 0),
            Verdict::Send
        );
        assert_eq!(
            r.check(client, classify(Rcode::NoError, Kind::Service(4), &b), 0),
            Verdict::Send
        );
        assert_eq!(
            r.check(client, classify(Rcode::NoError, Kind::Service(4), &c), 0),
            Verdict::Drop
        );
        // Static names keep a bucket per name.
        assert_eq!(
            r.check(client, classify(Rcode::NoError, Kind::Name, &c), 0),
            Verdict::Send
        );
    }

    #[test]
    fn nodata_referrals_and_wildcards_share_a_bucket_whatever_the_name_and_type() {
        let msg = |name: &[u8], qtype: u16| {
            let mut m = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 0, 0, 1, 0, 0];
            m.extend_from_slice(name);
            m.extend_from_slice(&qtype.to_be_bytes());
            m.extend_from_slice(&[0, 1]);
            m
        };
        let client = ip("192.0.2.1");
        for kind in [Kind::NoData(1), Kind::Referral(7)] {
            let mut r = RateLimiter::new(&config(3, 100, 0));
            let verdicts: Vec<Verdict> = (0..6u16)
                .map(|i| {
                    let name = [&[1, b'a' + i as u8][..], WWW].concat();
                    let m = msg(&name, 1000 + i);
                    r.check(client, classify(Rcode::NoError, kind, &m), 0)
                })
                .collect();
            use Verdict::*;
            assert_eq!(verdicts, [Send, Send, Send, Drop, Drop, Drop], "{kind:?}");
            // Another zone / delegation point has its own bucket; so has another network.
            let other = match kind {
                Kind::NoData(_) => Kind::NoData(2),
                _ => Kind::Referral(8),
            };
            assert_eq!(
                r.check(client, classify(Rcode::NoError, other, &msg(WWW, 1)), 0),
                Send
            );
            assert_eq!(
                r.check(
                    ip("192.0.3.1"),
                    classify(Rcode::NoError, kind, &msg(WWW, 1)),
                    0
                ),
                Send
            );
        }
        // Wildcard answers: one bucket per wildcard and type, whatever the name.
        let mut r = RateLimiter::new(&config(2, 100, 0));
        let a = msg(b"\x01a\x04test\x00", 16);
        let w = Kind::Wildcard(3);
        assert_eq!(classify(Rcode::NoError, w, &a), Class::Wildcard(3, 16));
        for (name, qtype, want) in [
            (&b"\x01a\x04test\x00"[..], 16, Verdict::Send),
            (b"\x01b\x04test\x00", 16, Verdict::Send),
            (b"\x01c\x04test\x00", 16, Verdict::Drop),
            (b"\x01c\x04test\x00", 1, Verdict::Send),
        ] {
            let m = msg(name, qtype);
            assert_eq!(r.check(client, classify(Rcode::NoError, w, &m), 0), want);
        }
    }

    #[test]
    fn every_slip_th_limited_response_is_truncated() {
        let mut r = RateLimiter::new(&config(1, 1, 3));
        let q = Class::Response(WWW, 1);
        assert_eq!(r.check(ip("198.51.100.1"), q, 0), Verdict::Send);
        let got: Vec<Verdict> = (0..6).map(|_| r.check(ip("198.51.100.1"), q, 0)).collect();
        use Verdict::*;
        assert_eq!(got, [Drop, Drop, Slip, Drop, Drop, Slip]);
        // slip = 1: all truncated.
        let mut r = RateLimiter::new(&config(1, 1, 1));
        r.check(ip("198.51.100.1"), q, 0);
        assert_eq!(r.check(ip("198.51.100.1"), q, 0), Slip);
    }

    #[test]
    fn disabled_sends_everything_and_reconfigure_keeps_buckets() {
        let mut c = config(1, 1, 0);
        c.enabled = false;
        let mut r = RateLimiter::new(&c);
        for _ in 0..100 {
            assert_eq!(r.check(ip("192.0.2.1"), Class::Error, 0), Verdict::Send);
        }
        c.enabled = true;
        r.configure(&c);
        assert!(r.enabled());
        assert_eq!(r.check(ip("192.0.2.1"), Class::Error, 0), Verdict::Send);
        r.configure(&c);
        assert_eq!(r.check(ip("192.0.2.1"), Class::Error, 0), Verdict::Drop);
    }

    #[test]
    fn the_table_stays_its_size_under_many_sources() {
        let mut r = RateLimiter::new(&config(1, 1, 0));
        let len = r.table.len();
        assert_eq!(len, 64);
        for i in 0..100_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(i << 8));
            r.check(a, Class::Error, u64::from(i));
        }
        assert_eq!(r.table.len(), len);
        // A network that stays under its rate is never limited, whatever else is seen.
        let mut r = RateLimiter::new(&config(1, 1, 0));
        for t in 0..50u64 {
            for i in 0..200u32 {
                let a = IpAddr::V4(std::net::Ipv4Addr::from((i + 1) << 8));
                r.check(a, Class::Error, t * 1_000);
            }
            assert_eq!(
                r.check(ip("203.0.113.5"), Class::Error, t * 1_000),
                Verdict::Send,
                "second {t}"
            );
        }
    }

    #[test]
    fn loopback_is_exempt_unless_configured_otherwise() {
        let mut c = config(1, 1, 0);
        c.exempt_loopback = true;
        let mut r = RateLimiter::new(&c);
        for _ in 0..10 {
            assert_eq!(r.check(ip("127.0.0.2"), Class::Error, 0), Verdict::Send);
            assert_eq!(r.check(ip("::1"), Class::Error, 0), Verdict::Send);
        }
        r.check(ip("192.0.2.1"), Class::Error, 0);
        assert_eq!(r.check(ip("192.0.2.1"), Class::Error, 0), Verdict::Drop);
        c.exempt_loopback = false;
        r.configure(&c);
        r.check(ip("127.0.0.2"), Class::Error, 0);
        assert_eq!(r.check(ip("127.0.0.2"), Class::Error, 0), Verdict::Drop);
    }

    #[test]
    fn slip_form_keeps_header_and_question() {
        let mut out = vec![0xab, 0xcd, 0x84, 0x00, 0, 1, 0, 1, 0, 1, 0, 1];
        out.extend_from_slice(WWW);
        out.extend_from_slice(&[0, 1, 0, 1]);
        let q_end = out.len();
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        slip_in_place(&mut out);
        assert_eq!(out.len(), q_end);
        assert_eq!(out[2], 0x86, "TC set, AA kept");
        assert_eq!(&out[4..12], &[0, 1, 0, 0, 0, 0, 0, 0]);
        // Header only.
        let mut out = vec![0xab, 0xcd, 0x80, 0x04, 0, 0, 0, 0, 0, 0, 0, 0];
        slip_in_place(&mut out);
        assert_eq!(out, [0xab, 0xcd, 0x82, 0x04, 0, 0, 0, 0, 0, 0, 0, 0]);
        // A question running past the end: cut to the header.
        let mut out = vec![0xab, 0xcd, 0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 9, b'a'];
        slip_in_place(&mut out);
        assert_eq!(out.len(), 12);
        assert_eq!(&out[4..6], &[0, 0]);
    }
}
