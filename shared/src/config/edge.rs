//! The edge's configuration (`edge --config edge.toml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::common::*;
use super::router::check_http_url;
use super::{ConfigError, Validate};
use crate::report::Capacity;

/// The whole edge config.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeConfig {
    /// `[edge]`: who this edge is (required).
    pub edge: EdgeIdentity,
    /// `[http]`: the client-facing listeners.
    #[serde(default)]
    pub http: HttpSection,
    /// `[tls]`: HTTPS listeners (optional).
    #[serde(default)]
    pub tls: Option<TlsSection>,
    /// `[admin]`: purge API, health, metrics.
    #[serde(default)]
    pub admin: EdgeAdminSection,
    /// `[cache]`: the foyer hybrid cache.
    #[serde(default)]
    pub cache: CacheSection,
    /// `[report]`: health/load reports pushed to routers.
    #[serde(default)]
    pub report: ReportSection,
    /// `[access_log]`.
    #[serde(default)]
    pub access_log: AccessLogSection,
    /// `[lifecycle]`: shutdown grace.
    #[serde(default)]
    pub lifecycle: LifecycleSection,
    /// `[[hosts]]`: served hostnames and their origins (required, at least one).
    pub hosts: Vec<HostConfig>,
    /// Where geo rules' countries come from (`[geo]`).
    #[serde(default)]
    pub geo: super::tenant::EdgeGeoSection,
    /// `[bus]`: the fleet bus (NATS JetStream): purges from a stream (durable consumer named
    /// by `edge.id`), reports to `cdn.reports.<region>.<id>`. Optional: without it reports go
    /// to `report.routers` over HTTP and purges come through the admin API only.
    #[serde(default)]
    pub bus: Option<super::bus::BusSection>,
    /// `[cluster]`: this edge's PoP (peer fills by rendezvous hashing with bounded load) and
    /// shield PoPs (tiered caching). Optional: without it the edge fills from the origin alone.
    #[serde(default)]
    pub cluster: Option<super::cluster::ClusterSection>,
}

impl EdgeConfig {
    /// Resolve every file path of the config (TLS certificates and keys, CA files, the cache
    /// directory, the access log, signing key files, the geo files, the bus's files) against
    /// `base`, the config file's directory ([`super::config_dir`]), as the README promises.
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        use super::common::{resolve_opt, resolve_path};
        if let Some(t) = &mut self.tls {
            resolve_path(base, &mut t.cert);
            resolve_path(base, &mut t.key);
        }
        resolve_opt(base, &mut self.admin.tls_cert);
        resolve_opt(base, &mut self.admin.tls_key);
        resolve_opt(base, &mut self.cache.disk_path);
        resolve_opt(base, &mut self.report.tls_ca);
        resolve_opt(base, &mut self.access_log.path);
        resolve_opt(base, &mut self.geo.database);
        resolve_opt(base, &mut self.geo.network_map);
        for h in &mut self.hosts {
            resolve_opt(base, &mut h.tls_ca);
            if let Some(t) = &mut h.tls {
                resolve_opt(base, &mut t.cert);
                resolve_opt(base, &mut t.key);
            }
            if let Some(s) = &mut h.signed_urls {
                for k in &mut s.keys {
                    resolve_opt(base, &mut k.key_file);
                }
            }
        }
        if let Some(b) = &mut self.bus {
            b.resolve_paths(base);
        }
    }
}

