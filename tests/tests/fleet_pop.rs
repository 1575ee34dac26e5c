//! The local fleet with points of presence (issue 16 point 6): two edges per region clustered,
//! www shielded by us-east; a peer fill inside a region and a shield fill across regions each
//! cost one origin request; `--no-cluster` edges fill alone.

use cdn_tests::fleet::Fleet;

fn cs(r: &cdn_tests::harness::http::Reply) -> String {
    r.cache_status().unwrap_or_default().to_string()
}

#[test]
fn a_clustered_fleet_fetches_once_per_pop_and_once_through_the_shield() {
    let mut spec = Fleet::builder().edges_per_region(2);
    spec.shield = Some("us-east".into());
    spec.run(|fleet| {
        assert_eq!(fleet.edges().len(), 6);
        let (use1, use2) = (fleet.edge("use1"), fleet.edge("use2"));
        assert_eq!(use2.ip().octets(), [127, 0, 1, 2]);
        let path = "/obj/1k/fleet-pop";
        let a = use1.get(path)?;
        let b = use2.get(path)?;
        assert_eq!((a.status, b.status), (200, 200));
        assert!(
            cs(&a).contains("fwd=peer") || cs(&b).contains("fwd=peer"),
            "{} / {}",
            cs(&a),
            cs(&b)
        );
        assert_eq!(fleet.origin_stats().path(path), 1);
        // Three regions, one origin request: eu-west and ap-northeast fill through us-east.
        let tier = "/obj/1k/fleet-tier";
        for e in ["euw1", "apne2", "use1", "euw2"] {
            let r = fleet.edge(e).get(tier)?;
            assert_eq!(r.status, 200, "{e}: {}", cs(&r));
        }
        assert_eq!(fleet.origin_stats().path(tier), 1);
        Ok(())
    });
}

#[test]
fn without_the_cluster_each_edge_fills_alone() {
    let mut spec = Fleet::builder()
        .edges_per_region(2)
        .only_regions(&["us-east"]);
    spec.no_cluster = true;
    spec.run(|fleet| {
        let path = "/obj/1k/alone";
        for e in ["use1", "use2"] {
            let r = fleet.edge(e).get(path)?;
            assert_eq!(r.status, 200);
            assert!(!cs(&r).contains("fwd=peer"), "{}", cs(&r));
        }
        assert_eq!(fleet.origin_stats().path(path), 2);
        Ok(())
    });
}
