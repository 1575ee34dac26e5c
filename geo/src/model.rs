//! The values that flow through the crate: where a client is ([`ClientLocation`]), what the
//! router knows about each edge ([`Candidate`]), the per-service [`Policy`], and the
//! [`Decision`] that the DNS answer, the explain API and the query log are all built from.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;

/// Which input located the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LocationSource {
    /// The operator network map (longest-prefix match).
    NetworkMap,
    /// The MaxMind database.
    GeoIp,
    /// Nothing matched: the configured default region.
    Default,
}

impl LocationSource {
    /// Name for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LocationSource::NetworkMap => "network_map",
            LocationSource::GeoIp => "geoip",
            LocationSource::Default => "default",
        }
    }
}

/// Where a client is, and which network said so.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClientLocation {
    /// Latitude in degrees.
    pub lat: f64,
    /// Longitude in degrees.
    pub lon: f64,
    /// ISO 3166-1 alpha-2 country code, when known.
    pub country: Option<String>,
    /// Continent code (`NA`, `EU`, `AS`, …), when known.
    pub continent: Option<String>,
    /// Region name when the network map (or the default) placed the client in a region.
    pub region: Option<String>,
    /// The prefix that matched (its length bounds the ECS scope); `0.0.0.0/0` or `::/0`
    /// for [`LocationSource::Default`].
    pub network: IpNet,
    /// Which input located the client.
    pub source: LocationSource,
}

/// Health state of an edge as the router sees it. `Unknown` (no data yet) is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// No probe result or report yet: treated as usable, never as down.
    Unknown,
    /// Passing.
    Up,
    /// Failing.
    Down,
}

impl Health {
    /// Name for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// One edge of a service's pool, with everything selection needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    /// Edge id.
    pub id: String,
    /// Region name.
    pub region: String,
    /// Latitude of the edge's region.
    pub lat: f64,
    /// Longitude of the edge's region.
    pub lon: f64,
    /// A-record addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// AAAA-record addresses.
    pub ipv6: Vec<Ipv6Addr>,
    /// Weight among equally ranked edges (≥ 1).
    pub weight: u32,
    /// Current health.
    pub health: Health,
    /// The edge (or an operator) asked for no new clients.
    pub draining: bool,
    /// Reported load reached capacity (with hysteresis applied by the router's state).
    pub overloaded: bool,
    /// Manually disabled in config.
    pub disabled: bool,
    /// Unix ms of the last health evidence (probe or report); `None` = never.
    pub last_seen_ms: Option<u64>,
}

/// Why a candidate was not answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    /// Health is Down.
    Down,
    /// Draining.
    Draining,
    /// Load at or above capacity.
    Overloaded,
    /// Manually disabled.
    Disabled,
    /// Health evidence older than the policy's `stale_after_ms`.
    Stale,
}

impl Exclusion {
    /// Name for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Exclusion::Down => "down",
            Exclusion::Draining => "draining",
            Exclusion::Overloaded => "overloaded",
            Exclusion::Disabled => "disabled",
            Exclusion::Stale => "stale",
        }
    }
}

/// What to do when no candidate is eligible.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AllDown {
    /// Answer the nearest candidates regardless of health (excluding `disabled`).
    Nearest,
    /// Answer nothing.
    None,
}

/// Per-service selection policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Edges per answer (≥ 1).
    pub answers: usize,
    /// All-down behaviour.
    pub all_down: AllDown,
    /// Region → ordered backup regions, tried (in order) before pure distance when the
    /// client's nearest region has no eligible edge.
    pub backups: HashMap<String, Vec<String>>,
    /// Health evidence older than this (ms) makes an Up edge `Stale`; `None` = never stale.
    pub stale_after_ms: Option<u64>,
}

/// Which rule produced the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// The nearest eligible edges.
    Nearest,
    /// The nearest region had no eligible edge; an ordered backup region answered.
    Backup,
    /// No edge eligible; all-down policy `nearest` answered the nearest anyway.
    AllDownNearest,
    /// No edge eligible; all-down policy `none` answered nothing.
    AllDownNone,
    /// The pool is empty.
    NoCandidates,
}

impl Rule {
    /// Name for logs, metrics and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Rule::Nearest => "nearest",
            Rule::Backup => "backup",
            Rule::AllDownNearest => "all_down_nearest",
            Rule::AllDownNone => "all_down_none",
            Rule::NoCandidates => "no_candidates",
        }
    }
}

/// One candidate's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranked {
    /// Index into the candidate slice given to `choose`.
    pub index: usize,
    /// Great-circle distance from the client, km.
    pub distance_km: f64,
    /// Why it was excluded, if it was.
    pub excluded: Option<Exclusion>,
}

/// The outcome of `select::choose`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    /// Indexes (into the candidate slice) of the answered edges, in answer order.
    pub chosen: Vec<usize>,
    /// Every candidate, in rank order (ordered backups first where they applied, then
    /// distance, then a deterministic tie-break).
    pub ranked: Vec<Ranked>,
    /// The rule that fired.
    pub rule: Rule,
    /// Whether the answer depends on where the client is (false when e.g. only one region
    /// has eligible edges): the ECS scope is 0 when false.
    pub client_dependent: bool,
}
