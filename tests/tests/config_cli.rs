//! The process contract for configuration, through the real binaries: the fleet's generated
//! configs pass `--check-config` (exit 0), and a bad config exits 64 with one message naming
//! the file and the key.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;

use cdn_tests::fleet::config::{edge_toml, router_toml};
use cdn_tests::fleet::EdgePlan;
use cdn_tests::fleet::FleetSpec;
use cdn_tests::harness::binary;

fn plans(spec: &FleetSpec) -> Vec<EdgePlan> {
    spec.regions
        .iter()
        .map(|r| EdgePlan {
            id: r.edge_id.clone(),
            region: r.name.clone(),
            ip: r.ip,
            http: SocketAddr::from((r.ip, 8081)),
            admin: SocketAddr::from((r.ip, 9081)),
            probe_override: None,
        })
        .collect()
}

/// Run `bin --check-config --config <file with text>`; (exit code, stdout + stderr).
fn check(bin: &str, dir: &Path, text: &str) -> (i32, String) {
    let file = dir.join(format!("{bin}.toml"));
    std::fs::write(&file, text).unwrap();
    let out = Command::new(binary(bin).unwrap())
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
fn generated_configs_pass_check_config_and_bad_ones_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let spec = FleetSpec::default();
    let p = plans(&spec);
    let router = router_toml(
        &spec,
        &p,
        "127.0.0.1:8553".parse().unwrap(),
        "127.0.0.1:8053".parse().unwrap(),
    );
    let edge = edge_toml(
        &spec,
        &p[0],
        "http://127.0.0.1:8080",
        &["http://127.0.0.1:8053".into()],
        Some(dir.path()),
    );
    let (code, out) = check("dns-router", dir.path(), &router);
    assert_eq!(code, 0, "{out}");
    let (code, out) = check("edge", dir.path(), &edge);
    assert_eq!(code, 0, "{out}");

    // Unknown key.
    let (code, out) = check(
        "dns-router",
        dir.path(),
        &format!("{router}\n[bogus]\nx = 1\n"),
    );
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("bogus") && out.contains("dns-router.toml"),
        "{out}"
    );
    // Bad duration.
    let bad = router.replace("probe_interval = \"500ms\"", "probe_interval = \"soon\"");
    let (code, out) = check("dns-router", dir.path(), &bad);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("health.probe_interval"), "{out}");
    // Bad address.
    let bad = edge.replace("127.0.1.1:9081", "127.0.1.1:99999");
    let (code, out) = check("edge", dir.path(), &bad);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("admin.listen") && out.contains("edge.toml"),
        "{out}"
    );
    // A reference to an unknown region.
    let bad = router.replace("region = \"eu-west\"\n", "region = \"mars\"\n");
    let (code, out) = check("dns-router", dir.path(), &bad);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("mars"), "{out}");

    // Relative paths in an edge config are relative to the file (the binary runs elsewhere).
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("a-file"), b"x").unwrap();
    let logged = format!("{edge}\n[access_log]\nenabled = true\npath = \"logs/access.jsonl\"\n");
    let (code, out) = check("edge", dir.path(), &logged);
    assert_eq!(code, 0, "{out}");
    let (code, out) = check(
        "edge",
        dir.path(),
        &logged.replace("logs/access.jsonl", "nowhere/access.jsonl"),
    );
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("access_log.path"), "{out}");
    // A cache directory that cannot be one: refused by --check-config, naming the key.
    let lines: Vec<&str> = edge
        .lines()
        .map(|l| {
            if l.starts_with("disk_path = ") {
                "disk_path = \"a-file/sub\""
            } else {
                l
            }
        })
        .collect();
    assert!(lines.contains(&"disk_path = \"a-file/sub\""));
    let (code, out) = check("edge", dir.path(), &lines.join("\n"));
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("cache.disk_path") && out.contains("a-file"),
        "{out}"
    );
}
