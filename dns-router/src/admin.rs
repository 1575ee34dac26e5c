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
//! | POST | `/api/v1/reports` | an edge's `HealthReport` (token) |
//! | POST | `/api/v1/reload` | re-read the config file (token; 400 with the config error) |
//! | POST | `/api/v1/purge` | fan the purge body out to every edge's `admin_url` (token) |
//!
//! Access (`access.rs`): one header spelling, `Authorization: Bearer <token>`; reads (edges,
//! services, explain, metrics) are open per `admin.read_access` (default: loopback clients) or
//! need a `read`/`operate` token; drain, undrain, reload and purge need an `operate` token;
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
//! With `[bus]` (see [`crate::bus`]): drain/undrain are written to the KV bucket first (503
//! when it cannot be written), and a purge is published to the purge stream: 200 once stored,
//! `{"stored":true,"seq":..,"results":[{"edge":..,"ok":true,"purged":..,"ms":..}],
//! "pending":[edges not heard from within bus.purge_ack_timeout],"ms":..}`, 503 when the
//! stream does not store it.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, Service, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer, ResponseError};
use futures_util::StreamExt;
use hickory_proto::rr::RecordType;
use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use cdn_geo::model::{ClientLocation, LocationSource};
use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

use crate::access::{Need, Principal};
use crate::decide::{decide, Client};
use crate::health::ingest::{ingest, IngestError};
use crate::health::state::Event;
use crate::health::HealthError;
use crate::live::{Live, ReloadError};
use crate::metrics::names;
use crate::wire::rtype;

/// Per-edge timeout of the purge fan-out.
pub const PURGE_EDGE_TIMEOUT: Duration = Duration::from_secs(2);

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
        .route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics_text))
        .route("/api/v1/edges", web::get().to(list_edges))
        .route("/api/v1/edges/{id}", web::get().to(get_edge))
        .route("/api/v1/edges/{id}/drain", web::post().to(drain))
        .route("/api/v1/edges/{id}/undrain", web::post().to(undrain))
        .route("/api/v1/services", web::get().to(services))
        .route("/api/v1/explain", web::get().to(explain))
        .route("/api/v1/reports", web::post().to(reports))
        .route("/api/v1/reload", web::post().to(reload))
        .route("/api/v1/purge", web::post().to(purge))
        .default_service(web::to(|| async {
            Err::<HttpResponse, _>(ApiError::new(StatusCode::NOT_FOUND, "no such endpoint"))
        }))
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

/// Check the caller against `access::authorize` (role tokens, read access) for `need`.
fn authorize(req: &HttpRequest, ctx: &AdminContext, need: Need) -> Result<Principal, ApiError> {
    let config = ctx.config.load();
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let peer = req.peer_addr().map(|a| a.ip());
    crate::access::authorize(&config.admin, value, peer, need).map_err(|d| {
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

fn client_of(req: &HttpRequest) -> String {
    req.peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "-".into())
}

/// The audit line of a write: which token, from where, what changed.
fn audit(p: &Principal, req: &HttpRequest, action: &str, what: &str) {
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
async fn read_body(
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
            crate::health::gauges::render_edge_gauges(&ctx.health.view(), &mut text);
            text
        }))
}

/// One edge as the API shows it.
#[derive(Debug, Serialize)]
struct EdgeOut<'a> {
    id: &'a str,
    region: &'a str,
    ipv4: &'a [std::net::Ipv4Addr],
    ipv6: &'a [std::net::Ipv6Addr],
    probe_url: String,
    admin_url: Option<&'a str>,
    weight: u32,
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
        disabled: entry.disabled,
        state: health.health.as_str(),
        health,
    };
    serde_json::to_value(out)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn list_edges(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
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

async fn get_edge(
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
        bus.put_drain(id, drain).await?;
    }
    let event = if drain { Event::Drain } else { Event::Undrain };
    ctx.health.event(id, event, cdn_shared::unix_ms())?;
    let action = if drain { "drain" } else { "undrain" };
    audit(&who, &req, action, &format!("edge {id} draining={drain}"));
    let config = ctx.config.load();
    let view = ctx.health.view();
    Ok(HttpResponse::Ok().json(edge_json(&config, &view, id)?))
}

async fn drain(req: HttpRequest, ctx: web::Data<AdminContext>, id: web::Path<String>) -> ApiResult {
    set_drain(req, ctx, &id, true).await
}

async fn undrain(
    req: HttpRequest,
    ctx: web::Data<AdminContext>,
    id: web::Path<String>,
) -> ApiResult {
    set_drain(req, ctx, &id, false).await
}

/// Services with their pools and, per configured region, the edges a client placed in that
/// region would get now: the one decision (`decide::decide`) DNS runs, for the service's name.
async fn services(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
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

async fn explain(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
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

async fn reports(
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
    if let Ok(s) = serde_json::from_slice::<Sender>(&body) {
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
    }
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

async fn reload(req: HttpRequest, ctx: web::Data<AdminContext>) -> ApiResult {
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

/// The purge request body (the edge's purge API contract).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PurgeRequest {
    /// Absolute URLs (`http(s)://host/path` or `host/path`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes, same forms.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Surrogate keys / tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mark stale instead of removing.
    #[serde(default)]
    pub soft: bool,
}

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

async fn purge(req: HttpRequest, ctx: web::Data<AdminContext>, payload: web::Payload) -> ApiResult {
    let who = authorize(&req, &ctx, Need::Operate)?;
    let body = read_body(&req, payload, &ctx).await?;
    let purge: PurgeRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad purge JSON: {e}")))?;
    if purge.urls.is_empty() && purge.prefixes.is_empty() && purge.tags.is_empty() {
        return Err(ApiError::bad_request(
            "give at least one of `urls`, `prefixes`, `tags`",
        ));
    }
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
        return Ok(HttpResponse::Ok().json(bus.purge(&msg, &edges).await?));
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
    let client = awc::Client::builder()
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
