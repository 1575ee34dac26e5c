//! The dns-router's configuration (`dns-router --config router.toml`).
//!
//! Every key, its default, and what it does is documented on the field; the README's router
//! section is generated from the same words.

use std::collections::{BTreeMap, HashSet};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::common::*;
use super::{ConfigError, Validate};

/// The whole router config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// `[dns]`: the DNS listeners.
    #[serde(default)]
    pub dns: DnsSection,
    /// `[admin]`: the admin HTTP API.
    #[serde(default)]
    pub admin: AdminSection,
    /// `[geo]`: how clients are located.
    #[serde(default)]
    pub geo: GeoSection,
    /// `[health]`: probes and reports.
    #[serde(default)]
    pub health: HealthSection,
    /// `[lifecycle]`: shutdown grace.
    #[serde(default)]
    pub lifecycle: LifecycleSection,
    /// `[[regions]]`: named places edges live in.
    #[serde(default)]
    pub regions: Vec<RegionConfig>,
    /// `[[edges]]`: the fleet.
    #[serde(default)]
    pub edges: Vec<EdgeEntry>,
    /// `[[zones]]`: the zones we are authoritative for (required, at least one).
    pub zones: Vec<ZoneConfig>,
    /// `[[services]]`: CDN hostnames routed over edges.
    #[serde(default)]
    pub services: Vec<ServiceConfig>,
    /// `[bus]`: the fleet bus (NATS JetStream) for purges, drains and reports. Optional:
    /// without it reports come over HTTP, purges fan out over HTTP, drains stay in memory.
    #[serde(default)]
    pub bus: Option<super::bus::BusSection>,
}

/// `[dns]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Addresses to serve DNS on; each is bound for both UDP and TCP. Default `["127.0.0.1:53"]`.
    pub listen: Vec<SocketAddr>,
    /// UDP sockets (SO_REUSEPORT) and threads per listen address; 0 = one per CPU. Default 0.
    pub udp_threads: usize,
    /// Close an idle TCP connection after this long (RFC 7766). Default `10s`.
    #[serde(with = "humantime_serde")]
    pub tcp_idle_timeout: Duration,
    /// Maximum concurrent TCP connections; more are refused. Default 1024.
    pub tcp_max_connections: usize,
    /// Maximum concurrent TCP connections from one client address; more from that address
    /// are closed at once (one client cannot take the whole `tcp_max_connections`).
    /// Default 16.
    pub tcp_max_connections_per_client: usize,
    /// A TCP connection is closed after this long even when it is busy (a client cannot hold
    /// a connection slot forever by trickling queries). Default `2m`.
    #[serde(with = "humantime_serde")]
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
    /// Identical responses per second to one client network. Default 100.
    pub responses_per_second: u32,
    /// NXDOMAIN, REFUSED, FORMERR, SERVFAIL and other error responses per second to one
    /// client network. Default 50.
    pub errors_per_second: u32,
    /// Burst: a bucket holds this many seconds of its rate. Default `5s`.
    #[serde(with = "humantime_serde")]
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
/// cookie's first bytes and the client address, with a secret generated at start and
/// replaced every `secret_rotation`; the previous secret is still accepted). A query with a
/// valid server cookie is exempt from response-rate limiting.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CookiesSection {
    /// Answer COOKIE options. When false the option is ignored (as RFC 7873 §5.2 allows a
    /// server without cookie support). Default true.
    pub enabled: bool,
    /// How often the server secret is replaced (the previous one stays valid for one more
    /// period). Default `1h`.
    #[serde(with = "humantime_serde")]
    pub secret_rotation: Duration,
}

