//! The fill leader: fetch from the origin (conditionally when revalidating), let
//! [`after_origin`] decide, publish what followers need
//! ([`FillHead`]), and act: refresh on 304, stale on error, store while streaming (through
//! [`writer`](crate::writer)), or stream without storing.

use std::sync::Arc;
use std::time::Instant;

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use actix_web::HttpResponse;
use bytes::Bytes;

use crate::account::record_origin;
use crate::after_origin::{after_origin, AfterOrigin, Held, Reply};
use crate::cache::key::variant_key;
use crate::cache::meta::{Body, Entry, ObjectMeta};
use crate::cache::policy::{self, Class, Freshness, ResponseFacts};
use crate::context::Ctx;
use crate::error::error_response;
use crate::fill::{FillHead, Leader, StoredHow, StreamHead};
use crate::headers::{self as hdr, Fwd, Outcome, XCache};
use crate::metrics as m;
use crate::origin::{HostRoute, OriginResponse};
use crate::render::{
    revalidated_outcome, serve_stored, serve_streaming, stale_outcome, stream_origin, ttl_of,
};
use crate::writer::StoreWriter;

/// Lead a fill for `store_key`. `stale` is the stored copy being revalidated (`None` on a
/// miss); `fwd` is the `Cache-Status` forward reason.
pub(crate) async fn lead(
    ctx: Ctx,
    mut leader: Leader,
    store_key: String,
    stale: Option<Arc<ObjectMeta>>,
    fwd: Fwd,
) -> HttpResponse {
    if stale.is_none() {
        // Another fill may have finished between our lookup and joining.
        if let Some(Entry::Object(m)) = ctx.store().get(&store_key).await {
            let now = cdn_shared::unix_ms();
            let age = policy::current_age_ms(m.initial_age_ms, m.response_time_ms, now);
            if policy::classify(&m.freshness, age, m.invalidated) == Class::Fresh
                && !crate::render::body_gone(&ctx, &m, &store_key)
            {
                leader.publish(FillHead::Stored {
                    meta: m.clone(),
                    key: store_key.clone(),
                    how: StoredHow::Found,
                });
                return serve_stored(&ctx, &m, &store_key, Outcome::hit(ttl_of(&m, now)), now);
            }
        }
    }
    // A range of an object we do not have: fetch only the chunks that cover it (ranged.rs).
    // Not through the PoP: a peer would answer the range, not the object.
    let mut whole: Option<OriginResponse> = None;
    if stale.is_none() && ctx.hop.is_none() {
        let cs = ctx.store().chunk_size() as u64;
        if let Some(span) = crate::ranged::wanted(ctx.req.method(), ctx.req.headers(), cs) {
            let headers = fill_request_headers(&ctx, None);
            match crate::ranged::fill(&ctx, &store_key, span, headers).await {
                Ok(crate::ranged::Ranged::Stored(meta)) => {
                    let now = cdn_shared::unix_ms();
                    ctx.shared.hit_for_miss.forget(&store_key);
                    leader.publish(FillHead::Stored {
                        meta: meta.clone(),
                        key: store_key.clone(),
                        how: StoredHow::Found,
                    });
                    let mut o = Outcome::forward(XCache::Miss, fwd);
                    o.fwd_status = Some(206);
                    o.stored = true;
                    o.ttl = Some(ttl_of(&meta, now));
                    o.detail = Some("ranged-fill");
                    return serve_stored(&ctx, &meta, &store_key, o, now);
                }
                Ok(crate::ranged::Ranged::Whole(resp)) => whole = Some(resp),
                Ok(crate::ranged::Ranged::Fallback(why)) if why == crate::ranged::TOO_LARGE => {
                    // Over `max_object_size`: never stored, so a whole-object fill would only
                    // send the client all of it. Its range goes to the origin as it is.
                    tracing::debug!(key = %store_key, "range of an object too large to store: passed");
                    ctx.shared
                        .hit_for_miss
                        .remember(&store_key, cdn_shared::unix_ms());
                    leader.publish(FillHead::NotShareable);
                    return crate::pass::pass(ctx, None, false).await;
                }
                Ok(crate::ranged::Ranged::Fallback(why)) => {
                    tracing::debug!(key = %store_key, why, "ranged fill not possible; whole-object fill");
                }
                Err(e) => {
                    tracing::info!(key = %store_key, error = %e, "ranged fill failed");
                    leader.fail(e.clone());
                    return error_response(&e, &ctx.shared.name);
                }
            }
        }
    }
    let route = ctx.route().clone();
    let headers = fill_request_headers(&ctx, stale.as_deref());
    let request_time = cdn_shared::unix_ms();
    let t0 = Instant::now();
    let (res, fwd, keep_copy) = match whole {
        // The origin answered the ranged fill with the whole object: fill from that answer.
        Some(resp) => (Ok(resp), fwd, true),
        None => {
            // Origin, or through the PoP: the key's owner, a shield (upstream.rs).
            let fetched = crate::upstream::fetch(&ctx, Method::GET, headers).await;
            record_origin(&ctx.req, &fetched.res, t0);
            // A member keeps its copy of a key it does not own only once it is popular here.
            let keep = fetched.keep_copy || stale.is_some();
            (fetched.res, fetched.via.fwd(fwd), keep)
        }
    };
    let now = cdn_shared::unix_ms();
    let held = Held::of(stale.as_deref(), now);
    let (resp, facts, length, reply) = match res {
        Err(e) => {
            let reply = Reply::Failed {
                stale_allowed: e.allows_stale(),
            };
            match (after_origin(reply, held, route.max_object_size), stale) {
                (AfterOrigin::ServeStale { origin_status }, Some(m)) => {
                    return serve_stale(&ctx, leader, &m, &store_key, origin_status, now)
                }
                _ => {
                    tracing::info!(key = %store_key, error = %e, "origin fetch failed");
                    leader.fail(e.clone());
                    return error_response(&e, &ctx.shared.name);
                }
            }
        }
        Ok(resp) => {
            let status = resp.status().as_u16();
            let facts = ResponseFacts::parse(resp.headers()).received_at(now);
            let length = hdr::content_length(resp.headers());
            let storable = policy::storable(
                &Method::GET,
                ctx.req.headers().contains_key(header::AUTHORIZATION),
                status,
                &facts,
                &route.policy,
            );
            let reply = Reply::Head {
                status,
                content_length: length,
                storable,
            };
            (resp, facts, length, reply)
        }
    };
    let status = resp.status().as_u16();
    match (after_origin(reply, held, route.max_object_size), stale) {
        (AfterOrigin::Refresh, Some(m)) => {
            let auth = ctx.req.headers().contains_key(header::AUTHORIZATION);
            let (fresh, storable) =
                refresh_meta(&m, resp.headers(), request_time, now, &route, auth);
            let fresh = Arc::new(fresh);
            if storable {
                ctx.store().put_object(&store_key, fresh.clone());
            } else {
                // The updated response may not be stored (the 304 says `no-store`, `private`
                // …, RFC 9111 §4.3.4 + §3): this request and its followers get it, the cache
                // drops it.
                ctx.store().remove(&store_key);
            }
            leader.publish(FillHead::Stored {
                meta: fresh.clone(),
                key: store_key.clone(),
                how: StoredHow::Revalidated,
            });
            let o = revalidated_outcome(&fresh, now);
            serve_stored(&ctx, &fresh, &store_key, o, now)
        }
        (AfterOrigin::ServeStale { origin_status }, Some(m)) => {
            serve_stale(&ctx, leader, &m, &store_key, origin_status, now)
        }
        (AfterOrigin::Store(_), _) if !keep_copy => {
            leader.publish(FillHead::NotShareable);
            let mut o = Outcome::forward(XCache::Miss, fwd);
            o.fwd_status = Some(status);
            o.detail = Some("not-popular");
            unstored(ctx, resp, length, o).await
        }
        (AfterOrigin::Store(_), _) if !admits_variant(&ctx, &facts) => {
            metrics::counter!(m::VARY_VARIANTS_REFUSED).increment(1);
            leader.publish(FillHead::NotShareable);
            let mut o = Outcome::forward(XCache::Miss, fwd);
            o.fwd_status = Some(status);
            o.detail = Some("too-many-variants");
            unstored(ctx, resp, length, o).await
        }
        (AfterOrigin::Store(_), _)
            if length.is_none() && ctx.shared.hit_for_miss.overflowed(&store_key, now) =>
        {
            // Its last body without a length outgrew max_object_size while being stored
            // (writer.rs): stream this one without storing it up to the limit again.
            leader.publish(FillHead::NotShareable);
            let mut o = Outcome::forward(XCache::Miss, fwd);
            o.fwd_status = Some(status);
            o.detail = Some(crate::cache::policy::NoStore::TooLarge.as_str());
            unstored(ctx, resp, length, o).await
        }
        (AfterOrigin::Store(fr), _) => {
            ctx.shared.hit_for_miss.forget(&store_key);
            let fetched = Fetched {
                resp,
                facts,
                length,
                fr,
                request_time,
                now,
            };
            store_and_stream(&ctx, leader, fetched, fwd, &route, &store_key)
        }
        (decision, _) => {
            let reason = match decision {
                AfterOrigin::Stream(reason) => {
                    if crate::hit_for_miss::remembers(reason, status) {
                        ctx.shared.hit_for_miss.remember(&store_key, now);
                    }
                    reason.as_str()
                }
                other => other.as_str(),
            };
            tracing::debug!(key = %store_key, reason, "not stored");
            leader.publish(FillHead::NotShareable);
            let mut o = Outcome::forward(XCache::Miss, fwd);
            o.fwd_status = Some(status);
            o.detail = Some(reason);
            unstored(ctx, resp, length, o).await
        }
    }
}

