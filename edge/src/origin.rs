//! Origin fetches with awc. awc's client is per thread (`!Send`), so every actix worker
//! builds its own [`Origins`] (one client per configured host, each with that host's
//! connect/first-byte timeouts, keep-alive pool and TLS settings). Redirects are never
//! followed; bodies are read frame by frame with the host's idle timeout ([`next_frame`]).
//!
//! Idle origin connections are kept for [`ORIGIN_IDLE_KEEP_ALIVE`] (4 s), below the idle
//! timeout of common origin servers (actix-web, Node.js and Apache close after 5 s), so the
//! edge normally drops an idle connection before the origin does.
//!
//! A request written on a pooled connection at the instant the origin closes it fails with
//! a reset or an EOF before any response head. Like nginx's `proxy_next_upstream error` for
//! idempotent requests, [`Origins::send`] retries such a failure once, on a fresh connection
//! that is not pooled afterwards (`Connection: close`), when [`should_retry`] allows it: only
//! GET and HEAD (which covers the edge's own fills, revalidations and range refetches), only
//! connection-level failures ([`SendFailure::Reset`], [`SendFailure::Closed`]), never a
//! timeout, a refused connect or a malformed response, and never a second time. Other
//! methods (POST, PUT, PATCH, DELETE, ...) are never retried. A retry is logged at `info`
//! (`origin connection failed before the response head; retrying on a fresh connection`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::http::Method;
use awc::error::{ConnectError, PayloadError, SendRequestError};
use bytes::Bytes;
use cdn_shared::config::edge::{CacheSection, HostConfig};
use futures_util::StreamExt;

use crate::cache::policy::HostPolicy;
use crate::error::EdgeError;

/// How long an idle origin connection stays in the pool: below the 5 s idle timeout of
/// actix-web, Node.js and Apache, so the edge drops it before the origin closes it.
pub const ORIGIN_IDLE_KEEP_ALIVE: Duration = Duration::from_secs(4);

/// Origin requests tried at most this many times ([`should_retry`]).
pub const MAX_ATTEMPTS: u32 = 2;

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
    /// `origin_base` as awc is given it (see [`HostRoute::client_base`]).
    client_base: String,
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
    /// `[hosts.headers].request_set`: set on every origin request.
    pub request_set: Vec<(HeaderName, HeaderValue)>,
    /// `max_origin_requests`: slots for concurrent origin requests (held until the response
    /// is dropped, i.e. its body read).
    pub origin_slots: Option<Arc<tokio::sync::Semaphore>>,
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
            client_base: format!("http://{authority}"),
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
            request_set: h
                .headers
                .request_set
                .iter()
                .map(|(n, v)| {
                    let bad = || {
                        EdgeError::Config(format!(
                            "hosts[{index}].headers.request_set.{n}: invalid"
                        ))
                    };
                    Ok((
                        HeaderName::from_bytes(n.as_bytes()).map_err(|_| bad())?,
                        HeaderValue::from_str(v).map_err(|_| bad())?,
                    ))
                })
                .collect::<Result<_, EdgeError>>()?,
            origin_slots: h
                .max_origin_requests
                .map(|n| Arc::new(tokio::sync::Semaphore::new(n))),
        })
    }

    /// The URL base awc is given: `origin_base` with `https://` spelled `http://`, because
    /// TLS is done by the connector ([`crate::interim::OriginConnector`]).
    pub fn client_base(&self) -> &str {
        match self.origin_base.strip_prefix("https://") {
            Some(_) => &self.client_base,
            None => &self.origin_base,
        }
    }

    /// Idle timeout between body frames.
    pub fn idle_timeout(&self) -> Duration {
        self.cfg.idle_timeout
    }
}

/// The per-worker origin clients.
pub struct Origins {
    clients: Vec<awc::Client>,
    /// Per host, a client whose connections are never reused (retries, see [`should_retry`]).
    fresh: Vec<awc::Client>,
    routes: Arc<Vec<HostRoute>>,
    /// This edge's `CDN-Loop` token, added to every origin request.
    cdn_loop: HeaderValue,
}

