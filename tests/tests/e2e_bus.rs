//! Issue 15, the fleet bus (NATS JetStream) end to end, with real `nats-server`,
//! `dns-router` and `edge` processes: drains through one router reach the other and survive
//! restarts (KV bucket); a purge issued while an edge is down is applied before that edge
//! serves from its cache again (stream + durable consumer), and an edge whose missed purges
//! are no longer retained revalidates everything; with NATS down DNS answers stay, the edges
//! keep serving and the purge API answers 503, then everything recovers; reports come over
//! subjects, and a report on another edge's subject is refused by NATS (per-edge
//! permissions) or, with a body naming another edge, by the router.
//!
//! Needs `nats-server` (Debian package; `.ci/run` installs it): the harness fails with an
//! install hint when it is missing.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use cdn_tests::fleet::spec::default_regions;
use cdn_tests::fleet::{edge_bus_credentials, EdgeNode, Fleet, SERVICE};
use cdn_tests::harness::nats::{auth_config, nats_server_binary, publish_as, BusUser};
use cdn_tests::harness::{always, eventually, eventually_every, scaled};
use serde_json::{json, Value};

const EU_SUBNET: &str = "81.2.69.0/24";
const SUBNETS: &[&str] = &["8.8.8.0/24", "81.2.69.0/24", "1.0.16.0/24"];

/// Fetch `path` from `edge` until it is a cache hit.
fn warm(edge: &EdgeNode, path: &str) -> anyhow::Result<()> {
    eventually(
        &format!("{path} cached on {}", edge.id()),
        Duration::from_secs(5),
        || {
            let r = edge.get(path)?;
            anyhow::ensure!(r.status == 200, "status {}", r.status);
            anyhow::ensure!(r.is_hit(), "not a hit yet: {:?}", r.cache_status());
            Ok(())
        },
    )
}

fn post(fleet: &Fleet, router: usize, path: &str, body: Value) -> anyhow::Result<(u16, Value)> {
    let r = fleet.admin_post(router, path, &body)?;
    Ok((r.status, r.json()?))
}

fn answers(fleet: &Fleet, router: usize, subnet: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
    fleet.resolve_via(router, SERVICE, Some(subnet))
}

