//! Active probes: one task per edge sends `GET <probe_url>` every `health.probe_interval`
//! (plus up to `health.probe_jitter` of random delay), bounded by `health.probe_timeout`, and
//! feeds the result to [`HealthState::event`]. HTTP 200 is success; anything else is a failure
//! with a reason (`http_<code>`, `probe_timeout`, `connect_refused`, …).
//!
//! The HTTP client is a minimal HTTP/1.1 GET over a tokio `TcpStream` (`Connection: close`;
//! only the status line is read). Only `http://` probe URLs are probed: an `https://` probe URL
//! is logged as unsupported, shown in the admin API as reason `probe_unsupported`, and the edge
//! keeps its other evidence (it stays `Unknown`, which is usable; reports still count).
//!
//! [`supervise`] follows the probe plan that [`HealthState::reconcile`] publishes: probes
//! start as soon as the config is loaded, a reload starts new edges' probes at once and stops
//! removed edges' probes; an edge whose URL or probe settings changed is restarted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use cdn_shared::config::router::HealthSection;
use cdn_shared::shutdown::Shutdown;
use rand::Rng;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::state::{Event, HealthState, ProbeFailure, ProbeTarget};
use crate::metrics::names;

/// A parsed `http://` probe URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeUrl {
    /// Host name or address (no brackets for IPv6).
    pub host: String,
    /// Port (default 80).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
    /// Value of the `Host` header.
    pub host_header: String,
}

impl ProbeUrl {
    /// Parse; `None` for anything but an `http://` URL with a host.
    pub fn parse(s: &str) -> Option<Self> {
        let u = url::Url::parse(s).ok()?;
        if u.scheme() != "http" {
            return None;
        }
        let host = match u.host()? {
            url::Host::Domain(d) => d.to_string(),
            url::Host::Ipv4(a) => a.to_string(),
            url::Host::Ipv6(a) => a.to_string(),
        };
        let port = u.port_or_known_default().unwrap_or(80);
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
        Some(Self {
            host,
            port,
            path,
            host_header,
        })
    }
}

/// One probe: `Ok(())` on HTTP 200.
pub async fn probe_once(url: &ProbeUrl, timeout: Duration) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(timeout, get_status(url)).await {
        Err(_) => Err(ProbeFailure::Timeout),
        Ok(Err(e)) => Err(e),
        Ok(Ok(200)) => Ok(()),
        Ok(Ok(code)) => Err(ProbeFailure::Http(code)),
    }
}

async fn get_status(url: &ProbeUrl) -> Result<u16, ProbeFailure> {
    let mut stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => ProbeFailure::ConnectRefused,
            _ => ProbeFailure::Connect,
        })?;
    let _ = stream.set_nodelay(true);
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: cdn-dns-router-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        url.path, url.host_header
    );
    stream
        .write_all(req.as_bytes())
        .await
        .map_err(|_| ProbeFailure::Connect)?;
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
    stop: Shutdown,
) {
    let Some(url) = ProbeUrl::parse(&target.url) else {
        tracing::warn!(edge = %target.id, url = %target.url,
            "probe URL is not http:// (https probes are unsupported); edge is not probed");
        let _ = state.event(&target.id, Event::ProbeUnsupported, cdn_shared::unix_ms());
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
        let result = tokio::select! {
            _ = stop.cancelled() => return,
            r = probe_once(&url, section.probe_timeout) => r,
        };
        let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
        let event = match result {
            Ok(()) => Event::ProbeOk { latency_ms },
            Err(failure) => {
                metrics::counter!(names::PROBE_FAILURES,
                    "edge" => target.id.clone(), "reason" => failure.reason())
                .increment(1);
                tracing::debug!(edge = %target.id, reason = %failure.reason(), "probe failed");
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

/// Run probes for the current plan and follow its changes; also run the staleness tick.
/// Returns when `shutdown` is cancelled (all probe tasks stopped).
pub async fn supervise(state: Arc<HealthState>, shutdown: Shutdown) {
    let mut plan_rx = state.subscribe();
    let mut running: HashMap<String, (ProbeTarget, HealthSection, Shutdown)> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut first = true;
    loop {
        if first || plan_rx.has_changed().unwrap_or(false) {
            first = false;
            let plan = plan_rx.borrow_and_update().clone();
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
            _ = tick.tick() => state.tick(cdn_shared::unix_ms()),
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
        assert!(ProbeUrl::parse("https://edge.example/healthz").is_none());
        assert!(ProbeUrl::parse("not a url").is_none());
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
