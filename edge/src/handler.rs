//! The request path, top to bottom: host → key → lookup → [`plan`](crate::plan) → serve a
//! hit | serve stale and refresh in the background | revalidate | fill (leader fetches and
//! streams while storing, followers ride along) | pass through (unsafe methods, responses
//! that must not be shared). Errors become responses in [`error_response`] only.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use actix_web::body::{BodySize, BodyStream, MessageBody, SizedStream};
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

use crate::access_log::{AccessEntry, AccessLog};
use crate::cache::chunks::{body_stream, BodySource, Refetch};
use crate::cache::key::{normalise_path, normalise_query, primary_key, url_of, variant_key};
use crate::cache::meta::{Body, Chunk, Entry, ObjectMeta};
use crate::cache::policy::{self, Class, ResponseFacts};
use crate::cache::store::{chunk_key, Store};
use crate::drain::Lifecycle;
use crate::error::{error_response, EdgeError};
use crate::fill::{FillHead, Fills, Join, Leader, StoredHow, StreamHead};
use crate::headers::{self as hdr, Fwd, Outcome, XCache};
use crate::limits::{self, RequestLimits};
use crate::load::LoadMeter;
use crate::metrics as m;
use crate::origin::{next_frame, HostRoute, OriginResponse, Origins};
use crate::plan::{self, Lookup, Plan, RangePlan};

/// State shared by all workers.
#[derive(Debug)]
pub struct Shared {
    /// Cache name in `Cache-Status` (the edge id).
    pub name: String,
    /// Our `Via` member, e.g. `1.1 use1`.
    pub via: HeaderValue,
    /// Lower-case host name or alias → index into `routes`.
    pub hosts: HashMap<String, usize>,
    /// Hosts and their origins.
    pub routes: Arc<Vec<HostRoute>>,
    /// The cache.
    pub store: Arc<Store>,
    /// In-flight fills.
    pub fills: Arc<Fills>,
    /// `cache.fill_wait_timeout`.
    pub fill_wait: Duration,
    /// `http.max_body_size`.
    pub max_body: u64,
    /// Serving / draining (`/healthz` answers 503 while draining).
    pub lifecycle: Arc<Lifecycle>,
    /// Load accounting for reports.
    pub load: Arc<LoadMeter>,
    /// Request-shape limits (431/413/400).
    pub limits: RequestLimits,
    /// The access log (possibly disabled).
    pub access_log: AccessLog,
}

/// Per-worker state (awc clients are `!Send`).
pub struct Local {
    /// This worker's origin clients.
    pub origins: Rc<Origins>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish()
    }
}

/// Everything about one request the steps below need.
#[derive(Clone)]
struct Ctx {
    req: HttpRequest,
    shared: web::Data<Shared>,
    origins: Rc<Origins>,
    route: usize,
    scheme: &'static str,
    url: String,
    path_q: String,
    key: String,
    head: bool,
}

impl Ctx {
    fn route(&self) -> &HostRoute {
        &self.shared.routes[self.route]
    }
    fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }
}