/// Whether the client asked for part of the object or made its request conditional (RFC 9110
/// §13.1, §14.2): a fill asks the origin for the whole object without either.
pub(crate) fn partial_or_conditional(h: &HeaderMap) -> bool {
    [
        header::RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
    ]
    .iter()
    .any(|n| h.contains_key(n))
}

/// Answer the leader's client with an origin response that is not stored: streamed as it is —
/// unless the client asked for a range or a conditional answer, which that whole, unconditional
/// response cannot give (it would be a full 200 for a video seek, a download resume or a
/// browser revalidation). The client's own request is then passed to the origin.
async fn unstored(ctx: Ctx, resp: OriginResponse, length: Option<u64>, o: Outcome) -> HttpResponse {
    if partial_or_conditional(ctx.req.headers()) {
        drop(resp);
        return crate::pass::pass(ctx, None, false).await;
    }
    stream_origin(&ctx, resp, length, o)
}

/// A varying response may be stored unless its URL already has `cache.max_vary_variants`
/// other variants (checked in the purge index; nothing to check without Vary).
fn admits_variant(ctx: &Ctx, facts: &ResponseFacts) -> bool {
    if facts.vary.is_empty() {
        return true;
    }
    let vkey = variant_key(&ctx.key, &facts.vary, ctx.end_to_end());
    ctx.store()
        .admits_variant(&ctx.url, &vkey, ctx.shared.max_vary_variants)
}

