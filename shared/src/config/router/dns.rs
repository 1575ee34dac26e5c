//! `[dns]`: the DNS listeners, with `[dns.rrl]` (response-rate limiting) and `[dns.cookies]`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::common::*;
use crate::config::ConfigError;

/// `[dns]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Addresses to serve DNS on; each is bound for both UDP and TCP. Default `["127.0.0.1:53"]`.
    pub listen: Vec<SocketAddr>,
    /// UDP sockets (SO_REUSEPORT) and threads per listen address; 0 = one per CPU. Default 0.
    pub udp_threads: usize,
    /// Close an idle TCP connection after this long (RFC 7766). Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub tcp_idle_timeout: Duration,
    /// Maximum concurrent TCP connections; more are refused. Default 1024.
    pub tcp_max_connections: usize,
    /// Maximum concurrent TCP connections from one client address; more from that address
    /// are closed at once (one client cannot take the whole `tcp_max_connections`).
    /// Default 16.
    pub tcp_max_connections_per_client: usize,
    /// A TCP connection is closed after this long even when it is busy (a client cannot hold
    /// a connection slot forever by trickling queries). Default `2m`.
    #[serde(with = "crate::config::common::duration")]
    pub tcp_max_connection_lifetime: Duration,
    /// Our advertised EDNS UDP payload size. Default 1232.
    pub udp_payload_size: u16,
    /// Write one JSON line per answered query with its decision here; off when unset.
    pub query_log: Option<PathBuf>,
    /// `[dns.rrl]`: response-rate limiting of UDP answers.
    pub rrl: RrlSection,
    /// `[dns.cookies]`: DNS Cookies (RFC 7873, server cookies as RFC 9018).
    pub cookies: CookiesSection,
}

/// `[dns.rrl]`: response-rate limiting (as BIND and Knot), UDP only. Each client network
/// (`ipv4_prefix` / `ipv6_prefix`) has a token bucket per identical response (name and type;
/// a service's answers per service and type) and one for all its NXDOMAIN and error answers; a response over its bucket
/// is dropped, except every `slip`-th, which is answered empty with TC=1 so a real resolver
/// retries over TCP. Queries carrying a valid server cookie are never limited. The buckets
/// live in a fixed-size table per UDP thread (`table_size` entries): memory does not grow
/// with the number of sources, and under a table-filling flood the oldest entries are reused.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RrlSection {
    /// Limit responses at all. Default true.
    pub enabled: bool,
    /// Responses per second to one client network, per class of response (as Knot and BIND
    /// class them): identical answers (same name and type), NODATA of one zone (any name and
    /// type), referrals to one delegation point (any name below it), answers of one wildcard
    /// or one service (per type). Default 100.
    pub responses_per_second: u32,
    /// NXDOMAIN, REFUSED, FORMERR, SERVFAIL and other error responses per second to one
    /// client network. Default 50.
    pub errors_per_second: u32,
    /// Burst: a bucket holds this many seconds of its rate. Default `5s`.
    #[serde(with = "crate::config::common::duration")]
    pub window: Duration,
    /// Every `slip`-th limited response is answered with TC=1 instead of dropped; 0 drops
    /// them all, 1 truncates them all. Default 2.
    pub slip: u32,
    /// IPv4 client network prefix length. Default 24.
    pub ipv4_prefix: u8,
    /// IPv6 client network prefix length. Default 56.
    pub ipv6_prefix: u8,
    /// Bucket entries per UDP thread (rounded up to a power of two; 32 bytes each).
    /// Default 65536.
    pub table_size: usize,
    /// Never limit loopback sources (127.0.0.0/8, ::1): they cannot be forged from outside
    /// the host, and a local resolver or monitoring may ask a lot. Default true.
    pub exempt_loopback: bool,
}

impl Default for RrlSection {
    fn default() -> Self {
        Self {
            enabled: true,
            responses_per_second: 100,
            errors_per_second: 50,
            window: Duration::from_secs(5),
            slip: 2,
            ipv4_prefix: 24,
            ipv6_prefix: 56,
            table_size: 65536,
            exempt_loopback: true,
        }
    }
}

