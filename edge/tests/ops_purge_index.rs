//! The real `edge` binary's purge index stays bounded by what the cache holds (issue 13,
//! point 7): a long tail through a small cache leaves the index about as large as the cache
//! (`cdn_edge_cache_objects`), evicted objects leave it, cached ones stay purgeable; and an
//! object whose index record was lost (the log deleted while the edge was down) becomes
//! purgeable again when it is read, or is dropped at that read when a purge named it since.

mod cache_support;
mod ops_support;

use std::time::Duration;

use cache_support::*;
use ops_support::*;

fn config(origin: &str, extra_cache: &str) -> String {
    format!(
        r#"
[edge]
id = "pi1"
region = "r1"
[http]
listen = ["127.0.0.1:0"]
workers = 1
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[cache]
memory = "4 MiB"
{extra_cache}
[report]
interval = "200ms"
[[hosts]]
name = "example.test"
origin = "{origin}"
"#
    )
}

fn objects_gauge(e: &EdgeProcess) -> Option<u64> {
    let r = request(e.admin, "GET", "/metrics", &[("host", "admin")], b"").ok()?;
    String::from_utf8_lossy(&r.body)
        .lines()
        .find_map(|l| l.strip_prefix("cdn_edge_cache_objects "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|v| v as u64)
}

fn get(e: &EdgeProcess, path: &str) -> Resp {
    request(e.http, "GET", path, &[("host", "example.test")], b"").expect("edge answers")
}

#[test]
fn the_index_follows_the_cache_under_a_long_tail() {
    let o = Origin::start(|r, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=600")],
            vec![b'x'; 64 * 1024 + r.path.len()],
        )
    });
    let e = EdgeProcess::start(&config(&o.url(), ""));
    // 400 objects of 64 KiB (25 MiB) through a 4 MiB cache: about 60 fit.
    for i in 0..400 {
        assert_eq!(get(&e, &format!("/tail/{i}")).status, 200);
    }
    let n = eventually(Duration::from_secs(20), || {
        objects_gauge(&e).filter(|&n| n <= 120)
    });
    assert!(
        n.is_some(),
        "index still holds {:?} keys",
        objects_gauge(&e)
    );
    // An evicted object is gone from the index (purge finds nothing); the newest is cached and
    // purgeable.
    let purged = |url: &str| purged(&purge(e.admin, &format!(r#"{{"urls":["{url}"]}}"#)));
    assert_eq!(purged("example.test/tail/0"), 0);
    assert_eq!(get(&e, "/tail/399").x_cache(), "HIT");
    assert_eq!(purged("example.test/tail/399"), 1);
    assert_ne!(get(&e, "/tail/399").x_cache(), "HIT");
}

#[test]
fn an_object_whose_record_was_lost_is_purgeable_once_read() {
    let o = Origin::start(|_, _| OriginResp::new(200, &[("cache-control", "max-age=600")], "x"));
    let dir = tempfile::tempdir().unwrap();
    let disk = format!(
        "disk_path = \"{}\"\ndisk = \"64 MiB\"",
        dir.path().display()
    );
    let cfg = config(&o.url(), &disk);
    let e = EdgeProcess::start(&cfg);
    assert_eq!(get(&e, "/lost").status, 200);
    assert_eq!(get(&e, "/lost2").status, 200);
    e.sigterm();
    let mut e = e;
    assert!(e.wait_exit(Duration::from_secs(20)).is_some());
    // The index record is lost (as a crash before its fsync would lose it).
    std::fs::remove_file(dir.path().join("purge-index.log")).unwrap();
    let e = EdgeProcess::start(&cfg);
    // Read from the disk tier: indexed again, so a purge reaches it.
    assert_eq!(get(&e, "/lost").x_cache(), "HIT");
    assert_eq!(
        purged(&purge(e.admin, r#"{"urls":["example.test/lost"]}"#)),
        1
    );
    assert_ne!(get(&e, "/lost").x_cache(), "HIT");
    assert_eq!(o.count("/lost"), 2);
    // Purged before it was read again: the purge is remembered (and logged), so the first
    // read drops the unindexed copy instead of serving it.
    assert_eq!(
        purged(&purge(e.admin, r#"{"urls":["example.test/lost2"]}"#)),
        0
    );
    assert_ne!(get(&e, "/lost2").x_cache(), "HIT");
    assert_eq!(o.count("/lost2"), 2);
}
