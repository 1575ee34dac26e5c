//! The CDN edge: an HTTP(S) caching reverse proxy (actix-web, rustls) on a foyer hybrid
//! cache, following RFC 9111.
//!
//! Modules in the order a request flows through them (Flow 2 in ARCHITECTURE.md):
//!
//! * [`state`]: what every step reads: [`state::Shared`] by all workers, [`state::Local`] per
//!   worker (its origin clients).
//! * [`limits`]: 431/413/400 before anything else (path checks by [`normalise`]).
//! * [`handler`]: dispatch: limits → context → GET/HEAD to the cache (lookup → plan → serve
//!   hit | stale + background refresh | revalidate | fill), other methods to [`pass`].
//! * [`context`]: host → route, normalised URL and key, the lookup that follows Vary.
//! * [`tenant`]: per-host rules before the cache — client address (trusted proxies), rate
//!   limits, geo allow/deny, CORS preflight, signed URLs — and header rules after it.
//! * [`normalise`] (`cdn_shared::normalise`, shared with the router's purge checks): the one
//!   path/query normaliser (RFC 3986 §6.2.2) behind keys, request checks, signed URL
//!   prefixes and purge selectors.
//! * [`cache::key`]: normalised `scheme://host/path?query` (+ configured headers, + Vary).
//! * [`cache::store`]: foyer (memory + disk) on its own runtime; purge seams `remove`,
//!   `mark_stale`, [`cache::store::IndexHook`].
//! * [`cache::policy`]: RFC 9111 / 9213 / 5861 decisions (pure, `now` passed in).
//! * [`plan`]: lookup → plan; client conditionals (412, 304) and `Range`/`If-Range` (pure).
//! * [`follow`]: join the in-flight fill: lead, or follow the leader (one retry); a key
//!   [`hit_for_miss`] remembers as not storable skips the join.
//! * [`hit_for_miss`]: the keys whose last response the origin did not let us store
//!   (`cache.hit_for_miss`): their misses fetch at once instead of queueing behind a fill.
//! * [`fill`]: the in-flight table (leader/followers, wait timeout, leader dropped ⇒ retry).
//! * [`lead`]: the leader's origin fetch (conditional when revalidating) and what it publishes.
//! * [`ranged`]: ranged fills — a range of an object not stored fetches only its chunks.
//! * [`upstream`]: the fill's fetch (called by [`lead`] and [`pass`]): with `[cluster]` the
//!   targets [`pop`] names in order, then the origin; a peer's broken body resumed from the
//!   origin.
//! * [`pop`]: with `[cluster]`, where a fill goes — the key's owner in this PoP (rendezvous
//!   hashing with bounded load), a shield PoP, then the origin; health/load probes of the
//!   members; Flow 4 in ARCHITECTURE.md.
//! * [`origin`]: per-worker awc clients with timeouts and rustls.
//! * [`interim`]: origin connections (TLS included) that drop 1xx interim responses before awc
//!   reads them.
//! * [`after_origin`]: what to do with the origin's answer: 304 refresh, stale-if-error,
//!   store, or stream unstored (pure; the one place stale-if-error is decided).
//! * [`writer`]: the store writer: chunks, then the meta entry, while followers read.
//! * [`render`]: responses from a stored object, a fill in progress or the origin
//!   (conditionals, ranges, `Age`, `Via`, `Cache-Status`, `X-Cache`).
//! * [`body`]: bodies by range from the fill, the chunks, or the origin.
//! * [`compress`]: br/zstd/gzip variants of compressible hits (`[hosts.compress]`):
//!   compress once from the stored identity body, stored under a derived key.
//! * [`negotiate`]: `Accept-Encoding` (pure): the coding a client gets, and the bucket a
//!   request falls into in a key that varies on it.
//! * [`pass`]: pass-through (unsafe methods, unshareable answers) and invalidation.
//! * [`account`]: load accounting, request and origin-fetch metrics, the access-log line.
//! * [`cache::hot`]: chunk hit counts: when a disk-only chunk is copied into memory.
//! * [`cache::meta`]: the stored entry format (CRC32-checked on load from disk).
//! * [`headers`]: hop-by-hop, `Surrogate-*`, tags, `Content-Length`, `Cache-Status`,
//!   `X-Cache`, `Via`.
//! * [`error`]: the error type and the one function mapping errors to responses.
//! * [`https`]: per host, plain HTTP → HTTPS redirect (301/308) and HSTS (`[hosts.tls]`).
//! * [`tls`]: rustls configs (ring provider): certificates chosen by SNI (the host's own from
//!   `[hosts.tls]`, else the `[tls]` default), TLS 1.2/1.3, HTTP/2 and HTTP/1.1 by ALPN.
//! * [`tls_reload`]: certificates reloaded on SIGHUP and when their files change, without
//!   dropping connections (a bad file is refused and logged; the old ones keep serving).
//!
//! Operating the edge (helper modules): [`load`]
//! (load accounting), [`metrics`], [`access_log`], [`purge`] (tag/prefix/URL index and the
//! purge API), [`admin`] (admin listener: `/healthz`, `/metrics`, purge; role tokens),
//! [`admin_tls`] (its optional HTTPS, reloaded on SIGHUP), [`report`] (health
//! reports to routers), [`drain`] (SIGTERM sequence).
//!
//! # Response headers
//!
//! * `Cache-Status` (RFC 9211), cache name = `edge.id`: `<id>; hit; ttl=N` for a fresh hit
//!   (also a stale hit with `detail=stale-while-revalidate`), or `<id>; fwd=<reason>;
//!   fwd-status=<origin status>[; stored][; collapsed][; ttl=N][; detail=…]` where reason is
//!   `uri-miss` (nothing stored), `vary-miss` (another variant stored), `stale` (revalidated,
//!   or stale served on error with `detail=stale-if-error`), `bypass` (unsafe method passed
//!   through), `request` (errors / unshared responses), `peer` (filled from the key's owner in
//!   the PoP) or `shield` (filled from the host's shield PoP). `collapsed` = this request rode on
//!   another request's origin fetch. `detail` on a miss that was not stored names why
//!   (`no-store`, `private`, `set-cookie`, `authorization`, `no-freshness`, `too-large`, …).
//! * `X-Cache: HIT | MISS | STALE | REVALIDATED | BYPASS`.
//! * `Age` (RFC 9111 §4.2.3, corrected age plus resident time), `Via: 1.1 <edge id>`
//!   appended.
//! * Removed before the client sees a response: hop-by-hop headers, `Surrogate-Control`,
//!   `Surrogate-Key`, `Cache-Tag` (tags are kept in the stored entry for purge); `Set-Cookie`
//!   is never stored (responses carrying it are not stored unless `cache_set_cookie`).
//!
//! # Config semantics (`[cache]`, `[[hosts]]`; see `cdn_shared::config::edge`)
//!
//! * Unknown `Host` → `421 Misdirected Request` with a plain-text reason; never forwarded.
//!   `GET /healthz` with an unknown Host answers the health (200 `serving`/503 `draining`).
//! * Key: `scheme://<host name>/<normalised path>?<query per hosts.query>` plus
//!   `hosts.key_headers` values; aliases share the host name's entries. The origin is asked
//!   for exactly the normalised path and query. Normalisation ([`normalise`]): unreserved
//!   escapes decoded, other escapes upper-cased, raw characters outside `pchar` encoded, dot
//!   segments removed; a path with `..` above `/`, a bad escape or `%00` is refused (400),
//!   never clamped; a query refuses nothing (a stray `%` becomes `%25`).
//! * Freshness: `CDN-Cache-Control` → `Surrogate-Control` → `s-maxage` → `max-age` →
//!   `Expires` → heuristic (`cache.heuristic_fraction` × (Date − Last-Modified), capped at
//!   `cache.heuristic_max`) → `hosts.default_ttl` → not stored. `no-store`/`private` → not
//!   stored; `no-cache` → stored, revalidated on every use; `must-revalidate`,
//!   `proxy-revalidate`, `s-maxage` → never served stale. Client `Cache-Control` request
//!   directives are ignored (a CDN shields its origin).
//! * Stale: `stale-while-revalidate` / `stale-if-error` from the origin, else `hosts.grace`
//!   for both. stale-if-error covers connect errors, timeouts, resets and 5xx answers.
//! * Coalescing: one origin fetch per key; followers wait at most `cache.fill_wait_timeout`
//!   for the response head (then stale if allowed, else 504), then stream the same bytes.
//!   At most `cache.max_inflight_fills` fills (more → stale or 503).
//! * Bodies up to `cache.chunk_size` are stored inline; larger ones as chunks of
//!   `cache.chunk_size` plus a meta entry written last. Objects above `max_object_size`
//!   (per host or `[cache]`) are passed through uncached.
//! * Unsafe methods (POST, PUT, DELETE, PATCH, …) pass through; a non-error answer
//!   invalidates the stored URL and same-host `Location`/`Content-Location`. Request bodies
//!   are buffered up to `http.max_body_size` (413 above).
//! * Server errors (5xx except 501) and 206 answers are never stored; `Vary: *` is never
//!   stored; a response that varies is stored per variant (the primary key holds the list
//!   of varying request headers).
//! * A body that left the cache before its entry (the disk tier reclaimed the chunks, the
//!   meta entry is still in memory): for a whole-object `GET` of a body of at most 16 chunks
//!   the first chunk is read before answering; gone or corrupt, the request is a miss, filled
//!   again whole and coalesced (`render::first_chunk`; `cdn_edge_body_refills_total`).
//!   Range requests, `HEAD` and longer bodies refetch only the chunks they read.
//! * Integrity: every stored body byte range carries a CRC32 checked when an entry is loaded
//!   from disk (foyer checks its own entry checksum too); a chunk that is missing or fails
//!   is refetched from the origin by `Range` (with `If-Match` on a strong ETag) and verified
//!   against the stored CRC before it is served. A mismatch ends the response early (the
//!   client sees a truncated body, never wrong bytes) and drops the stored object.
//! * Persistence: with `cache.disk_path`, entries are written to disk on insertion (foyer
//!   `WriteOnInsertion`), flushed on shutdown, and recovered at start (`RecoverMode::Quiet`).
//!
//! # Known limits
//!
//! * An origin body without `Content-Length` that grows past `max_object_size` aborts the
//!   response (it is neither stored nor passed through); an HTTP/1.1 origin body delimited
//!   only by closing the connection is refused with 502 (awc cannot read it).
//! * A client that falls behind an uncompleted fill reads from stored chunks; when the memory
//!   tier is small those may already be evicted and are refetched by range.

