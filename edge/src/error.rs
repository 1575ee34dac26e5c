//! The edge's one error type and the one function that turns an error into an HTTP response
//! ([`error_response`]).

use actix_web::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;

use crate::headers::{CACHE_STATUS, X_CACHE};

/// Everything that can go wrong on the request path (and at start-up).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EdgeError {
    /// The request's Host is not one of the configured hosts.
    #[error("unknown host `{0}`: this edge does not serve it")]
    UnknownHost(String),
    /// Malformed request.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request body did not arrive within `http.body_read_timeout`.
    #[error("request body not received in time")]
    BodyTimeout,
    /// Request body larger than `http.max_body_size`.
    #[error("request body too large")]
    BodyTooLarge,
    /// Could not connect to the origin (refused, unreachable, DNS).
    #[error("origin connect failed: {0}")]
    OriginConnect(String),
    /// The origin did not answer in time (connect, first byte or idle timeout).
    #[error("origin timeout: {0}")]
    OriginTimeout(String),
    /// The origin connection broke mid-response, or its response was malformed.
    #[error("origin error: {0}")]
    OriginBroken(String),
    /// Waited `cache.fill_wait_timeout` for another request's fill.
    #[error("timed out waiting for an in-flight fill")]
    FillTimeout,
    /// Too many concurrent fills (`cache.max_inflight_fills`).
    #[error("overloaded: {0}")]
    Overloaded(&'static str),
    /// The request already passed through this edge (`CDN-Loop`, RFC 8586).
    #[error("loop detected: the request already carries this edge's CDN-Loop token")]
    LoopDetected,
    /// Cache start-up or TLS/config problems.
    #[error("cache: {0}")]
    Cache(String),
    /// TLS files unusable.
    #[error("tls: {0}")]
    Tls(String),
    /// A config value that parsed but cannot be used (a key file, a geo database); the
    /// message names the key.
    #[error("{0}")]
    Config(String),
    /// I/O at start-up.
    #[error("io: {0}")]
    Io(String),
}

impl EdgeError {
    /// Status code answered for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            EdgeError::UnknownHost(_) => StatusCode::MISDIRECTED_REQUEST,
            EdgeError::BadRequest(_) => StatusCode::BAD_REQUEST,
            EdgeError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            EdgeError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            EdgeError::OriginConnect(_) | EdgeError::OriginBroken(_) => StatusCode::BAD_GATEWAY,
            EdgeError::OriginTimeout(_) | EdgeError::FillTimeout => StatusCode::GATEWAY_TIMEOUT,
            EdgeError::Overloaded(_) => StatusCode::SERVICE_UNAVAILABLE,
            EdgeError::LoopDetected => StatusCode::LOOP_DETECTED,
            EdgeError::Cache(_) | EdgeError::Tls(_) | EdgeError::Io(_) | EdgeError::Config(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Short label for logs, metrics and the `Cache-Status` `detail` parameter.
    pub fn as_str(&self) -> &'static str {
        match self {
            EdgeError::UnknownHost(_) => "unknown-host",
            EdgeError::BadRequest(_) => "bad-request",
            EdgeError::BodyTooLarge => "body-too-large",
            EdgeError::BodyTimeout => "body-timeout",
            EdgeError::OriginConnect(_) => "origin-connect",
            EdgeError::OriginTimeout(_) => "origin-timeout",
            EdgeError::OriginBroken(_) => "origin-broken",
            EdgeError::FillTimeout => "fill-timeout",
            EdgeError::Overloaded(_) => "overloaded",
            EdgeError::LoopDetected => "loop-detected",
            EdgeError::Cache(_) => "cache",
            EdgeError::Tls(_) => "tls",
            EdgeError::Io(_) => "io",
            EdgeError::Config(_) => "config",
        }
    }

    /// Errors for which `stale-if-error` may serve a stale copy.
    pub fn allows_stale(&self) -> bool {
        matches!(
            self,
            EdgeError::OriginConnect(_)
                | EdgeError::OriginTimeout(_)
                | EdgeError::OriginBroken(_)
                | EdgeError::FillTimeout
                | EdgeError::Overloaded(_)
        )
    }
}

/// The response for `err`: its status, a one-line plain-text reason, `Cache-Status` naming
/// the edge and the error, and `Cache-Control: no-store`.
pub fn error_response(err: &EdgeError, cache_name: &str) -> HttpResponse {
    let status = err.status();
    let cs = format!("{cache_name}; fwd=request; detail={}", err.as_str());
    let mut b = HttpResponse::build(status);
    b.insert_header((
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    ))
    .insert_header((CACHE_CONTROL, HeaderValue::from_static("no-store")))
    .insert_header((X_CACHE, HeaderValue::from_static("MISS")));
    if let Ok(v) = HeaderValue::from_str(&cs) {
        b.insert_header((CACHE_STATUS, v));
    }
    b.body(format!(
        "{} {}: {err}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    ))
}
