//! Step 3 of a query for a CDN hostname: which edges answer. One function, [`Router::decide`],
//! takes the service, the record type, the resolver address and the ECS option, locates the
//! client (`cdn_geo::locate`), builds the candidates from the live health view, and runs
//! `cdn_geo::select::choose`. The DNS path turns the decision into records
//! ([`Router::service_answer`]); the admin API's explain endpoint serialises it
//! ([`Router::explain`]) — same code, same answer.
//!
//! The router holds the parsed config (zones, services, locator) in an `ArcSwap`
//! [`Snapshot`], replaced whole by [`Router::reload`]. Answers are cached by the UDP threads
//! keyed by (service, type, lookup address, source prefix) and dropped when the snapshot epoch
//! or the health generation changes (see `handler::ThreadCache`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use ipnet::IpNet;
use serde::Serialize;

use cdn_geo::locate::{GeoDb, Locator, NetworkMap, Place, RegionPoint};
use cdn_geo::model::{AllDown, Candidate, ClientLocation, Decision, Health, Policy, Rule};
use cdn_shared::config::router::{AllDownMode, EcsMode, RouterConfig, ServiceConfig};
use cdn_shared::config::ConfigError;

use crate::error::RouterError;
use crate::health::{HealthState, HealthView};
use crate::wire::{name_to_wire, wire_to_string, Ecs};
use crate::zone::{Lookup, Zones};

/// RR type A.
pub const TYPE_A: u16 = 1;
/// RR type AAAA.
pub const TYPE_AAAA: u16 = 28;

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
    /// Client locator.
    pub locator: Locator,
    /// Our EDNS UDP payload size.
    pub udp_payload_size: u16,
}

/// How the client was located for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The address looked up (ECS address truncated to the honoured prefix, or the resolver).
    pub addr: IpAddr,
    /// The ECS source prefix used, `None` when the resolver's address decided.
    pub ecs_prefix: Option<u8>,
}

/// The answer of a service for one client, ready to write.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceAnswer {
    /// A or AAAA.
    pub rtype: u16,
    /// TTL.
    pub ttl: u32,
    /// Addresses, in answer order (empty = NODATA).
    pub addrs: Vec<IpAddr>,
    /// ECS scope to echo.
    pub scope: u8,
    /// Rule that fired.
    pub rule: Rule,
    /// Index into [`Snapshot::regions`] of the first answered edge.
    pub region: Option<usize>,
    /// Ids of the answered edges.
    pub edges: Vec<String>,
}

/// Everything [`Router::decide`] found out.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Which address was looked up.
    pub key: ClientKey,
    /// Where the client is.
    pub location: Arc<ClientLocation>,
    /// The candidates given to `choose` (shared: the UDP threads build them once per health
    /// generation, not once per decision).
    pub candidates: Arc<Vec<Candidate>>,
    /// The decision.
    pub decision: Decision,
    /// ECS scope for the answer.
    pub scope: u8,
}

/// The live router: config snapshot + health.
#[derive(Debug)]
pub struct Router {
    snapshot: ArcSwap<Snapshot>,
    health: Arc<HealthState>,
    base_dir: PathBuf,
    epochs: AtomicU64,
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
    let services = config
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
        udp_payload_size: config.dns.udp_payload_size,
    })
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

/// Truncate `addr` to its first `prefix` bits.
pub fn truncate(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let p = prefix.min(32) as u32;
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
        }
        IpAddr::V6(a) => {
            let p = prefix.min(128) as u32;
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
        }
    }
}

/// Which address locates the client (RFC 7871 §7.1.2 and the service's ECS policy): the ECS
/// address truncated to the honoured prefix, or the resolver's address when the query has no
/// ECS, its source prefix is 0, or the service ignores ECS.
pub fn client_key(service: &Service, resolver: IpAddr, ecs: Option<&Ecs>) -> ClientKey {
    match ecs {
        Some(e) if e.source_prefix > 0 && service.ecs == EcsMode::Use => {
            let max = if e.family == 1 {
                service.ecs_max_v4
            } else {
                service.ecs_max_v6
            };
            let used = e.source_prefix.min(max);
            ClientKey {
                addr: truncate(e.addr, used),
                ecs_prefix: Some(e.source_prefix),
            }
        }
        _ => ClientKey {
            addr: resolver,
            ecs_prefix: None,
        },
    }
}

