//! `[[zones]]`: the zones we are authoritative for, their SOA and static records.

use serde::Deserialize;

use super::RouterConfig;
use crate::config::common::*;
use crate::config::ConfigError;

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
    /// Primary name server. Default: the first `ns`. A name with a dot in it is absolute
    /// (trailing dot optional, as for `ns`: `ns1.cdn.example.test`); a single label (or `@`) is
    /// relative to the zone.
    pub mname: Option<String>,
    /// Responsible mailbox as a name (`hostmaster.cdn.example.test` for
    /// hostmaster@cdn.example.test). Default `hostmaster`, which is relative to the zone
    /// (`hostmaster.<zone>`); like `mname`, a name with a dot in it is absolute, trailing dot
    /// or not, and a single label is relative to the zone.
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

/// The `[[zones]]` rules of [`RouterConfig`]'s `validate`.
pub(super) fn check(c: &RouterConfig) -> Result<(), ConfigError> {
    // Zones.
    require_nonempty("zones", &c.zones)?;
    for (i, z) in c.zones.iter().enumerate() {
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
    require_unique(c.zones.iter().map(|z| z.name.trim_end_matches('.')), |i| {
        format!("zones[{i}].name")
    })?;

    Ok(())
}
