//! The fill's fetch: "where do I fetch this from" ([`Pop::route`](crate::pop::Pop::route)), then
//! the targets in order — peers of this PoP, then shield members — over HTTP/1.1 keep-alive
//! (one awc client per worker thread), then the origin (`Origins::send`). A peer answers like
//! an origin, so `lead.rs` and `pass.rs` use the answer as they would the origin's.
//!
//! Failure handling: a target that cannot be connected to within `cluster.connect_timeout` is
//! marked down (the probes bring it back) and the next is tried. One that sends no response
//! head within `cluster.first_byte_timeout` is waited for while its probes say it is up (it
//! is most likely filling the key from a slow origin, and every member's request joins that
//! fill), at most the host's `first_byte_timeout` more; once the probes mark it down, the next
//! is tried. A member that sent no head in that whole time although its probes passed (its
//! own origin timeout would have answered by then: its request handling is wedged) gets no
//! more patience until it answers a request again (`Member::is_stalled`). The origin comes
//! last, so no request fails because a peer is down. A peer's 5xx is its answer, treated like an origin's (stale-if-error applies
//! in `after_origin.rs`). When a peer's body breaks off (the peer died mid-stream, or sent
//! nothing for `cluster.first_byte_timeout`), the rest is fetched from the origin by `Range`
//! with `If-Match` on the peer's strong `ETag` (`Resume`) and the client never notices;
//! without a strong `ETag` and a `Content-Length` the body ends early as an origin's would.

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use actix_web::http::header::{self, HeaderMap, HeaderValue};
use actix_web::http::Method;
use awc::error::PayloadError;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::context::Ctx;
use crate::error::EdgeError;
use crate::headers::{self as hdr, Fwd};
use crate::origin::{HostRoute, OriginResponse, Origins};
use crate::pop::route::{Hop, Target};
use crate::pop::{ring, Member, Pop, CDN_HOP, CDN_POP_LOAD};

/// Where the answer came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The origin (or no `[cluster]`).
    Origin,
    /// A member of this PoP.
    Peer,
    /// A member of a shield region.
    Shield,
}

impl Via {
    /// Metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Origin => "origin",
            Via::Peer => "peer",
            Via::Shield => "shield",
        }
    }

    /// The `Cache-Status` `fwd` of a miss filled this way (`fwd=peer`, `fwd=shield`); other
    /// reasons (`stale`, `request`) are kept.
    pub fn fwd(self, fwd: Fwd) -> Fwd {
        match (self, fwd) {
            (Via::Peer, Fwd::UriMiss | Fwd::VaryMiss) => Fwd::Peer,
            (Via::Shield, Fwd::UriMiss | Fwd::VaryMiss) => Fwd::Shield,
            _ => fwd,
        }
    }
}

/// The answer and what the caller needs to know about it.
pub(crate) struct Fetched {
    /// The answer (head received), or why there is none.
    pub res: Result<OriginResponse, EdgeError>,
    /// Where it came from.
    pub via: Via,
    /// Keep a copy? False only for a peer's answer to a key this edge does not own and has
    /// not missed `cluster.replicate_after` times.
    pub keep_copy: bool,
}

thread_local! {
    static PEERS: RefCell<Option<awc::Client>> = const { RefCell::new(None) };
}

/// This worker's peer client (built on first use).
fn client(pop: &Pop) -> awc::Client {
    PEERS.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                let (connect, first_byte) = pop.timeouts();
                let connector = awc::Connector::new()
                    .timeout(connect)
                    .conn_keep_alive(crate::origin::ORIGIN_IDLE_KEEP_ALIVE)
                    .limit(256);
                awc::Client::builder()
                    .connector(connector)
                    .timeout(first_byte)
                    .disable_redirects()
                    .no_default_headers()
                    .finish()
            })
            .clone()
    })
}