impl std::fmt::Debug for Origins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origins")
            .field("hosts", &self.clients.len())
            .finish()
    }
}

impl Origins {
    /// Build one client per host (call inside the worker thread); `cdn_loop` is this edge's
    /// `CDN-Loop` token (RFC 8586), added to every origin request.
    pub fn new(routes: Arc<Vec<HostRoute>>, cdn_loop: HeaderValue) -> Result<Rc<Self>, EdgeError> {
        let mut clients = Vec::with_capacity(routes.len());
        let mut fresh = Vec::with_capacity(routes.len());
        for r in routes.iter() {
            clients.push(Self::client(r, ORIGIN_IDLE_KEEP_ALIVE)?);
            // Keep-alive zero: a pooled connection is never eligible again, so every
            // request on this client opens a new connection.
            fresh.push(Self::client(r, Duration::ZERO)?);
        }
        Ok(Rc::new(Origins {
            clients,
            fresh,
            routes,
            cdn_loop,
        }))
    }

    fn client(r: &HostRoute, keep_alive: Duration) -> Result<awc::Client, EdgeError> {
        // TLS is done by our connector below the interim-response filter (interim.rs); awc
        // is given `http://` URLs ([`HostRoute::client_base`]).
        let tls = match r.origin_base.strip_prefix("https://") {
            Some(authority) => {
                let cfg = crate::tls::client_config(r.cfg.tls_verify, r.cfg.tls_ca.as_deref())?;
                let host = url::Url::parse(&r.origin_base)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_string))
                    .unwrap_or_else(|| authority.to_string());
                let host = host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string();
                let sni = rustls::pki_types::ServerName::try_from(host)
                    .map_err(|e| EdgeError::Tls(format!("hosts[{}].origin: {e}", r.index)))?;
                Some((cfg, sni))
            }
            None => None,
        };
        let connector = awc::Connector::new()
            .connector(crate::interim::OriginConnector::new(tls))
            .timeout(r.cfg.connect_timeout)
            .conn_keep_alive(keep_alive)
            .limit(256);
        Ok(awc::Client::builder()
            .connector(connector)
            .timeout(r.cfg.first_byte_timeout)
            .disable_redirects()
            .no_default_headers()
            .finish())
    }

    /// The shared routes.
    pub fn routes(&self) -> &Arc<Vec<HostRoute>> {
        &self.routes
    }

    /// Send `method path_and_query` with `headers` (Host is set here) and an optional
    /// body; resolves when the response head has arrived. A connection-level failure before
    /// the head is retried once on a fresh connection when [`should_retry`] allows it.
    pub async fn send(
        &self,
        route: &HostRoute,
        method: Method,
        path_and_query: &str,
        mut headers: HeaderMap,
        body: Option<Bytes>,
    ) -> Result<OriginResponse, EdgeError> {
        crate::headers::add_cdn_loop(&mut headers, &self.cdn_loop);
        // The PoP's hop marker carries the cluster secret: never sent to an origin.
        headers.remove(crate::pop::CDN_HOP);
        for (n, v) in &route.request_set {
            headers.insert(n.clone(), v.clone());
        }
        // Origin protection: wait briefly for a slot, then give up (503).
        let slot = match &route.origin_slots {
            None => None,
            Some(s) => {
                match tokio::time::timeout(
                    route.cfg.origin_queue_timeout,
                    s.clone().acquire_owned(),
                )
                .await
                {
                    Ok(Ok(permit)) => Some(permit),
                    _ => {
                        metrics::counter!(crate::metrics::ORIGIN_QUEUE_TIMEOUTS, "host" => route.name.clone())
                            .increment(1);
                        return Err(EdgeError::Overloaded("origin concurrency limit"));
                    }
                }
            }
        };
        let base = route.client_base();
        let mut url =
            String::with_capacity(base.len() + route.origin_path.len() + path_and_query.len());
        url.push_str(base);
        url.push_str(&route.origin_path);
        url.push_str(path_and_query);
        let is_head = method == Method::HEAD;
        let mut attempt = 1;
        let resp = loop {
            let retry = attempt > 1;
            let client = if retry {
                &self.fresh[route.index]
            } else {
                &self.clients[route.index]
            };
            let mut req = client.request(method.clone(), url.as_str());
            for (n, v) in headers.iter() {
                req = req.append_header((n.clone(), v.clone()));
            }
            req = req.insert_header((actix_web::http::header::HOST, route.origin_host.clone()));
            if retry {
                req = req.force_close();
            }
            let res = match &body {
                Some(b) => req.send_body(b.clone()).await,
                None => req.send().await,
            };
            match res {
                Ok(r) => break r,
                Err(e) => {
                    let failure = send_failure(&e);
                    if should_retry(&method, failure, attempt) {
                        tracing::info!(
                            host = %route.name,
                            %method,
                            path = %path_and_query,
                            error = %e,
                            "origin connection failed before the response head; retrying on a fresh connection"
                        );
                        attempt += 1;
                        continue;
                    }
                    return Err(classify_send_error(&route.name, e));
                }
            }
        };
        if !is_head && close_delimited(&resp) {
            return Err(EdgeError::OriginBroken(format!(
                "{}: response body without Content-Length or chunked encoding is not supported",
                route.name
            )));
        }
        if let Some(permit) = slot {
            // Released when the response (and so its body stream) is dropped.
            actix_web::HttpMessage::extensions_mut(&resp).insert(permit);
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
        && !chunked_last(resp.headers())
}

/// Whether the last transfer coding is `chunked` (RFC 9112 §6.3): only then does
/// `Transfer-Encoding` frame the body. `identity`, `gzip` alone … leave it delimited by the
/// close (awc would read it as empty: an empty 200 stored for the whole TTL).
pub(crate) fn chunked_last(h: &actix_web::http::header::HeaderMap) -> bool {
    h.get_all(actix_web::http::header::TRANSFER_ENCODING)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .last()
        .is_some_and(|c| c.eq_ignore_ascii_case("chunked"))
}

/// What kind of failure a send ended with (the input of [`should_retry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendFailure {
    /// The connection was reset or aborted, or the write hit a broken pipe.
    Reset,
    /// The connection ended (EOF) before a complete response head.
    Closed,
    /// A connect or first-byte timeout.
    Timeout,
    /// A new connection could not be made (refused, unreachable, DNS, TLS).
    Connect,
    /// Anything else: a malformed response, a bad URL or header, a request body error.
    Other,
}

