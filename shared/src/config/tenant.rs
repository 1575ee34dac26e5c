//! Per-host tenant rules of the edge (`[[hosts]]` sub-tables): signed URLs
//! (`[hosts.signed_urls]`), per-client rate limits (`[hosts.rate_limit]`), geo rules
//! (`[hosts.geo]`), header rules and CORS (`[hosts.headers]`, `[hosts.cors]`), and the
//! edge-wide inputs they need: the client address behind trusted proxies
//! (`http.trusted_proxies`) and where countries come from (`[geo]`).
//!
//! Each table is optional; a host without it behaves as before. Validation errors name the
//! key (`hosts[2].rate_limit.burst`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::load::ConfigError;

/// `[hosts.signed_urls]`: requests must carry a valid URL signature.
///
/// The signature covers the request's path and query up to (not including) `&Signature=`:
/// `Signature = base64url(HMAC-SHA256(key, "<path>?<params>&Expires=<unix>&KeyName=<name>"))`
/// (Google Cloud CDN's scheme with SHA-256), or, with `URLPrefix=<base64url prefix>` first in
/// the parameters, any URL starting with that prefix.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SignedUrls {
    /// Named keys (several at once for rotation).
    pub keys: Vec<SigningKey>,
}

/// One named signing key: inline `key` or `key_file`, base64url (16 bytes or more decoded).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SigningKey {
    /// The `KeyName` clients send.
    pub name: String,
    /// The key, base64url (padding optional).
    #[serde(default)]
    pub key: Option<String>,
    /// A file holding the key, base64url (surrounding whitespace ignored).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// `[hosts.rate_limit]`: a token bucket per client (IPv4 /32, IPv6 /64).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained requests per second per client.
    pub rate: f64,
    /// Requests a client may make at once above the rate.
    pub burst: u32,
    /// Clients tracked at most (memory bound, ≈ 64 bytes each). Default 1,000,000. When full
    /// of active clients, new clients share one overflow bucket.
    #[serde(default = "million")]
    pub max_clients: usize,
}

fn million() -> usize {
    1_000_000
}

/// `[hosts.geo]`: allow or deny by country (ISO 3166 alpha-2) and CIDR.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoRules {
    /// If non-empty, only these countries are allowed.
    #[serde(default)]
    pub allow_countries: Vec<String>,
    /// Countries refused.
    #[serde(default)]
    pub deny_countries: Vec<String>,
    /// Networks always allowed (checked first).
    #[serde(default)]
    pub allow_cidrs: Vec<IpNet>,
    /// Networks refused.
    #[serde(default)]
    pub deny_cidrs: Vec<IpNet>,
    /// Status for a refused request: 403 (default) or 451.
    #[serde(default = "s403")]
    pub status: u16,
    /// What a client whose country is unknown gets: `allow` (default) or `deny`.
    #[serde(default)]
    pub unknown: UnknownCountry,
}

fn s403() -> u16 {
    403
}

/// Policy for clients without a known country.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum UnknownCountry {
    /// Allowed unless a CIDR denies them.
    #[default]
    Allow,
    /// Refused unless a CIDR allows them.
    Deny,
}

/// `[hosts.headers]`: header rules.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderRules {
    /// Response headers set (replacing the origin's), e.g. `Timing-Allow-Origin = "*"`. The
    /// value `$edge_id` is replaced by the edge's id.
    #[serde(default)]
    pub response_set: BTreeMap<String, String>,
    /// Response headers added (kept alongside the origin's).
    #[serde(default)]
    pub response_add: BTreeMap<String, String>,
    /// Response headers removed (e.g. `Server`, `X-Powered-By`).
    #[serde(default)]
    pub response_remove: Vec<String>,
    /// Request headers set toward the origin (e.g. a shared secret the origin checks).
    #[serde(default)]
    pub request_set: BTreeMap<String, String>,
}

impl HeaderRules {
    /// No rule at all.
    pub fn is_empty(&self) -> bool {
        self.response_set.is_empty()
            && self.response_add.is_empty()
            && self.response_remove.is_empty()
            && self.request_set.is_empty()
    }
}

/// `[hosts.cors]`: CORS answered at the edge.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    /// Allowed origins (`https://app.example`), or `["*"]` for any.
    pub allow_origins: Vec<String>,
    /// Methods a preflight allows. Default GET, HEAD, OPTIONS.
    #[serde(default = "cors_methods")]
    pub allow_methods: Vec<String>,
    /// Request headers a preflight allows. Default: none listed.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers exposed to scripts.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// `Access-Control-Max-Age` of preflight answers. Default 1 h.
    #[serde(default = "one_hour", with = "crate::config::common::duration")]
    pub max_age: Duration,
    /// Answer `OPTIONS` preflights at the edge (default true).
    #[serde(default = "yes")]
    pub preflight: bool,
}

fn cors_methods() -> Vec<String> {
    vec!["GET".into(), "HEAD".into(), "OPTIONS".into()]
}
fn one_hour() -> Duration {
    Duration::from_secs(3600)
}
fn yes() -> bool {
    true
}

