//! Locating against MaxMind fixtures built in the test, plus reload behaviour.

mod common;

use std::net::IpAddr;

use cdn_geo::locate::{DbKind, GeoDb, Locator, NetworkMap, RegionPoint};
use cdn_geo::model::LocationSource;
use cdn_geo::GeoError;
use common::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
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
    ]
}

#[test]
fn city_db_lookups() {
    let db = GeoDb::from_bytes(city_db(), "city.mmdb").unwrap();
    assert_eq!(db.kind(), DbKind::City);
    assert_eq!(db.db_type(), "Test-City");

    let found = db.lookup(ip("81.2.69.142")).unwrap();
    assert_eq!(found.network, net("81.2.69.0/24"));
    let hit = found.hit.unwrap();
    assert_eq!((hit.lat, hit.lon), (51.51, -0.09));
    assert_eq!(
        (hit.country, hit.continent, hit.centroid),
        (Some("GB"), Some("EU"), false)
    );

    // IPv4-mapped IPv6 is IPv4
    let found = db.lookup(ip("::ffff:81.2.69.142")).unwrap();
    assert_eq!(found.network, net("81.2.69.0/24"));

    let found = db.lookup(ip("2001:db8:1::1")).unwrap();
    assert_eq!(found.network, net("2001:db8::/32"));
    assert_eq!(found.hit.unwrap().country, Some("US"));

    // country-only record → country centroid
    let hit = db.lookup(ip("192.0.2.1")).unwrap().hit.unwrap();
    assert!(hit.centroid);
    assert_eq!(hit.country, Some("JP"));
    assert!((hit.lat - 36.2).abs() < 1.0 && (hit.lon - 138.3).abs() < 1.0);

    // continent-only record → continent centroid
    let hit = db.lookup(ip("198.51.100.1")).unwrap().hit.unwrap();
    assert!(hit.centroid && hit.country.is_none() && hit.continent == Some("OC"));

    // a record with no location data, and an address with no record
    let found = db.lookup(ip("203.0.113.1")).unwrap();
    assert!(found.hit.is_none());
    assert_eq!(found.network, net("203.0.113.0/24"));
    let found = db.lookup(ip("100.64.0.1")).unwrap();
    assert!(found.hit.is_none());
    assert!(found.network.contains(&ip("100.64.0.1")));
    assert!(!found.network.contains(&net("81.2.69.0/24")));
}

/// The caches (per /24 block, per record) never change an answer, including for networks
/// longer than the block and records whose codes are not cacheable.
#[test]
fn cached_lookups_equal_uncached() {
    let db = GeoDb::from_bytes(city_db(), "city.mmdb").unwrap();
    let probes = [
        "81.2.71.1",
        "81.2.71.17",
        "81.2.71.1",
        "81.2.71.40",
        "81.2.70.3",
        "81.2.71.17",
        "81.2.69.1",
        "81.2.69.254",
        "::ffff:81.2.71.17",
        "1.0.16.1",
        "1.0.31.255",
        "192.0.2.1",
        "203.0.113.5",
        "100.64.0.1",
        "2001:db8::1",
        "2001:db8:ffff::1",
        "2001:db9::1",
    ];
    for round in 0..3 {
        for p in probes {
            let want = db.lookup_uncached(ip(p)).unwrap();
            assert_eq!(db.lookup(ip(p)).unwrap(), want, "round {round}: {p}");
        }
    }
    assert_eq!(
        db.lookup(ip("81.2.71.17")).unwrap().network,
        net("81.2.71.16/28")
    );
    assert_eq!(
        db.lookup(ip("81.2.71.1")).unwrap().network,
        net("81.2.71.0/28")
    );
    assert_eq!(db.lookup(ip("81.2.71.1")).unwrap().hit.unwrap().lat, 53.48);
}

#[test]
fn country_db_uses_centroids() {
    let db = GeoDb::from_bytes(country_db(), "country.mmdb").unwrap();
    assert_eq!(db.kind(), DbKind::Country);
    let hit = db.lookup(ip("81.2.69.142")).unwrap().hit.unwrap();
    assert!(hit.centroid);
    assert_eq!(hit.country, Some("GB"));
    assert!((50.0..60.0).contains(&hit.lat) && (-8.0..2.0).contains(&hit.lon));
    let hit = db.lookup(ip("2001:db8::1")).unwrap().hit.unwrap();
    assert_eq!(hit.country, Some("US"));
}

