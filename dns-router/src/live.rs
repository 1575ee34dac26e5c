//! The router's live state, in one place: the routing snapshot ([`Router`]: zones, services,
//! locator, swapped whole), edge health, the config (swapped by reloads), the config file
//! path, and the lock that serialises reloads. [`Live::reload`] (SIGHUP, `POST
//! /api/v1/reload`) and [`Live::reload_geo`] (the geo file watcher) are the one path by which
//! config and geo data change: the new snapshot is built beside the old one and swapped whole,
//! or refused with the old one kept.
//!
//! [`Live::reload`] re-reads the config file with `cdn_shared::config::load` (TOML + `CDN_*`
//! environment, validated), rebuilds the snapshot ([`Router::reload`]: the network map and
//! database files are re-read too), reconciles health ([`HealthState::reconcile`]: new edges
//! are probed at once, removed ones stop, remaining ones keep their state), then swaps the live
//! config. Nothing is swapped until everything has been built (including the probe TLS
//! settings: an unreadable `health.probe_ca_file` rejects the reload). [`Live::reload_geo`] is
//! the same rebuild without re-reading the config. Both are serialised by one lock and counted
//! in `cdn_config_reloads_total{result}`. Listener addresses (`dns.listen`, `admin.listen`)
//! and thread counts are bound at start; a change to them is reported as needing a restart.
//!
//! The admin API, the SIGHUP task ([`crate::reload`]) and the watcher ([`crate::watch`]) use
//! this module; it uses none of them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;

use cdn_shared::config::router::RouterConfig;
use cdn_shared::config::ConfigError;

use crate::error::RouterError;
use crate::health::HealthState;
use crate::metrics::names;
use crate::snapshot::{build_snapshot, Snapshot};

/// The routing snapshot in use, swapped whole on reload, and the health it is read with.
#[derive(Debug)]
pub struct Router {
    snapshot: ArcSwap<Snapshot>,
    health: Arc<HealthState>,
    base_dir: PathBuf,
    epochs: AtomicU64,
    precompiler: Arc<Precompiler>,
}

/// Builds the precompiled geo map of each new snapshot on a thread of its own, one at a time;
/// a snapshot already replaced by a newer one is skipped.
#[derive(Debug, Default)]
struct Precompiler {
    one_at_a_time: Mutex<()>,
    /// Epoch of the newest snapshot handed over.
    latest: AtomicU64,
}

