//! HTTPS per host through the real `edge` binary (issue 14 point 1): certificates chosen by
//! SNI (each host and its aliases its own, unknown or no SNI → the `[tls]` default), TLS 1.2
//! and 1.3, HTTP/2 and HTTP/1.1 by ALPN, reloads on file changes and on SIGHUP while an
//! established connection keeps working, a bad new file refused (the old certificate keeps
//! serving), the HTTP → HTTPS redirect and HSTS, and config errors naming the key (exit 64).

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use cdn_tests::harness::certs::{write_atomic, DemoCa, Leaf};
use cdn_tests::harness::tls::{Offer, TlsConn};
use cdn_tests::harness::{binary, eventually, http, Process, Signal};
use cdn_tests::origin::OriginHandle;

const WWW: &str = "www.example.test";
const WWW_ALIAS: &str = "web.example.test";
const IMG: &str = "img.example.test";
const PLAIN: &str = "plain.example.test";
const READY: Duration = Duration::from_secs(30);
const DEADLINE: Duration = Duration::from_secs(20);

struct Certs {
    ca: DemoCa,
    default: Leaf,
    www: Leaf,
    img: Leaf,
}

fn certs(dir: &Path) -> Certs {
    let ca = DemoCa::new("edge_tls test CA").unwrap();
    let default = ca.leaf(&["default.example.test"]).unwrap();
    let www = ca.leaf(&[WWW, WWW_ALIAS]).unwrap();
    let img = ca.leaf(&[IMG]).unwrap();
    default.write(dir, "default").unwrap();
    www.write(dir, "www").unwrap();
    img.write(dir, "img").unwrap();
    Certs {
        ca,
        default,
        www,
        img,
    }
}

/// `www` (alias `web`): own certificate, 308 redirect, HSTS; `img`: own certificate, 301
/// redirect; `plain`: neither (default certificate, plain HTTP served).
fn config(dir: &Path, origin: &str, reload_check: &str) -> String {
    let p = |f: &str| format!("{:?}", dir.join(f).display().to_string());
    format!(
        r#"[edge]
id = "tls1"
region = "r1"

[http]
listen = ["127.0.0.1:0"]
workers = 1

[admin]
listen = "127.0.0.1:0"

[tls]
listen = ["127.0.0.1:0"]
cert = {dc}
key = {dk}
reload_check_interval = "{reload_check}"

[[hosts]]
name = "{WWW}"
aliases = ["{WWW_ALIAS}"]
origin = "{origin}"

[hosts.tls]
cert = {wc}
key = {wk}
redirect = 308
hsts_max_age = "1d"
hsts_include_subdomains = true

[[hosts]]
name = "{IMG}"
origin = "{origin}"

[hosts.tls]
cert = {ic}
key = {ik}
redirect = 301

[[hosts]]
name = "{PLAIN}"
origin = "{origin}"
"#,
        dc = p("default.pem"),
        dk = p("default.key"),
        wc = p("www.pem"),
        wk = p("www.key"),
        ic = p("img.pem"),
        ik = p("img.key"),
    )
}

struct Edge {
    proc: Process,
    https: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
}

fn start(dir: &Path, origin: &OriginHandle, reload_check: &str) -> Edge {
    let file = dir.join("edge.toml");
    std::fs::write(&file, config(dir, &origin.url(), reload_check)).unwrap();
    let mut proc = Process::spawn(
        "edge",
        &binary("edge").unwrap(),
        &["--config".into(), file.display().to_string()],
        &[],
    )
    .unwrap();
    proc.wait_ready(READY).unwrap();
    Edge {
        https: proc.addr("http", "https").unwrap(),
        http: proc.addr("http", "http").unwrap(),
        admin: proc.addr("http", "admin").unwrap(),
        proc,
    }
}

fn sni(addr: SocketAddr, name: &str) -> TlsConn {
    TlsConn::connect(
        addr,
        Offer {
            sni: Some(name),
            ..Offer::default()
        },
    )
    .unwrap()
}

fn metrics(e: &Edge) -> String {
    http::get(e.admin, "/metrics").send().unwrap().text()
}

