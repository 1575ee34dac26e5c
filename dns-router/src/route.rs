//! Step 3 of a query for a CDN hostname: which edges answer. [`decide`] takes the service,
//! the record type, the resolver address and the ECS option, picks the address that locates
//! the client ([`client_key`]: RFC 7871 and the service's ECS policy), locates it
//! (`cdn_geo::locate`), builds the candidates from the live health view ([`candidates`]) and
//! runs `cdn_geo::select::choose` ([`decide_located`]); [`answer_of`] turns the decision into
//! the addresses to write. The question-level decision ([`crate::decide`]) calls these for
//! every service it meets, on every path: the UDP threads through their answer cache (which
//! stores the results and calls [`decide_located`] on a miss), TCP, explain and the services
//! view.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use cdn_geo::model::{Candidate, ClientLocation, Decision, Health, Rule};
use cdn_shared::config::router::EcsMode;

use crate::health::HealthView;
use crate::snapshot::{Service, Snapshot};
use crate::wire::{rtype, Ecs};

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

/// Locate the client and choose edges for one service and record type: what every path runs
/// when a question reaches a service (the UDP threads through [`decide_located`], having
/// cached the location and candidates).
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
    decide_located(snap, svc, key, location, candidates, now_ms)
}

/// [`decide`] for a client already located, over `candidates` already built from
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

/// Turn a decision into the records to write.
pub fn answer_of(snap: &Snapshot, svc: usize, rtype: u16, d: &Decided) -> ServiceAnswer {
    let service = &snap.services[svc];
    let mut addrs = Vec::new();
    let mut edges = Vec::new();
    for &i in &d.decision.chosen {
        let c = &d.candidates[i];
        edges.push(c.id.clone());
        if rtype == rtype::AAAA {
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
