//! Step 0, before any query: the routing snapshot. [`build_snapshot`] turns a validated config
//! into everything a query needs (zones, services with their pools and policies, edges,
//! regions, the client locator with its network map and MaxMind database, and the precompiled
//! geo map of every service's pools: [`cdn_geo::table::RouteTable`]), checking record data and
//! geo files on the way. A snapshot is immutable; the live state ([`crate::live::Router`]) swaps
//! it whole on reload.
//!
//! The precompiled map is attached to a snapshot after it is built ([`Snapshot::precompile`],
//! run by [`crate::live::Router`] on a thread of its own right after the snapshot is swapped
//! in): building it walks every network of the database once (a few seconds and some tens of MB
//! for GeoLite2 City: figures in `docs/bench/dns.md`), and until it is attached the snapshot
//! locates and ranks each client per query, which gives the same answers. The table is attached
//! atomically, once ([`OnceLock`]): a query sees either no table or the whole one.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use std::sync::OnceLock;

use ipnet::IpNet;

use cdn_geo::locate::{GeoDb, Locator, NetworkMap, Place, RegionPoint};
use cdn_geo::model::{AllDown, Candidate, Health, Policy};
use cdn_geo::table::{Pool, RouteTable};
use cdn_shared::config::router::{AllDownMode, EcsMode, RouterConfig, RrlSection, ServiceConfig};
use cdn_shared::config::ConfigError;

use crate::cookies::ServerCookies;
use crate::health::HealthView;
use crate::wire::rtype;
use crate::zone::Zones;

/// One edge as configured.
#[derive(Debug, Clone)]
pub struct EdgeInfo {
    /// Edge id.
    pub id: String,
    /// Region name.
    pub region: String,
    /// Region coordinates.
    pub lat: f64,
    /// Region coordinates.
    pub lon: f64,
    /// A addresses.
    pub ipv4: Vec<Ipv4Addr>,
    /// AAAA addresses.
    pub ipv6: Vec<Ipv6Addr>,
    /// Weight.
    pub weight: u32,
    /// Disabled in config.
    pub disabled: bool,
}

/// One `[[services]]` entry, resolved.
#[derive(Debug, Clone)]
pub struct Service {
    /// Name as configured (presentation).
    pub name: String,
    /// Indexes into [`Snapshot::edges`].
    pub edges: Vec<usize>,
    /// Answer TTL.
    pub ttl: u32,
    /// ECS handling.
    pub ecs: EcsMode,
    /// Longest IPv4 source prefix honoured.
    pub ecs_max_v4: u8,
    /// Longest IPv6 source prefix honoured.
    pub ecs_max_v6: u8,
    /// Selection policy.
    pub policy: Policy,
}

/// Everything a query needs from the config, swapped whole on reload.
#[derive(Debug)]
pub struct Snapshot {
    /// Increments on every reload.
    pub epoch: u64,
    /// Zones and names.
    pub zones: Zones,
    /// Services, indexed by `zone::Node::service`.
    pub services: Vec<Service>,
    /// Edges of the config.
    pub edges: Vec<EdgeInfo>,
    /// Region names (metrics label of an answer).
    pub regions: Vec<String>,
    /// Client locator (never swapped: a new one comes with a new snapshot).
    pub locator: Locator,
    /// The precompiled geo map of the locator for every service's pools
    /// (`pool(svc, rtype)`), once [`Snapshot::precompile`] has attached it; empty before
    /// that and when it could not be built (then every client is located and ranked per query).
    /// Set at most once: reading it is one atomic load.
    pub table: OnceLock<RouteTable>,
    /// Our EDNS UDP payload size.
    pub udp_payload_size: u16,
    /// Response-rate limiting (`dns.rrl`; the UDP threads take it on each new epoch).
    pub rrl: RrlSection,
    /// DNS Cookies (`dns.cookies`); `None` when turned off.
    pub cookies: Option<ServerCookies>,
}

/// Region coordinates of the config.
pub fn region_points(config: &RouterConfig) -> Vec<RegionPoint> {
    config
        .regions
        .iter()
        .map(|r| RegionPoint {
            name: r.name.clone(),
            lat: r.lat,
            lon: r.lon,
        })
        .collect()
}

