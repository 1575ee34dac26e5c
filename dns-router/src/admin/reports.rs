//! `POST /api/v1/reports`: an edge's `HealthReport`, ingested by [`crate::health::ingest`].

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use crate::health::ingest::{ingest, IngestError};
use crate::metrics::names;
use cdn_shared::access::Need;

use super::auth::{authorize, client_of, read_body};
use super::{AdminContext, ApiError, ApiResult};

pub(super) async fn reports(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    payload: web::Payload,
) -> ApiResult {
    let who = match authorize(&req, &ctx, Need::Report) {
        Ok(p) => p,
        Err(e) => {
            metrics::counter!(names::REPORTS_INGESTED, "result" => "unauthorized").increment(1);
            return Err(e);
        }
    };
    let body = read_body(&req, payload, &ctx).await?;
    // A report credential reports as its own edge only.
    #[derive(Deserialize)]
    struct Sender {
        edge_id: String,
    }
    // The sender is checked on every report: a body whose `edge_id` cannot be read is refused
    // here, never handed on unchecked.
    let s = match serde_json::from_slice::<Sender>(&body) {
        Ok(s) => s,
        Err(e) => {
            metrics::counter!(names::REPORTS_INGESTED, "result" => "bad_json").increment(1);
            return Err(ApiError::bad_request(
                IngestError::BadJson(e.to_string()).to_string(),
            ));
        }
    };
    if !who.may_report_as(&s.edge_id) {
        metrics::counter!(names::REPORTS_INGESTED, "result" => "unauthorized").increment(1);
        tracing::warn!(
            target: "audit",
            token = %who.name,
            client = %client_of(&req),
            edge = %s.edge_id,
            "report refused: the token may not report as this edge"
        );
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "token `{}` may not report as edge `{}`",
                who.name, s.edge_id
            ),
        ));
    }
    // Reports arrive every second per edge: their audit line is at debug level.
    tracing::debug!(target: "audit", token = %who.name, client = %client_of(&req),
        action = "report", edge = %s.edge_id, "admin write");
    match ingest(
        &ctx.health,
        &ctx.config.load(),
        &body,
        cdn_shared::unix_ms(),
    ) {
        Ok(done) => Ok(HttpResponse::Ok().json(done)),
        Err(e @ IngestError::UnknownEdge(_)) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e @ IngestError::RegionMismatch { .. }) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}