/// `[edge]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeIdentity {
    /// Edge id, as in the router's `[[edges]]` (required).
    pub id: String,
    /// Region name, as in the router's `[[regions]]` (required).
    pub region: String,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Plain HTTP listen addresses. Default `["127.0.0.1:8081"]`.
    pub listen: Vec<SocketAddr>,
    /// Worker threads; 0 = one per CPU. Default 0.
    pub workers: usize,
    /// Maximum concurrent client connections per worker. Default 25000.
    pub max_connections: usize,
    /// Time a client has to send its request headers (slowloris guard). Default `5s`.
    #[serde(with = "crate::config::common::duration")]
    pub header_read_timeout: Duration,
    /// Keep-alive idle time for client connections. Default `60s`.
    #[serde(with = "crate::config::common::duration")]
    pub keep_alive: Duration,
    /// Time a client has to send a whole request body (pass-through requests buffer it);
    /// slower → 408. Default `30s`.
    #[serde(with = "crate::config::common::duration")]
    pub body_read_timeout: Duration,
    /// A client connection whose sent data stays unacknowledged this long (a client that
    /// stopped reading: its receive window stays closed) is closed (`TCP_USER_TIMEOUT`).
    /// Default `30s`.
    #[serde(with = "crate::config::common::duration")]
    pub send_timeout: Duration,
    /// Largest request header block; larger → 431. Default 32 KiB. Over HTTP/2 it is also
    /// the advertised `SETTINGS_MAX_HEADER_LIST_SIZE` (a larger header list resets the stream).
    pub max_header_size: ByteSize,
    /// HTTP/2: concurrent streams a client may open on one connection
    /// (`SETTINGS_MAX_CONCURRENT_STREAMS`; more are refused with `REFUSED_STREAM`). Default 128.
    pub h2_max_concurrent_streams: u32,
    /// Largest request body passed to the origin; larger → 413. Default 10 MiB.
    pub max_body_size: ByteSize,
    /// Peers whose `X-Forwarded-For` is believed (load balancers in front of the edge): the
    /// client address for rate limits, geo rules and the access log is then the right-most
    /// address not in this list. Default: none (the socket's peer is the client).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for HttpSection {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8081))],
            workers: 0,
            max_connections: 25_000,
            header_read_timeout: Duration::from_secs(5),
            body_read_timeout: Duration::from_secs(30),
            send_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(60),
            max_header_size: ByteSize::kib(32),
            h2_max_concurrent_streams: 128,
            max_body_size: ByteSize::mib(10),
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[tls]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// HTTPS listen addresses (required).
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain (required).
    pub cert: PathBuf,
    /// PEM private key (required).
    pub key: PathBuf,
    /// Port written in the `Location` of HTTP → HTTPS redirects (`hosts.tls.redirect`).
    /// Default: the port of the first `listen` address (left out of the URL when 443).
    #[serde(default)]
    pub redirect_port: Option<u16>,
    /// How often the certificate and key files (`[tls]` and every `[hosts.tls]`) are checked
    /// for changes; a change is loaded once it has been stable for one interval (SIGHUP loads
    /// at once). Default `10s`.
    #[serde(default = "d10s", with = "crate::config::common::duration")]
    pub reload_check_interval: Duration,
}

fn d10s() -> Duration {
    Duration::from_secs(10)
}

/// `[admin]` (edge)
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeAdminSection {
    /// Admin listener (purge, healthz, metrics). Default `127.0.0.1:9081`.
    pub listen: SocketAddr,
    /// Single bearer token for purge (an `operate` token, as the router's `admin.token`).
    /// When neither it nor an `operate` token in `tokens` is set, purge is refused with 403.
    pub token: Option<String>,
    /// Role tokens `{ name, role, token }`: `read` (metrics) or `operate` (metrics and purge).
    /// Empty by default.
    pub tokens: Vec<super::router::AdminToken>,
    /// Who may read `/metrics` without a token: `loopback` (default), `open` or `token`.
    /// `/healthz` is always open.
    pub read_access: super::router::ReadAccess,
    /// PEM certificate chain: with `tls_key`, the admin listener speaks HTTPS only (the router
    /// then purges through an `https://` `admin_url`, verifying it). Unset by default.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
}

impl Default for EdgeAdminSection {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9081)),
            token: None,
            tokens: Vec::new(),
            read_access: super::router::ReadAccess::Loopback,
            tls_cert: None,
            tls_key: None,
        }
    }
}