/// Fetch `ctx`'s object (`method` GET or HEAD, no body) with `headers` (the fill's request
/// headers) through the PoP: peers, shields, then the origin.
pub(crate) async fn fetch(ctx: &Ctx, method: Method, headers: HeaderMap) -> Fetched {
    let route = ctx.route();
    let Some(pop) = ctx.shared.pop.as_deref() else {
        return origin(ctx, route, method, headers, true).await;
    };
    let key_hash = ring::hash(ctx.key.as_bytes());
    let plan = pop.route(key_hash, ctx.hop, ctx.route);
    let keep_copy = plan.owner_is_me
        || plan.targets.is_empty()
        || pop.popularity.count(key_hash) >= pop.cfg.replicate_after;
    for t in plan.targets {
        let (hop, via) = match t {
            Target::Peer(_) => (Hop::Peer, Via::Peer),
            Target::Shield(..) => (Hop::Shield, Via::Shield),
        };
        let m = pop.member(t);
        match send(pop, m, hop, route, &method, &ctx.path_q, &headers).await {
            Ok(resp) => {
                metrics::counter!(crate::metrics::POP_FETCHES, "via" => via.as_str(), "result" => "ok")
                    .increment(1);
                let resp = resumable(resp, ctx.origins.clone(), route, &ctx.path_q, &headers, pop);
                return Fetched {
                    res: Ok(resp),
                    via,
                    keep_copy: keep_copy || via == Via::Shield,
                };
            }
            Err(e) => {
                let timeout = !marks_down(&e);
                let result = if timeout { "timeout" } else { "error" };
                metrics::counter!(crate::metrics::POP_FETCHES, "via" => via.as_str(), "result" => result)
                    .increment(1);
                if timeout {
                    // No head in time (the probes marked it down meanwhile, or the host's
                    // origin timeout passed too). The probes decide whether it is down;
                    // marking it down here would take a healthy owner waiting on a slow origin
                    // out of every key's routing.
                    tracing::warn!(member = %m.id, hop = hop.as_str(), key = %ctx.key, error = %e,
                        "peer fill timed out; trying the next");
                } else {
                    tracing::warn!(member = %m.id, hop = hop.as_str(), key = %ctx.key, error = %e,
                        "peer fill failed; member marked down, trying the next");
                    m.failed();
                }
            }
        }
    }
    origin(ctx, route, method, headers, true).await
}

/// Whether a fill of `ctx`'s key would go to a peer of this PoP before the origin (this
/// edge does not own the key, as it sees the PoP): such a fill is not joined by a peer's
/// request ([`Fill::asks_peer`](crate::fill::Fill::asks_peer)).
pub(crate) fn asks_peer(ctx: &Ctx) -> bool {
    let Some(pop) = ctx.shared.pop.as_deref() else {
        return false;
    };
    ctx.hop.is_none()
        && pop
            .route(ring::hash(ctx.key.as_bytes()), None, ctx.route)
            .targets
            .iter()
            .any(|t| matches!(t, Target::Peer(_)))
}

/// Whether a failed peer or shield fill takes the member out of routing at once: a refused
/// or broken connection does; a missing head in time does not — the member may be waiting on
/// a slow origin for that one key, and its probes decide whether it is down.
fn marks_down(e: &EdgeError) -> bool {
    !matches!(e, EdgeError::OriginTimeout(_))
}

async fn origin(
    ctx: &Ctx,
    route: &HostRoute,
    method: Method,
    headers: HeaderMap,
    keep_copy: bool,
) -> Fetched {
    Fetched {
        res: ctx
            .origins
            .send(route, method, &ctx.path_q, headers, None)
            .await,
        via: Via::Origin,
        keep_copy,
    }
}

