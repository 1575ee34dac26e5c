//! The local fleet end to end, thinnest path: it starts, the router answers the nearest edge
//! for clients in three regions (by ECS), and a fetch through that edge is a miss then a hit
//! with exactly one origin fetch.

use std::time::Duration;

use cdn_tests::fleet::{spec, Fleet, SERVICE};
use cdn_tests::harness::dns::hickory_proto::op::ResponseCode;
use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
use cdn_tests::harness::dns::{self, DnsQuery};
use cdn_tests::harness::{eventually, http};

#[test]
fn three_regions_resolve_to_their_nearest_edge_with_ecs() {
    Fleet::builder().run(|fleet| {
        for region in ["us-east", "eu-west", "ap-northeast"] {
            let subnet = spec::demo_subnet(region).unwrap();
            let m = DnsQuery::new(SERVICE, RecordType::A)
                .subnet(subnet)
                .udp(fleet.router_dns())?;
            dns::expect_rcode(&m, ResponseCode::NoError)?;
            assert!(m.metadata.authoritative, "authoritative answer");
            assert_eq!(
                dns::a_records(&m),
                vec![fleet.edge(region).ip()],
                "clients in {subnet} get the {region} edge"
            );
            let ecs = dns::ecs_of(&m).expect("ECS echoed");
            assert_eq!(ecs.source_prefix(), 24);
            // The block the router's precompiled map routes as one: the matched /24 of the demo
            // map, or wider where the neighbouring networks rank the same way (8.8.8.0/24 is
            // placed in us-east, like the default region around it).
            assert!(
                (1..=24).contains(&ecs.scope_prefix()),
                "scope covers the matched /24 of the demo map: {}",
                ecs.scope_prefix()
            );
        }
        // The wildcard service is routed the same way.
        assert_eq!(
            fleet.resolve_via(0, "a.img.cdn.example.test", Some("81.2.69.0/24"))?,
            vec![fleet.edge("eu-west").ip()]
        );
        // Placed by coordinates only: Sydney → ap-northeast, São Paulo → us-east.
        assert_eq!(
            fleet.resolve("1.1.1.0/24")?,
            vec![fleet.edge("ap-northeast").ip()]
        );
        assert_eq!(
            fleet.resolve("200.160.0.0/24")?,
            vec![fleet.edge("us-east").ip()]
        );
        Ok(())
    });
}

#[test]
fn static_records_and_tcp_fallback_for_the_big_txt() {
    Fleet::builder().only_regions(&["us-east"]).run(|fleet| {
        let m = DnsQuery::new("static.cdn.example.test", RecordType::A).udp(fleet.router_dns())?;
        assert_eq!(dns::a_records(&m), vec![spec::STATIC_A]);

        let udp = DnsQuery::new(spec::BIG_TXT, RecordType::TXT).udp(fleet.router_dns())?;
        assert!(
            udp.metadata.truncation,
            "a >1232-byte RRset is truncated over UDP"
        );
        let tcp = DnsQuery::new(spec::BIG_TXT, RecordType::TXT).tcp(fleet.router(0).dns_tcp)?;
        assert!(!tcp.metadata.truncation);
        let mut txt = dns::txt_records(&tcp);
        txt.sort();
        let mut want: Vec<String> = (0..spec::BIG_TXT_RECORDS)
            .map(spec::big_txt_string)
            .collect();
        want.sort();
        assert_eq!(txt, want);

        let m = DnsQuery::new("nothing-here.cdn.example.test", RecordType::A)
            .udp(fleet.router_dns())?;
        dns::expect_rcode(&m, ResponseCode::NXDomain)?;
        Ok(())
    });
}

#[test]
fn a_fetch_through_the_nearest_edge_is_a_miss_then_a_hit() {
    Fleet::builder().run(|fleet| {
        let path = "/obj/1k/hello";
        for region in ["us-east", "eu-west", "ap-northeast"] {
            let subnet = spec::demo_subnet(region).unwrap();
            let (served_by, first) = fleet.fetch(subnet, path)?;
            assert_eq!(served_by, region);
            assert_eq!(first.status, 200, "{}", first.text());
            assert_eq!(first.body.len(), 1024);
            assert!(
                !first.is_hit(),
                "first fetch is a miss: {:?}",
                first.cache_status()
            );
            let id = fleet.edge(region).id().to_string();
            assert!(
                first.cache_status().is_some_and(|cs| cs.starts_with(&id)),
                "Cache-Status names the edge {id}: {:?}",
                first.cache_status()
            );
            // The fill may complete just after the response; poll for the hit.
            let second = eventually("a cache hit", Duration::from_secs(5), || {
                let r = fleet.edge(region).get(path)?;
                anyhow::ensure!(r.is_hit(), "not a hit: {:?}", r.cache_status());
                Ok(r)
            })?;
            assert_eq!(second.body, first.body);
            // The README tour's figure: the edge counts the body bytes the origin sent, once.
            let metrics = http::get(fleet.edge(region).admin_addr(), "/metrics")
                .send()?
                .text();
            let origin_bytes = metrics
                .lines()
                .find_map(|l| l.strip_prefix("cdn_edge_origin_bytes_total "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            assert_eq!(origin_bytes, Some(1024.0), "{metrics}");
        }
        // One origin fetch per edge, no more.
        assert_eq!(fleet.origin_stats().path(path), 3);
        Ok(())
    });
}
