//! Health end to end through `run()`: real DNS answers over UDP change as probes, operator
//! drains, pushed reports and reloads change the health state (fake edges on 127.0.0.1).

#[path = "admin_common/mod.rs"]
mod admin_common;
#[path = "dns_support/mod.rs"]
mod dns_support;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use admin_common::{http_blocking, report, TOKEN};
use dns_support::{addrs, config_text, query, udp, with_edns};
use hickory_proto::rr::RecordType;

use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

const EU: &str = "198.51.100.0/24";
const AP: &str = "203.0.113.0/24";
const EU_ADDR: &str = "192.0.2.20";
const AP_ADDR: &str = "192.0.2.30";

/// A fake edge's `/healthz` on a std thread: answers `status`, or hangs; stoppable.
struct FakeEdge {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeEdge {
    fn start(addr: SocketAddr, status: Option<u16>) -> FakeEdge {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind(addr).unwrap();
        let addr = l.local_addr().unwrap();
        l.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !s.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut c, _)) => match status {
                        None => held.push(c),
                        Some(code) => {
                            let _ = c.set_nonblocking(false);
                            let _ = c.set_read_timeout(Some(Duration::from_secs(1)));
                            let mut buf = [0u8; 1024];
                            let _ = c.read(&mut buf);
                            let _ = c.write_all(
                                format!("HTTP/1.1 {code} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                                    .as_bytes(),
                            );
                        }
                    },
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        FakeEdge {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    fn url(&self) -> String {
        format!("http://{}/healthz", self.addr)
    }

    fn kill(mut self) -> SocketAddr {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.addr
    }
}

impl Drop for FakeEdge {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

struct Running {
    dns: SocketAddr,
    admin: SocketAddr,
    path: PathBuf,
    _dir: tempfile::TempDir,
    shutdown: Shutdown,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `run()` from a config file (so reload works), on its own runtime thread.
fn start(text: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("router.toml");
    std::fs::write(&path, text).unwrap();
    let config: RouterConfig = cdn_shared::config::load(Some(&path)).unwrap();
    let sockets = cdn_dns_router::bind(&config).unwrap();
    let dns = sockets.dns[0].addr();
    let admin = sockets.admin.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let (s, p) = (shutdown.clone(), path.clone());
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(cdn_dns_router::run(config, Some(p), sockets, s))
            .expect("run");
    });
    let r = Running {
        dns,
        admin,
        path,
        _dir: dir,
        shutdown,
        thread: Some(thread),
    };
    wait(Duration::from_secs(10), "admin /healthz", || {
        std::net::TcpStream::connect(admin).is_ok()
            && http_blocking(admin, "GET", "/healthz", None, None).0 == 200
    });
    r
}

/// Poll `f` until it holds, or panic after `within` (scaled by `CDN_TEST_PATIENCE`);
/// returns the time taken.
fn wait(within: Duration, what: &str, f: impl FnMut() -> bool) -> Duration {
    cdn_tests::harness::wait_until(what, within, f).unwrap_or_else(|e| panic!("{e:#}"))
}

fn answer_for(dns: SocketAddr, ecs: &str) -> Vec<IpAddr> {
    addrs(&udp(
        dns,
        &with_edns(query("www.cdn.example.test", RecordType::A), Some(ecs)),
    ))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The shared test zone with realistic probe settings (500 ms interval, fall 3, rise 2) and
/// a token.
fn fleet(us: &str, eu: &str, ap: &str) -> String {
    config_text(us, eu, ap)
        .replace(
            "[admin]\nlisten = \"127.0.0.1:0\"\n",
            &format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"),
        )
        .replace("probe_interval = \"50ms\"", "probe_interval = \"500ms\"")
        .replace("probe_timeout = \"100ms\"", "probe_timeout = \"500ms\"")
        .replace("probe_jitter = \"1ms\"", "probe_jitter = \"10ms\"")
        .replace("rise = 1\nfall = 1", "rise = 2\nfall = 3")
}

#[test]
fn failover_by_probes_within_interval_times_fall() {
    let us = FakeEdge::start("127.0.0.1:0".parse().unwrap(), Some(200));
    let eu = FakeEdge::start("127.0.0.1:0".parse().unwrap(), Some(200));
    let ap = FakeEdge::start("127.0.0.1:0".parse().unwrap(), None); // hangs
    let text = fleet(&us.url(), &eu.url(), &ap.url());
    assert!(text.contains("fall = 3"), "config substitution failed");
    let r = start(&text);

    assert_eq!(answer_for(r.dns, EU), [ip(EU_ADDR)]);
    // The hung edge: Unknown (answered) at first, then Down after 3 timeouts of 500 ms.
    let took = wait(Duration::from_secs(4), "hung edge leaves answers", || {
        answer_for(r.dns, AP) != [ip(AP_ADDR)]
    });
    eprintln!("hung edge left answers after {took:?}");
    assert!(
        took <= Duration::from_millis(2_500),
        "hung edge took {took:?}"
    );

    // Kill the eu edge: within interval × fall (≤ 2 s with slack) no answer names it.
    let eu_addr = eu.kill();
    let t0 = Instant::now();
    wait(Duration::from_secs(3), "killed edge leaves answers", || {
        answer_for(r.dns, EU) != [ip(EU_ADDR)]
    });
    let took = t0.elapsed();
    eprintln!("killed edge left answers after {took:?}");
    assert!(
        took <= Duration::from_millis(2_000),
        "killed edge took {took:?}"
    );
    assert_eq!(
        answer_for(r.dns, EU),
        [ip("192.0.2.10")],
        "next nearest: us-east"
    );

    // Restart it: back after `rise` successes.
    let eu = FakeEdge::start(eu_addr, Some(200));
    wait(Duration::from_secs(3), "restarted edge returns", || {
        answer_for(r.dns, EU) == [ip(EU_ADDR)]
    });

    // The same edge answering 503 on /healthz also leaves.
    let eu_addr = eu.kill();
    let _eu503 = FakeEdge::start(eu_addr, Some(503));
    wait(Duration::from_secs(3), "503 edge leaves answers", || {
        answer_for(r.dns, EU) != [ip(EU_ADDR)]
    });
    let (_, body) = http_blocking(r.admin, "GET", "/api/v1/edges/euw1", None, None);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["state"], "down", "{v}");
    assert_eq!(v["reason"], "http_503", "{v}");
    drop(us);
}

#[test]
fn drain_reports_and_reload_change_dns_answers() {
    let us = FakeEdge::start("127.0.0.1:0".parse().unwrap(), Some(200));
    let eu = FakeEdge::start("127.0.0.1:0".parse().unwrap(), Some(200));
    let ap = FakeEdge::start("127.0.0.1:0".parse().unwrap(), Some(200));
    let text = fleet(&us.url(), &eu.url(), &ap.url());
    let r = start(&text);
    assert_eq!(answer_for(r.dns, EU), [ip(EU_ADDR)]);

    // Operator drain: the very next answer avoids the edge; undrain brings it back.
    let (s, body) = http_blocking(
        r.admin,
        "POST",
        "/api/v1/edges/euw1/drain",
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200, "{body}");
    assert_ne!(answer_for(r.dns, EU), [ip(EU_ADDR)]);
    let (s, _) = http_blocking(
        r.admin,
        "POST",
        "/api/v1/edges/euw1/undrain",
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(answer_for(r.dns, EU), [ip(EU_ADDR)]);

    // Pushed load: overloaded → spill; 95% → still spilled (hysteresis); 50% → back.
    let now = cdn_shared::unix_ms();
    let post = |seq: u64, rps: f64| {
        let b = report("euw1", "eu-west", seq, rps, now, false);
        let (s, body) = http_blocking(r.admin, "POST", "/api/v1/reports", Some(TOKEN), Some(&b));
        assert_eq!(s, 200, "{body}");
    };
    post(1, 120.0);
    assert_ne!(answer_for(r.dns, EU), [ip(EU_ADDR)]);
    let (_, body) = http_blocking(
        r.admin,
        "GET",
        "/api/v1/explain?name=www.cdn.example.test&client=192.0.2.1&ecs=198.51.100.0/24",
        None,
        None,
    );
    assert!(
        body.contains("\"excluded\":\"overloaded\""),
        "explain says why: {body}"
    );
    post(2, 95.0);
    assert_ne!(answer_for(r.dns, EU), [ip(EU_ADDR)]);
    post(3, 50.0);
    assert_eq!(answer_for(r.dns, EU), [ip(EU_ADDR)]);

    // Reload: euw1 removed, euw2 (another eu-west edge) added → eu clients get euw2 at once
    // (Unknown is usable), and euw2 is probed right away.
    let new = text.replace(
        &format!("id = \"euw1\"\nregion = \"eu-west\"\nipv4 = [\"{EU_ADDR}\"]"),
        "id = \"euw2\"\nregion = \"eu-west\"\nipv4 = [\"192.0.2.21\"]",
    );
    assert_ne!(new, text, "substitution failed");
    std::fs::write(&r.path, &new).unwrap();
    let (s, body) = http_blocking(r.admin, "POST", "/api/v1/reload", Some(TOKEN), None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(answer_for(r.dns, EU), [ip("192.0.2.21")]);
    wait(Duration::from_secs(2), "euw2 probed", || {
        let (_, body) = http_blocking(r.admin, "GET", "/api/v1/edges/euw2", None, None);
        body.contains("\"last_probe\":{")
    });

    // A bad reload keeps the old config serving.
    std::fs::write(&r.path, new.replace("[[zones]]", "[[zonez]]")).unwrap();
    let (s, body) = http_blocking(r.admin, "POST", "/api/v1/reload", Some(TOKEN), None);
    assert_eq!(s, 400, "{body}");
    assert_eq!(answer_for(r.dns, EU), [ip("192.0.2.21")]);
    drop((us, eu, ap));
}