fn host_of(req: &HttpRequest) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let h = if raw.starts_with('[') {
        raw.split_once(']').map(|(a, _)| &a[1..]).unwrap_or(raw)
    } else {
        raw.rsplit_once(':').map(|(a, _)| a).unwrap_or(raw)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
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

/// The actix handler for every client request: limits, then the request path, then load,
/// metrics and the access log.
pub async fn handle(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    local: web::Data<Local>,
) -> HttpResponse {
    let started = Instant::now();
    shared.load.request_started();
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let h1 = req.version() < actix_web::http::Version::HTTP_2;
    let resp = match limits::check_request(req.method(), pq, req.headers(), h1, &shared.limits) {
        Err(rej) => rej.response(),
        Ok(()) => route_request(req.clone(), body, shared.clone(), local).await,
    };
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
    let (label, hit) = match x {
        b"HIT" => ("hit", Some(true)),
        b"MISS" => ("miss", Some(false)),
        b"STALE" => ("stale", Some(true)),
        b"REVALIDATED" => ("revalidated", Some(false)),
        b"BYPASS" => ("bypass", None),
        _ => ("error", None),
    };
    if let Some(h) = hit {
        shared.load.cache_lookup(h);
    }
    metrics::counter!(m::REQUESTS, "cache" => label, "status" => status_label(resp.status()))
        .increment(1);
    metrics::counter!(m::RESPONSE_BYTES).increment(bytes);
    if shared.access_log.enabled() {
        let hs = req.headers();
        let text =
            |n: header::HeaderName| hs.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
        shared.access_log.log(AccessEntry {
            time: SystemTime::now() - started.elapsed(),
            client: req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            method: req.method().to_string(),
            host: host_of(&req),
            path: pq.to_string(),
            proto: format!("{:?}", req.version()),
            status: resp.status().as_u16(),
            bytes,
            ms: started.elapsed().as_secs_f64() * 1000.0,
            cache: String::from_utf8_lossy(x).into_owned(),
            origin_ms: actix_web::HttpMessage::extensions(&req)
                .get::<crate::access_log::OriginTime>()
                .map(|t| t.0.as_secs_f64() * 1000.0),
            referer: text(header::REFERER),
            ua: text(header::USER_AGENT),
        });
    }
    resp
}

async fn route_request(
    req: HttpRequest,
    body: web::Payload,
    shared: web::Data<Shared>,
    local: web::Data<Local>,
) -> HttpResponse {
    let host = host_of(&req);
    let Some(&route) = shared.hosts.get(host.as_str()) else {
        if req.path() == "/healthz" {
            return crate::admin::healthz_response(&shared.lifecycle);
        }
        return error_response(&EdgeError::UnknownHost(host), &shared.name);
    };
    let Some(path) = normalise_path(req.path()) else {
        return error_response(&EdgeError::BadRequest("invalid request path"), &shared.name);
    };
    let r = &shared.routes[route];
    let query = normalise_query(req.query_string(), r.cfg.query);
    let url = url_of(&r.name, &path, &query);
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let key = primary_key(scheme, &url, &r.cfg.key_headers, req.headers());
    let mut path_q = path;
    if !query.is_empty() {
        path_q.push('?');
        path_q.push_str(&query);
    }
    let method = req.method().clone();
    let ctx = Ctx {
        head: method == Method::HEAD,
        origins: local.origins.clone(),
        req,
        shared: shared.clone(),
        route,
        scheme,
        url,
        path_q,
        key,
    };
    if method == Method::GET || method == Method::HEAD {
        cached(ctx).await
    } else {
        pass(ctx, Some(body), true).await
    }
}

/// Look the key up, following a Vary list to the variant.
async fn lookup(ctx: &Ctx) -> (Option<Arc<ObjectMeta>>, String, Fwd) {
    match ctx.store().get(&ctx.key).await {
        Some(Entry::Object(m)) => (Some(m), ctx.key.clone(), Fwd::Stale),
        Some(Entry::Vary(names)) => {
            let vkey = variant_key(&ctx.key, &names, ctx.req.headers());
            match ctx.store().get(&vkey).await {
                Some(Entry::Object(m)) => (Some(m), vkey, Fwd::Stale),
                _ => (None, vkey, Fwd::VaryMiss),
            }
        }
        _ => (None, ctx.key.clone(), Fwd::UriMiss),
    }
}

async fn cached(ctx: Ctx) -> HttpResponse {
    let now = cdn_shared::unix_ms();
    let (meta, store_key, fwd) = lookup(&ctx).await;
    let look = match &meta {
        None if fwd == Fwd::VaryMiss => Lookup::VaryMiss,
        None => Lookup::Miss,
        Some(m) => {
            let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now);
            Lookup::Found(policy::classify(&m.freshness, age, m.invalidated))
        }
    };
    match (plan::plan(look), meta) {
        (Plan::Hit, Some(m)) => {
            let ttl = ttl_of(&m, now);
            serve_stored(&ctx, &m, &store_key, Outcome::hit(ttl), now)
        }
        (Plan::ServeStaleAndRefresh, Some(m)) => {
            if let Ok(Join::Leader(l)) = ctx.shared.fills.join(&store_key) {
                let bg = ctx.clone();
                let (k, stale) = (store_key.clone(), m.clone());
                actix_rt::spawn(async move {
                    let _ = lead(bg, l, k, Some(stale), Fwd::Stale).await;
                });
            }
            let mut o = Outcome::hit(ttl_of(&m, now));
            o.x_cache = XCache::Stale;
            o.detail = Some("stale-while-revalidate");
            serve_stored(&ctx, &m, &store_key, o, now)
        }
        (Plan::Revalidate, Some(m)) => fill(ctx, store_key, Some(m), Fwd::Stale).await,
        (Plan::Fill(f), _) => fill(ctx, store_key, None, f).await,
        (_, None) => fill(ctx, store_key, None, Fwd::UriMiss).await,
    }
}