/// The value of the sample line starting with `series` (0 when absent).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn sni_alpn_versions_redirect_and_hsts() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let e = start(dir.path(), &origin, "10s");

    // Each host (and alias) gets its own certificate; anything else gets the default.
    for (name, want) in [
        (WWW, &c.www),
        (WWW_ALIAS, &c.www),
        ("WWW.Example.Test", &c.www),
        (IMG, &c.img),
        (PLAIN, &c.default),
        ("unknown.example.test", &c.default),
    ] {
        let conn = sni(e.https, name);
        assert_eq!(conn.leaf(), Some(want.der.as_slice()), "SNI {name}");
    }
    let no_sni = TlsConn::connect(e.https, Offer::default()).unwrap();
    assert_eq!(no_sni.leaf(), Some(c.default.der.as_slice()), "no SNI");
    assert_ne!(c.www.der, c.img.der);

    // TLS 1.2 and 1.3 both work.
    for (tls13, want) in [
        (false, rustls::ProtocolVersion::TLSv1_2),
        (true, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let mut conn = TlsConn::connect(
            e.https,
            Offer {
                sni: Some(IMG),
                tls13: Some(tls13),
                ..Offer::default()
            },
        )
        .unwrap();
        assert_eq!(conn.version(), Some(want));
        assert_eq!(conn.leaf(), Some(c.img.der.as_slice()));
        assert_eq!(conn.get(IMG, "/obj/64/v").unwrap().status, 200);
    }

    // ALPN: h2 when offered (and the server speaks HTTP/2), else http/1.1.
    let mut h2 = TlsConn::connect(
        e.https,
        Offer {
            sni: Some(WWW),
            alpn: &[b"h2", b"http/1.1"],
            tls13: None,
        },
    )
    .unwrap();
    assert_eq!(h2.alpn(), Some(&b"h2"[..]));
    assert_eq!(h2.h2_first_frame_type().unwrap(), 4, "SETTINGS first");
    let mut h1 = sni(e.https, WWW);
    assert_eq!(h1.alpn(), Some(&b"http/1.1"[..]));

    // HSTS on www's HTTPS responses (not img's, which has none configured).
    let r = h1.get(WWW, "/obj/100/a").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 100);
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=86400; includeSubDomains")
    );
    let r = sni(e.https, IMG).get(IMG, "/obj/100/a").unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);

    // Plain HTTP: www → 308, img → 301, to the same URL on the HTTPS port; plain is served,
    // without HSTS (never sent over plain HTTP).
    let port = e.https.port();
    let r = http::get(e.http, "/obj/100/a?x=1")
        .host(&format!("{WWW_ALIAS}:{}", e.http.port()))
        .send()
        .unwrap();
    assert_eq!(r.status, 308);
    let location = format!("https://{WWW_ALIAS}:{port}/obj/100/a?x=1");
    assert_eq!(r.header("location"), Some(location.as_str()));
    let r = http::get(e.http, "/p").host(IMG).send().unwrap();
    assert_eq!(r.status, 301);
    let location = format!("https://{IMG}:{port}/p");
    assert_eq!(r.header("location"), Some(location.as_str()));
    let r = http::get(e.http, "/obj/10/p").host(PLAIN).send().unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);

    let m = metrics(&e);
    assert!(
        sample(
            &m,
            &format!("cdn_edge_tls_handshakes_total{{cert=\"{WWW}\"}}")
        ) >= 3.0,
        "{m}"
    );
    assert!(sample(&m, "cdn_edge_tls_handshakes_total{cert=\"default\"}") >= 3.0);
}

#[test]
fn certificates_reload_on_change_and_sighup_keeping_connections() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
    let e = start(dir.path(), &origin, "50ms");

    let mut old = sni(e.https, WWW);
    assert_eq!(old.leaf(), Some(c.www.der.as_slice()));
    assert_eq!(old.get(WWW, "/obj/10/k").unwrap().status, 200);

    // New files for www: new handshakes get the new certificate; the open connection keeps
    // working (and keeps the certificate it was made with).
    let www2 = c.ca.leaf(&[WWW, WWW_ALIAS]).unwrap();
    www2.write(dir.path(), "www").unwrap();
    eventually("www's new certificate is served", DEADLINE, || {
        let conn = TlsConn::connect(
            e.https,
            Offer {
                sni: Some(WWW),
                ..Offer::default()
            },
        )?;
        anyhow::ensure!(
            conn.leaf() == Some(www2.der.as_slice()),
            "still the old one"
        );
        Ok(())
    })
    .unwrap();
    assert_eq!(old.get(WWW, "/obj/10/k").unwrap().status, 200);
    assert_eq!(old.leaf(), Some(c.www.der.as_slice()));
    assert_eq!(sni(e.https, IMG).leaf(), Some(c.img.der.as_slice()));
    assert!(sample(&metrics(&e), "cdn_edge_tls_reloads_total{result=\"ok\"}") >= 1.0);

    // A key that does not match its certificate: refused and logged naming the key, the
    // certificate loaded before keeps serving.
    write_atomic(&dir.path().join("www.key"), c.img.key_pem.as_bytes()).unwrap();
    eventually("the bad key is refused", DEADLINE, || {
        let m = metrics(&e);
        anyhow::ensure!(
            sample(&m, "cdn_edge_tls_reloads_total{result=\"failed\"}") >= 1.0,
            "no failed reload yet"
        );
        Ok(())
    })
    .unwrap();
    let line = e
        .proc
        .wait_for_line("certificate reload refused", DEADLINE)
        .unwrap();
    assert!(line.contains("hosts[0].tls.key"), "{line}");
    assert_eq!(sni(e.https, WWW).leaf(), Some(www2.der.as_slice()));
    assert_eq!(old.get(WWW, "/obj/10/k").unwrap().status, 200);
}

