//! Prometheus metrics: the recorder (installed once per process) and every metric name the
//! edge exports, so the request path, the admin API and the docs agree on one spelling.
//!
//! Record with the `metrics` macros and these constants, e.g.
//! `metrics::counter!(REQUESTS, "cache" => "hit", "status" => "200").increment(1)`.
//! `GET /metrics` on the admin listener renders them (see [`crate::admin`]).
//!
//! | name | kind | labels | meaning |
//! |---|---|---|---|
//! | `cdn_edge_requests_total` | counter | `cache` (hit, miss, stale, revalidated, bypass, denied, preflight, error), `status` (e.g. 200) | client responses |
//! | `cdn_edge_response_bytes_total` | counter | | body bytes sent to clients |
//! | `cdn_edge_origin_fetches_total` | counter | `result` (ok, error, timeout) | requests sent to origins |
//! | `cdn_edge_origin_seconds` | histogram | | time to the origin's response headers |
//! | `cdn_edge_fill_waits_total` | counter | `result` (ok, timeout, leader_failed) | requests that waited for another request's fill |
//! | `cdn_edge_fill_wait_seconds` | histogram | | time spent waiting for a fill |
//! | `cdn_edge_hit_for_miss_total` | counter | `how` (fetch, pass) | misses on a key whose last response could not be stored, sent to the origin without waiting for another request's fill (`cache.hit_for_miss`) |
//! | `cdn_edge_coalesced_total` | counter | | followers served from a fill they did not lead |
//! | `cdn_edge_purges_total` | counter | `kind` (url, prefix, tag), `mode` (hard, soft) | purge selectors handled |
//! | `cdn_edge_purged_objects_total` | counter | `mode` | cache keys removed or marked stale by purges |
//! | `cdn_edge_cache_memory_bytes` | gauge | | memory tier usage |
//! | `cdn_edge_cache_disk_bytes` | gauge | | disk tier usage |
//! | `cdn_edge_cache_objects` | gauge | | objects known to the purge index |
//! | `cdn_edge_hit_ratio` | gauge | | hits / (hits + misses) over the last report interval |
//! | `cdn_edge_active_connections` | gauge | | open client connections |
//! | `cdn_edge_requests_per_second` | gauge | | over the last report interval |
//! | `cdn_edge_egress_bytes_per_second` | gauge | | over the last report interval |
//! | `cdn_edge_cpu` | gauge | | process CPU, 1.0 = one core |
//! | `cdn_edge_draining` | gauge | | 1 while draining |
//! | `cdn_edge_reports_total` | counter | `router`, `result` (ok, `http_<code>`, error, timeout) | health reports pushed |
//! | `cdn_edge_access_log_dropped_total` | counter | | access-log lines dropped because the writer fell behind |
//! | `cdn_edge_rejected_requests_total` | counter | `reason` (header_too_large, uri_too_long, body_too_large, bad_path, bad_request) | requests refused by the limits |
//! | `cdn_edge_compress_total` | counter | `encoding` (br, zstd, gzip), `result` (encoded, cached, busy, error) | hits that asked for an encoded variant: compressed and stored now, served from the stored variant, served identity because it was being compressed (or too many compressions ran), served identity after a failure |
//! | `cdn_edge_compress_bytes_in_total` | counter | `encoding` | identity bytes compressed |
//! | `cdn_edge_compress_bytes_out_total` | counter | `encoding` | encoded bytes produced (in/out = the compression ratio) |
//! | `cdn_edge_tenant_refusals_total` | counter | `host` (configured names), `reason` (rate_limited, geo_country, geo_cidr, geo_unknown, cors_origin, cors_method, cors_headers, signature_missing, signature_malformed, signature_unknown_key, signature_expired, signature_invalid, signature_outside_prefix) | requests a host's rules refused |
//! | `cdn_edge_cors_preflights_total` | counter | `host` | CORS preflights answered at the edge |
//! | `cdn_edge_host_requests_total` | counter | `host` (configured names, `other` for unknown hosts), `cache` (as `cdn_edge_requests_total`) | client responses per host |
//! | `cdn_edge_host_response_bytes_total` | counter | `host` | body bytes sent per host |
//! | `cdn_edge_host_cache_memory_bytes` | gauge | `host` (hosts with `[hosts.cache]`) | memory tier usage of the host's own partition |
//! | `cdn_edge_origin_queue_timeouts_total` | counter | `host` | misses refused (503) after waiting `origin_queue_timeout` for a `max_origin_requests` slot |
//! | `cdn_edge_tls_handshakes_total` | counter | `cert` (`default` or the host's configured name) | TLS handshakes that chose a certificate (full handshakes; resumed sessions are not counted) |
//! | `cdn_edge_pop_fetches_total` | counter | `via` (peer, shield), `result` (ok, error, timeout) | fills sent to a PoP member or a shield member (`[cluster]`); a failure moves on to the next member, then the origin |
//! | `cdn_edge_pop_resumes_total` | counter | `result` (ok, error) | peer bodies that broke off and were completed from the origin by `Range` |
//! | `cdn_edge_pop_member_up` | gauge | `member` | 1 while a PoP or shield member answers its probes |
//! | `cdn_edge_origin_bytes_total` | counter | | body bytes received from upstreams: origins, and PoP members or shields with `[cluster]` (fills, pass-through, range refetches); with `cdn_edge_response_bytes_total`, the byte hit ratio is `1 − origin / response` (compressed responses make it read low) |
//! | `cdn_edge_body_refills_total` | counter | | whole-object GETs of a stored object whose body had left the cache while its meta entry stayed (bodies of at most 16 chunks), filled again from the origin as misses (`X-Cache: MISS`, coalesced) |
//! | `cdn_edge_fill_overflows_total` | counter | | fills of a body without `Content-Length` that grew past `max_object_size`: streamed to their clients to the end, not stored (logged at info with the key) |
//! | `cdn_edge_chunk_refetches_total` | counter | | chunks refetched from the origin by `Range` while serving a stored object (range requests, longer bodies, a chunk that failed its CRC) |
//! | `cdn_edge_tls_reloads_total` | counter | `result` (ok, failed) | certificate reloads (SIGHUP, or files changed on disk); `failed` = a file did not load and the old certificates keep serving |

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Body bytes received from upstreams (origins; PoP members and shields with `[cluster]`).
pub const ORIGIN_BYTES: &str = "cdn_edge_origin_bytes_total";
/// Requests for a stored object whose body had left the cache, filled again as misses.
pub const BODY_REFILLS: &str = "cdn_edge_body_refills_total";
/// Chunks refetched from the origin by range while serving a stored object.
pub const CHUNK_REFETCHES: &str = "cdn_edge_chunk_refetches_total";
/// Fills of a body without a length that grew past `max_object_size` (streamed, not stored).
pub const FILL_OVERFLOWS: &str = "cdn_edge_fill_overflows_total";
/// Client responses, labels `cache` and `status`.
pub const REQUESTS: &str = "cdn_edge_requests_total";
/// Body bytes sent to clients.
pub const RESPONSE_BYTES: &str = "cdn_edge_response_bytes_total";
/// Origin fetches, label `result`.
pub const ORIGIN_FETCHES: &str = "cdn_edge_origin_fetches_total";
/// Origin time to response headers (seconds, histogram).
pub const ORIGIN_SECONDS: &str = "cdn_edge_origin_seconds";
/// Requests that waited on another request's in-flight fill, label `result`.
pub const FILL_WAITS: &str = "cdn_edge_fill_waits_total";
/// Time spent waiting on a fill (seconds, histogram).
pub const FILL_WAIT_SECONDS: &str = "cdn_edge_fill_wait_seconds";
/// Misses that skipped coalescing because the key's last response could not be stored,
/// label `how` (`fetch`: on their own; `pass`: a range or conditional request as sent).
pub const HIT_FOR_MISS: &str = "cdn_edge_hit_for_miss_total";
/// Followers served from a coalesced fill.
pub const COALESCED: &str = "cdn_edge_coalesced_total";
/// Purge selectors handled, labels `kind` and `mode`.
pub const PURGES: &str = "cdn_edge_purges_total";
/// Cache keys purged, label `mode`.
pub const PURGED_OBJECTS: &str = "cdn_edge_purged_objects_total";
/// Memory tier usage (bytes).
pub const CACHE_MEMORY_BYTES: &str = "cdn_edge_cache_memory_bytes";
/// Disk tier usage (bytes).
pub const CACHE_DISK_BYTES: &str = "cdn_edge_cache_disk_bytes";
/// Objects known to the purge index.
pub const CACHE_OBJECTS: &str = "cdn_edge_cache_objects";
/// Hit ratio over the last report interval.
pub const HIT_RATIO: &str = "cdn_edge_hit_ratio";
/// Open client connections.
pub const ACTIVE_CONNECTIONS: &str = "cdn_edge_active_connections";
/// Requests per second over the last report interval.
pub const REQUESTS_PER_SECOND: &str = "cdn_edge_requests_per_second";
/// Egress bytes per second over the last report interval.
pub const EGRESS_BYTES_PER_SECOND: &str = "cdn_edge_egress_bytes_per_second";
/// Process CPU (1.0 = one core).
pub const CPU: &str = "cdn_edge_cpu";
/// 1 while draining, else 0.
pub const DRAINING: &str = "cdn_edge_draining";
/// Health reports pushed, labels `router` and `result`.
pub const REPORTS: &str = "cdn_edge_reports_total";
/// Access-log lines dropped.
pub const ACCESS_LOG_DROPPED: &str = "cdn_edge_access_log_dropped_total";
/// Responses not stored because their URL already has `cache.max_vary_variants` variants.
pub const VARY_VARIANTS_REFUSED: &str = "cdn_edge_vary_variants_refused_total";
/// Requests refused by the limits, label `reason`.
pub const REJECTED: &str = "cdn_edge_rejected_requests_total";
/// Hits that asked for an encoded variant, labels `encoding` and `result`.
pub const COMPRESS: &str = "cdn_edge_compress_total";
/// Identity bytes compressed, label `encoding`.
pub const COMPRESS_BYTES_IN: &str = "cdn_edge_compress_bytes_in_total";
/// Encoded bytes produced, label `encoding`.
pub const COMPRESS_BYTES_OUT: &str = "cdn_edge_compress_bytes_out_total";
/// Requests refused by a host's tenant rules, labels `host` and `reason`.
pub const TENANT_REFUSALS: &str = "cdn_edge_tenant_refusals_total";
/// Client responses per host, labels `host` and `cache`.
pub const HOST_REQUESTS: &str = "cdn_edge_host_requests_total";
/// Body bytes sent per host, label `host`.
pub const HOST_RESPONSE_BYTES: &str = "cdn_edge_host_response_bytes_total";
/// Memory usage of a host's own cache partition, label `host`.
pub const HOST_CACHE_MEMORY_BYTES: &str = "cdn_edge_host_cache_memory_bytes";
/// CORS preflights answered at the edge, label `host`.
pub const CORS_PREFLIGHTS: &str = "cdn_edge_cors_preflights_total";
/// Misses refused after waiting for an origin slot, label `host`.
pub const ORIGIN_QUEUE_TIMEOUTS: &str = "cdn_edge_origin_queue_timeouts_total";
/// TLS handshakes that chose a certificate, label `cert`.
pub const TLS_HANDSHAKES: &str = "cdn_edge_tls_handshakes_total";
/// Certificate reloads, label `result` (ok, failed).
pub const TLS_RELOADS: &str = "cdn_edge_tls_reloads_total";
/// Fills sent to a PoP or shield member, labels `via`, `result`.
pub const POP_FETCHES: &str = "cdn_edge_pop_fetches_total";
/// Peer bodies completed from the origin, label `result`.
pub const POP_RESUMES: &str = "cdn_edge_pop_resumes_total";
/// PoP/shield member health, label `member`.
pub const POP_MEMBER_UP: &str = "cdn_edge_pop_member_up";