fn ttl_of(m: &ObjectMeta, now: u64) -> i64 {
    policy::ttl_s(
        &m.freshness,
        policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now),
    )
}

fn stale_ok(m: &ObjectMeta, now: u64) -> bool {
    policy::stale_if_error_ok(
        &m.freshness,
        policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now),
    )
}

fn stale_outcome(m: &ObjectMeta, now: u64, status: Option<u16>, collapsed: bool) -> Outcome {
    let mut o = Outcome::forward(XCache::Stale, Fwd::Stale);
    o.fwd_status = status;
    o.ttl = Some(ttl_of(m, now));
    o.collapsed = collapsed;
    o.detail = Some("stale-if-error");
    o
}

/// Fill through the in-flight table: lead, or follow (with one retry if the leader fails).
async fn fill(
    ctx: Ctx,
    mut store_key: String,
    stale: Option<Arc<ObjectMeta>>,
    mut fwd: Fwd,
) -> HttpResponse {
    let name = ctx.shared.name.clone();
    let mut attempt = 0;
    loop {
        attempt += 1;
        let join = match ctx.shared.fills.join(&store_key) {
            Ok(j) => j,
            Err(e) => return stale_or_error(&ctx, &store_key, stale.as_ref(), e),
        };
        let fill = match join {
            Join::Leader(l) => return lead(ctx, l, store_key, stale, fwd).await,
            Join::Follower(f) => f,
        };
        let waited = Instant::now();
        let head = fill.wait_head(ctx.shared.fill_wait).await;
        metrics::histogram!(m::FILL_WAIT_SECONDS).record(waited.elapsed().as_secs_f64());
        let result = match &head {
            Ok(_) => "ok",
            Err(EdgeError::FillTimeout) => "timeout",
            Err(_) => "leader_failed",
        };
        metrics::counter!(m::FILL_WAITS, "result" => result).increment(1);
        let now = cdn_shared::unix_ms();
        match head {
            Ok(FillHead::Streaming(h)) => {
                if !h.vary.is_empty() {
                    let vkey = variant_key(&ctx.key, &h.vary, ctx.req.headers());
                    if vkey != h.store_key {
                        store_key = vkey;
                        fwd = Fwd::VaryMiss;
                        continue;
                    }
                }
                let mut o = Outcome::forward(XCache::Miss, fwd);
                o.fwd_status = Some(h.status);
                o.stored = true;
                o.collapsed = true;
                o.ttl = Some(h.ttl_s);
                metrics::counter!(m::COALESCED).increment(1);
                return serve_streaming(&ctx, fill, &h, o, &[]);
            }
            Ok(FillHead::Stored { meta, key, how }) => {
                let mut o = match how {
                    StoredHow::Found => Outcome::hit(ttl_of(&meta, now)),
                    StoredHow::Revalidated => {
                        let mut o = Outcome::forward(XCache::Revalidated, Fwd::Stale);
                        o.fwd_status = Some(304);
                        o.ttl = Some(ttl_of(&meta, now));
                        o
                    }
                    StoredHow::StaleOnError { status } => stale_outcome(&meta, now, status, true),
                };
                o.collapsed = true;
                metrics::counter!(m::COALESCED).increment(1);
                return serve_stored(&ctx, &meta, &key, o, now);
            }
            Ok(FillHead::NotShareable) => return pass(ctx, None, false).await,
            Err(e) => {
                if let Some(m) = stale
                    .as_ref()
                    .filter(|m| e.allows_stale() && stale_ok(m, now))
                {
                    return serve_stored(
                        &ctx,
                        m,
                        &store_key,
                        stale_outcome(m, now, None, true),
                        now,
                    );
                }
                if attempt >= 2 || matches!(e, EdgeError::FillTimeout) {
                    return error_response(&e, &name);
                }
                tracing::debug!(key = %store_key, error = %e, "fill leader failed; retrying");
            }
        }
    }
}

fn stale_or_error(
    ctx: &Ctx,
    key: &str,
    stale: Option<&Arc<ObjectMeta>>,
    e: EdgeError,
) -> HttpResponse {
    let now = cdn_shared::unix_ms();
    match stale.filter(|m| e.allows_stale() && stale_ok(m, now)) {
        Some(m) => serve_stored(ctx, m, key, stale_outcome(m, now, None, false), now),
        None => error_response(&e, &ctx.shared.name),
    }
}

