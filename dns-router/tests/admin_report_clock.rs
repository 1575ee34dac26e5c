//! Reports dated in the future (issue 17): through the real admin API, a report whose
//! `sent_at_ms` is ahead of the router's clock by more than `health.report_max_clock_skew` is
//! refused with 400 and counted `result="future"`, and it holds off none of the genuine
//! reports that follow.

mod admin_common;

use admin_common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_future_dated_report_is_refused_and_later_reports_are_accepted() {
    let (p, _) = fake_edge().await;
    let toml = config_toml(
        &[EdgeSpec {
            id: "e-east",
            region: "east",
            ipv4: "192.0.2.1",
            probe_port: p,
            admin_url: None,
        }],
        Some(TOKEN),
        "",
    )
    .replace("[health]\n", "[health]\nreport_max_clock_skew = \"2s\"\n");
    let f = start(&toml);
    let post = |seq: u64, sent: u64, draining: bool| {
        let body = report("e-east", "east", seq, 10.0, sent, draining);
        http(f.addr, "POST", "/api/v1/reports", Some(TOKEN), Some(body))
    };
    let now = cdn_shared::unix_ms();
    let (s, v) = post(1, now, false).await;
    assert_eq!((s, &v["result"]), (200, &json!("accepted")), "{v}");

    // A year ahead, a huge sequence number, saying draining: refused and not applied.
    let year = 365 * 24 * 3600 * 1000;
    let (s, v) = post(u64::MAX, now + year, true).await;
    assert_eq!(s, 400, "{v}");
    let err = v["error"].as_str().unwrap();
    assert!(err.contains("in the future"), "{err}");
    assert!(err.contains("report_max_clock_skew"), "{err}");
    // Just beyond the 2 s skew: refused too.
    let (s, v) = post(2, cdn_shared::unix_ms() + 5_000, false).await;
    assert_eq!(s, 400, "{v}");
    let view = f.ctx.health.view();
    let e = &view.edges["e-east"];
    assert!(!e.draining);
    assert_eq!(e.last_report.as_ref().unwrap().seq, 1);

    // The genuine next report is taken.
    let (s, v) = post(2, cdn_shared::unix_ms(), false).await;
    assert_eq!((s, &v["result"]), (200, &json!("accepted")), "{v}");
    let (_, text) = http(f.addr, "GET", "/metrics", None, None).await;
    let text = text.as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("cdn_reports_ingested_total{result=\"future\"} 2"),
        "{text}"
    );
}
