//! The demo origin over real HTTP: in-process (as tests and the fleet use it) and as the
//! `demo-origin` binary (as load scripts use it).

use std::time::{Duration, Instant};

use cdn_tests::harness::{self, http, Process};
use cdn_tests::origin::{FailMode, Object, OriginHandle, Stats};

fn origin() -> OriginHandle {
    OriginHandle::start("127.0.0.1:0".parse().unwrap()).expect("origin starts")
}

#[test]
fn objects_have_size_validators_and_deterministic_bodies() -> anyhow::Result<()> {
    let o = origin();
    let r = http::get(o.addr(), "/obj/1k/hello").send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024);
    let expected = Object {
        size: 1024,
        id: "hello".into(),
        version: 0,
    };
    assert_eq!(r.body, expected.body());
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));
    assert_eq!(r.header("etag"), Some(expected.etag().as_str()));
    assert!(r.header("last-modified").is_some());
    assert_eq!(r.header("content-length"), Some("1024"));

    let r = http::get(o.addr(), "/obj/10/a/b/c?max_age=5&tag=t1,t2").send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 10);
    assert_eq!(r.header("cache-control"), Some("public, max-age=5"));
    assert_eq!(r.header("surrogate-key"), Some("t1 t2"));

    let r = http::get(o.addr(), "/obj/1/x?cc=private,%20no-cache").send()?;
    assert_eq!(r.header("cache-control"), Some("private, no-cache"));
    let r = http::get(o.addr(), "/obj/1/x?cc=none").send()?;
    assert_eq!(r.header("cache-control"), None);

    assert_eq!(http::get(o.addr(), "/obj/3g/x").send()?.status, 404);
    assert_eq!(
        http::get(o.addr(), "/obj/1k/x?max_age=-1").send()?.status,
        400
    );
    assert_eq!(http::get(o.addr(), "/nothing").send()?.status, 404);
    let r = http::get(o.addr(), "/obj/1k/x?status=404").send()?;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("cache-control"), Some("public, max-age=60"));

    let r = http::head(o.addr(), "/obj/1m/big").send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some("1048576"));
    Ok(())
}

#[test]
fn conditionals_and_ranges() -> anyhow::Result<()> {
    let o = origin();
    let full = http::get(o.addr(), "/obj/1k/r").send()?;
    let etag = full.header("etag").unwrap().to_string();
    let lm = full.header("last-modified").unwrap().to_string();

    let r = http::get(o.addr(), "/obj/1k/r")
        .header("if-none-match", &etag)
        .send()?;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = http::get(o.addr(), "/obj/1k/r")
        .header("if-modified-since", &lm)
        .send()?;
    assert_eq!(r.status, 304);

    let r = http::get(o.addr(), "/obj/1k/r")
        .header("range", "bytes=100-199")
        .send()?;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 100-199/1024"));
    assert_eq!(r.body, full.body[100..200]);
    let r = http::get(o.addr(), "/obj/1k/r")
        .header("range", "bytes=-24")
        .send()?;
    assert_eq!(r.body, full.body[1000..]);
    let r = http::get(o.addr(), "/obj/1k/r")
        .header("range", "bytes=5000-")
        .send()?;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */1024"));
    Ok(())
}

#[test]
fn version_switch_changes_etag_and_body() -> anyhow::Result<()> {
    let o = origin();
    let a = http::get(o.addr(), "/obj/100/v").send()?;
    let r = http::post(o.addr(), "/_control")
        .json(&serde_json::json!({"version": 2}))
        .send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.json::<serde_json::Value>()?["version"], 2);
    let b = http::get(o.addr(), "/obj/100/v").send()?;
    assert_ne!(a.header("etag"), b.header("etag"));
    assert_ne!(a.body, b.body);
    let old = a.header("etag").unwrap();
    let r = http::get(o.addr(), "/obj/100/v")
        .header("if-none-match", old)
        .send()?;
    assert_eq!(r.status, 200, "an old ETag no longer matches");
    Ok(())
}

