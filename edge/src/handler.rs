//! Dispatch: limits → context (host, key) → GET/HEAD to the cache, everything else passed
//! through → accounting. The cache path: lookup → [`plan`] → serve a hit | serve
//! stale and refresh in the background | revalidate or fill ([`follow`](crate::follow): lead
//! or follow the in-flight fill). Errors become responses in
//! [`error_response`] only.
//!
//! The steps, one file each: [`context`](crate::context) (host, normalised URL and key,
//! lookup), [`follow`](crate::follow) (join the in-flight fill), [`lead`](crate::lead) (the
//! leader's origin fetch), [`after_origin`](crate::after_origin) (what to do with the origin's
//! answer, pure), [`writer`](crate::writer) (store while streaming), [`render`](crate::render)
//! (responses), [`pass`](crate::pass) (pass-through and invalidation),
//! [`account`](crate::account) (load, metrics, access log).

use std::time::Instant;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::cache::meta::{Body, ObjectMeta};
use crate::cache::policy;
use crate::compress;
use crate::context::{Ctx, NoRoute};
use crate::error::error_response;
use crate::fill::Join;
use crate::follow::fill;
use crate::headers::{Fwd, Outcome, XCache};
use crate::lead::lead;
use crate::limits;
use crate::pass::pass;
use crate::plan::{self, Lookup, Plan};
use crate::render::ttl_of;
use crate::render::FirstChunk;
use crate::state::{Local, Shared};

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
    // A PoP member asking over plain HTTP on its client's behalf (authenticated `CDN-Hop`).
    let from_peer = shared
        .pop
        .as_ref()
        .is_some_and(|p| p.hop_of(req.headers()).is_some());
    let mut resp = match limits::check_request(req.method(), pq, req.headers(), h1, &shared.limits)
    {
        Err(rej) => rej.response(),
        Ok(()) => route_request(req.clone(), body, &shared, &local, from_peer).await,
    };
    // A member's answer keeps what the origin sent (Strict-Transport-Security included): the
    // member applies HSTS for its own client.
    if !from_peer {
        shared.https.add_hsts(&req, &shared.hosts, &mut resp);
    }
    crate::account::finish(&shared, &req, pq, &resp, started);
    resp
}

async fn route_request(
    req: HttpRequest,
    body: web::Payload,
    shared: &web::Data<Shared>,
    local: &web::Data<Local>,
    from_peer: bool,
) -> HttpResponse {
    // [hosts.tls] redirect: plain HTTP → HTTPS before anything else is done (not for a PoP
    // member asking over plain HTTP on its client's behalf).
    if !from_peer {
        if let Some(r) = shared.https.redirect(&req, &shared.hosts) {
            return r;
        }
    }
    // RFC 8586: a request that already passed through this edge (an origin pointing back at
    // the CDN) is refused instead of fetched again.
    if crate::headers::loops(req.headers(), &shared.name) {
        return error_response(&crate::error::EdgeError::LoopDetected, &shared.name);
    }
    let ctx = match Ctx::new(req, shared, &local.origins) {
        Ok(ctx) => ctx,
        Err(NoRoute::Healthz) => return healthz(shared),
        Err(NoRoute::Error(e)) => return error_response(&e, &shared.name),
    };
    // Tenant rules: rate limit, geo, CORS preflight, signed URL (tenant/); a PoP member's
    // request was admitted by the member (and gets the object as stored, rules unapplied).
    let (route, req) = (ctx.route, ctx.req.clone());
    if ctx.hop.is_some() && matches!(*ctx.req.method(), Method::GET | Method::HEAD) {
        return cached(ctx).await;
    }
    let mut resp = match shared.tenants.admit(route, &req) {
        Some(answer) => answer,
        None => {
            let method = ctx.req.method();
            if method == Method::GET || method == Method::HEAD {
                cached(ctx).await
            } else {
                pass(ctx, Some(body), true).await
            }
        }
    };
    shared.tenants.finish(route, &req, &mut resp);
    resp
}

async fn cached(ctx: Ctx) -> HttpResponse {
    if ctx.hop.is_some() {
        // A PoP member stores and compresses for itself: it gets the identity object.
        return cached_inner(ctx, true).await;
    }
    cached_inner(ctx, false).await
}

