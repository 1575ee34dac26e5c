//! Steps 2–4 of a query: the one decision per question. [`resolve`] takes a decoded question
//! and answers it from the snapshot: zone dispatch (`zone::Zones::lookup`: REFUSED outside
//! our zones, referral, NXDOMAIN), CNAME chains inside our zones, static RRsets (ANY answered
//! with one RRset, RFC 8482), NODATA, negative answers with the SOA (RFC 2308), and for a CDN
//! hostname the service answer with its ECS scope. It writes the response through
//! `answer::Response`; the service answers come from a [`ServiceAnswers`] source.
//!
//! Every path runs it:
//! * DNS over UDP and TCP (`handler::respond`), whose [`ServiceAnswers`] decides with
//!   `route::pick` (the snapshot's precompiled geo map; per query where the map holds nothing)
//!   and shares identical answers through the thread's cache;
//! * [`decide`] — `(snapshot, health view, question, client, ECS) → Decision` — for the admin
//!   API's explain and services views: it runs [`resolve`] with a [`ServiceAnswers`] that
//!   calls `route::decide` (the same precompiled map and the same pick, plus the ranking with
//!   distances for display) and keeps its trace, then reads the records back from the very
//!   bytes DNS would send (decoded with hickory-proto). What explain shows is what DNS
//!   answers, by construction.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::Record as HickoryRecord;
use serde::Serialize;

use cdn_geo::model::ClientLocation;

use crate::answer::{OptReply, Rcode, Response, Section, OWNER_QNAME};
use crate::health::HealthView;
use crate::route::{self, Decided, ServiceAnswer};
use crate::rrl::Kind;
use crate::snapshot::Snapshot;
use crate::wire::{class, name_to_wire, rtype, Ecs, Edns, Query, MAX_NAME_LEN};
use crate::zone::{Lookup, Node, RrSet, Zone, Zones};

/// Longest CNAME chain followed inside our zones.
pub const MAX_CNAME_CHAIN: usize = 8;

/// Where the addresses of a service come from, for the client of the question being answered.
pub trait ServiceAnswers {
    /// The answer of service `svc` (index into `Snapshot::services`) for `rtype` (A or AAAA).
    fn service_answer(&mut self, svc: usize, rtype: u16) -> Arc<ServiceAnswer>;
}

/// What kind of answer a question got (explain's `outcome`; logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A service answered with at least one address.
    Service,
    /// A static RRset answered.
    Static,
    /// Only a CNAME chain: its target is outside our zones, missing, or has no data of the
    /// type. The RCODE and the SOA follow the last name of the chain (RFC 6604, RFC 2308
    /// §2.1-2.2): NXDOMAIN with the SOA when it does not exist, NOERROR with the SOA when it
    /// has no data of the type, NOERROR alone when it is outside our zones.
    Cname,
    /// The name exists without data of the type (NOERROR, SOA in authority).
    NoData,
    /// The name does not exist (SOA in authority).
    NxDomain,
    /// The name is at or below a delegation: referral, no AA.
    Referral,
    /// Not in our zones.
    Refused,
}

impl Outcome {
    /// Name for logs and the admin API (`referral` is shown as `referral to <cut>` there).
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Service => "service",
            Outcome::Static => "static",
            Outcome::Cname => "cname",
            Outcome::NoData => "nodata",
            Outcome::NxDomain => "nxdomain",
            Outcome::Referral => "referral",
            Outcome::Refused => "refused",
        }
    }
}

/// What [`resolve`] wrote.
#[derive(Debug, Clone)]
pub struct Resolved<'z> {
    /// Response code.
    pub rcode: Rcode,
    /// Kind of answer.
    pub outcome: Outcome,
    /// Service index when a service answered (or was asked and answered nothing).
    pub service: Option<usize>,
    /// The service answer used.
    pub answer: Option<Arc<ServiceAnswer>>,
    /// The delegation point of a referral (lowercase wire name).
    pub cut: Option<&'z [u8]>,
    /// What kind of answer it is for response-rate limiting: NODATA (by zone), a referral
    /// (by delegation point), a wildcard answer (by wildcard), a service's, or the name's own.
    pub rrl: Kind,
}