fn resolve(base: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

/// Build the locator of a config: inline `geo.networks` and the `geo.network_map` file
/// (file entries win on equal prefix), the MaxMind database, and the default region.
/// Relative paths are resolved against `base_dir` (the config file's directory).
pub fn build_locator(config: &RouterConfig, base_dir: &Path) -> Result<Locator, ConfigError> {
    let regions = region_points(config);
    let inline: Vec<(IpNet, Place)> = config
        .geo
        .networks
        .iter()
        .map(|n| {
            let place = match (&n.region, n.lat, n.lon) {
                (Some(r), _, _) => Place::Region(r.clone()),
                (None, Some(lat), Some(lon)) => Place::Coords { lat, lon },
                _ => Place::Coords { lat: 0.0, lon: 0.0 },
            };
            (n.cidr, place)
        })
        .collect();
    let mut map = NetworkMap::new(inline, &regions)
        .map_err(|e| ConfigError::new("geo.networks", e.to_string()))?;
    if let Some(p) = &config.geo.network_map {
        let path = resolve(base_dir, p);
        let file = NetworkMap::load(&path, &regions)
            .map_err(|e| ConfigError::new("geo.network_map", format!("{}: {e}", path.display())))?;
        map = file
            .merged(map)
            .map_err(|e| ConfigError::new("geo.network_map", e.to_string()))?;
    }
    let db = match &config.geo.database {
        Some(p) => {
            let path = resolve(base_dir, p);
            // Read the whole database into memory (not mmap): the first lookups of every
            // network would otherwise fault pages in from disk on the query path.
            let bytes = std::fs::read(&path).map_err(|e| {
                ConfigError::new("geo.database", format!("{}: {e}", path.display()))
            })?;
            Some(GeoDb::from_bytes(bytes, &path).map_err(|e| {
                ConfigError::new("geo.database", format!("{}: {e}", path.display()))
            })?)
        }
        None => None,
    };
    let default = match &config.geo.default_region {
        Some(name) => regions.iter().find(|r| &r.name == name).cloned(),
        None => regions.first().cloned(),
    }
    .unwrap_or(RegionPoint {
        name: "default".into(),
        lat: 0.0,
        lon: 0.0,
    });
    Ok(Locator::new(map, db, default))
}

/// Build a snapshot (everything a reload re-reads), validating record data and geo files.
pub fn build_snapshot(
    config: &RouterConfig,
    base_dir: &Path,
    epoch: u64,
) -> Result<Snapshot, ConfigError> {
    let zones = Zones::build(config)?;
    let locator = build_locator(config, base_dir)?;
    let regions: Vec<String> = config.regions.iter().map(|r| r.name.clone()).collect();
    let edges: Vec<EdgeInfo> = config
        .edges
        .iter()
        .map(|e| {
            let r = config.regions.iter().find(|r| r.name == e.region);
            EdgeInfo {
                id: e.id.clone(),
                region: e.region.clone(),
                lat: r.map(|r| r.lat).unwrap_or(0.0),
                lon: r.map(|r| r.lon).unwrap_or(0.0),
                ipv4: e.ipv4.clone(),
                ipv6: e.ipv6.clone(),
                weight: e.weight,
                disabled: e.disabled,
            }
        })
        .collect();
    let services: Vec<Service> = config
        .services
        .iter()
        .map(|s| service(config, s, &edges))
        .collect();
    Ok(Snapshot {
        epoch,
        zones,
        services,
        edges,
        regions,
        locator,
        table: OnceLock::new(),
        udp_payload_size: config.dns.udp_payload_size,
        rrl: config.dns.rrl.clone(),
        cookies: config.dns.cookies.enabled.then(|| {
            let rotation = config.dns.cookies.secret_rotation.as_secs();
            match config.dns.cookies.master_key() {
                Some(key) => ServerCookies::with_master(key, rotation),
                None => ServerCookies::new(rotation),
            }
        }),
    })
}

impl Snapshot {
    /// Build the precompiled geo map of this snapshot and attach it (blocking: run it off the
    /// query threads). A map that cannot be built is logged and left out; the snapshot then
    /// keeps deciding per query. Returns whether a map is attached (a second call builds
    /// nothing).
    pub fn precompile(&self) -> bool {
        if self.table.get().is_some() {
            return true;
        }
        match build_table(self.epoch, &self.locator, &self.services, &self.edges) {
            Some(table) => {
                let _ = self.table.set(table);
                true
            }
            None => false,
        }
    }
}

/// Precompile `locator` for the pools of `services` (A and AAAA each, at [`pool`]). A map
/// that cannot be built is logged.
fn build_table(
    epoch: u64,
    locator: &Locator,
    services: &[Service],
    edges: &[EdgeInfo],
) -> Option<RouteTable> {
    let static_view = HealthView::default();
    let candidates: Vec<Vec<Candidate>> = services
        .iter()
        .flat_map(|s| [rtype::A, rtype::AAAA].map(|t| candidates_of(edges, s, t, &static_view)))
        .collect();
    let pools: Vec<Pool<'_>> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| Pool {
            candidates: c,
            policy: &services[i / 2].policy,
        })
        .collect();
    match RouteTable::build(locator, &pools) {
        Ok(table) => {
            let s = table.stats();
            tracing::info!(
                epoch,
                build_ms = s.build_time.as_millis() as u64,
                bytes = s.bytes,
                networks = s.networks,
                v4_ranges = s.v4_ranges,
                v6_ranges = s.v6_ranges,
                places = s.places,
                rankings = s.rankings,
                "geo map precompiled"
            );
            Some(table)
        }
        Err(e) => {
            tracing::warn!(epoch, error = %e,
                "geo map not precompiled; clients are located per query");
            None
        }
    }
}

