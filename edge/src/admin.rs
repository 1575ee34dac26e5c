//! The admin listener (`[admin].listen`): health, metrics and purge.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /healthz` | `200 serving` / `503 draining` (text) |
//! | `GET /metrics` | Prometheus text format (names in [`crate::metrics`]) |
//! | `POST /api/v1/purge` | bearer token (`[admin].token`); body `{"urls":[…],"prefixes":[…],"tags":[…],"soft":false}` (at least one list non-empty); `200 {"purged":N,"soft":bool}`; `400` bad JSON or selector; `401` missing/bad token; `403` no token configured |
//!
//! The admin server runs its own single worker thread, so health checks and purges are
//! answered while the client workers are saturated.

use std::sync::Arc;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::drain::Lifecycle;
use crate::purge::{self, Index, PurgeRequest, PurgeResponse, PurgeTarget};

/// Largest purge request body.
const MAX_PURGE_BODY: usize = 4 * 1024 * 1024;

/// What the admin handlers need.
#[derive(Clone)]
pub struct AdminContext {
    /// Serving / draining.
    pub lifecycle: Arc<Lifecycle>,
    /// The purge index.
    pub index: Arc<Index>,
    /// The store purges act on.
    pub target: Arc<dyn PurgeTarget>,
    /// `[admin].token`; `None` = purge refused with 403.
    pub token: Option<String>,
    /// Prometheus renderer ([`crate::metrics::install`]).
    pub metrics: PrometheusHandle,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("draining", &self.lifecycle.is_draining())
            .field("objects", &self.index.len())
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// `200 serving` / `503 draining` — also used by the client listener for health probes
/// whose Host is not a served host.
pub fn healthz_response(lifecycle: &Lifecycle) -> HttpResponse {
    let (status, body) = if lifecycle.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else {
        (StatusCode::OK, "serving\n")
    };
    HttpResponse::build(status)
        .content_type(ContentType::plaintext())
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn healthz(ctx: web::Data<AdminContext>) -> HttpResponse {
    healthz_response(&ctx.lifecycle)
}

async fn metrics_page(ctx: web::Data<AdminContext>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&ctx.metrics))
}

fn error(status: StatusCode, msg: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": msg }))
}

/// Check `Authorization: Bearer <token>` against the configured token (constant time).
pub fn authorize(req: &HttpRequest, token: Option<&str>) -> Result<(), Box<HttpResponse>> {
    let Some(expected) = token else {
        return Err(Box::new(error(
            StatusCode::FORBIDDEN,
            "purge is disabled: no admin.token configured",
        )));
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(g) if bool::from(g.as_bytes().ct_eq(expected.as_bytes())) => Ok(()),
        _ => Err(Box::new(
            HttpResponse::build(StatusCode::UNAUTHORIZED)
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .json(json!({ "error": "missing or bad bearer token" })),
        )),
    }
}

/// Read a request body of at most `cap` bytes (413 past it, also when `Content-Length` says so
/// up front; 400 when the body stream fails).
async fn read_capped(
    req: &HttpRequest,
    payload: &mut web::Payload,
    cap: usize,
) -> Result<web::Bytes, HttpResponse> {
    use futures_util::StreamExt;
    let too_large = || error(StatusCode::PAYLOAD_TOO_LARGE, "purge body too large");
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > cap as u64) {
        return Err(too_large());
    }
    let mut buf = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| error(StatusCode::BAD_REQUEST, &format!("body: {e}")))?;
        if buf.len().saturating_add(chunk.len()) > cap {
            return Err(too_large());
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `POST /api/v1/purge`: the token is checked before a byte of the body is read.
async fn purge_handler(
    req: HttpRequest,
    mut payload: web::Payload,
    ctx: web::Data<AdminContext>,
) -> HttpResponse {
    if let Err(resp) = authorize(&req, ctx.token.as_deref()) {
        return *resp;
    }
    let body = match read_capped(&req, &mut payload, MAX_PURGE_BODY).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let parsed: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, &format!("bad JSON: {e}")),
    };
    if let Err(purge::BadPurge(msg)) = purge::validate(&parsed) {
        return error(StatusCode::BAD_REQUEST, &msg);
    }
    let purged = purge::execute(&parsed, &ctx.index, &*ctx.target).await;
    HttpResponse::Ok().json(PurgeResponse {
        purged,
        soft: parsed.soft,
    })
}

/// Register the admin routes (for `App::configure`; tests use it with `actix_web::test`).
pub fn routes(ctx: AdminContext) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(ctx))
            .route("/healthz", web::get().to(healthz))
            .route("/healthz", web::head().to(healthz))
            .route("/metrics", web::get().to(metrics_page))
            .route("/api/v1/purge", web::post().to(purge_handler));
    }
}