#[test]
fn a_drain_through_one_router_reaches_the_other_within_a_second_and_survives_restarts() {
    Fleet::builder().routers(2).bus_nats().run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let eu = fleet.edge("eu-west").ip();
        let eu_id = fleet.edge("eu-west").id().to_string();
        for i in 0..2 {
            assert_eq!(answers(fleet, i, EU_SUBNET)?, vec![eu], "router {i}");
        }

        let (status, v) = post(fleet, 0, &format!("/api/v1/edges/{eu_id}/drain"), json!({}))?;
        assert_eq!(status, 200, "{v}");
        let started = Instant::now();
        eventually_every(
            "router 1 stops answering the drained edge",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let a = answers(fleet, 1, EU_SUBNET)?;
                anyhow::ensure!(!a.contains(&eu) && !a.is_empty(), "router 1 answers {a:?}");
                Ok(())
            },
        )?;
        let took = started.elapsed();
        assert!(took <= scaled(Duration::from_secs(1)), "took {took:?}");

        // A restarted router has the drain before its first answer.
        fleet.restart_router(1)?;
        let a = answers(fleet, 1, EU_SUBNET)?;
        assert!(
            !a.contains(&eu) && !a.is_empty(),
            "restarted router 1 answers {a:?}"
        );
        let view = fleet.edge_view(1, &eu_id)?;
        assert_eq!(view["manual_drain"], true, "{view}");

        // A reload that drops the edge, then one that adds it back: the drain, still in the
        // bucket, applies to it again (the bucket is read again for edges a reload adds).
        let path = fleet.router_config_path(1).to_path_buf();
        let full = std::fs::read_to_string(&path)?;
        let without: Vec<&str> = full
            .split("\n\n")
            .filter(|block| {
                let edge =
                    block.starts_with("[[edges]]") && block.contains(&format!("id = \"{eu_id}\""));
                let token = block.starts_with("[[admin.tokens]]")
                    && block.contains(&format!("edge = \"{eu_id}\""));
                !edge && !token
            })
            .collect();
        std::fs::write(&path, without.join("\n\n"))?;
        let (status, v) = post(fleet, 1, "/api/v1/reload", json!({}))?;
        assert_eq!(status, 200, "{v}");
        assert!(fleet.edge_view(1, &eu_id).is_err(), "the edge is gone");
        std::fs::write(&path, &full)?;
        let (status, v) = post(fleet, 1, "/api/v1/reload", json!({}))?;
        assert_eq!(status, 200, "{v}");
        eventually(
            "router 1 applies the bucket's drain to the edge a reload added back",
            Duration::from_secs(3),
            || {
                let view = fleet.edge_view(1, &eu_id)?;
                anyhow::ensure!(view["manual_drain"] == true, "{view}");
                Ok(())
            },
        )?;

        // Undrain through the restarted router reaches the other one.
        let (status, v) = post(
            fleet,
            1,
            &format!("/api/v1/edges/{eu_id}/undrain"),
            json!({}),
        )?;
        assert_eq!(status, 200, "{v}");
        eventually_every(
            "router 0 answers the undrained edge again",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let a = answers(fleet, 0, EU_SUBNET)?;
                anyhow::ensure!(a == [eu], "router 0 answers {a:?}");
                Ok(())
            },
        )?;
        fleet.restart_router(0)?;
        assert_eq!(answers(fleet, 0, EU_SUBNET)?, vec![eu]);

        // Unknown edges are refused before anything is written.
        let (status, _) = post(fleet, 0, "/api/v1/edges/nope/drain", json!({}))?;
        assert_eq!(status, 404);
        Ok(())
    });
}

#[test]
fn a_purge_missed_while_an_edge_was_down_is_applied_before_it_serves_again() {
    Fleet::builder()
        .only_regions(&["us-east", "eu-west"])
        .bus_nats()
        .run(|fleet| {
            fleet.nats().expect("bus fleet").url();
            let path = "/obj/1k/bus-purge-me";
            let other = "/obj/1k/bus-keep-me";
            for e in fleet.edges() {
                warm(e, path)?;
                warm(e, other)?;
            }
            let us_id = fleet.edge("us-east").id().to_string();
            let eu_id = fleet.edge("eu-west").id().to_string();
            fleet.kill_edge("eu-west")?;

            let url = format!("http://{SERVICE}{path}");
            let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["stored"], true, "{v}");
            assert!(v["seq"].as_u64().is_some_and(|s| s >= 1), "{v}");
            let results = v["results"].as_array().cloned().unwrap_or_default();
            assert_eq!(results.len(), 1, "{v}");
            assert_eq!(results[0]["edge"], us_id.as_str(), "{v}");
            assert_eq!(results[0]["purged"], 1, "{v}");
            assert_eq!(v["pending"], json!([eu_id]), "{v}");

            let before = fleet.origin_stats().path(path);
            let r = fleet.edge("us-east").get(path)?;
            assert!(!r.is_hit(), "us-east still had it: {:?}", r.cache_status());

            // eu-west comes back with its disk cache: the purge is applied before it serves.
            fleet.restart_edge("eu-west")?;
            let eu = fleet.edge("eu-west");
            let r = eu.get(path)?;
            assert_eq!(r.status, 200);
            assert!(
                !r.is_hit(),
                "eu-west served the purged object from its cache: {:?}",
                r.cache_status()
            );
            assert_eq!(
                fleet.origin_stats().path(path),
                before + 2,
                "one refetch per edge"
            );
            // What was not purged is still served from the disk cache, and the refetched
            // object (stored after the purge) is kept.
            assert!(
                eu.get(other)?.is_hit(),
                "eu-west lost an object nobody purged"
            );
            assert!(eu.get(path)?.is_hit(), "the refetched object was not kept");

            // The next purge reaches both edges, each acknowledging.
            let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["pending"], json!([]), "{v}");
            assert_eq!(v["results"].as_array().map(Vec::len), Some(2), "{v}");
            Ok(())
        });
}