/// The leader: fetch (conditionally when revalidating), then publish what followers need.
async fn lead(
    ctx: Ctx,
    mut leader: Leader,
    store_key: String,
    stale: Option<Arc<ObjectMeta>>,
    fwd: Fwd,
) -> HttpResponse {
    let route = ctx.route().clone();
    if stale.is_none() {
        // Another fill may have finished between our lookup and joining.
        if let Some(Entry::Object(m)) = ctx.store().get(&store_key).await {
            let now = cdn_shared::unix_ms();
            let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now);
            if policy::classify(&m.freshness, age, m.invalidated) == Class::Fresh {
                leader.publish(FillHead::Stored {
                    meta: m.clone(),
                    key: store_key.clone(),
                    how: StoredHow::Found,
                });
                return serve_stored(&ctx, &m, &store_key, Outcome::hit(ttl_of(&m, now)), now);
            }
        }
    }
    let mut headers = hdr::origin_request_headers(
        ctx.req.headers(),
        true,
        ctx.req.peer_addr().map(|a| a.ip()),
        ctx.scheme,
        &ctx.shared.via,
    );
    // Headers that make some origins rewrite host, URL or method are not part of the key:
    // never sent on a fill, so one client cannot poison the entry for everyone (limits.rs).
    let key_headers = &ctx.shared.routes[ctx.route].cfg.key_headers;
    for name in crate::limits::UNKEYED_OVERRIDE_HEADERS {
        if crate::limits::is_unkeyed_override(name, key_headers) {
            headers.remove(*name);
        }
    }
    if let Some(m) = &stale {
        if let Some(e) = m.header(&header::ETAG) {
            headers.insert(header::IF_NONE_MATCH, e.clone());
        }
        if let Some(lm) = m.header(&header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    let request_time = cdn_shared::unix_ms();
    let t0 = Instant::now();
    let res = ctx
        .origins
        .send(&route, Method::GET, &ctx.path_q, headers, None)
        .await;
    record_origin(&ctx.req, &res, t0);
    let now = cdn_shared::unix_ms();
    let resp = match res {
        Ok(r) => r,
        Err(e) => {
            if let Some(m) = stale.filter(|m| stale_ok(m, now)) {
                leader.publish(FillHead::Stored {
                    meta: m.clone(),
                    key: store_key.clone(),
                    how: StoredHow::StaleOnError { status: None },
                });
                return serve_stored(
                    &ctx,
                    &m,
                    &store_key,
                    stale_outcome(&m, now, None, false),
                    now,
                );
            }
            tracing::info!(key = %store_key, error = %e, "origin fetch failed");
            leader.fail(e.clone());
            return error_response(&e, &ctx.shared.name);
        }
    };
    let status = resp.status().as_u16();
    if let Some(m) = &stale {
        if status == 304 {
            let fresh = Arc::new(refresh_meta(m, resp.headers(), request_time, now, &route));
            ctx.store().put_object(&store_key, fresh.clone());
            leader.publish(FillHead::Stored {
                meta: fresh.clone(),
                key: store_key.clone(),
                how: StoredHow::Revalidated,
            });
            let mut o = Outcome::forward(XCache::Revalidated, Fwd::Stale);
            o.fwd_status = Some(304);
            o.ttl = Some(ttl_of(&fresh, now));
            return serve_stored(&ctx, &fresh, &store_key, o, now);
        }
        if status >= 500 && stale_ok(m, now) {
            leader.publish(FillHead::Stored {
                meta: m.clone(),
                key: store_key.clone(),
                how: StoredHow::StaleOnError {
                    status: Some(status),
                },
            });
            return serve_stored(
                &ctx,
                m,
                &store_key,
                stale_outcome(m, now, Some(status), false),
                now,
            );
        }
    }
    let facts = ResponseFacts::parse(resp.headers());
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let storable = policy::storable(
        &Method::GET,
        ctx.req.headers().contains_key(header::AUTHORIZATION),
        status,
        &facts,
        &route.policy,
    )
    .and_then(|fr| {
        if length.is_some_and(|l| l > route.max_object_size) {
            Err(policy::NoStore::TooLarge)
        } else {
            Ok(fr)
        }
    });
    let fr = match storable {
        Ok(fr) => fr,
        Err(reason) => {
            tracing::debug!(key = %store_key, reason = reason.as_str(), "not stored");
            leader.publish(FillHead::NotShareable);
            let mut o = Outcome::forward(XCache::Miss, fwd);
            o.fwd_status = Some(status);
            o.detail = Some(reason.as_str());
            return stream_origin(&ctx, resp, o);
        }
    };
    let obj_key = if facts.vary.is_empty() {
        ctx.key.clone()
    } else {
        variant_key(&ctx.key, &facts.vary, ctx.req.headers())
    };
    let chunk_size = ctx.store().chunk_size() as u64;
    let headers = hdr::response_headers(resp.headers(), false);
    // Only the client whose request filled the object sees its cookies.
    let cookies: Vec<(HeaderName, HeaderValue)> = resp
        .headers()
        .get_all(header::SET_COOKIE)
        .map(|v| (header::SET_COOKIE, v.clone()))
        .collect();
    let template = ObjectMeta {
        url: ctx.url.clone(),
        status,
        headers: headers.clone(),
        request_time_ms: request_time,
        response_time_ms: now,
        initial_age_ms: policy::initial_age_ms(&facts, request_time, now),
        freshness: fr,
        invalidated: false,
        tags: hdr::purge_tags(resp.headers()),
        body: Body::Inline {
            data: Bytes::new(),
            crc: 0,
        },
    };
    let head = Arc::new(StreamHead {
        status,
        headers,
        length,
        store_key: obj_key,
        object_id: rand::random(),
        chunk_size,
        vary: facts.vary.clone(),
        ttl_s: policy::ttl_s(&fr, template.initial_age_ms),
        age_s: template.initial_age_ms / 1000,
    });
    leader.publish(FillHead::Streaming(head.clone()));
    let fill = leader.fill().clone();
    let copy = Copy {
        store: ctx.store().clone(),
        primary: ctx.key.clone(),
        head: head.clone(),
        template,
        max: route.max_object_size,
        idle: route.idle_timeout(),
    };
    actix_rt::spawn(copy.run(leader, resp));
    let mut o = Outcome::forward(XCache::Miss, fwd);
    o.fwd_status = Some(status);
    o.stored = true;
    o.ttl = Some(head.ttl_s);
    serve_streaming(&ctx, fill, &head, o, &cookies)
}

/// Count an origin fetch, and note its time to headers for the access log (`origin_ms`).
fn record_origin<T>(req: &HttpRequest, res: &Result<T, EdgeError>, t0: Instant) {
    actix_web::HttpMessage::extensions_mut(req).insert(crate::access_log::OriginTime(t0.elapsed()));
    let result = match res {
        Ok(_) => "ok",
        Err(EdgeError::OriginTimeout(_)) => "timeout",
        Err(_) => "error",
    };
    metrics::counter!(m::ORIGIN_FETCHES, "result" => result).increment(1);
    metrics::histogram!(m::ORIGIN_SECONDS).record(t0.elapsed().as_secs_f64());
}

/// A 304 refreshes the stored headers and the freshness (RFC 9111 §4.3.4).
fn refresh_meta(
    old: &ObjectMeta,
    h: &HeaderMap,
    request_time: u64,
    now: u64,
    route: &HostRoute,
) -> ObjectMeta {
    let mut m = old.clone();
    let updates = hdr::response_headers(h, false);
    let names: Vec<&HeaderName> = updates.iter().map(|(n, _)| n).collect();
    m.headers.retain(|(n, _)| !names.contains(&n));
    m.headers.extend(updates.iter().cloned());
    let mut merged = HeaderMap::new();
    for (n, v) in &m.headers {
        merged.append(n.clone(), v.clone());
    }
    let facts = ResponseFacts::parse(&merged);
    m.freshness = policy::freshness(&facts, &route.policy);
    m.request_time_ms = request_time;
    m.response_time_ms = now;
    m.initial_age_ms = policy::initial_age_ms(&facts, request_time, now);
    m.invalidated = false;
    m
}

/// Copies the origin body into the fill (for readers) and into the store (chunks, then the
/// meta entry last, so a meta entry always names a complete object).
struct Copy {
    store: Arc<Store>,
    primary: String,
    head: Arc<StreamHead>,
    template: ObjectMeta,
    max: u64,
    idle: Duration,
}

impl Copy {
    async fn run(self, leader: Leader, mut resp: OriginResponse) {
        let h = &self.head;
        let cs = h.chunk_size as usize;
        let mut buf = BytesMut::new();
        let mut crcs: Vec<u32> = Vec::new();
        let mut total: u64 = 0;
        loop {
            match next_frame(&mut resp, self.idle).await {
                Ok(Some(b)) => {
                    total += b.len() as u64;
                    if total > self.max || h.length.is_some_and(|l| total > l) {
                        leader.fail(EdgeError::OriginBroken(
                            "body longer than allowed or announced".into(),
                        ));
                        return;
                    }
                    buf.extend_from_slice(&b);
                    leader.push(b);
                    while buf.len() >= cs {
                        let data = buf.split_to(cs).freeze();
                        let len = h.length.unwrap_or(total);
                        self.put_chunk(&mut crcs, data, len);
                        // Chunks kept on disk only become readable after foyer's flush:
                        // keep two chunks of frames for readers just behind the fill.
                        let keep = if self.store.disk_only(len) {
                            2 * cs as u64
                        } else {
                            0
                        };
                        leader.chunk_stored(
                            *crcs.last().unwrap_or(&0),
                            (crcs.len() * cs) as u64,
                            keep,
                        );
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::info!(key = %h.store_key, error = %e, "origin body failed");
                    leader.fail(e);
                    return;
                }
            }
        }
        if h.length.is_some_and(|l| l != total) {
            leader.fail(EdgeError::OriginBroken(
                "body shorter than Content-Length".into(),
            ));
            return;
        }
        let body = if crcs.is_empty() {
            let data = buf.freeze();
            Body::Inline {
                crc: crc32fast::hash(&data),
                data,
            }
        } else {
            if !buf.is_empty() {
                self.put_chunk(&mut crcs, buf.freeze(), total);
            }
            Body::Chunked {
                len: total,
                chunk_size: cs as u32,
                object_id: h.object_id,
                crcs,
            }
        };
        let mut meta = self.template;
        meta.body = body;
        self.store.put_object(&h.store_key, Arc::new(meta));
        if !h.vary.is_empty() {
            self.store.put_vary(&self.primary, Arc::new(h.vary.clone()));
        }
        leader.finish(total);
    }

    fn put_chunk(&self, crcs: &mut Vec<u32>, data: Bytes, object_len: u64) {
        let crc = crc32fast::hash(&data);
        let key = chunk_key(&self.head.store_key, self.head.object_id, crcs.len() as u64);
        self.store.put_chunk(key, Chunk { crc, data }, object_len);
        crcs.push(crc);
    }
}

fn refetch(ctx: &Ctx, etag: Option<&HeaderValue>) -> Refetch {
    Refetch {
        origins: ctx.origins.clone(),
        route: ctx.route().clone(),
        path_and_query: ctx.path_q.clone(),
        etag: etag.cloned(),
    }
}

fn find<'a>(
    headers: &'a [(HeaderName, HeaderValue)],
    name: &HeaderName,
) -> Option<&'a HeaderValue> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Status, replayed headers and our cache headers.
fn response(
    ctx: &Ctx,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    age_s: u64,
    o: &Outcome,
) -> actix_web::HttpResponseBuilder {
    let mut b =
        HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY));
    for (n, v) in headers {
        b.append_header((n.clone(), v.clone()));
    }
    b.insert_header((header::AGE, HeaderValue::from(age_s)));
    b.append_header((header::VIA, ctx.shared.via.clone()));
    b.insert_header((hdr::CACHE_STATUS, o.cache_status(&ctx.shared.name)));
    b.insert_header((hdr::X_CACHE, HeaderValue::from_static(o.x_cache.as_str())));
    b
}