/// One request to a member: the fill's headers, `Host` = the host's configured name, our
/// `CDN-Loop` token and the hop marker. Errors are connect failures and timeouts.
async fn send(
    pop: &Pop,
    m: &Member,
    hop: Hop,
    route: &HostRoute,
    method: &Method,
    path_q: &str,
    headers: &HeaderMap,
) -> Result<OriginResponse, EdgeError> {
    let url = format!("http://{}{}", m.address, path_q);
    let mut req = client(pop).request(method.clone(), url.as_str());
    for (n, v) in headers.iter() {
        if *n != CDN_HOP {
            req = req.append_header((n.clone(), v.clone()));
        }
    }
    req = req
        .append_header((hdr::CDN_LOOP, pop.cdn_loop.clone()))
        .insert_header((CDN_HOP, pop.marker(hop)));
    if let Ok(h) = HeaderValue::from_str(&route.name) {
        req = req.insert_header((header::HOST, h));
    }
    // The member may be waiting on the origin for this key (its own fill, which every member's
    // request for the key joins): past `cluster.first_byte_timeout`, keep waiting while the
    // probes say it is up, up to the host's own origin `first_byte_timeout` more. Going to
    // the origin beside it would fetch a slow object twice.
    let (_, first_byte) = pop.timeouts();
    let longest = first_byte.saturating_add(route.cfg.first_byte_timeout);
    let sent = req.timeout(longest).send();
    let Some(sent) = patient(sent, m, first_byte).await else {
        return Err(EdgeError::OriginTimeout(format!(
            "{}: no response head in {first_byte:?}, and the probes marked it down or it is stalled",
            m.id
        )));
    };
    match &sent {
        Ok(_) => m.set_stalled(false),
        // No head in the whole patience while its probes passed.
        Err(awc::error::SendRequestError::Timeout) => m.set_stalled(true),
        Err(_) => {}
    }
    let resp = sent.map_err(|e| {
        use awc::error::{ConnectError, SendRequestError as E};
        match e {
            E::Timeout | E::Connect(ConnectError::Timeout) => {
                EdgeError::OriginTimeout(format!("{}: {e}", m.id))
            }
            E::Connect(_) => EdgeError::OriginConnect(format!("{}: {e}", m.id)),
            _ => EdgeError::OriginBroken(format!("{}: {e}", m.id)),
        }
    })?;
    // The peer's own cache headers are not ours to store or replay.
    Ok(resp.map_body(|head, body| {
        for n in [&hdr::CACHE_STATUS, &hdr::X_CACHE, &CDN_POP_LOAD] {
            head.headers.remove(n);
        }
        body
    }))
}

/// How often a request past `cluster.first_byte_timeout` looks at its member's probe state.
const PATIENCE_CHECK: Duration = Duration::from_millis(100);

/// `fut` (a member's answer), given `first_byte` and then as long as the probes keep `m` up
/// and it is not stalled; `None` once they mark it down (a stopped or hung member: the next
/// target is tried) or it is stalled ([`Member::is_stalled`]).
async fn patient<F: std::future::Future>(
    fut: F,
    m: &Member,
    first_byte: Duration,
) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    if let Ok(out) = tokio::time::timeout(first_byte, &mut fut).await {
        return Some(out);
    }
    loop {
        if !m.is_up() || m.is_stalled() {
            return None;
        }
        if let Ok(out) = tokio::time::timeout(PATIENCE_CHECK, &mut fut).await {
            return Some(out);
        }
    }
}

type Frames = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// How to fetch the rest of a peer's body from the origin.
struct Resume {
    origins: Rc<Origins>,
    route: HostRoute,
    path_q: String,
    headers: HeaderMap,
    etag: HeaderValue,
    total: u64,
    idle: Duration,
}

/// Wrap a peer's 200 answer with a strong `ETag` and a `Content-Length` so a body that
/// breaks off is completed from the origin ([`Resume`]); other answers are returned as they
/// are.
fn resumable(
    resp: OriginResponse,
    origins: Rc<Origins>,
    route: &HostRoute,
    path_q: &str,
    headers: &HeaderMap,
    pop: &Pop,
) -> OriginResponse {
    let etag = resp
        .headers()
        .get(header::ETAG)
        .filter(|e| !e.as_bytes().starts_with(b"W/"))
        .cloned();
    let total = hdr::content_length(resp.headers());
    let (Some(etag), Some(total), 200) = (etag, total, resp.status().as_u16()) else {
        return resp;
    };
    let mut h = headers.clone();
    h.remove(CDN_HOP);
    let resume = Resume {
        origins,
        route: route.clone(),
        path_q: path_q.to_string(),
        headers: h,
        etag,
        total,
        idle: pop.cfg.first_byte_timeout,
    };
    resp.map_body(move |_, body| {
        let frames: Frames = Box::pin(body);
        let payload: Frames = Box::pin(resume_stream(frames, resume));
        actix_http::Payload::Stream { payload }
    })
}

