//! Issue 7 §7, several routers: two router instances with the same config answer
//! identically (both probe, edges report to both); killing one leaves the other answering;
//! a restarted router has every edge's state back within one probe interval because the
//! edges re-report.
//!
//! Both tests also run on the fleet bus (`_on_the_bus`, issue 15 point 6): reports then arrive
//! over the edges' NATS subjects instead of HTTP pushes (needs `nats-server`).

use std::time::{Duration, Instant};

use cdn_tests::fleet::{spec, Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::{eventually, eventually_every, scaled};

const SUBNETS: &[&str] = &[
    "8.8.8.0/24",
    "81.2.69.0/24",
    "1.0.16.0/24",
    "1.1.1.0/24",
    "200.160.0.0/24",
    "193.0.0.0/24",
];

fn same_answers(fleet: &Fleet) -> anyhow::Result<()> {
    for s in SUBNETS {
        let a = fleet.resolve_via(0, SERVICE, Some(s))?;
        let b = fleet.resolve_via(1, SERVICE, Some(s))?;
        anyhow::ensure!(a == b, "routers disagree for {s}: {a:?} vs {b:?}");
        anyhow::ensure!(!a.is_empty(), "no answer for {s}");
    }
    Ok(())
}

fn has_report(fleet: &Fleet, router: usize, edge: &str) -> anyhow::Result<()> {
    let v = fleet.edge_view(router, edge)?;
    anyhow::ensure!(
        v["last_report"]["edge_id"].is_string(),
        "router {router} has no report from {edge}: {v}"
    );
    Ok(())
}

fn has_probed(fleet: &Fleet, router: usize, edge: &str) -> anyhow::Result<()> {
    let v = fleet.edge_view(router, edge)?;
    anyhow::ensure!(
        v["last_probe"]["ok"] == true,
        "router {router} has no good probe of {edge}: {v}"
    );
    Ok(())
}

#[test]
fn two_routers_agree_and_either_survives_the_other() {
    two_routers(Fleet::builder());
}

#[test]
fn two_routers_agree_and_either_survives_the_other_on_the_bus() {
    two_routers(Fleet::builder().bus_nats());
}

fn two_routers(spec: FleetSpec) {
    spec.routers(2).run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        for i in 0..2 {
            for e in fleet.edges() {
                eventually(
                    "edges report to both routers, both probe",
                    Duration::from_secs(3),
                    || {
                        has_report(fleet, i, e.id())?;
                        has_probed(fleet, i, e.id())
                    },
                )?;
            }
        }
        same_answers(fleet)?;
        assert_eq!(
            fleet.resolve_via(1, SERVICE, Some("81.2.69.0/24"))?,
            vec![fleet.edge("eu-west").ip()]
        );

        // Both routers see an edge die on their own.
        fleet.kill_edge("eu-west")?;
        let us = fleet.edge("us-east").ip();
        eventually_every(
            "both routers drop eu-west",
            Duration::from_secs(3),
            Duration::from_millis(20),
            || {
                for i in 0..2 {
                    let a = fleet.resolve_via(i, SERVICE, Some("81.2.69.0/24"))?;
                    anyhow::ensure!(a == [us], "router {i} answers {a:?}");
                }
                Ok(())
            },
        )?;
        same_answers(fleet)?;
        fleet.restart_edge("eu-west")?;
        eventually(
            "both routers take eu-west back",
            Duration::from_secs(5),
            || {
                // Each router probes on its own schedule: wait for both.
                for i in 0..2 {
                    let a = fleet.resolve_via(i, SERVICE, Some("81.2.69.0/24"))?;
                    anyhow::ensure!(
                        a == [fleet.edge("eu-west").ip()],
                        "router {i} answers {a:?}"
                    );
                }
                Ok(())
            },
        )?;
        same_answers(fleet)?;

        // One router down: the other keeps answering.
        fleet.kill_router(0);
        for region in ["us-east", "eu-west", "ap-northeast"] {
            let s = spec::demo_subnet(region).unwrap();
            assert_eq!(
                fleet.resolve_via(1, SERVICE, Some(s))?,
                vec![fleet.edge(region).ip()]
            );
        }
        Ok(())
    });
}

#[test]
fn a_restarted_router_has_the_edge_state_back_within_one_probe_interval() {
    restarted_router(Fleet::builder());
}

#[test]
fn a_restarted_router_has_the_edge_state_back_within_one_probe_interval_on_the_bus() {
    restarted_router(Fleet::builder().bus_nats());
}

fn restarted_router(spec: FleetSpec) {
    spec.routers(2).run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let dns_before = fleet.router(0).dns_udp;

        fleet.kill_router(0);
        fleet.restart_router(0)?;
        let t0 = Instant::now();
        assert_eq!(
            fleet.router(0).dns_udp,
            dns_before,
            "same address after restart"
        );
        same_answers(fleet)?;
        eventually_every(
            "every edge re-reported to the restarted router",
            Duration::from_secs(3),
            Duration::from_millis(20),
            || {
                for e in fleet.edges() {
                    has_report(fleet, 0, e.id())?;
                }
                Ok(())
            },
        )?;
        let took = t0.elapsed();
        let interval = fleet.spec().health.probe_interval;
        eprintln!(
            "restarted router had every edge's report after {took:?} (probe interval {interval:?})"
        );
        assert!(
            took <= scaled(interval + Duration::from_millis(100)),
            "took {took:?}"
        );
        same_answers(fleet)?;
        Ok(())
    });
}
