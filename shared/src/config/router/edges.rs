//! `[[edges]]`: the fleet.

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::{check_http_url, RouterConfig};
use crate::config::common::*;
use crate::config::ConfigError;

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

/// The `[[edges]]` rules of [`RouterConfig`]'s `validate`; returns the edge ids.
pub(super) fn check<'a>(
    c: &'a RouterConfig,
    regions: &HashSet<&str>,
) -> Result<HashSet<&'a str>, ConfigError> {
    // Edges.
    for (i, e) in c.edges.iter().enumerate() {
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
    require_unique(c.edges.iter().map(|e| e.id.as_str()), |i| {
        format!("edges[{i}].id")
    })?;
    let edges: HashSet<&str> = c.edges.iter().map(|e| e.id.as_str()).collect();
    Ok(edges)
}
