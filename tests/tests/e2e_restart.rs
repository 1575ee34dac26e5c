//! Issue 7 §8, edge restart: an edge restarted on its warm disk cache serves what it had
//! stored as hits, with zero origin fetches.

use std::time::Duration;

use cdn_tests::fleet::{EdgeNode, Fleet};
use cdn_tests::harness::eventually;

/// Small (inline) and large (chunked: > the 1 MiB chunk size) objects.
const PATHS: &[&str] = &[
    "/obj/1k/warm-a",
    "/obj/10k/warm-b",
    "/obj/64k/warm-c",
    "/obj/512k/warm-d",
    "/obj/3m/warm-e",
];

fn warm(edge: &EdgeNode, path: &str) -> anyhow::Result<Vec<u8>> {
    eventually(&format!("{path} cached"), Duration::from_secs(10), || {
        let r = edge.get(path)?;
        anyhow::ensure!(
            r.status == 200 && r.is_hit(),
            "{} {:?}",
            r.status,
            r.cache_status()
        );
        Ok(r.body)
    })
}

#[test]
fn a_gracefully_restarted_edge_serves_its_disk_cache_with_zero_origin_fetches() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let mut bodies = Vec::new();
        for p in PATHS {
            bodies.push(warm(fleet.edge("us-east"), p)?);
        }
        let before = fleet.origin_stats();
        for p in PATHS {
            assert_eq!(before.path(p), 1, "{p} fetched once");
        }

        fleet.sigterm_edge("us-east")?;
        assert!(
            fleet.wait_edge_exit("us-east", Duration::from_secs(10))?,
            "clean exit"
        );
        fleet.restart_edge("us-east")?;

        let us = fleet.edge("us-east");
        for (p, body) in PATHS.iter().zip(&bodies) {
            let r = us.get(p)?;
            assert_eq!(r.status, 200, "{p}");
            assert!(
                r.is_hit(),
                "{p} is a hit after restart: {:?}",
                r.cache_status()
            );
            assert!(r.body == *body, "{p}: same bytes after restart");
        }
        assert_eq!(
            fleet.origin_stats(),
            before,
            "zero origin fetches after the restart"
        );
        Ok(())
    });
}
