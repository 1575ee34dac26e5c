//! `GET /api/v1/edges`, `GET /api/v1/edges/{id}`, `POST /api/v1/edges/{id}/drain` and
//! `/undrain`, `POST /api/v1/edges/{id}/weight`.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use cdn_shared::config::router::RouterConfig;

use crate::health::state::Event;
use crate::health::HealthError;
use cdn_shared::access::Need;

use super::auth::{audit, authorize, read_body};
use super::{AdminContext, ApiError, ApiResult};

/// One edge as the API shows it.
#[derive(Debug, Serialize)]
struct EdgeOut<'a> {
    id: &'a str,
    region: &'a str,
    ipv4: &'a [std::net::Ipv4Addr],
    ipv6: &'a [std::net::Ipv6Addr],
    probe_url: String,
    admin_url: Option<&'a str>,
    /// The configured weight.
    weight: u32,
    /// What selection uses: the operator override (`weight_override`) when set, else `weight`.
    effective_weight: u32,
    disabled: bool,
    /// `up`, `down`, `unknown`.
    state: &'static str,
    #[serde(flatten)]
    health: &'a crate::health::EdgeHealth,
}

fn edge_json(
    config: &RouterConfig,
    view: &crate::health::HealthView,
    id: &str,
) -> Result<Value, ApiError> {
    let entry = config
        .edges
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(|| HealthError::UnknownEdge(id.to_string()))?;
    let health = view
        .edges
        .get(id)
        .ok_or_else(|| HealthError::UnknownEdge(id.to_string()))?;
    let out = EdgeOut {
        id: &entry.id,
        region: &entry.region,
        ipv4: &entry.ipv4,
        ipv6: &entry.ipv6,
        probe_url: entry.probe_url(),
        admin_url: entry.admin_url.as_deref(),
        weight: entry.weight,
        effective_weight: health.weight_override.unwrap_or(entry.weight),
        disabled: entry.disabled,
        state: health.health.as_str(),
        health,
    };
    serde_json::to_value(out)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

pub(super) async fn list_edges(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
    authorize(&req, &ctx, Need::Read)?;
    let config = ctx.config.load();
    let view = ctx.health.view();
    let edges = config
        .edges
        .iter()
        .filter(|e| view.edges.contains_key(&e.id))
        .map(|e| edge_json(&config, &view, &e.id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(HttpResponse::Ok().json(json!({ "generation": view.generation, "edges": edges })))
}

pub(super) async fn get_edge(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: web::Path<String>,
) -> ApiResult {
    authorize(&req, &ctx, Need::Read)?;
    let config = ctx.config.load();
    let view = ctx.health.view();
    Ok(HttpResponse::Ok().json(edge_json(&config, &view, &id)?))
}

async fn set_drain(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: &str,
    drain: bool,
) -> ApiResult {
    let who = authorize(&req, &ctx, Need::Operate)?;
    if let Some(bus) = &ctx.bus {
        // Recorded in the KV bucket (every router applies it) before it is applied here.
        if !ctx.health.view().edges.contains_key(id) {
            return Err(HealthError::UnknownEdge(id.to_string()).into());
        }
        if let Err(e) = bus.put_drain(id, drain).await {
            let action = if drain { "drain" } else { "undrain" };
            audit(
                &who,
                &req,
                action,
                &format!("edge {id} draining={drain} failed: {e}"),
            );
            return Err(e.into());
        }
    }
    let event = if drain { Event::Drain } else { Event::Undrain };
    ctx.health.event(id, event, cdn_shared::unix_ms())?;
    let action = if drain { "drain" } else { "undrain" };
    audit(&who, &req, action, &format!("edge {id} draining={drain}"));
    let config = ctx.config.load();
    let view = ctx.health.view();
    Ok(HttpResponse::Ok().json(edge_json(&config, &view, id)?))
}

pub(super) async fn drain(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: web::Path<String>,
) -> ApiResult {
    set_drain(req, ctx, &id, true).await
}

pub(super) async fn undrain(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: web::Path<String>,
) -> ApiResult {
    set_drain(req, ctx, &id, false).await
}

/// The body of `POST /api/v1/edges/{id}/weight`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBody {
    /// The override (1..=1000000); `null` restores the configured weight.
    weight: Option<u32>,
}

/// `POST /api/v1/edges/{id}/weight` with `{"weight": N}` (or `null`): override the edge's
/// configured weight among equally ranked edges. With `[bus]` it is written to the KV bucket
/// (every router applies it; 503 when it cannot be written); without, it changes this router
/// only, until it restarts.
pub(super) async fn set_weight(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: web::Path<String>,
    payload: web::Payload,
) -> ApiResult {
    let who = authorize(&req, &ctx, Need::Operate)?;
    let body = read_body(&req, payload, &ctx).await?;
    let WeightBody { weight } = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "bad weight JSON (want {{\"weight\": 1..={} or null}}): {e}",
            cdn_shared::bus::MAX_WEIGHT
        ))
    })?;
    if weight.is_some_and(|w| !crate::bus::valid_weight(w)) {
        return Err(ApiError::bad_request(format!(
            "`weight` must be in 1..={} (or null to restore the configured weight)",
            cdn_shared::bus::MAX_WEIGHT
        )));
    }
    if !ctx.health.view().edges.contains_key(id.as_str()) {
        return Err(HealthError::UnknownEdge(id.to_string()).into());
    }
    if let Some(bus) = &ctx.bus {
        // Recorded in the KV bucket (every router applies it) before it is applied here.
        if let Err(e) = bus.put_weight(&id, weight).await {
            audit(
                &who,
                &req,
                "weight",
                &format!("edge {id} weight={weight:?} failed: {e}"),
            );
            return Err(e.into());
        }
    }
    ctx.health
        .event(&id, Event::Weight(weight), cdn_shared::unix_ms())?;
    audit(
        &who,
        &req,
        "weight",
        &format!("edge {id} weight={weight:?}"),
    );
    let config = ctx.config.load();
    let view = ctx.health.view();
    Ok(HttpResponse::Ok().json(edge_json(&config, &view, &id)?))
}