impl Precompiler {
    fn start(self: &Arc<Self>, snap: Arc<Snapshot>) {
        self.latest.fetch_max(snap.epoch, Ordering::SeqCst);
        let me = self.clone();
        let spawned = std::thread::Builder::new()
            .name("geo-precompile".into())
            .spawn(move || {
                let _one = me.one_at_a_time.lock().unwrap_or_else(|p| p.into_inner());
                if me.latest.load(Ordering::SeqCst) == snap.epoch {
                    snap.precompile();
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the geo map build; clients are located per query");
        }
    }
}

impl Router {
    /// Build a router for `config`; relative geo paths are resolved against `base_dir`.
    pub fn new(
        config: &RouterConfig,
        base_dir: &Path,
        health: Arc<HealthState>,
    ) -> Result<Arc<Router>, RouterError> {
        let snap = build_snapshot(config, base_dir, 1)?;
        Ok(Router::from_snapshot(snap, base_dir, health))
    }

    /// A router serving `snap` (built by [`build_snapshot`] with epoch 1). Its precompiled geo
    /// map is built on a thread of its own (until it is attached, clients are located per
    /// query: same answers).
    pub fn from_snapshot(snap: Snapshot, base_dir: &Path, health: Arc<HealthState>) -> Arc<Router> {
        let snap = Arc::new(snap);
        let router = Arc::new(Router {
            epochs: AtomicU64::new(snap.epoch.max(1)),
            snapshot: ArcSwap::new(snap.clone()),
            health,
            base_dir: base_dir.to_path_buf(),
            precompiler: Arc::default(),
        });
        router.precompiler.start(snap);
        router
    }

    /// Replace zones, services and geo data with those of `config` (files re-read), then build
    /// the new snapshot's precompiled geo map on a thread of its own. On error the old snapshot
    /// keeps serving.
    pub fn reload(&self, config: &RouterConfig) -> Result<(), RouterError> {
        let epoch = self.epochs.fetch_add(1, Ordering::SeqCst) + 1;
        let snap = Arc::new(build_snapshot(config, &self.base_dir, epoch)?);
        self.snapshot.store(snap.clone());
        self.precompiler.start(snap);
        Ok(())
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The health state.
    pub fn health(&self) -> &Arc<HealthState> {
        &self.health
    }
}

/// Everything that changes while the router runs. Cheap to clone (shared handles).
#[derive(Clone)]
pub struct Live {
    /// Live edge health.
    pub health: Arc<HealthState>,
    /// The routing snapshot.
    pub router: Arc<Router>,
    /// The live config (swapped by reloads).
    pub config: Arc<ArcSwap<RouterConfig>>,
    /// The config file reloads re-read; `None` = reload unavailable.
    pub config_path: Option<PathBuf>,
    /// The fleet bus (`[bus]`): drains and purges go through it when set.
    pub bus: Option<Arc<crate::bus::RouterBus>>,
    /// The admin listener's certificate when it serves HTTPS (`admin.tls_cert`); a reload
    /// replaces it.
    pub admin_cert: Option<Arc<crate::admin_tls::AdminCert>>,
    reload_lock: Arc<Mutex<()>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("config_path", &self.config_path)
            .finish_non_exhaustive()
    }
}

/// What a successful reload loaded.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ReloadSummary {
    /// Always true (a failed reload is an error).
    pub reloaded: bool,
    /// Edges now configured.
    pub edges: usize,
    /// Services now configured.
    pub services: usize,
    /// Zones now configured.
    pub zones: usize,
    /// Settings that changed but only take effect after a restart.
    pub restart_needed_for: Vec<&'static str>,
}

/// Why a reload was refused (the old config keeps serving).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The process was started without a config file.
    #[error("no config file to reload (the router was started without --config)")]
    NoConfigFile,
    /// The new config is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The new config names files (records, network map, database) that do not load.
    #[error("{0}")]
    Router(#[from] crate::error::RouterError),
}

/// Paths in `config` that the router itself opens (not through [`crate::snapshot`]) made
/// absolute against `base_dir`, the config file's directory: `health.probe_ca_file`,
/// `admin.tls_cert`, `admin.tls_key`, the `[bus]` files.
pub fn resolve_paths(mut config: RouterConfig, base_dir: &Path) -> RouterConfig {
    crate::health::probe::resolve_paths(&mut config.health, base_dir);
    crate::admin_tls::resolve_paths(&mut config.admin, base_dir);
    if let Some(bus) = &mut config.bus {
        bus.resolve_paths(base_dir);
    }
    config
}

impl Live {
    /// The live state of a router started from `config` (read from `config_path`, if any).
    pub fn new(
        health: Arc<HealthState>,
        router: Arc<Router>,
        config: Arc<ArcSwap<RouterConfig>>,
        config_path: Option<PathBuf>,
    ) -> Self {
        Self {
            health,
            router,
            config,
            config_path,
            bus: None,
            admin_cert: None,
            reload_lock: Arc::new(Mutex::new(())),
        }
    }

    /// The same live state, with the admin listener serving HTTPS with `cert`.
    pub fn with_admin_cert(mut self, cert: Option<Arc<crate::admin_tls::AdminCert>>) -> Self {
        self.admin_cert = cert;
        self
    }

    /// The same live state, with drains and purges going through `bus`.
    pub fn with_bus(mut self, bus: Option<Arc<crate::bus::RouterBus>>) -> Self {
        self.bus = bus;
        self
    }

    /// Run `f` under the reload lock and count it in `cdn_config_reloads_total{result}`.
    fn serialised<T>(
        &self,
        f: impl FnOnce(&Live) -> Result<T, ReloadError>,
    ) -> Result<T, ReloadError> {
        let _one_at_a_time = self.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = f(self);
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!(names::CONFIG_RELOADS, "result" => label).increment(1);
        result
    }

    /// Rebuild the routing snapshot from the live config, re-reading its geo files
    /// (`geo.network_map`, `geo.database`). A file that does not load is logged and counted
    /// as a failed reload, and the old snapshot keeps serving. Serialised with
    /// [`Live::reload`].
    pub fn reload_geo(&self) -> Result<(), ReloadError> {
        let result = self.serialised(|live| {
            let config = live.config.load_full();
            live.router.reload(&config)?;
            Ok(())
        });
        match &result {
            Ok(()) => tracing::info!("geo files reloaded"),
            Err(e) => tracing::error!(error = %e,
                "geo file reload rejected; the old network map and database keep serving"),
        }
        result
    }

    /// Re-read, validate, rebuild and swap. Serialised: concurrent reloads run one after
    /// another.
    pub fn reload(&self) -> Result<ReloadSummary, ReloadError> {
        let result = self.serialised(Live::reload_locked);
        match &result {
            Ok(s) => tracing::info!(
                edges = s.edges,
                services = s.services,
                restart_needed_for = ?s.restart_needed_for,
                "config reloaded"
            ),
            Err(e) => {
                tracing::error!(error = %e, "config reload rejected; the old config keeps serving")
            }
        }
        result
    }