#![forbid(unsafe_code)]

pub mod access_log;
pub mod account;
pub mod admin;
pub mod admin_tls;
pub mod after_origin;
pub mod body;
pub mod bus;
pub mod cache;
pub mod compress;
pub mod context;
pub mod drain;
pub mod error;
pub mod fill;
pub mod follow;
pub mod handler;
pub mod headers;
pub mod hit_for_miss;
pub mod https;
pub mod interim;
pub mod lead;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod negotiate;
pub use cdn_shared::normalise;
pub mod origin;
pub mod pass;
pub mod plan;
pub mod pop;
pub mod purge;
pub mod ranged;
pub mod render;
pub mod report;
pub mod state;
pub mod tenant;
pub mod tls;
pub mod tls_reload;
pub mod upstream;
pub mod writer;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::http::header::HeaderValue;
use actix_web::{web, App, HttpServer};
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::shutdown::Shutdown;
use cdn_shared::telemetry::{self, Proto};

use crate::cache::store::Store;
use crate::error::EdgeError;
use crate::fill::Fills;
use crate::origin::{HostRoute, Origins};
use crate::state::{Local, Shared};

/// The sockets `run` serves, bound by the caller (port 0 works).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain HTTP client listeners.
    pub http: Vec<TcpListener>,
    /// HTTPS client listeners (needs `[tls]`).
    pub https: Vec<TcpListener>,
    /// The admin listener.
    pub admin: Option<TcpListener>,
}

