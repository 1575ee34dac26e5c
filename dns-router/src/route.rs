//! Step 3 of a query for a CDN hostname: which edges answer. [`client_key`] picks the address
//! that locates the client (RFC 7871 and the service's ECS policy); the snapshot's precompiled
//! geo map ([`cdn_geo::table::RouteTable`], built with the snapshot) gives the network that
//! decides and the ranked edge list of the service for it; [`pick`] applies the live
//! health ([`candidates`], [`Eligibility`]) and picks the first eligible edges; [`answer_of`]
//! turns the decision into the addresses to write. Where the map holds nothing (the IPv6
//! prefixes that alias IPv4 inside the database, or a map that could not be built) the client is
//! located and ranked per query instead ([`decide_located`]: `cdn_geo::locate` and
//! `cdn_geo::select::choose`), which gives the same answers, only slower.
//!
//! Every path runs this: the UDP threads and TCP connections through their answer interner
//! ([`crate::answer_cache`]: [`pick`] then [`answer_of`] once per distinct answer), explain and
//! the services view through [`decide`], which also keeps the ranking with distances for display.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use cdn_geo::model::{Candidate, ClientLocation, Decision, Rule};
use cdn_geo::ranking::{Eligibility, Picked, Ranking};
use cdn_geo::select::spread_seed;
use cdn_geo::table::{Hit, RouteTable};
use cdn_shared::config::router::EcsMode;

use crate::health::HealthView;
use crate::snapshot::{pool, Service, Snapshot};
use crate::wire::{rtype, Ecs};

/// How the client was located for one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// The address looked up (ECS address truncated to the honoured prefix, or the resolver).
    pub addr: IpAddr,
    /// The ECS source prefix used, `None` when the resolver's address decided (in the family
    /// of `addr`: for an IPv4-mapped IPv6 ECS address, the IPv4 part's length).
    pub ecs_prefix: Option<u8>,
    /// Added to the scope echoed: 96 when an IPv4-mapped IPv6 ECS address was located as IPv4
    /// (the scope is then an IPv6 length again), else 0.
    pub scope_offset: u8,
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

/// Everything [`decide`] found out.
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
    /// Whether the precompiled map decided (false: located and ranked per query).
    pub precompiled: bool,
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
            // An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, source ≥ 96) is an IPv4 client:
            // located as IPv4 with `source - 96` bits, under the IPv4 cap (geo::ecs).
            let mapped = match e.addr {
                IpAddr::V6(a) if e.family == 2 && e.source_prefix > 96 => {
                    a.to_ipv4_mapped().map(IpAddr::V4)
                }
                _ => None,
            };
            if let Some(v4) = mapped {
                let source = e.source_prefix - 96;
                return ClientKey {
                    addr: truncate(v4, source.min(service.ecs_max_v4)),
                    ecs_prefix: Some(source),
                    scope_offset: 96,
                };
            }
            let max = if e.family == 1 {
                service.ecs_max_v4
            } else {
                service.ecs_max_v6
            };
            let used = e.source_prefix.min(max);
            ClientKey {
                addr: truncate(e.addr, used),
                ecs_prefix: Some(e.source_prefix),
                scope_offset: 0,
            }
        }
        _ => ClientKey {
            addr: resolver,
            ecs_prefix: None,
            scope_offset: 0,
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
    crate::snapshot::candidates_of(&snap.edges, service, rtype, view)
}

/// The ECS scope of an answer: 0 without ECS or when every client gets the same edges, else
/// the deciding network's length capped by the source prefix (`cdn_geo::ecs::ecs_scope`).
pub fn scope(key: &ClientKey, network_len: u8, client_dependent: bool) -> u8 {
    match key.ecs_prefix {
        Some(p) if client_dependent => network_len.min(p).saturating_add(key.scope_offset),
        _ => 0,
    }
}

/// The live state of one pool (a service's candidates for one record type), the same for every
/// client under one health view: the UDP threads build it once per health generation.
#[derive(Debug, Clone)]
pub struct PoolState {
    /// Candidates with their live health.
    pub candidates: Arc<Vec<Candidate>>,
    /// Their exclusions.
    pub eligibility: Eligibility,
}

impl PoolState {
    /// The state of service `svc`'s pool for `rtype` under `view` at `now_ms`.
    pub fn new(snap: &Snapshot, svc: usize, rtype: u16, view: &HealthView, now_ms: u64) -> Self {
        let service = &snap.services[svc];
        let candidates = candidates(snap, service, rtype, view);
        let eligibility = Eligibility::new(&candidates, now_ms, &service.policy);
        PoolState {
            candidates: Arc::new(candidates),
            eligibility,
        }
    }
}

