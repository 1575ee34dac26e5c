//! The precompiled map (`cdn_geo::table`) against the per-query decision: for many addresses,
//! `RouteTable::lookup` + `Ranking::decide` must give exactly what `Locator::locate` +
//! `select::choose` give — the same chosen edges in the same order, the same rule, the same
//! client dependence and the same ranking — under several health states (all up, some down, a
//! home region down so backups apply, all down); and the block the table reports (the ECS
//! scope) must hold the network `locate` reports, be that network when the weighted spread
//! needs it, and be routed as one (its first and last addresses decide the same).
//!
//! Three sources of addresses: a synthetic database with a network map (every range boundary
//! and its neighbours), a property test over random maps, pools and addresses, and the real
//! GeoLite2 City database when present (range boundaries and random addresses; prints the build
//! figures).

mod common;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use cdn_geo::locate::{GeoDb, Locator, NetworkMap, RegionPoint};
use cdn_geo::model::{AllDown, Candidate, Health, Policy};
use cdn_geo::ranking::Eligibility;
use cdn_geo::select::{choose, spread_seed};
use cdn_geo::table::{Pool, RouteTable};
use proptest::prelude::*;

const NOW: u64 = 50_000;

fn regions() -> Vec<RegionPoint> {
    [
        ("us-east", 39.0, -77.5),
        ("us-west", 45.6, -121.2),
        ("eu-west", 53.3, -6.3),
        ("eu-central", 50.1, 8.7),
        ("ap-northeast", 35.7, 139.7),
        ("sa-east", -23.5, -46.6),
    ]
    .into_iter()
    .map(|(name, lat, lon)| RegionPoint {
        name: name.into(),
        lat,
        lon,
    })
    .collect()
}

fn edge(id: &str, region: &RegionPoint, weight: u32) -> Candidate {
    Candidate {
        id: id.into(),
        region: region.name.clone(),
        lat: region.lat,
        lon: region.lon,
        ipv4: vec![],
        ipv6: vec![],
        weight,
        health: Health::Unknown,
        draining: false,
        overloaded: false,
        disabled: false,
        last_seen_ms: None,
    }
}

/// Pools that exercise every part of ranking: one edge per region (no ties); several edges
/// per region with weights (tie groups, the spread), a disabled edge and ordered backups; two
/// answers with all-down `none`.
fn pools() -> Vec<(Vec<Candidate>, Policy)> {
    let r = regions();
    let plain = vec![
        edge("use1", &r[0], 1),
        edge("euw1", &r[2], 1),
        edge("apne1", &r[4], 1),
    ];
    let mut tied = vec![
        edge("use1", &r[0], 1),
        edge("use2", &r[0], 3),
        edge("usw1", &r[1], 1),
        edge("euw1", &r[2], 2),
        edge("euw2", &r[2], 2),
        edge("euw3", &r[2], 1),
        edge("euc1", &r[3], 1),
        edge("apne1", &r[4], 1),
        edge("apne2", &r[4], 1),
        edge("sae1", &r[5], 1),
    ];
    tied[6].disabled = true;
    let mut backups = HashMap::new();
    backups.insert(
        "eu-west".to_string(),
        vec!["us-east".to_string(), "eu-central".to_string()],
    );
    backups.insert("ap-northeast".to_string(), vec!["us-west".to_string()]);
    backups.insert("us-east".to_string(), vec!["sa-east".to_string()]);
    let one = Policy {
        answers: 1,
        all_down: AllDown::Nearest,
        backups: HashMap::new(),
        stale_after_ms: None,
    };
    let with_backups = Policy {
        answers: 1,
        all_down: AllDown::Nearest,
        backups: backups.clone(),
        stale_after_ms: None,
    };
    let two = Policy {
        answers: 2,
        all_down: AllDown::None,
        backups,
        stale_after_ms: None,
    };
    vec![
        (plain.clone(), one.clone()),
        (tied.clone(), with_backups),
        (tied, two),
        // The same as the first: shares its rankings.
        (plain, one),
    ]
}

