//! The dns-router: an authoritative GeoDNS server for the CDN's zones.
//!
//! Modules in the order a query flows through them:
//!
//! * [`listen`]: bind the UDP (SO_REUSEPORT, one per thread) and TCP sockets; `listening` lines.
//! * [`udp`] / [`tcp`]: the transports — a blocking loop per UDP socket (the fast path), and
//!   RFC 7766 TCP served by hickory-server (framing, pipelining, idle timeout) behind our
//!   accept loop (connection limit, shutdown).
//! * [`hickory`]: the request path as a hickory-server `RequestHandler` (TCP): our wire
//!   answer re-encoded by hickory, question bytes (case) kept.
//! * [`handler`]: one packet → one response: decode, protocol checks (opcode, EDNS version,
//!   class, meta types), then the decision; UDP and TCP only move bytes.
//! * [`cookies`]: DNS Cookies (RFC 7873; server cookies as RFC 9018, SipHash-2-4 with a
//!   rotating secret): judged in `handler`, a valid server cookie exempts an answer from RRL.
//! * [`wire`]: decode header, question and OPT/ECS only (FORMERR / drop on bad input); the DNS
//!   type and class numbers (`wire::rtype`, `wire::class`).
//! * [`decide`]: the one decision per question — zone dispatch, CNAME chains, static records,
//!   wildcards, NODATA/NXDOMAIN, referrals, REFUSED, and service answers — run by DNS (UDP and
//!   TCP), by explain and by the services view.
//! * [`zone`]: zones from config (SOA, NS + glue, static records, services, wildcards,
//!   delegations) and the RFC 1034 lookup.
//! * [`answer_cache`]: the per-thread cache of service answers (bounded set-associative
//!   tables): it stores `route` decisions and never decides.
//! * [`route`]: a service's decision — which address locates the client (ECS policy),
//!   `cdn_geo::locate`, candidates from the live [`health`] view, `cdn_geo::select::choose`.
//! * [`answer`]: write the response: AA, negative answers with SOA (RFC 2308), OPT only when
//!   asked, ECS echo with scope (RFC 7871), TC=1 when too big.
//! * [`rrl`]: response-rate limiting of UDP answers (token buckets per client network in a
//!   fixed table per UDP thread; drop, or slip with TC=1).
//! * [`querylog`]: metrics per answer and the optional JSON-lines query log.
//!
//! Around the query path:
//!
//! * [`snapshot`]: config → routing snapshot (zones, services, edges, locator), validated.
//! * [`live`]: the live state — snapshot ([`Router`]), health, config, config path, reload
//!   lock — and the one way it changes ([`Live::reload`], [`Live::reload_geo`]).
//! * [`admin`]: the admin HTTP API, one file per concern under `admin/` (server and errors;
//!   `auth`, `edges`, `services`, `reports`, `reload`, `purge`) ([`cdn_shared::access`]: role tokens and
//!   read access; [`admin_tls`]: HTTPS with a certificate a reload replaces); [`explain`] renders
//!   `GET /api/v1/explain` from the decision; [`ui`]: the fleet status page served by the admin
//!   listener.
//! * [`health`]: edge health — `state` (pure transitions), `reason`, `probe`, `ingest`
//!   (pushed reports), `gauges` (per-edge gauges of `/metrics`); [`metrics`]: the recorder and
//!   metric names.
//! * [`reload`], [`watch`]: SIGHUP, and the geo file watcher (both call [`live`]).
//! * [`error`]: the crate's error type.
//!
//! Module dependencies point one way: `live` uses neither `admin`, `reload` nor `watch`;
//! `health` uses `metrics` for names only.
//!
//! [`run`] wires them: it takes sockets bound by [`listen::bind`] (tests bind 127.0.0.1:0) and
//! serves until the shutdown token is cancelled.
//!
//! ## CLI
//!
//! `dns-router --config router.toml [--check-config] [--log-format human|json] [--log-level info]`.
//! `--check-config` parses the config, the record data, the network map and the database, then
//! exits 0; any config error exits 64 with a message naming the key.
#![forbid(unsafe_code)]

pub mod admin;
pub mod admin_tls;
pub mod answer;
pub mod answer_cache;
pub mod bus;
pub mod cookies;
pub mod decide;
pub mod error;
pub mod explain;
pub mod handler;
pub mod health;
pub mod hickory;
pub mod listen;
pub mod live;
pub mod metrics;
pub mod querylog;
pub mod reload;
pub mod route;
pub mod rrl;
pub mod snapshot;
pub mod tcp;
pub mod udp;
pub mod ui;
pub mod watch;
pub mod wire;
pub mod zone;

use std::path::{Path, PathBuf};

use arc_swap::ArcSwap;
use std::sync::Arc;
use std::time::Duration;

use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

pub use error::RouterError;
pub use listen::{bind, Sockets};
pub use live::{Live, Router};

/// What [`check`] built from a config: the routing snapshot (zones, services, network map,
/// database), handed to [`run_checked`] so that start-up reads the geo files once.
#[derive(Debug)]
pub struct Checked {
    snapshot: snapshot::Snapshot,
    geo_baseline: watch::Baseline,
}