#[test]
fn v4_only_db() {
    let db = GeoDb::from_bytes(city_db_v4_only(), "v4.mmdb").unwrap();
    assert_eq!(
        db.lookup(ip("81.2.69.1")).unwrap().network,
        net("81.2.69.0/24")
    );
    assert_eq!(
        db.lookup(ip("::ffff:81.2.69.1")).unwrap().network,
        net("81.2.69.0/24")
    );
    // An IPv6 address in an IPv4 database is an error, which the locator treats as a miss.
    let loc = Locator::new(NetworkMap::empty(), Some(db), regions()[0].clone());
    let l = loc.locate(ip("2001:db8::1"));
    assert_eq!(l.source, LocationSource::Default);
    assert_eq!(loc.locate(ip("81.2.69.1")).source, LocationSource::GeoIp);
}

#[test]
fn rejects_bad_files() {
    let err = GeoDb::from_bytes(asn_db(), "asn.mmdb").unwrap_err();
    assert!(matches!(err, GeoError::NoLocationData { .. }), "{err}");
    assert!(
        err.to_string().contains("asn.mmdb") && err.to_string().contains("Test-ASN"),
        "{err}"
    );

    let err = GeoDb::from_bytes(b"not a database".to_vec(), "junk.mmdb").unwrap_err();
    assert!(matches!(err, GeoError::InvalidDb { .. }), "{err}");
    assert!(err.to_string().contains("junk.mmdb"), "{err}");

    let mut truncated = city_db();
    truncated.truncate(truncated.len() / 2);
    assert!(GeoDb::from_bytes(truncated, "t.mmdb").is_err());

    let err = GeoDb::open("/nonexistent/geo.mmdb").unwrap_err();
    assert!(matches!(err, GeoError::Io { .. }), "{err}");
}

#[test]
fn locator_order_map_db_default() {
    let regions = regions();
    let map = NetworkMap::parse("81.2.69.128/25 us-east\n10.0.0.0/8 eu-west", &regions).unwrap();
    let db = GeoDb::from_bytes(city_db(), "city.mmdb").unwrap();
    let loc = Locator::new(map, Some(db), regions[0].clone());

    // map overrides the database
    let l = loc.locate(ip("81.2.69.200"));
    assert_eq!(l.source, LocationSource::NetworkMap);
    assert_eq!(l.region.as_deref(), Some("us-east"));
    assert_eq!(l.network, net("81.2.69.128/25"));

    // database, narrowed so the scope does not cover the map entry
    let l = loc.locate(ip("81.2.69.1"));
    assert_eq!(l.source, LocationSource::GeoIp);
    assert_eq!(l.country.as_deref(), Some("GB"));
    assert_eq!(l.continent.as_deref(), Some("EU"));
    assert_eq!(l.region, None);
    assert_eq!(l.network, net("81.2.69.0/25"));

    let l = loc.locate(ip("81.2.70.9"));
    assert_eq!(
        l.network,
        net("81.2.70.0/24"),
        "the /23 is split around 81.2.71.16/28"
    );
    assert!((l.lat - 53.48).abs() < 1e-9);

    // neither: default region, network = block the database leaves empty
    let l = loc.locate(ip("203.0.113.9"));
    assert_eq!(l.source, LocationSource::Default);
    assert_eq!(l.region.as_deref(), Some("us-east"));
    assert_eq!(l.network, net("203.0.113.0/24"));
    assert_eq!((l.lat, l.lon), (39.0, -77.5));
}