    fn reload_locked(&self) -> Result<ReloadSummary, ReloadError> {
        let path = self
            .config_path
            .as_deref()
            .ok_or(ReloadError::NoConfigFile)?;
        let base_dir = cdn_shared::config::config_dir(Some(path));
        let new: RouterConfig = resolve_paths(cdn_shared::config::load(Some(path))?, &base_dir);
        crate::health::probe::check_tls(&new.health, &base_dir)?;
        crate::health::probe::check_urls(&new.edges)?;
        let cert = crate::admin_tls::load(&new.admin)?;
        // Build first (may fail: nothing is swapped), then publish the config, then reconcile
        // health (which starts and stops probes).
        self.router.reload(&new)?;
        let old = self.config.load_full();
        let summary = ReloadSummary {
            reloaded: true,
            edges: new.edges.len(),
            services: new.services.len(),
            zones: new.zones.len(),
            restart_needed_for: restart_needed(&old, &new),
        };
        cdn_shared::access::warn_deprecated(&new.admin);
        if let (Some(holder), Some(cert)) = (&self.admin_cert, cert) {
            holder.replace(cert);
        }
        let added = new
            .edges
            .iter()
            .any(|e| !old.edges.iter().any(|o| o.id == e.id));
        let new = Arc::new(new);
        self.config.store(new.clone());
        self.health.reconcile(&new);
        // The bucket's drains and weights of edges this config adds (or adds back) were
        // skipped while they were unknown here: read it again for them.
        if let (true, Some(bus), Ok(rt)) = (added, &self.bus, tokio::runtime::Handle::try_current())
        {
            let (bus, health) = (bus.clone(), self.health.clone());
            rt.spawn(async move {
                // Retried with backoff (1 s doubling, ~1 min in all): the bus may be briefly
                // away; after that the next reconnection reads it.
                for attempt in 0..6u32 {
                    match bus.reread(&health).await {
                        Ok(n) => {
                            tracing::info!(keys = n, "operator state read again after a reload");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, "operator state not read again after a reload; retrying");
                            tokio::time::sleep(std::time::Duration::from_secs(1 << attempt)).await;
                        }
                    }
                }
            });
        }
        Ok(summary)
    }
}

fn restart_needed(old: &RouterConfig, new: &RouterConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.dns.listen != new.dns.listen {
        out.push("dns.listen");
    }
    if old.dns.udp_threads != new.dns.udp_threads {
        out.push("dns.udp_threads");
    }
    if old.dns.tcp_max_connections != new.dns.tcp_max_connections {
        out.push("dns.tcp_max_connections");
    }
    if old.dns.tcp_idle_timeout != new.dns.tcp_idle_timeout {
        out.push("dns.tcp_idle_timeout");
    }
    if old.dns.tcp_max_connections_per_client != new.dns.tcp_max_connections_per_client {
        out.push("dns.tcp_max_connections_per_client");
    }
    if old.dns.tcp_max_connection_lifetime != new.dns.tcp_max_connection_lifetime {
        out.push("dns.tcp_max_connection_lifetime");
    }
    if old.dns.query_log != new.dns.query_log {
        out.push("dns.query_log");
    }
    if old.admin.listen != new.admin.listen {
        out.push("admin.listen");
    }
    if old.bus != new.bus {
        out.push("bus");
    }
    if old.admin.tls_cert.is_some() != new.admin.tls_cert.is_some() {
        // HTTPS on or off (a new certificate or key file is taken at once).
        out.push("admin.tls_cert");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_is_named_only_for_settings_bound_at_start() {
        let base = "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n";
        let old: RouterConfig = cdn_shared::config::load_str(base).unwrap();
        assert!(restart_needed(&old, &old).is_empty());
        let new: RouterConfig = cdn_shared::config::load_str(&format!(
            "[dns]\nudp_threads = 3\nlisten = [\"127.0.0.1:5353\"]\n[admin]\nlisten = \"127.0.0.1:9\"\n{base}"
        ))
        .unwrap();
        assert_eq!(
            restart_needed(&old, &new),
            ["dns.listen", "dns.udp_threads", "admin.listen"]
        );
    }

    #[test]
    fn a_reload_without_a_config_file_is_refused_and_keeps_the_snapshot() {
        let config: RouterConfig = cdn_shared::config::load_str(
            "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n",
        )
        .unwrap();
        let health = HealthState::new(&config);
        let router = Router::new(&config, Path::new("."), health.clone()).unwrap();
        let live = Live::new(
            health,
            router,
            Arc::new(ArcSwap::from_pointee(config.clone())),
            None,
        );
        assert!(matches!(live.reload(), Err(ReloadError::NoConfigFile)));
        assert_eq!(live.router.snapshot().epoch, 1);
        live.reload_geo().unwrap();
        assert_eq!(
            live.router.snapshot().epoch,
            2,
            "a geo reload swaps a new snapshot"
        );
    }
}
