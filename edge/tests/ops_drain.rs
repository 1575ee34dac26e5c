//! The real `edge` binary: health reports pushed to (fake) routers, and the SIGTERM drain
//! (healthz 503 → draining report → stop accepting → in-flight requests finish → exit 0).

mod cache_support;
mod ops_support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use cache_support::*;
use cdn_shared::report::EdgeStatus;
use ops_support::*;

fn toml(origin: &str, routers: &[&FakeRouter], interval: &str, grace: &str) -> String {
    let routers: Vec<String> = routers
        .iter()
        .map(|r| format!("\"http://{}\"", r.addr))
        .collect();
    format!(
        r#"
[edge]
id = "e1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 2
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[cache]
memory = "32 MiB"
[report]
routers = [{}]
interval = "{interval}"
timeout = "1s"
token = "rtok"
[report.capacity]
requests_per_sec = 1000.0
[lifecycle]
shutdown_grace = "{grace}"
[[hosts]]
name = "example.test"
origin = "{origin}"
"#,
        routers.join(", ")
    )
}

fn origin() -> Origin {
    Origin::start(|req, _| {
        let mut r = OriginResp::new(
            200,
            &[("cache-control", "max-age=60")],
            format!("body {}", req.path),
        );
        if req.path.starts_with("/slow") {
            r.head_delay = Duration::from_millis(2500);
        }
        r
    })
}

#[test]
fn reports_reach_every_router_with_increasing_seq() {
    let o = origin();
    let (r1, r2) = (FakeRouter::start(), FakeRouter::start());
    let edge = EdgeProcess::start(&toml(&o.url(), &[&r1, &r2], "100ms", "2s"));
    for i in 0..20 {
        let r = request(
            edge.http,
            "GET",
            &format!("/obj/{}", i % 4),
            &[("host", "example.test")],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    for router in [&r1, &r2] {
        let got = eventually(Duration::from_secs(10), || {
            let g = router.reports();
            (g.len() >= 5 && g.iter().any(|r| r.report.cache.objects >= 4)).then_some(g)
        })
        .unwrap_or_else(|| panic!("router got {:?}", router.reports()));
        assert!(got.iter().all(|r| r.path == "/api/v1/reports"));
        assert!(got.iter().all(|r| r.auth.as_deref() == Some("Bearer rtok")));
        let seqs: Vec<u64> = got.iter().map(|r| r.report.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "seq increasing: {seqs:?}"
        );
        let boot = got[0].report.boot_id;
        assert!(got.iter().all(|r| r.report.boot_id == boot));
        let r = &got.last().unwrap().report;
        assert_eq!((r.edge_id.as_str(), r.region.as_str()), ("e1", "r1"));
        assert_eq!(r.status, EdgeStatus::Serving);
        assert_eq!(r.capacity.requests_per_sec, Some(1000.0));
        assert!(
            got.iter().any(|r| r.report.load.requests_per_sec > 0.0),
            "load measured"
        );
        assert!(
            got.iter().any(|r| r.report.cache.hit_ratio > 0.5),
            "16 of 20 were hits"
        );
    }
    let first_boot = r1.reports()[0].report.boot_id;
    drop(edge);

    // A new process: a new boot id, sequence restarts.
    let r3 = FakeRouter::start();
    let _edge = EdgeProcess::start(&toml(&o.url(), &[&r3], "100ms", "2s"));
    let got = eventually(Duration::from_secs(10), || {
        let g = r3.reports();
        (!g.is_empty()).then_some(g)
    })
    .expect("reports after restart");
    assert_ne!(got[0].report.boot_id, first_boot);
    assert!(got[0].report.seq <= 2);
}

#[test]
fn sigterm_drains_in_flight_requests_and_reports_draining() {
    let o = origin();
    let router = FakeRouter::start();
    // A long interval: the draining report must come from the immediate push.
    let mut edge = EdgeProcess::start(&toml(&o.url(), &[&router], "30s", "6s"));
    let http = edge.http;
    assert_eq!(
        request(edge.admin, "GET", "/healthz", &[("host", "admin")], b"")
            .unwrap()
            .status,
        200
    );
    // Health probes on the client listener with a non-served Host answer too.
    assert_eq!(
        request(http, "GET", "/healthz", &[("host", "127.0.1.1:8081")], b"")
            .unwrap()
            .status,
        200
    );

    let in_flight = std::thread::spawn(move || {
        request(http, "GET", "/slow/1", &[("host", "example.test")], b"")
    });
    eventually(Duration::from_secs(5), || {
        (o.count("/slow/1") == 1).then_some(())
    })
    .expect("slow request reached the origin");
    let t0 = Instant::now();
    edge.sigterm();

    // Probes see 503 while the in-flight request is still running.
    eventually(Duration::from_secs(2), || {
        let r = request(edge.admin, "GET", "/healthz", &[("host", "admin")], b"").ok()?;
        (r.status == 503 && r.body == b"draining\n").then_some(())
    })
    .expect("healthz 503 while draining");
    // The routers were told at once.
    eventually(Duration::from_secs(2), || {
        router
            .reports()
            .iter()
            .any(|r| r.report.status == EdgeStatus::Draining)
            .then_some(())
    })
    .expect("draining report pushed");
    // New connections are no longer accepted.
    eventually(Duration::from_secs(2), || {
        TcpStream::connect_timeout(&http, Duration::from_millis(200))
            .is_err()
            .then_some(())
    })
    .expect("client listener closed");
    assert!(
        t0.elapsed() < Duration::from_millis(2000),
        "drain steps happen before the in-flight request ends"
    );

    // The in-flight request completes normally.
    let r = in_flight
        .join()
        .unwrap()
        .expect("in-flight request answered");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"body /slow/1");
    let status = edge
        .wait_exit(Duration::from_secs(10))
        .expect("edge exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(8),
        "within the grace period"
    );
}

#[test]
fn grace_period_bounds_the_drain() {
    let o = Origin::start(|_, _| {
        let mut r = OriginResp::new(200, &[], "late");
        r.head_delay = Duration::from_secs(30);
        r
    });
    let router = FakeRouter::start();
    let mut edge = EdgeProcess::start(&toml(&o.url(), &[&router], "30s", "1s"));
    let http = edge.http;
    let _stuck = std::thread::spawn(move || {
        request(http, "GET", "/forever", &[("host", "example.test")], b"")
    });
    eventually(Duration::from_secs(5), || {
        (o.count("/forever") == 1).then_some(())
    })
    .expect("request reached the origin");
    let t0 = Instant::now();
    edge.sigterm();
    let status = edge
        .wait_exit(Duration::from_secs(15))
        .expect("edge exited");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(6),
        "grace 1s bounds the drain, took {:?}",
        t0.elapsed()
    );
}

