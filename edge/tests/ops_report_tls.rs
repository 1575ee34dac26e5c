//! The real `edge` binary reporting to an `https://` router: the router's certificate is
//! verified against `report.tls_ca` (a fake router with a demo-CA certificate receives the
//! reports), and without that CA the handshake fails and nothing is delivered.

mod cache_support;
mod ops_support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cache_support::*;
use cdn_tests::harness::certs::DemoCa;
use ops_support::*;

/// A TLS "router" on 127.0.0.1 for `localhost`: records each request head, answers 200.
fn tls_router(dir: &std::path::Path) -> (u16, std::path::PathBuf, Arc<Mutex<Vec<String>>>) {
    let ca = DemoCa::new("report test CA").unwrap();
    let (cert, key) = ca
        .leaf(&["localhost"])
        .unwrap()
        .write(dir, "router")
        .unwrap();
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let chain: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(&cert).unwrap().as_slice())
        .collect::<Result<_, _>>()
        .unwrap();
    let pkey = rustls_pemfile::private_key(&mut std::fs::read(&key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, pkey)
        .unwrap();
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let (cfg, g) = (cfg.clone(), g.clone());
            std::thread::spawn(move || {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let conn = rustls::ServerConnection::new(cfg).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, s);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(n) = tls.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(i) = text.find("\r\n\r\n") {
                        let len: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("Content-Length: "))
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= i + 4 + len {
                            g.lock().unwrap().push(text[..i].to_string());
                            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                            let _ = tls.flush();
                            break;
                        }
                    }
                }
            });
        }
    });
    (port, ca_path, got)
}

fn edge_toml(origin: &str, router: &str, tls_ca: Option<&std::path::Path>) -> String {
    let ca = tls_ca
        .map(|p| format!("tls_ca = \"{}\"\n", p.display()))
        .unwrap_or_default();
    format!(
        r#"
[edge]
id = "rt1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
[admin]
listen = "127.0.0.1:0"
[cache]
memory = "16 MiB"
[report]
routers = ["{router}"]
interval = "100ms"
timeout = "1s"
token = "rep-token"
{ca}
[[hosts]]
name = "example.test"
origin = "{origin}"
"#
    )
}

#[test]
fn reports_go_over_https_with_the_certificate_verified() {
    let dir = tempfile::tempdir().unwrap();
    let (port, ca, got) = tls_router(dir.path());
    let router = format!("https://localhost:{port}");
    let origin = Origin::start(|_, _| OriginResp::new(200, &[], "x"));

    let e = EdgeProcess::start(&edge_toml(&origin.url(), &router, Some(&ca)));
    assert!(
        wait_until(Duration::from_secs(10), || !got.lock().unwrap().is_empty()),
        "a report arrives over TLS"
    );
    let head = got.lock().unwrap()[0].clone();
    assert!(head.starts_with("POST /api/v1/reports HTTP/1.1"), "{head}");
    assert!(head.contains("Authorization: Bearer rep-token"), "{head}");
    assert!(head.contains(&format!("Host: localhost:{port}")), "{head}");
    drop(e);

    // Without the CA the router's certificate is not trusted: nothing is delivered, and the
    // edge counts the failures.
    got.lock().unwrap().clear();
    let e = EdgeProcess::start(&edge_toml(&origin.url(), &router, None));
    let metric = format!("cdn_edge_reports_total{{result=\"error\",router=\"{router}\"}}");
    let alt = format!("cdn_edge_reports_total{{router=\"{router}\",result=\"error\"}}");
    assert!(
        wait_until(Duration::from_secs(10), || {
            let m = request(e.admin, "GET", "/metrics", &[("host", "admin")], b"")
                .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                .unwrap_or_default();
            m.contains(&metric) || m.contains(&alt)
        }),
        "failed reports are counted"
    );
    assert!(
        got.lock().unwrap().is_empty(),
        "no report without a trusted certificate"
    );
}

#[test]
fn a_bad_report_ca_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.toml");
    std::fs::write(
        &path,
        edge_toml(
            "http://127.0.0.1:9",
            "https://localhost:9",
            Some(std::path::Path::new("/nonexistent/ca.pem")),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_edge"))
        .args(["--check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("report.tls_ca"));
}
