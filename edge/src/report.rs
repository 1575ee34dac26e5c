//! Health reports: every `report.interval` the reporter builds a
//! [`cdn_shared::report::HealthReport`] (status from [`crate::drain::Lifecycle`], load from
//! [`crate::load::LoadMeter`], cache figures from the store) and pushes it to every router in
//! `report.routers` (`POST <router>/api/v1/reports`, `Authorization: Bearer <report.token>`,
//! each POST bounded by `report.timeout`).
//!
//! * The reporter runs on its own thread with its own small runtime, so it keeps reporting
//!   when the client workers are saturated; the request path only bumps atomic counters.
//! * Per router there is a latest-value slot (a `watch` channel) and one sender task: a slow or
//!   dead router never delays the others and never builds a backlog — when a POST is still in
//!   flight at the next tick, the newer report replaces the unsent one.
//! * `seq` increases by one per report built; `boot_id` is random per process, so a router
//!   can tell a restarted edge from a replayed report.
//! * [`ReporterHandle::push_now`] (drain) sends one report to every router immediately and
//!   says whether all accepted it.
//!
//! The built-in sender ([`HttpSink`]) posts to `http://` and `https://` router URLs; over
//! HTTPS the router's certificate is always verified (webpki roots plus `report.tls_ca`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::report::{CacheFigures, Capacity, HealthReport, REPORT_VERSION};
use cdn_shared::shutdown::Shutdown;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

use crate::drain::Lifecycle;
use crate::load::LoadMeter;
use crate::metrics as m;

/// Cache sizes the store reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Stored objects.
    pub objects: u64,
    /// Memory tier bytes in use.
    pub memory_bytes: u64,
    /// Disk tier bytes in use.
    pub disk_bytes: u64,
}

/// Reads the store's current sizes (called once per interval on the reporter thread).
pub type CacheStatsFn = Arc<dyn Fn() -> CacheStats + Send + Sync>;

/// Where reports go: the real HTTP sender or a fake in tests.
pub trait ReportSink: Send + Sync + 'static {
    /// POST `report` to the router at base URL `router`; `Ok(status)` when the router
    /// answered, `Err(reason)` when it could not be reached.
    fn send<'a>(
        &'a self,
        router: &'a str,
        report: &'a HealthReport,
    ) -> BoxFuture<'a, Result<u16, String>>;
}

/// Reporter settings (from `[edge]` and `[report]`).
#[derive(Debug, Clone)]
pub struct ReporterConfig {
    /// Edge id.
    pub edge_id: String,
    /// Region.
    pub region: String,
    /// Router base URLs.
    pub routers: Vec<String>,
    /// Report interval.
    pub interval: Duration,
    /// Per-POST timeout.
    pub timeout: Duration,
    /// Announced capacity.
    pub capacity: Capacity,
}

impl ReporterConfig {
    /// From the edge config.
    pub fn from_config(c: &EdgeConfig) -> Self {
        Self {
            edge_id: c.edge.id.clone(),
            region: c.edge.region.clone(),
            routers: c.report.routers.clone(),
            interval: c.report.interval,
            timeout: c.report.timeout,
            capacity: c.report.capacity,
        }
    }
}

/// Builds reports; `seq` increases per report.
pub struct ReportBuilder {
    cfg: ReporterConfig,
    boot_id: u64,
    seq: AtomicU64,
    load: Arc<LoadMeter>,
    lifecycle: Arc<Lifecycle>,
    cache: CacheStatsFn,
}

impl std::fmt::Debug for ReportBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportBuilder")
            .field("edge_id", &self.cfg.edge_id)
            .field("boot_id", &self.boot_id)
            .finish()
    }
}

impl ReportBuilder {
    /// A builder with a random `boot_id`.
    pub fn new(
        cfg: ReporterConfig,
        load: Arc<LoadMeter>,
        lifecycle: Arc<Lifecycle>,
        cache: CacheStatsFn,
    ) -> Self {
        Self {
            cfg,
            boot_id: rand::random::<u64>(),
            seq: AtomicU64::new(0),
            load,
            lifecycle,
            cache,
        }
    }