#[test]
fn an_edge_whose_missed_purges_expired_revalidates_its_whole_cache() {
    let mut spec = Fleet::builder().only_regions(&["eu-west"]).bus_nats();
    spec.bus_extra = "purge_retention = \"1s\"\npurge_ack_timeout = \"500ms\"\n".into();
    spec.run(|fleet| {
        let path = "/obj/1k/bus-expired";
        let other = "/obj/1k/bus-expired-other";
        let eu = fleet.edge("eu-west");
        warm(eu, path)?;
        warm(eu, other)?;
        fleet.kill_edge("eu-west")?;
        let url = format!("http://{SERVICE}{path}");
        let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
        assert_eq!(status, 200, "{v}");
        // Let the stream drop it (max age 1 s).
        std::thread::sleep(Duration::from_millis(2500));
        fleet.restart_edge("eu-west")?;
        let eu = fleet.edge("eu-west");
        let before = fleet.origin_stats().path(other);
        let r = eu.get(other)?;
        assert_eq!(r.status, 200);
        assert_eq!(
            fleet.origin_stats().path(other),
            before + 1,
            "an object the edge could not know about was served without revalidation: {:?}",
            r.cache_status()
        );
        assert!(
            eu.process().is_some_and(|p| p
                .log_lines()
                .iter()
                .any(|l| l.contains("no longer retained"))),
            "the edge did not say why"
        );
        Ok(())
    });
}