impl Default for CookiesSection {
    fn default() -> Self {
        Self {
            enabled: true,
            secret_rotation: Duration::from_secs(3600),
        }
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

/// `[admin]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSection {
    /// Admin HTTP API address. Default `127.0.0.1:8053`.
    pub listen: SocketAddr,
    /// Deprecated single token: still accepted as an `operate` token that may also post
    /// reports as any edge (a warning is logged at start and reload). Use `[[admin.tokens]]`.
    /// Also the default of `purge_token`. Unset by default.
    pub token: Option<String>,
    /// Role tokens: each `{ name, role, token }`, `role` one of `read` (edges, services,
    /// explain, metrics), `operate` (read + drain, undrain, reload, purge) or `report` (posts
    /// reports as its `edge` only). Empty by default.
    pub tokens: Vec<AdminToken>,
    /// Who may read without a token: `loopback` (clients on 127.0.0.0/8 or ::1), `open`
    /// (everyone) or `token` (nobody; a `read` or `operate` token is needed). `/healthz` and the
    /// status page's files are always open. Default `loopback`.
    pub read_access: ReadAccess,
    /// The bearer token the router sends to the edges' purge API (`admin_url`) when it fans a
    /// purge out. Default: `token`.
    pub purge_token: Option<String>,
    /// PEM certificate chain: with `tls_key`, the admin listener speaks HTTPS only. Unset by
    /// default (plain HTTP). Relative to the config file's directory.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of `tls_cert`. Unset by default.
    pub tls_key: Option<PathBuf>,
    /// Largest accepted request body. Default 1 MiB.
    pub max_body_size: bytesize::ByteSize,
}

impl Default for AdminSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8053)),
            token: None,
            tokens: Vec::new(),
            read_access: ReadAccess::Loopback,
            purge_token: None,
            tls_cert: None,
            tls_key: None,
            max_body_size: bytesize::ByteSize::mib(1),
        }
    }
}

/// `[[admin.tokens]]`: one named credential with one role.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AdminToken {
    /// Name shown in the audit log (never the secret). Required, unique.
    pub name: String,
    /// `read`, `operate` or `report`.
    pub role: AdminRole,
    /// The secret, sent as `Authorization: Bearer <token>`. Required, unique.
    pub token: String,
    /// For `role = "report"`: the one `[[edges]]` id this credential may report as.
    #[serde(default)]
    pub edge: Option<String>,
}

/// What an admin token may do.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AdminRole {
    /// Reads (edges, services, explain, metrics).
    Read,
    /// Reads and operator writes (drain, undrain, reload, purge).
    Operate,
    /// `POST /api/v1/reports` as one edge.
    Report,
}

impl AdminRole {
    /// The role's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Read => "read",
            AdminRole::Operate => "operate",
            AdminRole::Report => "report",
        }
    }
}

/// `admin.read_access`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ReadAccess {
    /// Loopback clients read without a token.
    #[default]
    Loopback,
    /// Everyone reads without a token.
    Open,
    /// Reads need a `read` or `operate` token.
    Token,
}

/// `[geo]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GeoSection {
    /// A MaxMind DB (City or Country type: GeoLite2, GeoIP2, DB-IP Lite). Optional.
    pub database: Option<PathBuf>,
    /// An operator network map file (`CIDR region` or `CIDR lat,lon` per line); checked
    /// before the database. Optional.
    pub network_map: Option<PathBuf>,
    /// Inline network map entries, same meaning as the file (file entries win on equal prefix).
    pub networks: Vec<NetworkEntry>,
    /// Region used when a client cannot be located. Default: the first `[[regions]]` entry.
    pub default_region: Option<String>,
    /// How often the database and network map files are checked for changes. Default `30s`.
    #[serde(with = "humantime_serde")]
    pub reload_check_interval: Duration,
}

impl Default for GeoSection {
    fn default() -> Self {
        Self {
            database: None,
            network_map: None,
            networks: Vec::new(),
            default_region: None,
            reload_check_interval: Duration::from_secs(30),
        }
    }
}

/// One network map entry: a prefix placed in a region or at coordinates.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NetworkEntry {
    /// The prefix, e.g. `8.8.8.0/24`.
    pub cidr: IpNet,
    /// A region name from `[[regions]]` (uses its coordinates).
    #[serde(default)]
    pub region: Option<String>,
    /// Latitude, when not given by `region`.
    #[serde(default)]
    pub lat: Option<f64>,
    /// Longitude, when not given by `region`.
    #[serde(default)]
    pub lon: Option<f64>,
}

