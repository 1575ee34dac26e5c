//! Active probes against real HTTP and HTTPS targets on 127.0.0.1: an edge answering 200 goes
//! Up, one answering 503 / hanging / refusing goes Down (after `fall` failures, never
//! earlier), a restarted edge comes back after `rise`, and a reload starts and stops probes.
//! HTTPS: a test CA made with `openssl`, trusted through `health.probe_ca_file`; untrusted,
//! wrong-name and non-TLS peers go Down with their `tls_*` reason; `probe_tls_verify = false`
//! accepts a self-signed edge.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cdn_dns_router::health::{self, HealthState};
use cdn_geo::model::Health;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[derive(Clone, Copy)]
enum Mode {
    Status(u16),
    Hang,
}

/// A tiny HTTP server; returns its port, a hit counter and a token that stops it.
async fn serve(listener: TcpListener, mode: Mode) -> (u16, Arc<AtomicUsize>, Shutdown) {
    let port = listener.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let stop = Shutdown::new();
    let (h, s) = (hits.clone(), stop.clone());
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut sock, _) = tokio::select! {
                _ = s.cancelled() => return,
                r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
            };
            h.fetch_add(1, Ordering::SeqCst);
            match mode {
                Mode::Hang => held.push(sock),
                Mode::Status(code) => {
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let _ = sock.read(&mut buf).await;
                        let resp = format!(
                            "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    });
                }
            }
        }
    });
    (port, hits, stop)
}

async fn bind() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.unwrap()
}

