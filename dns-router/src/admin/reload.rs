//! `POST /api/v1/reload`: re-read the config file ([`crate::live::Live::reload`]).

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::live::ReloadError;
use cdn_shared::access::Need;

use super::auth::{audit, authorize};
use super::{AdminContext, ApiError, ApiResult};

pub(super) async fn reload(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
    let who = authorize(&req, &ctx, Need::Operate)?;
    let live = ctx.get_ref().clone();
    let result = web::block(move || live.reload())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let what = match &result {
        Ok(_) => "config reloaded".to_string(),
        Err(e) => format!("reload refused: {e}"),
    };
    audit(&who, &req, "reload", &what);
    match result {
        Ok(summary) => Ok(HttpResponse::Ok().json(summary)),
        Err(e @ ReloadError::NoConfigFile) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e) => Err(ApiError::bad_request(e.to_string())),
    }
}
