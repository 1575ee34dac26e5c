//! TLS on the admin listener: `admin.tls_cert` + `admin.tls_key` (PEM) turn it into HTTPS
//! only. The certificate is held by [`AdminCert`], a rustls certificate resolver whose key
//! pair a config reload replaces (a bad file refuses the reload, naming the key, and the old
//! certificate keeps serving); new handshakes use the new one at once. Errors name the config
//! key (`--check-config` and start-up exit 64).

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use cdn_shared::config::router::AdminSection;
use cdn_shared::config::ConfigError;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// The admin listener's certificate, replaceable while serving.
#[derive(Debug)]
pub struct AdminCert {
    current: ArcSwap<CertifiedKey>,
}

impl AdminCert {
    /// Hold `key`.
    pub fn new(key: Arc<CertifiedKey>) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::new(key),
        })
    }

    /// Serve `key` from the next handshake on.
    pub fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }

    /// A rustls server config (TLS 1.2 and 1.3, ring) answering with this certificate.
    pub fn server_config(self: &Arc<Self>) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Ok(rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone()))
    }
}

impl ResolvesServerCert for AdminCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Load the certificate chain and key `admin` names (paths as given: resolve them against the
/// config's directory first). `None` when TLS is not configured.
pub fn load(admin: &AdminSection) -> Result<Option<Arc<CertifiedKey>>, ConfigError> {
    let (Some(cert), Some(key)) = (&admin.tls_cert, &admin.tls_key) else {
        return Ok(None);
    };
    let certified = cdn_shared::config::certs::load_certified_key(
        cert,
        "admin.tls_cert",
        key,
        "admin.tls_key",
    )?;
    Ok(Some(Arc::new(certified)))
}

/// `--check-config`: resolve `admin`'s paths against `base_dir` and load them.
pub fn check(admin: &AdminSection, base_dir: &Path) -> Result<(), ConfigError> {
    let mut a = admin.clone();
    resolve_paths(&mut a, base_dir);
    load(&a).map(|_| ())
}

/// Make `tls_cert` and `tls_key` absolute against `base_dir`.
pub fn resolve_paths(admin: &mut AdminSection, base_dir: &Path) {
    for p in [&mut admin.tls_cert, &mut admin.tls_key]
        .into_iter()
        .flatten()
    {
        if p.is_relative() {
            *p = base_dir.join(&*p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_bad_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem at all\n").unwrap();
        let mut a = AdminSection::default();
        assert!(load(&a).unwrap().is_none());
        a.tls_cert = Some(dir.path().join("nope.pem"));
        a.tls_key = Some(junk.clone());
        let e = load(&a).unwrap_err();
        assert_eq!(e.key, "admin.tls_cert");
        assert!(e.message.contains("nope.pem"), "{e:?}");
        a.tls_cert = Some(junk.clone());
        let e = load(&a).unwrap_err();
        assert_eq!(e.key, "admin.tls_cert");
        assert!(e.message.contains("no PEM certificate"), "{e:?}");
        // Relative paths resolve against the config's directory.
        let mut r = AdminSection {
            tls_cert: Some("c.pem".into()),
            tls_key: Some("/abs/k.pem".into()),
            ..AdminSection::default()
        };
        resolve_paths(&mut r, Path::new("/etc/cdn"));
        assert_eq!(r.tls_cert.unwrap(), Path::new("/etc/cdn/c.pem"));
        assert_eq!(r.tls_key.unwrap(), Path::new("/abs/k.pem"));
    }
}