/// `[health]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Active probe interval per edge. Default `1s`.
    #[serde(with = "humantime_serde")]
    pub probe_interval: Duration,
    /// Probe timeout. Default `500ms`.
    #[serde(with = "humantime_serde")]
    pub probe_timeout: Duration,
    /// Random extra delay added to each probe, up to this. Default `100ms`.
    #[serde(with = "humantime_serde")]
    pub probe_jitter: Duration,
    /// Consecutive successes to go Up. Default 2.
    pub rise: u32,
    /// Consecutive failures to go Down. Default 3.
    pub fall: u32,
    /// Reports whose `sent_at` is older than this are ignored, and an edge whose last report
    /// is older than this no longer counts its load. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub report_max_age: Duration,
    /// A report whose `sent_at` is later than the router's clock by more than this is refused
    /// (`cdn_reports_ingested_total{result="future"}`, HTTP 400), so a bogus timestamp can
    /// never make later genuine reports look out of order. Default `10s`.
    #[serde(with = "humantime_serde")]
    pub report_max_clock_skew: Duration,
    /// An overloaded edge returns once its utilisation falls below this fraction of capacity
    /// (hysteresis). Default 0.9.
    pub overload_recover_ratio: f64,
    /// `https://` probe URLs: a PEM file of extra CA certificates trusted in addition to the
    /// built-in webpki (Mozilla) roots, e.g. a private CA that signs the edges' certificates.
    /// Relative to the config file's directory. Checked at start, `--check-config` and reload
    /// (unreadable or no certificate → config error); a changed file is re-read by the probes
    /// within a second (a bad new file is logged and the previous roots kept). Optional.
    pub probe_ca_file: Option<PathBuf>,
    /// `https://` probe URLs: verify the edge's certificate (chain to a trusted root, validity
    /// dates, the URL's host name). `false` accepts any certificate (self-signed labs); the
    /// TLS handshake must still succeed. Default true.
    pub probe_tls_verify: bool,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            probe_jitter: Duration::from_millis(100),
            rise: 2,
            fall: 3,
            report_max_age: Duration::from_secs(10),
            report_max_clock_skew: Duration::from_secs(10),
            overload_recover_ratio: 0.9,
            probe_ca_file: None,
            probe_tls_verify: true,
        }
    }
}

/// `[[regions]]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegionConfig {
    /// Region name, e.g. `us-east` (required).
    pub name: String,
    /// Latitude of the region (required).
    pub lat: f64,
    /// Longitude of the region (required).
    pub lon: f64,
    /// Ordered backup regions tried before pure distance when this region has no eligible
    /// edge. Default none.
    #[serde(default)]
    pub backups: Vec<String>,
}

/// `[[edges]]`
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeEntry {
    /// Unique edge id (required); must match the id in the edge's own config and reports.
    pub id: String,
    /// Region name from `[[regions]]` (required).
    pub region: String,
    /// IPv4 addresses answered in A records.
    #[serde(default)]
    pub ipv4: Vec<Ipv4Addr>,
    /// IPv6 addresses answered in AAAA records.
    #[serde(default)]
    pub ipv6: Vec<Ipv6Addr>,
    /// Health probe URL (`http://` or `https://`; GET, 200 = healthy). Default
    /// `http://<first ipv4>/healthz`.
    #[serde(default)]
    pub probe_url: Option<String>,
    /// Base URL of the edge's admin API, used for purge fan-out. Optional.
    #[serde(default)]
    pub admin_url: Option<String>,
    /// Relative weight among equally ranked edges. Default 1.
    #[serde(default = "one")]
    pub weight: u32,
    /// Manually disabled: never answered. Default false.
    #[serde(default)]
    pub disabled: bool,
}

fn one() -> u32 {
    1
}

/// `[[zones]]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// The zone apex, e.g. `cdn.example.test` (required).
    pub name: String,
    /// Name servers for the apex NS RRset (required, at least one).
    pub ns: Vec<String>,
    /// The SOA record.
    #[serde(default)]
    pub soa: SoaConfig,
    /// Default TTL of static records and NS. Default 3600.
    #[serde(default = "hour")]
    pub ttl: u32,
    /// Static records.
    #[serde(default)]
    pub records: Vec<RecordConfig>,
}

fn hour() -> u32 {
    3600
}

/// `[zones.soa]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SoaConfig {
    /// Primary name server. Default: the first `ns`.
    pub mname: Option<String>,
    /// Responsible mailbox as a name. Default `hostmaster.<zone>`.
    pub rname: Option<String>,
    /// Serial. Default 1.
    pub serial: u32,
    /// Default 3600.
    pub refresh: u32,
    /// Default 600.
    pub retry: u32,
    /// Default 604800.
    pub expire: u32,
    /// Negative-caching TTL (RFC 2308). Default 60.
    pub minimum: u32,
    /// TTL of the SOA record itself. Default 3600.
    pub ttl: u32,
}

