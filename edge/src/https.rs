//! HTTPS rules per host (`[hosts.tls]`) on the request path: a plain-HTTP request for a host
//! with `redirect` is answered with 301/308 to the same URL over HTTPS (before the cache or
//! the origin is touched), and an HTTPS response for a host with `hsts_max_age` gets
//! `Strict-Transport-Security` (replacing one from the origin; never on plain HTTP, RFC 6797
//! §7.2). The certificates themselves are [`crate::tls`].

use actix_web::http::header::{HeaderValue, LOCATION, STRICT_TRANSPORT_SECURITY};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use cdn_shared::config::edge::EdgeConfig;

use std::collections::HashMap;

use crate::headers::host_of;

/// One host's rules.
/// Host name (and alias) → index into `[[hosts]]` ([`crate::state::Shared::hosts`]).
pub type HostIndex = HashMap<String, usize>;

#[derive(Debug, Default)]
struct HostHttps {
    redirect: Option<StatusCode>,
    hsts: Option<HeaderValue>,
}

/// The redirect and HSTS rules of every host, indexed like `Shared::routes`.
#[derive(Debug, Default)]
pub struct HttpsPolicy {
    hosts: Vec<HostHttps>,
    /// `:port` in redirect URLs ("" for 443).
    port_suffix: String,
    any_redirect: bool,
    any_hsts: bool,
}

impl HttpsPolicy {
    /// The rules of `config`'s hosts; redirects point at `https_port` (`tls.redirect_port`,
    /// else the first HTTPS listener's port).
    pub fn new(config: &EdgeConfig, https_port: u16) -> HttpsPolicy {
        let hosts: Vec<HostHttps> = config
            .hosts
            .iter()
            .map(|h| {
                let t = h.tls.as_ref();
                HostHttps {
                    redirect: t
                        .and_then(|t| t.redirect)
                        .and_then(|s| StatusCode::from_u16(s).ok()),
                    hsts: t
                        .and_then(|t| t.hsts_value())
                        .and_then(|v| HeaderValue::from_str(&v).ok()),
                }
            })
            .collect();
        HttpsPolicy {
            any_redirect: hosts.iter().any(|h| h.redirect.is_some()),
            any_hsts: hosts.iter().any(|h| h.hsts.is_some()),
            port_suffix: if https_port == 443 {
                String::new()
            } else {
                format!(":{https_port}")
            },
            hosts,
        }
    }

    fn host<'a>(&'a self, req: &HttpRequest, hosts: &HostIndex) -> Option<&'a HostHttps> {
        let i = *hosts.get(&*host_of(req))?;
        self.hosts.get(i)
    }

    /// The redirect for a plain-HTTP request to a host that has one.
    pub fn redirect(&self, req: &HttpRequest, hosts: &HostIndex) -> Option<HttpResponse> {
        if !self.any_redirect || req.app_config().secure() {
            return None;
        }
        let status = self.host(req, hosts)?.redirect?;
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let location = format!("https://{}{}{pq}", host_of(req), self.port_suffix);
        let location = HeaderValue::try_from(location).ok()?;
        Some(
            HttpResponse::build(status)
                .insert_header((LOCATION, location))
                .finish(),
        )
    }

    /// Add `Strict-Transport-Security` to an HTTPS response for a host with HSTS; never on
    /// plain HTTP (RFC 6797 §7.2), not even the origin's own.
    pub fn add_hsts(&self, req: &HttpRequest, hosts: &HostIndex, resp: &mut HttpResponse) {
        if !req.app_config().secure() {
            resp.headers_mut().remove(STRICT_TRANSPORT_SECURITY);
            return;
        }
        if !self.any_hsts {
            return;
        }
        if let Some(v) = self.host(req, hosts).and_then(|h| h.hsts.clone()) {
            resp.headers_mut().insert(STRICT_TRANSPORT_SECURITY, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_hsts_over_plain_http_not_even_the_origins() {
        let policy = HttpsPolicy::default();
        let req = actix_web::test::TestRequest::default().to_http_request();
        let mut resp = HttpResponse::Ok()
            .insert_header((STRICT_TRANSPORT_SECURITY, "max-age=999"))
            .finish();
        policy.add_hsts(&req, &HostIndex::default(), &mut resp);
        assert!(resp.headers().get(STRICT_TRANSPORT_SECURITY).is_none());
    }
}
