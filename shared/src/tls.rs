//! TLS pieces both processes use: the certificate verifier behind the "don't verify" switches
//! (the edge's per-host `tls_verify = false` towards origins, the router's
//! `health.probe_tls_verify = false` for https probes), and [`load_certified_key`], which
//! reads a server certificate chain and key (the router's admin listener, the edge's `[tls]`
//! and `[hosts.tls]`) into errors that name the config key.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::config::ConfigError;

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

/// Accepts any server certificate (no chain, name or expiry check). The handshake signatures
/// are still checked with `provider`'s algorithms, so the peer holds the key of the
/// certificate it sent.
#[derive(Debug)]
pub struct AcceptAnyCert(pub Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
