//! Prometheus metrics: one recorder per process ([`install`], idempotent) and the metric names
//! the router records ([`names`]), served as text by the admin API's `GET /metrics`.
//!
//! | name | type | labels | meaning |
//! |---|---|---|---|
//! | `cdn_dns_queries_total` | counter | `qtype`, `rcode`, `service`, `region` | answered DNS queries (`qtype`: `querylog::QTYPE_LABELS` or `other`) |
//! | `cdn_dns_answer_seconds` | histogram | | time to build and send an answer (UDP: its batch's, from answering the first query to the end of the `sendmmsg`) |
//! | `cdn_health_transitions_total` | counter | `edge`, `to` | state changes; `to` is `up`, `down`, `unknown`, `draining`, `serving`, `overloaded`, `not_overloaded` |
//! | `cdn_reports_ingested_total` | counter | `result` | pushed reports: `accepted`, `stale`, `out_of_order`, `future`, `bad_version`, `unknown_edge`, `region_mismatch`, `bad_json`, `unauthorized` |
//! | `cdn_probe_failures_total` | counter | `edge`, `reason` | failed probes (`probe_timeout`, `http_<code>`, `connect_refused`, `connect_error`, `bad_response`, `tls_handshake`, `tls_cert_untrusted`, `tls_cert_expired`, `tls_cert_name`, `tls_cert`, `tls_config`) |
//! | `cdn_edge_up` | gauge | `edge` | 1 when the edge is Up, 0 when Down or Unknown |
//! | `cdn_router_edge_draining` | gauge | `edge` | 1 when the edge takes no new answers (its report, or a manual drain) |
//! | `cdn_router_edge_overloaded` | gauge | `edge` | 1 when the edge's load is above its capacity (it spills) |
//! | `cdn_router_edge_utilization` | gauge | `edge` | the edge's last reported load / capacity (0 without a fresh report) |
//! | `cdn_admin_requests_total` | counter | `endpoint`, `status` | admin API requests |
//! | `cdn_config_reloads_total` | counter | `result` | reloads (SIGHUP, API, and geo files changed on disk): `ok`, `error` |
//! | `cdn_dns_rrl_total` | counter | `action` | UDP responses over their rate limit (`dns.rrl`): `dropped`, `slipped` (sent empty with TC=1) |
//! | `cdn_dns_cookies_total` | counter | `result` | queries by DNS Cookie: `client_only`, `valid`, `bad` (wrong or expired server cookie), `malformed` |
//! | `cdn_dns_tcp_limited_total` | counter | `reason` | TCP connections closed by a limit: `max_connections`, `per_client` (at accept), `lifetime` |
//!
//! The per-edge gauges are not kept in the recorder: `health::gauges::render_edge_gauges`
//! writes them from the live health view at scrape time, so they always match the configured edge set (an
//! edge removed by a reload disappears from the output at once).
//!
//! Nor is `cdn_dns_answer_seconds`: it is counted in fixed buckets ([`ANSWER_TIMES`], atomics the
//! query threads add their per-batch counts to) and written at scrape time by
//! [`render_answer_times`] in the recorder's text format, because the recorder keeps every
//! sample until the scrape (an allocation-free but costly push per query).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Metric names (shared by every recording site).
pub mod names {
    /// Counter `{qtype,rcode,service,region}`.
    pub const DNS_QUERIES: &str = "cdn_dns_queries_total";
    /// Histogram, seconds.
    pub const DNS_ANSWER_SECONDS: &str = "cdn_dns_answer_seconds";
    /// Counter `{edge,to}`.
    pub const HEALTH_TRANSITIONS: &str = "cdn_health_transitions_total";
    /// Counter `{result}`.
    pub const REPORTS_INGESTED: &str = "cdn_reports_ingested_total";
    /// Counter `{edge,reason}`.
    pub const PROBE_FAILURES: &str = "cdn_probe_failures_total";
    /// Gauge `{edge}`, rendered from the health view (`health::gauges`).
    pub const EDGE_UP: &str = "cdn_edge_up";
    /// Gauge `{edge}`, rendered from the health view.
    pub const EDGE_DRAINING: &str = "cdn_router_edge_draining";
    /// Gauge `{edge}`, rendered from the health view.
    pub const EDGE_OVERLOADED: &str = "cdn_router_edge_overloaded";
    /// Gauge `{edge}`, rendered from the health view.
    pub const EDGE_UTILIZATION: &str = "cdn_router_edge_utilization";
    /// Counter `{endpoint,status}`.
    pub const ADMIN_REQUESTS: &str = "cdn_admin_requests_total";
    /// Counter `{result}`.
    pub const CONFIG_RELOADS: &str = "cdn_config_reloads_total";
    /// Counter `{action}`: responses limited by RRL (`dropped`, `slipped`).
    pub const DNS_RRL: &str = "cdn_dns_rrl_total";
    /// Counter `{result}`: DNS Cookies seen (`none`, `client_only`, `valid`, `bad`).
    pub const DNS_COOKIES: &str = "cdn_dns_cookies_total";
    /// Counter `{reason}`: TCP connections closed by a limit (`max_connections`,
    /// `per_client`, `lifetime`).
    pub const DNS_TCP_LIMITED: &str = "cdn_dns_tcp_limited_total";
}