fn service(config: &RouterConfig, s: &ServiceConfig, edges: &[EdgeInfo]) -> Service {
    let pool: Vec<usize> = if s.edges.is_empty() {
        (0..edges.len()).collect()
    } else {
        s.edges
            .iter()
            .filter_map(|id| edges.iter().position(|e| &e.id == id))
            .collect()
    };
    let mut backups: HashMap<String, Vec<String>> = config
        .regions
        .iter()
        .filter(|r| !r.backups.is_empty())
        .map(|r| (r.name.clone(), r.backups.clone()))
        .collect();
    for (region, list) in &s.backups {
        backups.insert(region.clone(), list.clone());
    }
    Service {
        name: s.name.trim_end_matches('.').to_ascii_lowercase(),
        edges: pool,
        ttl: s.ttl,
        ecs: s.ecs,
        ecs_max_v4: s.ecs_max_prefix_v4,
        ecs_max_v6: s.ecs_max_prefix_v6,
        policy: Policy {
            answers: s.answers,
            all_down: match s.all_down {
                AllDownMode::Nearest => AllDown::Nearest,
                AllDownMode::None => AllDown::None,
            },
            backups,
            stale_after_ms: None,
        },
    }
}

/// The edges of `service` that can answer `rtype` (those without an address of that family
/// are left out), with their live health in `view`: [`crate::route::candidates`] for a built
/// snapshot, and the snapshot build itself, which ranks these before the snapshot exists.
pub fn candidates_of(
    edges: &[EdgeInfo],
    service: &Service,
    rtype: u16,
    view: &HealthView,
) -> Vec<Candidate> {
    service
        .edges
        .iter()
        .map(|&i| &edges[i])
        .filter(|e| {
            if rtype == rtype::AAAA {
                !e.ipv6.is_empty()
            } else {
                !e.ipv4.is_empty()
            }
        })
        .map(|e| {
            let h = view.edges.get(&e.id);
            Candidate {
                id: e.id.clone(),
                region: e.region.clone(),
                lat: e.lat,
                lon: e.lon,
                ipv4: e.ipv4.clone(),
                ipv6: e.ipv6.clone(),
                // An operator override (admin API, or the KV bucket in bus mode) wins.
                weight: h.and_then(|h| h.weight_override).unwrap_or(e.weight),
                health: h.map(|h| h.health).unwrap_or(Health::Unknown),
                draining: h.is_some_and(|h| h.draining),
                overloaded: h.is_some_and(|h| h.overloaded),
                disabled: e.disabled,
                last_seen_ms: h.and_then(|h| h.last_seen_ms),
            }
        })
        .collect()
}

/// The pool of (service, record type) in the snapshot's precompiled map.
pub fn pool(svc: usize, rtype: u16) -> usize {
    svc * 2 + usize::from(rtype == rtype::AAAA)
}
