//! One query in, one response out: [`respond`] is the whole DNS request path, shared by the
//! UDP threads and the TCP tasks. In flow order: `wire::decode` (header, question, OPT/ECS) →
//! protocol checks (opcode, EDNS version, DNS Cookies, class, meta types) → `decide::resolve`, the one
//! decision per question (zone dispatch, CNAME chains, static records, negative answers, and
//! service answers: `route::pick` from the snapshot's precompiled geo map, with the pool states
//! and interned answers of the thread's [`ThreadCache`]) → `answer::Response` (ECS echo, OPT,
//! truncation).

use std::net::IpAddr;
use std::sync::Arc;

use crate::answer::{formerr, not_implemented, udp_limit, OptReply, Rcode, Response};
use crate::cookies::{CookieOpt, CookieState, SERVER_COOKIE_LEN};
use crate::decide::{resolve, ServiceAnswers};
use crate::health::HealthView;
use crate::route::{
    self, answer_from, answer_of, client_key, decide_located, PoolState, ServiceAnswer,
};
use crate::rrl::Kind;
use crate::snapshot::Snapshot;
use crate::wire::{class, decode, formerr_echo, rtype, Decoded, Ecs, Edns, Malformed};

pub use crate::answer_cache::{AnswerKey, ThreadCache, MAX_ANSWERS, TCP_MAX_ANSWERS};

/// Transport a query came over (sets the size limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// UDP: the requester's EDNS size (512 without EDNS), capped by ours.
    Udp,
    /// TCP: 65535.
    Tcp,
}

/// What was answered (for metrics and the query log).
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// QTYPE (0 when the question could not be read).
    pub qtype: u16,
    /// Response code.
    pub rcode: Rcode,
    /// Service index when a service answered.
    pub service: Option<usize>,
    /// The service answer, when one was used.
    pub answer: Option<Arc<ServiceAnswer>>,
    /// Truncated (TC=1).
    pub truncated: bool,
    /// The query's DNS Cookie (a valid server cookie exempts the answer from RRL).
    pub cookie: CookieState,
    /// What kind of answer it was, for its response-rate-limiting bucket.
    pub rrl: Kind,
}

/// Everything a response depends on besides the packet.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Config snapshot.
    pub snap: &'a Snapshot,
    /// Health snapshot.
    pub view: &'a HealthView,
    /// Unix ms now.
    pub now_ms: u64,
}

/// Answer one packet into `out`. `None`: send nothing (not a query, or no readable header).
pub fn respond(
    ctx: Context<'_>,
    cache: &mut ThreadCache,
    packet: &[u8],
    resolver: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let q = match decode(packet) {
        Ok(Decoded::Query(q)) => q,
        Ok(Decoded::NotImplemented) => {
            not_implemented(out, packet);
            return Some(simple(0, Rcode::NotImp));
        }
        Ok(Decoded::CookieOnly { id, flags, edns }) => {
            return Some(cookie_only(ctx, id, flags, &edns, resolver, transport, out));
        }
        Err(Malformed::Drop) => return None,
        Err(Malformed::FormErr) => {
            let echo = formerr_echo(packet);
            formerr(out, packet, &echo, ctx.snap.udp_payload_size);
            return Some(simple(echo.qtype, Rcode::FormErr));
        }
    };
    let limit = match transport {
        Transport::Udp => udp_limit(q.edns.as_ref(), ctx.snap.udp_payload_size),
        Transport::Tcp => u16::MAX as usize,
    };
    let mut opt = q
        .edns
        .as_ref()
        .map(|e| OptReply::for_query(e, ctx.snap.udp_payload_size));
    if let Some(o) = opt.as_mut() {
        // Echo ECS with scope 0 unless a service answer sets it (RFC 7871 §7.2.1).
        o.ecs = q.edns.and_then(|e| e.ecs).map(|e| (e, 0));
    }
    // DNS Cookies (RFC 7873 §5.2, cookies.rs): judged before anything else is answered.
    let (cookie, reply_cookie) = judge_cookie(ctx, q.edns.as_ref(), resolver);
    if let Some(o) = opt.as_mut() {
        o.cookie = reply_cookie;
    }
    let early = if q.edns.is_some_and(|e| e.version > 0) {
        if let Some(o) = opt.as_mut() {
            o.ecs = None;
            o.cookie = None;
        }
        Some(Rcode::BadVers)
    } else if cookie == CookieState::Malformed {
        Some(Rcode::FormErr)
    } else if cookie == CookieState::Bad && transport == Transport::Udp {
        // A server cookie that is not ours (or expired): BADCOOKIE with a fresh one, so the
        // client retries with it. Over TCP the handshake proved the address: answer.
        Some(Rcode::BadCookie)
    } else if q.qtype == rtype::OPT {
        Some(Rcode::FormErr)
    } else if (q.qclass != class::IN && q.qclass != class::ANY)
        || matches!(q.qtype, rtype::IXFR | rtype::AXFR)
    {
        // Other classes, and zone transfers, are not served.
        Some(Rcode::Refused)
    } else if matches!(q.qtype, rtype::MAILB | rtype::MAILA) {
        Some(Rcode::NotImp)
    } else {
        None
    };
    if let Some(rcode) = early {
        let r = Response::start(out, q.id, q.flags, q.question, false, rcode);
        r.finish(opt, limit);
        return Some(Outcome {
            cookie,
            ..simple(q.qtype, rcode)
        });
    }

    let ecs = q.edns.and_then(|e| e.ecs);
    let mut answers = Cached {
        ctx,
        cache,
        resolver,
        ecs,
    };
    let done = resolve(&ctx.snap.zones, &q, out, opt, limit, &mut answers);
    Some(Outcome {
        qtype: q.qtype,
        rcode: done.rcode,
        service: done.service,
        answer: done.answer,
        truncated: out.len() > 2 && out[2] & 0x02 != 0,
        cookie,
        rrl: done.rrl,
    })
}

