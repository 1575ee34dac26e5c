//! Certificate and key files named by the configuration (the router's admin listener, the
//! edge's `[tls]`, `[hosts.tls]` and `[admin]`, the bus client's `tls_cert`/`tls_key`): read,
//! parsed and checked to belong together, with errors that name the config key.

use std::path::Path;

use rustls::sign::CertifiedKey;

use super::ConfigError;

/// Read a PEM certificate chain (leaf first) and its PEM private key, and check that they
/// belong together. Errors name `cert_key` (file missing or unreadable, no certificate, bad
/// PEM) or `key_key` (the same for the key, an unsupported key type, or a key that does not
/// match the certificate), with the path.
pub fn load_certified_key(
    cert: &Path,
    cert_key: &str,
    key: &Path,
    key_key: &str,
) -> Result<CertifiedKey, ConfigError> {
    let read = |k: &str, p: &Path| {
        std::fs::read(p).map_err(|e| ConfigError::new(k, format!("{}: {e}", p.display())))
    };
    let pem = read(cert_key, cert)?;
    let chain: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::new(cert_key, format!("{}: bad PEM: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            cert_key,
            format!("{}: no PEM certificate found", cert.display()),
        ));
    }
    let pem = read(key_key, key)?;
    let private = rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|e| ConfigError::new(key_key, format!("{}: bad PEM: {e}", key.display())))?
        .ok_or_else(|| {
            ConfigError::new(
                key_key,
                format!("{}: no PEM private key found", key.display()),
            )
        })?;
    let signer = rustls::crypto::ring::default_provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| ConfigError::new(key_key, format!("{}: {e}", key.display())))?;
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| {
        ConfigError::new(
            key_key,
            format!("{}: does not match {cert_key}: {e}", key.display()),
        )
    })?;
    Ok(certified)
}