/// 304 for a matching client conditional: only the headers RFC 9110 §15.4.5 asks for.
fn not_modified_response(
    ctx: &Ctx,
    headers: &[(HeaderName, HeaderValue)],
    age_s: u64,
    o: &Outcome,
) -> HttpResponse {
    let keep = [
        header::CACHE_CONTROL,
        header::CONTENT_LOCATION,
        header::DATE,
        header::ETAG,
        header::EXPIRES,
        header::VARY,
        header::LAST_MODIFIED,
    ];
    let hs: Vec<_> = headers
        .iter()
        .filter(|(n, _)| keep.contains(n))
        .cloned()
        .collect();
    response(ctx, 304, &hs, age_s, o).finish()
}

/// Decide full / 206 / 416 / 304 for a body of `len` bytes.
enum Answer {
    NotModified,
    Unsatisfiable,
    Bytes(u16, u64, u64),
}

fn answer(
    ctx: &Ctx,
    status: u16,
    headers: &[(HeaderName, HeaderValue)],
    len: Option<u64>,
) -> Answer {
    if status != 200 {
        return Answer::Bytes(status, 0, len.unwrap_or(u64::MAX));
    }
    let etag = find(headers, &header::ETAG);
    let lm = find(headers, &header::LAST_MODIFIED);
    if plan::not_modified(ctx.req.headers(), etag, lm) {
        return Answer::NotModified;
    }
    let Some(len) = len else {
        return Answer::Bytes(200, 0, u64::MAX);
    };
    match plan::range(ctx.req.headers(), len, etag, lm) {
        RangePlan::Full => Answer::Bytes(200, 0, len),
        RangePlan::Partial(a, b) => Answer::Bytes(206, a, b),
        RangePlan::Unsatisfiable => Answer::Unsatisfiable,
    }
}

