//! Active probes: one task per edge sends `GET <probe_url>` every `health.probe_interval`
//! (plus up to `health.probe_jitter` of random delay), bounded by `health.probe_timeout`, and
//! feeds the result to [`HealthState::event`]. HTTP 200 is success; anything else is a failure
//! with a reason (`http_<code>`, `probe_timeout`, `connect_refused`, …).
//!
//! The HTTP client is a minimal HTTP/1.1 GET over a tokio `TcpStream` (`Connection: close`;
//! only the status line is read). `https://` probe URLs run the same GET over TLS (rustls,
//! [`tls_connector`]): SNI is the URL's host name (none for an IP address), and the
//! certificate is verified against the built-in webpki (Mozilla) roots plus the PEM file
//! `health.probe_ca_file`, unless `health.probe_tls_verify = false`. The TLS handshake counts
//! in `health.probe_timeout`. TLS failures have their own reasons: `tls_cert_untrusted`
//! (unknown issuer, bad signature), `tls_cert_expired`, `tls_cert_name` (not valid for the
//! host), `tls_cert` (other certificate errors), `tls_handshake` (protocol error, alert, not
//! TLS), `tls_config` (the CA file became unreadable after the config was checked).
//!
//! [`supervise`] follows the probe plan that [`HealthState::reconcile`] publishes: probes
//! start as soon as the config is loaded, a reload starts new edges' probes at once and stops
//! removed edges' probes; an edge whose URL or probe settings changed is restarted. The TLS
//! settings are rebuilt when the plan changes and when the CA file changes on disk (checked
//! on the supervisor's 250 ms tick), so a rotated CA is picked up without a reload.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use cdn_geo::reload::FileWatch;
use cdn_shared::config::router::HealthSection;
use cdn_shared::config::ConfigError;
use cdn_shared::shutdown::Shutdown;
use rand::Rng;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::state::{Event, HealthState, ProbeFailure, ProbeTarget};
use crate::metrics::names;

/// A parsed `http://` or `https://` probe URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    /// Host name or address (no brackets for IPv6).
    pub host: String,
    /// Port (default 80, or 443 for `https://`).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
    /// Value of the `Host` header.
    pub host_header: String,
    /// `https://` only: the name sent as SNI and checked against the certificate.
    pub tls_name: Option<ServerName<'static>>,
}

impl ProbeUrl {
    /// Parse; `None` for anything but an `http://` or `https://` URL with a host.
    pub fn parse(s: &str) -> Option<Self> {
        let u = url::Url::parse(s).ok()?;
        let tls = match u.scheme() {
            "http" => false,
            "https" => true,
            _ => return None,
        };
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        let port = u
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        let mut path = u.path().to_string();
        if let Some(q) = u.query() {
            path.push('?');
            path.push_str(q);
        }
        let host_header = match (u.host_str(), u.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => host.clone(),
        };
        let tls_name = if tls {
            Some(ServerName::try_from(host.clone()).ok()?)
        } else {
            None
        };
        Some(Self {
            host,
            port,
            path,
            host_header,
            tls_name,
        })
    }
}

/// `health.probe_ca_file` made absolute against `base_dir` (the config file's directory), as
/// every other file the config names. Call before the section is used for probes.
pub fn resolve_paths(section: &mut HealthSection, base_dir: &Path) {
    if let Some(p) = &section.probe_ca_file {
        if p.is_relative() {
            section.probe_ca_file = Some(base_dir.join(p));
        }
    }
}

/// Every edge's probe URL parses as the probes need it (an `https://` host must also be a valid
/// TLS server name: a label ending in `-` passes a URL parser, not rustls), so an edge is never
/// left unprobed — and answered — because its URL was refused only at probe time.
pub fn check_urls(edges: &[cdn_shared::config::router::EdgeEntry]) -> Result<(), ConfigError> {
    for (i, e) in edges.iter().enumerate() {
        let url = e.probe_url();
        if !url.is_empty() && ProbeUrl::parse(&url).is_none() {
            return Err(ConfigError::new(
                format!("edges[{i}].probe_url"),
                format!("`{url}` cannot be probed: not an http(s) URL with a valid host name"),
            ));
        }
    }
    Ok(())
}