/// Publish and serve the stale copy in place of the origin's failure.
fn serve_stale(
    ctx: &Ctx,
    mut leader: Leader,
    m: &Arc<ObjectMeta>,
    store_key: &str,
    origin_status: Option<u16>,
    now: u64,
) -> HttpResponse {
    leader.publish(FillHead::Stored {
        meta: m.clone(),
        key: store_key.to_string(),
        how: StoredHow::StaleOnError {
            status: origin_status,
        },
    });
    let o = stale_outcome(m, now, origin_status, false);
    serve_stored(ctx, m, store_key, o, now)
}

/// The request headers of a fill: the client's, minus hop-by-hop and unkeyed overrides, plus
/// the validators of the copy being revalidated.
fn fill_request_headers(ctx: &Ctx, stale: Option<&ObjectMeta>) -> HeaderMap {
    let mut headers = hdr::origin_request_headers(
        ctx.req.headers(),
        true,
        ctx.req.peer_addr().map(|a| a.ip()),
        ctx.scheme,
        &ctx.shared.via,
    );
    // Headers that make some origins rewrite host, URL or method are not part of the key:
    // never sent on a fill, so one client cannot poison the entry for everyone (limits.rs).
    let key_headers = &ctx.route().cfg.key_headers;
    for name in crate::limits::UNKEYED_OVERRIDE_HEADERS {
        if crate::limits::is_unkeyed_override(name, key_headers) {
            headers.remove(*name);
        }
    }
    if let Some(m) = stale {
        if let Some(e) = m.header(&header::ETAG) {
            headers.insert(header::IF_NONE_MATCH, e.clone());
        }
        if let Some(lm) = m.header(&header::LAST_MODIFIED) {
            headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
        }
    }
    headers
}

