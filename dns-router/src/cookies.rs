//! DNS Cookies (RFC 7873) with interoperable server cookies (RFC 9018).
//!
//! A server cookie is 16 bytes: version 1, three reserved zero bytes, a 32-bit timestamp (Unix
//! seconds, serial arithmetic) and an 8-byte SipHash-2-4 of the client cookie, version,
//! reserved, timestamp and client address, keyed by the server secret.
//!
//! The secret rotates every `dns.cookies.secret_rotation`: the secret of rotation period `n`
//! is derived from a random master key made at start-up (SipHash-128 of `n`), so every UDP
//! thread and TCP connection agrees on it without a lock, a shared table or a background task.
//! A server cookie is checked with the secret of the period its timestamp falls in, and only
//! when that period is the current one, the previous one, or (clock skew) the next one: a
//! secret two periods old is gone. A timestamp more than an hour old or five minutes ahead is
//! invalid (RFC 9018 §4.3).
//!
//! What a query gets (RFC 7873 §5.2; [`crate::handler::respond`] applies it):
//! * no COOKIE option: answered as always;
//! * a malformed option (length not 8 or 16..=40): FORMERR;
//! * a client cookie only: answered, with a fresh server cookie;
//! * a valid server cookie: answered, with a fresh server cookie, and exempt from
//!   response-rate limiting (the source address is proven);
//! * a wrong or expired server cookie: over UDP BADCOOKIE (extended RCODE 23) with a fresh
//!   server cookie and no records, so the client retries with it; over TCP (the address is
//!   proven by the handshake) answered as with a client cookie only;
//! * no question (QDCOUNT 0) with a client cookie (RFC 7873 §5.4, `dig +header-only +cookie`):
//!   NOERROR with no question and a fresh server cookie, or BADCOOKIE (over TCP too) when the
//!   server cookie sent is not valid; without a well-formed COOKIE option, FORMERR.
//!
//! With `dns.cookies.enabled = false` the option is ignored entirely (RFC 7873 §5.2: as a
//! server without cookie support).

use std::net::IpAddr;
use std::sync::OnceLock;

use siphasher::sip::SipHasher24;
use siphasher::sip128::{Hasher128, SipHasher24 as SipHasher128};
use std::hash::Hasher;
use subtle::ConstantTimeEq;

/// EDNS option code of COOKIE (RFC 7873).
pub const OPT_COOKIE: u16 = 10;
/// Length of the server cookies we issue.
pub const SERVER_COOKIE_LEN: usize = 16;
/// A server cookie is valid this long after its timestamp (RFC 9018 §4.3).
const MAX_AGE_S: i64 = 3600;
/// A server cookie timestamp may be this far ahead of our clock.
const MAX_AHEAD_S: i64 = 300;

/// The COOKIE option of a query, as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieOpt {
    /// A length RFC 7873 §4 does not allow (not 8, not 16..=40).
    Malformed,
    /// A client cookie and, when `server_len > 0`, a server cookie of that length.
    Cookie {
        /// Client cookie.
        client: [u8; 8],
        /// Server cookie bytes (the first `server_len`).
        server: [u8; 32],
        /// Length of the server cookie (0, or 8..=32).
        server_len: u8,
    },
}

impl CookieOpt {
    /// Parse the option body.
    pub fn parse(data: &[u8]) -> CookieOpt {
        let n = data.len();
        if n != 8 && !(16..=40).contains(&n) {
            return CookieOpt::Malformed;
        }
        let mut client = [0u8; 8];
        client.copy_from_slice(&data[..8]);
        let mut server = [0u8; 32];
        server[..n - 8].copy_from_slice(&data[8..]);
        CookieOpt::Cookie {
            client,
            server,
            server_len: (n - 8) as u8,
        }
    }
}

/// What a query's cookie was (for RRL, the response, and `cdn_dns_cookies_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CookieState {
    /// No COOKIE option (or cookies are turned off).
    None,
    /// A malformed option.
    Malformed,
    /// A client cookie without a server cookie.
    ClientOnly,
    /// A server cookie we issued, still valid.
    Valid,
    /// A server cookie that is not ours, or expired.
    Bad,
}

impl CookieState {
    /// Label of `cdn_dns_cookies_total{result}`.
    pub fn as_str(self) -> &'static str {
        match self {
            CookieState::None => "none",
            CookieState::Malformed => "malformed",
            CookieState::ClientOnly => "client_only",
            CookieState::Valid => "valid",
            CookieState::Bad => "bad",
        }
    }
}