/// The candidates of a service for one record type (edges without an address of that family
/// are left out), with their live health.
pub fn candidates(
    snap: &Snapshot,
    service: &Service,
    rtype: u16,
    view: &HealthView,
) -> Vec<Candidate> {
    service
        .edges
        .iter()
        .map(|&i| &snap.edges[i])
        .filter(|e| {
            if rtype == TYPE_AAAA {
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
                weight: e.weight,
                health: h.map(|h| h.health).unwrap_or(Health::Unknown),
                draining: h.is_some_and(|h| h.draining),
                overloaded: h.is_some_and(|h| h.overloaded),
                disabled: e.disabled,
                last_seen_ms: h.and_then(|h| h.last_seen_ms),
            }
        })
        .collect()
}

impl Router {
    /// Build a router for `config`; relative geo paths are resolved against `base_dir`.
    pub fn new(
        config: &RouterConfig,
        base_dir: &Path,
        health: Arc<HealthState>,
    ) -> Result<Arc<Router>, RouterError> {
        let snap = build_snapshot(config, base_dir, 1)?;
        Ok(Router::from_snapshot(snap, base_dir, health))
    }

    /// A router serving `snap` (built by [`build_snapshot`] with epoch 1).
    pub fn from_snapshot(snap: Snapshot, base_dir: &Path, health: Arc<HealthState>) -> Arc<Router> {
        Arc::new(Router {
            epochs: AtomicU64::new(snap.epoch.max(1)),
            snapshot: ArcSwap::from_pointee(snap),
            health,
            base_dir: base_dir.to_path_buf(),
        })
    }

