//! Fill through the in-flight table ([`fill`](crate::fill)): lead (this request fetches), or
//! follow (wait for the leader's head, then stream the same bytes or serve what it stored),
//! retrying once when the leader fails. Stale-if-error is decided by
//! [`after_origin`], as for the leader. A key [`hit_for_miss`](crate::hit_for_miss) remembers
//! as not storable skips the join: it leads on its own, or passes a range or conditional.

use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpResponse;

use crate::after_origin::{after_origin, AfterOrigin, Held, Reply};
use crate::cache::key::variant_key;
use crate::cache::meta::ObjectMeta;
use crate::context::Ctx;
use crate::error::{error_response, EdgeError};
use crate::fill::{FillHead, Join, StoredHow};
use crate::headers::{Fwd, Outcome, XCache};
use crate::lead::lead;
use crate::metrics as m;
use crate::pass::pass;
use crate::render::{revalidated_outcome, serve_stored, serve_streaming, stale_outcome, ttl_of};

/// Fill `store_key`: lead, or follow (with one retry if the leader fails). `stale` is the
/// stored copy being revalidated, if any.
pub(crate) async fn fill(
    ctx: Ctx,
    mut store_key: String,
    stale: Option<Arc<ObjectMeta>>,
    mut fwd: Fwd,
) -> HttpResponse {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if stale.is_none()
            && ctx
                .shared
                .hit_for_miss
                .holds(&store_key, cdn_shared::unix_ms())
        {
            // Its last response could not be stored: do not queue behind another request's
            // fill to learn that again (hit_for_miss.rs).
            if crate::lead::partial_or_conditional(ctx.req.headers()) {
                metrics::counter!(m::HIT_FOR_MISS, "how" => "pass").increment(1);
                return pass(ctx, None, false).await;
            }
            metrics::counter!(m::HIT_FOR_MISS, "how" => "fetch").increment(1);
            let leader = ctx.shared.fills.detached(&store_key);
            return lead(ctx, leader, store_key, None, fwd).await;
        }
        let asks_peer = crate::upstream::asks_peer(&ctx);
        let join = match ctx.shared.fills.join_asking(&store_key, asks_peer) {
            Ok(j) => j,
            Err(e) => return stale_or_error(&ctx, &store_key, stale.as_ref(), &e),
        };
        let fill = match join {
            Join::Leader(l) => return lead(ctx, l, store_key, stale, fwd).await,
            Join::Follower(f) if ctx.hop.is_some() && f.asks_peer() => {
                // A peer asks us for a key whose fill here asks a peer: the members take each
                // other for its owner (bounded load, weights or health seen differently) and
                // would wait on each other until a timeout. Fill it for that peer on our own.
                let leader = ctx.shared.fills.detached(&store_key);
                return lead(ctx, leader, store_key, stale, fwd).await;
            }
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
                    let vkey = variant_key(&ctx.key, &h.vary, ctx.end_to_end());
                    if vkey != h.store_key {
                        store_key = vkey;
                        fwd = Fwd::VaryMiss;
                        continue;
                    }
                }
                // The leader's reason when it says where the fill came from (fwd=peer|shield).
                let f = match h.fwd {
                    Fwd::Peer | Fwd::Shield => h.fwd,
                    _ => fwd,
                };
                let mut o = Outcome::forward(XCache::Miss, f);
                o.fwd_status = Some(h.status);
                o.stored = true;
                o.collapsed = true;
                o.ttl = Some(h.ttl_s);
                let Some(reader) = fill.reader() else {
                    // The body outgrew max_object_size before this request started reading
                    // it: its first bytes are gone, and it is not stored.
                    tracing::debug!(key = %store_key, "fill overflowed before this follower read it; passed");
                    return pass(ctx, None, false).await;
                };
                metrics::counter!(m::COALESCED).increment(1);
                return serve_streaming(&ctx, reader, &h, o, &[]);
            }
            Ok(FillHead::Stored { meta, key, how }) => {
                let mut o = match how {
                    StoredHow::Found => Outcome::hit(ttl_of(&meta, now)),
                    StoredHow::Revalidated => revalidated_outcome(&meta, now),
                    StoredHow::StaleOnError { status } => stale_outcome(&meta, now, status, true),
                };
                o.collapsed = true;
                metrics::counter!(m::COALESCED).increment(1);
                return serve_stored(&ctx, &meta, &key, o, now);
            }
            Ok(FillHead::NotShareable) => return pass(ctx, None, false).await,
            Err(e) => {
                let max = ctx.route().max_object_size;
                let decision = after_origin(failed(&e), Held::of(stale.as_deref(), now), max);
                if let (AfterOrigin::ServeStale { origin_status }, Some(m)) = (decision, &stale) {
                    let o = stale_outcome(m, now, origin_status, true);
                    return serve_stored(&ctx, m, &store_key, o, now);
                }
                if attempt >= 2 || matches!(e, EdgeError::FillTimeout) {
                    return error_response(&e, &ctx.shared.name);
                }
                tracing::debug!(key = %store_key, error = %e, "fill leader failed; retrying");
            }
        }
    }
}

fn failed(e: &EdgeError) -> Reply {
    Reply::Failed {
        stale_allowed: e.allows_stale(),
    }
}

/// A fill that could not start (too many in flight): the stale copy when [`after_origin`]
/// allows it, else the error.
fn stale_or_error(
    ctx: &Ctx,
    key: &str,
    stale: Option<&Arc<ObjectMeta>>,
    e: &EdgeError,
) -> HttpResponse {
    let now = cdn_shared::unix_ms();
    let max = ctx.route().max_object_size;
    match (
        after_origin(failed(e), Held::of(stale.map(|m| &**m), now), max),
        stale,
    ) {
        (AfterOrigin::ServeStale { origin_status }, Some(m)) => {
            let o = stale_outcome(m, now, origin_status, false);
            serve_stored(ctx, m, key, o, now)
        }
        _ => error_response(e, &ctx.shared.name),
    }
}
