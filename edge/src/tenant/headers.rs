//! Header rules and CORS: response headers set/added/removed per host, request headers set
//! toward the origin, CORS headers on responses and preflights (`OPTIONS` with
//! `Access-Control-Request-Method`) answered at the edge.
//!
//! Applied to every response of the host (hits, misses, pass-through, refusals) after the
//! cache: stored objects keep the origin's headers, so changing a rule needs no purge.

use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::HttpResponse;
use cdn_shared::config::tenant::{Cors, HeaderRules};

use crate::error::EdgeError;

/// A host's compiled header rules.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    set: Vec<(HeaderName, HeaderValue)>,
    add: Vec<(HeaderName, HeaderValue)>,
    remove: Vec<HeaderName>,
    /// Set on every origin request of the host.
    pub request_set: Vec<(HeaderName, HeaderValue)>,
    cors: Option<CorsRule>,
}

#[derive(Debug, Clone)]
struct CorsRule {
    any: bool,
    origins: Vec<String>,
    methods: Vec<String>,
    methods_value: HeaderValue,
    headers: Vec<String>,
    headers_value: Option<HeaderValue>,
    expose: Option<HeaderValue>,
    max_age: HeaderValue,
    preflight: bool,
}

fn pair(
    key: &str,
    n: &str,
    v: &str,
    edge_id: &str,
) -> Result<(HeaderName, HeaderValue), EdgeError> {
    let name = HeaderName::from_bytes(n.as_bytes())
        .map_err(|_| EdgeError::Config(format!("{key}: `{n}` is not a header name")))?;
    let value = HeaderValue::from_str(&v.replace("$edge_id", edge_id))
        .map_err(|_| EdgeError::Config(format!("{key}.{n}: invalid header value")))?;
    Ok((name, value))
}

fn list(items: &[String]) -> Option<HeaderValue> {
    if items.is_empty() {
        return None;
    }
    HeaderValue::from_str(&items.join(", ")).ok()
}

