//! Build the precompiled geo map (`cdn_geo::table`) for a MaxMind database and print what it
//! costs: build time, table bytes, the process's resident memory before, after and at peak,
//! and the lookup time of random addresses.
//!
//! ```sh
//! cargo run --release -p cdn-geo --example geo_table -- [DB] [EDGES_PER_REGION]
//! ```
//!
//! `DB` defaults to the GeoLite2 City test database (`scripts/fetch-geolite2.sh`). The pools
//! are the DNS benchmark's (us-east, eu-west, ap-northeast; one edge each, or
//! `EDGES_PER_REGION` of different weights, which makes tie groups) for A and AAAA of two
//! services.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use cdn_geo::locate::{GeoDb, Locator, NetworkMap, RegionPoint};
use cdn_geo::model::{AllDown, Candidate, Health, Policy};
use cdn_geo::table::{Pool, RouteTable};

fn status(field: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .map(|l| l[field.len()..].trim().to_string())
        .unwrap_or_else(|| "?".into())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(cdn_geo::testdata::geolite2_city_path);
    let per_region: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(1);
    let regions: Vec<RegionPoint> = [
        ("us-east", 39.0, -77.5),
        ("eu-west", 53.3, -6.3),
        ("ap-northeast", 35.7, 139.7),
    ]
    .into_iter()
    .map(|(name, lat, lon)| RegionPoint {
        name: name.into(),
        lat,
        lon,
    })
    .collect();
    let edges: Vec<Candidate> = regions
        .iter()
        .flat_map(|r| {
            (0..per_region).map(move |i| Candidate {
                id: format!("{}-{i}", r.name),
                region: r.name.clone(),
                lat: r.lat,
                lon: r.lon,
                ipv4: vec![],
                ipv6: vec![],
                weight: 1 + i as u32,
                health: Health::Unknown,
                draining: false,
                overloaded: false,
                disabled: false,
                last_seen_ms: None,
            })
        })
        .collect();
    let policy = Policy {
        answers: 1,
        all_down: AllDown::Nearest,
        backups: HashMap::new(),
        stale_after_ms: None,
    };
    println!("before: VmRSS {}", status("VmRSS:"));
    let t = Instant::now();
    let db = GeoDb::open(&path).expect("open the database");
    let locator = Locator::new(NetworkMap::empty(), Some(db), regions[0].clone());
    println!(
        "database read in {:?}: VmRSS {}",
        t.elapsed(),
        status("VmRSS:")
    );
    let pools: Vec<Pool<'_>> = (0..4)
        .map(|_| Pool {
            candidates: &edges,
            policy: &policy,
        })
        .collect();
    let table = RouteTable::build(&locator, &pools).expect("build");
    let s = table.stats();
    println!("{s:#?}");
    println!(
        "after build: VmRSS {}, peak VmHWM {}",
        status("VmRSS:"),
        status("VmHWM:")
    );
    let mut x = 0x1234_5678_9abc_def0u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let addrs: Vec<IpAddr> = (0..1_000_000)
        .map(|i| {
            if i % 7 == 0 {
                IpAddr::V6(Ipv6Addr::from(
                    (u128::from(next()) << 64 | u128::from(next())) >> 3 | 1 << 125,
                ))
            } else {
                IpAddr::V4(Ipv4Addr::from(next() as u32))
            }
        })
        .collect();
    let t = Instant::now();
    let mut found = 0usize;
    for a in &addrs {
        found += usize::from(table.lookup(*a).is_some());
    }
    println!(
        "{} random lookups (1 in 7 IPv6): {:.0} ns each, {found} precompiled",
        addrs.len(),
        t.elapsed().as_nanos() as f64 / addrs.len() as f64
    );
}
