//! Per-host tenant rules, one file per rule, in the order a request meets them:
//!
//! 1. [`client`] — who the client is (the peer, or `X-Forwarded-For` behind trusted proxies).
//! 2. [`rate`] — per-client token buckets (`[hosts.rate_limit]`): 429 with `Retry-After`.
//! 3. [`geo`] — allow/deny by country and CIDR (`[hosts.geo]`): 403 or 451.
//! 4. [`headers`] — CORS preflights answered at the edge (`[hosts.cors]`).
//! 5. [`signed`] — signed URLs (`[hosts.signed_urls]`): 403; the signature parameters are
//!    stripped from the cache key and the origin request by [`crate::context`].
//!
//! [`Tenants::admit`] runs 2–5 before the cache; [`Tenants::finish`] applies the response
//! header rules ([`headers`]) to every answer of the host afterwards. A refusal's reason goes
//! to the access log (`reason`) and to `edge_tenant_refusals_total{host,reason}`, never into
//! the body. The per-host origin concurrency cap (`max_origin_requests`) lives with the
//! origin client ([`crate::origin`]).

pub mod client;
pub mod geo;
pub mod headers;
pub mod rate;
pub mod signed;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use cdn_shared::config::edge::EdgeConfig;
use ipnet::IpNet;

use crate::error::EdgeError;
use crate::headers::X_CACHE;
use crate::metrics as m;

/// Why the edge answered a request itself instead of serving it (request extension read by
/// the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused(pub &'static str);

/// One host's rules.
#[derive(Debug)]
struct HostRules {
    name: String,
    signed: Option<signed::Keys>,
    rate: Option<rate::RateLimiter>,
    geo: Option<geo::GeoRule>,
    headers: headers::Rules,
}

/// Every host's rules, indexed like the routes.
#[derive(Debug)]
pub struct Tenants {
    hosts: Vec<HostRules>,
    countries: geo::Countries,
    trusted: Vec<IpNet>,
    epoch: Instant,
}

fn read_key(
    index: usize,
    j: usize,
    k: &cdn_shared::config::tenant::SigningKey,
) -> Result<Vec<u8>, EdgeError> {
    let key = format!("hosts[{index}].signed_urls.keys[{j}]");
    let text = match (&k.key, &k.key_file) {
        (Some(t), _) => t.clone(),
        (None, Some(p)) => std::fs::read_to_string(p)
            .map_err(|e| EdgeError::Config(format!("{key}.key_file: {}: {e}", p.display())))?,
        (None, None) => return Err(EdgeError::Config(format!("{key}: no key"))),
    };
    signed::decode_key(&text).map_err(|e| EdgeError::Config(format!("{key}: {e}")))
}

impl Tenants {
    /// Compile every host's rules (reads key files and the `[geo]` files; errors name the
    /// key).
    pub fn new(config: &EdgeConfig) -> Result<Tenants, EdgeError> {
        let mut hosts = Vec::with_capacity(config.hosts.len());
        for (i, h) in config.hosts.iter().enumerate() {
            let signed = match &h.signed_urls {
                None => None,
                Some(s) => {
                    let mut keys = Vec::new();
                    for (j, k) in s.keys.iter().enumerate() {
                        keys.push((k.name.clone(), read_key(i, j, k)?));
                    }
                    Some(signed::Keys::new(keys))
                }
            };
            hosts.push(HostRules {
                name: h.name.to_ascii_lowercase(),
                signed,
                rate: h
                    .rate_limit
                    .as_ref()
                    .map(|r| rate::RateLimiter::new(r.rate, r.burst, r.max_clients)),
                geo: h.geo.as_ref().map(geo::GeoRule::new),
                headers: headers::Rules::new(i, &h.headers, h.cors.as_ref(), &config.edge.id)?,
            });
        }
        Ok(Tenants {
            hosts,
            countries: geo::Countries::open(&config.geo)?,
            trusted: config.http.trusted_proxies.clone(),
            epoch: Instant::now(),
        })
    }

    /// Whether host `route` strips signature parameters from its key.
    pub fn signed(&self, route: usize) -> bool {
        self.hosts.get(route).is_some_and(|h| h.signed.is_some())
    }

    /// The client address of `req` (peer, or `X-Forwarded-For` behind trusted proxies).
    pub fn client_ip(&self, req: &HttpRequest) -> Option<IpAddr> {
        let peer = req.peer_addr()?.ip();
        Some(client::client_ip(peer, req.headers(), &self.trusted))
    }