/// The `--check-config` / reload check of the probe TLS settings: the CA file (relative to
/// `base_dir`) must be readable and hold at least one PEM certificate.
pub fn check_tls(section: &HealthSection, base_dir: &Path) -> Result<(), ConfigError> {
    let mut s = section.clone();
    resolve_paths(&mut s, base_dir);
    tls_connector(&s).map(|_| ())
}

/// The TLS client of `https://` probes: see [`client_config`].
pub fn tls_connector(section: &HealthSection) -> Result<TlsConnector, ConfigError> {
    client_config(section).map(TlsConnector::from)
}

/// The TLS client config for the edges' `https://` URLs — probes and the purge fan-out to
/// `admin_url`: webpki roots plus `health.probe_ca_file` (as given: see [`resolve_paths`]), or
/// no verification when `health.probe_tls_verify = false` (the CA file is then ignored).
/// Errors name `health.probe_ca_file`.
pub fn client_config(section: &HealthSection) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    const KEY: &str = "health.probe_ca_file";
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::new(KEY, format!("TLS setup: {e}")))?;
    let mut cfg = if section.probe_tls_verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &section.probe_ca_file {
            let shown = path.display();
            let pem =
                std::fs::read(path).map_err(|e| ConfigError::new(KEY, format!("{shown}: {e}")))?;
            let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| ConfigError::new(KEY, format!("{shown}: bad PEM: {e}")))?;
            if certs.is_empty() {
                return Err(ConfigError::new(
                    KEY,
                    format!("{shown}: no PEM certificate found"),
                ));
            }
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| ConfigError::new(KEY, format!("{shown}: {e}")))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(cdn_shared::tls::AcceptAnyCert(provider)))
            .with_no_client_auth()
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// One probe: `Ok(())` on HTTP 200. `tls` is used for `https://` URLs (`None` there means
/// the TLS settings could not be loaded: `tls_config`). Connect, TLS handshake, request and
/// status line all count in `timeout`.
pub async fn probe_once(
    url: &ProbeUrl,
    timeout: Duration,
    tls: Option<&TlsConnector>,
) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(timeout, get_status(url, tls)).await {
        Err(_) => Err(ProbeFailure::Timeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(200)) => Ok(()),
        Ok(Ok(code)) => Err(ProbeFailure::Http(code)),
    }
}

async fn get_status(url: &ProbeUrl, tls: Option<&TlsConnector>) -> Result<u16, ProbeFailure> {
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ProbeFailure::ConnectRefused,
            _ => ProbeFailure::Connect,
        })?;
    let _ = stream.set_nodelay(true);
    match &url.tls_name {
        None => exchange(stream, url).await,
        Some(name) => {
            let connector = tls.ok_or(ProbeFailure::TlsConfig)?;
            let stream = connector
                .connect(name.clone(), stream)
                .await
                .map_err(|e| tls_failure(&e))?;
            exchange(stream, url).await
        }
    }
}

/// Send the GET and read up to the end of the status line.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    url: &ProbeUrl,
) -> Result<u16, ProbeFailure> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cdn-dns-router-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path, url.host_header
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|_| ProbeFailure::Connect)?;
    stream.flush().await.map_err(|_| ProbeFailure::Connect)?;
    let mut buf = [0u8; 512];
    let mut len = 0;
    loop {
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(|_| ProbeFailure::Connect)?;
        if n == 0 {
            break;
        }
        len += n;
        if buf[..len].windows(2).any(|w| w == b"\r\n") || len == buf.len() {
            break;
        }
    }
    parse_status_line(&buf[..len]).ok_or(ProbeFailure::BadResponse)
}

/// Classify a failed TLS handshake (tokio-rustls wraps the `rustls::Error` in the
/// `io::Error`).
pub fn tls_failure(e: &std::io::Error) -> ProbeFailure {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => cert_failure(c),
        _ => ProbeFailure::TlsHandshake,
    }
}

fn cert_failure(c: &rustls::CertificateError) -> ProbeFailure {
    use rustls::CertificateError as C;
    match c {
        C::UnknownIssuer | C::BadSignature => ProbeFailure::TlsCertUntrusted,
        C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
            ProbeFailure::TlsCertExpired
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => ProbeFailure::TlsCertName,
        _ => ProbeFailure::TlsCert,
    }
}

/// `HTTP/1.x NNN ...\r\n` → `NNN`.
pub fn parse_status_line(buf: &[u8]) -> Option<u16> {
    let end = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..end]).ok()?;
    let mut parts = line.splitn(3, ' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok().filter(|c| (100..600).contains(c))
}

