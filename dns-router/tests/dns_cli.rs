//! The binary: `--check-config` (exit 0 / 64 with the key), the `listening`/`ready` lines,
//! answering, and SIGTERM.

mod dns_support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hickory_proto::rr::RecordType;

use dns_support::*;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dns-router"))
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
    let out = bin()
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = good.replace("data = [\"192.0.2.99\"]", "data = [\"192.0.2.999\"]");
    let p = write_config(dir.path(), &bad);
    let out = bin()
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zones[0].records[2].data[0]"), "{err}");

    let missing = good.replace("[geo]\n", "[geo]\nnetwork_map = \"no-such-map.txt\"\n");
    let p = write_config(dir.path(), &missing);
    let out = bin()
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("geo.network_map"));

    // A relative network map next to the config file is found.
    std::fs::write(dir.path().join("map.txt"), "192.0.2.0/24 eu-west\n").unwrap();
    let rel = good.replace("[geo]\n", "[geo]\nnetwork_map = \"map.txt\"\n");
    let p = write_config(dir.path(), &rel);
    let out = bin()
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
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
    let mut child = KillOnDrop(
        bin()
            .arg("--config")
            .arg(&p)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut udp_addr: Option<SocketAddr> = None;
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The human format quotes string fields (`proto="udp"`); compare without quotes.
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("log line")
            .replace('"', "");
        seen.push(line.clone());
        if line.contains("listening") && line.contains("proto=udp") && line.contains("name=dns") {
            let a = line
                .split("addr=")
                .nth(1)
                .unwrap()
                .split_whitespace()
                .next()
                .unwrap();
            udp_addr = Some(a.parse().unwrap());
        }
        if line.contains("ready") {
            break;
        }
        assert!(Instant::now() < deadline, "{seen:?}");
    }
    assert!(
        seen.iter()
            .any(|l| l.contains("proto=tcp") && l.contains("name=dns")),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|l| l.contains("proto=http") && l.contains("name=admin")),
        "{seen:?}"
    );
    let r = udp(
        udp_addr.unwrap(),
        &query("static.cdn.example.test", RecordType::A),
    );
    assert_eq!(r.answers.len(), 1);
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.0.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(Instant::now() < deadline, "did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child if the test fails before stopping it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}