    /// Rate limit, geo rules, CORS preflight and signed URL for a request to host `route`:
    /// `Some(response)` when the edge answers it itself.
    pub fn admit(&self, route: usize, req: &HttpRequest) -> Option<HttpResponse> {
        let h = self.hosts.get(route)?;
        if h.rate.is_some() || h.geo.is_some() {
            // Without a peer address (not over TCP) nothing can be checked: refused, never
            // admitted past the rules (and past the preflight and signed-URL checks below).
            let Some(ip) = self.client_ip(req) else {
                return Some(refuse(
                    req,
                    &h.name,
                    StatusCode::FORBIDDEN,
                    "no_client_address",
                    None,
                ));
            };
            if let Some(r) = &h.rate {
                let now = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
                if let Err(wait) = r.check(ip, now) {
                    return Some(refuse(
                        req,
                        &h.name,
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        Some(wait),
                    ));
                }
            }
            if let Some(g) = &h.geo {
                if let Err(why) = g.check(ip, || self.countries.country(ip)) {
                    let status = StatusCode::from_u16(g.status).unwrap_or(StatusCode::FORBIDDEN);
                    return Some(refuse(req, &h.name, status, why.as_str(), None));
                }
            }
        }
        match h.headers.preflight(req.method(), req.headers()) {
            Some(Ok(resp)) => {
                metrics::counter!(m::CORS_PREFLIGHTS, "host" => h.name.clone()).increment(1);
                let mut resp = resp;
                mark(&mut resp, "PREFLIGHT");
                return Some(resp);
            }
            Some(Err(why)) => return Some(refuse(req, &h.name, StatusCode::FORBIDDEN, why, None)),
            None => {}
        }
        if let Some(keys) = &h.signed {
            let pq = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str())
                .unwrap_or("/");
            let now_s = cdn_shared::unix_ms() / 1000;
            if let Err(why) = signed::verify(keys, pq, now_s) {
                return Some(refuse(
                    req,
                    &h.name,
                    StatusCode::FORBIDDEN,
                    why.as_str(),
                    None,
                ));
            }
        }
        None
    }

    /// Apply host `route`'s response header rules to `resp`, the answer to `req`.
    pub fn finish(&self, route: usize, req: &HttpRequest, resp: &mut HttpResponse) {
        if let Some(h) = self.hosts.get(route) {
            if !h.headers.is_empty() {
                h.headers
                    .apply(resp.headers_mut(), req.headers().get(header::ORIGIN));
            }
        }
    }
}

/// Tag an answer the edge made itself (`X-Cache`, read by the metrics and the access log).
fn mark(resp: &mut HttpResponse, what: &'static str) {
    resp.headers_mut()
        .insert(X_CACHE, HeaderValue::from_static(what));
}

/// A refusal: the status, a generic body, `Retry-After` when given; the reason goes to the
/// metric and the access log only.
fn refuse(
    req: &HttpRequest,
    host: &str,
    status: StatusCode,
    reason: &'static str,
    retry_after: Option<Duration>,
) -> HttpResponse {
    metrics::counter!(m::TENANT_REFUSALS, "host" => host.to_string(), "reason" => reason)
        .increment(1);
    req.extensions_mut().insert(Refused(reason));
    let mut b = HttpResponse::build(status);
    b.insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::CONTENT_TYPE, "text/plain; charset=utf-8"));
    if let Some(w) = retry_after {
        // Whole seconds, rounded up, at least 1.
        let secs = w
            .as_secs()
            .saturating_add(u64::from(w.subsec_nanos() > 0))
            .max(1);
        b.insert_header((header::RETRY_AFTER, secs));
    }
    let mut resp = b.body(format!(
        "{}\n",
        status.canonical_reason().unwrap_or("Refused")
    ));
    mark(&mut resp, "DENIED");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_client_address_a_host_with_rules_refuses() {
        let toml = "[edge]\nid = \"e1\"\nregion = \"r\"\n[[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:1\"\n[hosts.rate_limit]\nrate = 10.0\nburst = 10\n";
        let config: cdn_shared::config::edge::EdgeConfig =
            cdn_shared::config::load_str(toml).unwrap();
        let t = Tenants::new(&config).unwrap();
        // No peer address (not over TCP): refused, not admitted past the rules.
        let req = actix_web::test::TestRequest::default().to_http_request();
        let r = t.admit(0, &req).expect("answered by the edge");
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let with_peer = actix_web::test::TestRequest::default()
            .peer_addr("192.0.2.1:4000".parse().unwrap())
            .to_http_request();
        assert!(t.admit(0, &with_peer).is_none());
    }
}