#[test]
fn purge_index_survives_kill_9() {
    let o = Origin::start(|_, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=600"), ("surrogate-key", "k9")],
            "x",
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let router = FakeRouter::start();
    let cfg = toml(&o.url(), &[&router], "30s", "2s").replace(
        "memory = \"32 MiB\"",
        &format!(
            "memory = \"32 MiB\"\ndisk_path = \"{}\"\ndisk = \"64 MiB\"",
            dir.path().display()
        ),
    );
    let mut edge = EdgeProcess::start(&cfg);
    for i in 0..50 {
        let r = request(
            edge.http,
            "GET",
            &format!("/k9/{i}"),
            &[("host", "example.test")],
            b"",
        )
        .unwrap();
        assert_eq!(r.status, 200);
    }
    // The index log is written by a background thread: wait until it holds all 50 records
    // (each carries the tag `k9`, framed as `u32 LE length + bytes`), then SIGKILL.
    let log = dir.path().join("purge-index.log");
    let framed_tag = [&2u32.to_le_bytes()[..], b"k9"].concat();
    let records = || {
        std::fs::read(&log)
            .unwrap_or_default()
            .windows(framed_tag.len())
            .filter(|w| *w == framed_tag.as_slice())
            .count()
    };
    eventually(Duration::from_secs(10), || (records() >= 50).then_some(()))
        .unwrap_or_else(|| panic!("{} of 50 records in {}", records(), log.display()));
    edge.kill();
    drop(edge);

    let edge = EdgeProcess::start(&cfg);
    let r = request(
        edge.admin,
        "POST",
        "/api/v1/purge",
        &[
            ("host", "admin"),
            ("authorization", &format!("Bearer {TOKEN}")),
        ],
        br#"{"tags":["k9"],"soft":true}"#,
    )
    .unwrap();
    assert_eq!(
        purged(&r),
        50,
        "every stored object still indexed after kill -9"
    );
}
