//! `health.probe_ca_file` is checked like every file the config names: `--check-config`
//! exits 64 naming the key when it is missing or holds no certificate (relative paths are
//! found next to the config file), and a reload naming a bad CA file is refused while the
//! old config keeps serving.

mod admin_common;
mod dns_support;

use std::process::Command;

fn check_config(dir: &std::path::Path, text: &str) -> (Option<i32>, String) {
    let p = dir.join("router.toml");
    std::fs::write(&p, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-router"))
        .arg("--config")
        .arg(&p)
        .arg("--check-config")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A self-signed certificate in PEM (made with the `openssl` command line tool).
fn write_cert(path: &std::path::Path) {
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=probe CA", "-keyout"])
        .arg(path.with_extension("key"))
        .arg("-out")
        .arg(path)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_validates_the_probe_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let up = "https://localhost:9/healthz";
    let good = dns_support::config_text(up, up, up);
    let with_ca = |file: &str| {
        good.replace(
            "[health]\n",
            &format!("[health]\nprobe_ca_file = \"{file}\"\n"),
        )
    };

    let (code, err) = check_config(dir.path(), &with_ca("missing-ca.pem"));
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("health.probe_ca_file") && err.contains("missing-ca.pem"),
        "{err}"
    );

    std::fs::write(dir.path().join("junk.pem"), "no certificates here\n").unwrap();
    let (code, err) = check_config(dir.path(), &with_ca("junk.pem"));
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("health.probe_ca_file"), "{err}");

    // Relative to the config file's directory, wherever the command runs.
    write_cert(&dir.path().join("ca.pem"));
    let (code, err) = check_config(dir.path(), &with_ca("ca.pem"));
    assert_eq!(code, Some(0), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_with_a_bad_probe_ca_file_is_refused() {
    use admin_common::*;
    let (p, _) = fake_edge().await;
    let edge = |id| EdgeSpec {
        id,
        region: "east",
        ipv4: "192.0.2.1",
        probe_port: p,
        admin_url: None,
    };
    let text = config_toml(&[edge("a")], Some(TOKEN), "");
    let f = start(&text);
    write_cert(&f.dir.path().join("ca.pem"));

    let with_ca = |file: &str| {
        config_toml(&[edge("a"), edge("b")], Some(TOKEN), "").replace(
            "[health]\n",
            &format!("[health]\nprobe_ca_file = \"{file}\"\n"),
        )
    };
    std::fs::write(&f.path, with_ca("nope.pem")).unwrap();
    let (s, v) = http(f.addr, "POST", "/api/v1/reload", Some(TOKEN), None).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("health.probe_ca_file"),
        "{v}"
    );
    assert_eq!(f.ctx.config.load().edges.len(), 1, "old config kept");

    // A good CA file (relative to the config file) loads, stored as an absolute path.
    std::fs::write(&f.path, with_ca("ca.pem")).unwrap();
    let (s, v) = http(f.addr, "POST", "/api/v1/reload", Some(TOKEN), None).await;
    assert_eq!(s, 200, "{v}");
    let cfg = f.ctx.config.load();
    assert_eq!(cfg.edges.len(), 2);
    assert_eq!(
        cfg.health.probe_ca_file.as_deref(),
        Some(f.dir.path().join("ca.pem").as_path())
    );
}