/// `http.send_timeout` on a client connection: `TCP_USER_TIMEOUT`, so a client that stops
/// reading (its window stays closed, our data unacknowledged) is dropped by the kernel instead
/// of holding the connection and its response forever.
fn set_send_timeout(io: &dyn std::any::Any, t: std::time::Duration) {
    let r = if let Some(s) = io.downcast_ref::<actix_rt::net::TcpStream>() {
        socket2::SockRef::from(s).set_tcp_user_timeout(Some(t))
    } else if let Some(s) =
        io.downcast_ref::<actix_tls::accept::rustls_0_23::TlsStream<actix_rt::net::TcpStream>>()
    {
        socket2::SockRef::from(s.get_ref().0).set_tcp_user_timeout(Some(t))
    } else {
        return;
    };
    if let Err(e) = r {
        tracing::debug!(error = %e, "could not set the send timeout");
    }
}

/// Bind every configured listener and log `listening proto=http name=<http|https|admin>
/// addr=…` for each.
pub fn bind(config: &EdgeConfig) -> std::io::Result<Listeners> {
    let mut l = Listeners::default();
    for a in &config.http.listen {
        let s = TcpListener::bind(a)?;
        telemetry::listening(Proto::Http, "http", s.local_addr()?);
        l.http.push(s);
    }
    if let Some(tls) = &config.tls {
        for a in &tls.listen {
            let s = TcpListener::bind(a)?;
            telemetry::listening(Proto::Http, "https", s.local_addr()?);
            l.https.push(s);
        }
    }
    let s = TcpListener::bind(config.admin.listen)?;
    telemetry::listening(Proto::Http, "admin", s.local_addr()?);
    l.admin = Some(s);
    Ok(l)
}