    /// Replace zones, services and geo data with those of `config` (files re-read). On error
    /// the old snapshot keeps serving.
    pub fn reload(&self, config: &RouterConfig) -> Result<(), RouterError> {
        let epoch = self.epochs.fetch_add(1, Ordering::SeqCst) + 1;
        let snap = build_snapshot(config, &self.base_dir, epoch)?;
        self.snapshot.store(Arc::new(snap));
        Ok(())
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The health state.
    pub fn health(&self) -> &Arc<HealthState> {
        &self.health
    }

    /// Locate the client and choose edges: the one decision function behind DNS answers,
    /// the explain API and the query log.
    pub fn decide(
        snap: &Snapshot,
        view: &HealthView,
        svc: usize,
        rtype: u16,
        resolver: IpAddr,
        ecs: Option<&Ecs>,
        now_ms: u64,
    ) -> Decided {
        let key = client_key(&snap.services[svc], resolver, ecs);
        let location = Arc::new(snap.locator.locate(key.addr));
        let candidates = Arc::new(candidates(snap, &snap.services[svc], rtype, view));
        Router::decide_located(snap, svc, key, location, candidates, now_ms)
    }

    /// [`Router::decide`] for a client already located, over `candidates` already built from
    /// the health view (the UDP threads cache both).
    pub fn decide_located(
        snap: &Snapshot,
        svc: usize,
        key: ClientKey,
        location: Arc<ClientLocation>,
        candidates: Arc<Vec<Candidate>>,
        now_ms: u64,
    ) -> Decided {
        let service = &snap.services[svc];
        let decision = cdn_geo::select::choose(&location, &candidates, now_ms, &service.policy);
        let scope = match key.ecs_prefix {
            Some(p) => cdn_geo::ecs::ecs_scope(&location, &decision, p),
            None => 0,
        };
        Decided {
            key,
            location,
            candidates,
            decision,
            scope,
        }
    }

    /// Explain how `name` would be answered for `client` (with an optional ECS subnet).
    pub fn explain(
        &self,
        name: &str,
        rtype: hickory_proto::rr::RecordType,
        client: IpAddr,
        ecs: Option<IpNet>,
        now_ms: u64,
    ) -> Explain {
        let snap = self.snapshot();
        let view = self.health.view();
        let qtype = u16::from(rtype);
        let ecs = ecs.map(|n| Ecs {
            family: if n.addr().is_ipv4() { 1 } else { 2 },
            source_prefix: n.prefix_len(),
            addr: n.network(),
        });
        let mut out = Explain {
            name: name.to_string(),
            qtype: rtype.to_string(),
            client,
            ecs: ecs.map(|e| {
                IpNet::new(e.addr, e.source_prefix)
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            }),
            outcome: "refused".into(),
            service: None,
            lookup_address: None,
            location: None,
            candidates: Vec::new(),
            answer: Vec::new(),
            ttl: None,
            ecs_scope: 0,
            rule: None,
            health_generation: view.generation,
        };
        let Some(wire) = name_to_wire(name) else {
            out.outcome = "bad_name".into();
            return out;
        };
        match snap.zones.lookup(&wire) {
            Lookup::Refused => {}
            Lookup::NxDomain { .. } => out.outcome = "nxdomain".into(),
            Lookup::Referral { cut, .. } => {
                out.outcome = format!("referral to {}", wire_to_string(cut))
            }
            Lookup::Found { node, .. } => match node.service {
                Some(svc) if qtype == TYPE_A || qtype == TYPE_AAAA => {
                    let d = Router::decide(&snap, &view, svc, qtype, client, ecs.as_ref(), now_ms);
                    let a = answer_of(&snap, svc, qtype, &d);
                    out.outcome = if a.addrs.is_empty() {
                        "nodata".into()
                    } else {
                        "service".into()
                    };
                    out.service = Some(snap.services[svc].name.clone());
                    out.lookup_address = Some(d.key.addr);
                    out.ttl = Some(a.ttl);
                    out.ecs_scope = a.scope;
                    out.rule = Some(a.rule.as_str().to_string());
                    out.answer = a.addrs.clone();
                    out.candidates = d
                        .decision
                        .ranked
                        .iter()
                        .map(|r| {
                            let c = &d.candidates[r.index];
                            ExplainCandidate {
                                edge: c.id.clone(),
                                region: c.region.clone(),
                                distance_km: (r.distance_km * 10.0).round() / 10.0,
                                health: c.health.as_str().to_string(),
                                draining: c.draining,
                                overloaded: c.overloaded,
                                excluded: r.excluded.map(|x| x.as_str().to_string()),
                                chosen: d.decision.chosen.contains(&r.index),
                            }
                        })
                        .collect();
                    out.location = Some((*d.location).clone());
                }
                _ => {
                    out.outcome = match node.rrset(qtype) {
                        Some(_) => "static".into(),
                        None if node.rrset(5).is_some() => "cname".into(),
                        None => "nodata".into(),
                    }
                }
            },
        }
        out
    }
}

/// Turn a decision into the records to write.
pub fn answer_of(snap: &Snapshot, svc: usize, rtype: u16, d: &Decided) -> ServiceAnswer {
    let service = &snap.services[svc];
    let mut addrs = Vec::new();
    let mut edges = Vec::new();
    for &i in &d.decision.chosen {
        let c = &d.candidates[i];
        edges.push(c.id.clone());
        if rtype == TYPE_AAAA {
            addrs.extend(c.ipv6.iter().map(|a| IpAddr::V6(*a)));
        } else {
            addrs.extend(c.ipv4.iter().map(|a| IpAddr::V4(*a)));
        }
    }
    let region = d.decision.chosen.first().and_then(|&i| {
        snap.regions
            .iter()
            .position(|r| *r == d.candidates[i].region)
    });
    ServiceAnswer {
        rtype,
        ttl: service.ttl,
        addrs,
        scope: d.scope,
        rule: d.decision.rule,
        region,
        edges,
    }
}

/// The explain API's answer (`GET /api/v1/explain`).
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    /// The name asked about.
    pub name: String,
    /// Record type.
    pub qtype: String,
    /// The resolver (or client) address.
    pub client: IpAddr,
    /// The ECS subnet given, if any.
    pub ecs: Option<String>,
    /// `service`, `static`, `cname`, `nodata`, `nxdomain`, `referral to …`, `refused`, `bad_name`.
    pub outcome: String,
    /// The service that matched.
    pub service: Option<String>,
    /// The address located (ECS address truncated to the honoured prefix, or the client).
    pub lookup_address: Option<IpAddr>,
    /// Where the client was placed and which network said so.
    pub location: Option<ClientLocation>,
    /// Every candidate in rank order.
    pub candidates: Vec<ExplainCandidate>,
    /// Addresses answered.
    pub answer: Vec<IpAddr>,
    /// TTL of the answer.
    pub ttl: Option<u32>,
    /// ECS scope the answer carries.
    pub ecs_scope: u8,
    /// The selection rule that fired.
    pub rule: Option<String>,
    /// Health generation the decision used.
    pub health_generation: u64,
}

/// One candidate in an explanation.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainCandidate {
    /// Edge id.
    pub edge: String,
    /// Region.
    pub region: String,
    /// Great-circle distance from the client, km.
    pub distance_km: f64,
    /// `up`, `down`, `unknown`.
    pub health: String,
    /// Draining.
    pub draining: bool,
    /// Overloaded.
    pub overloaded: bool,
    /// Why it was not answered.
    pub excluded: Option<String>,
    /// Whether it is in the answer.
    pub chosen: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation() {
        assert_eq!(
            truncate("192.0.2.255".parse().unwrap(), 24),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            truncate("192.0.2.255".parse().unwrap(), 0),
            "0.0.0.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            truncate("2001:db8::1".parse().unwrap(), 32),
            "2001:db8::".parse::<IpAddr>().unwrap()
        );
    }
}