#[test]
fn fail_switch_503_close_and_stats() -> anyhow::Result<()> {
    let o = origin();
    http::post(o.addr(), "/_control")
        .json(&serde_json::json!({"fail": "503"}))
        .send()?;
    let r = http::get(o.addr(), "/obj/1k/f").send()?;
    assert_eq!(r.status, 503);
    assert_eq!(r.header("cache-control"), Some("no-store"));

    o.state().set_fail(Some(FailMode::Close));
    let err = http::get(o.addr(), "/obj/1k/f").send();
    assert!(
        err.is_err(),
        "connection closed without a response: {err:?}"
    );

    let r = http::post(o.addr(), "/_control")
        .json(&serde_json::json!({"fail": null}))
        .send()?;
    assert_eq!(
        r.json::<serde_json::Value>()?["fail"],
        serde_json::Value::Null
    );
    assert_eq!(http::get(o.addr(), "/obj/1k/f").send()?.status, 200);

    let stats: Stats = http::get(o.addr(), "/_stats").send()?.json()?;
    assert_eq!(stats.path("/obj/1k/f"), 3);
    assert_eq!(stats.total, 3, "control and stats requests are not counted");
    assert_eq!(stats.status(503), 1);
    assert_eq!(stats.status(0), 1);
    assert_eq!(stats.status(200), 1);
    assert_eq!(o.stats(), stats);

    http::post(o.addr(), "/_stats/reset").send()?;
    assert_eq!(o.stats().total, 0);
    Ok(())
}

#[test]
fn delays_and_throttling() -> anyhow::Result<()> {
    let o = origin();
    let t = Instant::now();
    http::get(o.addr(), "/obj/1/d?delay_ms=300").send()?;
    assert!(t.elapsed() >= Duration::from_millis(300));
    let t = Instant::now();
    // 256 KiB = 4 chunks of 64 KiB, 100 ms before each.
    let r = http::get(o.addr(), "/obj/256k/d?throttle_ms=100").send()?;
    assert_eq!(r.body.len(), 256 * 1024);
    assert!(t.elapsed() >= Duration::from_millis(400));
    Ok(())
}

#[test]
fn the_binary_logs_its_address_and_serves() -> anyhow::Result<()> {
    let bin = harness::binary("demo-origin")?;
    let mut p = Process::spawn(
        "demo-origin",
        &bin,
        &[
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--fail".into(),
            "503".into(),
        ],
        &[],
    )?;
    p.wait_ready(Duration::from_secs(20))?;
    let addr = p.addr("http", "origin")?;
    assert_ne!(addr.port(), 0);
    assert_eq!(http::get(addr, "/obj/1k/x").send()?.status, 503);
    http::post(addr, "/_control")
        .json(&serde_json::json!({"fail": null}))
        .send()?;
    let r = http::get(addr, "/obj/1k/x")
        .host("www.cdn.example.test")
        .send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 1024);
    p.signal(harness::Signal::TERM)?;
    p.wait_exit(Duration::from_secs(10))?;
    Ok(())
}

#[test]
fn text_and_json_objects_are_compressible_and_sent_uncompressed() -> anyhow::Result<()> {
    let o = origin();
    let obj = Object {
        size: 4096,
        id: "a".into(),
        version: 0,
    };
    let r = http::get(o.addr(), "/text/4k/a")
        .header("accept-encoding", "gzip, br")
        .send()?;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, cdn_tests::origin::text::text(obj.seed(), 4096));
    assert_eq!(r.header("etag"), Some(obj.etag().as_str()));
    let j = http::get(o.addr(), "/json/4k/a").send()?;
    assert_eq!(j.header("content-type"), Some("application/json"));
    assert_eq!(j.body.len(), 4096);
    let v: serde_json::Value = serde_json::from_slice(&j.body)?;
    assert!(v.is_array());
    let part = http::get(o.addr(), "/text/4k/a")
        .header("range", "bytes=100-199")
        .send()?;
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 100-199/4096"));
    assert_eq!(part.body, r.body[100..200]);
    let h = http::head(o.addr(), "/json/1k/b").send()?;
    assert_eq!(h.header("content-length"), Some("1024"));
    assert_eq!(http::get(o.addr(), "/text/65m/x").send()?.status, 404);
    let stats: Stats = http::get(o.addr(), "/_stats").send()?.json()?;
    assert_eq!(stats.paths.get("/text/4k/a"), Some(&2));
    Ok(())
}
