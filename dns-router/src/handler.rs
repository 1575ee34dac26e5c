//! One query in, one response out: [`respond`] is the whole DNS request path, shared by the
//! UDP threads and the TCP tasks. In flow order: `wire::decode` (header, question, OPT/ECS) →
//! protocol checks (opcode, EDNS version, class, meta types) → `zone::Zones::lookup` → static
//! records, referral, negative answer, or `route::Router::service_answer` (cached per thread in
//! [`ThreadCache`] by client key, dropped when the config epoch or the health generation
//! changes) → `answer::Response` (ECS echo, OPT, truncation).

use std::net::IpAddr;
use std::sync::Arc;

use crate::answer::{header_only, udp_limit, OptReply, Rcode, Response, Section, OWNER_QNAME};
use crate::health::HealthView;

use crate::route::{
    answer_of, candidates, client_key, Router, ServiceAnswer, Snapshot, TYPE_A, TYPE_AAAA,
};
use crate::wire::{decode, Decoded, Malformed, Query};
use crate::zone::{Lookup, Node, RrSet, Zone, Zones};

pub use crate::answer_cache::{
    AnswerKey, CacheKey, Candidates, ThreadCache, CLIENT_SLOTS, NET_SLOTS,
};

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
            header_only(out, packet, Rcode::NotImp);
            return Some(simple(0, Rcode::NotImp));
        }
        Err(Malformed::Drop) => return None,
        Err(Malformed::FormErr) => {
            header_only(out, packet, Rcode::FormErr);
            return Some(simple(0, Rcode::FormErr));
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
    let early = if q.edns.is_some_and(|e| e.version > 0) {
        if let Some(o) = opt.as_mut() {
            o.ecs = None;
        }
        Some(Rcode::BadVers)
    } else if q.qtype == 41 {
        Some(Rcode::FormErr)
    } else if (q.qclass != 1 && q.qclass != 255) || matches!(q.qtype, 251 | 252) {
        // Other classes, and zone transfers, are not served.
        Some(Rcode::Refused)
    } else if matches!(q.qtype, 253 | 254) {
        Some(Rcode::NotImp)
    } else {
        None
    };
    if let Some(rcode) = early {
        let r = Response::start(out, q.id, q.flags, q.question, false, rcode);
        r.finish(opt, limit);
        return Some(simple(q.qtype, rcode));
    }

    let mut outcome = simple(q.qtype, Rcode::NoError);
    let zones = &ctx.snap.zones;
    match zones.lookup(q.name()) {
        Lookup::Refused => {
            outcome.rcode = Rcode::Refused;
            Response::start(out, q.id, q.flags, q.question, false, Rcode::Refused)
                .finish(opt, limit);
        }
        Lookup::NxDomain { zone } => {
            outcome.rcode = Rcode::NxDomain;
            let mut r = Response::start(out, q.id, q.flags, q.question, true, Rcode::NxDomain);
            r.raw(Section::Authority, &zone.negative_soa, 1);
            r.finish(opt, limit);
        }
        Lookup::Referral { cut, ns, .. } => {
            let mut r = Response::start(out, q.id, q.flags, q.question, false, Rcode::NoError);
            for rd in &ns.rdata {
                r.record(Section::Authority, cut, 2, ns.ttl, rd);
            }
            r.raw(Section::Additional, &ns.glue, ns.glue_count);
            r.finish(opt, limit);
        }
        Lookup::Found { zone, node } => {
            let mut r = Response::start(out, q.id, q.flags, q.question, true, Rcode::NoError);
            let scope = answer_node(
                ctx,
                cache,
                &q,
                resolver,
                zones,
                zone,
                node,
                &mut r,
                &mut outcome,
            );
            if let (Some(o), Some(s)) = (opt.as_mut(), scope) {
                if let Some(e) = o.ecs.as_mut() {
                    e.1 = s;
                }
            }
            if r.count(Section::Answer) == 0 {
                r.raw(Section::Authority, &zone.negative_soa, 1);
            }
            r.finish(opt, limit);
        }
    }
    outcome.truncated = out.len() > 2 && out[2] & 0x02 != 0;
    Some(outcome)
}

