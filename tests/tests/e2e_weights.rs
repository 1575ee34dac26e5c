//! Issue 15 point 2, per-edge weight overrides (`POST /api/v1/edges/{id}/weight`), in both
//! modes, with real routers and edges. Two edges in regions at the same coordinates form a tie
//! group for a European client, so the weights decide which one it gets (weighted rendezvous
//! hashing, deterministic per client network).
//!
//! * On the fleet bus the override goes to the KV bucket: the other router applies it within a
//!   second, a restarted router has it before its first answer, and clearing it through either
//!   router restores the configured weight everywhere.
//! * In direct mode (no `[bus]`) it changes only the router whose API took it, in memory: the
//!   other router keeps its answer, and a restart forgets it.
//!
//! The bus test needs `nats-server` (Debian package; `.ci/run` installs it).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cdn_tests::fleet::spec::RegionSpec;
use cdn_tests::fleet::{Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::{always, eventually_every, scaled};
use serde_json::{json, Value};

/// Placed in eu-west by the demo map.
const EU_SUBNET: &str = "81.2.69.0/24";
/// The weight that makes an edge win its tie group (the other keeps weight 1).
const HEAVY: u32 = 1_000_000;

/// eu-west and a twin region at the same coordinates, one edge each.
fn twin_spec() -> FleetSpec {
    let mut spec = Fleet::builder().only_regions(&["eu-west"]);
    spec.regions.push(RegionSpec::new(
        "eu-twin",
        53.3,
        -6.3,
        "euw2",
        Ipv4Addr::new(127, 0, 2, 2),
    ));
    spec.routers(2)
}

fn answer(fleet: &Fleet, router: usize) -> anyhow::Result<Ipv4Addr> {
    let a = fleet.resolve_via(router, SERVICE, Some(EU_SUBNET))?;
    anyhow::ensure!(a.len() == 1, "router {router} answers {a:?}");
    Ok(a[0])
}

fn set_weight(
    fleet: &Fleet,
    router: usize,
    id: &str,
    weight: Value,
) -> anyhow::Result<(u16, Value)> {
    let r = fleet.admin_post(
        router,
        &format!("/api/v1/edges/{id}/weight"),
        &json!({ "weight": weight }),
    )?;
    Ok((r.status, r.json()?))
}

/// (id, ip) of the edge router 0 answers the European client now, and of the other one.
fn first_and_other(fleet: &Fleet) -> anyhow::Result<((String, Ipv4Addr), (String, Ipv4Addr))> {
    let chosen = answer(fleet, 0)?;
    let mut first = None;
    let mut other = None;
    for e in fleet.edges() {
        let pair = (e.id().to_string(), e.ip());
        if e.ip() == chosen {
            first = Some(pair);
        } else {
            other = Some(pair);
        }
    }
    match (first, other) {
        (Some(f), Some(o)) => Ok((f, o)),
        _ => anyhow::bail!("router 0 answers {chosen}, not one of the twin edges"),
    }
}

/// The API's refusals, the same in both modes.
fn refusals(fleet: &Fleet, id: &str) -> anyhow::Result<()> {
    for bad in [json!(0), json!(HEAVY + 1), json!("heavy"), json!(-1)] {
        let (status, v) = set_weight(fleet, 0, id, bad.clone())?;
        assert_eq!(status, 400, "weight {bad}: {v}");
    }
    let (status, _) = set_weight(fleet, 0, "nope", json!(5))?;
    assert_eq!(status, 404);
    let r =
        cdn_tests::harness::http::post(fleet.router_admin(), &format!("/api/v1/edges/{id}/weight"))
            .body(br#"{"weight": 5}"#.to_vec())
            .send()?;
    assert_eq!(r.status, 401, "no token: {}", r.text());
    Ok(())
}

#[test]
fn on_the_bus_a_weight_override_reaches_every_router_and_survives_restarts() {
    twin_spec().bus_nats().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let ((_, first_ip), (other_id, other_ip)) = first_and_other(fleet)?;
        assert_eq!(answer(fleet, 1)?, first_ip, "both routers hash alike");
        refusals(fleet, &other_id)?;

        let (status, v) = set_weight(fleet, 0, &other_id, json!(HEAVY))?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["weight"], 1, "the configured weight: {v}");
        assert_eq!(v["weight_override"], HEAVY, "{v}");
        assert_eq!(v["effective_weight"], HEAVY, "{v}");
        assert_eq!(answer(fleet, 0)?, other_ip, "router 0 applied it at once");
        let started = Instant::now();
        eventually_every(
            "router 1 applies the override",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let a = answer(fleet, 1)?;
                anyhow::ensure!(a == other_ip, "router 1 answers {a}");
                Ok(())
            },
        )?;
        let took = started.elapsed();
        assert!(took <= scaled(Duration::from_secs(1)), "took {took:?}");
        assert_eq!(fleet.edge_view(1, &other_id)?["weight_override"], HEAVY);

        // A restarted router reads the bucket before its first answer.
        fleet.restart_router(1)?;
        assert_eq!(answer(fleet, 1)?, other_ip, "restarted router 1");

        // Cleared through router 1: router 0 is back to the configured weights.
        let (status, v) = set_weight(fleet, 1, &other_id, Value::Null)?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["weight_override"], Value::Null, "{v}");
        assert_eq!(v["effective_weight"], 1, "{v}");
        eventually_every(
            "router 0 restores the configured weight",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let a = answer(fleet, 0)?;
                anyhow::ensure!(a == first_ip, "router 0 answers {a}");
                Ok(())
            },
        )?;

        // With NATS down the override cannot be recorded: 503, and nothing changes here.
        fleet.nats().expect("bus fleet").stop();
        let (status, v) = set_weight(fleet, 0, &other_id, json!(HEAVY))?;
        assert_eq!(status, 503, "{v}");
        assert_eq!(answer(fleet, 0)?, first_ip);
        assert_eq!(
            fleet.edge_view(0, &other_id)?["weight_override"],
            Value::Null
        );
        Ok(())
    });
}

#[test]
fn in_direct_mode_a_weight_override_changes_only_that_router_until_it_restarts() {
    twin_spec().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let ((_, first_ip), (other_id, other_ip)) = first_and_other(fleet)?;
        assert_eq!(answer(fleet, 1)?, first_ip, "both routers hash alike");
        refusals(fleet, &other_id)?;

        let (status, v) = set_weight(fleet, 0, &other_id, json!(HEAVY))?;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["effective_weight"], HEAVY, "{v}");
        assert_eq!(answer(fleet, 0)?, other_ip, "router 0 applied it at once");
        always(
            "router 1 keeps the configured weights",
            Duration::from_millis(1500),
            Duration::from_millis(100),
            || {
                let a = answer(fleet, 1)?;
                anyhow::ensure!(a == first_ip, "router 1 answers {a}");
                Ok(())
            },
        )?;
        assert_eq!(
            fleet.edge_view(1, &other_id)?["weight_override"],
            Value::Null
        );

        // Cleared: back to the configured weight.
        let (status, _) = set_weight(fleet, 0, &other_id, Value::Null)?;
        assert_eq!(status, 200);
        assert_eq!(answer(fleet, 0)?, first_ip);

        // Set again, then a restart forgets it (memory only).
        let (status, _) = set_weight(fleet, 0, &other_id, json!(HEAVY))?;
        assert_eq!(status, 200);
        assert_eq!(answer(fleet, 0)?, other_ip);
        fleet.restart_router(0)?;
        assert_eq!(
            answer(fleet, 0)?,
            first_ip,
            "the override survived a restart"
        );
        Ok(())
    });
}