/// Buckets of `cdn_dns_answer_seconds` (10 µs … 100 ms), upper bounds in seconds.
pub const ANSWER_BUCKETS: [f64; 13] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1,
];

/// Counts of `cdn_dns_answer_seconds`: one per bucket of [`ANSWER_BUCKETS`] plus `+Inf` (not
/// cumulative), and the sum in nanoseconds.
#[derive(Debug)]
pub struct AnswerTimes {
    buckets: [AtomicU64; ANSWER_BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

/// The process's answer times (every UDP thread and TCP connection adds to it).
pub static ANSWER_TIMES: AnswerTimes = AnswerTimes {
    buckets: [const { AtomicU64::new(0) }; ANSWER_BUCKETS.len() + 1],
    sum_nanos: AtomicU64::new(0),
};

/// The bucket of an answer time of `nanos` (`le` semantics: the first bound at or above it).
pub fn answer_bucket(nanos: u64) -> usize {
    let secs = nanos as f64 / 1e9;
    ANSWER_BUCKETS
        .iter()
        .position(|&le| secs <= le)
        .unwrap_or(ANSWER_BUCKETS.len())
}

impl AnswerTimes {
    /// Add per-bucket counts (by [`answer_bucket`]) and their summed nanoseconds.
    pub fn add(&self, counts: &[u64; ANSWER_BUCKETS.len() + 1], sum_nanos: u64) {
        for (cell, &n) in self.buckets.iter().zip(counts) {
            if n > 0 {
                cell.fetch_add(n, Ordering::Relaxed);
            }
        }
        self.sum_nanos.fetch_add(sum_nanos, Ordering::Relaxed);
    }
}

/// Append `cdn_dns_answer_seconds` to a scrape, in the recorder's text format.
pub fn render_answer_times(text: &mut String) {
    let t = &ANSWER_TIMES;
    let name = names::DNS_ANSWER_SECONDS;
    let _ = writeln!(text, "# HELP {name} Time to build and send a DNS answer.");
    let _ = writeln!(text, "# TYPE {name} histogram");
    let mut total = 0u64;
    for (le, cell) in ANSWER_BUCKETS.iter().zip(&t.buckets) {
        total += cell.load(Ordering::Relaxed);
        let _ = writeln!(text, "{name}_bucket{{le=\"{le}\"}} {total}");
    }
    total += t.buckets[ANSWER_BUCKETS.len()].load(Ordering::Relaxed);
    let _ = writeln!(text, "{name}_bucket{{le=\"+Inf\"}} {total}");
    let sum = t.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
    let _ = writeln!(text, "{name}_sum {sum}");
    let _ = writeln!(text, "{name}_count {total}");
    text.push('\n');
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder as the global `metrics` recorder, once per process; later
/// calls return the same handle (tests may call `run` several times). If another recorder was
/// installed first, a detached recorder's handle is returned (its output stays empty).
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            // Histograms recorded through `metrics` (none of the router's own today) get the
            // answer-time buckets.
            let builder = || {
                PrometheusBuilder::new()
                    .set_buckets_for_metric(
                        Matcher::Full(names::DNS_ANSWER_SECONDS.into()),
                        &ANSWER_BUCKETS,
                    )
                    .expect("bucket list is non-empty")
            };
            let handle = match builder().install_recorder() {
                Ok(h) => {
                    describe();
                    h
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder already installed elsewhere");
                    builder().build_recorder().handle()
                }
            };
            // Histograms need periodic upkeep when no exporter thread does it.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            handle
        })
        .clone()
}