/// Answer `q` (a query that passed the protocol checks) from `zones` into `out`, finishing
/// the message with `opt` (ECS echo scope set from the service answer) and `limit`.
pub fn resolve<'z, A: ServiceAnswers>(
    zones: &'z Zones,
    q: &Query<'_>,
    out: &mut Vec<u8>,
    mut opt: Option<OptReply>,
    limit: usize,
    answers: &mut A,
) -> Resolved<'z> {
    let mut done = Resolved {
        rcode: Rcode::NoError,
        outcome: Outcome::NoData,
        service: None,
        answer: None,
        cut: None,
        rrl: Kind::Name,
    };
    match zones.lookup_type(q.name(), q.qtype) {
        Lookup::Refused => {
            done.rcode = Rcode::Refused;
            done.outcome = Outcome::Refused;
            Response::start(out, q.id, q.flags, q.question, false, Rcode::Refused)
                .finish(opt, limit);
        }
        Lookup::NxDomain { zone } => {
            done.rcode = Rcode::NxDomain;
            done.outcome = Outcome::NxDomain;
            let mut r = Response::start(out, q.id, q.flags, q.question, true, Rcode::NxDomain);
            r.raw(Section::Authority, &zone.negative_soa, 1);
            r.finish(opt, limit);
        }
        Lookup::Referral { cut, node, ns, .. } => {
            done.outcome = Outcome::Referral;
            done.cut = Some(cut);
            done.rrl = Kind::Referral(node.id);
            let mut r = Response::start(out, q.id, q.flags, q.question, false, Rcode::NoError);
            for rd in &ns.rdata {
                r.record(Section::Authority, cut, rtype::NS, ns.ttl, rd);
            }
            r.raw(Section::Additional, &ns.glue, ns.glue_count);
            if ns.glue_in_domain {
                // In-domain glue is needed to follow the referral: all of it or TC (RFC 9471).
                r.require_additional();
            }
            r.finish(opt, limit);
        }
        Lookup::Found {
            zone,
            node,
            wildcard,
        } => {
            let mut r = Response::start(out, q.id, q.flags, q.question, true, Rcode::NoError);
            let tail = answer_node(zones, zone, node, q, &mut r, answers, &mut done);
            done.rrl = match (tail, done.outcome, done.service) {
                (Tail::NoData(z) | Tail::NxDomain(z), _, _) => Kind::NoData(z.id),
                (Tail::Data, Outcome::Service, Some(svc)) => {
                    Kind::Service(u32::try_from(svc).unwrap_or(u32::MAX))
                }
                (Tail::Data, _, _) if wildcard => Kind::Wildcard(node.id),
                (Tail::Data, _, _) => Kind::Name,
            };
            if let (Some(o), Some(a)) = (opt.as_mut(), done.answer.as_ref()) {
                if let Some(e) = o.ecs.as_mut() {
                    e.1 = a.scope;
                }
            }
            match tail {
                Tail::Data => {}
                Tail::NoData(z) => r.raw(Section::Authority, &z.negative_soa, 1),
                Tail::NxDomain(z) => {
                    done.rcode = Rcode::NxDomain;
                    r.set_rcode(Rcode::NxDomain);
                    r.raw(Section::Authority, &z.negative_soa, 1);
                }
            }
            r.finish(opt, limit);
        }
    }
    done
}