fn unsatisfiable(ctx: &Ctx, len: u64, o: &Outcome) -> HttpResponse {
    let mut b = response(ctx, 416, &[], 0, o);
    b.insert_header((header::CONTENT_RANGE, format!("bytes */{len}")));
    b.finish()
}

fn with_range(b: &mut actix_web::HttpResponseBuilder, code: u16, a: u64, e: u64, len: u64) {
    if code == 206 {
        b.insert_header((header::CONTENT_RANGE, format!("bytes {a}-{}/{len}", e - 1)));
    }
}

fn serve_stored(ctx: &Ctx, m: &Arc<ObjectMeta>, key: &str, o: Outcome, now: u64) -> HttpResponse {
    let age_s = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now) / 1000;
    let len = m.body.len();
    let (code, a, e) = match answer(ctx, m.status, &m.headers, Some(len)) {
        Answer::NotModified => return not_modified_response(ctx, &m.headers, age_s, &o),
        Answer::Unsatisfiable => return unsatisfiable(ctx, len, &o),
        Answer::Bytes(c, a, e) => (c, a, e.min(len)),
    };
    let mut b = response(ctx, code, &m.headers, age_s, &o);
    with_range(&mut b, code, a, e, len);
    if ctx.head {
        return b
            .no_chunking(e - a)
            .body(BodyStream::new(futures_util::stream::empty::<
                Result<Bytes, EdgeError>,
            >()));
    }
    match &m.body {
        Body::Inline { data, .. } => b.body(data.slice(a as usize..e as usize)),
        Body::Chunked {
            object_id,
            chunk_size,
            ..
        } => {
            let src = BodySource {
                store: ctx.store().clone(),
                key: key.to_string(),
                object_id: *object_id,
                chunk_size: *chunk_size as u64,
                len: Some(len),
                meta: Some(m.clone()),
                fill: None,
                refetch: Some(refetch(ctx, m.header(&header::ETAG))),
            };
            b.body(SizedStream::new(e - a, body_stream(src, a, Some(e))))
        }
    }
}

