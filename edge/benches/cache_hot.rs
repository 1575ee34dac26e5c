//! Hot pure code on the hit path: key building (path/query normalisation) and the RFC 9111
//! decisions (parse response facts, freshness, classify). `cargo bench -p cdn-edge`.

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use cdn_edge::cache::key::{normalise_path, normalise_query, primary_key, url_of};
use cdn_edge::cache::policy::{classify, current_age_ms, freshness, HostPolicy, ResponseFacts};
use cdn_shared::config::edge::QueryPolicy;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn bench(c: &mut Criterion) {
    let req = headers(&[("accept", "*/*"), ("user-agent", "bench")]);
    c.bench_function("key/plain", |b| {
        b.iter(|| {
            let p = normalise_path(black_box("/static/img/logo.png")).unwrap();
            let q = normalise_query(black_box("v=3&w=200"), QueryPolicy::Keep);
            let url = url_of("example.com", &p, &q);
            primary_key("https", &url, &[], &req)
        })
    });
    c.bench_function("key/dots-escapes-sorted", |b| {
        b.iter(|| {
            let p = normalise_path(black_box("/a/./b/../%7Euser/%2fx")).unwrap();
            let q = normalise_query(black_box("z=1&b=2&a=3"), QueryPolicy::Sort);
            let url = url_of("example.com", &p, &q);
            primary_key("https", &url, &["x-dev".to_string()], &req)
        })
    });
    let resp = headers(&[
        (
            "cache-control",
            "public, max-age=600, stale-while-revalidate=30",
        ),
        ("date", "Sun, 06 Nov 1994 08:49:37 GMT"),
        ("last-modified", "Sun, 06 Nov 1994 07:49:37 GMT"),
        ("etag", "\"abc\""),
        ("vary", "Accept-Encoding"),
    ]);
    let host = HostPolicy {
        heuristic_fraction: 0.1,
        heuristic_max_ms: 86_400_000,
        ..Default::default()
    };
    c.bench_function("policy/parse+freshness", |b| {
        b.iter(|| freshness(&ResponseFacts::parse(black_box(&resp)), &host))
    });
    let fr = freshness(&ResponseFacts::parse(&resp), &host);
    c.bench_function("policy/classify", |b| {
        b.iter(|| {
            classify(
                black_box(&fr),
                current_age_ms(black_box(1_000), 5_000, black_box(400_000)),
                false,
            )
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
