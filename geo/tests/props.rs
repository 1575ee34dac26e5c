//! Property tests for selection, ECS scope and the network map.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

use cdn_geo::ecs::{ecs_scope, ecs_subnet};
use cdn_geo::locate::{NetworkMap, Place, RegionPoint};
use cdn_geo::model::{
    AllDown, Candidate, ClientLocation, Decision, Exclusion, Health, LocationSource, Policy, Rule,
};
use cdn_geo::select::{choose, exclusion};
use ipnet::{IpNet, Ipv4Net};
use proptest::prelude::*;

const REGIONS: [(&str, f64, f64); 5] = [
    ("us-east", 39.0, -77.5),
    ("eu-west", 53.3, -6.3),
    ("ap-northeast", 35.7, 139.7),
    ("sa-east", -23.5, -46.6),
    ("af-south", -33.9, 18.4),
];

fn health() -> impl Strategy<Value = Health> {
    prop_oneof![Just(Health::Up), Just(Health::Down), Just(Health::Unknown)]
}

prop_compose! {
    fn candidate(id: usize)(region in 0..REGIONS.len(), weight in 0u32..5, health in health(),
                            draining in proptest::bool::weighted(0.15), overloaded in proptest::bool::weighted(0.15),
                            disabled in proptest::bool::weighted(0.1), seen in proptest::option::of(0u64..20_000))
                           -> Candidate {
        let (name, lat, lon) = REGIONS[region];
        Candidate {
            id: format!("e{id}"),
            region: name.to_string(),
            lat, lon,
            ipv4: vec![Ipv4Addr::new(192, 0, 2, id as u8)],
            ipv6: vec![],
            weight, health, draining, overloaded, disabled,
            last_seen_ms: seen,
        }
    }
}

fn candidates() -> impl Strategy<Value = Vec<Candidate>> {
    (0usize..16).prop_flat_map(|n| (0..n).map(candidate).collect::<Vec<_>>())
}

prop_compose! {
    fn client()(lat in -90.0f64..90.0, lon in -180.0f64..180.0, addr in any::<u32>(), len in 0u8..=32,
                region in proptest::option::of(0..REGIONS.len())) -> ClientLocation {
        ClientLocation {
            lat, lon, country: None, continent: None,
            region: region.map(|r| REGIONS[r].0.to_string()),
            network: IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc()),
            source: LocationSource::GeoIp,
        }
    }
}

prop_compose! {
    fn policy()(answers in 1usize..4, none in any::<bool>(), stale in proptest::option::of(1_000u64..30_000),
                backups in proptest::collection::vec((0..REGIONS.len(), proptest::collection::vec(0..REGIONS.len(), 0..4)), 0..4))
                -> Policy {
        Policy {
            answers,
            all_down: if none { AllDown::None } else { AllDown::Nearest },
            backups: backups.into_iter()
                .map(|(r, list)| (REGIONS[r].0.to_string(), list.into_iter().map(|b| REGIONS[b].0.to_string()).collect()))
                .collect::<HashMap<_, _>>(),
            stale_after_ms: stale,
        }
    }
}

fn metres(d: f64) -> u64 {
    (d * 1000.0).round() as u64
}

