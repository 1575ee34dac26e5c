//! Observability against the real edge (`run()` in-process): `/metrics` on the admin
//! listener and the access log in both formats.

mod cache_support;
mod ops_support;

use std::time::Duration;

use cache_support::*;
use ops_support::*;

fn origin() -> Origin {
    Origin::start(|req, _| {
        OriginResp::new(
            200,
            &[("cache-control", "max-age=60")],
            format!("body of {}", req.path),
        )
    })
}

#[test]
fn metrics_cover_requests_origin_purges_and_cache() {
    let o = origin();
    let edge = Edge::start(ops_config(
        &o.url(),
        "",
        "",
        "[report]\ninterval = \"100ms\"",
        "",
    ));
    assert_eq!(edge.get("/m/1", &[]).x_cache(), "MISS");
    assert_eq!(edge.get("/m/1", &[]).x_cache(), "HIT");
    assert_eq!(edge.get("/m/1", &[]).x_cache(), "HIT");
    assert_eq!(edge.get("/m/2", &[]).x_cache(), "MISS");
    assert_eq!(
        purged(&purge(edge.admin, r#"{"urls":["example.test/m/2"]}"#)),
        1
    );

    let page = eventually(Duration::from_secs(5), || {
        let p = metrics_page(edge.admin);
        (sample(&p, "cdn_edge_cache_objects").is_some_and(|v| v >= 1.0)
            && sample(&p, "cdn_edge_hit_ratio").is_some())
        .then_some(p)
    })
    .expect("gauges published by the reporter tick");
    // Counters are process-global (other tests in this binary add to them): check lower bounds.
    let hits = sample(
        &page,
        "cdn_edge_requests_total{cache=\"hit\",status=\"200\"}",
    )
    .unwrap();
    let misses = sample(
        &page,
        "cdn_edge_requests_total{cache=\"miss\",status=\"200\"}",
    )
    .unwrap();
    assert!(hits >= 2.0 && misses >= 2.0, "hits {hits} misses {misses}");
    assert!(sample(&page, "cdn_edge_response_bytes_total").unwrap() >= 4.0 * 11.0);
    assert!(sample(&page, "cdn_edge_origin_fetches_total").unwrap() >= 2.0);
    // Two misses of 11-byte bodies ("body of /m/1").
    assert!(sample(&page, "cdn_edge_origin_bytes_total").unwrap() >= 22.0);
    assert!(page.contains("cdn_edge_origin_seconds_bucket"), "{page}");
    assert!(
        sample(&page, "cdn_edge_purges_total{kind=\"url\",mode=\"hard\"}").unwrap() >= 1.0,
        "{page}"
    );
    assert!(sample(&page, "cdn_edge_purged_objects_total{mode=\"hard\"}").unwrap() >= 1.0);
    // Gauges are process-global and every edge in this test binary sets them: presence only.
    assert!(sample(&page, "cdn_edge_cache_memory_bytes").is_some());
    assert!(sample(&page, "cdn_edge_draining").is_some());
    assert!(sample(&page, "cdn_edge_requests_per_second").is_some());
    assert!(page.contains("# TYPE cdn_edge_requests_total counter"));
}

#[test]
fn access_log_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let o = origin();
    let top = format!(
        "[access_log]\nenabled = true\nformat = \"json\"\npath = \"{}\"",
        path.display()
    );
    let edge = Edge::start(ops_config(&o.url(), "", "", &top, ""));
    edge.get("/log/1?x=1", &[("user-agent", "ops-test/1")]);
    edge.get("/log/1?x=1", &[("user-agent", "ops-test/1")]);
    let text = eventually(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&path).ok()?;
        (t.lines().count() >= 2).then_some(t)
    })
    .expect("two access-log lines");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(lines[0]["cache"], "MISS");
    assert!(
        lines[0]["origin_ms"].as_f64().is_some(),
        "miss: origin time"
    );
    assert_eq!(lines[1]["cache"], "HIT");
    assert!(lines[1]["origin_ms"].is_null(), "hit: no origin time");
    for l in &lines {
        assert_eq!(l["method"], "GET");
        assert_eq!(l["path"], "/log/1?x=1");
        assert_eq!(l["status"], 200);
        assert_eq!(l["bytes"], 18, "\"body of /log/1?x=1\"");
        assert_eq!(l["ua"], "ops-test/1");
        assert_eq!(l["client"], "127.0.0.1");
        assert!(l["ms"].as_f64().is_some());
        assert!(l["ts"].as_str().unwrap().ends_with('Z'));
    }
}

#[test]
fn access_log_combined_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let o = origin();
    let top = format!(
        "[access_log]\nenabled = true\nformat = \"combined\"\npath = \"{}\"",
        path.display()
    );
    let edge = Edge::start(ops_config(&o.url(), "", "", &top, ""));
    edge.get("/c/1", &[("referer", "http://ref.example/")]);
    let text = eventually(Duration::from_secs(5), || {
        let t = std::fs::read_to_string(&path).ok()?;
        (!t.is_empty()).then_some(t)
    })
    .expect("an access-log line");
    let line = text.lines().next().unwrap();
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /c/1 HTTP/1.1\" 200 12 \"http://ref.example/\" \"-\" MISS "),
        "{line}"
    );
}