/// The peer's frames; when they break off (an error, an early end, or nothing for `idle`),
/// the origin's `Range` answer from the first missing byte, once.
fn resume_stream(
    frames: Frames,
    resume: Resume,
) -> impl Stream<Item = Result<Bytes, PayloadError>> {
    let state = (frames, 0u64, Some(resume));
    futures_util::stream::unfold(Some(state), |st| async move {
        let (mut frames, mut sent, mut resume) = st?;
        loop {
            let idle = resume.as_ref().map(|r| r.idle);
            let next = match idle {
                Some(d) => tokio::time::timeout(d, frames.next())
                    .await
                    .unwrap_or_else(|_| Some(Err(PayloadError::Incomplete(None)))),
                None => frames.next().await,
            };
            match next {
                Some(Ok(b)) => {
                    sent = sent.saturating_add(b.len() as u64);
                    return Some((Ok(b), Some((frames, sent, resume))));
                }
                None if resume.as_ref().is_none_or(|r| sent >= r.total) => return None,
                // Every byte arrived: an error after the last one changes nothing.
                Some(Err(_)) if resume.as_ref().is_some_and(|r| sent >= r.total) => return None,
                broken => {
                    let Some(r) = resume.take() else {
                        let e = match broken {
                            Some(Err(e)) => e,
                            _ => PayloadError::Incomplete(None),
                        };
                        return Some((Err(e), None));
                    };
                    match from_origin(&r, sent).await {
                        Ok(f) => {
                            tracing::info!(host = %r.route.name, path = %r.path_q, from = sent,
                                "peer body broke off; the rest comes from the origin");
                            metrics::counter!(crate::metrics::POP_RESUMES, "result" => "ok")
                                .increment(1);
                            frames = f;
                        }
                        Err(e) => {
                            tracing::warn!(host = %r.route.name, path = %r.path_q, error = %e,
                                "peer body broke off and the origin could not complete it");
                            metrics::counter!(crate::metrics::POP_RESUMES, "result" => "error")
                                .increment(1);
                            return Some((Err(PayloadError::Incomplete(None)), None));
                        }
                    }
                }
            }
        }
    })
}

/// `GET` bytes `from-` of the object from the origin, `If-Match` the peer's `ETag`; only a
/// 206 starting at `from` for the same total length is accepted.
async fn from_origin(r: &Resume, from: u64) -> Result<Frames, EdgeError> {
    let mut h = r.headers.clone();
    h.insert(
        header::RANGE,
        HeaderValue::from_str(&format!("bytes={from}-"))
            .map_err(|_| EdgeError::OriginBroken("range".into()))?,
    );
    h.insert(header::IF_MATCH, r.etag.clone());
    let resp = r
        .origins
        .send(&r.route, Method::GET, &r.path_q, h, None)
        .await?;
    let want = format!("bytes {from}-{}/{}", r.total.saturating_sub(1), r.total);
    let ok = resp.status().as_u16() == 206
        && resp
            .headers()
            .get(header::CONTENT_RANGE)
            .is_some_and(|v| v.as_bytes() == want.as_bytes());
    if !ok {
        return Err(EdgeError::OriginBroken(format!(
            "resume: origin answered {} to bytes={from}-",
            resp.status()
        )));
    }
    Ok(Box::pin(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slow_member_is_not_marked_down_a_dead_one_is() {
        assert!(!marks_down(&EdgeError::OriginTimeout("e3: timeout".into())));
        assert!(marks_down(&EdgeError::OriginConnect("e3: refused".into())));
        assert!(marks_down(&EdgeError::OriginBroken("e3: reset".into())));
    }

    #[test]
    fn fwd_names_the_hop_of_a_miss_only() {
        assert_eq!(Via::Peer.fwd(Fwd::UriMiss), Fwd::Peer);
        assert_eq!(Via::Peer.fwd(Fwd::VaryMiss), Fwd::Peer);
        assert_eq!(Via::Shield.fwd(Fwd::UriMiss), Fwd::Shield);
        assert_eq!(Via::Peer.fwd(Fwd::Stale), Fwd::Stale);
        assert_eq!(Via::Origin.fwd(Fwd::UriMiss), Fwd::UriMiss);
    }
}
