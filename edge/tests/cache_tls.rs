//! TLS: an edge's HTTPS listener (rustls), and a second edge fetching from it as an
//! `https://` origin verified against an extra CA file (`tls_ca`). Certificates are made
//! with the `openssl` command line tool.

mod cache_support;
use std::path::Path;

use cache_support::*;

fn make_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let ext = dir.join("ext.cnf");
    std::fs::write(
        &ext,
        "[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=critical,CA:FALSE\n\
         subjectAltName=DNS:example.test,IP:127.0.0.1\nkeyUsage=digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=example.test",
            "-extensions",
            "v3",
        ])
        .arg("-config")
        .arg(&ext)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("the openssl command is needed to make test certificates");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn https_listener_and_https_origin_with_extra_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(dir.path());
    // `/big` is long enough for the HTTPS listener's direct body writes (pieces ≥ 16 KiB
    // written from their own buffer, not through a vectored write under TLS).
    let big: Vec<u8> = (0..300 * 1024 + 5).map(|i: u32| (i % 251) as u8).collect();
    let big2 = big.clone();
    let origin = Origin::start(move |req, _| {
        if req.path == "/big" {
            OriginResp::new(200, &[("cache-control", "max-age=60")], big2.clone())
        } else {
            OriginResp::new(200, &[("cache-control", "max-age=60")], "over tls")
        }
    });

    // Edge A: HTTPS listener in front of the plain origin.
    let mut a = config(&origin.url(), "", "");
    // Another edge id than B's: B's requests carry `CDN-Loop: e1`, which A would refuse as a
    // loop (508) if it were e1 too.
    a.edge.id = "shield1".into();
    a.tls = Some(cdn_shared::config::edge::TlsSection {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        cert: cert.clone(),
        key: key.clone(),
        redirect_port: None,
        reload_check_interval: std::time::Duration::from_secs(10),
    });
    cdn_edge::check(&a).expect("TLS files are valid");
    let listeners = cdn_edge::bind(&a).unwrap();
    let https = listeners.https[0].local_addr().unwrap();
    let shutdown = cdn_shared::shutdown::Shutdown::new();
    let s2 = shutdown.clone();
    let t = std::thread::spawn(move || {
        actix_rt::System::new()
            .block_on(cdn_edge::run(a, listeners, s2))
            .unwrap()
    });

    // Edge B: its origin is edge A over https, trusted through tls_ca.
    let mut b = config(&format!("https://{https}"), "", "");
    b.hosts[0].origin_host = Some("example.test".into());
    b.hosts[0].tls_ca = Some(cert.clone());
    let edge_b = Edge::start(b);
    let r = edge_b.get("/t", &[]);
    assert_eq!(
        (r.status, r.body.as_slice()),
        (200, &b"over tls"[..]),
        "{r:?}"
    );
    assert_eq!(edge_b.get("/t", &[]).x_cache(), "HIT");
    assert_eq!(origin.count("/t"), 1);
    // A large body over TLS, filled by B from A and then a hit on both.
    for _ in 0..2 {
        let r = edge_b.get("/big", &[]);
        assert_eq!(r.status, 200);
        assert!(r.body == big, "the 300 KiB body arrives intact over TLS");
    }

    // Without the CA the origin certificate is rejected (502, nothing served).
    let mut c = config(&format!("https://{https}"), "", "");
    c.hosts[0].origin_host = Some("example.test".into());
    let edge_c = Edge::start(c);
    assert_eq!(edge_c.get("/u", &[]).status, 502);
    // ... unless verification is switched off for that host.
    let mut d = config(&format!("https://{https}"), "tls_verify = false", "");
    d.hosts[0].origin_host = Some("example.test".into());
    let edge_d = Edge::start(d);
    assert_eq!(edge_d.get("/u", &[]).status, 200);

    shutdown.cancel();
    t.join().unwrap();
}

#[test]
fn unreadable_tls_files_fail_the_config_check() {
    let mut cfg = config("http://127.0.0.1:9", "", "");
    cfg.tls = Some(cdn_shared::config::edge::TlsSection {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        cert: "/nonexistent/cert.pem".into(),
        key: "/nonexistent/key.pem".into(),
        redirect_port: None,
        reload_check_interval: std::time::Duration::from_secs(10),
    });
    let e = cdn_edge::check(&cfg).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    assert!(e.contains("`tls.cert`"), "{e}");
}