#[test]
fn reload_db_keeps_old_on_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("geo.mmdb");
    write_atomically(&path, &city_db());
    let loc = Locator::new(
        NetworkMap::empty(),
        Some(GeoDb::open(&path).unwrap()),
        regions()[0].clone(),
    );
    let mut watch = cdn_geo::reload::FileWatch::new(&path);
    assert!(!watch.poll().unwrap());
    assert_eq!(loc.locate(ip("81.2.69.1")).country.as_deref(), Some("GB"));

    // A held snapshot survives the swap (in-flight lookups finish on the old reader).
    let held = loc.db().unwrap();

    // bad file: rejected, old database still answers
    write_atomically(&path, b"garbage, not an mmdb");
    assert!(watch.poll().unwrap());
    assert!(matches!(
        loc.reload_db(&path),
        Err(GeoError::InvalidDb { .. })
    ));
    assert_eq!(loc.locate(ip("81.2.69.1")).country.as_deref(), Some("GB"));

    write_atomically(&path, &asn_db());
    assert!(watch.poll().unwrap());
    assert!(matches!(
        loc.reload_db(&path),
        Err(GeoError::NoLocationData { .. })
    ));
    assert_eq!(loc.locate(ip("81.2.69.1")).source, LocationSource::GeoIp);

    // good new file: swapped in
    write_atomically(&path, &country_db());
    assert!(watch.poll().unwrap());
    loc.reload_db(&path).unwrap();
    assert_eq!(loc.db().unwrap().kind(), DbKind::Country);
    let l = loc.locate(ip("81.2.69.1"));
    assert_eq!(l.country.as_deref(), Some("GB"));
    assert_ne!(l.lat, 51.51, "now a centroid");

    assert_eq!(held.kind(), DbKind::City);
    assert_eq!(
        held.lookup(ip("81.2.69.1")).unwrap().hit.unwrap().lat,
        51.51
    );

    loc.swap_db(None);
    assert_eq!(loc.locate(ip("81.2.69.1")).source, LocationSource::Default);
}

#[test]
fn reload_map_keeps_old_on_bad_file() {
    let regions = regions();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("map.txt");
    std::fs::write(&path, "10.0.0.0/8 eu-west\n").unwrap();
    let inline = NetworkMap::parse("192.168.0.0/16 us-east", &regions).unwrap();
    let loc = Locator::new(NetworkMap::empty(), None, regions[0].clone());
    loc.reload_map(&path, &inline, &regions).unwrap();
    assert_eq!(
        loc.locate(ip("10.1.1.1")).region.as_deref(),
        Some("eu-west")
    );
    assert_eq!(
        loc.locate(ip("192.168.1.1")).source,
        LocationSource::NetworkMap
    );

    std::fs::write(&path, "10.0.0.0/8 eu-west\n11.0.0.0/8 nowhere\n").unwrap();
    let err = loc.reload_map(&path, &inline, &regions).unwrap_err();
    assert!(err.to_string().contains("line 2"), "{err}");
    assert_eq!(
        loc.locate(ip("10.1.1.1")).region.as_deref(),
        Some("eu-west")
    );

    std::fs::write(&path, "192.168.0.0/16 eu-west\n").unwrap();
    assert!(matches!(
        loc.reload_map(&path, &inline, &regions),
        Err(GeoError::DuplicatePrefix { .. })
    ));

    std::fs::write(&path, "10.0.0.0/8 us-east\n").unwrap();
    loc.reload_map(&path, &inline, &regions).unwrap();
    assert_eq!(
        loc.locate(ip("10.1.1.1")).region.as_deref(),
        Some("us-east")
    );
}

/// A damaged database file is either rejected at open or answers lookups without panicking
/// (errors become "not located").
#[test]
fn corrupt_databases_never_panic() {
    let good = city_db();
    let mut x: u64 = 12345;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) as usize
    };
    let probes = [
        "81.2.69.142",
        "81.2.71.17",
        "1.0.16.1",
        "2001:db8::1",
        "192.0.2.1",
        "8.8.8.8",
    ];
    let mut opened = 0;
    for _ in 0..250 {
        let mut bytes = good.clone();
        for _ in 0..1 + next() % 4 {
            let at = next() % bytes.len();
            bytes[at] ^= 1 << (next() % 8);
        }
        if let Ok(db) = GeoDb::from_bytes(bytes, "corrupt.mmdb") {
            opened += 1;
            let loc = Locator::new(NetworkMap::empty(), Some(db), regions()[0].clone());
            for p in probes {
                let _ = loc.locate(ip(p));
            }
        }
    }
    assert!(opened > 0);
}