/// Histogram buckets (seconds) for origin and fill-wait latency.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder as the process's global `metrics` recorder (once; later
/// calls return the same handle, so tests may call `run()` several times). When another
/// recorder is already installed globally, the returned handle renders an empty page.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics stays empty");
            }
            describe();
            handle
        })
        .clone()
}

/// Render the Prometheus text page (runs the histogram upkeep first).
pub fn render(handle: &PrometheusHandle) -> String {
    handle.run_upkeep();
    handle.render()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(REQUESTS, "Client responses by cache status and status code");
    describe_counter!(RESPONSE_BYTES, Unit::Bytes, "Body bytes sent to clients");
    describe_counter!(ORIGIN_FETCHES, "Requests sent to origins");
    describe_counter!(
        ORIGIN_BYTES,
        Unit::Bytes,
        "Body bytes received from upstreams (origins, PoP members, shields)"
    );
    describe_histogram!(ORIGIN_SECONDS, Unit::Seconds, "Origin time to headers");
    describe_counter!(FILL_WAITS, "Requests that waited on an in-flight fill");
    describe_histogram!(FILL_WAIT_SECONDS, Unit::Seconds, "Time waiting on a fill");
    describe_counter!(COALESCED, "Followers served from a coalesced fill");
    describe_counter!(
        BODY_REFILLS,
        "Requests for a stored object whose body had left the cache (meta entry still stored), filled again as misses"
    );
    describe_counter!(
        CHUNK_REFETCHES,
        "Chunks refetched from the origin by range while serving a stored object"
    );
    describe_counter!(
        FILL_OVERFLOWS,
        "Fills of a body without Content-Length that grew past max_object_size: streamed, not stored"
    );
    describe_counter!(PURGES, "Purge selectors handled");
    describe_counter!(
        PURGED_OBJECTS,
        "Cache keys removed or marked stale by purges"
    );
    describe_gauge!(CACHE_MEMORY_BYTES, Unit::Bytes, "Memory tier usage");
    describe_gauge!(CACHE_DISK_BYTES, Unit::Bytes, "Disk tier usage");
    describe_gauge!(CACHE_OBJECTS, "Objects known to the purge index");
    describe_gauge!(HIT_RATIO, "Hit ratio over the last report interval");
    describe_gauge!(ACTIVE_CONNECTIONS, "Open client connections");
    describe_gauge!(REQUESTS_PER_SECOND, "Requests per second");
    describe_gauge!(EGRESS_BYTES_PER_SECOND, "Egress bytes per second");
    describe_gauge!(CPU, "Process CPU, 1.0 = one core");
    describe_gauge!(DRAINING, "1 while the edge drains");
    describe_counter!(REPORTS, "Health reports pushed to routers");
    describe_counter!(ACCESS_LOG_DROPPED, "Access-log lines dropped");
    describe_counter!(REJECTED, "Requests refused by the limits");
    describe_counter!(
        COMPRESS,
        "Hits that asked for an encoded variant, by result"
    );
    describe_counter!(COMPRESS_BYTES_IN, Unit::Bytes, "Identity bytes compressed");
    describe_counter!(COMPRESS_BYTES_OUT, Unit::Bytes, "Encoded bytes produced");
    describe_counter!(TENANT_REFUSALS, "Requests refused by a host's rules");
    describe_counter!(CORS_PREFLIGHTS, "CORS preflights answered at the edge");
    describe_counter!(HOST_REQUESTS, "Client responses per host");
    describe_counter!(HOST_RESPONSE_BYTES, "Body bytes sent per host");
    metrics::describe_gauge!(
        HOST_CACHE_MEMORY_BYTES,
        "Memory tier usage of a host's own cache partition"
    );
    describe_counter!(
        ORIGIN_QUEUE_TIMEOUTS,
        "Misses refused after waiting for an origin slot"
    );
    describe_counter!(
        TLS_HANDSHAKES,
        "TLS handshakes by the certificate chosen (SNI)"
    );
    describe_counter!(POP_FETCHES, "Fills sent to a PoP or shield member");
    describe_counter!(
        POP_RESUMES,
        "Peer bodies that broke off, completed from the origin"
    );
    describe_gauge!(
        POP_MEMBER_UP,
        "1 while a PoP or shield member answers its probes"
    );
    describe_counter!(TLS_RELOADS, "Certificate reloads (SIGHUP or changed files)");
    describe_counter!(
        VARY_VARIANTS_REFUSED,
        "Responses served but not stored: their URL already has cache.max_vary_variants variants"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_renders_recorded_metrics() {
        let a = install();
        let b = install();
        metrics::counter!(REQUESTS, "cache" => "hit", "status" => "200").increment(3);
        metrics::histogram!(ORIGIN_SECONDS).record(0.02);
        let page = render(&b);
        assert!(
            page.contains("cdn_edge_requests_total{cache=\"hit\",status=\"200\"} 3"),
            "{page}"
        );
        assert!(page.contains("cdn_edge_origin_seconds_bucket"), "{page}");
        assert_eq!(render(&a).len(), render(&b).len());
    }
}
