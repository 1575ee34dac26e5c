//! The request context: which host a request is for, its normalised URL and cache key
//! ([`cache::key`](crate::cache::key)), and the lookup that follows a Vary list to the variant.
//! Built once per request by `Ctx::new`; every later step reads it.

use std::rc::Rc;
use std::sync::Arc;

use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::{web, HttpRequest};

use crate::cache::key::{normalise_path, normalise_query, primary_key, url_of, variant_key};
use crate::cache::meta::{Entry, ObjectMeta};
use crate::cache::store::Store;
use crate::error::EdgeError;
use crate::headers::{host_of, Fwd};
use crate::origin::{HostRoute, Origins};
use crate::state::Shared;

/// Everything about one request the steps after dispatch need.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub(crate) req: HttpRequest,
    pub(crate) shared: web::Data<Shared>,
    pub(crate) origins: Rc<Origins>,
    /// Index into `shared.routes`.
    pub(crate) route: usize,
    pub(crate) scheme: &'static str,
    /// `host/path?query`, normalised (the purge index's URL).
    pub(crate) url: String,
    /// Normalised path and query: what the origin is asked for.
    pub(crate) path_q: String,
    /// The primary cache key.
    pub(crate) key: String,
    pub(crate) head: bool,
    /// The request's headers without hop-by-hop fields, when it had any
    /// ([`hdr::end_to_end`]); read through [`Ctx::end_to_end`].
    e2e: Option<Rc<HeaderMap>>,
    /// The request came from a PoP member or another region's edge (authenticated
    /// `CDN-Hop`, [`crate::pop`]): never forwarded to a peer again, no tenant rules.
    pub(crate) hop: Option<crate::pop::Hop>,
}

/// Why a request has no context.
pub(crate) enum NoRoute {
    /// `GET /healthz` for a host we do not serve: answer the edge's health.
    Healthz,
    /// Unknown host or a path that cannot be normalised.
    Error(EdgeError),
}

impl Ctx {
    /// Host → route → normalised path and query → key.
    pub(crate) fn new(
        req: HttpRequest,
        shared: &web::Data<Shared>,
        origins: &Rc<Origins>,
    ) -> Result<Ctx, NoRoute> {
        let host = host_of(&req);
        let Some(&route) = shared.hosts.get(&*host) else {
            if req.path() == "/healthz" {
                return Err(NoRoute::Healthz);
            }
            return Err(NoRoute::Error(EdgeError::UnknownHost(host.into_owned())));
        };
        let Some(path) = normalise_path(req.path()) else {
            return Err(NoRoute::Error(EdgeError::BadRequest(
                "invalid request path",
            )));
        };
        let r = &shared.routes[route];
        // Signature parameters are not part of the object (nor sent to the origin).
        let unsigned;
        let raw_query = if shared.tenants.signed(route) {
            unsigned = crate::tenant::signed::strip(req.query_string());
            unsigned.as_str()
        } else {
            req.query_string()
        };
        let query = normalise_query(raw_query, r.cfg.query);
        let url = url_of(&r.name, &path, &query);
        let hop = shared.pop.as_ref().and_then(|p| p.hop_of(req.headers()));
        // A peer asks over plain HTTP for its client's scheme (`X-Forwarded-Proto`), so both
        // compute the same key.
        let forwarded_https = hop.is_some()
            && req
                .headers()
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes() == b"https");
        let scheme = if req.app_config().secure() || forwarded_https {
            "https"
        } else {
            "http"
        };
        let e2e = crate::headers::end_to_end(req.headers()).map(Rc::new);
        let key_src = e2e.as_deref().unwrap_or(req.headers());
        let key = primary_key(scheme, &url, &r.cfg.key_headers, key_src);
        let mut path_q = path;
        if !query.is_empty() {
            path_q.push('?');
            path_q.push_str(&query);
        }
        Ok(Ctx {
            head: req.method() == Method::HEAD,
            origins: origins.clone(),
            req,
            shared: shared.clone(),
            route,
            scheme,
            url,
            path_q,
            key,
            e2e,
            hop,
        })
    }

    /// The request's end-to-end headers: what cache keys and Vary are computed from.
    pub(crate) fn end_to_end(&self) -> &HeaderMap {
        self.e2e.as_deref().unwrap_or(self.req.headers())
    }

    pub(crate) fn route(&self) -> &HostRoute {
        &self.shared.routes[self.route]
    }

    pub(crate) fn store(&self) -> &Arc<Store> {
        &self.shared.store
    }

    /// Look the key up, following a Vary list to the variant: the object (if any), the key it
    /// is (or would be) stored under, and the `fwd` reason should it have to be fetched.
    pub(crate) async fn lookup(&self) -> (Option<Arc<ObjectMeta>>, String, Fwd) {
        match self.store().get(&self.key).await {
            Some(Entry::Object(m)) => (Some(m), self.key.clone(), Fwd::Stale),
            Some(Entry::Vary(names)) => {
                let vkey = variant_key(&self.key, &names, self.end_to_end());
                match self.store().get(&vkey).await {
                    Some(Entry::Object(m)) => (Some(m), vkey, Fwd::Stale),
                    _ => (None, vkey, Fwd::VaryMiss),
                }
            }
            _ => (None, self.key.clone(), Fwd::UriMiss),
        }
    }
}
