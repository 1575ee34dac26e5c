//! `GET /api/v1/services` (the DNS decision per client region) and `GET /api/v1/explain`
//! (rendered by [`crate::explain`]).

use std::net::IpAddr;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hickory_proto::rr::RecordType;
use ipnet::IpNet;
use serde_json::{json, Value};

use cdn_geo::model::{ClientLocation, LocationSource};

use crate::decide::{decide, Client};
use crate::wire::rtype;
use cdn_shared::access::Need;

use super::auth::authorize;
use super::{AdminContext, ApiError, ApiResult};

/// Services with their pools and, per configured region, the edges a client placed in that
/// region would get now: the one decision (`decide::decide`) DNS runs, for the service's name.
pub(super) async fn services(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
    authorize(&req, &ctx, Need::Read)?;
    let config = ctx.config.load();
    let snap = ctx.router.snapshot();
    let view = ctx.health.view();
    let now = cdn_shared::unix_ms();
    let mut out = Vec::new();
    for svc in &snap.services {
        let pool: Vec<Value> = svc
            .edges
            .iter()
            .map(|&i| {
                let e = &snap.edges[i];
                let h = view.edges.get(&e.id);
                json!({
                    "edge": e.id,
                    "region": e.region,
                    "state": h.map(|h| h.health.as_str()).unwrap_or("unknown"),
                    "reason": h.map(|h| h.reason.as_str()).unwrap_or("no_data"),
                    "draining": h.is_some_and(|h| h.draining),
                    "overloaded": h.is_some_and(|h| h.overloaded),
                    "disabled": e.disabled,
                })
            })
            .collect();
        let mut by_region = serde_json::Map::new();
        for region in &config.regions {
            let client = Client::Placed(ClientLocation {
                lat: region.lat,
                lon: region.lon,
                country: None,
                continent: None,
                region: Some(region.name.clone()),
                network: IpNet::from(IpAddr::from([0, 0, 0, 0])),
                source: LocationSource::Default,
            });
            let mut per_type = serde_json::Map::new();
            for (name, qtype) in [("A", rtype::A), ("AAAA", rtype::AAAA)] {
                let d = decide(&snap, &view, &svc.name, qtype, &client, now)
                    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
                let Some(t) = d.service.filter(|t| !t.decided.candidates.is_empty()) else {
                    continue;
                };
                per_type.insert(
                    name.into(),
                    json!({ "edges": t.answer.edges, "rule": t.decided.decision.rule.as_str() }),
                );
            }
            by_region.insert(region.name.clone(), Value::Object(per_type));
        }
        out.push(json!({
            "name": svc.name,
            "ttl": svc.ttl,
            "answers": svc.policy.answers,
            "all_down": svc.policy.all_down,
            "ecs": svc.ecs,
            "ecs_max_prefix_v4": svc.ecs_max_v4,
            "ecs_max_prefix_v6": svc.ecs_max_v6,
            "pool": pool,
            "choices_by_client_region": by_region,
        }));
    }
    Ok(HttpResponse::Ok().json(json!({
        "health_generation": view.generation,
        "services": out,
    })))
}

/// Parsed `GET /api/v1/explain` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainQuery {
    /// The name asked about.
    pub name: String,
    /// The resolver / client address (`None` = the caller's).
    pub client: Option<IpAddr>,
    /// ECS subnet.
    pub ecs: Option<IpNet>,
    /// A or AAAA.
    pub rtype: RecordType,
}

/// Parse the explain query string; errors name the parameter.
pub fn parse_explain_query(qs: &str) -> Result<ExplainQuery, String> {
    let mut name = None;
    let mut client = None;
    let mut ecs = None;
    let mut rtype = RecordType::A;
    for (k, v) in url::form_urlencoded::parse(qs.as_bytes()) {
        match k.as_ref() {
            "name" => {
                let v = v.trim();
                if v.is_empty() || v.len() > 253 + 1 {
                    return Err("`name` must be a DNS name (1-254 characters)".into());
                }
                name = Some(v.to_string());
            }
            "client" => {
                client = Some(
                    v.parse::<IpAddr>()
                        .map_err(|_| format!("`client` must be an IP address, got `{v}`"))?,
                )
            }
            "ecs" => {
                let net = match v.parse::<IpNet>() {
                    Ok(n) => n,
                    Err(_) => v.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                        format!("`ecs` must be a subnet like 192.0.2.0/24, got `{v}`")
                    })?,
                };
                if net.trunc() != net {
                    return Err(format!(
                        "`ecs` {net} has address bits set beyond its prefix length (a DNS query like this gets FORMERR)"
                    ));
                }
                ecs = Some(net);
            }
            "type" | "qtype" => {
                rtype = match v.to_ascii_uppercase().as_str() {
                    "A" => RecordType::A,
                    "AAAA" => RecordType::AAAA,
                    _ => return Err(format!("`type` must be A or AAAA, got `{v}`")),
                }
            }
            other => {
                return Err(format!(
                    "unknown parameter `{other}` (use name, client, ecs, type)"
                ))
            }
        }
    }
    let name = name.ok_or("missing `name` parameter")?;
    Ok(ExplainQuery {
        name,
        client,
        ecs,
        rtype,
    })
}

pub(super) async fn explain(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
    authorize(&req, &ctx, Need::Read)?;
    let q = parse_explain_query(req.query_string()).map_err(ApiError::bad_request)?;
    let client = match q.client {
        Some(c) => c,
        None => req
            .peer_addr()
            .map(|a| a.ip())
            .ok_or_else(|| ApiError::bad_request("missing `client` parameter"))?,
    };
    let e = crate::explain::explain(
        &ctx.router.snapshot(),
        &ctx.health.view(),
        &q.name,
        q.rtype,
        client,
        q.ecs,
        cdn_shared::unix_ms(),
    );
    Ok(HttpResponse::Ok().json(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explain_query_parsing() {
        let q =
            parse_explain_query("name=www.cdn.test&client=192.0.2.1&ecs=198.51.100.0/24&type=aaaa")
                .unwrap();
        assert_eq!(q.name, "www.cdn.test");
        assert_eq!(q.client, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(q.ecs, Some("198.51.100.0/24".parse().unwrap()));
        assert_eq!(q.rtype, RecordType::AAAA);
        let q = parse_explain_query("name=a.b&ecs=10.1.2.3").unwrap();
        assert_eq!(q.ecs, Some("10.1.2.3/32".parse().unwrap()));
        assert_eq!(q.client, None);
        assert_eq!(q.rtype, RecordType::A);
        for (qs, needle) in [
            ("", "missing `name`"),
            ("name=", "`name`"),
            ("name=a.b&client=nope", "`client`"),
            ("name=a.b&ecs=10.0.0.1/8", "bits set beyond"),
            ("name=a.b&ecs=garbage", "`ecs`"),
            ("name=a.b&type=MX", "`type`"),
            ("name=a.b&ip=1.2.3.4", "unknown parameter `ip`"),
        ] {
            let e = parse_explain_query(qs).unwrap_err();
            assert!(e.contains(needle), "{qs}: {e}");
        }
    }
}
