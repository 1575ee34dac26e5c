//! The dns-router's configuration (`dns-router --config router.toml`).
//!
//! Every key, its default, and what it does is documented on the field; the README's router
//! section is generated from the same words.
//!
//! One file per section: `dns` (`[dns]`, `[dns.rrl]`, `[dns.cookies]`),
//! `admin` (`[admin]`, `[[admin.tokens]]`), `geo` (`[geo]`, `[[regions]]`), `health`,
//! `edges`, `zones` (`[[zones]]`, `[zones.soa]`, `[[zones.records]]`) and `services`; every
//! type is re-exported here. `[lifecycle]` is shared with the edge (`config::common`) and
//! `[bus]` is `config::bus`.

mod admin;
mod dns;
mod edges;
mod geo;
mod health;
mod services;
mod zones;

pub(crate) use admin::check_tokens_and_tls;
pub use admin::{AdminRole, AdminSection, AdminToken, ReadAccess};
pub use dns::{CookiesSection, DnsSection, RrlSection};
pub use edges::EdgeEntry;
pub use geo::{GeoSection, NetworkEntry, RegionConfig};
pub use health::HealthSection;
pub use services::{AllDownMode, EcsMode, ServiceConfig};
pub use zones::{RecordConfig, SoaConfig, ZoneConfig};

use serde::Deserialize;

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
        self.dns.check()?;
        // DNS answers over TCP too: the DNS and admin addresses are all TCP listeners.
        let mut tcp: Vec<(String, std::net::SocketAddr)> = self
            .dns
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| (format!("dns.listen[{i}]"), *a))
            .collect();
        tcp.push(("admin.listen".into(), self.admin.listen));
        super::common::require_distinct_listeners(&tcp)?;
        admin::check(self)?;
        self.health.check()?;
        let regions = geo::check(self)?;
        let edges = edges::check(self, &regions)?;
        zones::check(self)?;
        services::check(self, &regions, &edges)?;
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

/// The smallest valid router config (one zone), for the section tests.
#[cfg(test)]
const MIN: &str = "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n";
