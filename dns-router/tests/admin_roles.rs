//! The locked-down admin plane (issue 17): role tokens (`read`, `operate`, one `report`
//! credential per edge), `admin.read_access`, one header spelling, the deprecated single token
//! still working; and, against the real binary, HTTPS on the admin listener, an audit line for
//! every write, and bad certificate files refused with exit 64 naming the key.

mod admin_common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use admin_common::*;
use cdn_tests::harness::Process;
use serde_json::json;

const TOKENS: &str = r#"
[[admin.tokens]]
name = "viewer"
role = "read"
token = "read-secret-0123456789"
[[admin.tokens]]
name = "alice"
role = "operate"
token = "op-secret-0123456789"
[[admin.tokens]]
name = "east-reporter"
role = "report"
token = "east-secret-0123456789"
edge = "e-east"
"#;

fn edges(p: u16) -> Vec<EdgeSpec<'static>> {
    vec![
        EdgeSpec {
            id: "e-east",
            region: "east",
            ipv4: "192.0.2.1",
            probe_port: p,
            admin_url: None,
        },
        EdgeSpec {
            id: "e-west",
            region: "west",
            ipv4: "192.0.2.2",
            probe_port: p,
            admin_url: None,
        },
    ]
}

/// `[admin]` keys go before the `[[admin.tokens]]` tables.
fn config(p: u16, legacy: Option<&str>, admin_keys: &str) -> String {
    config_toml(&edges(p), legacy, admin_keys) + TOKENS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_does_what_it_may_and_nothing_else() {
    let (p, _) = fake_edge().await;
    let f = start(&config(p, None, ""));
    let drain = "/api/v1/edges/e-east/drain";
    // Reads: open on loopback (the default read_access).
    let (s, _) = http(f.addr, "GET", "/api/v1/edges", None, None).await;
    assert_eq!(s, 200);
    // Writes: only `operate`.
    for (token, status) in [
        (None, 401),
        (Some("read-secret-0123456789"), 403),
        (Some("east-secret-0123456789"), 403),
        (Some("not-a-token"), 401),
    ] {
        let (s, v) = http(f.addr, "POST", drain, token, None).await;
        assert_eq!(s, status, "{token:?}: {v}");
    }
    assert!(!f.ctx.health.view().edges["e-east"].draining);
    let (s, v) = http(f.addr, "POST", drain, Some("op-secret-0123456789"), None).await;
    assert_eq!(s, 200, "{v}");
    assert!(f.ctx.health.view().edges["e-east"].draining);
    let (s, _) = http(
        f.addr,
        "POST",
        "/api/v1/edges/e-east/undrain",
        Some("op-secret-0123456789"),
        None,
    )
    .await;
    assert_eq!(s, 200);
    // Weight overrides: the same rule.
    let weight = "/api/v1/edges/e-east/weight";
    for (token, status) in [
        (None, 401),
        (Some("read-secret-0123456789"), 403),
        (Some("east-secret-0123456789"), 403),
        (Some("op-secret-0123456789"), 200),
    ] {
        let (s, v) = http(
            f.addr,
            "POST",
            weight,
            token,
            Some(br#"{"weight": 3}"#.to_vec()),
        )
        .await;
        assert_eq!(s, status, "{token:?}: {v}");
    }
    assert_eq!(f.ctx.health.view().edges["e-east"].weight_override, Some(3));

    // Reports: the east credential reports as e-east only; operate and read tokens do not report.
    let now = cdn_shared::unix_ms();
    let east = report("e-east", "east", 1, 10.0, now, false);
    let west = report("e-west", "west", 1, 10.0, now, true);
    let (s, v) = http(
        f.addr,
        "POST",
        "/api/v1/reports",
        Some("east-secret-0123456789"),
        Some(east.clone()),
    )
    .await;
    assert_eq!((s, &v["result"]), (200, &json!("accepted")), "{v}");
    let (s, v) = http(
        f.addr,
        "POST",
        "/api/v1/reports",
        Some("east-secret-0123456789"),
        Some(west.clone()),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().unwrap().contains("e-west"), "{v}");
    assert!(
        !f.ctx.health.view().edges["e-west"].draining,
        "the refused report was applied"
    );
    for t in ["op-secret-0123456789", "read-secret-0123456789"] {
        let (s, v) = http(
            f.addr,
            "POST",
            "/api/v1/reports",
            Some(t),
            Some(west.clone()),
        )
        .await;
        assert_eq!(s, 403, "{t}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_header_spelling_and_read_access_token() {
    let (p, _) = fake_edge().await;
    let f = start(&config(p, None, "read_access = \"token\"\n"));
    // Reads now need a read (or operate) token, even from loopback; /healthz stays open.
    let (s, _) = http(f.addr, "GET", "/api/v1/edges", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = http(f.addr, "GET", "/metrics", None, None).await;
    assert_eq!(s, 401);
    let (s, _) = http(f.addr, "GET", "/healthz", None, None).await;
    assert_eq!(s, 200);
    for t in ["read-secret-0123456789", "op-secret-0123456789"] {
        let (s, _) = http(f.addr, "GET", "/api/v1/edges", Some(t), None).await;
        assert_eq!(s, 200, "{t}");
    }
    let (s, _) = http(
        f.addr,
        "GET",
        "/api/v1/edges",
        Some("east-secret-0123456789"),
        None,
    )
    .await;
    assert_eq!(s, 403);
    // Only `Authorization: Bearer <token>`: other spellings are a bad token.
    for header in [
        "bearer op-secret-0123456789",
        "Token op-secret-0123456789",
        "op-secret-0123456789",
    ] {
        let (s, text) = tokio::task::spawn_blocking({
            let addr = f.addr;
            let header = header.to_string();
            move || raw_post(addr, "/api/v1/edges/e-east/drain", &header)
        })
        .await
        .unwrap();
        assert_eq!(s, 401, "{header}: {text}");
    }
    assert!(!f.ctx.health.view().edges["e-east"].draining);
}

/// A POST with an `Authorization` header of exactly `value`.
fn raw_post(addr: SocketAddr, path: &str, value: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {value}\r\nContent-Length: 0\r\n\
         Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deprecated_single_token_still_operates_and_reports() {
    let (p, _) = fake_edge().await;
    let f = start(&config(p, Some(TOKEN), ""));
    let (s, v) = http(
        f.addr,
        "POST",
        "/api/v1/edges/e-west/drain",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let now = cdn_shared::unix_ms();
    for (edge, region) in [("e-east", "east"), ("e-west", "west")] {
        let body = report(edge, region, 1, 10.0, now, false);
        let (s, v) = http(f.addr, "POST", "/api/v1/reports", Some(TOKEN), Some(body)).await;
        assert_eq!((s, &v["result"]), (200, &json!("accepted")), "{edge}: {v}");
    }
    // The role tokens work beside it.
    let (s, _) = http(
        f.addr,
        "POST",
        "/api/v1/edges/e-west/undrain",
        Some("op-secret-0123456789"),
        None,
    )
    .await;
    assert_eq!(s, 200);
}

/// A self-signed certificate for `localhost` and 127.0.0.1 (CA:FALSE, as webpki wants).
fn make_cert(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::write(
        dir.join("c.cnf"),
        "[req]\ndistinguished_name=dn\n[dn]\n[leaf]\nbasicConstraints=critical,CA:FALSE\n\
         subjectAltName=DNS:localhost,IP:127.0.0.1\nkeyUsage=critical,digitalSignature\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let out = Command::new("openssl")
        .current_dir(dir)
        .args([
            "req",
            "-config",
            "c.cnf",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-extensions",
            "leaf",
            "-keyout",
            "admin.key",
            "-out",
            "admin.pem",
        ])
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir.join("admin.pem"), dir.join("admin.key"))
}

fn https(addr: SocketAddr, cert: &Path, request: &str) -> (u16, String) {
    cdn_tests::harness::tls::request_verified(addr, cert, request)
}

#[test]
fn the_binary_serves_https_and_audits_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _key) = make_cert(dir.path());
    let text = config(
        dead_port(),
        None,
        "tls_cert = \"admin.pem\"\ntls_key = \"admin.key\"\n",
    );
    let path = dir.path().join("router.toml");
    std::fs::write(&path, text).unwrap();
    let args = ["--config".to_string(), path.display().to_string()];
    let mut router = Process::spawn(
        "dns-router",
        Path::new(env!("CARGO_BIN_EXE_dns-router")),
        &args,
        &[],
    )
    .unwrap();
    router.wait_ready(Duration::from_secs(20)).unwrap();
    let admin = router.addr("http", "admin").unwrap();

    // HTTPS answers; plain HTTP on the same port gets no HTTP answer.
    let (s, body) = https(
        admin,
        &cert,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(s, 200, "{body}");
    let mut plain = TcpStream::connect(admin).unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(!got.starts_with(b"HTTP/1.1 200"), "plain HTTP answered");

    // A write: 200 and an audit line naming the token, the client and the change.
    let post = |path: &str, token: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Length: 0\r\nConnection: close\r\n\r\n"
        )
    };
    let (s, body) = https(
        admin,
        &cert,
        &post("/api/v1/edges/e-east/drain", "op-secret-0123456789"),
    );
    assert_eq!(s, 200, "{body}");
    let line = router
        .wait_for_line("action=\"drain\"", Duration::from_secs(10))
        .or_else(|_| router.wait_for_line("action=drain", Duration::from_secs(1)))
        .unwrap_or_else(|e| panic!("no audit line: {e}\n{}", router.log_tail(30)));
    assert!(line.contains("alice"), "{line}");
    assert!(line.contains("127.0.0.1"), "{line}");
    assert!(line.contains("e-east"), "{line}");
    assert!(
        !line.contains("op-secret"),
        "the secret is never logged: {line}"
    );
    // A refused write is logged too, without the secret it tried.
    let (s, _) = https(
        admin,
        &cert,
        &post("/api/v1/reload", "read-secret-0123456789"),
    );
    assert_eq!(s, 403);
    let refused = router
        .wait_for_line("admin write refused", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no refusal line: {e}\n{}", router.log_tail(30)));
    assert!(refused.contains("viewer"), "{refused}");
    assert!(!refused.contains("read-secret"), "{refused}");
    // A reload with the operate token is audited as well.
    let (s, body) = https(
        admin,
        &cert,
        &post("/api/v1/reload", "op-secret-0123456789"),
    );
    assert_eq!(s, 200, "{body}");
    router
        .wait_for_line("config reloaded", Duration::from_secs(10))
        .unwrap();

    // A new certificate in the same files is served after a reload.
    let next = dir.path().join("next");
    std::fs::create_dir(&next).unwrap();
    let (new_cert, new_key) = make_cert(&next);
    let old_cert = dir.path().join("old.pem");
    std::fs::copy(&cert, &old_cert).unwrap();
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, dir.path().join("admin.key")).unwrap();
    let (s, body) = https(
        admin,
        &old_cert,
        &post("/api/v1/reload", "op-secret-0123456789"),
    );
    assert_eq!(s, 200, "{body}");
    let get = "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    assert_eq!(
        https(admin, &new_cert, get).0,
        200,
        "the new certificate is served"
    );
    assert_eq!(
        https(admin, &old_cert, get).0,
        0,
        "the old certificate is gone"
    );
    router.kill();
}

#[test]
fn bad_certificate_files_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path());
    std::fs::write(dir.path().join("junk.pem"), "nothing here\n").unwrap();
    let (other_cert, _) = {
        let d = dir.path().join("other");
        std::fs::create_dir(&d).unwrap();
        make_cert(&d)
    };
    for (c, k, key_named) in [
        (PathBuf::from("missing.pem"), key.clone(), "admin.tls_cert"),
        (dir.path().join("junk.pem"), key.clone(), "admin.tls_cert"),
        (cert.clone(), dir.path().join("junk.pem"), "admin.tls_key"),
        (other_cert, key.clone(), "admin.tls_key"),
    ] {
        let text = config(
            dead_port(),
            None,
            &format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"\n",
                c.display(),
                k.display()
            ),
        );
        let path = dir.path().join("router.toml");
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_dns-router"))
            .arg("--config")
            .arg(&path)
            .arg("--check-config")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{c:?} {k:?}: {err}");
        assert!(err.contains(key_named), "{c:?} {k:?}: {err}");
    }
    // A certificate without its key is a config error too.
    let text = config(
        dead_port(),
        None,
        &format!("tls_cert = \"{}\"\n", cert.display()),
    );
    let path = dir.path().join("router.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dns-router"))
        .args(["--config", path.to_str().unwrap(), "--check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin.tls_key"));
}
