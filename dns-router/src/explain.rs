//! `GET /api/v1/explain`: how a question would be answered, shown from the one decision
//! ([`crate::decide::decide`]) — the records DNS writes (CNAME chains, static records,
//! wildcards, negative answers, refusals), the ECS scope and TTL, and for a CDN hostname the
//! trace of the service decision: where the client was placed and by which network, every
//! candidate with its distance, health and why it was not chosen, and the rule that fired.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use cdn_geo::model::ClientLocation;

use crate::decide::{decide, Client, DecideError, Decision, Outcome, RecordOut};
use crate::health::HealthView;
use crate::snapshot::Snapshot;
use crate::wire::Ecs;

/// What explain says happened; serialised as the strings the API has always shown
/// (`referral to <cut>` for a referral).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExplainOutcome {
    /// The decision's kind of answer.
    Decided(Outcome),
    /// A referral, with its delegation point.
    Referral(String),
    /// The name is not a DNS name.
    BadName,
}

impl ExplainOutcome {
    /// Name of the outcome (`referral` without its cut).
    pub fn as_str(&self) -> &'static str {
        match self {
            ExplainOutcome::Decided(o) => o.as_str(),
            ExplainOutcome::Referral(_) => Outcome::Referral.as_str(),
            ExplainOutcome::BadName => "bad_name",
        }
    }
}

impl Serialize for ExplainOutcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExplainOutcome::Referral(cut) => s.serialize_str(&format!("referral to {cut}")),
            other => s.serialize_str(other.as_str()),
        }
    }
}

/// The explain API's answer (`GET /api/v1/explain`).
#[derive(Debug, Clone, Serialize)]
pub struct Explain {
    /// The name asked about.
    pub name: String,
    /// Record type.
    pub qtype: String,
    /// The resolver (or client) address.
    pub client: IpAddr,
    /// The ECS subnet given, if any.
    pub ecs: Option<String>,
    /// `service`, `static`, `cname`, `nodata`, `nxdomain`, `referral to …`, `refused`, `bad_name`.
    pub outcome: ExplainOutcome,
    /// The response code DNS answers (`NOERROR`, `NXDOMAIN`, `REFUSED`…).
    pub rcode: Option<&'static str>,
    /// The service that matched (directly or at the end of a CNAME chain).
    pub service: Option<String>,
    /// The address located (ECS address truncated to the honoured prefix, or the client).
    pub lookup_address: Option<IpAddr>,
    /// Where the client was placed and which network said so.
    pub location: Option<ClientLocation>,
    /// Every candidate in rank order.
    pub candidates: Vec<ExplainCandidate>,
    /// A/AAAA addresses of the answer section.
    pub answer: Vec<IpAddr>,
    /// The answer section as DNS writes it.
    pub records: Vec<RecordOut>,
    /// The authority section (SOA of a negative answer, NS of a referral).
    pub authority: Vec<RecordOut>,
    /// TTL of the answer (or the negative caching TTL of NXDOMAIN/NODATA).
    pub ttl: Option<u32>,
    /// ECS scope the answer carries.
    pub ecs_scope: u8,
    /// The selection rule that fired.
    pub rule: Option<&'static str>,
    /// Whether the service answer came from the precompiled geo map (false: the client was
    /// located and ranked per query, as for the IPv6 prefixes that alias IPv4 inside the
    /// database; false too when no service answered).
    pub precompiled: bool,
    /// Health generation the decision used.
    pub health_generation: u64,
}

/// One candidate in an explanation.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainCandidate {
    /// Edge id.
    pub edge: String,
    /// Region.
    pub region: String,
    /// Great-circle distance from the client, km.
    pub distance_km: f64,
    /// `up`, `down`, `unknown`.
    pub health: &'static str,
    /// Draining.
    pub draining: bool,
    /// Overloaded.
    pub overloaded: bool,
    /// Why it was not answered.
    pub excluded: Option<&'static str>,
    /// Whether it is in the answer.
    pub chosen: bool,
}

/// Explain how `name` (type `qtype`) would be answered for `client` with an optional ECS
/// subnet, from `snap` and `view` at `now_ms`.
pub fn explain(
    snap: &Snapshot,
    view: &HealthView,
    name: &str,
    qtype: hickory_proto::rr::RecordType,
    client: IpAddr,
    ecs: Option<IpNet>,
    now_ms: u64,
) -> Explain {
    let ecs = ecs.map(|n| Ecs {
        family: if n.addr().is_ipv4() { 1 } else { 2 },
        source_prefix: n.prefix_len(),
        addr: n.network(),
    });
    let mut out = Explain {
        name: name.to_string(),
        qtype: qtype.to_string(),
        client,
        ecs: ecs.and_then(|e| {
            IpNet::new(e.addr, e.source_prefix)
                .ok()
                .map(|n| n.to_string())
        }),
        outcome: ExplainOutcome::BadName,
        rcode: None,
        service: None,
        lookup_address: None,
        location: None,
        candidates: Vec::new(),
        answer: Vec::new(),
        records: Vec::new(),
        authority: Vec::new(),
        ttl: None,
        ecs_scope: 0,
        rule: None,
        precompiled: false,
        health_generation: view.generation,
    };
    let asked = Client::Query {
        resolver: client,
        ecs,
    };
    match decide(snap, view, name, u16::from(qtype), &asked, now_ms) {
        Ok(d) => fill(&mut out, snap, d),
        Err(DecideError::BadName) => {}
        Err(e @ DecideError::Undecodable(_)) => {
            tracing::error!(error = %e, name, "explain: own response did not decode");
        }
    }
    out
}