/// `[cache]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CacheSection {
    /// Memory tier size. Default 256 MiB.
    pub memory: ByteSize,
    /// Disk tier directory; unset = memory only (nothing survives a restart).
    pub disk_path: Option<PathBuf>,
    /// Disk tier size. Default 1 GiB.
    pub disk: ByteSize,
    /// Bodies are stored in chunks of this size. Default 1 MiB (at most 8 MiB).
    pub chunk_size: ByteSize,
    /// Largest object stored; larger ones are passed through uncached. Default 1 GiB.
    pub max_object_size: ByteSize,
    /// Heuristic freshness = `heuristic_fraction` × (Date − Last-Modified), capped by this.
    /// Default `1d`.
    #[serde(with = "crate::config::common::duration")]
    pub heuristic_max: Duration,
    /// Default 0.1 (RFC 9111 §4.2.2's suggestion).
    pub heuristic_fraction: f64,
    /// How long a request waits for another request's in-flight fill. Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub fill_wait_timeout: Duration,
    /// Hit-for-miss: after an origin response that may not be stored (`no-store`, `private`,
    /// `Set-Cookie`, `Vary: *`, no freshness, over `max_object_size`), misses on that key skip
    /// coalescing for this long — each fetches at once, a range or conditional request as the
    /// client sent it — and a response that may be stored again is stored and ends it.
    /// `0s` = off. Default `120s`.
    #[serde(with = "crate::config::common::duration")]
    pub hit_for_miss: Duration,
    /// Maximum concurrent origin fills; more → 503. Default 1024.
    pub max_inflight_fills: usize,
    /// Most Vary variants stored per URL; a response for a further variant is served but not
    /// stored (`Cache-Status: detail=too-many-variants`,
    /// `cdn_edge_vary_variants_refused_total`). Default 32.
    pub max_vary_variants: usize,
    /// With a disk tier: a stored chunk that was hit at least this many times (recently) is
    /// written again when its disk block is reclaimed, instead of being dropped (the disk
    /// tier keeps its hot objects like a CLOCK instead of forgetting them FIFO). 0 = off.
    /// Default 1.
    pub disk_reinsert_hits: u8,
    /// With a disk tier: a chunk kept on disk only is copied into memory on this hit.
    /// 1..=255; 255 = (almost) never. Default 128.
    pub promote_after: u8,
}

impl Default for CacheSection {
    fn default() -> Self {
        Self {
            memory: ByteSize::mib(256),
            disk_path: None,
            disk: ByteSize::gib(1),
            chunk_size: ByteSize::mib(1),
            max_object_size: ByteSize::gib(1),
            heuristic_max: Duration::from_secs(86_400),
            heuristic_fraction: 0.1,
            fill_wait_timeout: Duration::from_secs(10),
            hit_for_miss: Duration::from_secs(120),
            max_inflight_fills: 1024,
            max_vary_variants: 32,
            disk_reinsert_hits: 1,
            promote_after: 128,
        }
    }
}

/// `[report]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSection {
    /// Router admin base URLs to push reports to, e.g. `["http://127.0.0.1:8053"]`.
    pub routers: Vec<String>,
    /// Report interval. Default `1s`.
    #[serde(with = "crate::config::common::duration")]
    pub interval: Duration,
    /// Per-request timeout. Default `1s`.
    #[serde(with = "crate::config::common::duration")]
    pub timeout: Duration,
    /// Bearer token sent with reports: this edge's `report` credential on the routers (a `[[admin.tokens]]` entry with `role = "report"` and `edge` = this id).
    pub token: Option<String>,
    /// The capacity this edge announces; the router spills load above it.
    pub capacity: Capacity,
    /// Extra PEM CA trusted for `https://` routers (their certificates are always verified,
    /// against the webpki roots plus this file).
    pub tls_ca: Option<PathBuf>,
}

impl Default for ReportSection {
    fn default() -> Self {
        Self {
            routers: Vec::new(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            token: None,
            capacity: Capacity::default(),
            tls_ca: None,
        }
    }
}

/// `[access_log]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogSection {
    /// Default false.
    pub enabled: bool,
    /// File to append to; unset = stdout.
    pub path: Option<PathBuf>,
    /// `json` (one object per line) or `combined` (Apache combined + cache status). Default `json`.
    pub format: AccessLogFormat,
}

impl Default for AccessLogSection {
    fn default() -> Self {
        Self {
            enabled: false,
            path: None,
            format: AccessLogFormat::Json,
        }
    }
}

/// Access log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AccessLogFormat {
    /// JSON lines.
    Json,
    /// Apache combined log format with cache status appended.
    Combined,
}

