//! HTTP for tests: a request sent to a given socket address with any `Host` header
//! (curl's `--resolve`), no connection reuse, no redirects, no proxy, and every status
//! returned as a [`Reply`] rather than an error. Transport failures are errors.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::Context;

/// A complete response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status code.
    pub status: u16,
    /// Headers as received (names lower-case).
    pub headers: Vec<(String, String)>,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Reply {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> anyhow::Result<T> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "status {} body is not the expected JSON: {}",
                self.status,
                self.text()
            )
        })
    }

    /// The `Cache-Status` header (RFC 9211), if any.
    pub fn cache_status(&self) -> Option<&str> {
        self.header("cache-status")
    }

    /// Whether `Cache-Status` says the response was served from cache (`hit` parameter).
    pub fn is_hit(&self) -> bool {
        self.cache_status().is_some_and(|cs| {
            cs.split(',').next().is_some_and(|first| {
                first
                    .split(';')
                    .skip(1)
                    .any(|p| p.trim().eq_ignore_ascii_case("hit"))
            })
        })
    }
}

fn agent() -> &'static ureq::Agent {
    static AGENT: OnceLock<ureq::Agent> = OnceLock::new();
    AGENT.get_or_init(|| {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .proxy(None)
            .max_idle_connections(0)
            .max_idle_connections_per_host(0)
            .build()
            .into()
    })
}

/// A request being built: `get(addr, "/path").host("www.example").header(..).send()`.
#[derive(Debug, Clone)]
pub struct Req {
    method: &'static str,
    addr: SocketAddr,
    path: String,
    host: Option<String>,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    timeout: Duration,
}

/// `GET http://<addr><path>`.
pub fn get(addr: SocketAddr, path: &str) -> Req {
    Req::new("GET", addr, path)
}

/// `HEAD http://<addr><path>`.
pub fn head(addr: SocketAddr, path: &str) -> Req {
    Req::new("HEAD", addr, path)
}

/// `POST http://<addr><path>` (add a body with [`Req::json`] or [`Req::body`]).
pub fn post(addr: SocketAddr, path: &str) -> Req {
    Req::new("POST", addr, path)
}

fn run<S: ureq::AsSendBody>(
    req: Result<ureq::http::Request<S>, ureq::http::Error>,
    timeout: Duration,
) -> anyhow::Result<ureq::http::Response<ureq::Body>> {
    let req = req.context("building request")?;
    let cfg = agent()
        .configure_request(req)
        .timeout_global(Some(timeout))
        .build();
    Ok(agent().run(cfg)?)
}

impl Req {
    fn new(method: &'static str, addr: SocketAddr, path: &str) -> Self {
        Self {
            method,
            addr,
            path: if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            },
            host: None,
            headers: Vec::new(),
            body: None,
            timeout: Duration::from_secs(10),
        }
    }

    /// Send `Host: <host>` (the address is still the one connected to).
    pub fn host(mut self, host: &str) -> Self {
        self.host = Some(host.to_string());
        self
    }

    /// Add a request header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    /// A JSON body (sets `Content-Type`).
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Some(value.to_string().into_bytes());
        self.header("content-type", "application/json")
    }

    /// A raw body.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(bytes.into());
        self
    }

    /// Whole-request timeout (default 10 s; not scaled).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Send and read the whole response.
    pub fn send(self) -> anyhow::Result<Reply> {
        let url = format!("http://{}{}", self.addr, self.path);
        let what = format!(
            "{} {url}{}",
            self.method,
            self.host
                .as_deref()
                .map(|h| format!(" (Host: {h})"))
                .unwrap_or_default()
        );
        let mut b = ureq::http::Request::builder().method(self.method).uri(&url);
        if let Some(h) = &self.host {
            b = b.header("host", h);
        }
        for (k, v) in &self.headers {
            b = b.header(k, v);
        }
        let mut resp = match self.body {
            Some(body) => run(b.body(body), self.timeout),
            None => run(b.body(()), self.timeout),
        }
        .with_context(|| what.clone())?;
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = if self.method == "HEAD" {
            Vec::new()
        } else {
            resp.body_mut()
                .with_config()
                .limit(u64::MAX)
                .read_to_vec()
                .with_context(|| format!("reading the body of {what}"))?
        };
        Ok(Reply {
            status,
            headers,
            body,
        })
    }
}