impl Rules {
    /// Compile `[hosts.headers]` and `[hosts.cors]` of `hosts[index]`; `$edge_id` in values
    /// becomes `edge_id`.
    pub fn new(
        index: usize,
        h: &HeaderRules,
        cors: Option<&Cors>,
        edge_id: &str,
    ) -> Result<Rules, EdgeError> {
        let key = |f: &str| format!("hosts[{index}].headers.{f}");
        let compile = |f: &str, m: &std::collections::BTreeMap<String, String>| {
            m.iter()
                .map(|(n, v)| pair(&key(f), n, v, edge_id))
                .collect::<Result<Vec<_>, _>>()
        };
        let remove = h
            .response_remove
            .iter()
            .map(|n| {
                HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                    EdgeError::Config(format!(
                        "{}: `{n}` is not a header name",
                        key("response_remove")
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cors = cors.map(|c| CorsRule {
            any: c.allow_origins.iter().any(|o| o == "*"),
            origins: c
                .allow_origins
                .iter()
                .map(|o| o.to_ascii_lowercase())
                .collect(),
            methods: c
                .allow_methods
                .iter()
                .map(|m| m.to_ascii_uppercase())
                .collect(),
            methods_value: list(&c.allow_methods).unwrap_or(HeaderValue::from_static("GET, HEAD")),
            headers: c
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            headers_value: list(&c.allow_headers),
            expose: list(&c.expose_headers),
            max_age: HeaderValue::from(c.max_age.as_secs()),
            preflight: c.preflight,
        });
        Ok(Rules {
            set: compile("response_set", &h.response_set)?,
            add: compile("response_add", &h.response_add)?,
            remove,
            request_set: compile("request_set", &h.request_set)?,
            cors,
        })
    }

    /// Nothing to do on responses.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty() && self.cors.is_none()
    }

    /// Apply the response rules to `h`, the answer to a request whose `Origin` was `origin`.
    pub fn apply(&self, h: &mut HeaderMap, origin: Option<&HeaderValue>) {
        for n in &self.remove {
            h.remove(n);
        }
        for (n, v) in &self.set {
            h.insert(n.clone(), v.clone());
        }
        for (n, v) in &self.add {
            h.append(n.clone(), v.clone());
        }
        if let Some(c) = &self.cors {
            if !c.any {
                add_vary_origin(h);
            }
            // The host's allow-list decides, not what the origin sent (and the cache stored for
            // whichever Origin came first): the origin's allowance fields go; an allowed Origin
            // gets the edge's, and keeps the origin's credentials allowance. (Preflight-only
            // fields are the preflight's business: answered by the edge, or by the origin with
            // `preflight = false`, where the allowance decides as here.)
            let credentials = h.remove(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).next();
            h.remove(header::ACCESS_CONTROL_ALLOW_ORIGIN);
            h.remove(header::ACCESS_CONTROL_EXPOSE_HEADERS);
            if let Some(allowed) = c.allow(origin) {
                if let Some(cred) = credentials.filter(|_| allowed.as_bytes() != b"*") {
                    h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, cred);
                }
                h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
                if let Some(e) = &c.expose {
                    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, e.clone());
                }
            }
        }
    }

    /// A CORS preflight answered at the edge: `Some(204)` with the allowances when the origin,
    /// method and headers are allowed, `Some(403)` when not, `None` when the request is not a
    /// preflight (or preflights go to the origin).
    pub fn preflight(
        &self,
        method: &Method,
        req: &HeaderMap,
    ) -> Option<Result<HttpResponse, &'static str>> {
        let c = self.cors.as_ref().filter(|c| c.preflight)?;
        if method != Method::OPTIONS {
            return None;
        }
        let want = req.get(header::ACCESS_CONTROL_REQUEST_METHOD)?;
        let origin = req.get(header::ORIGIN)?;
        let Some(allowed) = c.allow(Some(origin)) else {
            return Some(Err("cors_origin"));
        };
        let method_ok = want
            .to_str()
            .map(|m| c.methods.iter().any(|a| a == m) || m == "GET" || m == "HEAD")
            .unwrap_or(false);
        if !method_ok {
            return Some(Err("cors_method"));
        }
        let headers_ok = match req.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
            None => true,
            Some(v) => v.to_str().is_ok_and(|s| {
                s.split(',')
                    .map(|h| h.trim().to_ascii_lowercase())
                    .filter(|h| !h.is_empty())
                    .all(|h| c.headers.contains(&h) || is_safelisted(&h))
            }),
        };
        if !headers_ok {
            return Some(Err("cors_headers"));
        }
        let mut r = HttpResponse::build(StatusCode::NO_CONTENT);
        r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                c.methods_value.clone(),
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, c.max_age.clone()));
        if let Some(hv) = &c.headers_value {
            r.insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, hv.clone()));
        }
        let mut resp = r.finish();
        let h = resp.headers_mut();
        if !c.any {
            add_vary_origin(h);
        }
        h.append(
            header::VARY,
            HeaderValue::from_static(
                "Access-Control-Request-Method, Access-Control-Request-Headers",
            ),
        );
        Some(Ok(resp))
    }
}

/// CORS-safelisted request headers need no allowance.
fn is_safelisted(h: &str) -> bool {
    matches!(
        h,
        "accept" | "accept-language" | "content-language" | "content-type" | "range"
    )
}

