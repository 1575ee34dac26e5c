//! TLS with rustls and the ring provider: the HTTPS listeners' certificates and the origin
//! client config (webpki roots, an optional extra CA, or no verification when a host sets
//! `tls_verify = false`).
//!
//! Server side: [`Certs`] is every certificate the config names, the `[tls]` default plus
//! one per `[hosts.tls]` (answering for the host's name and aliases); [`CertResolver`]
//! picks one per handshake by SNI (no SNI or an unknown name → the default) and holds the
//! set in an `ArcSwap`, so [`crate::tls_reload`] replaces it while serving: new handshakes
//! get the new certificates, established connections keep theirs. TLS 1.2 and 1.3; HTTP/2
//! and HTTP/1.1 by ALPN.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use cdn_shared::config::certs::load_certified_key;
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::config::ConfigError;
use rustls::pki_types::CertificateDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::EdgeError;
use crate::metrics::TLS_HANDSHAKES;

/// Install the ring provider as the process default (idempotent).
pub fn install_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, EdgeError> {
    let f = File::open(path).map_err(|e| EdgeError::Tls(format!("{}: {e}", path.display())))?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut BufReader::new(f))
        .collect::<Result<_, _>>()
        .map_err(|e| EdgeError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(EdgeError::Tls(format!(
            "{}: no PEM certificates found",
            path.display()
        )));
    }
    Ok(certs)
}

/// A loaded certificate and the label its handshakes are counted under.
#[derive(Debug)]
struct Named {
    key: Arc<CertifiedKey>,
    /// The host's configured name, or `default`.
    label: String,
}

/// Every server certificate of one config: the default and, by lower-case name (host names
/// and aliases), each host's own.
#[derive(Debug)]
pub struct Certs {
    default: Named,
    by_name: HashMap<String, Arc<Named>>,
}

impl Certs {
    /// Load the certificates `config` names (`None` without `[tls]`). Errors name the key
    /// (`tls.cert`, `hosts[2].tls.key`, …) and the file.
    pub fn load(config: &EdgeConfig) -> Result<Option<Certs>, ConfigError> {
        let Some(t) = &config.tls else {
            return Ok(None);
        };
        let default = Named {
            key: Arc::new(load_certified_key(&t.cert, "tls.cert", &t.key, "tls.key")?),
            label: "default".into(),
        };
        let mut by_name = HashMap::new();
        for (i, h) in config.hosts.iter().enumerate() {
            let Some((cert, key)) = h.tls.as_ref().and_then(|t| t.cert_pair()) else {
                continue;
            };
            let named = Arc::new(Named {
                key: Arc::new(load_certified_key(
                    cert,
                    &format!("hosts[{i}].tls.cert"),
                    key,
                    &format!("hosts[{i}].tls.key"),
                )?),
                label: h.name.to_ascii_lowercase(),
            });
            for n in std::iter::once(&h.name).chain(&h.aliases) {
                by_name.insert(n.trim_end_matches('.').to_ascii_lowercase(), named.clone());
            }
        }
        Ok(Some(Certs { default, by_name }))
    }

    /// The certificate for SNI `name` (`None`: no SNI).
    pub fn select(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        &self.pick(name).key
    }

    fn pick(&self, name: Option<&str>) -> &Named {
        // rustls hands over SNI already lower-cased and without a trailing dot.
        name.and_then(|n| self.by_name.get(n))
            .map(|n| &**n)
            .unwrap_or(&self.default)
    }
}

/// Every certificate and key file `config` names (what the reload watcher stats).
pub fn cert_files(config: &EdgeConfig) -> Vec<PathBuf> {
    let Some(t) = &config.tls else {
        return Vec::new();
    };
    let mut files = vec![t.cert.clone(), t.key.clone()];
    for h in &config.hosts {
        if let Some((c, k)) = h.tls.as_ref().and_then(|t| t.cert_pair()) {
            files.push(c.clone());
            files.push(k.clone());
        }
    }
    files.dedup();
    files
}

/// The certificate resolver of the HTTPS listeners: SNI → [`Certs`], replaceable whole.
#[derive(Debug)]
pub struct CertResolver {
    current: ArcSwap<Certs>,
}

impl CertResolver {
    /// Serve `certs`.
    pub fn new(certs: Certs) -> Arc<Self> {
        Arc::new(Self {
            current: ArcSwap::from_pointee(certs),
        })
    }

    /// Serve `certs` from the next handshake on.
    pub fn replace(&self, certs: Certs) {
        self.current.store(Arc::new(certs));
    }

    /// The certificate a handshake with SNI `name` gets now.
    pub fn current_for(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        self.current.load().select(name).clone()
    }

    /// Server config for the HTTPS listeners: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN,
    /// certificates from this resolver.
    pub fn server_config(self: &Arc<Self>) -> Result<ServerConfig, EdgeError> {
        let mut cfg = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| EdgeError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(cfg)
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let certs = self.current.load();
        let n = certs.pick(hello.server_name());
        metrics::counter!(TLS_HANDSHAKES, "cert" => n.label.clone()).increment(1);
        Some(n.key.clone())
    }
}

/// Client config for one origin.
pub fn client_config(
    verify: bool,
    extra_ca: Option<&Path>,
) -> Result<Arc<ClientConfig>, EdgeError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| EdgeError::Tls(e.to_string()))?;
    let mut cfg = if verify {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = extra_ca {
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| EdgeError::Tls(format!("{}: {e}", ca.display())))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(cdn_shared::tls::AcceptAnyCert(provider())))
            .with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
