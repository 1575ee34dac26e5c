//! Geo file watcher: every `geo.reload_check_interval` (default 30 s) the files of the live
//! config's `geo.network_map` and `geo.database` are checked for changes
//! ([`cdn_geo::reload::FileWatch`]: length, modification time, inode), and a change rebuilds
//! the routing snapshot through [`Live::reload_geo`](crate::live::Live::reload_geo) — the same build as SIGHUP and
//! `POST /api/v1/reload`, under the same lock, counted in `cdn_config_reloads_total{result}`.
//! A file that does not load (bad line, unknown region, not a MaxMind database) is logged and
//! counted as `result="error"`, and the old snapshot keeps serving; the next change is tried
//! again.
//!
//! A half-written file is not loaded: a change is applied only once it is stable, i.e. the
//! check after the one that saw it finds no further change ([`decide`]). So a new file is
//! live between one and two intervals after it was written. Writing a new file and renaming
//! it over the old one remains the recommended way to update. A file that disappears is
//! logged and waited for (the loaded data keeps serving).
//!
//! The interval and the watched paths follow config reloads. The task stops when the
//! shutdown token is cancelled.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cdn_geo::reload::FileWatch;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

use crate::live::Live;

pub use cdn_geo::reload::{decide, Step};

/// The geo files `config` names, resolved against `base_dir` (as [`crate::snapshot`] does).
pub fn geo_files(config: &RouterConfig, base_dir: &Path) -> Vec<PathBuf> {
    [&config.geo.network_map, &config.geo.database]
        .into_iter()
        .flatten()
        .map(|p| {
            if p.is_absolute() {
                p.clone()
            } else {
                base_dir.join(p)
            }
        })
        .collect()
}

/// The watcher's state between checks.
#[derive(Debug, Default)]
struct Watched {
    /// The watched files, with whether each was missing at the last check.
    files: Vec<(FileWatch, bool)>,
    /// A change was seen and not applied yet.
    pending: bool,
}

impl Watched {
    /// Follow the live config's file list; stamps are taken now (a config reload that changed
    /// the list has just loaded those files).
    fn follow(&mut self, paths: Vec<PathBuf>) {
        let same = self.files.len() == paths.len()
            && self
                .files
                .iter()
                .zip(&paths)
                .all(|((w, _), p)| w.path() == p);
        if !same {
            self.files = paths
                .into_iter()
                .map(|p| (FileWatch::new(p), false))
                .collect();
            self.pending = false;
        }
    }

    /// Stat every file once and decide.
    fn check(&mut self) -> Step {
        let mut changed = false;
        let mut missing = false;
        for (watch, was_missing) in &mut self.files {
            match watch.poll() {
                Ok(c) => {
                    changed |= c;
                    *was_missing = false;
                }
                Err(e) => {
                    if !*was_missing {
                        tracing::warn!(file = %watch.path().display(), error = %e,
                            "geo file is not readable; the loaded data keeps serving");
                    }
                    *was_missing = true;
                    missing = true;
                }
            }
        }
        let step = decide(self.pending, changed, missing);
        self.pending = step == Step::Settling;
        step
    }
}

/// The geo files' stamps taken just *before* start-up reads them ([`crate::check`]): any
/// change after that moment, even one made while the files were being read or before the
/// watcher task started, is seen by the first check (and at worst reloads the same data once).
#[derive(Debug, Default)]
pub struct Baseline(Watched);

impl Baseline {
    /// Stamp the geo files `config` names (relative paths against `base_dir`).
    pub fn take(config: &RouterConfig, base_dir: &Path) -> Baseline {
        let mut w = Watched::default();
        w.follow(geo_files(config, base_dir));
        Baseline(w)
    }
}