fn check(
    client: &ClientLocation,
    edges: &[Candidate],
    now: u64,
    policy: &Policy,
    d: &Decision,
) -> Result<(), TestCaseError> {
    let n = edges.len();
    // ranked is a permutation of the candidates, with correct exclusions
    let mut seen = vec![false; n];
    for r in &d.ranked {
        prop_assert!(r.index < n && !seen[r.index]);
        seen[r.index] = true;
        prop_assert_eq!(r.excluded, exclusion(&edges[r.index], now, policy));
    }
    prop_assert_eq!(d.ranked.len(), n);
    // chosen ⊆ candidates, no repeats, at most `answers`
    let mut picked = vec![false; n];
    for &i in &d.chosen {
        prop_assert!(i < n && !picked[i]);
        picked[i] = true;
    }
    prop_assert!(d.chosen.len() <= policy.answers);
    let eligible: Vec<usize> = (0..n)
        .filter(|&i| exclusion(&edges[i], now, policy).is_none())
        .collect();
    if !eligible.is_empty() {
        // a usable edge exists ⇒ nothing unusable is chosen, and the answer is as full as it can be
        for &i in &d.chosen {
            prop_assert!(
                exclusion(&edges[i], now, policy).is_none(),
                "chose excluded {}",
                i
            );
            prop_assert!(edges[i].health != Health::Down);
        }
        prop_assert_eq!(d.chosen.len(), policy.answers.min(eligible.len()));
        prop_assert!(matches!(d.rule, Rule::Nearest | Rule::Backup));
        prop_assert_eq!(d.client_dependent, eligible.len() > policy.answers);
    } else {
        prop_assert!(matches!(
            d.rule,
            Rule::AllDownNearest | Rule::AllDownNone | Rule::NoCandidates
        ));
    }
    // disabled edges are never answered
    for &i in &d.chosen {
        prop_assert!(!edges[i].disabled);
    }
    // ranks sorted by distance outside the backup part: everything when no backups are
    // configured, else at least the edges of regions that no backup rule mentions
    let sorted = |rs: &[&cdn_geo::model::Ranked]| {
        rs.windows(2)
            .all(|w| metres(w[0].distance_km) <= metres(w[1].distance_km))
    };
    let all: Vec<_> = d.ranked.iter().collect();
    if policy.backups.is_empty() {
        prop_assert!(sorted(&all), "unsorted ranking without backups");
        prop_assert!(d.rule != Rule::Backup);
    }
    let mentioned: std::collections::HashSet<&str> = policy
        .backups
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.as_str()).chain(v.iter().map(String::as_str)))
        .collect();
    let rest: Vec<_> = d
        .ranked
        .iter()
        .filter(|r| !mentioned.contains(edges[r.index].region.as_str()))
        .collect();
    prop_assert!(sorted(&rest), "non-backup part unsorted");
    if d.rule == Rule::Backup {
        // the first answer of a backup decision comes from a configured backup region
        let first = &edges[d.chosen[0]];
        prop_assert!(policy
            .backups
            .values()
            .any(|list| list.contains(&first.region)));
    }
    // chosen follow rank order between tie groups
    let pos: HashMap<usize, usize> = d
        .ranked
        .iter()
        .enumerate()
        .map(|(p, r)| (r.index, p))
        .collect();
    for w in d.chosen.windows(2) {
        let (a, b) = (&d.ranked[pos[&w[0]]], &d.ranked[pos[&w[1]]]);
        if pos[&w[0]] > pos[&w[1]] {
            prop_assert_eq!(
                metres(a.distance_km),
                metres(b.distance_km),
                "out of rank order across groups"
            );
        }
    }
    // same input, same output
    prop_assert_eq!(d, &choose(client, edges, now, policy));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn choose_invariants(edges in candidates(), client in client(), policy in policy(), now in 0u64..40_000) {
        let d = choose(&client, &edges, now, &policy);
        check(&client, &edges, now, &policy, &d)?;
    }

    #[test]
    fn scope_never_exceeds_source(edges in candidates(), client in client(), policy in policy(),
                                  source in 0u8..=32) {
        let d = choose(&client, &edges, 0, &policy);
        let scope = ecs_scope(&client, &d, source);
        prop_assert!(scope <= source);
        prop_assert!(scope <= client.network.prefix_len());
        if !d.client_dependent {
            prop_assert_eq!(scope, 0);
        }
    }

    #[test]
    fn ecs_subnet_accepts_exactly_truncated(addr in any::<u32>(), len in 0u8..=40) {
        let a = IpAddr::V4(Ipv4Addr::from(addr));
        match ecs_subnet(a, len) {
            Ok(net) => {
                prop_assert!(len <= 32);
                prop_assert_eq!(net.addr(), a);
                prop_assert_eq!(net.trunc(), net);
            }
            Err(_) => prop_assert!(len > 32 || IpNet::new(a, len).unwrap().trunc().addr() != a),
        }
    }

    /// Network map lookups agree with a linear longest-prefix scan, and the reported network
    /// is inside the entry, contains the address, and overlaps no more specific entry.
    #[test]
    fn network_map_matches_linear_scan(
        raw in proptest::collection::vec((any::<u32>(), 0u8..=32, 0usize..2), 0..24),
        probes in proptest::collection::vec(any::<u32>(), 64),
    ) {
        let regions = vec![
            RegionPoint { name: "a".into(), lat: 1.0, lon: 1.0 },
            RegionPoint { name: "b".into(), lat: 2.0, lon: 2.0 },
        ];
        let mut entries: Vec<(IpNet, Place)> = Vec::new();
        for (addr, len, r) in raw {
            let net = IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap().trunc());
            if entries.iter().all(|(n, _)| *n != net) {
                entries.push((net, Place::Region(regions[r].name.clone())));
            }
        }
        let map = NetworkMap::new(entries.clone(), &regions).unwrap();
        // probe random addresses and each entry's edges
        let mut addrs: Vec<u32> = probes;
        for (n, _) in &entries {
            if let IpNet::V4(n) = n {
                addrs.push(u32::from(n.network()));
                addrs.push(u32::from(n.broadcast()));
                addrs.push(u32::from(n.network()).wrapping_sub(1));
                addrs.push(u32::from(n.broadcast()).wrapping_add(1));
            }
        }
        for x in addrs {
            let a = IpAddr::V4(Ipv4Addr::from(x));
            let want = entries.iter().filter(|(n, _)| n.contains(&a)).max_by_key(|(n, _)| n.prefix_len());
            match (map.lookup_or_gap(a), want) {
                (Ok(m), Some((w, _))) => {
                    prop_assert_eq!(m.entry.prefix, *w);
                    prop_assert!(m.network.contains(&a) && w.contains(&m.network));
                    for (e, _) in &entries {
                        if e.prefix_len() > w.prefix_len() {
                            prop_assert!(!m.network.contains(e));
                        }
                    }
                }
                (Err(gap), None) => {
                    prop_assert!(gap.contains(&a));
                    for (e, _) in &entries {
                        prop_assert!(!gap.contains(e) && !e.contains(&gap));
                    }
                    // maximal: the next larger block would overlap an entry
                    if gap.prefix_len() > 0 {
                        let parent = gap.supernet().unwrap();
                        prop_assert!(entries.iter().any(|(e, _)| parent.contains(e) || e.contains(&parent)));
                    }
                }
                (got, want) => prop_assert!(false, "{}: {:?} vs {:?}", a, got, want),
            }
        }
    }
}

#[test]
fn stale_only_applies_to_up() {
    let mut p = Policy {
        answers: 1,
        all_down: AllDown::Nearest,
        backups: HashMap::new(),
        stale_after_ms: Some(1_000),
    };
    let mut e = Candidate {
        id: "x".into(),
        region: "r".into(),
        lat: 0.0,
        lon: 0.0,
        ipv4: vec![],
        ipv6: vec![],
        weight: 1,
        health: Health::Up,
        draining: false,
        overloaded: false,
        disabled: false,
        last_seen_ms: Some(0),
    };
    assert_eq!(exclusion(&e, 5_000, &p), Some(Exclusion::Stale));
    e.last_seen_ms = None;
    assert_eq!(exclusion(&e, 5_000, &p), None);
    p.stale_after_ms = None;
    e.last_seen_ms = Some(0);
    assert_eq!(exclusion(&e, u64::MAX, &p), None);
}
