//! `[bus]`: the fleet bus (NATS JetStream), shared by the router and the edge schemas.
//!
//! Without `[bus]` nothing changes: reports are pushed over HTTP, purges fan out over HTTP and
//! drains and weight overrides stay in each router's memory (the single-machine default). With
//! it, purges go through a JetStream stream (a durable consumer per edge), operator state
//! (drains, weight overrides) through a JetStream key-value bucket, and reports through `cdn.reports.<region>.<edge>` subjects
//! (see [`crate::bus`] for the wire contract).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::common::{require_ident, require_positive};
use super::ConfigError;

/// `[bus]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct BusSection {
    /// NATS server URLs (`nats://host:port`); the client tries them in turn and reconnects
    /// with backoff. Required, at least one.
    pub servers: Vec<String>,
    /// User name (NATS `authorization.users`). Needs `password`. Optional.
    pub user: Option<String>,
    /// Password for `user`. Optional.
    pub password: Option<String>,
    /// An nkey seed (`SU...`) for NATS nkey authentication. Optional; exclusive with
    /// `user`/`password` and `creds_file`.
    pub nkey: Option<String>,
    /// A `.creds` file (JWT + nkey seed, NATS decentralised auth). Relative paths resolve
    /// against the working directory. Optional; exclusive with the other credentials.
    pub creds_file: Option<PathBuf>,
    /// TLS to NATS: a PEM file of the CA certificate(s) the NATS servers' certificates chain
    /// to. Setting it makes TLS required (a server that does not offer TLS is refused) and
    /// these CAs the only ones trusted. Without it, TLS is still used when a server URL is
    /// `tls://…` or the server requires it, verified against the system's CAs. The server
    /// name checked is the URL's host (a DNS name or an IP address in the certificate).
    /// Relative paths resolve against the working directory. Optional.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate chain (PEM) presented to NATS servers that verify clients
    /// (`tls { verify: true }`, mutual TLS). Needs `tls_key`. Optional.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`. Needs `tls_cert`. Optional.
    pub tls_key: Option<PathBuf>,
    /// The JetStream stream that carries purges (subject `cdn.purges`). Default `CDN_PURGES`.
    pub purge_stream: String,
    /// Routers create the purge stream with this retention (older purges are dropped; an
    /// edge down for longer treats its whole cache as stale when it returns). Default `7d`.
    #[serde(with = "crate::config::common::duration")]
    pub purge_retention: Duration,
    /// The JetStream key-value bucket of operator state (drains, weight overrides). Default
    /// `cdn_operator`.
    pub kv_bucket: String,
    /// Replicas of the purge stream and the bucket when a router (or edge) creates them:
    /// 3 on a 3-node NATS cluster, so one node down loses nothing. 1..=5. Default 1.
    pub replicas: usize,
    /// Time allowed for a connection attempt. Default `2s`.
    #[serde(with = "crate::config::common::duration")]
    pub connect_timeout: Duration,
    /// Time allowed for a JetStream request (publish ack, KV write). Default `2s`.
    #[serde(with = "crate::config::common::duration")]
    pub request_timeout: Duration,
    /// At start, how long a router waits for the bus to read operator state before answering
    /// queries, and how long an edge waits to catch up with missed purges before serving from
    /// its cache. When it runs out, the router starts with the configured state and the edge
    /// treats its whole cache as stale; both keep reconnecting. Default `5s`.
    #[serde(with = "crate::config::common::duration")]
    pub startup_timeout: Duration,
    /// Router: how long the purge API waits for edges to acknowledge a stored purge before
    /// answering (edges not heard from are listed as `pending`). Default `2s`.
    #[serde(with = "crate::config::common::duration")]
    pub purge_ack_timeout: Duration,
}

impl BusSection {
    /// Resolve the file paths of the section against `base` (the config file's directory).
    pub fn resolve_paths(&mut self, base: &std::path::Path) {
        use super::common::resolve_opt;
        resolve_opt(base, &mut self.creds_file);
        resolve_opt(base, &mut self.tls_ca);
        resolve_opt(base, &mut self.tls_cert);
        resolve_opt(base, &mut self.tls_key);
    }
}

impl Default for BusSection {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            user: None,
            password: None,
            nkey: None,
            creds_file: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            purge_stream: "CDN_PURGES".into(),
            purge_retention: Duration::from_secs(7 * 24 * 3600),
            kv_bucket: "cdn_operator".into(),
            replicas: 1,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            startup_timeout: Duration::from_secs(5),
            purge_ack_timeout: Duration::from_secs(2),
        }
    }
}