/// Validate everything `run` would build from `config` (zones and record data, network map,
/// database, probe CA file) without binding anything: the `--check-config` path. Relative paths
/// resolve against `base_dir`.
pub fn check(config: &RouterConfig, base_dir: &Path) -> Result<Checked, RouterError> {
    // Stamped before they are read: a geo file replaced from here on is reloaded by the
    // watcher (`geo.reload_check_interval`), however soon after start-up that happens.
    let geo_baseline = watch::Baseline::take(config, base_dir);
    let snapshot = snapshot::build_snapshot(config, base_dir, 1)?;
    health::probe::check_tls(&config.health, base_dir)?;
    health::probe::check_urls(&config.edges)?;
    admin_tls::check(&config.admin, base_dir)?;
    if let Some(bus) = &config.bus {
        bus.check_files()?;
    }
    Ok(Checked {
        snapshot,
        geo_baseline,
    })
}

/// Serve DNS and the admin API on `sockets` until `shutdown` is cancelled, then stop within
/// `lifecycle.shutdown_grace`. `config_path` is the file reloads (SIGHUP, `POST
/// /api/v1/reload`) re-read; its directory resolves relative paths in the config (the current
/// directory when `None`). Call inside a tokio runtime.
pub async fn run(
    config: RouterConfig,
    config_path: Option<PathBuf>,
    sockets: Sockets,
    shutdown: Shutdown,
) -> Result<(), RouterError> {
    let base_dir = cdn_shared::config::config_dir(config_path.as_deref());
    let checked = check(&config, &base_dir)?;
    run_checked(config, checked, config_path, sockets, shutdown).await
}

/// [`run`] with the snapshot [`check`] already built from the same `config` and `config_path`
/// (the binary checks before it binds, so a bad config exits 64 with nothing started).
pub async fn run_checked(
    config: RouterConfig,
    checked: Checked,
    config_path: Option<PathBuf>,
    sockets: Sockets,
    shutdown: Shutdown,
) -> Result<(), RouterError> {
    let base_dir = cdn_shared::config::config_dir(config_path.as_deref());
    let config = live::resolve_paths(config, &base_dir);
    let _prometheus = metrics::install();
    cdn_shared::access::warn_deprecated(&config.admin);
    let health = health::HealthState::new(&config);
    let router = Router::from_snapshot(checked.snapshot, &base_dir, health.clone());
    let config = Arc::new(config);
    let probes = health::start(health.clone(), config.clone(), shutdown.clone());
    let log = match &config.dns.query_log {
        Some(p) => Some(
            querylog::QueryLog::open(&base_dir.join(p))
                .map_err(|e| RouterError::io(format!("open query log {}", p.display()), e))?,
        ),
        None => None,
    };

    let config_swap = Arc::new(ArcSwap::new(config.clone()));
    // With [bus]: operator state is read before the first query is answered.
    let (bus, bus_tasks) = match &config.bus {
        Some(section) => {
            let name = format!("router@{}", config.admin.listen);
            let (bus, tasks) = bus::start(
                section,
                name,
                health.clone(),
                config_swap.clone(),
                shutdown.clone(),
            )
            .await
            .map_err(|e| RouterError::io("start the fleet bus", std::io::Error::other(e)))?;
            (Some(bus), tasks)
        }
        None => (None, Vec::new()),
    };
    let mut threads = Vec::new();
    let mut tasks = Vec::new();
    let limits = tcp::TcpLimits {
        idle: config.dns.tcp_idle_timeout,
        max_connections: config.dns.tcp_max_connections,
        max_per_client: config.dns.tcp_max_connections_per_client,
        max_lifetime: config.dns.tcp_max_connection_lifetime,
    };
    for dns in sockets.dns {
        for sock in dns.udp {
            let t = udp::spawn(
                threads.len(),
                sock,
                router.clone(),
                log.clone(),
                shutdown.clone(),
            )
            .map_err(|e| RouterError::io("start udp thread", e))?;
            threads.push(t);
        }
        tasks.push(tokio::spawn(tcp::serve(
            dns.tcp,
            router.clone(),
            limits,
            log.clone(),
            shutdown.clone(),
        )));
    }
    let admin_cert = admin_tls::load(&config.admin)?.map(admin_tls::AdminCert::new);
    let live = Live::new(health.clone(), router.clone(), config_swap, config_path)
        .with_bus(bus)
        .with_admin_cert(admin_cert);
    let mut admin = admin::serve(sockets.admin, live.clone(), shutdown.clone())
        .map_err(|e| RouterError::io("start admin API", e))?;
    let geo_watch = watch::spawn(
        live.clone(),
        base_dir.clone(),
        checked.geo_baseline,
        shutdown.clone(),
    );
    let hup = reload::spawn_sighup(live, shutdown.clone());
    cdn_shared::telemetry::ready("dns-router");

    shutdown.cancelled().await;
    let grace = config.lifecycle.shutdown_grace;
    let stop = async move {
        for t in tasks {
            let _ = t.await;
        }
        for t in bus_tasks {
            let _ = t.await;
        }
        let _ = probes.await;
        let _ = hup.await;
        let _ = geo_watch.await;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
            admin.join();
        })
        .await;
    };
    if tokio::time::timeout(grace.max(Duration::from_millis(1)), stop)
        .await
        .is_err()
    {
        tracing::warn!("shutdown grace elapsed with work still running");
    }
    Ok(())
}
