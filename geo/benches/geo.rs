//! Hot-path benchmarks: locate (real GeoLite2-City DB when present, network map), choose over
//! 3/10/100/1000 edges, and locate + choose for 10 edges.
//!
//! `cargo bench -p cdn-geo` (figures in docs/bench/geo.md). The real database comes from
//! `scripts/fetch-geolite2.sh` (or `$CDN_GEOLITE2_CITY`); without it the real-DB benchmarks
//! are skipped with a message.

use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use cdn_geo::locate::{GeoDb, Locator, NetworkMap, Place, RegionPoint};
use cdn_geo::model::{AllDown, Candidate, ClientLocation, Health, LocationSource, Policy};
use cdn_geo::select::choose;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ipnet::{IpNet, Ipv4Net};

/// Deterministic pseudo-random numbers (no rand dependency).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 16
    }
    fn unit(&mut self) -> f64 {
        (self.next() % 1_000_000) as f64 / 1_000_000.0
    }
}

fn addresses(n: usize) -> Vec<IpAddr> {
    let mut rng = Lcg(7);
    (0..n)
        .map(|_| IpAddr::V4(Ipv4Addr::from((rng.next() as u32) | 0x0100_0000)))
        .collect()
}

fn db_path() -> Option<PathBuf> {
    cdn_geo::testdata::geolite2_city()
}

fn regions() -> Vec<RegionPoint> {
    vec![
        RegionPoint {
            name: "us-east".into(),
            lat: 39.0,
            lon: -77.5,
        },
        RegionPoint {
            name: "eu-west".into(),
            lat: 53.3,
            lon: -6.3,
        },
        RegionPoint {
            name: "ap-northeast".into(),
            lat: 35.7,
            lon: 139.7,
        },
    ]
}

/// A map of 1000 random /16–/24 prefixes.
fn network_map() -> NetworkMap {
    let regions = regions();
    let mut rng = Lcg(11);
    let mut entries: Vec<(IpNet, Place)> = Vec::new();
    while entries.len() < 1000 {
        let len = 16 + (rng.next() % 9) as u8;
        let net = IpNet::V4(
            Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), len)
                .unwrap()
                .trunc(),
        );
        if entries.iter().all(|(n, _)| *n != net) {
            let r = &regions[(rng.next() % 3) as usize];
            entries.push((net, Place::Region(r.name.clone())));
        }
    }
    NetworkMap::new(entries, &regions).unwrap()
}

fn edges(n: usize) -> Vec<Candidate> {
    let mut rng = Lcg(n as u64);
    let sites = n.div_ceil(2).max(1);
    let coords: Vec<(f64, f64)> = (0..sites)
        .map(|_| (rng.unit() * 140.0 - 60.0, rng.unit() * 360.0 - 180.0))
        .collect();
    (0..n)
        .map(|i| {
            let (lat, lon) = coords[i % sites];
            Candidate {
                id: format!("edge-{i}"),
                region: format!("region-{}", i % sites),
                lat,
                lon,
                ipv4: vec![Ipv4Addr::new(192, 0, 2, (i % 250) as u8)],
                ipv6: vec![],
                weight: 1 + (i % 3) as u32,
                health: if i % 10 == 3 {
                    Health::Down
                } else {
                    Health::Up
                },
                draining: false,
                overloaded: i % 17 == 5,
                disabled: false,
                last_seen_ms: Some(1_000),
            }
        })
        .collect()
}

fn policy() -> Policy {
    Policy {
        answers: 2,
        all_down: AllDown::Nearest,
        backups: HashMap::new(),
        stale_after_ms: Some(10_000),
    }
}

fn clients(n: usize) -> Vec<ClientLocation> {
    let mut rng = Lcg(3);
    (0..n)
        .map(|_| ClientLocation {
            lat: rng.unit() * 140.0 - 60.0,
            lon: rng.unit() * 360.0 - 180.0,
            country: Some("US".into()),
            continent: Some("NA".into()),
            region: None,
            network: IpNet::V4(
                Ipv4Net::new(Ipv4Addr::from(rng.next() as u32), 24)
                    .unwrap()
                    .trunc(),
            ),
            source: LocationSource::GeoIp,
        })
        .collect()
}

/// Addresses per benchmark loop: `WARM` cycle through a set that fits the lookup caches (a
/// resolver population that repeats), `SPREAD` through 1 Mi distinct addresses (mostly cache
/// misses: the cold path plus cache upkeep).
const WARM: usize = 4096;
const SPREAD: usize = 1 << 20;

fn bench_locate(c: &mut Criterion) {
    let warm = addresses(WARM);
    let spread = addresses(SPREAD);
    let mut group = c.benchmark_group("locate");
    let map_locator = Locator::new(network_map(), None, regions()[0].clone());
    let mut i = 0;
    group.bench_function("network_map_1000", |b| {
        b.iter(|| {
            i = (i + 1) % WARM;
            black_box(map_locator.locate(black_box(warm[i])))
        })
    });
    if let Some(path) = db_path() {
        let db = GeoDb::open(&path).unwrap();
        let mut i = 0;
        group.bench_function("real_db_uncached", |b| {
            b.iter(|| {
                i = (i + 1) % WARM;
                black_box(
                    db.lookup_uncached(black_box(warm[i]))
                        .ok()
                        .map(|l| l.network),
                )
            })
        });
        let locator = Locator::new(network_map(), Some(db), regions()[0].clone());
        for (name, addrs) in [("real_db_warm", &warm), ("real_db_spread", &spread)] {
            let mut i = 0;
            group.bench_function(name, |b| {
                b.iter(|| {
                    i = (i + 1) % addrs.len();
                    black_box(locator.locate(black_box(addrs[i])))
                })
            });
        }
    }
    group.finish();
}

fn bench_choose(c: &mut Criterion) {
    let clients = clients(WARM);
    let policy = policy();
    let mut group = c.benchmark_group("choose");
    for n in [3usize, 10, 100, 1000] {
        let edges = edges(n);
        let mut i = 0;
        group.bench_with_input(BenchmarkId::from_parameter(n), &edges, |b, edges| {
            b.iter(|| {
                i = (i + 1) % clients.len();
                black_box(choose(black_box(&clients[i]), edges, 2_000, &policy))
            })
        });
    }
    group.finish();
}

fn bench_locate_choose(c: &mut Criterion) {
    let warm = addresses(WARM);
    let spread = addresses(SPREAD);
    let edges = edges(10);
    let policy = policy();
    let mut group = c.benchmark_group("locate_choose_10");
    let db = db_path().map(|p| GeoDb::open(p).unwrap());
    let prefix = if db.is_some() {
        "real_db"
    } else {
        "network_map_only"
    };
    let locator = Locator::new(network_map(), db, regions()[0].clone());
    for (name, addrs) in [("warm", &warm), ("spread", &spread)] {
        let mut i = 0;
        group.bench_function(format!("{prefix}_{name}"), |b| {
            b.iter(|| {
                i = (i + 1) % addrs.len();
                let client = locator.locate(black_box(addrs[i]));
                black_box(choose(&client, &edges, 2_000, &policy))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_locate, bench_choose, bench_locate_choose);
criterion_main!(benches);
