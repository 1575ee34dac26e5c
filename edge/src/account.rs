//! The last step of every request: load accounting (for reports), request metrics, and the
//! access-log line. Reads only the finished response's head (`X-Cache`, status, size).

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Instant, SystemTime};

use actix_web::body::{BodySize, MessageBody};
use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use metrics::Counter;

use crate::access_log::{AccessEntry, OriginTime};
use crate::error::EdgeError;
use crate::headers::{self as hdr, host_of};
use crate::metrics as m;
use crate::state::Shared;

/// The `cache` metric label of an `X-Cache` value, and whether it counts as a cache hit
/// (`None`: not a cache lookup).
pub(crate) fn cache_label(x_cache: &[u8]) -> (&'static str, Option<bool>) {
    match x_cache {
        b"HIT" => ("hit", Some(true)),
        b"MISS" => ("miss", Some(false)),
        b"STALE" => ("stale", Some(true)),
        b"REVALIDATED" => ("revalidated", Some(false)),
        b"BYPASS" => ("bypass", None),
        b"DENIED" => ("denied", None),
        b"PREFLIGHT" => ("preflight", None),
        _ => ("error", None),
    }
}

fn status_label(s: StatusCode) -> metrics::SharedString {
    match s.as_u16() {
        200 => "200".into(),
        206 => "206".into(),
        304 => "304".into(),
        404 => "404".into(),
        other => other.to_string().into(),
    }
}

/// Most handles kept per table before it is emptied (statuses come from origins, host names
/// from reloaded configs: both bounded, but not by this code).
const MAX_HANDLES: usize = 4096;

/// A map keyed with foldhash (the keys are a label and a number, or a configured host name).
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The request counters this worker thread has used. `metrics::counter!` with labels builds,
/// hashes and looks up its label set in the shared registry on every call (four per request
/// here, ~4 % of a hot hit's CPU); a handle is the series itself.
#[derive(Default)]
struct Handles {
    /// `cdn_edge_requests_total` by (cache label, status).
    requests: Map<(&'static str, u16), Counter>,
    /// `cdn_edge_response_bytes_total`.
    bytes: Option<Counter>,
    /// By host label: `cdn_edge_host_response_bytes_total` and `cdn_edge_host_requests_total`
    /// by cache label.
    hosts: Map<String, (Counter, Map<&'static str, Counter>)>,
}

thread_local! {
    static HANDLES: RefCell<Handles> = RefCell::new(Handles::default());
}

/// Count one response in the request metrics: `label` its cache label, `host` its host label.
fn count(label: &'static str, status: StatusCode, host: &str, bytes: u64) {
    HANDLES.with_borrow_mut(|h| {
        if h.requests.len() >= MAX_HANDLES {
            h.requests.clear();
        }
        h.requests
            .entry((label, status.as_u16()))
            .or_insert_with(|| {
                metrics::counter!(m::REQUESTS, "cache" => label, "status" => status_label(status))
            })
            .increment(1);
        h.bytes
            .get_or_insert_with(|| metrics::counter!(m::RESPONSE_BYTES))
            .increment(bytes);
        if !h.hosts.contains_key(host) {
            if h.hosts.len() >= MAX_HANDLES {
                h.hosts.clear();
            }
            let name = host.to_string();
            let b = metrics::counter!(m::HOST_RESPONSE_BYTES, "host" => name.clone());
            h.hosts.insert(name, (b, Map::default()));
        }
        if let Some((b, by_label)) = h.hosts.get_mut(host) {
            b.increment(bytes);
            by_label
                .entry(label)
                .or_insert_with(|| {
                    metrics::counter!(m::HOST_REQUESTS, "host" => host.to_string(), "cache" => label)
                })
                .increment(1);
        }
    });
}

/// Account for `resp`, the answer to `req` (`pq` = its raw path and query), started at
/// `started`.
pub(crate) fn finish(
    shared: &Shared,
    req: &HttpRequest,
    pq: &str,
    resp: &HttpResponse,
    started: Instant,
) {
    let bytes = match resp.body().size() {
        BodySize::Sized(n) if !resp.head().status.is_informational() => n,
        _ => 0,
    };
    shared.load.request_finished(bytes);
    let x = resp
        .headers()
        .get(hdr::X_CACHE)
        .map(|v| v.as_bytes())
        .unwrap_or(b"");
    let (label, hit) = cache_label(x);
    if let Some(h) = hit {
        shared.load.cache_lookup(h);
    }
    // Per host: the configured name (bounded by the config), `other` for unknown hosts.
    let host = host_of(req);
    let host_label = match shared.hosts.get(&*host) {
        Some(&i) => shared.routes[i].name.as_str(),
        None => "other",
    };
    count(label, resp.status(), host_label, bytes);
    if shared.access_log.enabled() {
        let hs = req.headers();
        let text =
            |n: header::HeaderName| hs.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        shared.access_log.log(AccessEntry {
            time: SystemTime::now() - started.elapsed(),
            client: shared
                .tenants
                .client_ip(req)
                .map(|a| a.to_string())
                .unwrap_or_default(),
            method: req.method().to_string(),
            host: host.into_owned(),
            path: pq.to_string(),
            proto: format!("{:?}", req.version()),
            status: resp.status().as_u16(),
            bytes,
            ms: started.elapsed().as_secs_f64() * 1000.0,
            cache: String::from_utf8_lossy(x).into_owned(),
            origin_ms: actix_web::HttpMessage::extensions(req)
                .get::<OriginTime>()
                .map(|t| t.0.as_secs_f64() * 1000.0),
            referer: text(header::REFERER),
            ua: text(header::USER_AGENT),
            reason: actix_web::HttpMessage::extensions(req)
                .get::<crate::tenant::Refused>()
                .map(|r| r.0),
        });
    }
}

/// Count an origin fetch, and note its time to headers for the access log (`origin_ms`).
pub(crate) fn record_origin<T>(req: &HttpRequest, res: &Result<T, EdgeError>, t0: Instant) {
    actix_web::HttpMessage::extensions_mut(req).insert(OriginTime(t0.elapsed()));
    let result = match res {
        Ok(_) => "ok",
        Err(EdgeError::OriginTimeout(_)) => "timeout",
        Err(_) => "error",
    };
    metrics::counter!(m::ORIGIN_FETCHES, "result" => result).increment(1);
    metrics::histogram!(m::ORIGIN_SECONDS).record(t0.elapsed().as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_x_cache() {
        assert_eq!(cache_label(b"HIT"), ("hit", Some(true)));
        assert_eq!(cache_label(b"STALE"), ("stale", Some(true)));
        assert_eq!(cache_label(b"MISS"), ("miss", Some(false)));
        assert_eq!(cache_label(b"REVALIDATED"), ("revalidated", Some(false)));
        assert_eq!(cache_label(b"BYPASS"), ("bypass", None));
        assert_eq!(cache_label(b""), ("error", None));
        assert_eq!(&*status_label(StatusCode::OK), "200");
        assert_eq!(&*status_label(StatusCode::IM_A_TEAPOT), "418");
    }
}