#[test]
fn with_nats_down_dns_and_edges_carry_on_and_the_purge_api_refuses_then_recovers() {
    let mut spec = Fleet::builder()
        .only_regions(&["us-east", "eu-west"])
        .routers(2)
        .bus_nats();
    spec.bus_extra = "request_timeout = \"1s\"\n".into();
    spec.run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let before: Vec<Vec<Ipv4Addr>> = SUBNETS
            .iter()
            .map(|s| answers(fleet, 0, s))
            .collect::<Result<_, _>>()?;
        let path = "/obj/1k/bus-down";
        warm(fleet.edge("us-east"), path)?;

        // A purge admin.max_body_size (1 MiB) admits but over NATS's max_payload (1 MiB) once
        // wrapped as a bus message: 413, split it — not 503, which says "retry".
        let mut tags: Vec<String> = vec!["t".repeat(1000); 1045];
        let short = (1usize << 20) - 16 - json!({ "tags": tags }).to_string().len() - 3;
        tags.push("u".repeat(short));
        let body = json!({ "tags": tags });
        let len = body.to_string().len();
        assert!(len <= 1 << 20 && len > (1 << 20) - 32, "{len}");
        let (status, v) = post(fleet, 0, "/api/v1/purge", body)?;
        assert_eq!(status, 413, "{v}");
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("max_payload")),
            "{v}"
        );

        fleet.nats().expect("bus fleet").stop();
        let url = format!("http://{SERVICE}{path}");
        let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
        assert_eq!(status, 503, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("bus")),
            "{v}"
        );
        let eu_id = fleet.edge("eu-west").id().to_string();
        let (status, v) = post(fleet, 0, &format!("/api/v1/edges/{eu_id}/drain"), json!({}))?;
        assert_eq!(status, 503, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("not sent")),
            "{v}"
        );

        always(
            "DNS answers unchanged and the edges serve while NATS is down",
            Duration::from_secs(4),
            Duration::from_millis(200),
            || {
                for (s, want) in SUBNETS.iter().zip(&before) {
                    let a = answers(fleet, 0, s)?;
                    anyhow::ensure!(&a == want, "{s}: {a:?}, was {want:?}");
                }
                let r = fleet.edge("us-east").get(path)?;
                anyhow::ensure!(r.status == 200 && r.is_hit(), "edge: {}", r.status);
                Ok(())
            },
        )?;

        fleet.nats().expect("bus fleet").start_again()?;
        eventually(
            "the purge API works again once NATS is back",
            Duration::from_secs(15),
            || {
                let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
                anyhow::ensure!(status == 200, "{status} {v}");
                anyhow::ensure!(v["pending"] == json!([]), "edges pending: {v}");
                Ok(())
            },
        )?;
        let r = fleet.edge("us-east").get(path)?;
        assert!(!r.is_hit(), "the purge after recovery was not applied");
        // The drain refused with 503 while NATS was down was not queued by the client and
        // applied once it reconnected: the edge is not draining on either router.
        for router in 0..2 {
            let v: Value = fleet
                .admin_get(router, &format!("/api/v1/edges/{eu_id}"))?
                .json()?;
            assert_eq!(v["draining"], json!(false), "router {router}: {v}");
        }
        // Both routers watch the bucket again: a drain through router 0 reaches router 1.
        let eu = fleet.edge("eu-west").ip();
        let (status, v) = post(fleet, 0, &format!("/api/v1/edges/{eu_id}/drain"), json!({}))?;
        assert_eq!(status, 200, "{v}");
        eventually_every(
            "router 1 follows the drain after the outage",
            Duration::from_secs(2),
            Duration::from_millis(10),
            || {
                let a = answers(fleet, 1, EU_SUBNET)?;
                anyhow::ensure!(!a.contains(&eu) && !a.is_empty(), "router 1 answers {a:?}");
                Ok(())
            },
        )?;
        // An edge stops cleanly (SIGTERM, within its grace) while the bus is down.
        fleet.nats().expect("bus fleet").stop();
        fleet.sigterm_edge("us-east")?;
        let clean = fleet.wait_edge_exit("us-east", Duration::from_secs(15))?;
        assert!(clean, "the edge did not exit cleanly with the bus down");
        // It starts with the bus down too (after bus.startup_timeout), but cannot know what
        // was purged meanwhile: its cached objects are revalidated before they are served.
        fleet.restart_edge("us-east")?;
        let before = fleet.origin_stats().path(path);
        let r = fleet.edge("us-east").get(path)?;
        assert_eq!(r.status, 200);
        assert_eq!(
            fleet.origin_stats().path(path),
            before + 1,
            "served from its cache without revalidation: {:?}",
            r.cache_status()
        );
        Ok(())
    });
}