fn jitter(max: Duration) -> Duration {
    let ms = max.as_millis() as u64;
    if ms == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::rng().random_range(0..=ms))
}

/// Probe one edge until `stop` is cancelled.
async fn probe_loop(
    state: Arc<HealthState>,
    target: ProbeTarget,
    section: HealthSection,
    tls: Arc<ArcSwapOption<TlsConnector>>,
    stop: Shutdown,
) {
    let Some(url) = ProbeUrl::parse(&target.url) else {
        // Config validation accepts only http:// and https:// URLs with a host.
        tracing::error!(edge = %target.id, url = %target.url,
            "probe URL is not an http:// or https:// URL; edge is not probed");
        return;
    };
    // A small random offset so many edges are not probed in lock-step; the first probe still
    // runs right after the config loads.
    let first = Instant::now() + jitter(section.probe_jitter.min(section.probe_interval));
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = tokio::time::sleep_until(first) => {}
    }
    loop {
        let started = Instant::now();
        let connector = tls.load_full();
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = probe_once(&url, section.probe_timeout, connector.as_deref()) => r,
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let event = match result {
            Ok(()) => Event::ProbeOk { latency_ms },
            Err(failure) => {
                metrics::counter!(names::PROBE_FAILURES,
                    "edge" => target.id.clone(), "reason" => failure.as_str())
                .increment(1);
                tracing::debug!(edge = %target.id, reason = %failure, "probe failed");
                Event::ProbeFailed {
                    failure,
                    latency_ms,
                }
            }
        };
        if state
            .event(&target.id, event, cdn_shared::unix_ms())
            .is_err()
        {
            return; // removed by a reload
        }
        let next = started + section.probe_interval + jitter(section.probe_jitter);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
    }
}

/// (Re)build the TLS client of https probes.
fn load_tls(tls: &ArcSwapOption<TlsConnector>, section: &HealthSection) {
    match tls_connector(section) {
        Ok(c) => tls.store(Some(Arc::new(c))),
        // Keep what was loaded before (e.g. a CA file caught half-written); with nothing
        // loaded, https probes fail with `tls_config`.
        Err(e) => tracing::error!(error = %e,
            "https probes cannot load their TLS settings; keeping the previous ones"),
    }
}