/// The process's master key (random, made once).
fn master() -> &'static [u8; 16] {
    static MASTER: OnceLock<[u8; 16]> = OnceLock::new();
    MASTER.get_or_init(rand::random)
}

/// The server secret of rotation period `period` under `master`.
fn secret(master: &[u8; 16], period: u64) -> [u8; 16] {
    let mut h = SipHasher128::new_with_key(master);
    h.write(b"dns-cookie-secret");
    h.write(&period.to_be_bytes());
    h.finish128().as_bytes()
}

/// The hash part of a server cookie.
fn hash(secret: &[u8; 16], client: &[u8; 8], head: &[u8; 8], ip: IpAddr) -> [u8; 8] {
    let mut h = SipHasher24::new_with_key(secret);
    h.write(client);
    h.write(head);
    match ip {
        IpAddr::V4(a) => h.write(&a.octets()),
        IpAddr::V6(a) => h.write(&a.octets()),
    }
    h.finish().to_le_bytes()
}

/// The server cookies of this process, with secrets rotating every `rotation_s` seconds.
#[derive(Debug, Clone, Copy)]
pub struct ServerCookies {
    master: [u8; 16],
    rotation_s: u64,
}

impl ServerCookies {
    /// Cookies under the process's random master key.
    pub fn new(rotation_s: u64) -> Self {
        Self::with_master(*master(), rotation_s)
    }

    /// Cookies under a given master key (`dns.cookies.secret`: shared by the routers of a zone).
    pub fn with_master(master: [u8; 16], rotation_s: u64) -> Self {
        Self {
            master,
            rotation_s: rotation_s.max(1),
        }
    }

    /// A fresh server cookie for `client` at `ip`, at Unix second `now_s`.
    pub fn issue(&self, client: &[u8; 8], ip: IpAddr, now_s: u64) -> [u8; SERVER_COOKIE_LEN] {
        let ts = now_s as u32; // serial arithmetic (RFC 1982): wraps in 2106
        let mut head = [1u8, 0, 0, 0, 0, 0, 0, 0];
        head[4..].copy_from_slice(&ts.to_be_bytes());
        let key = secret(&self.master, now_s / self.rotation_s);
        let mut out = [0u8; SERVER_COOKIE_LEN];
        out[..8].copy_from_slice(&head);
        out[8..].copy_from_slice(&hash(&key, client, &head, ip));
        out
    }

    /// Whether `server` is a cookie this process issued for `client` at `ip`, still valid at
    /// `now_s`.
    pub fn valid(&self, client: &[u8; 8], server: &[u8], ip: IpAddr, now_s: u64) -> bool {
        if server.len() != SERVER_COOKIE_LEN || server[..4] != [1, 0, 0, 0] {
            return false;
        }
        let ts = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // Age by serial arithmetic: negative = ahead of our clock.
        let age = i64::from((now_s as u32).wrapping_sub(ts) as i32);
        if !(-MAX_AHEAD_S..=MAX_AGE_S).contains(&age) {
            return false;
        }
        let issued = now_s.saturating_add_signed(-age);
        let (p_issued, p_now) = (issued / self.rotation_s, now_s / self.rotation_s);
        if p_issued + 1 < p_now || p_issued > p_now + 1 {
            return false; // that secret is retired
        }
        let mut head = [0u8; 8];
        head.copy_from_slice(&server[..8]);
        let want = hash(&secret(&self.master, p_issued), client, &head, ip);
        bool::from(want.ct_eq(&server[8..16]))
    }