fn config(edges: &[(&str, u16)]) -> RouterConfig {
    let mut toml = String::from(
        "[health]\nprobe_interval = \"100ms\"\nprobe_timeout = \"100ms\"\nprobe_jitter = \"10ms\"\n\
         rise = 2\nfall = 3\n\
         [[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
         [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n",
    );
    for (id, port) in edges {
        toml.push_str(&format!(
            "[[edges]]\nid = \"{id}\"\nregion = \"r\"\nipv4 = [\"127.0.0.1\"]\n\
             probe_url = \"http://127.0.0.1:{port}/healthz\"\n"
        ));
    }
    cdn_shared::config::load_str(&toml).unwrap()
}

/// Poll `state` until `f` holds for edge `id`, or panic after `within`.
async fn wait_for(
    state: &HealthState,
    id: &str,
    within: Duration,
    what: &str,
    f: impl Fn(&health::EdgeHealth) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(e) = state.view().edges.get(id) {
            // The invariant behind "Unknown is never Down": fewer than `fall` failures never
            // mean Down.
            if e.failures < 3 && e.successes == 0 && e.last_probe.is_some() {
                assert_ne!(
                    e.health,
                    Health::Down,
                    "{id} down before fall failures: {e:?}"
                );
            }
            if f(e) {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < within,
            "{id}: not {what} within {within:?}: {:?}",
            state.view().edges.get(id)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_drive_up_and_down_with_reasons() {
    let metrics = cdn_dns_router::metrics::install();
    let (ok_port, _, _ok) = serve(bind().await, Mode::Status(200)).await;
    let (bad_port, _, _bad) = serve(bind().await, Mode::Status(503)).await;
    let (hang_port, _, _hang) = serve(bind().await, Mode::Hang).await;
    let refused_port = bind().await.local_addr().unwrap().port(); // dropped: nothing listens
    let cfg = Arc::new(config(&[
        ("ok", ok_port),
        ("bad", bad_port),
        ("hang", hang_port),
        ("refused", refused_port),
    ]));
    let state = HealthState::new(&cfg);
    for e in state.view().edges.values() {
        assert_eq!(e.health, Health::Unknown);
    }
    let shutdown = Shutdown::new();
    let task = health::start(state.clone(), cfg, shutdown.clone());

    // Budget: interval × count plus timeouts and jitter, with slack for a busy machine.
    let budget = Duration::from_millis(2_000);
    wait_for(&state, "ok", budget, "up", |e| e.health == Health::Up).await;
    assert_eq!(state.view().edges["ok"].reason.as_str(), "probe_ok");
    for (id, reason) in [
        ("bad", "http_503"),
        ("hang", "probe_timeout"),
        ("refused", "connect_refused"),
    ] {
        wait_for(&state, id, budget, "down", |e| e.health == Health::Down).await;
        let e = &state.view().edges[id];
        assert_eq!(e.reason.as_str(), reason, "{e:?}");
        assert!(e.failures >= 3);
        assert!(!e.last_probe.as_ref().unwrap().ok);
    }
    let text = metrics.render();
    assert!(
        text.contains("cdn_probe_failures_total{edge=\"bad\",reason=\"http_503\"}"),
        "{text}"
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("probe supervisor stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_edge_goes_down_then_returns_after_rise() {
    let listener = bind().await;
    let port = listener.local_addr().unwrap().port();
    let (_, _, stop) = serve(listener, Mode::Status(200)).await;
    let cfg = Arc::new(config(&[("e", port)]));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    wait_for(&state, "e", Duration::from_secs(2), "up", |e| {
        e.health == Health::Up
    })
    .await;

    stop.cancel(); // the edge dies: the port refuses connections
    let took = wait_for(&state, "e", Duration::from_secs(2), "down", |e| {
        e.health == Health::Down
    })
    .await;
    // interval 100 ms × fall 3 (+ jitter): well under a second.
    assert!(took < Duration::from_millis(1_000), "took {took:?}");

    // Restart on the same port: Up again after `rise` successes.
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let (_, _, _again) = serve(listener, Mode::Status(200)).await;
    wait_for(&state, "e", Duration::from_secs(2), "up again", |e| {
        e.health == Health::Up
    })
    .await;
    let e = &state.view().edges["e"];
    assert!(e.successes >= 2 && e.reason.as_str() == "probe_ok", "{e:?}");
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_starts_new_probes_and_stops_removed_ones() {
    let (a_port, a_hits, _a) = serve(bind().await, Mode::Status(200)).await;
    let (b_port, b_hits, _b) = serve(bind().await, Mode::Status(200)).await;
    let cfg = Arc::new(config(&[("a", a_port)]));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    wait_for(&state, "a", Duration::from_secs(2), "up", |e| {
        e.health == Health::Up
    })
    .await;
    assert_eq!(b_hits.load(Ordering::SeqCst), 0);

    // Reload: `a` removed, `b` added → b probed at once (well before a second interval).
    state.reconcile(&config(&[("b", b_port)]));
    assert!(!state.view().edges.contains_key("a"));
    let took = wait_for(&state, "b", Duration::from_secs(2), "probed", |e| {
        e.last_probe.is_some()
    })
    .await;
    assert!(took < Duration::from_millis(500), "took {took:?}");
    // `a` is no longer probed: its hit count stops growing (allow one in-flight probe).
    // The window is counted in probe intervals by the live prober: once `b` has been probed
    // three more times, a still-running probe of `a` would have hit it again too.
    let settled = a_hits.load(Ordering::SeqCst);
    let b_then = b_hits.load(Ordering::SeqCst);
    cdn_tests::harness::wait_until_async("three more probes of b", Duration::from_secs(5), || {
        b_hits.load(Ordering::SeqCst) >= b_then + 3
    })
    .await
    .unwrap();
    assert!(
        a_hits.load(Ordering::SeqCst) <= settled + 1,
        "removed edge still probed"
    );
    assert!(b_hits.load(Ordering::SeqCst) >= 2);
    shutdown.cancel();
}

/// Test PKI made with the `openssl` command line tool: a CA, a leaf it signs for
/// `localhost` only (so `https://127.0.0.1` is a name mismatch), and a self-signed leaf for
/// `localhost` that no configured root trusts.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(
            p("ca.cnf"),
            "[req]\ndistinguished_name=dn\n[dn]\n[v3_ca]\nbasicConstraints=critical,CA:TRUE\n\
             keyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n\
             [v3_leaf]\nbasicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args(args)
                .output()
                .expect("the openssl command is needed to make test certificates");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let req = |extra: &[&str]| {
            let mut a = vec!["req", "-config", "ca.cnf"];
            a.extend_from_slice(&ec);
            a.extend_from_slice(extra);
            openssl(&a);
        };
        req(&[
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=probe test CA",
            "-extensions",
            "v3_ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        req(&[
            "-subj",
            "/CN=localhost",
            "-keyout",
            "leaf.key",
            "-out",
            "leaf.csr",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ca.cnf",
            "-extensions",
            "v3_leaf",
            "-out",
            "leaf.pem",
        ]);
        req(&[
            "-x509",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-extensions",
            "v3_leaf",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
        ]);
        Pki { dir }
    }

    fn server_config(&self, cert: &str, key: &str) -> Arc<rustls::ServerConfig> {
        let pem = |n: &str| std::fs::read(self.path(n)).unwrap();
        let mut chain: Vec<_> = rustls_pemfile::certs(&mut pem(cert).as_slice())
            .collect::<Result<_, _>>()
            .unwrap();
        if cert == "leaf.pem" {
            chain.extend(rustls_pemfile::certs(&mut pem("ca.pem").as_slice()).map(|c| c.unwrap()));
        }
        let key = rustls_pemfile::private_key(&mut pem(key).as_slice())
            .unwrap()
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Arc::new(cfg)
    }
}

/// An HTTPS `/healthz` answering `code`; records the SNI of every handshake.
async fn serve_tls(
    cfg: Arc<rustls::ServerConfig>,
    code: u16,
) -> (u16, Arc<std::sync::Mutex<Vec<Option<String>>>>, Shutdown) {
    let listener = bind().await;
    let port = listener.local_addr().unwrap().port();
    let snis = Arc::new(std::sync::Mutex::new(Vec::new()));
    let stop = Shutdown::new();
    let (seen, s) = (snis.clone(), stop.clone());
    let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
    tokio::spawn(async move {
        loop {
            let (sock, _) = tokio::select! {
                _ = s.cancelled() => return,
                r = listener.accept() => match r { Ok(x) => x, Err(_) => return },
            };
            let (acceptor, seen) = (acceptor.clone(), seen.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(sock).await else {
                    return; // the client refused our certificate
                };
                seen.lock()
                    .unwrap()
                    .push(tls.get_ref().1.server_name().map(str::to_string));
                let mut buf = [0u8; 1024];
                let _ = tls.read(&mut buf).await;
                let resp =
                    format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                let _ = tls.write_all(resp.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (port, snis, stop)
}

/// Probe config for https edges: `(id, url)`, plus `[health]` lines.
fn https_config(edges: &[(&str, String)], health_extra: &str) -> RouterConfig {
    let mut c = config(&edges.iter().map(|(id, _)| (*id, 1)).collect::<Vec<_>>());
    for (e, (_, url)) in c.edges.iter_mut().zip(edges) {
        e.probe_url = Some(url.clone());
    }
    let extra: RouterConfig = cdn_shared::config::load_str(&format!(
        "[health]\n{health_extra}\n[[zones]]\nname = \"x.test\"\nns = [\"ns1.x.test\"]\n"
    ))
    .unwrap();
    c.health.probe_ca_file = extra.health.probe_ca_file;
    c.health.probe_tls_verify = extra.health.probe_tls_verify;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_probes_verify_the_certificate_against_the_ca_file() {
    let pki = Pki::new();
    let leaf = pki.server_config("leaf.pem", "leaf.key");
    let (ok_port, ok_sni, _ok) = serve_tls(leaf.clone(), 200).await;
    let (bad_port, _, _bad) = serve_tls(leaf.clone(), 503).await;
    let (self_port, _, _self) = serve_tls(pki.server_config("self.pem", "self.key"), 200).await;
    let (plain_port, _, _plain) = serve(bind().await, Mode::Status(200)).await;
    let (hang_port, _, _hang) = serve(bind().await, Mode::Hang).await;
    let url = |host: &str, port: u16| format!("https://{host}:{port}/healthz");
    let cfg = Arc::new(https_config(
        &[
            ("ok", url("localhost", ok_port)),
            ("bad", url("localhost", bad_port)),
            ("untrusted", url("localhost", self_port)),
            ("wrong_name", url("127.0.0.1", ok_port)),
            ("plain", url("localhost", plain_port)),
            ("hang", url("localhost", hang_port)),
        ],
        &format!("probe_ca_file = \"{}\"", pki.path("ca.pem").display()),
    ));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let task = health::start(state.clone(), cfg, shutdown.clone());
    let budget = Duration::from_secs(3);
    wait_for(&state, "ok", budget, "up", |e| e.health == Health::Up).await;
    assert_eq!(state.view().edges["ok"].reason.as_str(), "probe_ok");
    assert_eq!(
        ok_sni.lock().unwrap().first(),
        Some(&Some("localhost".to_string())),
        "SNI is the URL's host name"
    );
    for (id, reason) in [
        ("bad", "http_503"),
        ("untrusted", "tls_cert_untrusted"),
        ("wrong_name", "tls_cert_name"),
        ("plain", "tls_handshake"),
        ("hang", "probe_timeout"),
    ] {
        wait_for(&state, id, budget, "down", |e| e.health == Health::Down).await;
        let e = &state.view().edges[id];
        assert_eq!(e.reason.as_str(), reason, "{id}: {e:?}");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("probe supervisor stops on shutdown")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_probes_without_ca_file_or_verification() {
    let pki = Pki::new();
    let (port, _, _srv) = serve_tls(pki.server_config("self.pem", "self.key"), 200).await;
    let (leaf_port, _, _leaf) = serve_tls(pki.server_config("leaf.pem", "leaf.key"), 200).await;
    let url = format!("https://localhost:{port}/healthz");
    let leaf_url = format!("https://localhost:{leaf_port}/healthz");

    // Webpki roots only: neither the self-signed nor the private-CA certificate is trusted.
    let cfg = Arc::new(https_config(
        &[("self", url.clone()), ("private", leaf_url.clone())],
        "",
    ));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    for id in ["self", "private"] {
        wait_for(&state, id, Duration::from_secs(3), "down", |e| {
            e.health == Health::Down
        })
        .await;
        assert_eq!(state.view().edges[id].reason.as_str(), "tls_cert_untrusted");
    }
    shutdown.cancel();

    // probe_tls_verify = false: the self-signed edge is Up (the handshake still runs).
    let cfg = Arc::new(https_config(
        &[("self", url), ("private", leaf_url)],
        "probe_tls_verify = false",
    ));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    for id in ["self", "private"] {
        wait_for(&state, id, Duration::from_secs(3), "up", |e| {
            e.health == Health::Up
        })
        .await;
    }
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_counts_in_the_probe_timeout() {
    // A peer that accepts TCP and never answers the ClientHello: the probe gives up after
    // probe_timeout (100 ms), not later.
    let (port, _, _hang) = serve(bind().await, Mode::Hang).await;
    let url = cdn_dns_router::health::probe::ProbeUrl::parse(&format!(
        "https://localhost:{port}/healthz"
    ))
    .unwrap();
    let tls = cdn_dns_router::health::probe::tls_connector(&Default::default()).unwrap();
    let started = Instant::now();
    let r = cdn_dns_router::health::probe::probe_once(&url, Duration::from_millis(100), Some(&tls))
        .await;
    assert_eq!(
        r.unwrap_err().as_str(),
        "probe_timeout",
        "handshake bounded by the timeout"
    );
    assert!(started.elapsed() < Duration::from_millis(1_000));
    // No TLS settings loaded: https probes fail with `tls_config`.
    let r = cdn_dns_router::health::probe::probe_once(&url, Duration::from_millis(100), None).await;
    assert_eq!(r.unwrap_err().as_str(), "tls_config");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_ca_file_is_picked_up_without_a_reload() {
    let pki = Pki::new();
    let (port, _, _srv) = serve_tls(pki.server_config("leaf.pem", "leaf.key"), 200).await;
    // The CA file first holds an unrelated certificate: the edge is not trusted.
    let ca = pki.path("rotating.pem");
    std::fs::copy(pki.path("self.pem"), &ca).unwrap();
    let cfg = Arc::new(https_config(
        &[("e", format!("https://localhost:{port}/healthz"))],
        &format!("probe_ca_file = \"{}\"", ca.display()),
    ));
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    wait_for(&state, "e", Duration::from_secs(3), "down", |e| {
        e.health == Health::Down
    })
    .await;
    assert_eq!(
        state.view().edges["e"].reason.as_str(),
        "tls_cert_untrusted"
    );

    // Rotate: the right CA replaces the file (write + rename); same path, no reload.
    let tmp = pki.path("rotating.tmp");
    std::fs::copy(pki.path("ca.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, &ca).unwrap();
    wait_for(&state, "e", Duration::from_secs(3), "up", |e| {
        e.health == Health::Up
    })
    .await;
    shutdown.cancel();
}