impl Default for SoaConfig {
    fn default() -> Self {
        Self {
            mname: None,
            rname: None,
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 60,
            ttl: 3600,
        }
    }
}

/// `[[zones.records]]`: one static RRset.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RecordConfig {
    /// Owner name: `@`, a name relative to the zone, or absolute with a trailing dot (required).
    pub name: String,
    /// Record type: A, AAAA, CNAME, TXT, MX, CAA, SRV or NS (required).
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL. Default: the zone's `ttl`.
    #[serde(default)]
    pub ttl: Option<u32>,
    /// The record data in zone-file presentation format, one string per record
    /// (TXT: the text itself, split into 255-byte strings as needed) (required).
    pub data: Vec<String>,
}

/// `[[services]]`: a CDN hostname answered by geo selection.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Fully qualified name inside one of the zones; may start with `*.` (required).
    pub name: String,
    /// Edge ids in the pool. Default: every edge.
    #[serde(default)]
    pub edges: Vec<String>,
    /// TTL of the A/AAAA answers. Default 30.
    #[serde(default = "thirty")]
    pub ttl: u32,
    /// Edges per answer. Default 1.
    #[serde(default = "one_usize")]
    pub answers: usize,
    /// `use` (locate by ECS when present) or `ignore`. Default `use`.
    #[serde(default)]
    pub ecs: EcsMode,
    /// Longest IPv4 ECS source prefix honoured (longer ones are truncated). Default 24.
    #[serde(default = "v4max")]
    pub ecs_max_prefix_v4: u8,
    /// Longest IPv6 ECS source prefix honoured. Default 56.
    #[serde(default = "v6max")]
    pub ecs_max_prefix_v6: u8,
    /// When no edge is eligible: `nearest` (answer the nearest regardless of health) or
    /// `none` (answer NODATA). Default `nearest`.
    #[serde(default)]
    pub all_down: AllDownMode,
    /// Per-region ordered backups for this service, overriding `[[regions]].backups`.
    #[serde(default)]
    pub backups: BTreeMap<String, Vec<String>>,
}

fn thirty() -> u32 {
    30
}
fn one_usize() -> usize {
    1
}
fn v4max() -> u8 {
    24
}
fn v6max() -> u8 {
    56
}

/// ECS handling per service.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EcsMode {
    /// Locate by the client subnet when the query carries one.
    #[default]
    Use,
    /// Always locate by the resolver's address.
    Ignore,
}

/// What to answer when no edge is eligible.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AllDownMode {
    /// Answer the nearest edges regardless of health.
    #[default]
    Nearest,
    /// Answer nothing (NODATA).
    None,
}

