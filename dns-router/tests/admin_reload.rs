//! Reload through `POST /api/v1/reload` and SIGHUP on a running admin server: a good config
//! adds and removes edges (new ones probed at once) and rotates the token; a bad config is
//! refused with 400 and the ConfigError text while the old config keeps serving.

mod admin_common;

use std::time::Duration;

use admin_common::*;
use cdn_dns_router::reload;
use cdn_tests::harness::{signal_pid, Signal};

fn edges_cfg(ids: &[(&'static str, u16)], token: &str) -> String {
    let specs: Vec<EdgeSpec> = ids
        .iter()
        .enumerate()
        .map(|(i, (id, port))| EdgeSpec {
            id,
            region: if i % 2 == 0 { "east" } else { "west" },
            ipv4: "192.0.2.1",
            probe_port: *port,
            admin_url: None,
        })
        .collect();
    config_toml(&specs, Some(token), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_good_then_bad_config() {
    let (p, _) = fake_edge().await;
    let f = start(&edges_cfg(&[("a", p), ("b", p)], TOKEN));
    let g0 = f.ctx.health.view().generation;

    // Good: `b` removed, `c` added, token rotated.
    std::fs::write(&f.path, edges_cfg(&[("a", p), ("c", p)], "new-token")).unwrap();
    let (s, v) = http(f.addr, "POST", "/api/v1/reload", Some(TOKEN), None).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["reloaded"], true);
    assert_eq!(v["edges"], 2);
    let view = f.ctx.health.view();
    assert!(view.generation > g0);
    assert!(view.edges.contains_key("c") && !view.edges.contains_key("b"));
    let health = f.ctx.health.clone();
    eventually(Duration::from_secs(2), "new edge probed", || {
        health.view().edges["c"].last_probe.is_some()
    })
    .await;
    let (_, v) = http(f.addr, "GET", "/api/v1/edges", None, None).await;
    let ids: Vec<_> = v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a", "c"]);
    // The per-edge gauges follow the live edge set: `b` is gone, `c` is there.
    let (_, text) = http(f.addr, "GET", "/metrics", None, None).await;
    let text = text.as_str().unwrap().to_string();
    assert!(text.contains("cdn_edge_up{edge=\"c\"} "), "{text}");
    assert!(
        text.contains("cdn_router_edge_draining{edge=\"a\"} 0"),
        "{text}"
    );
    assert!(!text.contains("edge=\"b\"}"), "{text}");
    // The old token no longer writes; the new one does.
    let (s, _) = http(f.addr, "POST", "/api/v1/edges/a/drain", Some(TOKEN), None).await;
    assert_eq!(s, 401);
    let (s, _) = http(
        f.addr,
        "POST",
        "/api/v1/edges/a/drain",
        Some("new-token"),
        None,
    )
    .await;
    assert_eq!(s, 200);

    // Bad: an edge in an unknown region → 400 naming the key; nothing changes.
    let before = f.ctx.health.view();
    let bad = edges_cfg(&[("a", p), ("d", p)], "new-token").replace(
        "id = \"d\"\nregion = \"west\"",
        "id = \"d\"\nregion = \"mars\"",
    );
    std::fs::write(&f.path, bad).unwrap();
    let (s, v) = http(f.addr, "POST", "/api/v1/reload", Some("new-token"), None).await;
    assert_eq!(s, 400, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(
        err.contains("edges[1].region") && err.contains("mars"),
        "{err}"
    );
    let after = f.ctx.health.view();
    assert_eq!(after.generation, before.generation);
    assert!(after.edges.contains_key("c") && !after.edges.contains_key("d"));
    assert_eq!(f.ctx.config.load().edges[1].id, "c");

    // Not TOML at all.
    std::fs::write(&f.path, "this is [not toml").unwrap();
    let (s, v) = http(f.addr, "POST", "/api/v1/reload", Some("new-token"), None).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap().starts_with("config error"),
        "{v}"
    );
    let (s, v) = http(
        f.addr,
        "GET",
        "/api/v1/explain?name=www.cdn.test&client=10.1.0.1",
        None,
        None,
    )
    .await;
    assert_eq!(s, 200, "old config still answers: {v}");
    assert_eq!(v["outcome"], "service", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads() {
    // Install tokio's SIGHUP handler before anything sends one (the default action would kill
    // the test process).
    let _hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).unwrap();
    let (p, _) = fake_edge().await;
    let f = start(&edges_cfg(&[("a", p)], TOKEN));
    let _task = reload::spawn_sighup(f.ctx.clone(), f.shutdown.clone());

    std::fs::write(&f.path, edges_cfg(&[("a", p), ("z", p)], TOKEN)).unwrap();
    signal_pid(std::process::id(), Signal::HUP).unwrap();
    let health = f.ctx.health.clone();
    eventually(Duration::from_secs(3), "edge z after SIGHUP", || {
        health.view().edges.contains_key("z")
    })
    .await;
    assert_eq!(f.ctx.config.load().edges.len(), 2);
}
