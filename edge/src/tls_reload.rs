//! Certificate reloads without dropping connections: on SIGHUP, and when a certificate or key
//! file (`[tls]`, `[hosts.tls]`) changes on disk, every file is loaded again
//! ([`Certs::load`], the start-up check) and swapped into the [`CertResolver`] whole. New
//! handshakes get the new certificates at once; established connections keep theirs. A file
//! that does not load (missing, bad PEM, key not matching its certificate) is logged with
//! the config key it belongs to and counted as `cdn_edge_tls_reloads_total{result="failed"}`,
//! and the old certificates keep serving; the next change (or SIGHUP) is tried again.
//!
//! The files are stat'ed every `tls.reload_check_interval` (length, modification time,
//! inode: [`cdn_geo::reload::FileWatch`]). A change is loaded once it has been stable for a
//! whole interval ([`cdn_geo::reload::decide`]), so a certificate and key written one after the other are
//! loaded together; writing new files and renaming them over the old ones is the
//! recommended way. SIGHUP loads at once. Only certificates are reloaded: other config
//! changes need a restart.

use std::sync::Arc;
use std::time::Duration;

use cdn_geo::reload::{decide, FileWatch, Step};
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::shutdown::Shutdown;

use crate::metrics::TLS_RELOADS;
use crate::tls::{cert_files, CertResolver, Certs};

/// The certificate files' stamps. Take it *before* the certificates are first loaded, so a
/// change made while the edge starts is seen by the first check.
#[derive(Debug)]
pub struct Watch {
    files: Vec<(FileWatch, bool)>,
    pending: bool,
}

impl Watch {
    /// Stamp every certificate and key file `config` names.
    pub fn new(config: &EdgeConfig) -> Watch {
        Watch {
            files: cert_files(config)
                .into_iter()
                .map(|p| (FileWatch::new(p), false))
                .collect(),
            pending: false,
        }
    }

    /// Stat every file once and decide.
    pub fn check(&mut self) -> Step {
        let (mut changed, mut missing) = (false, false);
        for (w, was_missing) in &mut self.files {
            match w.poll() {
                Ok(c) => {
                    changed |= c;
                    *was_missing = false;
                }
                Err(e) => {
                    if !*was_missing {
                        tracing::warn!(file = %w.path().display(), error = %e,
                            "certificate file is not readable; the loaded certificates keep serving");
                    }
                    *was_missing = true;
                    missing = true;
                }
            }
        }
        let s = decide(self.pending, changed, missing);
        self.pending = s == Step::Settling;
        s
    }

    /// After a reload that read the files now (SIGHUP): take their stamps, nothing pending.
    fn settle(&mut self) {
        for (w, _) in &mut self.files {
            let _ = w.poll();
        }
        self.pending = false;
    }
}

/// Load every certificate of `config` again and swap them in; on failure log (naming the
/// key) and keep the old ones. Returns whether the new certificates are serving.
pub fn reload(resolver: &CertResolver, config: &EdgeConfig, why: &str) -> bool {
    match Certs::load(config) {
        Ok(Some(certs)) => {
            resolver.replace(certs);
            metrics::counter!(TLS_RELOADS, "result" => "ok").increment(1);
            tracing::info!(why, "certificates reloaded");
            true
        }
        Ok(None) => false,
        Err(e) => {
            metrics::counter!(TLS_RELOADS, "result" => "failed").increment(1);
            tracing::error!(why, error = %e,
                "certificate reload refused; the old certificates keep serving");
            false
        }
    }
}

/// Reload on SIGHUP and on file changes until `shutdown` is cancelled. The SIGHUP stream is
/// registered before this returns (a signal sent right after is not lost). Call inside the
/// actix system.
pub fn spawn(
    resolver: Arc<CertResolver>,
    config: EdgeConfig,
    mut watch: Watch,
    shutdown: Shutdown,
) -> actix_rt::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    let interval = config
        .tls
        .as_ref()
        .map(|t| t.reload_check_interval)
        .unwrap_or(Duration::from_secs(10))
        .max(Duration::from_millis(10));
    actix_rt::spawn(async move {
        let mut hup = match hup {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; certificates reload on file changes only");
                None
            }
        };
        loop {
            let got_hup = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = got_hup => {
                    if got.is_none() {
                        hup = None;
                        continue;
                    }
                    watch.settle();
                    reload(&resolver, &config, "SIGHUP");
                }
                _ = tokio::time::sleep(interval) => {
                    match watch.check() {
                        Step::Idle => {}
                        Step::Settling => tracing::debug!("certificate file changed; waiting for it to settle"),
                        Step::Reload => {
                            reload(&resolver, &config, "files changed");
                        }
                    }
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_sees_a_replaced_key_and_waits_for_it_to_settle() {
        let dir = tempfile::tempdir().unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, "c").unwrap();
        std::fs::write(&k, "k").unwrap();
        let config: EdgeConfig = cdn_shared::config::load_str(&format!(
            "[edge]\nid = \"e\"\nregion = \"r\"\n[tls]\nlisten = [\"127.0.0.1:0\"]\ncert = {c:?}\nkey = {k:?}\n\
             [[hosts]]\nname = \"a.test\"\norigin = \"http://127.0.0.1:9\"\n"
        ))
        .unwrap();
        let mut w = Watch::new(&config);
        assert_eq!(w.check(), Step::Idle);
        std::fs::write(&k, "k2").unwrap();
        assert_eq!(w.check(), Step::Settling);
        assert_eq!(w.check(), Step::Reload);
        assert_eq!(w.check(), Step::Idle);
        std::fs::write(&c, "c2!").unwrap();
        w.settle();
        assert_eq!(w.check(), Step::Idle, "SIGHUP already loaded it");
    }
}