/// Run probes for the current plan and follow its changes; also run the staleness tick.
/// Returns when `shutdown` is cancelled (all probe tasks stopped).
pub async fn supervise(state: Arc<HealthState>, shutdown: Shutdown) {
    let mut plan_rx = state.subscribe();
    let mut running: HashMap<String, (ProbeTarget, HealthSection, Shutdown)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    let tls: Arc<ArcSwapOption<TlsConnector>> = Arc::new(ArcSwapOption::empty());
    let mut tls_for: Option<(Option<std::path::PathBuf>, bool)> = None;
    let mut ca_watch: Option<FileWatch> = None;
    loop {
        if first || plan_rx.has_changed().unwrap_or(false) {
            first = false;
            let plan = plan_rx.borrow_and_update().clone();
            let settings = (
                plan.section.probe_ca_file.clone(),
                plan.section.probe_tls_verify,
            );
            if tls_for.as_ref() != Some(&settings) {
                ca_watch = settings.0.as_ref().map(FileWatch::new);
                load_tls(&tls, &plan.section);
                tls_for = Some(settings);
            }
            running.retain(|id, (target, section, stop)| {
                let keep = plan
                    .targets
                    .iter()
                    .any(|t| t == target && *section == plan.section && &t.id == id);
                if !keep {
                    stop.cancel();
                }
                keep
            });
            for t in &plan.targets {
                if !running.contains_key(&t.id) {
                    let stop = shutdown.child_token();
                    tokio::spawn(probe_loop(
                        state.clone(),
                        t.clone(),
                        plan.section.clone(),
                        tls.clone(),
                        stop.clone(),
                    ));
                    running.insert(t.id.clone(), (t.clone(), plan.section.clone(), stop));
                }
            }
            tracing::debug!(edges = running.len(), "probe plan applied");
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            changed = plan_rx.changed() => {
                if changed.is_err() {
                    break;
                }
                // Re-read at the top of the loop.
                first = true;
            }
            _ = tick.tick() => {
                state.tick(cdn_shared::unix_ms());
                // A rotated CA file (same path, new contents) is picked up here.
                if ca_watch.as_mut().is_some_and(|w| w.poll().unwrap_or(false)) {
                    load_tls(&tls, &plan_rx.borrow().section);
                }
            }
        }
    }
    for (_, (_, _, stop)) in running {
        stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_probe_urls() {
        let u = ProbeUrl::parse("http://127.0.1.1:8081/healthz?x=1").unwrap();
        assert_eq!(u.host, "127.0.1.1");
        assert_eq!(u.port, 8081);
        assert_eq!(u.path, "/healthz?x=1");
        assert_eq!(u.host_header, "127.0.1.1:8081");
        let u = ProbeUrl::parse("http://[::1]/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str()),
            ("::1", 80, "[::1]")
        );
        let u = ProbeUrl::parse("http://edge.example").unwrap();
        assert_eq!(u.path, "/");
        assert_eq!(u.tls_name, None);
        let u = ProbeUrl::parse("https://edge.example/healthz").unwrap();
        assert_eq!((u.port, u.host_header.as_str()), (443, "edge.example"));
        assert_eq!(
            u.tls_name,
            Some(ServerName::try_from("edge.example").unwrap())
        );
        let u = ProbeUrl::parse("https://[::1]:8443/").unwrap();
        assert_eq!(u.port, 8443);
        assert!(matches!(u.tls_name, Some(ServerName::IpAddress(_))));
        assert!(ProbeUrl::parse("ftp://edge.example/").is_none());
        assert!(ProbeUrl::parse("not a url").is_none());
    }

    #[test]
    fn classifies_tls_errors() {
        use rustls::CertificateError as C;
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let cert = |c: C| tls_failure(&io(rustls::Error::InvalidCertificate(c)));
        assert_eq!(cert(C::UnknownIssuer), ProbeFailure::TlsCertUntrusted);
        assert_eq!(cert(C::BadSignature), ProbeFailure::TlsCertUntrusted);
        assert_eq!(cert(C::Expired), ProbeFailure::TlsCertExpired);
        assert_eq!(cert(C::NotValidYet), ProbeFailure::TlsCertExpired);
        assert_eq!(cert(C::NotValidForName), ProbeFailure::TlsCertName);
        assert_eq!(cert(C::Revoked), ProbeFailure::TlsCert);
        assert_eq!(
            tls_failure(&io(rustls::Error::AlertReceived(
                rustls::AlertDescription::HandshakeFailure
            ))),
            ProbeFailure::TlsHandshake
        );
        assert_eq!(
            tls_failure(&std::io::ErrorKind::UnexpectedEof.into()),
            ProbeFailure::TlsHandshake
        );
    }

    #[test]
    fn tls_settings_name_the_ca_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = HealthSection {
            probe_ca_file: Some("ca.pem".into()),
            ..HealthSection::default()
        };
        let e = check_tls(&s, dir.path()).unwrap_err();
        assert_eq!(e.key, "health.probe_ca_file");
        assert!(e.message.contains("ca.pem"), "{e}");
        std::fs::write(dir.path().join("ca.pem"), "not a certificate\n").unwrap();
        let e = check_tls(&s, dir.path()).unwrap_err();
        assert!(e.message.contains("no PEM certificate"), "{e}");
        // Without verification the CA file is not used.
        s.probe_tls_verify = false;
        check_tls(&s, dir.path()).unwrap();
        // Relative paths resolve against the config directory; absolute ones stay.
        resolve_paths(&mut s, Path::new("/etc/cdn"));
        assert_eq!(
            s.probe_ca_file.as_deref(),
            Some(Path::new("/etc/cdn/ca.pem"))
        );
        resolve_paths(&mut s, Path::new("/elsewhere"));
        assert_eq!(
            s.probe_ca_file.as_deref(),
            Some(Path::new("/etc/cdn/ca.pem"))
        );
        check_tls(&HealthSection::default(), dir.path()).unwrap();
    }

    #[test]
    fn parses_status_lines() {
        assert_eq!(parse_status_line(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(
            parse_status_line(b"HTTP/1.0 503 Service Unavailable\r\nX: y"),
            Some(503)
        );
        assert_eq!(parse_status_line(b"HTTP/1.1 204\r\n"), Some(204));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 200 OK"),
            None,
            "incomplete line"
        );
        assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 2000 OK\r\n"), None);
        assert_eq!(parse_status_line(b"HTTP/1.1 999 OK\r\n"), None);
    }
}