fn simple(qtype: u16, rcode: Rcode) -> Outcome {
    Outcome {
        qtype,
        rcode,
        service: None,
        answer: None,
        truncated: false,
    }
}

/// Longest CNAME chain followed inside our zones.
const MAX_CNAME_CHAIN: usize = 8;

/// Fill the answer (and additional) sections for a name that exists. Returns the ECS scope
/// when a service answered.
#[allow(clippy::too_many_arguments)]
fn answer_node(
    ctx: Context<'_>,
    cache: &mut ThreadCache,
    q: &Query<'_>,
    resolver: IpAddr,
    zones: &Zones,
    zone: &Zone,
    node: &Node,
    r: &mut Response<'_>,
    outcome: &mut Outcome,
) -> Option<u8> {
    let qtype = q.qtype;
    // Owner of the records being written: the question (pointer) or a CNAME target.
    let mut owner: &[u8] = &OWNER_QNAME;
    let mut node = node;
    let mut zone = zone;
    for _ in 0..MAX_CNAME_CHAIN {
        if let Some(cname) = node.rrset(5) {
            if qtype != 5 && qtype != 255 {
                r.record(Section::Answer, owner, 5, cname.ttl, &cname.rdata[0]);
                let target = cname.cname_target.as_deref()?;
                match zones.lookup(target) {
                    Lookup::Found { zone: z, node: n } => {
                        owner = target;
                        node = n;
                        zone = z;
                        continue;
                    }
                    // Outside our zones or not existing: the resolver follows the CNAME.
                    _ => return None,
                }
            }
        }
        break;
    }
    let _ = zone;
    if let Some(svc) = node.service {
        if qtype == TYPE_A || qtype == TYPE_AAAA || qtype == 255 {
            let rtype = if qtype == TYPE_AAAA {
                TYPE_AAAA
            } else {
                TYPE_A
            };
            let a = service_answer(ctx, cache, q, resolver, svc, rtype);
            for addr in &a.addrs {
                match addr {
                    IpAddr::V4(v4) => r.record(Section::Answer, owner, TYPE_A, a.ttl, &v4.octets()),
                    IpAddr::V6(v6) => {
                        r.record(Section::Answer, owner, TYPE_AAAA, a.ttl, &v6.octets())
                    }
                }
            }
            outcome.service = Some(svc);
            let scope = a.scope;
            outcome.answer = Some(a);
            return Some(scope);
        }
    }
    let set: Option<&RrSet> = if qtype == 255 {
        // RFC 8482: answer ANY with one RRset.
        node.rrsets.first()
    } else {
        node.rrset(qtype)
    };
    if let Some(set) = set {
        for rd in &set.rdata {
            r.record(Section::Answer, owner, set.rtype, set.ttl, rd);
        }
        if set.rtype == 2 {
            r.raw(Section::Additional, &set.glue, set.glue_count);
        }
    }
    None
}

fn service_answer(
    ctx: Context<'_>,
    cache: &mut ThreadCache,
    q: &Query<'_>,
    resolver: IpAddr,
    svc: usize,
    rtype: u16,
) -> Arc<ServiceAnswer> {
    let ecs = q.edns.as_ref().and_then(|e| e.ecs.as_ref());
    let service = &ctx.snap.services[svc];
    let key = client_key(service, resolver, ecs);
    cache.validate(ctx.snap.epoch, ctx.view.generation);
    let ck = CacheKey {
        svc,
        rtype,
        addr: key.addr,
        prefix: key.ecs_prefix.unwrap_or(0),
        used: key.ecs_prefix.is_some(),
    };
    cache.answer(
        ck,
        || ctx.snap.locator.locate(key.addr),
        |candidates_by_type, location| {
            let candidates = candidates_by_type
                .entry((svc as u32, rtype))
                .or_insert_with(|| Arc::new(candidates(ctx.snap, service, rtype, ctx.view)))
                .clone();
            let d = Router::decide_located(ctx.snap, svc, key, location, candidates, ctx.now_ms);
            let akey: AnswerKey = (
                svc as u32,
                rtype,
                d.scope,
                d.decision.rule as u8,
                d.decision.chosen.clone(),
            );
            (akey, answer_of(ctx.snap, svc, rtype, &d))
        },
    )
}