/// `[hosts.cache]`: the host's own share of the cache (tenant isolation). The host's objects
/// live in a partition of this size, apart from every other host's (which share `[cache]`'s
/// sizes), so another host's long tail cannot evict this host's working set, nor this host's
/// the others'.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostCache {
    /// Memory tier of the host's partition (at least 1 MiB).
    pub memory: bytesize::ByteSize,
    /// Disk tier of the host's partition, under `<cache.disk_path>/hosts/<name>` (needs
    /// `cache.disk_path`). Default 0: memory only.
    #[serde(default)]
    pub disk: bytesize::ByteSize,
}

/// `[geo]` on the edge: where the countries of geo rules come from.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EdgeGeoSection {
    /// A MaxMind City or Country database (`.mmdb`).
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// An operator network map in the router's format; entries with `country=XX` place their
    /// network in that country (checked before the database; region names are not checked
    /// here).
    #[serde(default)]
    pub network_map: Option<PathBuf>,
}

fn is_header_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

fn is_country(c: &str) -> bool {
    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
}

/// Check the rules of host `key` (`hosts[i]`).
pub fn validate_host(
    key: &str,
    signed: Option<&SignedUrls>,
    rate: Option<&RateLimit>,
    geo: Option<&GeoRules>,
    headers: &HeaderRules,
    cors: Option<&Cors>,
) -> Result<(), ConfigError> {
    if let Some(s) = signed {
        if s.keys.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.signed_urls.keys"),
                "needs at least one key",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (j, k) in s.keys.iter().enumerate() {
            let kk = format!("{key}.signed_urls.keys[{j}]");
            if k.name.is_empty()
                || !k
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(ConfigError::new(
                    format!("{kk}.name"),
                    "must be letters, digits, `-` or `_`",
                ));
            }
            if !names.insert(k.name.as_str()) {
                return Err(ConfigError::new(
                    format!("{kk}.name"),
                    format!("duplicate key name `{}`", k.name),
                ));
            }
            if k.key.is_some() == k.key_file.is_some() {
                return Err(ConfigError::new(
                    kk,
                    "set exactly one of `key` and `key_file`",
                ));
            }
        }
    }
    if let Some(r) = rate {
        if !(r.rate.is_finite() && r.rate > 0.0 && r.rate <= 1e9) {
            return Err(ConfigError::new(
                format!("{key}.rate_limit.rate"),
                "must be a positive number of requests per second",
            ));
        }
        if r.burst == 0 {
            return Err(ConfigError::new(
                format!("{key}.rate_limit.burst"),
                "must be at least 1",
            ));
        }
        if r.max_clients == 0 {
            return Err(ConfigError::new(
                format!("{key}.rate_limit.max_clients"),
                "must be at least 1",
            ));
        }
    }
    if let Some(g) = geo {
        for (field, list) in [
            ("allow_countries", &g.allow_countries),
            ("deny_countries", &g.deny_countries),
        ] {
            for (j, c) in list.iter().enumerate() {
                if !is_country(c) {
                    return Err(ConfigError::new(
                        format!("{key}.geo.{field}[{j}]"),
                        format!("`{c}` is not an upper-case ISO 3166 alpha-2 code"),
                    ));
                }
            }
        }
        if g.status != 403 && g.status != 451 {
            return Err(ConfigError::new(
                format!("{key}.geo.status"),
                "must be 403 or 451",
            ));
        }
    }
    for (field, names) in [
        (
            "response_set",
            headers.response_set.iter().collect::<Vec<_>>(),
        ),
        ("response_add", headers.response_add.iter().collect()),
        ("request_set", headers.request_set.iter().collect()),
    ] {
        for (n, v) in names {
            if !is_header_name(n) {
                return Err(ConfigError::new(
                    format!("{key}.headers.{field}"),
                    format!("`{n}` is not a header name"),
                ));
            }
            if !is_header_value(v) {
                return Err(ConfigError::new(
                    format!("{key}.headers.{field}.{n}"),
                    "header values must be printable ASCII",
                ));
            }
        }
    }
    for (j, n) in headers.response_remove.iter().enumerate() {
        if !is_header_name(n) {
            return Err(ConfigError::new(
                format!("{key}.headers.response_remove[{j}]"),
                format!("`{n}` is not a header name"),
            ));
        }
    }
    if let Some(c) = cors {
        if c.allow_origins.is_empty() {
            return Err(ConfigError::new(
                format!("{key}.cors.allow_origins"),
                "needs at least one origin (or \"*\")",
            ));
        }
        for (j, o) in c.allow_origins.iter().enumerate() {
            let ok = o == "*"
                || ((o.starts_with("http://") || o.starts_with("https://"))
                    && is_header_value(o)
                    && !o.ends_with('/'));
            if !ok {
                return Err(ConfigError::new(
                    format!("{key}.cors.allow_origins[{j}]"),
                    format!("`{o}` is not `*` or a scheme://host[:port] origin"),
                ));
            }
        }
        for (field, list) in [
            ("allow_methods", &c.allow_methods),
            ("allow_headers", &c.allow_headers),
            ("expose_headers", &c.expose_headers),
        ] {
            for (j, n) in list.iter().enumerate() {
                if !is_header_name(n) {
                    return Err(ConfigError::new(
                        format!("{key}.cors.{field}[{j}]"),
                        format!("`{n}` is not a token"),
                    ));
                }
            }
        }
    }
    Ok(())
}
