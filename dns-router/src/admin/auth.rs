//! Who may call: [`authorize`] (role tokens, read access), the audit line of a write, and the
//! request body limit (`admin.max_body_size`, 413).

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest};
use futures_util::StreamExt;

use cdn_shared::access::{Need, Principal};

use super::{AdminContext, ApiError};

/// Check the caller against `access::authorize` (role tokens, read access) for `need`.
pub(super) fn authorize(
    req: &HttpRequest,
    ctx: &AdminContext,
    need: Need,
) -> Result<Principal, ApiError> {
    let config = ctx.config.load();
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let peer = req.peer_addr().map(|a| a.ip());
    cdn_shared::access::authorize_admin(&config.admin, value, peer, need).map_err(|d| {
        let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
        if need != Need::Read {
            tracing::warn!(
                target: "audit",
                client = %client_of(req),
                path = req.path(),
                status = status.as_u16(),
                "admin write refused: {}",
                d.message()
            );
        }
        ApiError::new(status, d.message())
    })
}

pub(super) fn client_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into())
}

/// The audit line of a write: which token, from where, what changed.
pub(super) fn audit(p: &Principal, req: &HttpRequest, action: &str, what: &str) {
    tracing::info!(
        target: "audit",
        token = %p.name,
        client = %client_of(req),
        action,
        what,
        "admin write"
    );
}

/// Read the request body, refusing more than `admin.max_body_size` with 413.
pub(super) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    ctx: &AdminContext,
) -> Result<web::BytesMut, ApiError> {
    let limit = ctx.config.load().admin.max_body_size.as_u64() as usize;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than admin.max_body_size ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| ApiError::bad_request(format!("reading body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