/// The query's cookie as judged (`CookieState::None` when cookies are off) and the COOKIE
/// option of the reply: the client cookie with a fresh server cookie, when the query had a
/// well-formed option and cookies are on.
fn judge_cookie(
    ctx: Context<'_>,
    edns: Option<&Edns>,
    resolver: IpAddr,
) -> (CookieState, Option<[u8; 8 + SERVER_COOKIE_LEN]>) {
    let Some(sc) = &ctx.snap.cookies else {
        return (CookieState::None, None);
    };
    let now_s = ctx.now_ms / 1000;
    let opt = edns.and_then(|e| e.cookie);
    let state = sc.judge(opt, resolver, now_s);
    let reply = match opt {
        Some(CookieOpt::Cookie { client, .. }) => {
            let mut c = [0u8; 8 + SERVER_COOKIE_LEN];
            c[..8].copy_from_slice(&client);
            c[8..].copy_from_slice(&sc.issue(&client, resolver, now_s));
            Some(c)
        }
        _ => None,
    };
    (state, reply)
}

/// Answer a query without a question that carries a COOKIE option (RFC 7873 §5.4: a client
/// asking for a server cookie, `dig +header-only +cookie`): no question, no records, an OPT
/// with the client cookie and a fresh server cookie — NOERROR for a client cookie alone or a
/// valid server cookie, BADCOOKIE for a server cookie that is not ours (over TCP too: checking
/// it is what was asked). FORMERR (bare OPT) when cookies are off or the option is malformed,
/// BADVERS for an EDNS version above 0.
fn cookie_only(
    ctx: Context<'_>,
    id: u16,
    flags: u16,
    edns: &Edns,
    resolver: IpAddr,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome {
    let limit = match transport {
        Transport::Udp => udp_limit(Some(edns), ctx.snap.udp_payload_size),
        Transport::Tcp => u16::MAX as usize,
    };
    let mut opt = OptReply::for_query(edns, ctx.snap.udp_payload_size);
    let (cookie, reply_cookie) = judge_cookie(ctx, Some(edns), resolver);
    let rcode = if edns.version > 0 {
        Rcode::BadVers
    } else {
        match (cookie, reply_cookie) {
            (CookieState::ClientOnly | CookieState::Valid, Some(_)) => Rcode::NoError,
            (CookieState::Bad, Some(_)) => Rcode::BadCookie,
            _ => Rcode::FormErr,
        }
    };
    if matches!(rcode, Rcode::NoError | Rcode::BadCookie) {
        opt.cookie = reply_cookie;
    }
    Response::start(out, id, flags, &[], false, rcode).finish(Some(opt), limit);
    Outcome {
        cookie,
        ..simple(0, rcode)
    }
}

/// The outcome of a query answered without a service (header-only, errors, zone data).
pub(crate) fn simple(qtype: u16, rcode: Rcode) -> Outcome {
    Outcome {
        qtype,
        rcode,
        service: None,
        answer: None,
        truncated: false,
        cookie: CookieState::None,
        rrl: Kind::Name,
    }
}

/// The service answers of the DNS path: decided by `route::pick` (the precompiled geo map), or
/// per query by `route::decide_located` where the map holds nothing; the thread's cache only
/// keeps the pool states of the health generation and shares identical answers.
struct Cached<'c, 'a> {
    ctx: Context<'a>,
    cache: &'c mut ThreadCache,
    resolver: IpAddr,
    ecs: Option<Ecs>,
}

impl ServiceAnswers for Cached<'_, '_> {
    fn service_answer(&mut self, svc: usize, rtype: u16) -> Arc<ServiceAnswer> {
        let ctx = self.ctx;
        let snap = ctx.snap;
        let key = client_key(&snap.services[svc], self.resolver, self.ecs.as_ref());
        self.cache.validate(snap.epoch, ctx.view.generation);
        let (state, mut answers, chosen) =
            self.cache.parts(crate::snapshot::pool(svc, rtype), || {
                PoolState::new(snap, svc, rtype, ctx.view, ctx.now_ms)
            });
        match route::pick(snap, svc, rtype, &key, state, chosen) {
            Some((picked, scope)) => answers.intern(
                AnswerKey::new(svc, rtype, scope, picked.rule, chosen),
                || {
                    answer_from(
                        snap,
                        svc,
                        rtype,
                        &state.candidates,
                        chosen,
                        picked.rule,
                        scope,
                    )
                },
            ),
            None => {
                let location = Arc::new(snap.locator.locate(key.addr));
                let d = decide_located(
                    snap,
                    svc,
                    key,
                    location,
                    state.candidates.clone(),
                    ctx.now_ms,
                );
                answers.intern(
                    AnswerKey::new(svc, rtype, d.scope, d.decision.rule, &d.decision.chosen),
                    || answer_of(snap, svc, rtype, &d),
                )
            }
        }
    }
}