#[test]
fn reports_come_over_subjects_and_a_forged_report_is_refused() {
    Fleet::builder()
        .only_regions(&["us-east", "eu-west"])
        .bus_nats()
        .run(|fleet| {
            fleet.wait_all_up(Duration::from_secs(10))?;
            let eu_id = fleet.edge("eu-west").id().to_string();
            let us_id = fleet.edge("us-east").id().to_string();
            for id in [&us_id, &eu_id] {
                eventually(
                    "the router has the edge's report",
                    Duration::from_secs(3),
                    || {
                        let v = fleet.edge_view(0, id)?;
                        anyhow::ensure!(v["last_report"]["edge_id"] == id.as_str(), "{v}");
                        Ok(())
                    },
                )?;
            }
            let url = fleet.nats().expect("bus fleet").url();
            let (user, password) = edge_bus_credentials(&us_id);
            // us-east's credentials claiming eu-west is draining.
            let mut report = fleet.edge_view(0, &eu_id)?["last_report"].clone();
            report["status"] = json!("draining");
            report["seq"] = json!(u64::MAX / 2);
            report["sent_at_ms"] = json!(cdn_shared::unix_ms());
            let body = serde_json::to_vec(&report)?;
            // On eu-west's subject: the server refuses (permissions).
            let refused = publish_as(&url, &user, &password, "cdn.reports.eu-west.euw1", &body)?;
            let err = refused.expect_err("the server took a report on another edge's subject");
            assert!(err.contains("Permissions Violation"), "{err}");
            // On its own subject with eu-west's body: the router refuses (subject ≠ body).
            let own = format!("cdn.reports.us-east.{us_id}");
            publish_as(&url, &user, &password, &own, &body)?
                .map_err(|e| anyhow::anyhow!("own subject refused: {e}"))?;
            always(
                "eu-west is not drained by forged reports",
                Duration::from_secs(1),
                Duration::from_millis(100),
                || {
                    let v = fleet.edge_view(0, &eu_id)?;
                    anyhow::ensure!(v["report_draining"] == false, "{v}");
                    anyhow::ensure!(
                        answers(fleet, 0, EU_SUBNET)? == [fleet.edge("eu-west").ip()],
                        "eu-west no longer answered"
                    );
                    Ok(())
                },
            )?;
            let metrics = fleet.admin_get(0, "/metrics")?.text();
            assert!(
                metrics
                    .lines()
                    .any(|l| l.contains("result=\"bad_subject\"") && !l.ends_with(" 0")),
                "the refusal was not counted"
            );
            Ok(())
        });
}

#[test]
fn the_deploy_nats_config_is_valid_and_grants_what_the_fleet_tests_exercise() -> anyhow::Result<()>
{
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/nats/nats-server.conf");
    let text = std::fs::read_to_string(&file)?;
    let users: Vec<BusUser> = default_regions()
        .into_iter()
        .map(|r| BusUser {
            user: format!("edge-{}", r.edge_id),
            password: String::new(),
            edge: Some((r.name, r.edge_id)),
        })
        .chain([BusUser {
            user: "router".into(),
            password: String::new(),
            edge: None,
        }])
        .collect();
    let generated = auth_config(&users, "CDN_PURGES", "cdn_operator");
    // Every subject the tests' users are allowed (quoted tokens with a `.` or `>`).
    let subjects: Vec<&str> = generated
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|t| t.contains('.') || t.contains('>'))
        .collect();
    assert!(subjects.len() > 30, "{generated}");
    for s in subjects {
        assert!(
            text.contains(&format!("\"{s}\"")),
            "deploy config lacks `{s}`"
        );
    }
    let out = std::process::Command::new(nats_server_binary()?)
        .args(["-t", "-c"])
        .arg(&file)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The address after `word` on the tour line starting with `prefix`.
fn tour_addr(lines: &[String], prefix: &str, word: &str) -> Option<String> {
    let line = lines.iter().find(|l| l.trim_start().starts_with(prefix))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words.iter().position(|w| *w == word)?;
    Some(words.get(i + 1)?.trim_end_matches(',').to_string())
}