/// Retry a failed origin send? Only GET and HEAD (safe and idempotent, and every request the
/// edge makes on its own: fills, revalidations, range refetches), only when the connection
/// broke before any response head (`Reset`/`Closed`: typically a pooled connection the
/// origin closed as it was reused), and only while `attempt` (the attempt that just failed,
/// from 1) is below [`MAX_ATTEMPTS`]. Timeouts are not retried (the origin is slow, and a
/// retry would double the wait), nor refused connects (a new connection already failed).
pub fn should_retry(method: &Method, failure: SendFailure, attempt: u32) -> bool {
    let idempotent = *method == Method::GET || *method == Method::HEAD;
    let connection_lost = matches!(failure, SendFailure::Reset | SendFailure::Closed);
    idempotent && connection_lost && attempt < MAX_ATTEMPTS
}

/// The [`SendFailure`] of an awc send error.
pub fn send_failure(e: &SendRequestError) -> SendFailure {
    use actix_http::error::ParseError;
    match e {
        SendRequestError::Connect(ConnectError::Timeout) | SendRequestError::Timeout => {
            SendFailure::Timeout
        }
        // Raised by awc when the connection ends before the response head.
        SendRequestError::Connect(ConnectError::Disconnected) => SendFailure::Closed,
        SendRequestError::Connect(_) => SendFailure::Connect,
        SendRequestError::Send(io) | SendRequestError::Response(ParseError::Io(io)) => {
            io_failure(io.kind())
        }
        SendRequestError::H2(h2) => h2
            .get_io()
            .map_or(SendFailure::Other, |io| io_failure(io.kind())),
        _ => SendFailure::Other,
    }
}