/// How the answer to a name that exists ended: what the last name of its CNAME chain (the name
/// itself without one) had.
#[derive(Debug, Clone, Copy)]
enum Tail<'z> {
    /// Data of the type was written, or the chain leaves what we answer (another zone, a
    /// delegation, the chain limit): the resolver goes on from the last CNAME.
    Data,
    /// The last name exists without data of the type: NODATA, the SOA of its zone.
    NoData(&'z Zone),
    /// The last name (a CNAME target) does not exist: NXDOMAIN, the SOA of its zone.
    NxDomain(&'z Zone),
}

/// Fill the answer (and additional) sections for a name that exists in `zone`, following
/// CNAMEs inside our zones; sets `done.outcome` (and the service fields when a service
/// answered) and says how the last name of the chain ended.
fn answer_node<'z, A: ServiceAnswers>(
    zones: &'z Zones,
    zone: &'z Zone,
    node: &'z Node,
    q: &Query<'_>,
    r: &mut Response<'_>,
    answers: &mut A,
    done: &mut Resolved<'_>,
) -> Tail<'z> {
    let qtype = q.qtype;
    // Owner of the records being written: the question (pointer) or a CNAME target.
    let mut owner: &[u8] = &OWNER_QNAME;
    let mut node = node;
    let mut zone = zone;
    let follows_cname = qtype != rtype::CNAME && qtype != rtype::ANY;
    // The names of the chain so far: a target seen before is a loop (zones refuse loops of
    // static records when built; this keeps any other from repeating records).
    let mut seen: [&[u8]; MAX_CNAME_CHAIN + 1] = [&[]; MAX_CNAME_CHAIN + 1];
    seen[0] = q.name();
    for hop in 0..MAX_CNAME_CHAIN {
        let Some(cname) = node.rrset(rtype::CNAME).filter(|_| follows_cname) else {
            break;
        };
        let Some(rdata) = cname.rdata.first() else {
            break;
        };
        r.record(Section::Answer, owner, rtype::CNAME, cname.ttl, rdata);
        done.outcome = Outcome::Cname;
        let Some(target) = cname.cname_target.as_deref() else {
            return Tail::Data;
        };
        if seen[..=hop].contains(&target) {
            return Tail::Data;
        }
        seen[hop + 1] = target;
        match zones.lookup_type(target, qtype) {
            Lookup::Found {
                zone: z, node: n, ..
            } => {
                owner = target;
                node = n;
                zone = z;
            }
            // The target does not exist: the RCODE follows the last name (RFC 6604).
            Lookup::NxDomain { zone: z } => return Tail::NxDomain(z),
            // Outside our zones or delegated: the resolver follows the CNAME.
            Lookup::Refused | Lookup::Referral { .. } => return Tail::Data,
        }
    }
    if follows_cname && node.rrset(rtype::CNAME).is_some() {
        // The chain is longer than we follow: the resolver goes on from the last target.
        return Tail::Data;
    }
    if let Some(svc) = node.service {
        if qtype == rtype::A || qtype == rtype::AAAA || qtype == rtype::ANY {
            let family = if qtype == rtype::AAAA {
                rtype::AAAA
            } else {
                rtype::A
            };
            let a = answers.service_answer(svc, family);
            for addr in &a.addrs {
                match addr {
                    IpAddr::V4(v4) => {
                        r.record(Section::Answer, owner, rtype::A, a.ttl, &v4.octets())
                    }
                    IpAddr::V6(v6) => {
                        r.record(Section::Answer, owner, rtype::AAAA, a.ttl, &v6.octets())
                    }
                }
            }
            let found = !a.addrs.is_empty();
            if found {
                done.outcome = Outcome::Service;
            }
            done.service = Some(svc);
            done.answer = Some(a);
            return if found {
                Tail::Data
            } else {
                Tail::NoData(zone)
            };
        }
    }
    let set: Option<&RrSet> = if qtype == rtype::ANY {
        // RFC 8482: answer ANY with one RRset.
        node.rrsets.first()
    } else {
        node.rrset(qtype)
    };
    if let Some(set) = set {
        for rd in &set.rdata {
            r.record(Section::Answer, owner, set.rtype, set.ttl, rd);
        }
        if set.rtype == rtype::NS {
            r.raw(Section::Additional, &set.glue, set.glue_count);
        }
        done.outcome = Outcome::Static;
        return Tail::Data;
    }
    Tail::NoData(zone)
}

