//! The admin HTTP API (actix-web), served by [`serve`] on its own thread with its own actix
//! System, so it never shares threads with the DNS fast path. JSON everywhere; every error is
//! `{"error": "..."}`.
//!
//! | method | path | what |
//! |---|---|---|
//! | GET | `/healthz` | `{"status":"ok"}` |
//! | GET | `/metrics` | Prometheus text |
//! | GET | `/api/v1/edges` | every edge: state, reason, since, last probe, last report, load vs capacity, draining |
//! | GET | `/api/v1/edges/{id}` | one edge (404 when unknown) |
//! | GET | `/api/v1/services` | services with their pool and the edges the DNS decision chooses now for a client in each region |
//! | GET | `/api/v1/explain?name=&client=&ecs=&type=` | how a query would be answered (the decision DNS runs: records, rcode, TTL, ECS scope, and the service trace); `client` defaults to the caller's address, `type` to `A` |
//! | POST | `/api/v1/edges/{id}/drain`, `/undrain` | operator drain (token; 404 unknown edge) |
//! | POST | `/api/v1/edges/{id}/weight` | `{"weight": 1..=1000000}` overrides the configured weight, `{"weight": null}` restores it (token; 400 out of range; 404 unknown edge) |
//! | POST | `/api/v1/reports` | an edge's `HealthReport` (token) |
//! | POST | `/api/v1/reload` | re-read the config file (token; 400 with the config error) |
//! | POST | `/api/v1/purge` | fan the purge body out to every edge's `admin_url` (token) |
//!
//! Access (`access.rs`): one header spelling, `Authorization: Bearer <token>`; reads (edges,
//! services, explain, metrics) are open per `admin.read_access` (default: loopback clients) or
//! need a `read`/`operate` token; drain, undrain, weight, reload and purge need an `operate` token;
//! reports need the `report` token of the edge they name (403 for another edge). 401 when the
//! token is missing or wrong, 403 when its role does not allow the call or no token is configured.
//! The deprecated single `admin.token` acts as an `operate` token that may report as any edge.
//! Tokens are read from the live config, so a reload can rotate them. Every write leaves an
//! audit line (tracing target `audit`: token name, client address, what changed; refused writes
//! at WARN; reports, once a second per edge, at DEBUG). Request bodies above
//! `admin.max_body_size` get 413.
//!
//! Purge fan-out: the body (`{"urls":[],"prefixes":[],"tags":[],"soft":false}`, at least one
//! list non-empty) is posted to `<admin_url>/api/v1/purge` of every edge in parallel with the
//! router's token and a 2 s timeout per edge. The answer lists every edge:
//! `{"edge":"use1","ok":true,"status":200,"purged":3,"ms":4.1}`, a failed edge as
//! `{"edge":..,"ok":false,"error":"..","ms":..}` (never skipped), an edge without `admin_url` as
//! `{"edge":..,"ok":false,"skipped":true,"error":"skipped: no admin_url"}`. Status 200 when
//! every edge with an `admin_url` acknowledged, else 502 (same body, plus `error`).
//!
//! With `[bus]` (see [`crate::bus`]): drain/undrain and weight overrides are written to the KV
//! bucket first (503 when it cannot be written; every router applies them), and a purge is
//! published to the purge stream: 200 once stored,
//! `{"stored":true,"seq":..,"results":[{"edge":..,"ok":true,"purged":..,"ms":..}],
//! "pending":[edges not heard from within bus.purge_ack_timeout],"ms":..}`, 503 when the
//! stream does not store it.
//!
//! Layout: this module holds the server ([`serve`], [`app`], [`AdminServer`]), the error type
//! ([`ApiError`]) and `/healthz`, `/metrics`; `auth` (authorize, audit lines, body limit),
//! `edges` (edge list, one edge, drain/undrain), `services` (services view and explain, with
//! [`parse_explain_query`]), `reports` (report ingest), `reload` (config reload) and `purge`
//! (purge fan-out: [`PurgeRequest`], [`PurgeResult`]).

mod auth;
mod edges;
mod purge;
mod reload;
mod reports;
mod services;

use std::net::SocketAddr;

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, Service, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;

use cdn_shared::shutdown::Shutdown;

use crate::health::HealthError;
use crate::live::Live;
use crate::metrics::names;
use cdn_shared::access::Need;

use auth::authorize;
use edges::{drain, get_edge, list_edges, set_weight, undrain};
use purge::purge;
use reload::reload;
use reports::reports;
use services::{explain, services};

pub use purge::{PurgeRequest, PurgeResult, PURGE_EDGE_TIMEOUT};
pub use services::{parse_explain_query, ExplainQuery};

/// What the admin API works on: the router's live state (the name callers know it by).
pub type AdminContext = Live;

