//! `[health]`: edge probes and load reports.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::config::common::*;
use crate::config::ConfigError;

/// `[health]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HealthSection {
    /// Active probe interval per edge. Default `1s`.
    #[serde(with = "crate::config::common::duration")]
    pub probe_interval: Duration,
    /// Probe timeout. Default `500ms`.
    #[serde(with = "crate::config::common::duration")]
    pub probe_timeout: Duration,
    /// Random extra delay added to each probe, up to this. Default `100ms`.
    #[serde(with = "crate::config::common::duration")]
    pub probe_jitter: Duration,
    /// Consecutive successes to go Up. Default 2.
    pub rise: u32,
    /// Consecutive failures to go Down. Default 3.
    pub fall: u32,
    /// Reports whose `sent_at` is older than this are ignored, and an edge whose last report
    /// is older than this no longer counts its load. Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub report_max_age: Duration,
    /// A report whose `sent_at` is later than the router's clock by more than this is refused
    /// (`cdn_reports_ingested_total{result="future"}`, HTTP 400), so a bogus timestamp can
    /// never make later genuine reports look out of order. Default `10s`.
    #[serde(with = "crate::config::common::duration")]
    pub report_max_clock_skew: Duration,
    /// An overloaded edge returns once its utilisation falls below this fraction of capacity
    /// (hysteresis). Default 0.9.
    pub overload_recover_ratio: f64,
    /// `https://` probe URLs: a PEM file of extra CA certificates trusted in addition to the
    /// built-in webpki (Mozilla) roots, e.g. a private CA that signs the edges' certificates.
    /// Relative to the config file's directory. Checked at start, `--check-config` and reload
    /// (unreadable or no certificate → config error); a changed file is re-read by the probes
    /// within a second (a bad new file is logged and the previous roots kept). Optional.
    pub probe_ca_file: Option<PathBuf>,
    /// `https://` probe URLs: verify the edge's certificate (chain to a trusted root, validity
    /// dates, the URL's host name). `false` accepts any certificate (self-signed labs); the
    /// TLS handshake must still succeed. Default true.
    pub probe_tls_verify: bool,
}

impl Default for HealthSection {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(1),
            probe_timeout: Duration::from_millis(500),
            probe_jitter: Duration::from_millis(100),
            rise: 2,
            fall: 3,
            report_max_age: Duration::from_secs(10),
            report_max_clock_skew: Duration::from_secs(10),
            overload_recover_ratio: 0.9,
            probe_ca_file: None,
            probe_tls_verify: true,
        }
    }
}

impl HealthSection {
    /// The `[health]` rules of [`RouterConfig`](super::RouterConfig)'s `validate`.
    pub(super) fn check(&self) -> Result<(), ConfigError> {
        let h = self;
        require_positive("health.probe_interval", h.probe_interval)?;
        require_positive("health.probe_timeout", h.probe_timeout)?;
        require_positive("health.report_max_age", h.report_max_age)?;
        require_positive("health.report_max_clock_skew", h.report_max_clock_skew)?;
        if h.rise == 0 {
            return Err(ConfigError::new("health.rise", "must be at least 1"));
        }
        if h.fall == 0 {
            return Err(ConfigError::new("health.fall", "must be at least 1"));
        }
        // 0 would never be reached (utilization is never below 0): an overloaded edge that
        // keeps reporting would stay overloaded for good.
        if !(h.overload_recover_ratio > 0.0 && h.overload_recover_ratio <= 1.0) {
            return Err(ConfigError::new(
                "health.overload_recover_ratio",
                "must be in (0, 1]",
            ));
        }
        if h.probe_ca_file
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::new(
                "health.probe_ca_file",
                "must not be empty (leave unset to trust only the built-in roots)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{RouterConfig, MIN};
    use super::*;

    #[test]
    fn the_overload_recover_ratio_is_above_zero() {
        for (v, ok) in [
            ("0.0", false),
            ("-0.1", false),
            ("1.1", false),
            ("0.01", true),
            ("1.0", true),
        ] {
            let r = crate::config::load_str::<RouterConfig>(&format!(
                "[health]\noverload_recover_ratio = {v}\n{MIN}"
            ));
            match r {
                Ok(_) => assert!(ok, "{v} accepted"),
                Err(e) => {
                    assert!(!ok, "{v}: {e}");
                    assert_eq!(e.key, "health.overload_recover_ratio");
                }
            }
        }
    }

    #[test]
    fn probe_tls_keys_default_and_validate() {
        let c: RouterConfig = crate::config::load_str(MIN).unwrap();
        assert_eq!(c.health.probe_ca_file, None);
        assert!(c.health.probe_tls_verify);
        let c: RouterConfig = crate::config::load_str(&format!(
            "[health]\nprobe_ca_file = \"ca.pem\"\nprobe_tls_verify = false\n{MIN}"
        ))
        .unwrap();
        assert_eq!(c.health.probe_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(!c.health.probe_tls_verify);
        let e = crate::config::load_str::<RouterConfig>(&format!(
            "[health]\nprobe_ca_file = \"\"\n{MIN}"
        ))
        .unwrap_err();
        assert_eq!(e.key, "health.probe_ca_file");
    }
}
