//! The admin listener (`[admin].listen`): health, metrics and purge.
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /healthz` | `200 serving` / `503 draining` (text) |
//! | `GET /metrics` | Prometheus text format (names in [`crate::metrics`]); a `read` or `operate` token, or none as `admin.read_access` allows (loopback clients by default) |
//! | `POST /api/v1/purge` | an `operate` token (`[admin].token` or `[[admin.tokens]]`); body `{"urls":[…],"prefixes":[…],"tags":[…],"soft":false}` (at least one list non-empty); `200 {"purged":N,"soft":bool}`; `400` bad JSON or selector; `401` missing/bad token; `403` a `read` token, or no operate token configured |
//!
//! Tokens are checked by [`cdn_shared::access`] (the router's rules: constant-time, one header
//! spelling `Authorization: Bearer <token>`), before a byte of a body is read; every purge
//! writes an audit line (token name, client, selectors). With `admin.tls_cert`/`tls_key` the
//! listener speaks HTTPS only; the certificate is reloaded on SIGHUP (a bad file is refused
//! and logged, the old one keeps serving).
//!
//! The admin server runs its own single worker thread, so health checks and purges are
//! answered while the client workers are saturated.

use std::sync::Arc;

use actix_web::http::header::{self, ContentType};
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use cdn_shared::access::{Credentials, Need, Principal};
use cdn_shared::config::edge::EdgeAdminSection;
use cdn_shared::config::router::{AdminToken, ReadAccess};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

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
    /// Who may read metrics and purge.
    pub access: Access,
    /// Prometheus renderer ([`crate::metrics::install`]).
    pub metrics: PrometheusHandle,
}

impl std::fmt::Debug for AdminContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminContext")
            .field("draining", &self.lifecycle.is_draining())
            .field("objects", &self.index.len())
            .field("tokens", &self.access.tokens.len())
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

async fn metrics_page(req: HttpRequest, ctx: web::Data<AdminContext>) -> HttpResponse {
    if let Err(resp) = authorize(&req, &ctx.access, Need::Read) {
        return *resp;
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(crate::metrics::render(&ctx.metrics))
}

fn error(status: StatusCode, msg: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": msg }))
}

/// The admin credentials (`[admin]` `token`, `tokens`, `read_access`).
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// The single purge token (`admin.token`): an `operate` token.
    pub token: Option<String>,
    /// `[[admin.tokens]]` (`read` or `operate`).
    pub tokens: Vec<AdminToken>,
    /// Who reads `/metrics` without a token.
    pub read_access: ReadAccess,
}

impl Access {
    /// From the edge's `[admin]`.
    pub fn from_config(a: &EdgeAdminSection) -> Access {
        Access {
            token: a.token.clone(),
            tokens: a.tokens.clone(),
            read_access: a.read_access,
        }
    }

    /// Only a purge token (`None`: purge refused), reads open to loopback.
    pub fn token(token: Option<&str>) -> Access {
        Access {
            token: token.map(str::to_string),
            ..Access::default()
        }
    }
}

/// Check the caller (`Authorization: Bearer <token>`, peer address) for `need`; a refused
/// write is logged to the audit target.
pub fn authorize(
    req: &HttpRequest,
    access: &Access,
    need: Need,
) -> Result<Principal, Box<HttpResponse>> {
    let creds = Credentials {
        legacy: access.token.as_deref(),
        tokens: &access.tokens,
        read_access: access.read_access,
    };
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let peer = req.peer_addr().map(|a| a.ip());
    cdn_shared::access::authorize(creds, value, peer, need).map_err(|d| {
        let status = StatusCode::from_u16(d.status()).unwrap_or(StatusCode::FORBIDDEN);
        if need != Need::Read {
            tracing::warn!(target: "audit", client = %client_of(req), path = req.path(),
                status = status.as_u16(), "admin write refused: {}", d.message());
        }
        let mut b = HttpResponse::build(status);
        if status == StatusCode::UNAUTHORIZED {
            b.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        Box::new(b.json(json!({ "error": d.message() })))
    })
}

fn client_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into())
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
    let who = match authorize(&req, &ctx.access, Need::Operate) {
        Ok(p) => p,
        Err(resp) => return *resp,
    };
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
    tracing::info!(target: "audit", token = %who.name, client = %client_of(&req),
        action = "purge", urls = ?parsed.urls, prefixes = ?parsed.prefixes, tags = ?parsed.tags,
        soft = parsed.soft, purged, "admin write");
    HttpResponse::Ok().json(PurgeResponse {
        purged,
        soft: parsed.soft,
    })
}

/// Register the admin routes (for `App::configure`; tests use it with `actix_web::test`).
pub fn routes(ctx: AdminContext) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        // One resource per path, so a known path asked with another method is answered 405
        // with the `Allow` header (RFC 9110 §15.5.6), not 404.
        cfg.app_data(web::Data::new(ctx))
            .service(
                web::resource("/healthz")
                    .route(web::get().to(healthz))
                    .route(web::head().to(healthz))
                    .default_service(web::to(|| async { not_allowed("GET, HEAD") })),
            )
            .service(
                web::resource("/metrics")
                    .route(web::get().to(metrics_page))
                    .route(web::head().to(metrics_page))
                    .default_service(web::to(|| async { not_allowed("GET, HEAD") })),
            )
            .service(
                web::resource("/api/v1/purge")
                    .route(web::post().to(purge_handler))
                    .default_service(web::to(|| async { not_allowed("POST") })),
            )
            .default_service(web::to(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "no such admin endpoint (GET /healthz, GET /metrics, POST /api/v1/purge)",
                )
            }));
    }
}

fn not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, allow))
        .json(serde_json::json!({ "error": format!("method not allowed here; use {allow}") }))
}

/// Start the admin server on `listener` (one worker; signals are handled by the caller).
/// Run inside an actix system; stop it with the returned server's handle.
pub fn serve(
    listener: std::net::TcpListener,
    ctx: AdminContext,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<actix_web::dev::Server> {
    let server = HttpServer::new(move || App::new().configure(routes(ctx.clone())))
        .workers(1)
        .tcp_nodelay(true)
        .disable_signals()
        .shutdown_timeout(1);
    let server = match tls {
        Some(cfg) => server.listen_rustls_0_23(listener, cfg)?,
        None => server.listen(listener)?,
    };
    Ok(server.run())
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
            access: Access::token(token),
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
        let r = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/metrics")
                .peer_addr("127.0.0.1:5000".parse().unwrap())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 200);
        let page = String::from_utf8(test::read_body(r).await.to_vec()).unwrap();
        // Process-global gauge (other tests flip it too): presence only.
        assert!(page.contains("cdn_edge_draining"), "{page}");
        // Not on loopback and no token: refused (admin.read_access = loopback by default).
        let r = test::call_service(
            &app,
            test::TestRequest::get()
                .uri("/metrics")
                .peer_addr("192.0.2.1:5000".parse().unwrap())
                .to_request(),
        )
        .await;
        assert_eq!(r.status(), 401);
    }

    #[actix_web::test]
    async fn a_known_path_with_another_method_is_405_with_allow() {
        let app = test::init_service(App::new().configure(routes(ctx(None, Arc::default())))).await;
        for (method, uri, allow) in [
            (actix_web::http::Method::GET, "/api/v1/purge", "POST"),
            (actix_web::http::Method::POST, "/healthz", "GET, HEAD"),
            (actix_web::http::Method::DELETE, "/metrics", "GET, HEAD"),
        ] {
            let req = test::TestRequest::default()
                .method(method)
                .uri(uri)
                .to_request();
            let r = test::call_service(&app, req).await;
            assert_eq!(r.status(), 405, "{uri}");
            assert_eq!(r.headers().get("allow").unwrap(), allow);
        }
        let r = test::call_service(&app, test::TestRequest::get().uri("/nope").to_request()).await;
        assert_eq!(r.status(), 404);
        let body = test::read_body(r).await;
        assert!(
            std::str::from_utf8(&body).unwrap().contains("\"error\""),
            "a JSON error body: {body:?}"
        );
        let head = test::TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri("/healthz")
            .to_request();
        assert_eq!(test::call_service(&app, head).await.status(), 200);
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

    #[actix_web::test]
    async fn role_tokens_read_and_operate() {
        let store = Arc::new(FakeStore::default());
        let mut c = ctx(None, store.clone());
        let tok = |name: &str, role, token: &str| AdminToken {
            name: name.into(),
            role,
            token: token.into(),
            edge: None,
        };
        c.access = Access {
            token: None,
            tokens: vec![
                tok(
                    "prometheus",
                    cdn_shared::config::router::AdminRole::Read,
                    "r-secret",
                ),
                tok(
                    "ops",
                    cdn_shared::config::router::AdminRole::Operate,
                    "o-secret",
                ),
            ],
            read_access: ReadAccess::Token,
        };
        let app = test::init_service(App::new().configure(routes(c))).await;
        let call = |method: &str, uri: &str, auth: Option<&str>| {
            let mut r = match method {
                "GET" => test::TestRequest::get(),
                _ => test::TestRequest::post().set_payload(r#"{"urls":["cdn.example/a/1"]}"#),
            }
            .uri(uri)
            .peer_addr("127.0.0.1:5000".parse().unwrap());
            if let Some(a) = auth {
                r = r.insert_header((header::AUTHORIZATION, format!("Bearer {a}")));
            }
            r.to_request()
        };
        // read_access = token: even loopback needs a token to read.
        let st = |r: actix_web::dev::ServiceResponse| r.status().as_u16();
        assert_eq!(
            st(test::call_service(&app, call("GET", "/metrics", None)).await),
            401
        );
        assert_eq!(
            st(test::call_service(&app, call("GET", "/metrics", Some("r-secret"))).await),
            200
        );
        assert_eq!(
            st(test::call_service(&app, call("GET", "/metrics", Some("o-secret"))).await),
            200
        );
        // A read token may not purge; an operate token may.
        assert_eq!(
            st(test::call_service(&app, call("POST", "/api/v1/purge", Some("r-secret"))).await),
            403
        );
        assert!(store.removed.lock().is_empty());
        assert_eq!(
            st(test::call_service(&app, call("POST", "/api/v1/purge", Some("o-secret"))).await),
            200
        );
        assert_eq!(*store.removed.lock(), ["k1"]);
        // /healthz stays open.
        assert_eq!(
            st(test::call_service(&app, call("GET", "/healthz", None)).await),
            200
        );
    }
}