impl BusSection {
    /// Check the section; keys are reported as `bus.<field>`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.servers.is_empty() {
            return Err(ConfigError::new(
                "bus.servers",
                "must list at least one NATS server (nats://host:port)",
            ));
        }
        for (i, s) in self.servers.iter().enumerate() {
            let ok = url::Url::parse(s)
                .ok()
                .filter(|u| matches!(u.scheme(), "nats" | "tls"))
                .is_some_and(|u| u.host_str().is_some_and(|h| !h.is_empty()));
            if !ok {
                return Err(ConfigError::new(
                    format!("bus.servers[{i}]"),
                    format!("`{s}` is not a nats://host:port URL"),
                ));
            }
        }
        if self.password.is_some() && self.user.is_none() {
            return Err(ConfigError::new("bus.password", "needs `bus.user`"));
        }
        if self.user.is_some() && self.password.is_none() {
            return Err(ConfigError::new("bus.user", "needs `bus.password`"));
        }
        let kinds = [
            self.user.is_some(),
            self.nkey.is_some(),
            self.creds_file.is_some(),
        ];
        if kinds.iter().filter(|k| **k).count() > 1 {
            return Err(ConfigError::new(
                "bus",
                "give one kind of credentials: `user`+`password`, `nkey` or `creds_file`",
            ));
        }
        if let Some(seed) = &self.nkey {
            if !seed.starts_with("SU") {
                return Err(ConfigError::new(
                    "bus.nkey",
                    "must be a user nkey seed (starts with `SU`)",
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => return Err(ConfigError::new("bus.tls_cert", "needs `bus.tls_key`")),
            (None, Some(_)) => return Err(ConfigError::new("bus.tls_key", "needs `bus.tls_cert`")),
            _ => {}
        }
        require_ident("bus.purge_stream", &self.purge_stream)?;
        if self.purge_stream.contains('.') {
            return Err(ConfigError::new("bus.purge_stream", "must not contain `.`"));
        }
        require_ident("bus.kv_bucket", &self.kv_bucket)?;
        if self.kv_bucket.contains('.') {
            return Err(ConfigError::new("bus.kv_bucket", "must not contain `.`"));
        }
        if !(1..=5).contains(&self.replicas) {
            return Err(ConfigError::new("bus.replicas", "must be in 1..=5"));
        }
        require_positive("bus.purge_retention", self.purge_retention)?;
        require_positive("bus.connect_timeout", self.connect_timeout)?;
        require_positive("bus.request_timeout", self.request_timeout)?;
        require_positive("bus.startup_timeout", self.startup_timeout)?;
        require_positive("bus.purge_ack_timeout", self.purge_ack_timeout)?;
        Ok(())
    }

    /// Read the files the section names (`--check-config` and start-up): the CA file must
    /// hold at least one PEM certificate, `tls_cert`/`tls_key` must be a matching chain and
    /// key, and `creds_file` must be readable. Errors name the key and the path.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        if let Some(ca) = &self.tls_ca {
            let pem = std::fs::read(ca)
                .map_err(|e| ConfigError::new("bus.tls_ca", format!("{}: {e}", ca.display())))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| {
                    ConfigError::new("bus.tls_ca", format!("{}: bad PEM: {e}", ca.display()))
                })?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    "bus.tls_ca",
                    format!("{}: no PEM certificate found", ca.display()),
                ));
            }
        }
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            super::certs::load_certified_key(cert, "bus.tls_cert", key, "bus.tls_key")?;
        }
        if let Some(creds) = &self.creds_file {
            std::fs::metadata(creds).map_err(|e| {
                ConfigError::new("bus.creds_file", format!("{}: {e}", creds.display()))
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_servers() -> BusSection {
        BusSection {
            servers: vec!["nats://127.0.0.1:4222".into()],
            ..BusSection::default()
        }
    }

    #[test]
    fn defaults_need_servers() {
        assert_eq!(
            BusSection::default().validate().unwrap_err().key,
            "bus.servers"
        );
        with_servers().validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let cases: Vec<(BusSection, &str)> = vec![
            (
                BusSection {
                    servers: vec!["http://x:1".into()],
                    ..with_servers()
                },
                "bus.servers[0]",
            ),
            (
                BusSection {
                    password: Some("p".into()),
                    ..with_servers()
                },
                "bus.password",
            ),
            (
                BusSection {
                    user: Some("u".into()),
                    password: Some("p".into()),
                    creds_file: Some("x.creds".into()),
                    ..with_servers()
                },
                "bus",
            ),
            (
                BusSection {
                    nkey: Some("UA123".into()),
                    ..with_servers()
                },
                "bus.nkey",
            ),
            (
                BusSection {
                    tls_cert: Some("c.pem".into()),
                    ..with_servers()
                },
                "bus.tls_cert",
            ),
            (
                BusSection {
                    tls_key: Some("c.key".into()),
                    ..with_servers()
                },
                "bus.tls_key",
            ),
            (
                BusSection {
                    kv_bucket: "a.b".into(),
                    ..with_servers()
                },
                "bus.kv_bucket",
            ),
            (
                BusSection {
                    purge_ack_timeout: Duration::ZERO,
                    ..with_servers()
                },
                "bus.purge_ack_timeout",
            ),
        ];
        for (section, key) in cases {
            assert_eq!(section.validate().unwrap_err().key, key, "{section:?}");
        }
    }

    #[test]
    fn files_are_read_and_errors_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        let cases: Vec<(BusSection, &str)> = vec![
            (
                BusSection {
                    tls_ca: Some(missing.clone()),
                    ..with_servers()
                },
                "bus.tls_ca",
            ),
            (
                BusSection {
                    tls_ca: Some(junk.clone()),
                    ..with_servers()
                },
                "bus.tls_ca",
            ),
            (
                BusSection {
                    tls_cert: Some(junk.clone()),
                    tls_key: Some(junk.clone()),
                    ..with_servers()
                },
                "bus.tls_cert",
            ),
            (
                BusSection {
                    creds_file: Some(missing.clone()),
                    ..with_servers()
                },
                "bus.creds_file",
            ),
        ];
        for (section, key) in cases {
            section.validate().unwrap();
            let e = section.check_files().unwrap_err();
            assert_eq!(e.key, key, "{section:?}");
        }
        with_servers().check_files().unwrap();
    }
}