/// Start the admin server on `listener` (one worker; signals are handled by the caller).
/// Run inside an actix system; stop it with the returned server's handle.
pub fn serve(
    listener: std::net::TcpListener,
    ctx: AdminContext,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || App::new().configure(routes(ctx.clone())))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
    Ok(server)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test;
    use futures_util::future::BoxFuture;
    use parking_lot::Mutex;

    #[derive(Default)]
    struct FakeStore {
        removed: Mutex<Vec<String>>,
        staled: Mutex<Vec<String>>,
    }

    impl PurgeTarget for FakeStore {
        fn remove<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.removed.lock().push(key.to_string()) })
        }
        fn mark_stale<'a>(&'a self, key: &'a str) -> BoxFuture<'a, ()> {
            Box::pin(async move { self.staled.lock().push(key.to_string()) })
        }
    }

    fn ctx(token: Option<&str>, store: Arc<FakeStore>) -> AdminContext {
        let index = Index::in_memory();
        index.record("k1", "cdn.example/a/1", &["t".into()]);
        index.record("k2", "cdn.example/a/2", &[]);
        AdminContext {
            lifecycle: Lifecycle::new(),
            index,
            target: store,
            token: token.map(str::to_string),
            metrics: crate::metrics::install(),
        }
    }

    #[actix_web::test]
    async fn healthz_follows_the_lifecycle() {
        let c = ctx(None, Arc::default());
        let l = c.lifecycle.clone();
        let app = test::init_service(App::new().configure(routes(c))).await;
        let r =
            test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(r.status(), 200);
        assert_eq!(test::read_body(r).await, "serving\n");
        l.start_draining();
        let r =
            test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request()).await;
        assert_eq!(r.status(), 503);
        assert_eq!(test::read_body(r).await, "draining\n");
        let r =
            test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await;
        assert_eq!(r.status(), 200);
        let page = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
        // Process-global gauge (other tests flip it too): presence only.
        assert!(page.contains("cdn_edge_draining"), "{page}");
    }

    #[actix_web::test]
    async fn purge_auth_and_validation() {
        let store = Arc::new(FakeStore::default());
        let app =
            test::init_service(App::new().configure(routes(ctx(Some("tok"), store.clone())))).await;
        let post = |auth: Option<&str>, body: &str| {
            let mut r = test::TestRequest::post()
                .uri("/api/v1/purge")
                .insert_header((header::CONTENT_TYPE, "application/json"))
                .set_payload(body.to_string());
            if let Some(a) = auth {
                r = r.insert_header((header::AUTHORIZATION, a.to_string()));
            }
            r.to_request()
        };
        let body = r#"{"prefixes":["http://cdn.example/a/"]}"#;
        assert_eq!(
            test::call_service(&app, post(None, body)).await.status(),
            401
        );
        // The token is checked before the body is read: without it, even an oversized body is
        // a 401 (a body read first would have been refused as too large); with it, 413.
        let huge = " ".repeat(MAX_PURGE_BODY + 1);
        assert_eq!(
            test::call_service(&app, post(None, &huge)).await.status(),
            401
        );
        assert_eq!(
            test::call_service(&app, post(Some("Bearer tok"), &huge))
                .await
                .status(),
            413
        );
        assert_eq!(
            test::call_service(&app, post(Some("Bearer nope"), body))
                .await
                .status(),
            401
        );
        assert_eq!(
            test::call_service(&app, post(Some("Bearer tok"), "{nope"))
                .await
                .status(),
            400
        );
        assert_eq!(
            test::call_service(&app, post(Some("Bearer tok"), "{}"))
                .await
                .status(),
            400
        );
        let r = test::call_service(
            &app,
            post(Some("Bearer tok"), r#"{"tags":["t"],"soft":true}"#),
        )
        .await;
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = test::read_body_json(r).await;
        assert_eq!(v, json!({"purged": 1, "soft": true}));
        assert_eq!(*store.staled.lock(), ["k1"]);
        let r = test::call_service(&app, post(Some("Bearer tok"), body)).await;
        let v: serde_json::Value = test::read_body_json(r).await;
        assert_eq!(v, json!({"purged": 2, "soft": false}));
        assert_eq!(store.removed.lock().len(), 2);
    }

    #[actix_web::test]
    async fn purge_without_configured_token_is_forbidden() {
        let app = test::init_service(App::new().configure(routes(ctx(None, Arc::default())))).await;
        let r = test::call_service(
            &app,
            test::TestRequest::post()
                .uri("/api/v1/purge")
                .insert_header((header::AUTHORIZATION, "Bearer x"))
                .set_payload(r#"{"urls":["h/a"]}"#)
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 403);
    }
}