/// `[dns.cookies]`: DNS Cookies (RFC 7873). A query with a client cookie gets a server
/// cookie (RFC 9018: version 1, timestamp, SipHash-2-4 over the client cookie, the server
/// cookie's first bytes and the client address, with a secret derived from a master key —
/// `secret`, or one generated at start — and replaced every `secret_rotation`; the previous
/// secret is still accepted). A query with a valid server cookie is exempt from response-rate
/// limiting.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CookiesSection {
    /// Answer COOKIE options. When false the option is ignored (as RFC 7873 §5.2 allows a
    /// server without cookie support). Default true.
    pub enabled: bool,
    /// How often the server secret is replaced (the previous one stays valid for one more
    /// period). Default `1h`.
    #[serde(with = "crate::config::common::duration")]
    pub secret_rotation: Duration,
    /// The master key, 32 hex digits (16 bytes, e.g. `openssl rand -hex 16`). Set the same one
    /// (and the same `secret_rotation`) on every router serving a zone, so a resolver's cookie
    /// stays valid when it reaches another router or this one restarts (RFC 9018 §4). Unset:
    /// a random key per process.
    pub secret: Option<String>,
}

impl Default for CookiesSection {
    fn default() -> Self {
        Self {
            enabled: true,
            secret_rotation: Duration::from_secs(3600),
            secret: None,
        }
    }
}

impl CookiesSection {
    /// `secret` as its 16 bytes; `None` when unset or not 32 hex digits (refused by validation).
    pub fn master_key(&self) -> Option<[u8; 16]> {
        let s = self.secret.as_deref()?.trim();
        if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(out)
    }
}

impl Default for DnsSection {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 53))],
            udp_threads: 0,
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 1024,
            tcp_max_connections_per_client: 16,
            tcp_max_connection_lifetime: Duration::from_secs(120),
            udp_payload_size: 1232,
            query_log: None,
            rrl: RrlSection::default(),
            cookies: CookiesSection::default(),
        }
    }
}

