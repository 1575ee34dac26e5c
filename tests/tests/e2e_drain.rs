//! Issue 7 §4, drain: the router's drain API and SIGTERM on the edge both take the edge out
//! of the answers before it stops serving, and requests in flight on it complete.
//!
//! Both tests run in both modes (issue 15 point 6): direct HTTP (the default: the drain stays in
//! the router, the edge pushes its draining report over HTTP) and the fleet bus (`_on_the_bus`:
//! the drain goes through the KV bucket, the report over the edge's NATS subject; needs
//! `nats-server`). In direct mode a drain reaches only the router whose API took it (tested
//! here); on the bus it reaches every router (`e2e_bus.rs`).

use std::time::{Duration, Instant};

use cdn_tests::fleet::{Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::{always, eventually_every, http, scaled};
use cdn_tests::origin::Object;
use serde_json::json;

const US: &str = "8.8.8.0/24";

#[test]
fn the_router_drain_api_moves_clients_at_once_and_undrain_brings_them_back() {
    drain_api(Fleet::builder());
}

#[test]
fn the_router_drain_api_moves_clients_at_once_and_undrain_brings_them_back_on_the_bus() {
    drain_api(Fleet::builder().bus_nats());
}

fn drain_api(spec: FleetSpec) {
    spec.run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let us = fleet.edge("us-east");
        let eu = fleet.edge("eu-west").ip();
        assert_eq!(fleet.resolve(US)?, vec![us.ip()]);

        // Writes need the token.
        let r = http::post(
            fleet.router_admin(),
            &format!("/api/v1/edges/{}/drain", us.id()),
        )
        .send()?;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(fleet.resolve(US)?, vec![us.ip()]);
        let r = fleet.admin_post(0, "/api/v1/edges/nope/drain", &json!({}))?;
        assert_eq!(r.status, 404);

        let t0 = Instant::now();
        let r = fleet.admin_post(0, &format!("/api/v1/edges/{}/drain", us.id()), &json!({}))?;
        assert_eq!(r.status, 200, "{}", r.text());
        let a = eventually_every(
            "us-east drained",
            Duration::from_secs(2),
            Duration::from_millis(10),
            || {
                let a = fleet.resolve(US)?;
                anyhow::ensure!(!a.contains(&us.ip()), "still {a:?}");
                Ok(a)
            },
        )?;
        eprintln!("drain took effect in DNS after {:?}", t0.elapsed());
        assert_eq!(a, vec![eu]);
        let c = fleet.explain_candidate(0, US, "us-east")?;
        assert_eq!(c["chosen"], false);
        assert!(
            c["draining"] == true || c["excluded"].to_string().contains("drain"),
            "{c}"
        );
        // A drained edge still serves whoever still has its address.
        let r = us.get("/obj/1k/drained")?;
        assert_eq!(r.status, 200);

        let r = fleet.admin_post(0, &format!("/api/v1/edges/{}/undrain", us.id()), &json!({}))?;
        assert_eq!(r.status, 200, "{}", r.text());
        eventually_every(
            "us-east back",
            Duration::from_secs(2),
            Duration::from_millis(10),
            || {
                let a = fleet.resolve(US)?;
                anyhow::ensure!(a == [us.ip()], "still {a:?}");
                Ok(())
            },
        )?;
        Ok(())
    });
}

#[test]
fn sigterm_leaves_the_answers_before_the_edge_stops_and_in_flight_requests_complete() {
    sigterm(Fleet::builder());
}

#[test]
fn sigterm_leaves_the_answers_before_the_edge_stops_and_in_flight_requests_complete_on_the_bus() {
    sigterm(Fleet::builder().bus_nats());
}

fn sigterm(spec: FleetSpec) {
    spec.run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let us = fleet.edge("us-east").ip();
        let eu = fleet.edge("eu-west").ip();
        assert_eq!(fleet.resolve(US)?, vec![us]);

        // A slow response: 8 chunks of 64 KiB, 250 ms before each (≈2 s), within the 5 s grace.
        let path = "/obj/512k/slow?throttle_ms=250";
        let addr = fleet.edge("us-east").http_addr();
        let in_flight = std::thread::spawn(move || {
            http::get(addr, path)
                .host(cdn_tests::fleet::SERVICE)
                .timeout(Duration::from_secs(30))
                .send()
        });
        eventually_every(
            "the slow fill reached the origin",
            Duration::from_secs(5),
            Duration::from_millis(10),
            || {
                anyhow::ensure!(fleet.origin_stats().path("/obj/512k/slow") == 1);
                Ok(())
            },
        )?;

        let t0 = Instant::now();
        fleet.sigterm_edge("us-east")?;
        let a = eventually_every(
            "us-east leaves on SIGTERM",
            Duration::from_secs(3),
            Duration::from_millis(10),
            || {
                let a = fleet.resolve(US)?;
                anyhow::ensure!(!a.contains(&us), "still {a:?}");
                Ok(a)
            },
        )?;
        let took = t0.elapsed();
        eprintln!("SIGTERM: out of the answers after {took:?}");
        assert_eq!(a, vec![eu]);
        assert!(
            !in_flight.is_finished(),
            "the edge left the answers while still serving its in-flight request"
        );
        assert!(
            took <= scaled(Duration::from_millis(1000)),
            "the draining report is pushed at once: {took:?}"
        );

        let reply = in_flight.join().expect("request thread")?;
        assert_eq!(reply.status, 200);
        let want = Object {
            size: 512 * 1024,
            id: "slow".into(),
            version: 0,
        };
        assert_eq!(
            reply.body.len(),
            want.body().len(),
            "the in-flight body completed"
        );
        assert!(reply.body == want.body(), "the in-flight body is intact");

        let clean = fleet.wait_edge_exit("us-east", Duration::from_secs(10))?;
        assert!(clean, "the edge exits 0 after draining");
        Ok(())
    });
}

/// The direct mode's documented limit: a drain lives in the router whose API took it.
#[test]
fn in_direct_mode_a_drain_reaches_only_the_router_that_took_it() {
    Fleet::builder().routers(2).run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let (us_id, us_ip) = {
            let us = fleet.edge("us-east");
            (us.id().to_string(), us.ip())
        };
        let r = fleet.admin_post(0, &format!("/api/v1/edges/{us_id}/drain"), &json!({}))?;
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(!fleet.resolve_via(0, SERVICE, Some(US))?.contains(&us_ip));
        always(
            "router 1 still answers the edge drained on router 0",
            Duration::from_millis(1500),
            Duration::from_millis(100),
            || {
                let a = fleet.resolve_via(1, SERVICE, Some(US))?;
                anyhow::ensure!(a == [us_ip], "router 1 answers {a:?}");
                Ok(())
            },
        )?;
        // And a restart forgets it.
        fleet.restart_router(0)?;
        assert_eq!(fleet.resolve_via(0, SERVICE, Some(US))?, vec![us_ip]);
        Ok(())
    });
}