#[test]
fn sighup_reloads_certificates_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let c = certs(dir.path());
    let origin = OriginHandle::start("127.0.0.1:0".parse().unwrap()).unwrap();
    // Files are checked hourly: only the signal can explain a reload within the test.
    let e = start(dir.path(), &origin, "1h");
    let mut old = sni(e.https, IMG);
    assert_eq!(old.get(IMG, "/obj/10/s").unwrap().status, 200);

    let img2 = c.ca.leaf(&[IMG]).unwrap();
    img2.write(dir.path(), "img").unwrap();
    let default2 = c.ca.leaf(&["default.example.test"]).unwrap();
    default2.write(dir.path(), "default").unwrap();
    assert_eq!(sni(e.https, IMG).leaf(), Some(c.img.der.as_slice()));
    e.proc.signal(Signal::HUP).unwrap();
    eventually("the new certificates after SIGHUP", DEADLINE, || {
        let conn = TlsConn::connect(
            e.https,
            Offer {
                sni: Some(IMG),
                ..Offer::default()
            },
        )?;
        anyhow::ensure!(conn.leaf() == Some(img2.der.as_slice()), "not yet");
        Ok(())
    })
    .unwrap();
    assert_eq!(
        TlsConn::connect(e.https, Offer::default()).unwrap().leaf(),
        Some(default2.der.as_slice())
    );
    assert_eq!(sni(e.https, WWW).leaf(), Some(c.www.der.as_slice()));
    assert_eq!(old.get(IMG, "/obj/10/s").unwrap().status, 200);
}

/// `edge --check-config` (and a plain start) on `text`: (exit code, output).
fn run_edge(dir: &Path, text: &str, check_only: bool) -> (i32, String) {
    let file = dir.join("bad.toml");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(binary("edge").unwrap());
    if check_only {
        cmd.arg("--check-config");
    }
    let out = cmd.arg("--config").arg(&file).env_clear().output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn missing_bad_or_mismatched_files_exit_64_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    certs(dir.path());
    let good = config(dir.path(), "http://127.0.0.1:9", "10s");
    let (code, out) = run_edge(dir.path(), &good, true);
    assert_eq!((code, out.trim()), (0, "config ok"));

    let www_key = format!("{:?}", dir.path().join("www.key").display().to_string());
    let img_key = format!("{:?}", dir.path().join("img.key").display().to_string());
    let img_pem = format!("{:?}", dir.path().join("img.pem").display().to_string());
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let junk = format!("{:?}", junk.display().to_string());
    let cases = [
        // Missing file.
        (
            good.replace(&img_pem, "\"/nonexistent/img.pem\""),
            "hosts[1].tls.cert",
        ),
        // Key of another certificate.
        (good.replacen(&www_key, &img_key, 1), "hosts[0].tls.key"),
        // Not PEM.
        (good.replacen(&img_key, &junk, 1), "hosts[1].tls.key"),
        (
            good.replacen(
                &format!("{:?}", dir.path().join("default.pem").display().to_string()),
                &junk,
                1,
            ),
            "tls.cert",
        ),
        // Schema rules.
        (
            good.replace("redirect = 308", "redirect = 302"),
            "hosts[0].tls.redirect",
        ),
        (
            good.replacen(&format!("key = {www_key}\n"), "", 1),
            "hosts[0].tls.key",
        ),
    ];
    for (text, key) in &cases {
        for check_only in [true, false] {
            let (code, out) = run_edge(dir.path(), text, check_only);
            assert_eq!(code, 64, "{key} (check_only {check_only}): {out}");
            assert!(out.contains(&format!("`{key}`")), "{key}: {out}");
        }
    }
}