/// The port HTTP → HTTPS redirects point at: `tls.redirect_port`, else the first HTTPS
/// listener's (as bound: port 0 works), else 443.
fn https_port(config: &EdgeConfig, listeners: &Listeners) -> u16 {
    let t = config.tls.as_ref();
    t.and_then(|t| t.redirect_port)
        .or_else(|| {
            listeners
                .https
                .first()
                .and_then(|l| l.local_addr().ok())
                .map(|a| a.port())
        })
        .or_else(|| t.and_then(|t| t.listen.first()).map(|a| a.port()))
        .unwrap_or(443)
}

/// Everything `--check-config` validates beyond the schema: TLS files and origin URLs.
pub fn check(config: &EdgeConfig) -> Result<(), EdgeError> {
    tls::install_provider();
    tls::Certs::load(config)
        .map_err(|e| EdgeError::Tls(format!("at key `{}`: {}", e.key, e.message)))?;
    for (i, h) in config.hosts.iter().enumerate() {
        HostRoute::new(i, h, &config.cache)?;
        if h.origin.starts_with("https://") {
            tls::client_config(h.tls_verify, h.tls_ca.as_deref())?;
        }
    }
    tenant::Tenants::new(config)?;
    admin_tls::AdminCert::load(&config.admin)?;
    if let Some(ca) = &config.report.tls_ca {
        tls::client_config(true, Some(ca))
            .map_err(|e| EdgeError::Config(format!("report.tls_ca: {e}")))?;
    }
    if let Some(bus) = &config.bus {
        bus.check_files()
            .map_err(|e| EdgeError::Config(format!("at key `{}`: {}", e.key, e.message)))?;
    }
    if let Some(dir) = &config.cache.disk_path {
        usable_dir(dir).map_err(|e| {
            EdgeError::Config(format!("at key `cache.disk_path` ({}): {e}", dir.display()))
        })?;
    }
    if let (true, Some(file)) = (config.access_log.enabled, &config.access_log.path) {
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        if !parent.is_dir() {
            return Err(EdgeError::Config(format!(
                "at key `access_log.path` ({}): {} is not a directory",
                file.display(),
                parent.display()
            )));
        }
    }
    Ok(())
}