fn fill(out: &mut Explain, snap: &Snapshot, d: Decision) {
    out.outcome = match d.referral {
        Some(cut) => ExplainOutcome::Referral(cut),
        None => ExplainOutcome::Decided(d.outcome),
    };
    out.rcode = Some(d.rcode.as_str());
    out.answer = d
        .answer
        .iter()
        .filter(|r| r.rtype == "A" || r.rtype == "AAAA")
        .filter_map(|r| r.data.parse().ok())
        .collect();
    out.records = d.answer;
    out.authority = d.authority;
    out.ttl = d.ttl;
    out.ecs_scope = d.ecs_scope;
    if let Some(t) = d.service {
        let decided = &t.decided;
        out.service = Some(snap.services[t.svc].name.clone());
        out.lookup_address = Some(decided.key.addr);
        out.rule = Some(decided.decision.rule.as_str());
        out.precompiled = decided.precompiled;
        out.location = Some((*decided.location).clone());
        out.candidates = decided
            .decision
            .ranked
            .iter()
            .filter_map(|r| {
                let c = decided.candidates.get(r.index)?;
                Some(ExplainCandidate {
                    edge: c.id.clone(),
                    region: c.region.clone(),
                    distance_km: (r.distance_km * 10.0).round() / 10.0,
                    health: c.health.as_str(),
                    draining: c.draining,
                    overloaded: c.overloaded,
                    excluded: r.excluded.map(|x| x.as_str()),
                    chosen: decided.decision.chosen.contains(&r.index),
                })
            })
            .collect();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hickory_proto::rr::RecordType;
    use std::path::Path;

    /// A snapshot of two regions with one edge each, a zone and a service (other modules'
    /// tests use it too).
    pub(crate) fn snapshot() -> Snapshot {
        let config = cdn_shared::config::load_str(
            r#"
            [[regions]]
            name = "east"
            lat = 39.0
            lon = -77.5
            [[regions]]
            name = "west"
            lat = 45.6
            lon = -121.2
            [geo]
            default_region = "east"
            networks = [{ cidr = "10.2.0.0/16", region = "west" }]
            [[edges]]
            id = "e-east"
            region = "east"
            ipv4 = ["192.0.2.1"]
            [[edges]]
            id = "e-west"
            region = "west"
            ipv4 = ["192.0.2.2"]
            [[zones]]
            name = "cdn.test"
            ns = ["ns1.cdn.test"]
            [[zones.records]]
            name = "ns1"
            type = "A"
            data = ["192.0.2.53"]
            [[zones.records]]
            name = "alias"
            type = "CNAME"
            data = ["www"]
            [[zones.records]]
            name = "sub"
            type = "NS"
            data = ["ns.elsewhere.test."]
            [[services]]
            name = "www.cdn.test"
            ttl = 25
            "#,
        )
        .unwrap();
        crate::snapshot::build_snapshot(&config, Path::new("."), 1).unwrap()
    }

    fn ask(name: &str, ecs: Option<&str>) -> Explain {
        explain(
            &snapshot(),
            &HealthView::default(),
            name,
            RecordType::A,
            "192.0.2.200".parse().unwrap(),
            ecs.map(|e| e.parse().unwrap()),
            1_000,
        )
    }

    #[test]
    fn a_cname_into_a_service_shows_the_chain_and_the_decision() {
        let e = ask("alias.cdn.test", Some("10.2.3.0/24"));
        assert_eq!(e.outcome.as_str(), "service");
        assert_eq!(e.rcode, Some("NOERROR"));
        assert_eq!(e.service.as_deref(), Some("www.cdn.test"));
        let types: Vec<&str> = e.records.iter().map(|r| r.rtype.as_str()).collect();
        assert_eq!(types, ["CNAME", "A"]);
        assert_eq!(e.records[0].data, "www.cdn.test.");
        assert_eq!(e.answer, ["192.0.2.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(e.ttl, Some(25));
        assert_eq!(e.ecs_scope, 16, "the /16 of the network map decided");
        assert_eq!(e.rule, Some("nearest"));
        let chosen: Vec<&str> = e
            .candidates
            .iter()
            .filter(|c| c.chosen)
            .map(|c| c.edge.as_str())
            .collect();
        assert_eq!(chosen, ["e-west"]);
        assert_eq!(
            e.location.unwrap().network,
            "10.2.0.0/16".parse::<IpNet>().unwrap()
        );
    }

    #[test]
    fn outcomes_serialise_as_the_api_strings() {
        let json = |e: &Explain| serde_json::to_value(e).unwrap()["outcome"].clone();
        assert_eq!(
            json(&ask("sub.cdn.test", None)),
            "referral to sub.cdn.test."
        );
        assert_eq!(json(&ask("nope.cdn.test", None)), "nxdomain");
        assert_eq!(json(&ask("www.example.org", None)), "refused");
        assert_eq!(json(&ask("a..b", None)), "bad_name");
        let e = ask("ns1.cdn.test", None);
        assert_eq!((e.outcome.as_str(), e.ttl), ("static", Some(3600)));
        let e = ask("nope.cdn.test", None);
        assert_eq!(e.rcode, Some("NXDOMAIN"));
        assert_eq!(e.authority.len(), 1);
        assert_eq!(e.authority[0].rtype, "SOA");
        assert!(e.service.is_none() && e.candidates.is_empty());
    }
}
