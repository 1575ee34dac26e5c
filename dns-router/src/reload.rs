//! Reload: SIGHUP ([`spawn_sighup`]) and `POST /api/v1/reload` re-read the config file with
//! `cdn_shared::config::load` (TOML + `CDN_*` environment, validated), rebuild the router's
//! zones, services and geo data ([`Router::reload`](crate::route::Router::reload): the network
//! map and database files are re-read too), reconcile health
//! ([`HealthState::reconcile`](crate::health::HealthState::reconcile): new edges are probed at
//! once, removed ones stop, remaining ones keep their state), then swap the live config.
//!
//! A bad config is rejected and logged, and the old one keeps serving: nothing is swapped
//! until everything has been built (including the probe TLS settings: an unreadable
//! `health.probe_ca_file` rejects the reload).
//!
//! [`reload_geo`] is the same rebuild without re-reading the config: the live config's
//! network map and database files are re-read and the routing snapshot swapped (the geo file
//! watcher, [`crate::watch`], calls it when those files change). Both are serialised by one
//! lock and counted in `cdn_config_reloads_total{result}`. Listener addresses (`dns.listen`, `admin.listen`) and
//! thread counts are bound at start; a change to them is logged as needing a restart.

use std::path::Path;

use serde::Serialize;

use cdn_shared::config::router::RouterConfig;
use cdn_shared::config::ConfigError;
use cdn_shared::shutdown::Shutdown;

use crate::admin::AdminContext;
use crate::metrics::names;

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

/// Paths in `config` that the router itself opens (not through [`crate::route`]) made
/// absolute against `base_dir`, the config file's directory: `health.probe_ca_file`.
pub fn resolve_paths(mut config: RouterConfig, base_dir: &Path) -> RouterConfig {
    crate::health::probe::resolve_paths(&mut config.health, base_dir);
    config
}

/// Run `f` under the reload lock and count it in `cdn_config_reloads_total{result}`.
fn serialised<T>(
    ctx: &AdminContext,
    f: impl FnOnce(&AdminContext) -> Result<T, ReloadError>,
) -> Result<T, ReloadError> {
    let _one_at_a_time = ctx.reload_lock.lock().unwrap_or_else(|p| p.into_inner());
    let result = f(ctx);
    let label = if result.is_ok() { "ok" } else { "error" };
    metrics::counter!(names::CONFIG_RELOADS, "result" => label).increment(1);
    result
}

/// Rebuild the routing snapshot from the live config, re-reading its geo files
/// (`geo.network_map`, `geo.database`). A file that does not load is logged and counted as a
/// failed reload, and the old snapshot keeps serving. Serialised with [`reload`].
pub fn reload_geo(ctx: &AdminContext) -> Result<(), ReloadError> {
    let result = serialised(ctx, |ctx| {
        let config = ctx.config.load_full();
        ctx.router.reload(&config)?;
        Ok(())
    });
    match &result {
        Ok(()) => tracing::info!("geo files reloaded"),
        Err(e) => tracing::error!(error = %e,
            "geo file reload rejected; the old network map and database keep serving"),
    }
    result
}

/// Re-read, validate, rebuild and swap. Serialised: concurrent reloads run one after another.
pub fn reload(ctx: &AdminContext) -> Result<ReloadSummary, ReloadError> {
    let result = serialised(ctx, reload_locked);
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

fn reload_locked(ctx: &AdminContext) -> Result<ReloadSummary, ReloadError> {
    let path = ctx
        .config_path
        .as_deref()
        .ok_or(ReloadError::NoConfigFile)?;
    let base_dir = cdn_shared::config::config_dir(Some(path));
    let new: RouterConfig = resolve_paths(cdn_shared::config::load(Some(path))?, &base_dir);
    crate::health::probe::check_tls(&new.health, &base_dir)?;
    // Build first (may fail: nothing is swapped), then publish the config, then reconcile
    // health (which starts and stops probes).
    ctx.router.reload(&new)?;
    let old = ctx.config.load_full();
    let summary = ReloadSummary {
        reloaded: true,
        edges: new.edges.len(),
        services: new.services.len(),
        zones: new.zones.len(),
        restart_needed_for: restart_needed(&old, &new),
    };
    let new = std::sync::Arc::new(new);
    ctx.config.store(new.clone());
    ctx.health.reconcile(&new);
    Ok(summary)
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
    if old.dns.query_log != new.dns.query_log {
        out.push("dns.query_log");
    }
    if old.admin.listen != new.admin.listen {
        out.push("admin.listen");
    }
    out
}

/// Reload on every SIGHUP until `shutdown` is cancelled. Call inside a tokio runtime.
pub fn spawn_sighup(ctx: AdminContext, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload only via the admin API");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading config");
                    let c = ctx.clone();
                    // Errors are logged by `reload`.
                    let _ = tokio::task::spawn_blocking(move || reload(&c)).await;
                }
            }
        }
    })
}