#[test]
fn the_fleet_binary_runs_two_routers_on_nats() -> anyhow::Result<()> {
    use cdn_tests::harness::dns::hickory_proto::rr::RecordType;
    use cdn_tests::harness::dns::{self, DnsQuery};
    use cdn_tests::harness::{http, Process, Signal};

    let args: Vec<String> = [
        "--no-build",
        "--bus",
        "nats",
        "--routers",
        "2",
        "--dns",
        "127.0.0.1:0",
        "--admin",
        "127.0.0.1:0",
        "--origin",
        "127.0.0.1:0",
        "--edge-port",
        "0",
        "--edge-admin-port",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_fleet"));
    let mut fleet = Process::spawn("fleet", exe, &args, &[])?;
    fleet.graceful_drop(Duration::from_secs(10));
    fleet.wait_for_line("Ctrl-C stops everything", Duration::from_secs(60))?;
    let lines = fleet.log_lines();
    let all = lines.join("\n");
    let admin0 = tour_addr(&lines, "dns-router    DNS", "admin").expect(&all);
    let dns1: std::net::SocketAddr = tour_addr(&lines, "dns-router 1", "DNS")
        .expect(&all)
        .parse()?;
    assert!(
        tour_addr(&lines, "nats-server", "nats-server").is_some_and(|u| u.starts_with("nats://")),
        "{all}"
    );
    assert!(all.contains("7. The fleet bus"), "{all}");

    let admin0: std::net::SocketAddr = admin0.trim_start_matches("http://").parse()?;
    let us = "127.0.1.1".parse::<Ipv4Addr>()?;
    let answer1 = || -> anyhow::Result<Vec<Ipv4Addr>> {
        let m = DnsQuery::new(SERVICE, RecordType::A)
            .subnet("8.8.8.0/24")
            .udp(dns1)?;
        Ok(dns::a_records(&m))
    };
    eventually("router 1 answers us-east", Duration::from_secs(10), || {
        anyhow::ensure!(answer1()? == [us], "router 1 answers {:?}", answer1()?);
        Ok(())
    })?;
    let r = http::post(admin0, "/api/v1/edges/use1/drain")
        .bearer(cdn_tests::fleet::DEMO_TOKEN)
        .send()?;
    assert_eq!(r.status, 200, "{}", r.text());
    eventually_every(
        "router 1 follows router 0's drain",
        Duration::from_secs(1),
        Duration::from_millis(10),
        || {
            let a = answer1()?;
            anyhow::ensure!(!a.contains(&us) && !a.is_empty(), "router 1 answers {a:?}");
            Ok(())
        },
    )?;

    fleet.signal(Signal::INT)?;
    let status = fleet.wait_exit(Duration::from_secs(20))?;
    assert!(status.success(), "fleet exits 0 on Ctrl-C: {status}");
    Ok(())
}

#[test]
fn with_one_of_three_nats_nodes_down_purges_and_reports_still_flow() {
    let mut spec = Fleet::builder()
        .only_regions(&["us-east", "eu-west"])
        .bus_nats();
    spec.nats_nodes = 3;
    spec.run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let path = "/obj/1k/bus-cluster";
        let url = format!("http://{SERVICE}{path}");
        let purge_everywhere = |fleet: &Fleet| -> anyhow::Result<()> {
            let (status, v) = post(fleet, 0, "/api/v1/purge", json!({ "urls": [url] }))?;
            anyhow::ensure!(status == 200, "{status} {v}");
            anyhow::ensure!(v["pending"] == json!([]), "edges pending: {v}");
            Ok(())
        };
        // The cluster elects its JetStream leaders in the background.
        eventually(
            "a purge through the cluster",
            Duration::from_secs(20),
            || purge_everywhere(fleet),
        )?;
        let eu_id = fleet.edge("eu-west").id().to_string();
        let seq_of = |fleet: &Fleet| -> anyhow::Result<u64> {
            let v = fleet.edge_view(0, &eu_id)?;
            v["last_report"]["seq"]
                .as_u64()
                .ok_or_else(|| anyhow::anyhow!("no report: {v}"))
        };
        eventually("a report over the cluster", Duration::from_secs(5), || {
            seq_of(fleet)
        })?;

        fleet.nats_node(0).expect("node 0").stop();
        warm(fleet.edge("us-east"), path)?;
        eventually(
            "purges still stored and applied with one node down",
            Duration::from_secs(15),
            || purge_everywhere(fleet),
        )?;
        let r = fleet.edge("us-east").get(path)?;
        assert!(
            !r.is_hit(),
            "the purge was not applied: {:?}",
            r.cache_status()
        );
        let seq = seq_of(fleet)?;
        eventually("reports still arrive", Duration::from_secs(5), || {
            let now = seq_of(fleet)?;
            anyhow::ensure!(now > seq, "seq {now}");
            Ok(())
        })?;
        Ok(())
    });
}