impl DnsSection {
    /// The `[dns]` rules of [`RouterConfig`](super::RouterConfig)'s `validate`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        require_nonempty("dns.listen", &self.listen)?;
        if self.udp_payload_size < 512 {
            return Err(ConfigError::new(
                "dns.udp_payload_size",
                "must be at least 512",
            ));
        }
        require_positive("dns.tcp_idle_timeout", self.tcp_idle_timeout)?;
        if self.tcp_max_connections == 0 {
            return Err(ConfigError::new(
                "dns.tcp_max_connections",
                "must be at least 1",
            ));
        }
        if self.tcp_max_connections_per_client == 0 {
            return Err(ConfigError::new(
                "dns.tcp_max_connections_per_client",
                "must be at least 1",
            ));
        }
        require_positive(
            "dns.tcp_max_connection_lifetime",
            self.tcp_max_connection_lifetime,
        )?;
        let rrl = &self.rrl;
        if rrl.responses_per_second == 0 {
            return Err(ConfigError::new(
                "dns.rrl.responses_per_second",
                "must be at least 1 (set dns.rrl.enabled = false to turn limiting off)",
            ));
        }
        if rrl.errors_per_second == 0 {
            return Err(ConfigError::new(
                "dns.rrl.errors_per_second",
                "must be at least 1 (set dns.rrl.enabled = false to turn limiting off)",
            ));
        }
        if rrl.window < Duration::from_secs(1) || rrl.window > Duration::from_secs(3600) {
            return Err(ConfigError::new(
                "dns.rrl.window",
                "must be between 1s and 1h",
            ));
        }
        if rrl.ipv4_prefix == 0 || rrl.ipv4_prefix > 32 {
            return Err(ConfigError::new("dns.rrl.ipv4_prefix", "must be 1..=32"));
        }
        if rrl.ipv6_prefix == 0 || rrl.ipv6_prefix > 128 {
            return Err(ConfigError::new("dns.rrl.ipv6_prefix", "must be 1..=128"));
        }
        if !(64..=(1 << 24)).contains(&rrl.table_size) {
            return Err(ConfigError::new(
                "dns.rrl.table_size",
                "must be between 64 and 16777216",
            ));
        }
        if self.cookies.secret_rotation < Duration::from_secs(60) {
            return Err(ConfigError::new(
                "dns.cookies.secret_rotation",
                "must be at least 1m",
            ));
        }
        if self.cookies.secret.is_some() && self.cookies.master_key().is_none() {
            return Err(ConfigError::new(
                "dns.cookies.secret",
                "must be 32 hex digits (16 bytes), e.g. from `openssl rand -hex 16`",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RouterConfig, MIN};
    use super::*;

    #[test]
    fn the_cookie_secret_is_32_hex_digits() {
        let c: RouterConfig = crate::config::load_str(&format!(
            "[dns.cookies]\nsecret = \"000102030405060708090A0B0C0D0E0F\"\n{MIN}"
        ))
        .unwrap();
        assert_eq!(
            c.dns.cookies.master_key(),
            Some([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15])
        );
        for bad in [
            "",
            "00",
            "zz0102030405060708090a0b0c0d0e0f",
            "000102030405060708090a0b0c0d0e0f00",
        ] {
            let e = crate::config::load_str::<RouterConfig>(&format!(
                "[dns.cookies]\nsecret = \"{bad}\"\n{MIN}"
            ))
            .unwrap_err();
            assert_eq!(e.key, "dns.cookies.secret", "{bad}");
        }
    }

    #[test]
    fn abuse_keys_default_and_name_the_key_when_bad() {
        let c: RouterConfig = crate::config::load_str(MIN).unwrap();
        assert_eq!(c.dns.tcp_max_connections_per_client, 16);
        assert_eq!(c.dns.tcp_max_connection_lifetime, Duration::from_secs(120));
        assert_eq!(c.dns.rrl, RrlSection::default());
        assert!(c.dns.rrl.enabled && c.dns.rrl.exempt_loopback);
        assert_eq!(
            (
                c.dns.rrl.responses_per_second,
                c.dns.rrl.errors_per_second,
                c.dns.rrl.slip
            ),
            (100, 50, 2)
        );
        assert!(c.dns.cookies.enabled);
        assert_eq!(c.dns.cookies.secret_rotation, Duration::from_secs(3600));
        assert_eq!(c.health.report_max_clock_skew, Duration::from_secs(10));
        let c: RouterConfig = crate::config::load_str(&format!(
            "[dns.rrl]\nslip = 0\nipv6_prefix = 48\n[dns.cookies]\nsecret_rotation = \"10m\"\n{MIN}"
        ))
        .unwrap();
        assert_eq!((c.dns.rrl.slip, c.dns.rrl.ipv6_prefix), (0, 48));
        assert_eq!(c.dns.cookies.secret_rotation, Duration::from_secs(600));
        for (bad, key) in [
            (
                "[dns]\ntcp_max_connections_per_client = 0",
                "dns.tcp_max_connections_per_client",
            ),
            (
                "[dns]\ntcp_max_connection_lifetime = \"0s\"",
                "dns.tcp_max_connection_lifetime",
            ),
            (
                "[dns.rrl]\nresponses_per_second = 0",
                "dns.rrl.responses_per_second",
            ),
            (
                "[dns.rrl]\nerrors_per_second = 0",
                "dns.rrl.errors_per_second",
            ),
            ("[dns.rrl]\nwindow = \"0s\"", "dns.rrl.window"),
            ("[dns.rrl]\nipv4_prefix = 33", "dns.rrl.ipv4_prefix"),
            ("[dns.rrl]\nipv6_prefix = 0", "dns.rrl.ipv6_prefix"),
            ("[dns.rrl]\ntable_size = 10", "dns.rrl.table_size"),
            (
                "[dns.cookies]\nsecret_rotation = \"5s\"",
                "dns.cookies.secret_rotation",
            ),
            (
                "[health]\nreport_max_clock_skew = \"0s\"",
                "health.report_max_clock_skew",
            ),
        ] {
            let e = crate::config::load_str::<RouterConfig>(&format!("{bad}\n{MIN}")).unwrap_err();
            assert_eq!(e.key, key, "{bad}");
        }
    }
}
