//! Issue 15 point 4: TLS to NATS (`bus.tls_ca`, `bus.tls_cert`, `bus.tls_key`), end to end
//! with a real `nats-server` that requires TLS and verifies client certificates (mutual TLS),
//! its certificates made by a demo CA at test time, and real routers and an edge: reports,
//! drains and purges flow over TLS; a router that does not trust the server's CA cannot use
//! the bus (its drain API answers 503) and joins once the right CA is back; unreadable TLS
//! files are config errors naming the key (exit 64).
//!
//! Needs `nats-server` (Debian package; `.ci/run` installs it).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdn_tests::fleet::config::{edge_toml, router_toml};
use cdn_tests::fleet::spec::default_regions;
use cdn_tests::fleet::EdgePlan;
use cdn_tests::fleet::{Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::binary;
use cdn_tests::harness::certs::{write_atomic, DemoCa};
use cdn_tests::harness::nats::{auth_config, publish_as, BusUser, NatsServer};
use cdn_tests::harness::process::Echo;
use cdn_tests::harness::{eventually, eventually_every};
use serde_json::json;

/// A `[bus]` section for `user` with TLS files.
fn bus_toml(url: &str, user: &str, password: &str, dir: &Path) -> String {
    let p = |f: &str| dir.join(f).display().to_string();
    format!(
        "\n[bus]\nservers = [\"{url}\"]\nuser = \"{user}\"\npassword = \"{password}\"\n\
         tls_ca = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n\
         startup_timeout = \"2s\"\nrequest_timeout = \"1s\"\n",
        p("bus-ca.pem"),
        p("bus-client.pem"),
        p("bus-client.key"),
    )
}

#[test]
fn the_fleet_bus_runs_over_tls_with_client_certificates() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let ca = DemoCa::new("cdn bus test CA")?;
    write_atomic(&dir.join("bus-ca.pem"), ca.pem().as_bytes())?;
    let (server_cert, server_key) = ca.leaf(&["127.0.0.1"])?.write(dir, "nats-server")?;
    ca.client_leaf("cdn bus client")?.write(dir, "bus-client")?;

    let eu = default_regions()
        .into_iter()
        .find(|r| r.name == "eu-west")
        .expect("eu-west in the default regions");
    let users = [
        BusUser {
            user: "router".into(),
            password: "router-pw".into(),
            edge: None,
        },
        BusUser {
            user: "edge".into(),
            password: "edge-pw".into(),
            edge: Some((eu.name.clone(), eu.edge_id.clone())),
        },
    ];
    let conf = dir.join("nats.conf");
    std::fs::write(
        &conf,
        format!(
            "{}tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  \
             verify: true\n  timeout: 2\n}}\n",
            auth_config(&users, "CDN_PURGES", "cdn_operator"),
            server_cert.display(),
            server_key.display(),
            dir.join("bus-ca.pem").display(),
        ),
    )?;
    let nats = NatsServer::start_with(&dir.join("nats"), Some(&conf), Echo::None)?;
    let url = nats.url();
    // The server takes no plain-text client: what follows runs over TLS.
    let plain = publish_as(&url, "router", "router-pw", "cdn.purges", b"{}");
    assert!(
        !matches!(plain, Ok(Ok(()))),
        "nats-server accepted a plain-text publish: {plain:?}"
    );

    let mut spec = Fleet::builder().only_regions(&["eu-west"]).routers(2);
    spec.router_extra = bus_toml(&url, "router", "router-pw", dir);
    spec.edge_extra = bus_toml(&url, "edge", "edge-pw", dir);
    spec.run(|fleet| {
        fleet.wait_all_up(Duration::from_secs(10))?;
        let id = fleet.edge("eu-west").id().to_string();

        // Reports: in bus mode the edge publishes them only on its NATS subject.
        for router in 0..2 {
            eventually(
                "the router has the edge's report over TLS",
                Duration::from_secs(5),
                || {
                    let v = fleet.edge_view(router, &id)?;
                    anyhow::ensure!(v["last_report"]["edge_id"] == id.as_str(), "{v}");
                    Ok(())
                },
            )?;
        }

        // A purge is stored in the stream and acknowledged by the edge.
        let path = "/obj/1k/bus-tls";
        eventually("cached", Duration::from_secs(5), || {
            let r = fleet.edge("eu-west").get(path)?;
            anyhow::ensure!(r.is_hit(), "{:?}", r.cache_status());
            Ok(())
        })?;
        let r = fleet.admin_post(
            0,
            "/api/v1/purge",
            &json!({ "urls": [format!("http://{SERVICE}{path}")] }),
        )?;
        let v: serde_json::Value = r.json()?;
        assert_eq!(r.status, 200, "{v}");
        assert_eq!(v["stored"], true, "{v}");
        assert_eq!(v["pending"], json!([]), "{v}");
        assert_eq!(v["results"][0]["purged"], 1, "{v}");
        assert!(!fleet.edge("eu-west").get(path)?.is_hit());

        // A drain through router 0 reaches router 1 through the KV bucket.
        let r = fleet.admin_post(0, &format!("/api/v1/edges/{id}/drain"), &json!({}))?;
        assert_eq!(r.status, 200, "{}", r.text());
        eventually_every(
            "router 1 follows the drain",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                let v = fleet.edge_view(1, &id)?;
                anyhow::ensure!(v["manual_drain"] == true, "{v}");
                Ok(())
            },
        )?;

        // Router 1 restarted trusting another CA: the server's certificate is refused, so it
        // starts without the bus (the drain unknown to it) and cannot write operator state.
        let good_ca = std::fs::read(dir.join("bus-ca.pem"))?;
        let other = DemoCa::new("another CA")?;
        write_atomic(&dir.join("bus-ca.pem"), other.pem().as_bytes())?;
        fleet.restart_router(1)?;
        let v = fleet.edge_view(1, &id)?;
        assert_eq!(v["manual_drain"], false, "{v}");
        let r = fleet.admin_post(1, &format!("/api/v1/edges/{id}/undrain"), &json!({}))?;
        assert_eq!(r.status, 503, "{}", r.text());
        // Router 0, connected before, is not affected.
        let r = fleet.admin_post(0, &format!("/api/v1/edges/{id}/drain"), &json!({}))?;
        assert_eq!(r.status, 200, "{}", r.text());

        // The right CA back: router 1's next connection attempt succeeds and it reads the
        // bucket (backoff at most 5 s).
        write_atomic(&dir.join("bus-ca.pem"), &good_ca)?;
        eventually(
            "router 1 joins the bus and applies the drain",
            Duration::from_secs(15),
            || {
                let v = fleet.edge_view(1, &id)?;
                anyhow::ensure!(v["manual_drain"] == true, "{v}");
                Ok(())
            },
        )?;
        Ok(())
    });
    drop(nats);
    Ok(())
}

