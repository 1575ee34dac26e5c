//! One `[[hosts]]` entry of the edge's configuration: its origin, timeouts, cache key and
//! the tenant rules that hang off it, with the checks that need only the host (and the edge's
//! `[cache]` and `[geo]` sections and whether it has `[tls]`).

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

use super::common::*;
use super::edge_cache::CacheSection;
use super::router::check_http_url;
use super::tenant::EdgeGeoSection;
use super::ConfigError;

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

impl HostConfig {
    /// This host's checks; `key` is its `hosts[i]` prefix for error messages. `cache` and
    /// `geo` are the edge's sections; `default_tls` whether it has a `[tls]` listener.
    pub(super) fn validate(
        &self,
        key: &str,
        cache: &CacheSection,
        geo: &EdgeGeoSection,
        default_tls: bool,
    ) -> Result<(), ConfigError> {
        require_dns_name(&format!("{key}.name"), &self.name, false)?;
        for (j, a) in self.aliases.iter().enumerate() {
            require_dns_name(&format!("{key}.aliases[{j}]"), a, false)?;
        }
        check_http_url(&format!("{key}.origin"), &self.origin)?;
        require_positive(&format!("{key}.connect_timeout"), self.connect_timeout)?;
        require_positive(
            &format!("{key}.first_byte_timeout"),
            self.first_byte_timeout,
        )?;
        require_positive(&format!("{key}.idle_timeout"), self.idle_timeout)?;
        for (j, k) in self.key_headers.iter().enumerate() {
            if k.is_empty() || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(ConfigError::new(
                    format!("{key}.key_headers[{j}]"),
                    format!("`{k}` is not a header name"),
                ));
            }
        }
        if self.max_origin_requests == Some(0) {
            return Err(ConfigError::new(
                format!("{key}.max_origin_requests"),
                "must be at least 1",
            ));
        }
        require_positive(
            &format!("{key}.origin_queue_timeout"),
            self.origin_queue_timeout,
        )?;
        if let Some(share) = &self.cache {
            if share.memory.as_u64() < 1024 * 1024 {
                return Err(ConfigError::new(
                    format!("{key}.cache.memory"),
                    "must be at least 1 MiB",
                ));
            }
            if share.disk.as_u64() > 0 {
                if cache.disk_path.is_none() {
                    return Err(ConfigError::new(
                        format!("{key}.cache.disk"),
                        "needs cache.disk_path (the host's tier is a directory under it)",
                    ));
                }
                if share.disk.as_u64() < 4 * cache.chunk_size.as_u64() {
                    return Err(ConfigError::new(
                        format!("{key}.cache.disk"),
                        "must hold at least four chunks",
                    ));
                }
            }
        }
        super::tenant::validate_host(
            key,
            self.signed_urls.as_ref(),
            self.rate_limit.as_ref(),
            self.geo.as_ref(),
            &self.headers,
            self.cors.as_ref(),
        )?;
        if self
            .geo
            .as_ref()
            .is_some_and(|g| !g.allow_countries.is_empty() || !g.deny_countries.is_empty())
            && geo.database.is_none()
            && geo.network_map.is_none()
        {
            return Err(ConfigError::new(
                format!("{key}.geo"),
                "country rules need [geo].database or [geo].network_map",
            ));
        }
        if let Some(t) = &self.tls {
            t.validate(&format!("{key}.tls"), default_tls)?;
        }
        if let Some(c) = &self.compress {
            c.validate(key)?;
        }
        Ok(())
    }
}