/// The precompiled decision for `key`: the first eligible edges of the service's ranked list
/// for the client's network, written to `chosen`; with the rule, and the ECS scope. `None`
/// where the map holds nothing for the address (decide with [`decide_located`] there).
pub fn pick(
    snap: &Snapshot,
    svc: usize,
    rtype: u16,
    key: &ClientKey,
    state: &PoolState,
    chosen: &mut Vec<usize>,
) -> Option<(Picked, u8)> {
    let table = snap.table.get()?;
    let hit = table.lookup(key.addr)?;
    let (picked, _) = pick_hit(snap, table, svc, rtype, &hit, state, chosen);
    Some((
        picked,
        scope(key, hit.network.prefix_len(), picked.client_dependent),
    ))
}

fn pick_hit<'t>(
    snap: &Snapshot,
    table: &'t RouteTable,
    svc: usize,
    rtype: u16,
    hit: &Hit,
    state: &PoolState,
    chosen: &mut Vec<usize>,
) -> (Picked, &'t Ranking) {
    let ranking = table.ranking(hit.combo, pool(svc, rtype));
    let network = hit.network;
    let picked = ranking.decide(
        &state.candidates,
        &state.eligibility,
        &snap.services[svc].policy,
        || spread_seed(network),
        chosen,
    );
    (picked, ranking)
}

/// The decision for one service and record type, with everything found on the way (what
/// explain shows): from the precompiled map when it holds the address (the location is looked
/// up too, for display), else located and ranked per query.
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
    let state = PoolState::new(snap, svc, rtype, view, now_ms);
    let found = snap
        .table
        .get()
        .and_then(|t| Some((t, t.lookup(key.addr)?)));
    match found {
        Some((table, hit)) => {
            let mut chosen = Vec::new();
            let (picked, ranking) = pick_hit(snap, table, svc, rtype, &hit, &state, &mut chosen);
            let decision = ranking.decision(
                location.lat,
                location.lon,
                &state.candidates,
                &state.eligibility,
                &picked,
                chosen,
            );
            Decided {
                key,
                scope: scope(&key, hit.network.prefix_len(), picked.client_dependent),
                location,
                candidates: state.candidates,
                decision,
                precompiled: true,
            }
        }
        None => decide_located(snap, svc, key, location, state.candidates, now_ms),
    }
}

/// The decision for a client placed without an address (the services view places one client
/// per region): ranked on the spot with the same code the precompiled map uses.
pub fn decide_placed(
    snap: &Snapshot,
    view: &HealthView,
    svc: usize,
    rtype: u16,
    location: ClientLocation,
    now_ms: u64,
) -> Decided {
    let service = &snap.services[svc];
    let key = ClientKey {
        addr: location.network.network(),
        ecs_prefix: None,
        scope_offset: 0,
    };
    let state = PoolState::new(snap, svc, rtype, view, now_ms);
    let ranking = Ranking::build(
        location.lat,
        location.lon,
        location.region.as_deref(),
        &state.candidates,
        &service.policy,
    );
    let mut chosen = Vec::new();
    let network = location.network;
    let picked = ranking.decide(
        &state.candidates,
        &state.eligibility,
        &service.policy,
        || spread_seed(network),
        &mut chosen,
    );
    let decision = ranking.decision(
        location.lat,
        location.lon,
        &state.candidates,
        &state.eligibility,
        &picked,
        chosen,
    );
    Decided {
        key,
        location: Arc::new(location),
        candidates: state.candidates,
        decision,
        scope: 0,
        precompiled: false,
    }
}

/// Locate and rank per query (where the precompiled map holds nothing): `cdn_geo::select::choose`
/// over `candidates` built from the health view.
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
    let scope = scope(
        &key,
        location.network.prefix_len(),
        decision.client_dependent,
    );
    Decided {
        key,
        location,
        candidates,
        decision,
        scope,
        precompiled: false,
    }
}

/// Turn a decision into the records to write.
pub fn answer_of(snap: &Snapshot, svc: usize, rtype: u16, d: &Decided) -> ServiceAnswer {
    answer_from(
        snap,
        svc,
        rtype,
        &d.candidates,
        &d.decision.chosen,
        d.decision.rule,
        d.scope,
    )
}

/// The records to write for the `chosen` candidates (indexes into `candidates`).
pub fn answer_from(
    snap: &Snapshot,
    svc: usize,
    rtype: u16,
    candidates: &[Candidate],
    chosen: &[usize],
    rule: Rule,
    scope: u8,
) -> ServiceAnswer {
    let service = &snap.services[svc];
    let mut addrs = Vec::new();
    let mut edges = Vec::new();
    for &i in chosen {
        let c = &candidates[i];
        edges.push(c.id.clone());
        if rtype == rtype::AAAA {
            addrs.extend(c.ipv6.iter().map(|a| IpAddr::V6(*a)));
        } else {
            addrs.extend(c.ipv4.iter().map(|a| IpAddr::V4(*a)));
        }
    }
    let region = chosen
        .first()
        .and_then(|&i| snap.regions.iter().position(|r| *r == candidates[i].region));
    ServiceAnswer {
        rtype,
        ttl: service.ttl,
        addrs,
        scope,
        rule,
        region,
        edges,
    }
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
