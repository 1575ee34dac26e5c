//! The request path's state: [`Shared`] by every worker (routes, store, fills, limits,
//! lifecycle, load meter, access log) and [`Local`] to one worker (its `!Send` origin clients).
//! Built once by [`run`](crate::run); every step of the flow reads it, none owns it.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderValue;

use crate::access_log::AccessLog;
use crate::cache::store::Store;
use crate::drain::Lifecycle;
use crate::fill::Fills;
use crate::limits::RequestLimits;
use crate::load::LoadMeter;
use crate::origin::{HostRoute, Origins};

/// State shared by all workers.
#[derive(Debug)]
pub struct Shared {
    /// Cache name in `Cache-Status` (the edge id).
    pub name: String,
    /// Our `Via` member, e.g. `1.1 use1`.
    pub via: HeaderValue,
    /// Lower-case host name or alias → index into `routes`.
    pub hosts: HashMap<String, usize>,
    /// Hosts and their origins.
    pub routes: Arc<Vec<HostRoute>>,
    /// The cache.
    pub store: Arc<Store>,
    /// In-flight fills.
    pub fills: Arc<Fills>,
    /// `cache.fill_wait_timeout`.
    pub fill_wait: Duration,
    /// Keys whose last response could not be stored (`cache.hit_for_miss`).
    pub hit_for_miss: Arc<crate::hit_for_miss::HitForMiss>,
    /// `cache.max_vary_variants`.
    pub max_vary_variants: usize,
    /// `http.body_read_timeout`.
    pub body_read_timeout: Duration,
    /// `http.max_body_size`.
    pub max_body: u64,
    /// Serving / draining (`/healthz` answers 503 while draining).
    pub lifecycle: Arc<Lifecycle>,
    /// Load accounting for reports.
    pub load: Arc<LoadMeter>,
    /// Request-shape limits (431/413/400).
    pub limits: RequestLimits,
    /// The access log (possibly disabled).
    pub access_log: AccessLog,
    /// Per-host tenant rules (rate limits, geo, CORS, signed URLs, header rules).
    pub tenants: crate::tenant::Tenants,
    /// HTTP → HTTPS redirects and HSTS per host.
    pub https: crate::https::HttpsPolicy,
    /// This edge's PoP and shield regions (`[cluster]`), if any.
    pub pop: Option<Arc<crate::pop::Pop>>,
}

/// Per-worker state (awc clients are `!Send`).
pub struct Local {
    /// This worker's origin clients.
    pub origins: Rc<Origins>,
}

impl std::fmt::Debug for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Local").finish()
    }
}