    /// This process's boot id.
    pub fn boot_id(&self) -> u64 {
        self.boot_id
    }

    /// Build the next report (and refresh the load/cache gauges).
    pub fn build(&self) -> HealthReport {
        let snap = self.load.snapshot();
        let stats = (self.cache)();
        metrics::gauge!(m::ACTIVE_CONNECTIONS).set(snap.load.active_connections as f64);
        metrics::gauge!(m::REQUESTS_PER_SECOND).set(snap.load.requests_per_sec);
        metrics::gauge!(m::EGRESS_BYTES_PER_SECOND).set(snap.load.egress_bytes_per_sec);
        metrics::gauge!(m::CPU).set(snap.load.cpu);
        metrics::gauge!(m::HIT_RATIO).set(snap.hit_ratio);
        metrics::gauge!(m::CACHE_OBJECTS).set(stats.objects as f64);
        metrics::gauge!(m::CACHE_MEMORY_BYTES).set(stats.memory_bytes as f64);
        metrics::gauge!(m::CACHE_DISK_BYTES).set(stats.disk_bytes as f64);
        HealthReport {
            version: REPORT_VERSION,
            edge_id: self.cfg.edge_id.clone(),
            region: self.cfg.region.clone(),
            seq: self.seq.fetch_add(1, Ordering::SeqCst) + 1,
            boot_id: self.boot_id,
            sent_at_ms: cdn_shared::unix_ms(),
            status: self.lifecycle.status(),
            load: snap.load,
            capacity: self.cfg.capacity,
            cache: CacheFigures {
                objects: stats.objects,
                bytes: stats.memory_bytes + stats.disk_bytes,
                hit_ratio: snap.hit_ratio,
            },
        }
    }
}

enum Cmd {
    PushNow(oneshot::Sender<bool>),
}

/// Handle to the running reporter.
#[derive(Debug, Clone)]
pub struct ReporterHandle {
    cmd: mpsc::Sender<Cmd>,
}

impl ReporterHandle {
    /// Build a report now and send it to every router (each POST bounded by
    /// `report.timeout`). True when every router answered 2xx (also when none is configured).
    pub async fn push_now(&self) -> bool {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Cmd::PushNow(tx)).await.is_err() {
            return false;
        }
        rx.await.unwrap_or(false)
    }
}

fn outcome_label(r: &Result<u16, String>) -> String {
    match r {
        Ok(s) if (200..300).contains(s) => "ok".to_string(),
        Ok(s) => format!("http_{s}"),
        Err(e) if e == "timeout" => "timeout".to_string(),
        Err(_) => "error".to_string(),
    }
}

/// What to log when a router's answer to our reports changes from `prev` (`None`: first
/// report) to `now` (labels of [`outcome_label`]): a refusal names the likely cause once, not
/// on every report; recovery is logged once too. `None`: nothing to log.
fn transition_message(prev: Option<&str>, now: &str) -> Option<(bool, String)> {
    if prev == Some(now) || (prev.is_none() && now == "ok") {
        return None;
    }
    let warn = |m: &str| Some((true, m.to_string()));
    match now {
        "ok" => Some((false, "router accepts reports again".into())),
        "http_401" | "http_403" => {
            warn("router refuses reports: wrong or missing token (report.token vs the router's admin.token)")
        }
        "http_404" => warn("router refuses reports: it has no edge with this edge.id in its [[edges]]"),
        "http_409" => warn(
            "router refuses reports: this edge.region differs from the region the router's [[edges]] gives this edge.id",
        ),
        "timeout" => warn("router does not answer reports in time (report.timeout)"),
        "error" => warn("reports to this router fail (connection error)"),
        other => warn(&format!("router refuses reports ({other})")),
    }
}

async fn send_one(
    sink: &dyn ReportSink,
    router: &str,
    report: &HealthReport,
    timeout: Duration,
) -> bool {
    send_one_labelled(sink, router, report, timeout).await == "ok"
}