/// Pools without tie groups (one edge per region): the table merges neighbouring networks
/// that rank alike into one block.
fn untied_pools() -> Vec<(Vec<Candidate>, Policy)> {
    let all = pools();
    let r = regions();
    let mut backups = HashMap::new();
    backups.insert("eu-west".to_string(), vec!["us-east".to_string()]);
    let spread = vec![
        edge("use1", &r[0], 1),
        edge("usw1", &r[1], 1),
        edge("euw1", &r[2], 2),
        edge("euc1", &r[3], 1),
        edge("apne1", &r[4], 1),
        edge("sae1", &r[5], 1),
    ];
    vec![
        all[0].clone(),
        (
            spread,
            Policy {
                answers: 2,
                all_down: AllDown::None,
                backups,
                stale_after_ms: None,
            },
        ),
    ]
}

/// A change of health applied to a pool before deciding.
type State = Box<dyn Fn(&mut [Candidate])>;

/// Health states: all up; every third edge down; draining and overloaded mixed; everything
/// down; each region down in turn (so backups and spill happen for clients everywhere).
fn states(regions: &[String]) -> Vec<State> {
    let mut out: Vec<State> = vec![
        Box::new(|e: &mut [Candidate]| e.iter_mut().for_each(|c| c.health = Health::Up)),
        Box::new(|e: &mut [Candidate]| {
            for (i, c) in e.iter_mut().enumerate() {
                c.health = if i % 3 == 0 { Health::Down } else { Health::Up };
            }
        }),
        Box::new(|e: &mut [Candidate]| {
            for (i, c) in e.iter_mut().enumerate() {
                c.draining = i % 4 == 1;
                c.overloaded = i % 4 == 2;
            }
        }),
        Box::new(|e: &mut [Candidate]| e.iter_mut().for_each(|c| c.health = Health::Down)),
    ];
    for r in regions.iter().cloned() {
        out.push(Box::new(move |e: &mut [Candidate]| {
            for c in e.iter_mut() {
                c.health = if c.region == r {
                    Health::Down
                } else {
                    Health::Up
                };
            }
        }));
    }
    out
}

/// Exactly what `choose` says, for `ip`, from the table; `Err` describes the first difference.
/// The table's block must contain the network `locate` reports, equal it when the spread
/// needs the network (tie groups), and be routed as one: the first and last addresses of the
/// block get the same decision too.
fn check(
    table: &RouteTable,
    locator: &Locator,
    pools: &[(Vec<Candidate>, Policy)],
    ip: IpAddr,
) -> Result<bool, String> {
    let Some(hit) = table.lookup(ip) else {
        if not_precompiled(ip) {
            return Ok(false);
        }
        return Err(format!("{ip}: not precompiled"));
    };
    let loc = locator.locate(ip);
    if !hit.network.contains(&loc.network) {
        return Err(format!(
            "{ip}: block {} does not hold {}",
            hit.network, loc.network
        ));
    }
    let ties = (0..pools.len()).any(|p| table.ranking(hit.combo, p).has_ties());
    if ties && hit.network != loc.network {
        return Err(format!(
            "{ip}: tie groups, but block {} ≠ {}",
            hit.network, loc.network
        ));
    }
    let mut others = Vec::new();
    if hit.network != loc.network {
        for x in [hit.network.network(), hit.network.broadcast()] {
            others.push(locator.locate(x));
        }
    }
    let mut chosen = Vec::new();
    for (p, (edges, policy)) in pools.iter().enumerate() {
        let ranking = table.ranking(hit.combo, p);
        let names: Vec<String> = edges.iter().map(|e| e.region.clone()).collect();
        for (s, state) in states(&names).iter().enumerate() {
            let mut live_edges = edges.clone();
            state(&mut live_edges);
            let live = Eligibility::new(&live_edges, NOW, policy);
            let picked = ranking.decide(
                &live_edges,
                &live,
                policy,
                || spread_seed(hit.network),
                &mut chosen,
            );
            let ranked = ranking.ranked(loc.lat, loc.lon, &live_edges, &live, &picked);
            let want = choose(&loc, &live_edges, NOW, policy);
            if chosen != want.chosen
                || picked.rule != want.rule
                || picked.client_dependent != want.client_dependent
                || ranked != want.ranked
            {
                return Err(format!(
                    "{ip} ({loc:?}) pool {p} state {s}: table {chosen:?} {:?} {} vs choose {:?} {:?} {}",
                    picked.rule, picked.client_dependent, want.chosen, want.rule, want.client_dependent
                ));
            }
            for other in &others {
                let there = choose(other, &live_edges, NOW, policy);
                if there.chosen != want.chosen || there.rule != want.rule {
                    return Err(format!(
                        "{ip}: block {} is not routed as one: {:?} at {} vs {:?}",
                        hit.network, there.chosen, other.network, want.chosen
                    ));
                }
            }
        }
    }
    Ok(true)
}

