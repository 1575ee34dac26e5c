//! The fleet's `--geo-database` path: routers locate clients with a real MaxMind City
//! database (GeoLite2 2018, fetched by `scripts/fetch-geolite2.sh`; `.ci/run` always fetches
//! it) instead of the demo map. Uses `$CDN_GEOLITE2_CITY`, else
//! `target/testdata/GeoLite2-City.mmdb`; prints "skipped: file absent" and passes when
//! neither exists (the database is an optional download, never committed).

use std::path::PathBuf;

use cdn_tests::fleet::{Fleet, SERVICE};

fn db_path() -> Option<PathBuf> {
    cdn_geo::testdata::geolite2_city()
}

#[test]
fn a_maxmind_database_places_clients_without_the_demo_map() {
    let Some(db) = db_path() else { return };
    let mut spec = Fleet::builder().geo_database(db);
    spec.demo_geo_map = false;
    spec.run(|fleet| {
        // Addresses the database places in the US, the UK and Japan; a Brazilian one goes to
        // the nearest region by distance (us-east).
        for (subnet, region) in [
            ("8.8.8.0/24", "us-east"),
            ("81.2.69.0/24", "eu-west"),
            ("1.0.16.0/24", "ap-northeast"),
            ("200.160.0.0/24", "us-east"),
        ] {
            let a = fleet.resolve_via(0, SERVICE, Some(subnet))?;
            assert_eq!(a, vec![fleet.edge(region).ip()], "{subnet} → {region}");
            let v = fleet.explain(0, subnet)?;
            let source = v["location"]["source"].as_str().unwrap_or_default();
            assert_ne!(
                source, "network_map",
                "{subnet} located by the database: {v}"
            );
            assert!(v["location"]["country"].is_string(), "{subnet}: {v}");
        }
        Ok(())
    });
}