/// Who asks, for [`decide`].
#[derive(Debug, Clone)]
pub enum Client {
    /// A query from `resolver`, with the Client Subnet option it would carry.
    Query {
        /// The resolver's (or client's) address.
        resolver: IpAddr,
        /// ECS option of the query.
        ecs: Option<Ecs>,
    },
    /// A client already placed (the services view: one client per configured region).
    Placed(ClientLocation),
}

/// The service decision behind an answer: which service, and everything `route` found out.
#[derive(Debug, Clone)]
pub struct ServiceTrace {
    /// Index into `Snapshot::services`.
    pub svc: usize,
    /// Location, candidates, decision, scope.
    pub decided: Decided,
    /// The answer written.
    pub answer: Arc<ServiceAnswer>,
}

/// One record of a [`Decision`], in presentation form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordOut {
    /// Owner name (with trailing dot).
    pub name: String,
    /// Record type (`A`, `CNAME`, `SOA`…).
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL.
    pub ttl: u32,
    /// RDATA in presentation form.
    pub data: String,
}

impl RecordOut {
    fn of(r: &HickoryRecord) -> Self {
        RecordOut {
            name: r.name.to_ascii(),
            rtype: r.record_type().to_string(),
            ttl: r.ttl,
            data: r.data.to_string(),
        }
    }
}

/// The decision for one question, as DNS answers it.
#[derive(Debug, Clone)]
pub struct Decision {
    /// Response code.
    pub rcode: Rcode,
    /// Kind of answer.
    pub outcome: Outcome,
    /// Delegation point of a referral (presentation form).
    pub referral: Option<String>,
    /// Answer section.
    pub answer: Vec<RecordOut>,
    /// Authority section (SOA of negative answers, NS of referrals).
    pub authority: Vec<RecordOut>,
    /// Additional section (glue; the OPT record is not listed).
    pub additional: Vec<RecordOut>,
    /// TTL of the records that answer the question type (the last RRset of the answer
    /// section), or of the SOA that sets the negative caching time (RFC 2308).
    pub ttl: Option<u32>,
    /// ECS scope the response carries (0 without ECS).
    pub ecs_scope: u8,
    /// The service decision, when the question reached a service.
    pub service: Option<ServiceTrace>,
}

/// Why [`decide`] could not ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// The name is not a DNS name (empty label, label over 63 bytes, name over 255).
    #[error("not a valid DNS name")]
    BadName,
    /// Our own response did not decode (a bug: reported, never hidden).
    #[error("the response did not decode: {0}")]
    Undecodable(&'static str),
}

/// A [`ServiceAnswers`] that decides directly (no cache) and keeps the trace.
struct Direct<'s> {
    snap: &'s Snapshot,
    view: &'s HealthView,
    client: &'s Client,
    now_ms: u64,
    trace: Option<ServiceTrace>,
}

impl ServiceAnswers for Direct<'_> {
    fn service_answer(&mut self, svc: usize, family: u16) -> Arc<ServiceAnswer> {
        let decided = match self.client {
            Client::Query { resolver, ecs } => route::decide(
                self.snap,
                self.view,
                svc,
                family,
                *resolver,
                ecs.as_ref(),
                self.now_ms,
            ),
            Client::Placed(location) => route::decide_placed(
                self.snap,
                self.view,
                svc,
                family,
                location.clone(),
                self.now_ms,
            ),
        };
        let answer = Arc::new(route::answer_of(self.snap, svc, family, &decided));
        self.trace = Some(ServiceTrace {
            svc,
            decided,
            answer: answer.clone(),
        });
        answer
    }
}