/// Start the watcher: a task that checks the geo files of `live`'s config every
/// `geo.reload_check_interval` (relative paths against `base_dir`) until `shutdown` is
/// cancelled, starting from `baseline`. Call inside a tokio runtime.
pub fn spawn(
    live: Live,
    base_dir: PathBuf,
    baseline: Baseline,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let mut watched = baseline.0;
    watched.follow(geo_files(&live.config.load(), &base_dir));
    tokio::spawn(async move {
        loop {
            let interval = live
                .config
                .load()
                .geo
                .reload_check_interval
                .max(Duration::from_millis(1));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            watched.follow(geo_files(&live.config.load(), &base_dir));
            match watched.check() {
                Step::Idle => {}
                Step::Settling => tracing::debug!("geo file changed; waiting for it to settle"),
                Step::Reload => {
                    tracing::info!("geo file changed: reloading the network map and database");
                    let l = live.clone();
                    // Errors are logged and counted by `reload_geo`.
                    let _ = tokio::task::spawn_blocking(move || l.reload_geo()).await;
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_replaced_after_the_baseline_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("map.txt");
        std::fs::write(&map, "10.0.0.0/8 a\n").unwrap();
        let mut config: RouterConfig = cdn_shared::config::load_str(
            "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n",
        )
        .unwrap();
        config.geo.network_map = Some(PathBuf::from("map.txt"));
        // Start-up: the baseline is taken, then (before any check runs) the file is replaced.
        let Baseline(mut w) = Baseline::take(&config, dir.path());
        let tmp = dir.path().join("map.tmp");
        std::fs::write(&tmp, "10.0.0.0/8 b\n").unwrap();
        std::fs::rename(&tmp, &map).unwrap();
        // The watcher follows the same list (the stamps are kept), sees it, and reloads.
        w.follow(geo_files(&config, dir.path()));
        assert_eq!(w.check(), Step::Settling);
        assert_eq!(w.check(), Step::Reload);
        assert_eq!(w.check(), Step::Idle);
    }

    #[test]
    fn a_change_is_applied_once_stable() {
        assert_eq!(decide(false, false, false), Step::Idle);
        assert_eq!(decide(false, true, false), Step::Settling);
        assert_eq!(
            decide(true, true, false),
            Step::Settling,
            "still being written"
        );
        assert_eq!(decide(true, false, false), Step::Reload);
        assert_eq!(
            decide(true, false, true),
            Step::Settling,
            "gone: wait for it"
        );
        assert_eq!(decide(false, false, true), Step::Idle);
    }

    #[test]
    fn watched_files_settle_before_reload() {
        let dir = tempfile::tempdir().unwrap();
        let map = dir.path().join("map.txt");
        std::fs::write(&map, "10.0.0.0/8 east\n").unwrap();
        let mut w = Watched::default();
        w.follow(vec![map.clone()]);
        assert_eq!(w.check(), Step::Idle);
        std::fs::write(&map, "10.0.0.0/8 west\n10.1").unwrap();
        assert_eq!(w.check(), Step::Settling);
        std::fs::write(&map, "10.0.0.0/8 west\n10.1.0.0/16 east\n").unwrap();
        assert_eq!(w.check(), Step::Settling, "grew since the last check");
        assert_eq!(w.check(), Step::Reload);
        assert_eq!(w.check(), Step::Idle);
        std::fs::remove_file(&map).unwrap();
        assert_eq!(w.check(), Step::Idle);
        std::fs::write(&map, "10.0.0.0/8 east\n").unwrap();
        assert_eq!(w.check(), Step::Settling);
        assert_eq!(w.check(), Step::Reload);
        // A new path list (config reload) starts from the files as they are.
        w.follow(vec![map.clone(), dir.path().join("db.mmdb")]);
        assert_eq!(w.check(), Step::Idle);
    }

    #[test]
    fn geo_files_resolve_against_the_config_dir() {
        let mut c: RouterConfig = cdn_shared::config::load_str(
            "[[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n",
        )
        .unwrap();
        assert!(geo_files(&c, Path::new("/etc/cdn")).is_empty());
        c.geo.network_map = Some("map.txt".into());
        c.geo.database = Some("/var/lib/geo.mmdb".into());
        assert_eq!(
            geo_files(&c, Path::new("/etc/cdn")),
            [
                PathBuf::from("/etc/cdn/map.txt"),
                PathBuf::from("/var/lib/geo.mmdb")
            ]
        );
    }
}
