//! `[[services]]`: CDN hostnames answered by geo selection over edges.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::RouterConfig;
use crate::config::common::*;
use crate::config::ConfigError;

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

/// The `[[services]]` rules of [`RouterConfig`]'s `validate` (names inside a zone, known
/// edges and regions).
pub(super) fn check(
    c: &RouterConfig,
    regions: &HashSet<&str>,
    edges: &HashSet<&str>,
) -> Result<(), ConfigError> {
    // Services.
    for (i, s) in c.services.iter().enumerate() {
        let key = format!("services[{i}]");
        require_dns_name(&format!("{key}.name"), &s.name, true)?;
        let lname = s.name.trim_end_matches('.').to_ascii_lowercase();
        let in_zone = c.zones.iter().any(|z| {
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
        if s.edges.is_empty() && c.edges.is_empty() {
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
        c.services.iter().map(|s| s.name.trim_end_matches('.')),
        |i| format!("services[{i}].name"),
    )?;
    Ok(())
}