impl Validate for RouterConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(bus) = &self.bus {
            bus.validate()?;
            for (i, e) in self.edges.iter().enumerate() {
                if e.id.contains('.') || e.region.contains('.') {
                    return Err(ConfigError::new(
                        format!("edges[{i}].id"),
                        "with [bus], edge ids and regions must not contain `.` (NATS subjects)",
                    ));
                }
            }
        }
        require_nonempty("dns.listen", &self.dns.listen)?;
        if self.dns.udp_payload_size < 512 {
            return Err(ConfigError::new(
                "dns.udp_payload_size",
                "must be at least 512",
            ));
        }
        require_positive("dns.tcp_idle_timeout", self.dns.tcp_idle_timeout)?;
        if self.dns.tcp_max_connections == 0 {
            return Err(ConfigError::new(
                "dns.tcp_max_connections",
                "must be at least 1",
            ));
        }
        if self.dns.tcp_max_connections_per_client == 0 {
            return Err(ConfigError::new(
                "dns.tcp_max_connections_per_client",
                "must be at least 1",
            ));
        }
        require_positive(
            "dns.tcp_max_connection_lifetime",
            self.dns.tcp_max_connection_lifetime,
        )?;
        let rrl = &self.dns.rrl;
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
        if self.dns.cookies.secret_rotation < Duration::from_secs(60) {
            return Err(ConfigError::new(
                "dns.cookies.secret_rotation",
                "must be at least 1m",
            ));
        }
        if let Some(t) = &self.admin.token {
            if t.trim().is_empty() {
                return Err(ConfigError::new(
                    "admin.token",
                    "must not be empty (leave unset to refuse all writes)",
                ));
            }
        }
        if self
            .admin
            .purge_token
            .as_ref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::new("admin.purge_token", "must not be empty"));
        }
        for (i, t) in self.admin.tokens.iter().enumerate() {
            require_ident(&format!("admin.tokens[{i}].name"), &t.name)?;
            if t.token.trim().is_empty() {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].token"),
                    "must not be empty",
                ));
            }
            let same = self.admin.tokens[..i]
                .iter()
                .map(|o| o.token.as_str())
                .chain(self.admin.token.as_deref())
                .any(|o| o == t.token);
            if same {
                return Err(ConfigError::new(
                    format!("admin.tokens[{i}].token"),
                    "is the same secret as another admin token (each credential must be unique)",
                ));
            }
            match (t.role, &t.edge) {
                (AdminRole::Report, None) => {
                    return Err(ConfigError::new(
                        format!("admin.tokens[{i}].edge"),
                        "a `report` token needs the id of the edge it reports as",
                    ))
                }
                (AdminRole::Report, Some(e)) if !self.edges.iter().any(|x| &x.id == e) => {
                    return Err(ConfigError::new(
                        format!("admin.tokens[{i}].edge"),
                        format!("unknown edge `{e}`"),
                    ))
                }
                (AdminRole::Read | AdminRole::Operate, Some(_)) => {
                    return Err(ConfigError::new(
                        format!("admin.tokens[{i}].edge"),
                        "only a `report` token names an edge",
                    ))
                }
                _ => {}
            }
        }
        require_unique(self.admin.tokens.iter().map(|t| t.name.as_str()), |i| {
            format!("admin.tokens[{i}].name")
        })?;
        match (&self.admin.tls_cert, &self.admin.tls_key) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "admin.tls_key",
                    "must be set when admin.tls_cert is",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    "admin.tls_cert",
                    "must be set when admin.tls_key is",
                ))
            }
            _ => {}
        }
        let h = &self.health;
        require_positive("health.probe_interval", h.probe_interval)?;
        require_positive("health.probe_timeout", h.probe_timeout)?;
        require_positive("health.report_max_age", h.report_max_age)?;
        require_positive("health.report_max_clock_skew", h.report_max_clock_skew)?;
        if h.rise == 0 {
            return Err(ConfigError::new("health.rise", "must be at least 1"));
        }
        if h.fall == 0 {
            return Err(ConfigError::new("health.fall", "must be at least 1"));
        }
        if !(0.0..=1.0).contains(&h.overload_recover_ratio) {
            return Err(ConfigError::new(
                "health.overload_recover_ratio",
                "must be in [0, 1]",
            ));
        }
        if h.probe_ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::new(
                "health.probe_ca_file",
                "must not be empty (leave unset to trust only the built-in roots)",
            ));
        }

        // Regions.
        for (i, r) in self.regions.iter().enumerate() {
            require_ident(&format!("regions[{i}].name"), &r.name)?;
            require_coordinates(&format!("regions[{i}]"), r.lat, r.lon)?;
        }
        require_unique(self.regions.iter().map(|r| r.name.as_str()), |i| {
            format!("regions[{i}].name")
        })?;
        let regions: HashSet<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        for (i, r) in self.regions.iter().enumerate() {
            for (j, b) in r.backups.iter().enumerate() {
                if !regions.contains(b.as_str()) {
                    return Err(ConfigError::new(
                        format!("regions[{i}].backups[{j}]"),
                        format!("unknown region `{b}`"),
                    ));
                }
            }
        }
        if let Some(d) = &self.geo.default_region {
            if !regions.contains(d.as_str()) {
                return Err(ConfigError::new(
                    "geo.default_region",
                    format!("unknown region `{d}`"),
                ));
            }
        }
        require_positive("geo.reload_check_interval", self.geo.reload_check_interval)?;
        for (i, n) in self.geo.networks.iter().enumerate() {
            let key = format!("geo.networks[{i}]");
            match (&n.region, n.lat, n.lon) {
                (Some(r), None, None) => {
                    if !regions.contains(r.as_str()) {
                        return Err(ConfigError::new(
                            format!("{key}.region"),
                            format!("unknown region `{r}`"),
                        ));
                    }
                }
                (None, Some(lat), Some(lon)) => require_coordinates(&key, lat, lon)?,
                _ => {
                    return Err(ConfigError::new(
                        key,
                        "give either `region` or both `lat` and `lon`",
                    ))
                }
            }
        }

        // Edges.
        for (i, e) in self.edges.iter().enumerate() {
            require_ident(&format!("edges[{i}].id"), &e.id)?;
            if !regions.contains(e.region.as_str()) {
                return Err(ConfigError::new(
                    format!("edges[{i}].region"),
                    format!("unknown region `{}`", e.region),
                ));
            }
            if e.ipv4.is_empty() && e.ipv6.is_empty() {
                return Err(ConfigError::new(
                    format!("edges[{i}].ipv4"),
                    "an edge needs at least one address (ipv4 or ipv6)",
                ));
            }
            if e.probe_url.is_none() && e.ipv4.is_empty() {
                return Err(ConfigError::new(
                    format!("edges[{i}].probe_url"),
                    "required when the edge has no ipv4 address",
                ));
            }
            for (k, u) in [("probe_url", &e.probe_url), ("admin_url", &e.admin_url)] {
                if let Some(u) = u {
                    check_http_url(&format!("edges[{i}].{k}"), u)?;
                }
            }
            if e.weight == 0 {
                return Err(ConfigError::new(
                    format!("edges[{i}].weight"),
                    "must be at least 1",
                ));
            }
        }
        require_unique(self.edges.iter().map(|e| e.id.as_str()), |i| {
            format!("edges[{i}].id")
        })?;
        let edges: HashSet<&str> = self.edges.iter().map(|e| e.id.as_str()).collect();

        // Zones.
        require_nonempty("zones", &self.zones)?;
        for (i, z) in self.zones.iter().enumerate() {
            require_dns_name(&format!("zones[{i}].name"), &z.name, false)?;
            require_nonempty(&format!("zones[{i}].ns"), &z.ns)?;
            for (j, n) in z.ns.iter().enumerate() {
                require_dns_name(&format!("zones[{i}].ns[{j}]"), n, false)?;
            }
            for (j, r) in z.records.iter().enumerate() {
                let key = format!("zones[{i}].records[{j}]");
                if r.name != "@" {
                    require_dns_name(&format!("{key}.name"), &r.name, true)?;
                }
                const TYPES: &[&str] = &["A", "AAAA", "CNAME", "TXT", "MX", "CAA", "SRV", "NS"];
                if !TYPES.contains(&r.rtype.to_ascii_uppercase().as_str()) {
                    return Err(ConfigError::new(
                        format!("{key}.type"),
                        format!(
                            "unsupported type `{}` (one of {})",
                            r.rtype,
                            TYPES.join(", ")
                        ),
                    ));
                }
                require_nonempty(&format!("{key}.data"), &r.data)?;
            }
        }
        require_unique(
            self.zones.iter().map(|z| z.name.trim_end_matches('.')),
            |i| format!("zones[{i}].name"),
        )?;

        // Services.
        for (i, s) in self.services.iter().enumerate() {
            let key = format!("services[{i}]");
            require_dns_name(&format!("{key}.name"), &s.name, true)?;
            let lname = s.name.trim_end_matches('.').to_ascii_lowercase();
            let in_zone = self.zones.iter().any(|z| {
                let zn = z.name.trim_end_matches('.').to_ascii_lowercase();
                lname == zn || lname.ends_with(&format!(".{zn}"))
            });
            if !in_zone {
                return Err(ConfigError::new(
                    format!("{key}.name"),
                    format!("`{}` is not inside any configured zone", s.name),
                ));
            }
            for (j, e) in s.edges.iter().enumerate() {
                if !edges.contains(e.as_str()) {
                    return Err(ConfigError::new(
                        format!("{key}.edges[{j}]"),
                        format!("unknown edge `{e}`"),
                    ));
                }
            }
            if s.edges.is_empty() && self.edges.is_empty() {
                return Err(ConfigError::new(
                    format!("{key}.edges"),
                    "the service has no edges (and no [[edges]] are configured)",
                ));
            }
            if s.answers == 0 {
                return Err(ConfigError::new(
                    format!("{key}.answers"),
                    "must be at least 1",
                ));
            }
            if s.ecs_max_prefix_v4 > 32 {
                return Err(ConfigError::new(
                    format!("{key}.ecs_max_prefix_v4"),
                    "must be at most 32",
                ));
            }
            if s.ecs_max_prefix_v6 > 128 {
                return Err(ConfigError::new(
                    format!("{key}.ecs_max_prefix_v6"),
                    "must be at most 128",
                ));
            }
            for (region, list) in &s.backups {
                if !regions.contains(region.as_str()) {
                    return Err(ConfigError::new(
                        format!("{key}.backups.{region}"),
                        format!("unknown region `{region}`"),
                    ));
                }
                for (j, b) in list.iter().enumerate() {
                    if !regions.contains(b.as_str()) {
                        return Err(ConfigError::new(
                            format!("{key}.backups.{region}[{j}]"),
                            format!("unknown region `{b}`"),
                        ));
                    }
                }
            }
        }
        require_unique(
            self.services.iter().map(|s| s.name.trim_end_matches('.')),
            |i| format!("services[{i}].name"),
        )?;
        Ok(())
    }
}