async fn send_one_labelled(
    sink: &dyn ReportSink,
    router: &str,
    report: &HealthReport,
    timeout: Duration,
) -> String {
    let r = match tokio::time::timeout(timeout, sink.send(router, report)).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_string()),
    };
    let label = outcome_label(&r);
    metrics::counter!(m::REPORTS, "router" => router.to_string(), "result" => label.clone())
        .increment(1);
    if label != "ok" {
        tracing::debug!(router, seq = report.seq, result = %label, error = ?r.err(), "report not accepted");
    }
    label
}

/// Start the reporter on its own thread. It reports every interval until `stop` is cancelled
/// (cancel it after the drain, not at SIGTERM, so draining reports keep flowing).
pub fn start(
    builder: ReportBuilder,
    sink: Arc<dyn ReportSink>,
    stop: Shutdown,
) -> std::io::Result<ReporterHandle> {
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    std::thread::Builder::new()
        .name("reporter".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "reporter runtime failed to start");
                    return;
                }
            };
            rt.block_on(run_reporter(builder, sink, stop, cmd_rx));
        })?;
    Ok(ReporterHandle { cmd: cmd_tx })
}

/// The reporter loop (runs until `stop`). Public for tests that drive it on their runtime.
async fn run_reporter(
    builder: ReportBuilder,
    sink: Arc<dyn ReportSink>,
    stop: Shutdown,
    mut cmd_rx: mpsc::Receiver<Cmd>,
) {
    let timeout = builder.cfg.timeout;
    let routers = builder.cfg.routers.clone();
    for r in &routers {
        if !r.starts_with("http://") && !r.starts_with("https://") && !r.starts_with("nats:") {
            tracing::warn!(router = %r, "reporter: only http:// and https:// routers are supported; reports to it will fail");
        }
    }
    // One latest-value slot and one sender task per router.
    let mut slots = Vec::new();
    for router in routers.clone() {
        let (tx, mut rx) = watch::channel::<Option<Arc<HealthReport>>>(None);
        slots.push(tx);
        let sink = sink.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut last: Option<String> = None;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    changed = rx.changed() => if changed.is_err() { break },
                }
                let report = rx.borrow_and_update().clone();
                if let Some(report) = report {
                    let label = send_one_labelled(&*sink, &router, &report, timeout).await;
                    match transition_message(last.as_deref(), &label) {
                        Some((true, m)) => tracing::warn!(router = %router, result = %label, "{m}"),
                        Some((false, m)) => tracing::info!(router = %router, "{m}"),
                        None => {}
                    }
                    last = Some(label);
                }
            }
        });
    }
    let mut tick = tokio::time::interval(builder.cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tick.tick() => {
                let report = Arc::new(builder.build());
                for slot in &slots {
                    slot.send_replace(Some(report.clone()));
                }
            }
            cmd = cmd_rx.recv() => match cmd {
                Some(Cmd::PushNow(ack)) => {
                    let report = builder.build();
                    let sends = routers
                        .iter()
                        .map(|r| send_one(&*sink, r, &report, timeout));
                    let all_ok = futures_util::future::join_all(sends).await.into_iter().all(|ok| ok);
                    let _ = ack.send(all_ok);
                }
                None => {}
            }
        }
    }
}

/// The built-in sender: HTTP/1.1 POST over a fresh TCP connection (`Connection: close`),
/// with TLS for `https://` routers (certificate verified against `tls`'s roots).
#[derive(Debug, Clone)]
pub struct HttpSink {
    token: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl HttpSink {
    /// A sender using `token` as the bearer token (plain `http://` routers only).
    pub fn new(token: Option<String>) -> Self {
        Self { token, tls: None }
    }

    /// A sender that also posts to `https://` routers, verifying their certificates with
    /// `tls` (e.g. [`crate::tls::client_config`] with `report.tls_ca`).
    pub fn with_tls(token: Option<String>, tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            token,
            tls: Some(tls),
        }
    }
}

/// `(https, host, port, path)` of `<router>/api/v1/reports`.
fn reports_target(router: &str) -> Result<(bool, String, u16, String), String> {
    let u = url::Url::parse(router).map_err(|e| format!("bad router URL: {e}"))?;
    let https = match u.scheme() {
        "http" => false,
        "https" => true,
        other => return Err(format!("unsupported scheme `{other}`")),
    };
    let host = u.host_str().ok_or("router URL has no host")?.to_string();
    let port = u
        .port_or_known_default()
        .unwrap_or(if https { 443 } else { 80 });
    let base = u.path().trim_end_matches('/');
    Ok((https, host, port, format!("{base}/api/v1/reports")))
}