/// The running admin server.
#[derive(Debug)]
pub struct AdminServer {
    addr: SocketAddr,
    handle: ServerHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl AdminServer {
    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop accepting, finish in-flight requests, and wait for the thread.
    pub fn stop(mut self) {
        let handle = self.handle.clone();
        // The handle's future needs a runtime; use a throwaway one off the caller's thread so
        // this works from sync code and from inside another runtime alike.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(handle.stop(true));
            }
        })
        .join();
        self.join();
    }

    /// Wait for the server thread (after the shutdown token was cancelled).
    pub fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            match t.join() {
                Ok(Err(e)) => tracing::warn!(error = %e, "admin server ended with an error"),
                Err(_) => tracing::error!("admin server thread panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// Serve the admin API on `listener` (already bound; the caller logged its `listening` line)
/// from a dedicated thread running an actix System with two workers, until `shutdown` is
/// cancelled.
pub fn serve(
    listener: std::net::TcpListener,
    ctx: AdminContext,
    shutdown: Shutdown,
) -> std::io::Result<AdminServer> {
    // awc (purge fan-out to https admin URLs) needs a process-wide rustls provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let grace = ctx.config.load().lifecycle.shutdown_grace;
    let tls = match &ctx.admin_cert {
        Some(cert) => Some(cert.server_config().map_err(std::io::Error::other)?),
        None => None,
    };
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("admin".into())
        .spawn(move || {
            actix_rt::System::new().block_on(async move {
                let http = HttpServer::new(move || app(ctx.clone()))
                    .workers(2)
                    .tcp_nodelay(true)
                    .disable_signals()
                    .shutdown_timeout(grace.as_secs().max(1));
                let bound = match tls {
                    Some(tls) => http.listen_rustls_0_23(listener, tls),
                    None => http.listen(listener),
                };
                let server = match bound {
                    Ok(s) => s.run(),
                    Err(e) => {
                        let _ = tx.send(Err(std::io::Error::new(e.kind(), e.to_string())));
                        return Err(e);
                    }
                };
                let handle = server.handle();
                let _ = tx.send(Ok(handle.clone()));
                actix_rt::spawn(async move {
                    shutdown.cancelled().await;
                    handle.stop(true).await;
                });
                server.await
            })
        })?;
    let handle = rx
        .recv()
        .map_err(|_| std::io::Error::other("admin server thread ended before starting"))??;
    Ok(AdminServer {
        addr,
        handle,
        thread: Some(thread),
    })
}

/// The actix app (also usable with `actix_web::test`).
pub fn app(
    ctx: AdminContext,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(ctx))
        // The process-wide recorder (installed here if `run` did not already).
        .app_data(web::Data::new(crate::metrics::install()))
        .wrap(ErrorHandlers::new().default_handler(json_error_body))
        .wrap_fn(|req, srv| {
            let fut = srv.call(req);
            async move {
                let res = fut.await?;
                let endpoint = res
                    .request()
                    .match_pattern()
                    .unwrap_or_else(|| "unmatched".into());
                metrics::counter!(names::ADMIN_REQUESTS,
                    "endpoint" => endpoint, "status" => res.status().as_u16().to_string())
                .increment(1);
                Ok(res)
            }
        })
        .configure(crate::ui::routes)
        .service(get("/healthz", healthz))
        .service(get("/metrics", metrics_text))
        .service(get("/api/v1/edges", list_edges))
        .service(get("/api/v1/edges/{id}", get_edge))
        .service(post("/api/v1/edges/{id}/drain", drain))
        .service(post("/api/v1/edges/{id}/undrain", undrain))
        .service(post("/api/v1/edges/{id}/weight", set_weight))
        .service(get("/api/v1/services", services))
        .service(get("/api/v1/explain", explain))
        .service(post("/api/v1/reports", reports))
        .service(post("/api/v1/reload", reload))
        .service(post("/api/v1/purge", purge))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::new(StatusCode::NOT_FOUND, "no such endpoint"))
        }))
}

/// A read endpoint: GET and HEAD run `handler` (HEAD without the body); another method gets
/// 405 with `Allow: GET, HEAD`.
fn get<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args> + Clone,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::get().to(handler.clone()))
        .route(web::head().to(handler))
        .default_service(web::to(|| async { method_not_allowed("GET, HEAD") }))
}

/// A write endpoint: POST runs `handler`; another method gets 405 with `Allow: POST`.
fn post<F, Args>(path: &str, handler: F) -> actix_web::Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(web::post().to(handler))
        .default_service(web::to(|| async { method_not_allowed("POST") }))
}

/// `405 Method Not Allowed` with the `Allow` header RFC 9110 §15.5.6 requires.
fn method_not_allowed(allow: &'static str) -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, allow))
        .json(json!({ "error": format!("method not allowed here; use {allow}") }))
}

/// Any error response without a JSON body (actix's own 404/405/…) gets `{"error": reason}`.
fn json_error_body<B: MessageBody + 'static>(
    res: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let is_json = res
        .response()
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, res) = res.into_parts();
    let body = json!({ "error": status.canonical_reason().unwrap_or("error") }).to_string();
    let mut res = res.set_body(body).map_into_boxed_body();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(req, res).map_into_right_body(),
    ))
}

/// An API error: a status and a message, rendered as `{"error": message}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(json!({ "error": self.message }))
    }
}

impl From<HealthError> for ApiError {
    fn from(e: HealthError) -> Self {
        match e {
            HealthError::UnknownEdge(_) => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
        }
    }
}

impl From<crate::bus::BusError> for ApiError {
    fn from(e: crate::bus::BusError) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
    }
}

type ApiResult = Result<HttpResponse, ApiError>;

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn metrics_text(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    recorder: web::Data<PrometheusHandle>,
) -> ApiResult {
    authorize(&req, &ctx, Need::Read)?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body({
            let mut text = recorder.render();
            crate::metrics::render_answer_times(&mut text);
            crate::health::gauges::render_edge_gauges(&ctx.health.view(), &mut text);
            text
        }))
}
