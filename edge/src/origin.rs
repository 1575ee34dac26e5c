//! Origin fetches with awc. awc's client is per thread (`!Send`), so every actix worker
//! builds its own [`Origins`] (one client per configured host, each with that host's
//! connect/first-byte timeouts, keep-alive pool and TLS settings). Redirects are never
//! followed; bodies are read frame by frame with the host's idle timeout ([`next_frame`]).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderValue};
use actix_web::http::Method;
use awc::error::{ConnectError, PayloadError, SendRequestError};
use bytes::Bytes;
use cdn_shared::config::edge::{CacheSection, HostConfig};
use futures_util::StreamExt;

use crate::cache::policy::HostPolicy;
use crate::error::EdgeError;

/// An origin response whose body is read with [`next_frame`].
pub type OriginResponse = awc::ClientResponse;

/// One configured host and where its origin is (shared by all workers).
#[derive(Debug, Clone)]
pub struct HostRoute {
    /// Index in `[[hosts]]`.
    pub index: usize,
    /// The configured name (the cache key uses it, so aliases share entries).
    pub name: String,
    /// `scheme://authority` of the origin.
    pub origin_base: String,
    /// Path prefix of the origin URL ("" for none).
    pub origin_path: String,
    /// Host header sent to the origin.
    pub origin_host: HeaderValue,
    /// Storing/freshness knobs.
    pub policy: HostPolicy,
    /// Largest object stored.
    pub max_object_size: u64,
    /// The raw host config.
    pub cfg: HostConfig,
}

impl HostRoute {
    /// Build the route for `hosts[index]`.
    pub fn new(index: usize, h: &HostConfig, cache: &CacheSection) -> Result<Self, EdgeError> {
        let u = url::Url::parse(&h.origin)
            .map_err(|e| EdgeError::Cache(format!("hosts[{index}].origin: {e}")))?;
        let host = u
            .host_str()
            .ok_or_else(|| EdgeError::Cache(format!("hosts[{index}].origin: no host")))?;
        let authority = match u.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let origin_host = h.origin_host.clone().unwrap_or_else(|| authority.clone());
        Ok(HostRoute {
            index,
            name: h.name.to_ascii_lowercase(),
            origin_base: format!("{}://{authority}", u.scheme()),
            origin_path: u.path().trim_end_matches('/').to_string(),
            origin_host: HeaderValue::from_str(&origin_host)
                .map_err(|_| EdgeError::Cache(format!("hosts[{index}].origin_host: invalid")))?,
            policy: HostPolicy {
                default_ttl_ms: h.default_ttl.map(|d| d.as_millis() as u64),
                grace_ms: h.grace.map(|d| d.as_millis() as u64),
                cache_set_cookie: h.cache_set_cookie,
                heuristic_fraction: cache.heuristic_fraction,
                heuristic_max_ms: cache.heuristic_max.as_millis() as u64,
            },
            max_object_size: h.max_object_size.unwrap_or(cache.max_object_size).as_u64(),
            cfg: h.clone(),
        })
    }

    /// Idle timeout between body frames.
    pub fn idle_timeout(&self) -> Duration {
        self.cfg.idle_timeout
    }
}

/// The per-worker origin clients.
pub struct Origins {
    clients: Vec<awc::Client>,
    routes: Arc<Vec<HostRoute>>,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("hosts", &self.clients.len())
            .finish()
    }
}

impl Origins {
    /// Build one client per host (call inside the worker thread).
    pub fn new(routes: Arc<Vec<HostRoute>>) -> Result<Rc<Self>, EdgeError> {
        let mut clients = Vec::with_capacity(routes.len());
        for r in routes.iter() {
            let mut connector = awc::Connector::new()
                .timeout(r.cfg.connect_timeout)
                .conn_keep_alive(Duration::from_secs(30))
                .limit(256);
            if r.origin_base.starts_with("https://") {
                let tls = crate::tls::client_config(r.cfg.tls_verify, r.cfg.tls_ca.as_deref())?;
                connector = connector.rustls_0_23(tls);
            }
            let client = awc::Client::builder()
                .connector(connector)
                .timeout(r.cfg.first_byte_timeout)
                .disable_redirects()
                .no_default_headers()
                .finish();
            clients.push(client);
        }
        Ok(Rc::new(Origins { clients, routes }))
    }

    /// The shared routes.
    pub fn routes(&self) -> &Arc<Vec<HostRoute>> {
        &self.routes
    }

    /// Send `method path_and_query` with `headers` (Host is set here) and an optional
    /// body; resolves when the response head has arrived.
    pub async fn send(
        &self,
        route: &HostRoute,
        method: Method,
        path_and_query: &str,
        headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<OriginResponse, EdgeError> {
        let client = &self.clients[route.index];
        let mut url = String::with_capacity(
            route.origin_base.len() + route.origin_path.len() + path_and_query.len(),
        );
        url.push_str(&route.origin_base);
        url.push_str(&route.origin_path);
        url.push_str(path_and_query);
        let is_head = method == Method::HEAD;
        let mut req = client.request(method, url);
        for (n, v) in headers.iter() {
            req = req.append_header((n.clone(), v.clone()));
        }
        req = req.insert_header((actix_web::http::header::HOST, route.origin_host.clone()));
        let res = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        let resp = res.map_err(|e| classify_send_error(&route.name, e))?;
        if !is_head && close_delimited(&resp) {
            return Err(EdgeError::OriginBroken(format!(
                "{}: response body without Content-Length or chunked encoding is not supported",
                route.name
            )));
        }
        Ok(resp)
    }
}

/// An HTTP/1.1 response whose body is delimited by closing the connection: awc reads such
/// bodies as empty, so they must never be stored or served as complete.
fn close_delimited(resp: &OriginResponse) -> bool {
    use actix_web::http::{header, Version};
    let status = resp.status().as_u16();
    resp.version() == Version::HTTP_11
        && !(100..200).contains(&status)
        && status != 204
        && status != 304
        && !resp.headers().contains_key(header::CONTENT_LENGTH)
        && !resp.headers().contains_key(header::TRANSFER_ENCODING)
}

fn classify_send_error(host: &str, e: SendRequestError) -> EdgeError {
    match e {
        SendRequestError::Connect(ConnectError::Timeout) => {
            EdgeError::OriginTimeout(format!("{host}: connect timeout"))
        }
        SendRequestError::Connect(c) => EdgeError::OriginConnect(format!("{host}: {c}")),
        SendRequestError::Timeout => {
            EdgeError::OriginTimeout(format!("{host}: no response head in time"))
        }
        other => EdgeError::OriginBroken(format!("{host}: {other}")),
    }
}

/// The next body frame, or `None` at the end; an idle gap longer than `idle` is an error.
pub async fn next_frame(
    resp: &mut OriginResponse,
    idle: Duration,
) -> Result<Option<Bytes>, EdgeError> {
    match tokio::time::timeout(idle, resp.next()).await {
        Err(_) => Err(EdgeError::OriginTimeout("idle timeout reading body".into())),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(payload_error(e)),
    }
}

fn payload_error(e: PayloadError) -> EdgeError {
    EdgeError::OriginBroken(format!("body: {e}"))
}