/// An `http://` or `https://` URL with a host.
pub fn check_http_url(key: &str, u: &str) -> Result<url::Url, ConfigError> {
    let parsed =
        url::Url::parse(u).map_err(|e| ConfigError::new(key, format!("bad URL `{u}`: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
        return Err(ConfigError::new(
            key,
            format!("`{u}` must be an http:// or https:// URL with a host"),
        ));
    }
    Ok(parsed)
}

impl EdgeEntry {
    /// The probe URL: the configured one or `http://<first ipv4>/healthz`.
    pub fn probe_url(&self) -> String {
        match (&self.probe_url, self.ipv4.first()) {
            (Some(u), _) => u.clone(),
            (None, Some(ip)) => format!("http://{ip}/healthz"),
            (None, None) => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n";

    #[test]
    fn probe_tls_keys_default_and_validate() {
        let c: RouterConfig = crate::config::load_str(MIN).unwrap();
        assert_eq!(c.health.probe_ca_file, None);
        assert!(c.health.probe_tls_verify);
        let c: RouterConfig = crate::config::load_str(&format!(
            "[health]\nprobe_ca_file = \"ca.pem\"\nprobe_tls_verify = false\n{MIN}"
        ))
        .unwrap();
        assert_eq!(c.health.probe_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(!c.health.probe_tls_verify);
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[health]\nprobe_ca_file = \"\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "health.probe_ca_file");
    }

    #[test]
    fn admin_role_tokens_validate() {
        let edges = "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
                     [[edges]]\nid = \"e1\"\nregion = \"r\"\nipv4 = [\"192.0.2.1\"]\n";
        let c: RouterConfig = crate::config::load_str(MIN).unwrap();
        assert_eq!(c.admin.read_access, ReadAccess::Loopback);
        assert!(c.admin.tokens.is_empty() && c.admin.token.is_none());
        let ok = format!(
            "{MIN}{edges}[[admin.tokens]]\nname = \"ops\"\nrole = \"operate\"\ntoken = \"a\"\n\
             [[admin.tokens]]\nname = \"e1\"\nrole = \"report\"\ntoken = \"b\"\nedge = \"e1\"\n"
        );
        let c: RouterConfig = crate::config::load_str(&ok).unwrap();
        assert_eq!(c.admin.tokens[1].role, AdminRole::Report);
        let token = |fields: &str| {
            format!("{MIN}{edges}[[admin.tokens]]\nname = \"ops\"\nrole = \"operate\"\ntoken = \"a\"\n[[admin.tokens]]\n{fields}")
        };
        for (fields, key) in [
            (
                "name = \"x\"\nrole = \"report\"\ntoken = \"b\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"report\"\ntoken = \"b\"\nedge = \"nope\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \"b\"\nedge = \"e1\"",
                "admin.tokens[1].edge",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \"a\"",
                "admin.tokens[1].token",
            ),
            (
                "name = \"x\"\nrole = \"read\"\ntoken = \" \"",
                "admin.tokens[1].token",
            ),
            (
                "name = \"ops\"\nrole = \"read\"\ntoken = \"c\"",
                "admin.tokens[1].name",
            ),
        ] {
            let e = crate::config::load_str::<RouterConfig>(&token(fields)).unwrap_err();
            assert_eq!(e.key, key, "{fields}");
        }
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[admin]\ntls_cert = \"c.pem\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "admin.tls_key");
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[admin]\nread_access = \"sometimes\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "admin.read_access");
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
