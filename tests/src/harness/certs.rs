//! Certificates for tests and the local fleet, made with rcgen (ring): a demo CA and leaf
//! certificates it signs, written as PEM files.

use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A demo certificate authority.
pub struct DemoCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for DemoCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DemoCa").finish_non_exhaustive()
    }
}

/// A leaf certificate and its key.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// PEM certificate chain: the leaf, then the CA.
    pub chain_pem: String,
    /// PEM private key (PKCS#8).
    pub key_pem: String,
    /// The leaf certificate in DER (what a server presents first).
    pub der: Vec<u8>,
}

impl Leaf {
    /// Write `<dir>/<stem>.pem` (chain) and `<dir>/<stem>.key` by writing temporary files
    /// and renaming them over the old ones (so a watcher never sees half a file).
    pub fn write(&self, dir: &Path, stem: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
        let cert = dir.join(format!("{stem}.pem"));
        let key = dir.join(format!("{stem}.key"));
        write_atomic(&cert, self.chain_pem.as_bytes())?;
        write_atomic(&key, self.key_pem.as_bytes())?;
        Ok((cert, key))
    }
}

/// Write `bytes` to `path` through a temporary file renamed over it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

impl DemoCa {
    /// A new CA named `common_name` (ECDSA P-256).
    pub fn new(common_name: &str) -> anyhow::Result<DemoCa> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate()?)?;
        Ok(DemoCa { issuer })
    }

    /// The CA certificate (PEM): what clients trust (`curl --cacert`).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses; the first is also the
    /// common name).
    pub fn leaf(&self, names: &[&str]) -> anyhow::Result<Leaf> {
        self.leaf_for(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (mutual TLS, e.g. to a `nats-server` with `verify: true`) named
    /// `name`.
    pub fn client_leaf(&self, name: &str) -> anyhow::Result<Leaf> {
        self.leaf_for(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf_for(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> anyhow::Result<Leaf> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.pem()),
            key_pem: key.serialize_pem(),
            der: cert.der().to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leaf_verifies_against_its_ca_and_not_another() {
        let ca = DemoCa::new("test CA").unwrap();
        let leaf = ca.leaf(&["a.test", "b.test"]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = leaf.write(dir.path(), "a").unwrap();
        let ck = cdn_shared::config::certs::load_certified_key(&cert, "c", &key, "k").unwrap();
        assert_eq!(ck.cert.len(), 2, "leaf and CA");
        assert_eq!(ck.cert[0].as_ref(), leaf.der.as_slice());
        let verify = |ca: &DemoCa, name: &str| {
            let mut roots = rustls::RootCertStore::empty();
            let ca_der = rustls_pemfile::certs(&mut ca.pem().as_bytes())
                .next()
                .unwrap()
                .unwrap();
            roots.add(ca_der).unwrap();
            let v = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots.into(),
                rustls::crypto::ring::default_provider().into(),
            )
            .build()
            .unwrap();
            v.verify_server_cert(
                &ck.cert[0],
                &ck.cert[1..],
                &rustls::pki_types::ServerName::try_from(name.to_string()).unwrap(),
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .is_ok()
        };
        use rustls::client::danger::ServerCertVerifier as _;
        assert!(verify(&ca, "b.test"));
        assert!(!verify(&ca, "c.test"), "name not in the certificate");
        assert!(!verify(&DemoCa::new("other").unwrap(), "a.test"));
    }
}
