//! The binary: `--check-config` (exit 0 / 64 with the key), the `listening`/`ready` lines,
//! answering, and SIGTERM.

mod dns_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdn_tests::harness::{Process, Signal};

use hickory_proto::rr::RecordType;

use dns_support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dns-router"))
}

/// `dns-router --config <p> --check-config`.
fn check_config(p: &std::path::Path) -> std::process::Output {
    bin()
        .arg("--config")
        .arg(p)
        .arg("--check-config")
        .output()
        .unwrap()
}

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("router.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn check_config_validates_record_data_and_files() {
    let dir = tempfile::tempdir().unwrap();
    let up = "http://127.0.0.1:9/healthz";
    let good = config_text(up, up, up);
    let p = write_config(dir.path(), &good);
    let out = check_config(&p);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = good.replace("data = [\"192.0.2.99\"]", "data = [\"192.0.2.999\"]");
    let p = write_config(dir.path(), &bad);
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zones[0].records[2].data[0]"), "{err}");

    // A CNAME loop (`alias → static → alias`) is a config error naming the record.
    let looped = good.replace(
        "name = \"static\"\ntype = \"A\"\nttl = 30\ndata = [\"192.0.2.99\"]",
        "name = \"static\"\ntype = \"CNAME\"\ndata = [\"alias\"]",
    );
    assert_ne!(looped, good);
    let p = write_config(dir.path(), &looped);
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("zones[0].records[2].data") && err.contains("CNAME loop"),
        "{err}"
    );

    // An https probe URL whose host is no TLS server name (a label ending in `-`): refused
    // here, not at probe time with the edge left unprobed (and answered).
    let unprobeable = config_text(up, up, "https://apne1-.example:443/healthz");
    let p = write_config(dir.path(), &unprobeable);
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("edges[2].probe_url"), "{err}");

    let missing = good.replace("[geo]\n", "[geo]\nnetwork_map = \"no-such-map.txt\"\n");
    let p = write_config(dir.path(), &missing);
    let out = check_config(&p);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("geo.network_map"));

    // A relative network map next to the config file is found.
    std::fs::write(dir.path().join("map.txt"), "192.0.2.0/24 eu-west\n").unwrap();
    let rel = good.replace("[geo]\n", "[geo]\nnetwork_map = \"map.txt\"\n");
    let p = write_config(dir.path(), &rel);
    let out = check_config(&p);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn binary_serves_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (up, _) = healthy_edge();
    let p = write_config(dir.path(), &config_text(&up, &up, &up));
    let args = ["--config".to_string(), p.display().to_string()];
    let mut router = Process::spawn(
        "dns-router",
        Path::new(env!("CARGO_BIN_EXE_dns-router")),
        &args,
        &[],
    )
    .unwrap();
    router.wait_ready(Duration::from_secs(20)).unwrap();
    // One `listening` line per socket, read by the harness's parser (human format).
    let udp_addr = router.addr("udp", "dns").unwrap();
    router.addr("tcp", "dns").unwrap();
    router.addr("http", "admin").unwrap();
    let r = udp(udp_addr, &query("static.cdn.example.test", RecordType::A));
    assert_eq!(r.answers.len(), 1);
    router.signal(Signal::TERM).unwrap();
    let status = router
        .wait_exit(Duration::from_secs(15))
        .expect("stops after SIGTERM");
    assert!(status.success(), "{status:?}");
}