/// Serve a stored object: compressed per `[hosts.compress]`, or as stored for a peer (with its
/// first chunk when it was read already).
async fn serve_hit(
    ctx: &Ctx,
    m: &std::sync::Arc<crate::cache::meta::ObjectMeta>,
    key: &str,
    o: Outcome,
    now: u64,
    identity: bool,
    first: Option<bytes::Bytes>,
) -> HttpResponse {
    if identity {
        crate::render::serve_stored_primed(ctx, m, key, o, now, first)
    } else {
        compress::serve(ctx, m, key, o, now, first).await
    }
}

/// `compress::mark` unless the answer goes to a peer.
fn mark(ctx: &Ctx, resp: HttpResponse, identity: bool) -> HttpResponse {
    if identity {
        resp
    } else {
        compress::mark(ctx, resp)
    }
}

async fn cached_inner(ctx: Ctx, identity: bool) -> HttpResponse {
    let now = cdn_shared::unix_ms();
    let (meta, store_key, fwd) = ctx.lookup().await;
    let look = match &meta {
        None if fwd == Fwd::VaryMiss => Lookup::VaryMiss,
        None => Lookup::Miss,
        Some(m) => {
            let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now);
            Lookup::Found(policy::classify(&m.freshness, age, m.invalidated))
        }
    };
    let plan = plan::plan(look);
    // A stored object whose body has left the cache is a miss, fresh or not: its body comes
    // from the origin either way (a revalidation's 304 would not bring it back). An answer
    // from the store reads the first chunk now (the body starts with it); a revalidation only
    // asks the disk index, so a 304 does not read it twice; so does a hit answered with a
    // compressed variant (its identity body is not read).
    let encoded = |m: &ObjectMeta| {
        !identity && matches!(m.body, Body::Chunked { .. }) && compress::encodes(&ctx, m)
    };
    let first = match (&plan, &meta) {
        (Plan::Hit | Plan::ServeStaleAndRefresh, Some(m)) if !encoded(m) => {
            crate::render::first_chunk(&ctx, m, &store_key).await
        }
        (Plan::Hit | Plan::ServeStaleAndRefresh | Plan::Revalidate, Some(m))
            if crate::render::body_gone(&ctx, m, &store_key) =>
        {
            FirstChunk::Gone
        }
        _ => FirstChunk::NotRead,
    };
    let (meta, first) = match first {
        FirstChunk::Gone => {
            metrics::counter!(crate::metrics::BODY_REFILLS).increment(1);
            (None, None)
        }
        FirstChunk::Read(b) => (meta, Some(b)),
        FirstChunk::NotRead => (meta, None),
    };
    match (plan, meta) {
        (Plan::Hit, Some(m)) => {
            let ttl = ttl_of(&m, now);
            serve_hit(
                &ctx,
                &m,
                &store_key,
                Outcome::hit(ttl),
                now,
                identity,
                first,
            )
            .await
        }
        (Plan::ServeStaleAndRefresh, Some(m)) => {
            let asks_peer = crate::upstream::asks_peer(&ctx);
            if let Ok(Join::Leader(l)) = ctx.shared.fills.join_asking(&store_key, asks_peer) {
                let bg = ctx.clone();
                let (k, stale) = (store_key.clone(), m.clone());
                actix_rt::spawn(async move {
                    let _ = lead(bg, l, k, Some(stale), Fwd::Stale).await;
                });
            }
            let mut o = Outcome::hit(ttl_of(&m, now));
            o.x_cache = XCache::Stale;
            o.detail = Some("stale-while-revalidate");
            serve_hit(&ctx, &m, &store_key, o, now, identity, first).await
        }
        (Plan::Revalidate, Some(m)) => {
            let c = ctx.clone();
            mark(
                &c,
                fill(ctx, store_key, Some(m), Fwd::Stale).await,
                identity,
            )
        }
        (Plan::Fill(f), _) => mark(&ctx.clone(), fill(ctx, store_key, None, f).await, identity),
        (_, None) => mark(
            &ctx.clone(),
            fill(ctx, store_key, None, Fwd::UriMiss).await,
            identity,
        ),
    }
}

/// `/healthz` on the client listener (a `Host` the edge does not serve): the lifecycle's
/// answer plus `CDN-Pop-Load` when clustered.
fn healthz(shared: &Shared) -> actix_web::HttpResponse {
    let mut resp = crate::admin::healthz_response(&shared.lifecycle);
    if let Some(pop) = &shared.pop {
        let l = pop.myself().load();
        if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&format!("{l:.1}")) {
            resp.headers_mut().insert(crate::pop::CDN_POP_LOAD, v);
        }
    }
    resp
}