/// The IPv6 prefixes that alias the IPv4 tree in GeoLite2 (decided per query).
fn not_precompiled(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(_) => false,
        IpAddr::V6(a) => {
            let a = u128::from(a);
            a >> 32 == 0 || a >> 96 == 0x2001_0000 || a >> 112 == 0x2002
        }
    }
}

fn build(locator: &Locator, pools: &[(Vec<Candidate>, Policy)]) -> RouteTable {
    let p: Vec<Pool<'_>> = pools
        .iter()
        .map(|(candidates, policy)| Pool { candidates, policy })
        .collect();
    RouteTable::build(locator, &p).unwrap()
}

/// Addresses around every range start: the start, the address before it, and a few after.
fn around_boundaries(table: &RouteTable) -> Vec<IpAddr> {
    let mut out = Vec::new();
    for start in table.range_starts() {
        match start {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                for x in [a.wrapping_sub(1), a, a.wrapping_add(1), a | 0xff] {
                    out.push(IpAddr::V4(Ipv4Addr::from(x)));
                }
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                for x in [a.wrapping_sub(1), a, a.wrapping_add(1), a | 0xffff] {
                    out.push(IpAddr::V6(Ipv6Addr::from(x)));
                }
            }
        }
    }
    out
}

fn map() -> NetworkMap {
    NetworkMap::parse(
        "81.2.0.0/16 eu-west\n\
         81.2.69.128/25 us-east\n\
         10.0.0.0/8 40.0,-100.0\n\
         10.20.0.0/16 ap-northeast\n\
         1.0.16.5 sa-east\n\
         2001:db8:1::/48 eu-central\n\
         2002:101:1000::/40 us-west\n",
        &regions(),
    )
    .unwrap()
}

#[test]
fn synthetic_database_and_map_every_boundary() {
    let regions = regions();
    for (map, db, default, pools) in [
        (map(), true, regions[0].clone(), pools()),
        (NetworkMap::empty(), false, regions[2].clone(), pools()),
        (map(), false, regions[4].clone(), pools()),
        (map(), true, regions[0].clone(), untied_pools()),
        (map(), false, regions[3].clone(), untied_pools()),
    ] {
        let db = db.then(|| GeoDb::from_bytes(common::city_db(), "city.mmdb").unwrap());
        let locator = Locator::new(map, db, default);
        let table = build(&locator, &pools);
        let stats = table.stats();
        if pools.len() == 4 {
            // Rankings read neither `answers` nor `all_down`: pools 1 and 2 share theirs, and 3
            // is 0's.
            assert_eq!(stats.pools, (4, 2), "identical pools merged");
        }
        let mut addrs = around_boundaries(&table);
        addrs.extend(
            [
                "81.2.69.1",
                "81.2.69.200",
                "81.2.71.17",
                "1.0.16.5",
                "1.0.16.6",
                "2001:db8::1",
                "2001:db8:1::1",
                "::ffff:81.2.69.200",
                "203.0.113.9",
                "198.51.100.1",
                "192.0.2.1",
                "255.255.255.255",
                "0.0.0.0",
                "ffff::1",
            ]
            .into_iter()
            .map(|s| s.parse::<IpAddr>().unwrap()),
        );
        let mut s = 7u64;
        for _ in 0..2_000 {
            addrs.push(IpAddr::V4(Ipv4Addr::from(next(&mut s) as u32)));
            addrs.push(IpAddr::V6(Ipv6Addr::from(
                (u128::from(next(&mut s)) << 64) | u128::from(next(&mut s)),
            )));
        }
        let mut precompiled = 0;
        for ip in addrs {
            if check(&table, &locator, &pools, ip).unwrap_or_else(|e| panic!("{e}")) {
                precompiled += 1;
            }
        }
        assert!(precompiled > 1000, "{precompiled}");
    }
}

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