/// Run `bin --check-config --config <file with text>`; (exit code, stdout + stderr).
fn check(bin: &str, dir: &Path, text: &str) -> (i32, String) {
    let file = dir.join(format!("{bin}.toml"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(binary::binary(bin).unwrap())
        .args(["--check-config", "--config"])
        .arg(&file)
        .env_clear()
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn unreadable_bus_tls_files_exit_64_naming_the_key() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let ca = DemoCa::new("cdn bus test CA")?;
    write_atomic(&dir.join("bus-ca.pem"), ca.pem().as_bytes())?;
    ca.client_leaf("c")?.write(dir, "bus-client")?;
    std::fs::write(dir.join("junk.pem"), "not PEM\n")?;
    let spec = FleetSpec::default();
    let plans: Vec<EdgePlan> = spec
        .regions
        .iter()
        .map(|r| EdgePlan {
            id: r.edge_id.clone(),
            region: r.name.clone(),
            ip: r.ip,
            http: SocketAddr::from((r.ip, 8081)),
            admin: SocketAddr::from((r.ip, 9081)),
            probe_override: None,
        })
        .collect();
    let router = router_toml(
        &spec,
        &plans,
        "127.0.0.1:8553".parse()?,
        "127.0.0.1:8053".parse()?,
    );
    let edge = edge_toml(
        &spec,
        &plans[0],
        "http://127.0.0.1:8080",
        &["http://127.0.0.1:8053".into()],
        Some(dir),
    );
    let good = bus_toml("nats://127.0.0.1:4222", "u", "p", dir);
    for (bin, base) in [("dns-router", &router), ("edge", &edge)] {
        let (code, out) = check(bin, dir, &(base.clone() + &good));
        assert_eq!(code, 0, "{bin}: {out}");
        let bad_ca = good.replace("bus-ca.pem", "missing.pem");
        let (code, out) = check(bin, dir, &(base.clone() + &bad_ca));
        assert_eq!(code, 64, "{bin}: {out}");
        assert!(
            out.contains("bus.tls_ca") && out.contains("missing.pem"),
            "{bin}: {out}"
        );
        let junk_ca = good.replace("bus-ca.pem", "junk.pem");
        let (code, out) = check(bin, dir, &(base.clone() + &junk_ca));
        assert_eq!(code, 64, "{bin}: {out}");
        assert!(out.contains("bus.tls_ca"), "{bin}: {out}");
        let bad_key = good.replace("bus-client.key", "junk.pem");
        let (code, out) = check(bin, dir, &(base.clone() + &bad_key));
        assert_eq!(code, 64, "{bin}: {out}");
        assert!(out.contains("bus.tls_key"), "{bin}: {out}");
        let no_key = good.replace(
            &format!("tls_key = \"{}\"\n", dir.join("bus-client.key").display()),
            "",
        );
        let (code, out) = check(bin, dir, &(base.clone() + &no_key));
        assert_eq!(code, 64, "{bin}: {out}");
        assert!(out.contains("bus.tls_cert"), "{bin}: {out}");
    }
    Ok(())
}
