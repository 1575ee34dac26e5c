//! The names of health: why a probe failed ([`ProbeFailure`]), what the latest probe said
//! ([`ProbeOutcome`]) and why an edge is in its state ([`Reason`]). Each is an enum whose
//! `as_str()` is what the admin API serialises, the metrics label and the logs show
//! (`probe_timeout`, `http_503`, `manual`, …); the set of values is the enum.

use std::fmt;
use std::sync::OnceLock;

use serde::{Serialize, Serializer};

/// Why a probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// No complete status line within `health.probe_timeout`.
    Timeout,
    /// The edge answered with a status other than 200 (100..=599: the probe reads no other).
    Http(u16),
    /// TCP connection refused (nothing listening).
    ConnectRefused,
    /// Another connection error (unreachable, reset, name resolution).
    Connect,
    /// The answer was not an HTTP/1.x status line.
    BadResponse,
    /// `https://`: the TLS handshake failed for a reason other than the certificate (a
    /// protocol error or alert, or the peer does not speak TLS).
    TlsHandshake,
    /// `https://`: the certificate chain does not lead to a trusted root (unknown issuer, bad
    /// signature): see `health.probe_ca_file`.
    TlsCertUntrusted,
    /// `https://`: the certificate is expired or not yet valid.
    TlsCertExpired,
    /// `https://`: the certificate is not valid for the probe URL's host name.
    TlsCertName,
    /// `https://`: another certificate problem (encoding, purpose, revocation, algorithm).
    TlsCert,
    /// `https://`: the probe TLS settings could not be loaded (`health.probe_ca_file` became
    /// unreadable after the config was checked).
    TlsConfig,
}

/// `http_<code>` for a status code, as a `&'static str` (the strings of 100..=999 are built
/// once; a code outside reads `http_invalid`).
fn http_reason(code: u16) -> &'static str {
    static NAMES: OnceLock<Box<[String]>> = OnceLock::new();
    let names = NAMES.get_or_init(|| (0..1000).map(|c| format!("http_{c}")).collect());
    match names.get(usize::from(code)) {
        Some(name) if code >= 100 => name,
        _ => "http_invalid",
    }
}

impl ProbeFailure {
    /// `probe_timeout`, `http_<code>`, `connect_refused`, `connect_error`, `bad_response`,
    /// `tls_handshake`, `tls_cert_untrusted`, `tls_cert_expired`, `tls_cert_name`, `tls_cert`,
    /// `tls_config`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeFailure::Timeout => "probe_timeout",
            ProbeFailure::Http(code) => http_reason(code),
            ProbeFailure::ConnectRefused => "connect_refused",
            ProbeFailure::Connect => "connect_error",
            ProbeFailure::BadResponse => "bad_response",
            ProbeFailure::TlsHandshake => "tls_handshake",
            ProbeFailure::TlsCertUntrusted => "tls_cert_untrusted",
            ProbeFailure::TlsCertExpired => "tls_cert_expired",
            ProbeFailure::TlsCertName => "tls_cert_name",
            ProbeFailure::TlsCert => "tls_cert",
            ProbeFailure::TlsConfig => "tls_config",
        }
    }
}

/// What the latest probe said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// HTTP 200.
    Ok,
    /// It failed, for this reason.
    Failed(ProbeFailure),
}

impl ProbeOutcome {
    /// `http_200`, or the failure's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeOutcome::Ok => "http_200",
            ProbeOutcome::Failed(f) => f.as_str(),
        }
    }
}

/// Why an edge is in its state, in the priority order of `state::apply` (module docs of
/// [`super::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Unknown: no evidence yet.
    NoData,
    /// Up: probes succeed.
    ProbeOk,
    /// Down (or failing while Unknown) for this probe failure.
    Probe(ProbeFailure),
    /// Down without a recorded probe failure (a fallback: `apply` records every failure).
    ProbeFailed,
    /// Drained by an operator.
    Manual,
    /// The edge reported `draining`.
    Draining,
    /// Reported load above capacity.
    Overloaded,
    /// The latest report is older than `report_max_age`.
    ReportStale,
}

impl Reason {
    /// `no_data`, `probe_ok`, a probe failure's name, `probe_failed`, `manual`, `draining`,
    /// `overloaded`, `report_stale`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NoData => "no_data",
            Reason::ProbeOk => "probe_ok",
            Reason::Probe(f) => f.as_str(),
            Reason::ProbeFailed => "probe_failed",
            Reason::Manual => "manual",
            Reason::Draining => "draining",
            Reason::Overloaded => "overloaded",
            Reason::ReportStale => "report_stale",
        }
    }
}

macro_rules! named {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}

named!(ProbeFailure, ProbeOutcome, Reason);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_api_strings() {
        assert_eq!(ProbeFailure::Timeout.as_str(), "probe_timeout");
        assert_eq!(ProbeFailure::Http(500).as_str(), "http_500");
        assert_eq!(ProbeFailure::Http(503).to_string(), "http_503");
        assert_eq!(ProbeFailure::Http(100).as_str(), "http_100");
        assert_eq!(ProbeFailure::Http(599).as_str(), "http_599");
        assert_eq!(ProbeFailure::Http(99).as_str(), "http_invalid");
        assert_eq!(ProbeFailure::Http(1000).as_str(), "http_invalid");
        assert_eq!(ProbeFailure::ConnectRefused.as_str(), "connect_refused");
        assert_eq!(ProbeFailure::Connect.as_str(), "connect_error");
        assert_eq!(ProbeFailure::BadResponse.as_str(), "bad_response");
        assert_eq!(ProbeFailure::TlsHandshake.as_str(), "tls_handshake");
        assert_eq!(
            ProbeFailure::TlsCertUntrusted.as_str(),
            "tls_cert_untrusted"
        );
        assert_eq!(ProbeFailure::TlsCertExpired.as_str(), "tls_cert_expired");
        assert_eq!(ProbeFailure::TlsCertName.as_str(), "tls_cert_name");
        assert_eq!(ProbeFailure::TlsCert.as_str(), "tls_cert");
        assert_eq!(ProbeFailure::TlsConfig.as_str(), "tls_config");
        assert_eq!(ProbeOutcome::Ok.as_str(), "http_200");
        assert_eq!(
            ProbeOutcome::Failed(ProbeFailure::Http(404)).as_str(),
            "http_404"
        );
        for (r, s) in [
            (Reason::NoData, "no_data"),
            (Reason::ProbeOk, "probe_ok"),
            (Reason::Probe(ProbeFailure::Timeout), "probe_timeout"),
            (Reason::ProbeFailed, "probe_failed"),
            (Reason::Manual, "manual"),
            (Reason::Draining, "draining"),
            (Reason::Overloaded, "overloaded"),
            (Reason::ReportStale, "report_stale"),
        ] {
            assert_eq!(r.as_str(), s);
            assert_eq!(serde_json::to_string(&r).unwrap(), format!("\"{s}\""));
        }
    }
}
