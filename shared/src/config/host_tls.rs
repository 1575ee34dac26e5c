//! HTTPS per host (`[hosts.tls]`): the host's own certificate chain and key, chosen by SNI
//! for its name and aliases (without one the `[tls]` default certificate answers), an
//! optional HTTP → HTTPS redirect and an HSTS header. The edge-wide part (listeners, the
//! default certificate, the redirect port, the file check interval) is `[tls]`
//! ([`super::edge::TlsSection`]).
//!
//! ```toml
//! [hosts.tls]
//! cert = "/etc/cdn/www.pem"        # chain, leaf first (with `key`)
//! key = "/etc/cdn/www.key"
//! redirect = 308                   # plain-HTTP requests → https://… (301 or 308)
//! hsts_max_age = "365d"            # Strict-Transport-Security on HTTPS responses
//! hsts_include_subdomains = true
//! ```
//!
//! Whether the files load (exist, parse, key matches the certificate) is checked when the
//! edge starts and by `--check-config`; errors name `hosts[N].tls.cert` / `hosts[N].tls.key`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::load::ConfigError;

/// `[hosts.tls]`
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostTls {
    /// PEM certificate chain served for this host's name and aliases (SNI). Set together with
    /// `key`. Default: the `[tls]` certificate.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Answer plain-HTTP requests with a redirect to the same URL over HTTPS, with this
    /// status: 301 (Moved Permanently) or 308 (Permanent Redirect, keeps the method and
    /// body). Default: none (plain HTTP is served).
    #[serde(default)]
    pub redirect: Option<u16>,
    /// Send `Strict-Transport-Security: max-age=<seconds>` on HTTPS responses (never on
    /// plain HTTP, RFC 6797 §7.2). `"0s"` tells browsers to forget the policy. Default: none.
    #[serde(default, with = "crate::config::common::duration")]
    pub hsts_max_age: Option<Duration>,
    /// Add `; includeSubDomains` to the HSTS header. Default false.
    #[serde(default)]
    pub hsts_include_subdomains: bool,
}

impl HostTls {
    /// The host's own certificate and key paths, when it has them.
    pub fn cert_pair(&self) -> Option<(&PathBuf, &PathBuf)> {
        self.cert.as_ref().zip(self.key.as_ref())
    }

    /// The `Strict-Transport-Security` value, when HSTS is on.
    pub fn hsts_value(&self) -> Option<String> {
        self.hsts_max_age.map(|d| {
            let mut v = format!("max-age={}", d.as_secs());
            if self.hsts_include_subdomains {
                v.push_str("; includeSubDomains");
            }
            v
        })
    }

    /// Check the table at `key` (e.g. `hosts[0].tls`); `has_tls_section` says whether the
    /// config has `[tls]` (HTTPS listeners and the default certificate), which every use of
    /// this table needs.
    pub fn validate(&self, key: &str, has_tls_section: bool) -> Result<(), ConfigError> {
        if !has_tls_section {
            return Err(ConfigError::new(
                key,
                "needs the [tls] section (HTTPS listeners and the default certificate)",
            ));
        }
        match (&self.cert, &self.key) {
            (Some(_), None) => {
                return Err(ConfigError::new(
                    format!("{key}.key"),
                    "required when cert is set",
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError::new(
                    format!("{key}.cert"),
                    "required when key is set",
                ))
            }
            _ => {}
        }
        if let Some(s) = self.redirect {
            if s != 301 && s != 308 {
                return Err(ConfigError::new(
                    format!("{key}.redirect"),
                    format!("{s} is not a redirect status this edge sends (301 or 308)"),
                ));
            }
        }
        if self.hsts_include_subdomains && self.hsts_max_age.is_none() {
            return Err(ConfigError::new(
                format!("{key}.hsts_include_subdomains"),
                "needs hsts_max_age",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(toml: &str) -> HostTls {
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    use figment::providers::Format as _;

    #[test]
    fn validation_names_the_key() {
        let ok = t("cert = \"c.pem\"\nkey = \"k.pem\"\nredirect = 308\nhsts_max_age = \"1d\"\nhsts_include_subdomains = true");
        ok.validate("hosts[0].tls", true).unwrap();
        assert_eq!(
            ok.hsts_value().as_deref(),
            Some("max-age=86400; includeSubDomains")
        );
        assert_eq!(
            ok.validate("hosts[0].tls", false).unwrap_err().key,
            "hosts[0].tls"
        );
        assert_eq!(
            t("cert = \"c.pem\"")
                .validate("hosts[1].tls", true)
                .unwrap_err()
                .key,
            "hosts[1].tls.key"
        );
        assert_eq!(
            t("key = \"k.pem\"")
                .validate("hosts[1].tls", true)
                .unwrap_err()
                .key,
            "hosts[1].tls.cert"
        );
        let e = t("redirect = 302")
            .validate("hosts[2].tls", true)
            .unwrap_err();
        assert_eq!(e.key, "hosts[2].tls.redirect");
        assert!(e.message.contains("301 or 308"), "{e}");
        assert_eq!(
            t("hsts_include_subdomains = true")
                .validate("hosts[0].tls", true)
                .unwrap_err()
                .key,
            "hosts[0].tls.hsts_include_subdomains"
        );
        let zero = t("hsts_max_age = \"0s\"");
        zero.validate("hosts[0].tls", true).unwrap();
        assert_eq!(zero.hsts_value().as_deref(), Some("max-age=0"));
        assert!(t("redirect = 301").cert_pair().is_none());
    }
}