/// A storable origin response and what was read from its head.
struct Fetched {
    resp: OriginResponse,
    facts: ResponseFacts,
    length: Option<u64>,
    fr: Freshness,
    request_time: u64,
    now: u64,
}

/// Publish the stream head, start the store writer, and stream to this client. `fill_key`
/// is the key the fill was joined under (hit-for-miss remembers an overflow by it).
fn store_and_stream(
    ctx: &Ctx,
    mut leader: Leader,
    f: Fetched,
    fwd: Fwd,
    route: &HostRoute,
    fill_key: &str,
) -> HttpResponse {
    let Fetched {
        resp,
        facts,
        length,
        fr,
        request_time,
        now,
    } = f;
    let status = resp.status().as_u16();
    let obj_key = if facts.vary.is_empty() {
        ctx.key.clone()
    } else {
        variant_key(&ctx.key, &facts.vary, ctx.end_to_end())
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
        peer_headers: crate::pop::answer::peer_headers(&template.tags, &fr),
        fwd,
    });
    leader.publish(FillHead::Streaming(head.clone()));
    // Registered before the writer runs (it may overflow the fill, which then takes no new
    // reader).
    let reader = leader.reader();
    let writer = StoreWriter {
        store: ctx.store().clone(),
        primary: ctx.key.clone(),
        head: head.clone(),
        template,
        max: route.max_object_size,
        idle: route.idle_timeout(),
        hit_for_miss: ctx.shared.hit_for_miss.clone(),
        fill_key: fill_key.to_string(),
    };
    actix_rt::spawn(writer.run(leader, resp));
    let mut o = Outcome::forward(XCache::Miss, fwd);
    o.fwd_status = Some(status);
    o.stored = true;
    o.ttl = Some(head.ttl_s);
    serve_streaming(ctx, reader, &head, o, &cookies)
}

/// A 304 refreshes the stored headers and the freshness (RFC 9111 §4.3.4); with whether the
/// updated response may still be stored.
fn refresh_meta(
    old: &ObjectMeta,
    h: &HeaderMap,
    request_time: u64,
    now: u64,
    route: &HostRoute,
    auth: bool,
) -> (ObjectMeta, bool) {
    let mut m = old.clone();
    let updates = hdr::response_headers(h, false);
    let names: Vec<&HeaderName> = updates.iter().map(|(n, _)| n).collect();
    m.headers.retain(|(n, _)| !names.contains(&n));
    m.headers.extend(updates.iter().cloned());
    let mut merged = HeaderMap::new();
    for (n, v) in &m.headers {
        merged.append(n.clone(), v.clone());
    }
    // What freshness needs but is not replayed to clients: the 304's own `Surrogate-Control`
    // and `Age` (RFC 9111 §4.3.4: the updated response's freshness).
    for name in [hdr::SURROGATE_CONTROL, header::AGE] {
        for v in h.get_all(&name) {
            merged.append(name.clone(), v.clone());
        }
    }
    let facts = ResponseFacts::parse(&merged).received_at(now);
    m.freshness = crate::after_origin::refreshed_freshness(
        &old.freshness,
        policy::freshness(&facts, &route.policy),
        h.contains_key(hdr::SURROGATE_CONTROL),
    );
    m.request_time_ms = request_time;
    m.response_time_ms = now;
    m.initial_age_ms = policy::initial_age_ms(&facts, request_time, now);
    m.invalidated = false;
    let storable = policy::storable(&Method::GET, auth, m.status, &facts, &route.policy).is_ok();
    (m, storable)
}