/// Write `req` and read up to the status line.
async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut s: S,
    req: &[u8],
) -> Result<u16, String> {
    s.write_all(req).await.map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') || buf.len() > 4096 {
            break;
        }
    }
    parse_status(&buf).ok_or_else(|| "no HTTP status line".to_string())
}

/// Parse the status code of an HTTP/1.x status line.
fn parse_status(head: &[u8]) -> Option<u16> {
    let line = head.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

impl ReportSink for HttpSink {
    fn send<'a>(
        &'a self,
        router: &'a str,
        report: &'a HealthReport,
    ) -> BoxFuture<'a, Result<u16, String>> {
        Box::pin(async move {
            let (https, host, port, path) = reports_target(router)?;
            let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
            let connect_host = host.trim_start_matches('[').trim_end_matches(']');
            let s = tokio::net::TcpStream::connect((connect_host, port))
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = s.set_nodelay(true);
            let auth = self
                .token
                .as_deref()
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            let host_header = if port == if https { 443 } else { 80 } {
                host.clone()
            } else {
                format!("{host}:{port}")
            };
            let head = format!(
                "POST {path} HTTP/1.1\r\nHost: {host_header}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: cdn-edge-reporter\r\n\r\n",
                body.len()
            );
            let mut req = head.into_bytes();
            req.extend_from_slice(&body);
            if !https {
                return exchange(s, &req).await;
            }
            let tls = self
                .tls
                .clone()
                .ok_or("https router but no TLS client configured")?;
            let name = rustls::pki_types::ServerName::try_from(connect_host.to_string())
                .map_err(|e| format!("router name: {e}"))?;
            let s = tokio_rustls::TlsConnector::from(tls)
                .connect(name, s)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            exchange(s, &req).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::report::EdgeStatus;
    use parking_lot::Mutex;

    fn cfg(routers: &[&str], interval_ms: u64) -> ReporterConfig {
        ReporterConfig {
            edge_id: "use1".into(),
            region: "us-east".into(),
            routers: routers.iter().map(|s| s.to_string()).collect(),
            interval: Duration::from_millis(interval_ms),
            timeout: Duration::from_millis(200),
            capacity: Capacity::default(),
        }
    }

    fn builder(routers: &[&str], interval_ms: u64, l: Arc<Lifecycle>) -> ReportBuilder {
        let stats: CacheStatsFn = Arc::new(|| CacheStats {
            objects: 3,
            memory_bytes: 100,
            disk_bytes: 50,
        });
        ReportBuilder::new(cfg(routers, interval_ms), LoadMeter::new(), l, stats)
    }

    #[test]
    fn reports_count_up_and_carry_status() {
        let l = Lifecycle::new();
        let b = builder(&[], 1000, l.clone());
        let r1 = b.build();
        let r2 = b.build();
        assert_eq!((r1.seq, r2.seq), (1, 2));
        assert_eq!(r1.boot_id, r2.boot_id);
        assert_eq!(r1.status, EdgeStatus::Serving);
        assert_eq!(r1.cache.objects, 3);
        assert_eq!(r1.cache.bytes, 150);
        assert_eq!(r1.edge_id, "use1");
        l.start_draining();
        assert_eq!(b.build().status, EdgeStatus::Draining);
        let other = builder(&[], 1000, l);
        assert_ne!(other.boot_id(), r1.boot_id, "random per builder");
    }

    #[test]
    fn refusals_are_logged_once_with_their_cause() {
        assert_eq!(transition_message(None, "ok"), None);
        assert_eq!(transition_message(Some("ok"), "ok"), None);
        let (warn, m) = transition_message(None, "http_409").unwrap();
        assert!(warn && m.contains("edge.region"), "{m}");
        assert_eq!(transition_message(Some("http_409"), "http_409"), None);
        let (warn, m) = transition_message(Some("http_409"), "http_401").unwrap();
        assert!(warn && m.contains("token"), "{m}");
        assert!(transition_message(Some("ok"), "http_404")
            .unwrap()
            .1
            .contains("edge.id"));
        assert!(transition_message(Some("ok"), "http_500")
            .unwrap()
            .1
            .contains("http_500"));
        assert!(transition_message(Some("ok"), "timeout").unwrap().0);
        let (warn, m) = transition_message(Some("timeout"), "ok").unwrap();
        assert!(!warn && m.contains("again"), "{m}");
    }

    #[test]
    fn target_and_status_parsing() {
        assert_eq!(
            reports_target("http://127.0.0.1:8053").unwrap(),
            (
                false,
                "127.0.0.1".to_string(),
                8053,
                "/api/v1/reports".to_string()
            )
        );
        assert_eq!(
            reports_target("http://r.example/base/").unwrap().3,
            "/base/api/v1/reports"
        );
        assert_eq!(
            reports_target("https://r.example").unwrap(),
            (
                true,
                "r.example".to_string(),
                443,
                "/api/v1/reports".to_string()
            )
        );
        assert!(reports_target("ftp://r.example").is_err());
        assert_eq!(parse_status(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(parse_status(b"garbage"), None);
    }

    /// Records what it got; `slow` routers take 10 s to answer.
    #[derive(Default)]
    struct FakeSink {
        got: Mutex<Vec<(String, u64, EdgeStatus)>>,
        slow: Vec<String>,
    }

    impl ReportSink for FakeSink {
        fn send<'a>(
            &'a self,
            router: &'a str,
            report: &'a HealthReport,
        ) -> BoxFuture<'a, Result<u16, String>> {
            Box::pin(async move {
                if self.slow.iter().any(|s| s == router) {
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                self.got
                    .lock()
                    .push((router.to_string(), report.seq, report.status));
                Ok(200)
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_router_does_not_hold_back_the_others() {
        let sink = Arc::new(FakeSink {
            slow: vec!["http://slow".into()],
            ..Default::default()
        });
        let stop = Shutdown::new();
        let l = Lifecycle::new();
        let handle = start(
            builder(&["http://fast", "http://slow"], 20, l.clone()),
            sink.clone(),
            stop.clone(),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let fast: Vec<u64> = sink
                .got
                .lock()
                .iter()
                .filter(|(r, ..)| r == "http://fast")
                .map(|(_, s, _)| *s)
                .collect();
            if fast.len() >= 5 {
                assert!(fast.windows(2).all(|w| w[0] < w[1]), "{fast:?}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "fast router got {fast:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!sink.got.lock().iter().any(|(r, ..)| r == "http://slow"));
        // push_now: the slow router times out (200 ms) → false, but the fast one got a
        // draining report.
        l.start_draining();
        assert!(!handle.push_now().await);
        assert!(sink
            .got
            .lock()
            .iter()
            .any(|(r, _, st)| r == "http://fast" && *st == EdgeStatus::Draining));
        stop.cancel();
    }

    #[tokio::test]
    async fn http_sink_posts_json_with_the_token() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read until the body is complete.
            loop {
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if buf.len() >= i + 4 + len {
                        s.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
                            .await
                            .unwrap();
                        return (text[..i].to_string(), text[i + 4..].to_string());
                    }
                }
                if n == 0 {
                    panic!("client closed early");
                }
            }
        });
        let b = builder(&[], 1000, Lifecycle::new());
        let report = b.build();
        let sink = HttpSink::new(Some("s3cret".into()));
        let status = sink.send(&format!("http://{addr}"), &report).await.unwrap();
        assert_eq!(status, 202);
        let (head, body) = server.await.unwrap();
        assert!(head.starts_with("POST /api/v1/reports HTTP/1.1"), "{head}");
        assert!(head.contains("Authorization: Bearer s3cret"), "{head}");
        let back: HealthReport = serde_json::from_str(&body).unwrap();
        assert_eq!(back, report);
        // Nobody listening: an error, not a hang.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        assert!(sink
            .send(&format!("http://{closed}"), &report)
            .await
            .is_err());
    }
}