/// `[[hosts]]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostConfig {
    /// The hostname clients send in `Host` (required).
    pub name: String,
    /// Other hostnames served the same way.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Origin base URL, e.g. `http://127.0.0.1:8080` or `https://origin.example` (required).
    pub origin: String,
    /// Host header sent to the origin. Default: the origin URL's host.
    #[serde(default)]
    pub origin_host: Option<String>,
    /// Default `2s`.
    #[serde(default = "d2s", with = "crate::config::common::duration")]
    pub connect_timeout: Duration,
    /// Time to the origin's response headers. Default `15s`.
    #[serde(default = "d15s", with = "crate::config::common::duration")]
    pub first_byte_timeout: Duration,
    /// Maximum idle time between body bytes from the origin. Default `30s`.
    #[serde(default = "d30s", with = "crate::config::common::duration")]
    pub idle_timeout: Duration,
    /// Override `[cache].max_object_size` for this host.
    #[serde(default)]
    pub max_object_size: Option<ByteSize>,
    /// Query string in the cache key: `keep`, `drop` or `sort`. Default `keep`.
    #[serde(default)]
    pub query: QueryPolicy,
    /// Request headers added to the cache key (lower-case names).
    #[serde(default)]
    pub key_headers: Vec<String>,
    /// TTL when the origin gives no freshness information. Default: none (not stored unless
    /// heuristics apply).
    #[serde(default, with = "crate::config::common::duration")]
    pub default_ttl: Option<Duration>,
    /// Stale serving window added when the origin gives none (stale-while-revalidate and
    /// stale-if-error). Default: none.
    #[serde(default, with = "crate::config::common::duration")]
    pub grace: Option<Duration>,
    /// Store responses that carry Set-Cookie (the header is never stored). Default false.
    #[serde(default)]
    pub cache_set_cookie: bool,
    /// Verify the origin's TLS certificate. Default true.
    #[serde(default = "yes")]
    pub tls_verify: bool,
    /// Extra PEM CA file trusted for the origin.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// Concurrent origin requests at most for this host (origin protection); excess misses
    /// wait up to `origin_queue_timeout`, then get 503. Default: no cap.
    #[serde(default)]
    pub max_origin_requests: Option<usize>,
    /// How long a miss waits for an origin slot under `max_origin_requests`. Default `1s`.
    #[serde(default = "d1s", with = "crate::config::common::duration")]
    pub origin_queue_timeout: Duration,
    /// Signed URLs required (`[hosts.signed_urls]`).
    #[serde(default)]
    pub signed_urls: Option<super::tenant::SignedUrls>,
    /// Per-client rate limit (`[hosts.rate_limit]`).
    #[serde(default)]
    pub rate_limit: Option<super::tenant::RateLimit>,
    /// Geo allow/deny rules (`[hosts.geo]`).
    #[serde(default)]
    pub geo: Option<super::tenant::GeoRules>,
    /// Header rules (`[hosts.headers]`).
    #[serde(default)]
    pub headers: super::tenant::HeaderRules,
    /// CORS answered at the edge (`[hosts.cors]`).
    #[serde(default)]
    pub cors: Option<super::tenant::Cors>,
    /// The host's own share of the cache (`[hosts.cache]`).
    #[serde(default)]
    pub cache: Option<super::tenant::HostCache>,
    /// Compression of uncompressed text-like responses (`[hosts.compress]`; present = on).
    #[serde(default)]
    pub compress: Option<super::compress::Compress>,
    /// HTTPS for this host (`[hosts.tls]`): its own certificate (SNI), redirect, HSTS.
    #[serde(default)]
    pub tls: Option<super::host_tls::HostTls>,
}

fn d1s() -> Duration {
    Duration::from_secs(1)
}
fn d2s() -> Duration {
    Duration::from_secs(2)
}
fn d15s() -> Duration {
    Duration::from_secs(15)
}
fn d30s() -> Duration {
    Duration::from_secs(30)
}
fn yes() -> bool {
    true
}

/// Query string handling in the cache key.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueryPolicy {
    /// Keep the query as sent.
    #[default]
    Keep,
    /// Ignore the query string entirely.
    Drop,
    /// Sort parameters so `?a=1&b=2` and `?b=2&a=1` share an entry.
    Sort,
}