/// The [`SendFailure`] of an I/O error while writing the request or reading the head.
pub fn io_failure(kind: std::io::ErrorKind) -> SendFailure {
    use std::io::ErrorKind as K;
    match kind {
        K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => SendFailure::Reset,
        K::UnexpectedEof | K::WriteZero | K::NotConnected => SendFailure::Closed,
        K::TimedOut | K::WouldBlock => SendFailure::Timeout,
        _ => SendFailure::Other,
    }
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
        Ok(Some(Ok(b))) => {
            metrics::counter!(crate::metrics::ORIGIN_BYTES).increment(b.len() as u64);
            Ok(Some(b))
        }
        Ok(Some(Err(e))) => Err(payload_error(e)),
    }
}

fn payload_error(e: PayloadError) -> EdgeError {
    EdgeError::OriginBroken(format!("body: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn only_a_final_chunked_coding_frames_a_body() {
        use actix_web::http::header::{HeaderMap, HeaderValue, TRANSFER_ENCODING};
        let te = |vals: &[&str]| {
            let mut h = HeaderMap::new();
            for v in vals {
                h.append(TRANSFER_ENCODING, HeaderValue::from_str(v).unwrap());
            }
            chunked_last(&h)
        };
        assert!(te(&["chunked"]));
        assert!(te(&["gzip, chunked"]));
        assert!(te(&["gzip", "Chunked"]));
        assert!(!te(&["identity"]));
        assert!(!te(&["chunked, gzip"]));
        assert!(!te(&["gzip"]));
        assert!(!te(&[]));
    }

    #[test]
    fn retries_idempotent_requests_once_after_a_lost_connection() {
        for m in [Method::GET, Method::HEAD] {
            for f in [SendFailure::Reset, SendFailure::Closed] {
                assert!(should_retry(&m, f, 1), "{m} {f:?}");
                assert!(!should_retry(&m, f, 2), "only once: {m} {f:?}");
                assert!(!should_retry(&m, f, 3), "only once: {m} {f:?}");
            }
        }
    }

    #[test]
    fn never_retries_other_methods() {
        for m in [
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
            Method::from_bytes(b"PURGE").unwrap(),
        ] {
            for f in [SendFailure::Reset, SendFailure::Closed] {
                assert!(!should_retry(&m, f, 1), "{m} {f:?}");
            }
        }
    }

    #[test]
    fn never_retries_timeouts_connect_failures_or_bad_responses() {
        for f in [
            SendFailure::Timeout,
            SendFailure::Connect,
            SendFailure::Other,
        ] {
            assert!(!should_retry(&Method::GET, f, 1), "{f:?}");
        }
    }

    #[test]
    fn classifies_awc_errors() {
        use actix_http::error::ParseError;
        let io = |k: io::ErrorKind| io::Error::new(k, "x");
        let cases = [
            (
                SendRequestError::Connect(ConnectError::Disconnected),
                SendFailure::Closed,
            ),
            (
                SendRequestError::Send(io(io::ErrorKind::ConnectionReset)),
                SendFailure::Reset,
            ),
            (
                SendRequestError::Send(io(io::ErrorKind::BrokenPipe)),
                SendFailure::Reset,
            ),
            (
                SendRequestError::Response(ParseError::Io(io(io::ErrorKind::ConnectionReset))),
                SendFailure::Reset,
            ),
            (
                SendRequestError::Response(ParseError::Io(io(io::ErrorKind::UnexpectedEof))),
                SendFailure::Closed,
            ),
            (SendRequestError::Timeout, SendFailure::Timeout),
            (
                SendRequestError::Connect(ConnectError::Timeout),
                SendFailure::Timeout,
            ),
            (
                SendRequestError::Connect(ConnectError::Io(io(io::ErrorKind::ConnectionRefused))),
                SendFailure::Connect,
            ),
            (
                SendRequestError::Connect(ConnectError::Io(io(io::ErrorKind::ConnectionReset))),
                SendFailure::Connect,
            ),
            (
                SendRequestError::Response(ParseError::Header),
                SendFailure::Other,
            ),
            (
                SendRequestError::Send(io(io::ErrorKind::InvalidData)),
                SendFailure::Other,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(send_failure(&e), want, "{e:?}");
        }
    }
}