prop_compose! {
    /// A random network map: up to 12 entries in a small corner of each family (so they nest
    /// and touch), placed in a region or at coordinates.
    fn random_map()(entries in proptest::collection::vec(
        (any::<bool>(), any::<u16>(), 4u8..=28, proptest::option::of(0usize..6), -60.0f64..60.0, -170.0f64..170.0),
        0..12,
    )) -> NetworkMap {
        let regions = regions();
        let mut text = String::new();
        let mut seen = std::collections::HashSet::new();
        for (v6, bits, len, region, lat, lon) in entries {
            let net: ipnet::IpNet = if v6 {
                let a = 0x2001_0db8_u128 << 96 | u128::from(bits) << 80;
                ipnet::IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), 16 + len).unwrap().trunc()
            } else {
                let a = 0x0a00_0000_u32 | u32::from(bits) << 8;
                ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), len).unwrap().trunc()
            };
            if !seen.insert(net) {
                continue;
            }
            let place = match region {
                Some(r) => regions[r].name.clone(),
                None => format!("{lat},{lon}"),
            };
            text.push_str(&format!("{net} {place}\n"));
        }
        NetworkMap::parse(&text, &regions).unwrap()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_maps_and_addresses(map in random_map(), default in 0usize..6, with_db in any::<bool>(),
                                 tied in any::<bool>(),
                                 addrs in proptest::collection::vec((any::<bool>(), any::<u32>()), 1..64)) {
        let regions = regions();
        let db = with_db.then(|| GeoDb::from_bytes(common::city_db(), "city.mmdb").unwrap());
        let locator = Locator::new(map, db, regions[default].clone());
        let pools = if tied { pools() } else { untied_pools() };
        let table = build(&locator, &pools);
        let mut ips = around_boundaries(&table);
        for (v6, bits) in addrs {
            ips.push(if v6 {
                IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(bits) << 64))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | bits >> 8))
            });
        }
        for ip in ips {
            if let Err(e) = check(&table, &locator, &pools, ip) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}

/// The real GeoLite2 City: build figures, then every range boundary's neighbourhood (a sample
/// of them in debug builds) and random addresses.
#[test]
fn real_database() {
    let Some(path) = cdn_geo::testdata::geolite2_city() else {
        return;
    };
    let db = GeoDb::open(&path).unwrap();
    let regions = regions();
    let locator = Locator::new(map(), Some(db), regions[0].clone());
    for pools in [untied_pools(), pools()] {
        real_database_with(&locator, &pools);
    }
}

fn real_database_with(locator: &Locator, pools: &[(Vec<Candidate>, Policy)]) {
    let t = Instant::now();
    let table = build(locator, pools);
    let stats = table.stats();
    eprintln!(
        "GeoLite2 City table: {stats:?} (built in {:?})",
        t.elapsed()
    );
    assert!(stats.networks > 3_000_000, "{stats:?}");
    let boundaries = around_boundaries(&table);
    let step = if cfg!(debug_assertions) { 97 } else { 1 };
    let mut checked = 0usize;
    let mut precompiled = 0usize;
    for ip in boundaries.iter().step_by(step) {
        checked += 1;
        precompiled +=
            usize::from(check(&table, locator, pools, *ip).unwrap_or_else(|e| panic!("{e}")));
    }
    let mut s = 17u64;
    let random = if cfg!(debug_assertions) {
        20_000
    } else {
        400_000
    };
    for _ in 0..random {
        let v4 = IpAddr::V4(Ipv4Addr::from(next(&mut s) as u32));
        // Global unicast, where the database has its IPv6 networks.
        let v6 = IpAddr::V6(Ipv6Addr::from(
            (u128::from(next(&mut s)) << 64 | u128::from(next(&mut s))) >> 3 | 1 << 125,
        ));
        for ip in [v4, v6] {
            checked += 1;
            precompiled +=
                usize::from(check(&table, locator, pools, ip).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    eprintln!("{checked} addresses compared, {precompiled} precompiled, the rest aliases");
    assert!(precompiled * 10 > checked * 9);
}