fn add_vary_origin(h: &mut HeaderMap) {
    let has = h.get_all(header::VARY).any(|v| {
        v.to_str()
            .map(|s| {
                s.split(',')
                    .any(|p| p.trim().eq_ignore_ascii_case("origin") || p.trim() == "*")
            })
            .unwrap_or(false)
    });
    if !has {
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
}

impl CorsRule {
    /// The `Access-Control-Allow-Origin` value for a request from `origin`, if allowed.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        if self.any {
            return Some(HeaderValue::from_static("*"));
        }
        let o = origin?;
        let s = o.to_str().ok()?.to_ascii_lowercase();
        self.origins.contains(&s).then(|| o.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(headers: &str, cors: Option<&str>) -> Rules {
        let h: HeaderRules = toml::from_str(headers).unwrap();
        let c: Option<Cors> = cors.map(|c| toml::from_str(c).unwrap());
        Rules::new(0, &h, c.as_ref(), "use1").unwrap()
    }

    fn hv(s: &'static str) -> HeaderValue {
        HeaderValue::from_static(s)
    }

    #[test]
    fn set_add_remove_and_edge_id() {
        let r = rules(
            r#"response_set = { "X-Served-By" = "$edge_id", "Timing-Allow-Origin" = "*" }
response_add = { "Link" = "</a.css>; rel=preload" }
response_remove = ["Server"]
request_set = { "X-Origin-Secret" = "s" }"#,
            None,
        );
        let mut h = HeaderMap::new();
        h.insert(header::SERVER, hv("origin/1"));
        h.insert(HeaderName::from_static("x-served-by"), hv("origin"));
        h.insert(header::LINK, hv("</b.js>; rel=preload"));
        r.apply(&mut h, None);
        assert!(h.get(header::SERVER).is_none());
        assert_eq!(h.get("x-served-by").unwrap(), "use1");
        assert_eq!(h.get_all(header::LINK).count(), 2);
        assert_eq!(r.request_set[0].0.as_str(), "x-origin-secret");
    }

    #[test]
    fn cors_echoes_allowed_origins_and_varies() {
        let r = rules("", Some(r#"allow_origins = ["https://app.example"]"#));
        let mut h = HeaderMap::new();
        r.apply(&mut h, Some(&hv("https://app.example")));
        assert_eq!(
            h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(),
            "https://app.example"
        );
        assert_eq!(h.get(header::VARY).unwrap(), "Origin");
        let mut h = HeaderMap::new();
        r.apply(&mut h, Some(&hv("https://evil.example")));
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        let any = rules("", Some(r#"allow_origins = ["*"]"#));
        let mut h = HeaderMap::new();
        any.apply(&mut h, None);
        assert_eq!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).unwrap(), "*");
        assert!(h.get(header::VARY).is_none());
    }

    #[test]
    fn preflight_answers_or_refuses() {
        let r = rules(
            "",
            Some(
                r#"allow_origins = ["https://app.example"]
allow_methods = ["GET", "POST"]
allow_headers = ["X-Token"]
max_age = "10m""#,
            ),
        );
        let req = |o: &'static str, m: &'static str, hs: Option<&'static str>| {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, hv(o));
            h.insert(header::ACCESS_CONTROL_REQUEST_METHOD, hv(m));
            if let Some(x) = hs {
                h.insert(header::ACCESS_CONTROL_REQUEST_HEADERS, hv(x));
            }
            h
        };
        let ok = r
            .preflight(
                &Method::OPTIONS,
                &req("https://app.example", "POST", Some("x-token, content-type")),
            )
            .unwrap()
            .unwrap();
        assert_eq!(ok.status(), 204);
        assert_eq!(
            ok.headers().get(header::ACCESS_CONTROL_MAX_AGE).unwrap(),
            "600"
        );
        assert_eq!(
            ok.headers()
                .get(header::ACCESS_CONTROL_ALLOW_METHODS)
                .unwrap(),
            "GET, POST"
        );
        assert_eq!(
            ok.headers()
                .get(header::ACCESS_CONTROL_ALLOW_HEADERS)
                .unwrap(),
            "X-Token"
        );
        assert_eq!(
            r.preflight(&Method::OPTIONS, &req("https://x.example", "GET", None))
                .unwrap()
                .err(),
            Some("cors_origin")
        );
        assert_eq!(
            r.preflight(
                &Method::OPTIONS,
                &req("https://app.example", "DELETE", None)
            )
            .unwrap()
            .err(),
            Some("cors_method")
        );
        assert_eq!(
            r.preflight(
                &Method::OPTIONS,
                &req("https://app.example", "GET", Some("x-other"))
            )
            .unwrap()
            .err(),
            Some("cors_headers")
        );
        // Not a preflight: plain OPTIONS, or another method.
        assert!(r.preflight(&Method::OPTIONS, &HeaderMap::new()).is_none());
        assert!(r
            .preflight(&Method::GET, &req("https://app.example", "GET", None))
            .is_none());
    }
}