fn serve_streaming(
    ctx: &Ctx,
    fill: Arc<crate::fill::Fill>,
    h: &StreamHead,
    o: Outcome,
    extra: &[(HeaderName, HeaderValue)],
) -> HttpResponse {
    let (code, a, e) = match answer(ctx, h.status, &h.headers, h.length) {
        Answer::NotModified => return not_modified_response(ctx, &h.headers, h.age_s, &o),
        Answer::Unsatisfiable => return unsatisfiable(ctx, h.length.unwrap_or(0), &o),
        Answer::Bytes(c, a, e) => (c, a, e),
    };
    let mut b = response(ctx, code, &h.headers, h.age_s, &o);
    for (n, v) in extra {
        b.append_header((n.clone(), v.clone()));
    }
    if let Some(len) = h.length {
        with_range(&mut b, code, a, e, len);
    }
    if ctx.head {
        if let Some(len) = h.length {
            b.no_chunking(e.min(len) - a);
        }
        return b.body(BodyStream::new(futures_util::stream::empty::<
            Result<Bytes, EdgeError>,
        >()));
    }
    let src = BodySource {
        store: ctx.store().clone(),
        key: h.store_key.clone(),
        object_id: h.object_id,
        chunk_size: h.chunk_size,
        len: h.length,
        meta: None,
        fill: Some(fill),
        refetch: Some(refetch(ctx, find(&h.headers, &header::ETAG))),
    };
    match h.length {
        Some(len) => {
            let e = e.min(len);
            b.body(SizedStream::new(e - a, body_stream(src, a, Some(e))))
        }
        None => b.body(BodyStream::new(body_stream(src, 0, None))),
    }
}

