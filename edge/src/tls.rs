//! TLS with rustls and the ring provider: the HTTPS listeners' server config (from
//! `[tls]` PEM files) and the origin client config (webpki roots, an optional extra CA,
//! or no verification when a host sets `tls_verify = false`).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use crate::error::EdgeError;

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

/// Server config for the HTTPS listeners (HTTP/2 and HTTP/1.1 by ALPN).
pub fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig, EdgeError> {
    let certs = read_certs(cert)?;
    let f = File::open(key).map_err(|e| EdgeError::Tls(format!("{}: {e}", key.display())))?;
    let key_der = rustls_pemfile::private_key(&mut BufReader::new(f))
        .map_err(|e| EdgeError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| EdgeError::Tls(format!("{}: no PEM private key found", key.display())))?;
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| EdgeError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| EdgeError::Tls(format!("{}: {e}", cert.display())))?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(cfg)
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