impl Validate for EdgeConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        require_ident("edge.id", &self.edge.id)?;
        require_ident("edge.region", &self.edge.region)?;
        if let Some(bus) = &self.bus {
            bus.validate()?;
            if self.edge.id.contains('.') || self.edge.region.contains('.') {
                return Err(ConfigError::new(
                    "edge.id",
                    "with [bus], the id and region must not contain `.` (NATS subjects)",
                ));
            }
        }
        require_nonempty("http.listen", &self.http.listen)?;
        let mut tcp: Vec<(String, SocketAddr)> = Vec::new();
        tcp.extend(
            self.http
                .listen
                .iter()
                .enumerate()
                .map(|(i, a)| (format!("http.listen[{i}]"), *a)),
        );
        if let Some(t) = &self.tls {
            tcp.extend(
                t.listen
                    .iter()
                    .enumerate()
                    .map(|(i, a)| (format!("tls.listen[{i}]"), *a)),
            );
        }
        tcp.push(("admin.listen".into(), self.admin.listen));
        require_distinct_listeners(&tcp)?;
        require_positive("http.header_read_timeout", self.http.header_read_timeout)?;
        require_positive("http.body_read_timeout", self.http.body_read_timeout)?;
        require_positive("http.send_timeout", self.http.send_timeout)?;
        if self.http.max_connections == 0 {
            return Err(ConfigError::new(
                "http.max_connections",
                "must be at least 1",
            ));
        }
        if self.http.h2_max_concurrent_streams == 0 {
            return Err(ConfigError::new(
                "http.h2_max_concurrent_streams",
                "must be at least 1",
            ));
        }
        if self.http.max_header_size.as_u64() > 16 * 1024 * 1024 {
            return Err(ConfigError::new(
                "http.max_header_size",
                "must be at most 16 MiB",
            ));
        }
        if self.http.max_header_size.as_u64() < 1024 {
            return Err(ConfigError::new(
                "http.max_header_size",
                "must be at least 1 KiB",
            ));
        }
        if let Some(tls) = &self.tls {
            require_nonempty("tls.listen", &tls.listen)?;
            require_positive("tls.reload_check_interval", tls.reload_check_interval)?;
        }
        if let Some(t) = &self.admin.token {
            if t.trim().is_empty() {
                return Err(ConfigError::new("admin.token", "must not be empty"));
            }
        }
        super::router::check_tokens_and_tls(
            self.admin.token.as_deref(),
            &self.admin.tokens,
            (self.admin.tls_cert.as_ref(), self.admin.tls_key.as_ref()),
            None,
        )?;
        let c = &self.cache;
        if c.memory.as_u64() < 1024 * 1024 {
            return Err(ConfigError::new("cache.memory", "must be at least 1 MiB"));
        }
        let chunk = c.chunk_size.as_u64();
        if !(4096..=8 * 1024 * 1024).contains(&chunk) {
            return Err(ConfigError::new(
                "cache.chunk_size",
                "must be between 4 KiB and 8 MiB",
            ));
        }
        if c.disk_path.is_some() && c.disk.as_u64() < 4 * chunk {
            return Err(ConfigError::new(
                "cache.disk",
                "must hold at least four chunks",
            ));
        }
        if !(0.0..=1.0).contains(&c.heuristic_fraction) {
            return Err(ConfigError::new(
                "cache.heuristic_fraction",
                "must be in [0, 1]",
            ));
        }
        require_positive("cache.fill_wait_timeout", c.fill_wait_timeout)?;
        if c.promote_after == 0 {
            return Err(ConfigError::new(
                "cache.promote_after",
                "must be 1..=255 (the hit that copies a disk-only chunk into memory)",
            ));
        }
        if c.max_inflight_fills == 0 {
            return Err(ConfigError::new(
                "cache.max_inflight_fills",
                "must be at least 1",
            ));
        }
        if c.max_vary_variants == 0 {
            return Err(ConfigError::new(
                "cache.max_vary_variants",
                "must be at least 1",
            ));
        }
        for (i, r) in self.report.routers.iter().enumerate() {
            check_http_url(&format!("report.routers[{i}]"), r)?;
        }
        if self
            .report
            .token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::new(
                "report.token",
                "is empty: set the token or leave the key out",
            ));
        }
        let c = &self.report.capacity;
        for (key, v) in [
            ("report.capacity.requests_per_sec", c.requests_per_sec),
            (
                "report.capacity.egress_bytes_per_sec",
                c.egress_bytes_per_sec,
            ),
            ("report.capacity.cpu", c.cpu),
        ] {
            if v.is_some_and(|v| !v.is_finite() || v < 0.0) {
                return Err(ConfigError::new(key, "must be a number ≥ 0"));
            }
        }
        require_positive("report.interval", self.report.interval)?;
        require_positive("report.timeout", self.report.timeout)?;

        require_nonempty("hosts", &self.hosts)?;
        let mut names = Vec::new();
        for (i, h) in self.hosts.iter().enumerate() {
            let key = format!("hosts[{i}]");
            require_dns_name(&format!("{key}.name"), &h.name, false)?;
            for (j, a) in h.aliases.iter().enumerate() {
                require_dns_name(&format!("{key}.aliases[{j}]"), a, false)?;
            }
            check_http_url(&format!("{key}.origin"), &h.origin)?;
            require_positive(&format!("{key}.connect_timeout"), h.connect_timeout)?;
            require_positive(&format!("{key}.first_byte_timeout"), h.first_byte_timeout)?;
            require_positive(&format!("{key}.idle_timeout"), h.idle_timeout)?;
            for (j, k) in h.key_headers.iter().enumerate() {
                if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return Err(ConfigError::new(
                        format!("{key}.key_headers[{j}]"),
                        format!("`{k}` is not a header name"),
                    ));
                }
            }
            if h.max_origin_requests == Some(0) {
                return Err(ConfigError::new(
                    format!("{key}.max_origin_requests"),
                    "must be at least 1",
                ));
            }
            require_positive(
                &format!("{key}.origin_queue_timeout"),
                h.origin_queue_timeout,
            )?;
            if let Some(share) = &h.cache {
                if share.memory.as_u64() < 1024 * 1024 {
                    return Err(ConfigError::new(
                        format!("{key}.cache.memory"),
                        "must be at least 1 MiB",
                    ));
                }
                if share.disk.as_u64() > 0 {
                    if self.cache.disk_path.is_none() {
                        return Err(ConfigError::new(
                            format!("{key}.cache.disk"),
                            "needs cache.disk_path (the host's tier is a directory under it)",
                        ));
                    }
                    if share.disk.as_u64() < 4 * self.cache.chunk_size.as_u64() {
                        return Err(ConfigError::new(
                            format!("{key}.cache.disk"),
                            "must hold at least four chunks",
                        ));
                    }
                }
            }
            super::tenant::validate_host(
                &key,
                h.signed_urls.as_ref(),
                h.rate_limit.as_ref(),
                h.geo.as_ref(),
                &h.headers,
                h.cors.as_ref(),
            )?;
            if h.geo
                .as_ref()
                .is_some_and(|g| !g.allow_countries.is_empty() || !g.deny_countries.is_empty())
                && self.geo.database.is_none()
                && self.geo.network_map.is_none()
            {
                return Err(ConfigError::new(
                    format!("{key}.geo"),
                    "country rules need [geo].database or [geo].network_map",
                ));
            }
            if let Some(t) = &h.tls {
                t.validate(&format!("{key}.tls"), self.tls.is_some())?;
            }
            if let Some(c) = &h.compress {
                c.validate(&key)?;
            }
            names.push((h.name.as_str(), format!("{key}.name")));
            names.extend(
                h.aliases
                    .iter()
                    .enumerate()
                    .map(|(j, a)| (a.as_str(), format!("{key}.aliases[{j}]"))),
            );
        }
        if let Some(c) = &self.cluster {
            let hosts: Vec<&str> = self.hosts.iter().map(|h| h.name.as_str()).collect();
            c.validate(&self.edge.region, &hosts)?;
        }
        // A host name or alias used twice, named at its second use.
        require_unique(names.iter().map(|(n, _)| *n), |i| names[i].1.clone())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load::load_str;

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let base = "[edge]\nid = \"e1\"\nregion = \"eu-west\"\n[cache]\ndisk_path = \"cache\"\n[access_log]\npath = \"/var/log/a.jsonl\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\ntls_ca = \"ca/origin.pem\"\n";
        let mut c: EdgeConfig = load_str(base).unwrap();
        c.resolve_paths(std::path::Path::new("/etc/cdn"));
        assert_eq!(
            c.cache.disk_path.as_deref(),
            Some(std::path::Path::new("/etc/cdn/cache"))
        );
        assert_eq!(
            c.hosts[0].tls_ca.as_deref(),
            Some(std::path::Path::new("/etc/cdn/ca/origin.pem"))
        );
        // Absolute paths stay.
        assert_eq!(
            c.access_log.path.as_deref(),
            Some(std::path::Path::new("/var/log/a.jsonl"))
        );
    }

    #[test]
    fn a_duplicate_host_name_is_named_at_its_second_use() {
        let base = "[edge]\nid = \"e1\"\nregion = \"eu-west\"\n";
        let host = |name: &str, alias: &str| {
            format!("[[hosts]]\nname = \"{name}\"\norigin = \"http://127.0.0.1:1\"\naliases = [{alias}]\n")
        };
        let e = load_str::<EdgeConfig>(&format!(
            "{base}{}{}",
            host("a.test", ""),
            host("B.test", "\"x.test\", \"A.test\"")
        ))
        .unwrap_err();
        assert_eq!(e.key, "hosts[1].aliases[1]", "{e}");
        let e = load_str::<EdgeConfig>(&format!(
            "{base}{}{}",
            host("a.test", ""),
            host("a.test", "")
        ))
        .unwrap_err();
        assert_eq!(e.key, "hosts[1].name", "{e}");
    }

    #[test]
    fn report_token_and_capacity_are_checked() {
        let base = "[edge]\nid = \"e1\"\nregion = \"eu-west\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n";
        let e = load_str::<EdgeConfig>(&format!("[report]\ntoken = \"\"\n{base}")).unwrap_err();
        assert_eq!(e.key, "report.token");
        let e =
            load_str::<EdgeConfig>(&format!("[report.capacity]\ncpu = -2.0\n{base}")).unwrap_err();
        assert_eq!(e.key, "report.capacity.cpu");
        assert!(load_str::<EdgeConfig>(&format!("[report.capacity]\ncpu = 0.0\n{base}")).is_ok());
    }

    #[test]
    fn absurd_durations_are_refused_naming_the_key() {
        let base = "[edge]\nid = \"e1\"\nregion = \"eu-west\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n";
        let e = load_str::<EdgeConfig>(&format!(
            "{base}[http]\nbody_read_timeout = \"300000000000y\"\n"
        ))
        .unwrap_err();
        assert!(e.to_string().contains("body_read_timeout"), "{e}");
        assert!(e.to_string().contains("100 years"), "{e}");
        let e = load_str::<EdgeConfig>(&format!("{base}grace = \"200y\"\n")).unwrap_err();
        assert!(e.to_string().contains("grace"), "{e}");
        let c: EdgeConfig = load_str(&format!(
            "{base}grace = \"24h\"\n[http]\nbody_read_timeout = \"99y\"\n"
        ))
        .unwrap();
        assert_eq!(
            c.hosts[0].grace,
            Some(std::time::Duration::from_secs(24 * 3600))
        );
    }

    #[test]
    fn cache_policy_keys_parse_and_promote_after_zero_is_refused() {
        let base = "[edge]\nid = \"e1\"\nregion = \"eu-west\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n";
        let c: EdgeConfig = load_str(base).unwrap();
        assert_eq!(
            (c.cache.disk_reinsert_hits, c.cache.promote_after),
            (1, 128)
        );
        let c: EdgeConfig = load_str(&format!(
            "{base}[cache]\ndisk_reinsert_hits = 1\npromote_after = 255\n"
        ))
        .unwrap();
        assert_eq!(
            (c.cache.disk_reinsert_hits, c.cache.promote_after),
            (1, 255)
        );
        let e = load_str::<EdgeConfig>(&format!("{base}[cache]\npromote_after = 0\n")).unwrap_err();
        assert!(e.to_string().contains("cache.promote_after"), "{e}");
        let e =
            load_str::<EdgeConfig>(&format!("{base}[cache]\npromote_after = 300\n")).unwrap_err();
        assert!(e.to_string().contains("promote_after"), "{e}");
    }
}