/// Whether the cache can live in `dir`: an existing directory we can create files in, or a path
/// whose nearest existing ancestor is a directory (the edge creates the rest at start).
fn usable_dir(dir: &std::path::Path) -> Result<(), String> {
    if dir.exists() {
        if !dir.is_dir() {
            return Err("exists and is not a directory".into());
        }
        let probe = dir.join(format!(".cdn-edge-check-{}", std::process::id()));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| format!("cannot create files in it: {e}"))?;
        let _ = std::fs::remove_file(&probe);
        return Ok(());
    }
    let mut up = dir.parent();
    while let Some(p) = up.filter(|p| !p.as_os_str().is_empty()) {
        if p.exists() {
            return if p.is_dir() {
                Ok(())
            } else {
                Err(format!("{} is not a directory", p.display()))
            };
        }
        up = p.parent();
    }
    Ok(())
}

/// Serve until `shutdown` is cancelled, then drain (healthz → 503, stop accepting, finish
/// in-flight requests within `lifecycle.shutdown_grace`) and close the cache (flushing it
/// to disk). Must run inside an actix system (`actix_rt::System`).
pub async fn run(
    config: EdgeConfig,
    listeners: Listeners,
    shutdown: Shutdown,
) -> Result<(), EdgeError> {
    // Stamp the certificate files before they are loaded, so a change during start-up is seen.
    let cert_watch = tls_reload::Watch::new(&config);
    check(&config)?;
    let routes: Arc<Vec<HostRoute>> = Arc::new(
        config
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostRoute::new(i, h, &config.cache))
            .collect::<Result<_, _>>()?,
    );
    // Builds the per-worker clients once here so their errors surface before serving.
    let cdn_loop = HeaderValue::from_str(&config.edge.id)
        .map_err(|_| EdgeError::Cache("edge.id is not a valid header value".into()))?;
    Origins::new(routes.clone(), cdn_loop.clone())?;
    let mut hosts = HashMap::new();
    for (i, h) in config.hosts.iter().enumerate() {
        hosts.insert(h.name.to_ascii_lowercase(), i);
        for a in &h.aliases {
            hosts.insert(a.to_ascii_lowercase(), i);
        }
    }
    // Hosts with a share of their own (`[hosts.cache]`) get a partition each.
    let shares: Vec<cache::store::HostShare> = config
        .hosts
        .iter()
        .filter_map(|h| {
            h.cache.as_ref().map(|c| cache::store::HostShare {
                host: h.name.to_ascii_lowercase(),
                memory: c.memory.as_u64(),
                disk: c.disk.as_u64(),
            })
        })
        .collect();
    let store = Store::open_partitioned(
        &config.cache,
        cache::store::Placement::for_config(&config.cache),
        &shares,
    )
    .await?;
    let index = match &config.cache.disk_path {
        Some(dir) => purge::Index::open(dir, purge::IndexOptions::default())
            .map_err(|e| EdgeError::Io(format!("purge index in {}: {e}", dir.display())))?,
        None => purge::Index::in_memory(),
    };
    store.set_index_hook(index.clone());
    // The index follows what the cache holds (purge/collect.rs).
    let gc_stop = Shutdown::new();
    {
        let gc_store = store.clone();
        purge::collect::spawn(
            index.clone(),
            move |k| gc_store.contains(k),
            purge::collect::CollectOptions::default(),
            gc_stop.clone(),
        )
        .map_err(|e| EdgeError::Io(format!("purge index collector: {e}")))?;
    }
    index.set_query_policies(
        config
            .hosts
            .iter()
            .map(|h| (h.name.to_ascii_lowercase(), h.query)),
    );
    index.set_aliases(config.hosts.iter().flat_map(|h| {
        h.aliases
            .iter()
            .map(move |a| (a.to_ascii_lowercase(), h.name.to_ascii_lowercase()))
    }));
    // With [bus]: missed purges are applied before anything is served (bus.rs).
    let bus = match &config.bus {
        Some(section) => Some(
            bus::start(
                &config,
                section,
                store.clone(),
                index.clone(),
                shutdown.clone(),
            )
            .await
            .map_err(|e| EdgeError::Io(format!("fleet bus: {e}")))?,
        ),
        None => None,
    };
    // The recorder first: gauges set from here on (cdn_edge_draining = 0) are exported.
    let prometheus = metrics::install();
    let lifecycle = drain::Lifecycle::new();
    let load = load::LoadMeter::new();
    let pop = pop::Pop::new(&config)
        .map_err(|e| EdgeError::Config(e.to_string()))?
        .map(Arc::new);
    let pop_probe = pop
        .as_ref()
        .map(|p| pop::probe::spawn(p.clone(), load.clone(), shutdown.clone()));
    let access_log = access_log::AccessLog::start(&config.access_log)
        .map_err(|e| EdgeError::Io(format!("access log: {e}")))?;
    let shared = web::Data::new(Shared {
        name: config.edge.id.clone(),
        via: HeaderValue::from_str(&format!("1.1 {}", config.edge.id))
            .map_err(|_| EdgeError::Cache("edge.id is not a valid header value".into()))?,
        hosts,
        routes: routes.clone(),
        store: store.clone(),
        fills: Fills::new(config.cache.max_inflight_fills),
        fill_wait: config.cache.fill_wait_timeout,
        hit_for_miss: Arc::new(hit_for_miss::HitForMiss::new(config.cache.hit_for_miss)),
        max_vary_variants: config.cache.max_vary_variants,
        body_read_timeout: config.http.body_read_timeout,
        max_body: config.http.max_body_size.as_u64(),
        lifecycle: lifecycle.clone(),
        load: load.clone(),
        limits: limits::RequestLimits::from_config(&config.http),
        access_log,
        tenants: tenant::Tenants::new(&config)?,
        https: https::HttpsPolicy::new(&config, https_port(&config, &listeners)),
        pop: pop.clone(),
    });
    // HTTP/2 limits (advertised in SETTINGS, enforced by h2; vendored actix-http patch).
    actix_http::h2::set_h2_limits(
        config.http.h2_max_concurrent_streams,
        u32::try_from(config.http.max_header_size.as_u64()).unwrap_or(u32::MAX),
    );
    let grace = config.lifecycle.shutdown_grace;
    let app_shared = shared.clone();
    let conn_load = load.clone();
    let send_timeout = config.http.send_timeout;
    let mut server = HttpServer::new(move || {
        let origins = Origins::new(routes.clone(), cdn_loop.clone())
            .expect("origin clients validated at start-up");
        App::new()
            .app_data(app_shared.clone())
            .app_data(web::Data::new(Local { origins }))
            .default_service(web::to(handler::handle))
    })
    .on_connect(move |io, ext| {
        ext.insert(Arc::new(conn_load.connection_opened()));
        set_send_timeout(io, send_timeout);
    })
    .max_connections(config.http.max_connections)
    // TCP_NODELAY on client connections, as nginx's `tcp_nodelay on`: HTTP/2 writes a response
    // as several small writes (HEADERS, DATA, each its own TLS record), and Nagle held the
    // second until the client's delayed ACK — ~40 ms per request, HTTP/2 capped at ~3k
    // requests/s (docs/bench/tls.md).
    .tcp_nodelay(true)
    .client_request_timeout(config.http.header_read_timeout)
    .keep_alive(config.http.keep_alive)
    .disable_signals()
    .shutdown_timeout(grace.as_secs().max(1));
    if config.http.workers > 0 {
        server = server.workers(config.http.workers);
    }
    let io = |e: std::io::Error| EdgeError::Io(e.to_string());
    for l in listeners.http {
        server = server.listen(l).map_err(io)?;
    }
    let mut cert_reload = None;
    if !listeners.https.is_empty() {
        let certs = tls::Certs::load(&config)
            .map_err(|e| EdgeError::Tls(format!("at key `{}`: {}", e.key, e.message)))?
            .ok_or_else(|| EdgeError::Tls("https listeners given without [tls]".into()))?;
        let resolver = tls::CertResolver::new(certs);
        let tls_cfg = resolver.server_config()?;
        for l in listeners.https {
            server = server.listen_rustls_0_23(l, tls_cfg.clone()).map_err(io)?;
        }
        cert_reload = Some(tls_reload::spawn(
            resolver,
            config.clone(),
            cert_watch,
            shutdown.clone(),
        ));
    }
    let server = server.run();
    let handle = server.handle();
    let main = actix_rt::spawn(server);
    // SIGHUP must never end the edge (the signal's default action, which systemd counts as a
    // clean exit and does not restart): with TLS it reloads the certificates (tls_reload,
    // admin_tls, which listen for it too); without, there is nothing to reload.
    {
        let stop = shutdown.clone();
        let tls = cert_reload.is_some();
        if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            actix_rt::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        got = hup.recv() => {
                            if got.is_none() {
                                return;
                            }
                            if !tls {
                                tracing::info!("SIGHUP: no TLS certificates to reload");
                            }
                        }
                    }
                }
            });
        }
    }

    let admin = match listeners.admin {
        Some(l) => {
            let ctx = admin::AdminContext {
                lifecycle: lifecycle.clone(),
                index: index.clone(),
                target: store.clone(),
                access: admin::Access::from_config(&config.admin),
                metrics: prometheus,
            };
            let tls = match admin_tls::AdminCert::load(&config.admin)? {
                Some(cert) => {
                    cert.spawn_reload(shutdown.clone());
                    Some(cert.server_config()?)
                }
                None => None,
            };
            let srv = admin::serve(l, ctx, tls).map_err(io)?;
            let h = srv.handle();
            Some((h, actix_rt::spawn(srv)))
        }
        None => None,
    };
    let reporter_stop = Shutdown::new();
    let stats_store = store.clone();
    let stats_index = index.clone();
    let mut reporter_config = report::ReporterConfig::from_config(&config);
    let sink: Arc<dyn report::ReportSink> = match &bus {
        Some(b) => {
            reporter_config.routers = vec![bus::NatsReportSink::target(
                &config.edge.region,
                &config.edge.id,
            )];
            Arc::new(bus::NatsReportSink::new(b.client.clone()))
        }
        None => Arc::new(report::HttpSink::with_tls(
            config.report.token.clone(),
            tls::client_config(true, config.report.tls_ca.as_deref())
                .map_err(|e| EdgeError::Config(format!("report.tls_ca: {e}")))?,
        )),
    };
    let builder = report::ReportBuilder::new(
        reporter_config,
        load.clone(),
        lifecycle.clone(),
        Arc::new(move || {
            let s = stats_store.stats();
            for (host, hs) in stats_store.host_stats() {
                ::metrics::gauge!(metrics::HOST_CACHE_MEMORY_BYTES, "host" => host)
                    .set(hs.memory_bytes as f64);
            }
            report::CacheStats {
                objects: stats_index.len() as u64,
                memory_bytes: s.memory_bytes,
                disk_bytes: s.disk_bytes,
            }
        }),
    );
    let reporter = report::start(builder, sink, reporter_stop.clone()).map_err(io)?;
    telemetry::ready("edge");

    shutdown.cancelled().await;
    let outcome = drain::drain_sequence(
        &lifecycle,
        reporter.push_now(),
        config.report.timeout,
        async {
            handle.stop(true).await;
            let _ = main.await;
        },
        grace,
    )
    .await;
    tracing::info!(
        reported = outcome.reported,
        finished_in_grace = outcome.finished_in_grace,
        "drained"
    );
    if let Some((h, t)) = admin {
        h.stop(true).await;
        let _ = t.await;
    }
    reporter_stop.cancel();
    gc_stop.cancel();
    if let Some(t) = cert_reload {
        let _ = t.await;
    }
    if let Some(t) = pop_probe {
        let _ = t.await;
    }
    if let Some(b) = bus {
        b.join().await;
    }
    store.close().await;
    index.sync();
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::usable_dir;

    #[test]
    fn a_cache_dir_must_be_a_directory_or_creatable_under_one() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(usable_dir(dir.path()), Ok(()));
        assert_eq!(usable_dir(&dir.path().join("new/deeper")), Ok(()));
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(usable_dir(&file).unwrap_err().contains("not a directory"));
        assert!(usable_dir(&file.join("sub"))
            .unwrap_err()
            .contains("is not a directory"));
        // Nothing is left behind by the probe.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