/// The one decision for a question, `(snapshot, health view, name, qtype, client) → Decision`:
/// [`resolve`] (the code DNS runs) writes the response a TCP query (no size limit) for
/// `name`/`qtype` from `client` would get, and the records are read back from those bytes.
pub fn decide(
    snap: &Snapshot,
    view: &HealthView,
    name: &str,
    qtype: u16,
    client: &Client,
    now_ms: u64,
) -> Result<Decision, DecideError> {
    let wire = name_to_wire(name).ok_or(DecideError::BadName)?;
    let mut name_lower = [0u8; MAX_NAME_LEN];
    let name_len = wire.len();
    name_lower
        .get_mut(..name_len)
        .ok_or(DecideError::BadName)?
        .copy_from_slice(&wire);
    let mut question = wire;
    question.extend_from_slice(&qtype.to_be_bytes());
    question.extend_from_slice(&class::IN.to_be_bytes());
    let ecs = match client {
        Client::Query { ecs, .. } => *ecs,
        Client::Placed(_) => None,
    };
    let edns = ecs.map(|e| Edns {
        udp_size: snap.udp_payload_size,
        version: 0,
        dnssec_ok: false,
        ecs: Some(e),
        cookie: None,
    });
    let q = Query {
        id: 0,
        flags: 0,
        question: &question,
        name_lower,
        name_len,
        qtype,
        qclass: class::IN,
        edns,
    };
    let opt = edns.map(|e| OptReply {
        ecs: e.ecs.map(|ecs| (ecs, 0)),
        ..OptReply::for_query(&e, snap.udp_payload_size)
    });
    let mut out = Vec::with_capacity(512);
    let mut direct = Direct {
        snap,
        view,
        client,
        now_ms,
        trace: None,
    };
    let done = resolve(
        &snap.zones,
        &q,
        &mut out,
        opt,
        u16::MAX as usize,
        &mut direct,
    );
    let m = Message::from_vec(&out).map_err(|_| DecideError::Undecodable("message"))?;
    let answer: Vec<RecordOut> = m.answers.iter().map(RecordOut::of).collect();
    let authority: Vec<RecordOut> = m.authorities.iter().map(RecordOut::of).collect();
    let additional = m.additionals.iter().map(RecordOut::of).collect();
    let ttl = match answer.last() {
        Some(r) => Some(r.ttl),
        None if matches!(done.outcome, Outcome::NxDomain | Outcome::NoData) => m
            .authorities
            .iter()
            .find(|r| u16::from(r.record_type()) == rtype::SOA)
            .map(|r| r.ttl),
        None => None,
    };
    let ecs_scope = m
        .edns
        .as_ref()
        .and_then(|e| match e.option(EdnsCode::Subnet) {
            Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
            _ => None,
        })
        .unwrap_or(0);
    Ok(Decision {
        rcode: done.rcode,
        outcome: done.outcome,
        referral: done.cut.map(crate::wire::wire_to_string),
        answer,
        authority,
        additional,
        ttl,
        ecs_scope,
        service: direct.trace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_geo::model::Rule;
    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::RecordType;

    fn zones() -> Zones {
        let config = cdn_shared::config::load_str(
            r#"
            [[regions]]
            name = "r1"
            lat = 1.0
            lon = 2.0
            [[edges]]
            id = "e1"
            region = "r1"
            ipv4 = ["192.0.2.1"]
            [[zones]]
            name = "cdn.example.test"
            ns = ["ns1.cdn.example.test"]
            soa = { serial = 1, minimum = 60, ttl = 3600 }
            [[zones.records]]
            name = "ns1"
            type = "A"
            data = ["192.0.2.53"]
            [[zones.records]]
            name = "alias"
            type = "CNAME"
            ttl = 50
            data = ["www"]
            [[zones.records]]
            name = "out"
            type = "CNAME"
            data = ["www.example.net."]
            [[zones.records]]
            name = "dangling"
            type = "CNAME"
            data = ["nothere"]
            [[zones.records]]
            name = "to-ns1"
            type = "CNAME"
            data = ["ns1"]
            [[zones.records]]
            name = "*.w"
            type = "TXT"
            ttl = 40
            data = ["wild"]
            [[zones.records]]
            name = "sub"
            type = "NS"
            data = ["ns.sub"]
            [[zones.records]]
            name = "ns.sub"
            type = "A"
            data = ["192.0.2.7"]
            [[services]]
            name = "www.cdn.example.test"
            ttl = 20
            "#,
        )
        .unwrap();
        Zones::build(&config).unwrap()
    }

    /// Answers every service with one fixed address and scope, counting the calls.
    struct Fixed(usize);

    impl ServiceAnswers for Fixed {
        fn service_answer(&mut self, _svc: usize, rtype: u16) -> Arc<ServiceAnswer> {
            self.0 += 1;
            let addrs = if rtype == rtype::A {
                vec!["192.0.2.10".parse().unwrap()]
            } else {
                Vec::new()
            };
            Arc::new(ServiceAnswer {
                rtype,
                ttl: 20,
                addrs,
                scope: 17,
                rule: Rule::Nearest,
                region: Some(0),
                edges: vec!["e1".into()],
            })
        }
    }

    /// Resolve (name, type) with an ECS /24 and decode what was written.
    fn ask<'z>(zones: &'z Zones, name: &str, qtype: RecordType) -> (Resolved<'z>, Message, usize) {
        let wire = name_to_wire(name).unwrap();
        let mut name_lower = [0u8; MAX_NAME_LEN];
        name_lower[..wire.len()].copy_from_slice(&wire);
        let mut question = wire.clone();
        question.extend_from_slice(&u16::from(qtype).to_be_bytes());
        question.extend_from_slice(&class::IN.to_be_bytes());
        let ecs = Ecs {
            family: 1,
            source_prefix: 24,
            addr: "198.51.100.0".parse().unwrap(),
        };
        let edns = Edns {
            udp_size: 1232,
            version: 0,
            dnssec_ok: false,
            ecs: Some(ecs),
            cookie: None,
        };
        let q = Query {
            id: 7,
            flags: 0,
            question: &question,
            name_lower,
            name_len: wire.len(),
            qtype: u16::from(qtype),
            qclass: class::IN,
            edns: Some(edns),
        };
        let opt = OptReply {
            ecs: Some((ecs, 0)),
            ..OptReply::for_query(&edns, 1232)
        };
        let mut out = Vec::new();
        let mut answers = Fixed(0);
        let done = resolve(zones, &q, &mut out, Some(opt), 4096, &mut answers);
        (done, Message::from_vec(&out).unwrap(), answers.0)
    }

    fn scope(m: &Message) -> u8 {
        match m.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet)) {
            Some(EdnsOption::Subnet(s)) => s.scope_prefix(),
            other => panic!("no ECS echo: {other:?}"),
        }
    }

    fn types(records: &[HickoryRecord]) -> Vec<RecordType> {
        records.iter().map(|r| r.record_type()).collect()
    }

    #[test]
    fn a_cname_into_a_service_is_followed_and_carries_the_service_scope() {
        let z = zones();
        let (done, m, calls) = ask(&z, "alias.cdn.example.test", RecordType::A);
        assert_eq!(calls, 1);
        assert_eq!(done.outcome, Outcome::Service);
        assert_eq!(done.service, Some(0));
        assert_eq!(types(&m.answers), [RecordType::CNAME, RecordType::A]);
        assert_eq!(m.answers[0].ttl, 50);
        assert_eq!(m.answers[1].name.to_ascii(), "www.cdn.example.test.");
        assert_eq!(m.answers[1].ttl, 20);
        assert_eq!(scope(&m), 17);
        assert!(m.metadata.authoritative);
    }

    #[test]
    fn a_service_without_addresses_is_nodata_with_the_soa() {
        let z = zones();
        let (done, m, calls) = ask(&z, "www.cdn.example.test", RecordType::AAAA);
        assert_eq!(calls, 1);
        assert_eq!(done.outcome, Outcome::NoData);
        assert_eq!(done.service, Some(0));
        assert!(m.answers.is_empty());
        assert_eq!(types(&m.authorities), [RecordType::SOA]);
        assert_eq!(m.authorities[0].ttl, 60, "min(SOA TTL, MINIMUM)");
        assert_eq!(scope(&m), 17, "the decision still depended on the client");
    }

    #[test]
    fn static_wildcard_and_cname_out_of_zone() {
        let z = zones();
        let (done, m, calls) = ask(&z, "x.y.w.cdn.example.test", RecordType::TXT);
        assert_eq!((done.outcome, calls), (Outcome::Static, 0));
        assert_eq!(types(&m.answers), [RecordType::TXT]);
        assert_eq!(m.answers[0].name.to_ascii(), "x.y.w.cdn.example.test.");
        assert_eq!(scope(&m), 0);

        let (done, m, _) = ask(&z, "out.cdn.example.test", RecordType::A);
        assert_eq!(done.outcome, Outcome::Cname);
        assert_eq!(types(&m.answers), [RecordType::CNAME]);
        assert!(m.authorities.is_empty(), "an answer, not a negative one");
    }

    #[test]
    fn a_cname_chain_ending_without_data_is_negative_for_its_last_name() {
        let z = zones();
        // The target does not exist: NXDOMAIN (RFC 6604) with the CNAME and the SOA.
        let (done, m, _) = ask(&z, "dangling.cdn.example.test", RecordType::A);
        assert_eq!(
            (done.outcome, done.rcode),
            (Outcome::Cname, Rcode::NxDomain)
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.authoritative);
        assert_eq!(types(&m.answers), [RecordType::CNAME]);
        assert_eq!(types(&m.authorities), [RecordType::SOA]);
        // The target has no data of the type (a static name; a service without addresses):
        // NODATA, the SOA in authority (RFC 2308 §2.2).
        for (name, qtype) in [
            ("to-ns1.cdn.example.test", RecordType::TXT),
            ("alias.cdn.example.test", RecordType::AAAA),
        ] {
            let (done, m, _) = ask(&z, name, qtype);
            assert_eq!(done.rcode, Rcode::NoError, "{name}");
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
            assert_eq!(types(&m.answers), [RecordType::CNAME], "{name}");
            assert_eq!(types(&m.authorities), [RecordType::SOA], "{name}");
        }
        // With data at the end: no SOA.
        let (done, m, _) = ask(&z, "to-ns1.cdn.example.test", RecordType::A);
        assert_eq!(
            (done.outcome, done.rcode),
            (Outcome::Static, Rcode::NoError)
        );
        assert_eq!(types(&m.answers), [RecordType::CNAME, RecordType::A]);
        assert!(m.authorities.is_empty());
    }

    #[test]
    fn a_cname_loop_is_answered_once_round() {
        let config = cdn_shared::config::load_str(
            r#"
            [[zones]]
            name = "cdn.example.test"
            ns = ["ns1.cdn.example.test"]
            [[zones.records]]
            name = "loop1"
            type = "CNAME"
            data = ["loop2"]
            [[zones.records]]
            name = "loop2"
            type = "CNAME"
            data = ["loop1"]
            [[zones.records]]
            name = "*.w"
            type = "CNAME"
            data = ["x.w"]
            "#,
        )
        .unwrap();
        assert!(Zones::build(&config).is_err(), "refused when built");
        let z = Zones::build_with_loops(&config).unwrap();
        let (done, m, _) = ask(&z, "loop1.cdn.example.test", RecordType::A);
        assert_eq!((done.outcome, done.rcode), (Outcome::Cname, Rcode::NoError));
        let owners: Vec<String> = m.answers.iter().map(|r| r.name.to_ascii()).collect();
        assert_eq!(
            owners,
            ["loop1.cdn.example.test.", "loop2.cdn.example.test."]
        );
        // Through a wildcard: the question, then its target once.
        let (_, m, _) = ask(&z, "q.w.cdn.example.test", RecordType::A);
        let owners: Vec<String> = m.answers.iter().map(|r| r.name.to_ascii()).collect();
        assert_eq!(owners, ["q.w.cdn.example.test.", "x.w.cdn.example.test."]);
    }

    #[test]
    fn resolve_reports_the_rrl_kind() {
        let z = zones();
        let zone = z.zones()[0].id;
        let node = |name: &str| z.node(&name_to_wire(name).unwrap()).unwrap().id;
        for (name, qtype, want) in [
            ("ns1.cdn.example.test", RecordType::A, Kind::Name),
            ("ns1.cdn.example.test", RecordType::TXT, Kind::NoData(zone)),
            ("w.cdn.example.test", RecordType::A, Kind::NoData(zone)),
            (
                "to-ns1.cdn.example.test",
                RecordType::MX,
                Kind::NoData(zone),
            ),
            ("www.cdn.example.test", RecordType::A, Kind::Service(0)),
            ("www.cdn.example.test", RecordType::AAAA, Kind::NoData(zone)),
            (
                "x.y.w.cdn.example.test",
                RecordType::TXT,
                Kind::Wildcard(node("*.w.cdn.example.test")),
            ),
            ("q.x.w.cdn.example.test", RecordType::A, Kind::NoData(zone)),
            (
                "a.sub.cdn.example.test",
                RecordType::A,
                Kind::Referral(node("sub.cdn.example.test")),
            ),
            (
                "sub.cdn.example.test",
                RecordType::MX,
                Kind::Referral(node("sub.cdn.example.test")),
            ),
        ] {
            let (done, _, _) = ask(&z, name, qtype);
            assert_eq!(done.rrl, want, "{name} {qtype}");
        }
    }

    #[test]
    fn negative_answers_referrals_and_refusals() {
        let z = zones();
        let (done, m, _) = ask(&z, "nothere.cdn.example.test", RecordType::A);
        assert_eq!(
            (done.outcome, done.rcode),
            (Outcome::NxDomain, Rcode::NxDomain)
        );
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(types(&m.authorities), [RecordType::SOA]);

        let (done, m, _) = ask(&z, "ns1.cdn.example.test", RecordType::AAAA);
        assert_eq!(
            (done.outcome, done.rcode),
            (Outcome::NoData, Rcode::NoError)
        );
        assert_eq!(types(&m.authorities), [RecordType::SOA]);

        let (done, m, _) = ask(&z, "a.sub.cdn.example.test", RecordType::A);
        assert_eq!(done.outcome, Outcome::Referral);
        assert_eq!(
            done.cut,
            Some(&b"\x03sub\x03cdn\x07example\x04test\x00"[..])
        );
        assert!(!m.metadata.authoritative);
        assert_eq!(types(&m.authorities), [RecordType::NS]);
        assert_eq!(types(&m.additionals), [RecordType::A], "glue");

        // DS at the delegation point: the parent's (our) NODATA, authoritative.
        let (done, m, _) = ask(&z, "sub.cdn.example.test", RecordType::DS);
        assert_eq!(
            (done.outcome, done.rcode),
            (Outcome::NoData, Rcode::NoError)
        );
        assert!(m.metadata.authoritative);
        assert!(m.answers.is_empty() && m.additionals.is_empty());
        assert_eq!(types(&m.authorities), [RecordType::SOA]);
        assert_eq!(m.authorities[0].name.to_ascii(), "cdn.example.test.");
        // Below it, a referral still.
        let (done, _, _) = ask(&z, "a.sub.cdn.example.test", RecordType::DS);
        assert_eq!(done.outcome, Outcome::Referral);

        let (done, m, calls) = ask(&z, "www.example.org", RecordType::A);
        assert_eq!(
            (done.outcome, done.rcode, calls),
            (Outcome::Refused, Rcode::Refused, 0)
        );
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    }
}
