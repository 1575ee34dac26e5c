//! Active probes against real HTTP targets on 127.0.0.1: an edge answering 200 goes Up, one
//! answering 503 / hanging / refusing goes Down (after `fall` failures, never earlier), a
//! restarted edge comes back after `rise`, and a reload starts and stops probes.

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
    assert_eq!(state.view().edges["ok"].reason, "probe_ok");
    for (id, reason) in [
        ("bad", "http_503"),
        ("hang", "probe_timeout"),
        ("refused", "connect_refused"),
    ] {
        wait_for(&state, id, budget, "down", |e| e.health == Health::Down).await;
        let e = &state.view().edges[id];
        assert_eq!(e.reason, reason, "{e:?}");
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
    assert!(e.successes >= 2 && e.reason == "probe_ok", "{e:?}");
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
    let settled = a_hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        a_hits.load(Ordering::SeqCst) <= settled + 1,
        "removed edge still probed"
    );
    assert!(b_hits.load(Ordering::SeqCst) >= 2);
    shutdown.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_probe_urls_are_reported_unsupported_not_down() {
    let port = bind().await.local_addr().unwrap().port();
    let text = {
        let cfg = config(&[("tls", port)]);
        let mut c = cfg.clone();
        c.edges[0].probe_url = Some(format!("https://127.0.0.1:{port}/healthz"));
        c
    };
    let cfg = Arc::new(text);
    let state = HealthState::new(&cfg);
    let shutdown = Shutdown::new();
    let _task = health::start(state.clone(), cfg, shutdown.clone());
    wait_for(
        &state,
        "tls",
        Duration::from_secs(2),
        "marked unsupported",
        |e| e.reason == "probe_unsupported",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let e = &state.view().edges["tls"];
    assert_eq!(e.health, Health::Unknown, "{e:?}");
    assert_eq!(e.failures, 0);
    shutdown.cancel();
}
