//! Fuzz the edge's HTTP-side pure code with arbitrary request and response heads: the request
//! head checks (`limits::check_request`), path/query normalisation and cache keys (primary and
//! Vary variant), response field parsing (`Cache-Control`, `CDN-Cache-Control` as a Structured
//! Fields dictionary, `Surrogate-Control`, `Age`, HTTP-dates) into freshness and storability,
//! and `Range` / `If-Range` evaluation with the slice the server would take.
//!
//! Input: lines. Line 1 is the request target, line 2 a body length (digits, else 0), then
//! `name: value` fields, all given to both the request and the response side. Invariants: no
//! panic; a partial range lies inside the body and its slice has the planned length; keys are
//! deterministic; classification is total.
#![no_main]

use std::sync::OnceLock;

use actix_http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_http::Method;
use cdn_edge::cache::key::{normalise_path, normalise_query, primary_key, url_of, variant_key};
use cdn_edge::cache::policy::{self, HostPolicy, ResponseFacts};
use cdn_edge::limits::{check_request, RequestLimits};
use cdn_edge::plan::{self, RangePlan};
use cdn_shared::config::edge::{HttpSection, QueryPolicy};
use libfuzzer_sys::fuzz_target;

fn limits() -> &'static RequestLimits {
    static L: OnceLock<RequestLimits> = OnceLock::new();
    L.get_or_init(|| RequestLimits::from_config(&HttpSection::default()))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target = lines.next().unwrap_or("/");
    let body_len: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let mut h = HeaderMap::new();
    for l in lines {
        let Some((n, v)) = l.split_once(':') else {
            continue;
        };
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(n.trim().as_bytes()),
            HeaderValue::from_str(v.trim()),
        ) else {
            continue;
        };
        h.append(n, v);
    }

    // Request head checks.
    for m in [Method::GET, Method::POST] {
        let _ = check_request(&m, target, &h, true, limits());
        let _ = check_request(&m, target, &h, false, limits());
    }

    // Keys: deterministic, and built from normalised parts only.
    let (p, q) = target.split_once('?').unwrap_or((target, ""));
    if let Some(path) = normalise_path(p) {
        for policy in [QueryPolicy::Keep, QueryPolicy::Drop, QueryPolicy::Sort] {
            let query = normalise_query(q, policy);
            let url = url_of("example.test", &path, &query);
            let key_headers = vec!["accept-language".to_string(), "x-device".to_string()];
            let k1 = primary_key("https", &url, &key_headers, &h);
            assert_eq!(k1, primary_key("https", &url, &key_headers, &h));
            let facts = ResponseFacts::parse(&h);
            let v = variant_key(&k1, &facts.vary, &h);
            assert_eq!(v, variant_key(&k1, &facts.vary, &h));
        }
    }

    // Response fields → freshness, storability, age, classification.
    let host = HostPolicy {
        default_ttl_ms: Some(1000),
        grace_ms: Some(1000),
        cache_set_cookie: false,
        heuristic_fraction: 0.1,
        heuristic_max_ms: 86_400_000,
    };
    let facts = ResponseFacts::parse(&h).received_at(1_700_000_000_000);
    let fr = policy::freshness(&facts, &host);
    let _ = policy::storable(
        &Method::GET,
        h.contains_key("authorization"),
        200,
        &facts,
        &host,
    );
    let age = policy::initial_age_ms(&facts, 1_700_000_000_000, 1_700_000_000_100);
    let now_age = policy::current_age_ms(age, 1_700_000_000_100, u64::MAX);
    let _ = policy::classify(&fr, now_age, false);
    let _ = policy::stale_if_error_ok(&fr, now_age);
    let _ = policy::ttl_s(&fr, now_age);

    // Range against a body of `body_len` bytes (and a small real one to slice).
    let etag = h.get("etag");
    let lm = h.get("last-modified");
    let _ = plan::not_modified(&h, etag, lm);
    for len in [body_len, body_len % 4096] {
        match plan::range(&h, len, etag, lm) {
            RangePlan::Partial(a, b) => {
                assert!(a < b && b <= len, "{a}..{b} of {len}");
                let small = (len % 4096) as usize;
                if len as usize == small {
                    let body = vec![0u8; small];
                    let s = plan::span(a, b, body.len());
                    assert_eq!(body[s].len() as u64, b - a);
                }
            }
            RangePlan::Full | RangePlan::Unsatisfiable => {}
        }
    }
});
