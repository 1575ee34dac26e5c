//! `[geo]` (how clients are located) and `[[regions]]` (the places edges live in).

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::RouterConfig;
use crate::config::common::*;
use crate::config::ConfigError;

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
    #[serde(with = "crate::config::common::duration")]
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

/// The `[[regions]]` and `[geo]` rules of [`RouterConfig`]'s `validate`; returns the region
/// names the later sections check their references against.
pub(super) fn check(c: &RouterConfig) -> Result<HashSet<&str>, ConfigError> {
    // Regions.
    for (i, r) in c.regions.iter().enumerate() {
        require_ident(&format!("regions[{i}].name"), &r.name)?;
        require_coordinates(&format!("regions[{i}]"), r.lat, r.lon)?;
    }
    require_unique(c.regions.iter().map(|r| r.name.as_str()), |i| {
        format!("regions[{i}].name")
    })?;
    let regions: HashSet<&str> = c.regions.iter().map(|r| r.name.as_str()).collect();
    for (i, r) in c.regions.iter().enumerate() {
        for (j, b) in r.backups.iter().enumerate() {
            if !regions.contains(b.as_str()) {
                return Err(ConfigError::new(
                    format!("regions[{i}].backups[{j}]"),
                    format!("unknown region `{b}`"),
                ));
            }
        }
    }
    if let Some(d) = &c.geo.default_region {
        if !regions.contains(d.as_str()) {
            return Err(ConfigError::new(
                "geo.default_region",
                format!("unknown region `{d}`"),
            ));
        }
    }
    require_positive("geo.reload_check_interval", c.geo.reload_check_interval)?;
    for (i, n) in c.geo.networks.iter().enumerate() {
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

    Ok(regions)
}
