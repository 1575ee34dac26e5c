//! The edge's configuration (`edge --config edge.toml`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::common::*;
pub use super::edge_cache::CacheSection;
pub use super::edge_host::{HostConfig, QueryPolicy};
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
        self.cache.validate()?;
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
            h.validate(&key, &self.cache, &self.geo, self.tls.is_some())?;
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
