//! HTTPS on the edge's admin listener (`admin.tls_cert` / `admin.tls_key`): the router then
//! purges through an `https://` `admin_url` and verifies this certificate. The certificate is
//! loaded at start (a bad file is a config error naming the key, exit 64) and again on every
//! SIGHUP; a file that does not load then is logged and the old certificate keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use cdn_shared::config::edge::EdgeAdminSection;
use cdn_shared::shutdown::Shutdown;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::error::EdgeError;

/// The admin listener's certificate, replaceable.
#[derive(Debug)]
pub struct AdminCert {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

fn load(cert: &Path, key: &Path) -> Result<CertifiedKey, EdgeError> {
    cdn_shared::config::certs::load_certified_key(cert, "admin.tls_cert", key, "admin.tls_key")
        .map_err(|e| EdgeError::Config(e.to_string()))
}

impl AdminCert {
    /// Load `[admin]`'s certificate (`None` without `tls_cert`).
    pub fn load(admin: &EdgeAdminSection) -> Result<Option<Arc<AdminCert>>, EdgeError> {
        let (Some(cert), Some(key)) = (&admin.tls_cert, &admin.tls_key) else {
            return Ok(None);
        };
        let ck = load(cert, key)?;
        Ok(Some(Arc::new(AdminCert {
            cert: cert.clone(),
            key: key.clone(),
            current: ArcSwap::from_pointee(ck),
        })))
    }

    /// Load the files again; keep the old certificate when they do not load.
    pub fn reload(&self) -> bool {
        match load(&self.cert, &self.key) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                tracing::info!("admin certificate reloaded");
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "admin certificate reload refused; the old one keeps serving");
                false
            }
        }
    }

    /// rustls server config (TLS 1.2/1.3, HTTP/1.1).
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, EdgeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EdgeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(cfg)
    }

    /// Reload on every SIGHUP until `shutdown` (the stream is registered before this returns).
    pub fn spawn_reload(self: &Arc<Self>, shutdown: Shutdown) -> actix_rt::task::JoinHandle<()> {
        use tokio::signal::unix::{signal, SignalKind};
        let hup = signal(SignalKind::hangup());
        let me = self.clone();
        actix_rt::spawn(async move {
            let Ok(mut hup) = hup else { return };
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    got = hup.recv() => {
                        if got.is_none() {
                            return;
                        }
                        me.reload();
                    }
                }
            }
        })
    }
}

impl ResolvesServerCert for AdminCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}