    /// Judge a query's cookie option at `ip`, `now_s`.
    pub fn judge(&self, opt: Option<CookieOpt>, ip: IpAddr, now_s: u64) -> CookieState {
        match opt {
            None => CookieState::None,
            Some(CookieOpt::Malformed) => CookieState::Malformed,
            Some(CookieOpt::Cookie { server_len: 0, .. }) => CookieState::ClientOnly,
            Some(CookieOpt::Cookie {
                client,
                server,
                server_len,
            }) => {
                let server = &server[..usize::from(server_len).min(32)];
                if self.valid(&client, server, ip, now_s) {
                    CookieState::Valid
                } else {
                    CookieState::Bad
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static M1: [u8; 16] = [7; 16];
    static M2: [u8; 16] = [8; 16];
    const C: [u8; 8] = *b"client!!";
    const NOW: u64 = 1_800_000_000;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parse_lengths() {
        assert_eq!(CookieOpt::parse(&[1; 7]), CookieOpt::Malformed);
        assert_eq!(CookieOpt::parse(&[1; 9]), CookieOpt::Malformed);
        assert_eq!(CookieOpt::parse(&[1; 15]), CookieOpt::Malformed);
        assert_eq!(CookieOpt::parse(&[1; 41]), CookieOpt::Malformed);
        assert_eq!(CookieOpt::parse(&[]), CookieOpt::Malformed);
        let CookieOpt::Cookie { server_len, .. } = CookieOpt::parse(&[1; 8]) else {
            panic!()
        };
        assert_eq!(server_len, 0);
        let CookieOpt::Cookie {
            client,
            server,
            server_len,
        } = CookieOpt::parse(&[[2; 8], [3; 8], [4; 8], [5; 8], [6; 8]].concat())
        else {
            panic!()
        };
        assert_eq!((client, server_len), ([2; 8], 32));
        assert_eq!(&server[..8], &[3; 8]);
        assert_eq!(&server[24..], &[6; 8]);
    }

    #[test]
    fn issued_cookies_are_valid_for_their_client_and_address_only() {
        let s = ServerCookies::with_master(M1, 3600);
        let a = ip("192.0.2.1");
        let c = s.issue(&C, a, NOW);
        assert_eq!(&c[..4], &[1, 0, 0, 0]);
        assert_eq!(&c[4..8], &(NOW as u32).to_be_bytes());
        assert!(s.valid(&C, &c, a, NOW));
        assert!(!s.valid(b"client??", &c, a, NOW), "another client cookie");
        assert!(!s.valid(&C, &c, ip("192.0.2.2"), NOW), "another address");
        assert!(
            !s.valid(&C, &c, ip("::ffff:192.0.2.1"), NOW),
            "another family"
        );
        // Another process (another master key) does not accept it.
        assert!(!ServerCookies::with_master(M2, 3600).valid(&C, &c, a, NOW));
        // Any changed byte, or a wrong length, is refused.
        for i in 0..16 {
            let mut bad = c;
            bad[i] ^= 0x40;
            assert!(!s.valid(&C, &bad, a, NOW), "byte {i}");
        }
        assert!(!s.valid(&C, &c[..8], a, NOW));
        let mut long = c.to_vec();
        long.push(0);
        assert!(!s.valid(&C, &long, a, NOW));
    }

    #[test]
    fn age_and_rotation() {
        let s = ServerCookies::with_master(M1, 600);
        let a = ip("2001:db8::1");
        let c = s.issue(&C, a, NOW);
        // Valid up to an hour if its secret is current or previous: with 10-minute periods
        // only until the period after the one it was issued in ends.
        assert!(s.valid(&C, &c, a, NOW + 500));
        let end_of_next = (NOW / 600 + 2) * 600 - 1;
        assert!(s.valid(&C, &c, a, end_of_next));
        assert!(!s.valid(&C, &c, a, end_of_next + 1), "secret retired");
        // An hourly rotation: the age limit decides.
        let s = ServerCookies::with_master(M1, 3600);
        let c = s.issue(&C, a, NOW);
        assert!(s.valid(&C, &c, a, NOW + 3600));
        assert!(!s.valid(&C, &c, a, NOW + 3601), "older than an hour");
        // Our clock went back: up to 5 minutes ahead is fine.
        assert!(s.valid(&C, &c, a, NOW - 300));
        assert!(!s.valid(&C, &c, a, NOW - 301));
    }

    #[test]
    fn judge_states() {
        let s = ServerCookies::with_master(M1, 3600);
        let a = ip("192.0.2.1");
        let good = s.issue(&C, a, NOW);
        let opt = |server: &[u8]| {
            let mut d = C.to_vec();
            d.extend_from_slice(server);
            Some(CookieOpt::parse(&d))
        };
        assert_eq!(s.judge(None, a, NOW), CookieState::None);
        assert_eq!(s.judge(opt(&[]), a, NOW), CookieState::ClientOnly);
        assert_eq!(s.judge(opt(&good), a, NOW), CookieState::Valid);
        assert_eq!(s.judge(opt(&[9; 16]), a, NOW), CookieState::Bad);
        assert_eq!(s.judge(opt(&[9; 8]), a, NOW), CookieState::Bad);
        assert_eq!(s.judge(opt(&[9; 3]), a, NOW), CookieState::Malformed);
    }
}