/// Stream an origin response straight to the client (nothing stored).
fn stream_origin(ctx: &Ctx, resp: OriginResponse, o: Outcome) -> HttpResponse {
    let status = resp.status().as_u16();
    let headers = hdr::response_headers(resp.headers(), true);
    let length = resp
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<u64>().ok());
    let mut b = response(ctx, status, &headers, 0, &o);
    let idle = ctx.route().idle_timeout();
    let body = futures_util::stream::unfold(Some(resp), move |r| async move {
        let mut r = r?;
        match next_frame(&mut r, idle).await {
            Ok(Some(b)) => Some((Ok(b), Some(r))),
            Ok(None) => None,
            Err(e) => Some((Err(e), None)),
        }
    });
    if ctx.head || status == 204 || status == 304 {
        if let Some(l) = length {
            b.no_chunking(l);
        }
        return b.body(BodyStream::new(futures_util::stream::empty::<
            Result<Bytes, EdgeError>,
        >()));
    }
    match length {
        Some(l) => b.body(SizedStream::new(l, body)),
        None => b.body(BodyStream::new(body)),
    }
}

/// Pass a request through to the origin (unsafe methods, and requests whose response must
/// not be shared). A successful unsafe request invalidates the stored URL (RFC 9111 §4.4)
/// and same-host `Location` / `Content-Location` targets.
async fn pass(ctx: Ctx, payload: Option<web::Payload>, bypass: bool) -> HttpResponse {
    let name = &ctx.shared.name;
    let method = ctx.req.method().clone();
    let mut body = None;
    if let Some(mut p) = payload {
        if ctx
            .req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| s.parse::<u64>().ok())
            .is_some_and(|l| l > ctx.shared.max_body)
        {
            return error_response(&EdgeError::BodyTooLarge, name);
        }
        let mut buf = BytesMut::new();
        while let Some(chunk) = p.next().await {
            match chunk {
                Ok(c) => {
                    if (buf.len() + c.len()) as u64 > ctx.shared.max_body {
                        return error_response(&EdgeError::BodyTooLarge, name);
                    }
                    buf.extend_from_slice(&c);
                }
                Err(_) => {
                    return error_response(&EdgeError::BadRequest("request body unreadable"), name)
                }
            }
        }
        if !buf.is_empty() || ctx.req.headers().contains_key(header::CONTENT_LENGTH) {
            body = Some(buf.freeze());
        }
    }
    let headers = hdr::origin_request_headers(
        ctx.req.headers(),
        false,
        ctx.req.peer_addr().map(|a| a.ip()),
        ctx.scheme,
        &ctx.shared.via,
    );
    let t0 = Instant::now();
    let res = ctx
        .origins
        .send(ctx.route(), method.clone(), &ctx.path_q, headers, body)
        .await;
    record_origin(&ctx.req, &res, t0);
    let resp = match res {
        Ok(r) => r,
        Err(e) => return error_response(&e, name),
    };
    let status = resp.status().as_u16();
    let unsafe_method = !matches!(
        method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    );
    if unsafe_method && status < 400 {
        invalidate(&ctx, resp.headers());
    }
    let mut o = if bypass {
        Outcome::forward(XCache::Bypass, Fwd::Bypass)
    } else {
        Outcome::forward(XCache::Miss, Fwd::Request)
    };
    o.fwd_status = Some(status);
    stream_origin(&ctx, resp, o)
}

fn invalidate(ctx: &Ctx, resp: &HeaderMap) {
    let store = ctx.store();
    store.remove(&ctx.key);
    let route = ctx.route();
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        // Only same-host targets (absolute path, or absolute URL naming this host).
        let path = if v.starts_with('/') {
            Some(v.to_string())
        } else {
            url::Url::parse(v).ok().and_then(|u| {
                let same = u.host_str().is_some_and(|h| {
                    ctx.shared.hosts.get(&h.to_ascii_lowercase()) == Some(&ctx.route)
                });
                same.then(|| match u.query() {
                    Some(q) => format!("{}?{q}", u.path()),
                    None => u.path().to_string(),
                })
            })
        };
        let Some(p) = path else { continue };
        let (p, q) = p.split_once('?').unwrap_or((&p, ""));
        if let Some(np) = normalise_path(p) {
            let url = url_of(&route.name, &np, &normalise_query(q, route.cfg.query));
            store.remove(&primary_key(
                ctx.scheme,
                &url,
                &route.cfg.key_headers,
                ctx.req.headers(),
            ));
        }
    }
}
