//! `POST /api/v1/purge`: fan the purge out to every edge's `admin_url`, or publish it on the
//! bus when `[bus]` is configured.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use cdn_shared::access::Need;

use super::auth::{audit, authorize, read_body};
use super::{AdminContext, ApiError, ApiResult};

/// Per-edge timeout of the purge fan-out.
pub const PURGE_EDGE_TIMEOUT: Duration = Duration::from_secs(2);

pub use cdn_shared::purge::PurgeRequest;

/// One edge's purge outcome.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PurgeResult {
    /// Edge id.
    pub edge: String,
    /// The edge acknowledged with 2xx.
    pub ok: bool,
    /// No `admin_url`: not contacted.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub skipped: bool,
    /// HTTP status from the edge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Objects purged, as the edge reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<u64>,
    /// What went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Round-trip time, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ms: Option<f64>,
}

pub(super) async fn purge(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    payload: web::Payload,
) -> ApiResult {
    let who = authorize(&req, &ctx, Need::Operate)?;
    let body = read_body(&req, payload, &ctx).await?;
    let purge: PurgeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad purge JSON: {e}")))?;
    // The edges' own check, made here so a bad selector is refused once, before any edge is
    // asked (or the bus carries it).
    purge.validate().map_err(ApiError::bad_request)?;
    audit(
        &who,
        &req,
        "purge",
        &format!(
            "urls={:?} prefixes={:?} tags={:?} soft={}",
            purge.urls, purge.prefixes, purge.tags, purge.soft
        ),
    );
    if let Some(bus) = &ctx.bus {
        let config = ctx.config.load();
        let edges: Vec<String> = config.edges.iter().map(|e| e.id.clone()).collect();
        let msg = bus.message(purge.urls, purge.prefixes, purge.tags, purge.soft);
        // A body admin.max_body_size admits may still be over the NATS server's max_payload:
        // a request to split, not a bus outage (which would be 503 and worth a retry).
        let body = serde_json::to_vec(&msg)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        let size = body.len();
        if let Some(max) = bus.max_message().filter(|&m| size > m) {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "this purge is {size} bytes as a bus message, over the bus's max_payload \
                     ({max} bytes): split it into smaller purges"
                ),
            ));
        }
        return Ok(HttpResponse::Ok().json(bus.purge(body, &edges).await?));
    }
    let config = ctx.config.load_full();
    // The edges' purge API takes its own token: admin.purge_token, else the deprecated
    // admin.token.
    let token = config
        .admin
        .purge_token
        .clone()
        .or_else(|| config.admin.token.clone())
        .unwrap_or_default();
    // `https://` admin URLs: the edges' certificates are verified like the probes' (webpki
    // roots plus health.probe_ca_file).
    let tls = crate::health::probe::client_config(&config.health)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let client = awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(tls))
        .timeout(PURGE_EDGE_TIMEOUT)
        .disable_redirects()
        .finish();
    let started = Instant::now();
    let calls = config.edges.iter().map(|edge| {
        let client = client.clone();
        let token = token.clone();
        let purge = purge.clone();
        async move { purge_one(&client, edge, &token, &purge).await }
    });
    let results = futures_util::future::join_all(calls).await;
    let failed = results.iter().filter(|r| !r.ok && !r.skipped).count();
    let total_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        edges = results.len(),
        failed,
        ms = total_ms,
        "purge fanned out"
    );
    let mut out = json!({ "results": results, "failed": failed, "ms": round1(total_ms) });
    if failed == 0 {
        Ok(HttpResponse::Ok().json(out))
    } else {
        out["error"] = json!(format!("{failed} of {} edges failed", results.len()));
        Ok(HttpResponse::BadGateway().json(out))
    }
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

async fn purge_one(
    client: &awc::Client,
    edge: &cdn_shared::config::router::EdgeEntry,
    token: &str,
    body: &PurgeRequest,
) -> PurgeResult {
    let mut r = PurgeResult {
        edge: edge.id.clone(),
        ok: false,
        skipped: false,
        status: None,
        purged: None,
        error: None,
        ms: None,
    };
    let Some(base) = edge.admin_url.as_deref() else {
        r.skipped = true;
        r.error = Some("skipped: no admin_url".into());
        return r;
    };
    let url = format!("{}/api/v1/purge", base.trim_end_matches('/'));
    let started = Instant::now();
    let call = async {
        let mut res = client
            .post(&url)
            .bearer_auth(token)
            .send_json(body)
            .await
            .map_err(|e| e.to_string())?;
        let status = res.status().as_u16();
        let value: Option<Value> = res.json::<Value>().limit(64 * 1024).await.ok();
        Ok::<_, String>((status, value))
    };
    match actix_rt::time::timeout(PURGE_EDGE_TIMEOUT, call).await {
        Err(_) => r.error = Some(format!("timeout after {PURGE_EDGE_TIMEOUT:?}")),
        Ok(Err(e)) => r.error = Some(e),
        Ok(Ok((status, value))) => {
            r.status = Some(status);
            r.ok = (200..300).contains(&status);
            r.purged = value
                .as_ref()
                .and_then(|v| v.get("purged"))
                .and_then(Value::as_u64);
            if !r.ok {
                let msg = value
                    .as_ref()
                    .and_then(|v| v.get("error"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("edge answered HTTP {status}"));
                r.error = Some(msg);
            }
        }
    }
    r.ms = Some(round1(started.elapsed().as_secs_f64() * 1000.0));
    if !r.ok {
        tracing::warn!(edge = %edge.id, error = ?r.error, "purge failed on edge");
    }
    r
}
