//! The geo file watcher through `run()`: with `geo.reload_check_interval = "200ms"`, rewriting
//! the network map file (or the MaxMind database) moves a client to another region in real
//! DNS answers without a SIGHUP; a broken map or database is refused (logged,
//! `cdn_config_reloads_total{result="error"}` counted) and the old answer keeps coming.

#[path = "admin_common/mod.rs"]
mod admin_common;
#[path = "dns_support/mod.rs"]
mod dns_support;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use admin_common::http_blocking;
use cdn_tests::harness::{always, wait_until};
use dns_support::{addrs, config_text, healthy_edge, query, udp, with_edns, Server};
use hickory_proto::rr::RecordType;

const CLIENT: &str = "100.64.1.0/24";
const EU_ADDR: &str = "192.0.2.20";
const AP_ADDR: &str = "192.0.2.30";

fn answer(dns: SocketAddr) -> Vec<IpAddr> {
    addrs(&udp(
        dns,
        &with_edns(query("www.cdn.example.test", RecordType::A), Some(CLIENT)),
    ))
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The reload counters are process-wide: the tests run one at a time so each sees its own.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `cdn_config_reloads_total{result="<result>"}` from `GET /metrics` (0 when absent).
fn reloads(admin: SocketAddr, result: &str) -> u64 {
    let (status, text) = http_blocking(admin, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    let series = format!("cdn_config_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(series.as_str()))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

/// Poll `f` until it holds, or panic after `within` (scaled by `CDN_TEST_PATIENCE`);
/// returns the time taken.
fn wait(within: Duration, what: &str, f: impl FnMut() -> bool) -> Duration {
    wait_until(what, within, f).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Check that `f` holds on every poll (every 100 ms) for `period`: a refused file must not
/// change the answer at any time, not only at one sample.
fn keeps(period: Duration, what: &str, mut f: impl FnMut() -> Result<(), String>) {
    always(what, period, Duration::from_millis(100), || {
        f().map_err(|e| anyhow::anyhow!(e))
    })
    .unwrap_or_else(|e| panic!("{e:#}"));
}

/// Replace the map by writing a temporary file and renaming it over the old one.
fn replace(map: &Path, text: &str) {
    let tmp = map.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, map).unwrap();
}

#[test]
fn network_map_changes_are_picked_up_and_bad_maps_refused() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let edges: Vec<_> = (0..3).map(|_| healthy_edge()).collect();
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.txt");
    std::fs::write(&map, format!("{CLIENT} eu-west\n")).unwrap();
    let text = config_text(&edges[0].0, &edges[1].0, &edges[2].0).replace(
        "[geo]\n",
        &format!(
            "[geo]\nnetwork_map = \"{}\"\nreload_check_interval = \"200ms\"\n",
            map.display()
        ),
    );
    let server = Server::start_in(&text, dir.path());
    assert_eq!(answer(server.dns), [ip(EU_ADDR)]);

    // The client moves to ap-northeast: seen within two intervals (+ slack), no SIGHUP.
    let ok_before = reloads(server.admin, "ok");
    replace(&map, &format!("# moved\n{CLIENT} ap-northeast\n"));
    let took = wait(Duration::from_secs(5), "moved to ap-northeast", || {
        answer(server.dns) == [ip(AP_ADDR)]
    });
    eprintln!("map change answered after {took:?}");
    assert!(reloads(server.admin, "ok") > ok_before);

    // An in-place rewrite (same inode) is seen too.
    std::fs::write(&map, format!("{CLIENT} eu-west\n")).unwrap();
    wait(Duration::from_secs(5), "moved back to eu-west", || {
        answer(server.dns) == [ip(EU_ADDR)]
    });

    // A broken map (unknown region) is refused: counted as an error, old answer kept.
    let errors_before = reloads(server.admin, "error");
    replace(&map, &format!("{CLIENT} atlantis\n"));
    wait(
        Duration::from_secs(5),
        "the bad map counted as an error",
        || reloads(server.admin, "error") > errors_before,
    );
    keeps(Duration::from_millis(500), "old map keeps serving", || {
        let got = answer(server.dns);
        (got == [ip(EU_ADDR)])
            .then_some(())
            .ok_or(format!("{got:?}"))
    });
    // Fixing the file is picked up again.
    replace(&map, &format!("{CLIENT} ap-northeast\n"));
    wait(Duration::from_secs(5), "fixed map loaded", || {
        answer(server.dns) == [ip(AP_ADDR)]
    });
    drop(server); // run() returns: the watcher stops on shutdown
}

/// A City-shaped MaxMind database placing `CLIENT`'s /16 at `lat`, `lon`.
fn city_db(lat: f64, lon: f64) -> Vec<u8> {
    use mmdb_writer::{Value, Writer};
    let mut w = Writer::new("Test-City");
    let record = Value::map([
        ("continent", Value::map([("code", Value::from("XX"))])),
        ("country", Value::map([("iso_code", Value::from("XX"))])),
        (
            "location",
            Value::map([
                ("accuracy_radius", Value::from(20u16)),
                ("latitude", Value::from(lat)),
                ("longitude", Value::from(lon)),
            ]),
        ),
    ]);
    w.insert_value("100.64.0.0/16".parse::<ipnet::IpNet>().unwrap(), record)
        .unwrap();
    w.to_bytes().unwrap()
}

#[test]
fn database_changes_are_picked_up_and_bad_databases_refused() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let edges: Vec<_> = (0..3).map(|_| healthy_edge()).collect();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("city.mmdb");
    std::fs::write(&db, city_db(53.0, -6.0)).unwrap(); // Dublin: eu-west
    let text = config_text(&edges[0].0, &edges[1].0, &edges[2].0).replace(
        "[geo]\n",
        &format!(
            "[geo]\ndatabase = \"{}\"\nreload_check_interval = \"200ms\"\n",
            db.display()
        ),
    );
    let server = Server::start_in(&text, dir.path());
    assert_eq!(answer(server.dns), [ip(EU_ADDR)]);

    let tmp = dir.path().join("city.tmp");
    std::fs::write(&tmp, city_db(35.7, 139.7)).unwrap(); // Tokyo: ap-northeast
    std::fs::rename(&tmp, &db).unwrap();
    wait(
        Duration::from_secs(5),
        "located by the new database",
        || answer(server.dns) == [ip(AP_ADDR)],
    );

    // Truncated database (as if caught mid-copy and left so): refused, old one kept.
    let errors_before = reloads(server.admin, "error");
    let bytes = city_db(53.0, -6.0);
    std::fs::write(&db, &bytes[..bytes.len() / 2]).unwrap();
    wait(
        Duration::from_secs(5),
        "the bad database counted as an error",
        || reloads(server.admin, "error") > errors_before,
    );
    keeps(
        Duration::from_millis(500),
        "old database keeps serving",
        || {
            let got = answer(server.dns);
            (got == [ip(AP_ADDR)])
                .then_some(())
                .ok_or(format!("{got:?}"))
        },
    );
}