fn describe() {
    use metrics::describe_counter;
    describe_counter!(names::DNS_QUERIES, "Answered DNS queries.");
    describe_counter!(names::HEALTH_TRANSITIONS, "Edge state changes.");
    describe_counter!(names::REPORTS_INGESTED, "Pushed edge reports by result.");
    describe_counter!(names::PROBE_FAILURES, "Failed health probes.");
    describe_counter!(names::ADMIN_REQUESTS, "Admin API requests.");
    describe_counter!(names::CONFIG_RELOADS, "Config reloads by result.");
    describe_counter!(
        names::DNS_RRL,
        "UDP responses limited by response-rate limiting (dropped, or slipped as TC=1)."
    );
    describe_counter!(names::DNS_COOKIES, "Queries by DNS Cookie state.");
    describe_counter!(
        names::DNS_TCP_LIMITED,
        "TCP connections refused or closed by a limit."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders() {
        // Other tests in this binary record into the same process-wide recorder at the same
        // time: check only series this test owns, and the custom buckets' presence.
        let a = install();
        let b = install();
        metrics::counter!(names::ADMIN_REQUESTS, "endpoint" => "install-test", "status" => "200")
            .increment(2);
        let mine = "cdn_admin_requests_total{endpoint=\"install-test\",status=\"200\"} 2";
        let text = b.render();
        assert!(text.contains(mine), "{text}");
        // The first handle renders the same recorder.
        assert!(a.render().contains(mine));
    }

    #[test]
    fn answer_times_render_as_a_histogram() {
        let mut counts = [0u64; ANSWER_BUCKETS.len() + 1];
        counts[answer_bucket(300_000)] += 1; // 0.3 ms
        counts[answer_bucket(5)] += 2;
        counts[answer_bucket(10_000_000_000)] += 1; // 10 s: +Inf only
        assert_eq!(
            answer_bucket(10_000),
            0,
            "10 µs is in the first bucket (le)"
        );
        ANSWER_TIMES.add(&counts, 10_000_300_010);
        let mut text = String::new();
        render_answer_times(&mut text);
        // Other tests record too: check the shape and cumulative order.
        assert!(
            text.contains("# TYPE cdn_dns_answer_seconds histogram"),
            "{text}"
        );
        let value = |le: &str| -> u64 {
            let line = format!("cdn_dns_answer_seconds_bucket{{le=\"{le}\"}} ");
            text.lines()
                .find_map(|l| l.strip_prefix(&line))
                .unwrap_or_else(|| panic!("{line} in {text}"))
                .parse()
                .unwrap()
        };
        assert!(value("0.00001") >= 2);
        assert!(value("0.0005") > value("0.00025"));
        assert!(value("+Inf") > value("0.1"));
        assert!(text.contains("cdn_dns_answer_seconds_count "));
        assert!(text.contains("cdn_dns_answer_seconds_sum "));
    }
}
