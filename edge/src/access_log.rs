//! Access log: one line per client response, written off the request path.
//!
//! The request path hands an [`AccessEntry`] to [`AccessLog::log`], which only tries to push it
//! into a bounded channel (8192 entries); a writer thread formats and writes lines (buffered,
//! flushed when the queue runs dry). When the writer falls behind, entries are dropped and
//! counted in `cdn_edge_access_log_dropped_total`; the request path never waits for the disk.
//!
//! Formats (`[access_log].format`):
//! * `json` — one object per line:
//!   `{"ts":"2026-11-22T01:02:03.456Z","client":"127.0.0.1","method":"GET","host":"cdn.example",
//!   "path":"/a?b=1","proto":"HTTP/1.1","status":200,"bytes":1024,"ms":0.42,"cache":"HIT",
//!   "origin_ms":null,"referer":null,"ua":"curl/8"}`
//!   (`ms` = time until the response head was ready (bodies stream after it); `bytes` = body
//!   length when known up front, else 0; `origin_ms` = time to the origin's response headers,
//!   null when the origin was not contacted);
//! * `combined` — Apache combined format followed by cache status, ms and origin ms:
//!   `127.0.0.1 - - [22/Nov/2026:01:02:03 +0000] "GET /a HTTP/1.1" 200 1024 "-" "curl/8" HIT 0.420 -`.

use std::io::{self, Write};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cdn_shared::config::edge::{AccessLogFormat, AccessLogSection};
use serde::Serialize;

/// Time to the origin's response headers for one request; the handler stores it in the
/// request's extensions when it contacted the origin, and the access log reports it as
/// `origin_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginTime(pub Duration);

/// Queue capacity between the request path and the writer thread.
pub const QUEUE: usize = 8192;

/// One client response.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AccessEntry {
    /// When the request arrived (serialised as RFC 3339 UTC with milliseconds).
    #[serde(rename = "ts", serialize_with = "ser_rfc3339")]
    pub time: SystemTime,
    /// Client address.
    pub client: String,
    /// Request method.
    pub method: String,
    /// Host header (or authority).
    pub host: String,
    /// Path and query as received.
    pub path: String,
    /// `HTTP/1.1`, `HTTP/2.0`…
    pub proto: String,
    /// Response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// Total time in milliseconds.
    pub ms: f64,
    /// Cache status (`HIT`, `MISS`, `STALE`, `REVALIDATED`, `BYPASS`, …).
    pub cache: String,
    /// Time to the origin's response headers, when the origin was contacted.
    pub origin_ms: Option<f64>,
    /// Referer header.
    pub referer: Option<String>,
    /// User-Agent header.
    pub ua: Option<String>,
    /// Why the edge refused the request itself (a host rule: `rate_limited`,
    /// `signature_expired`, `geo_country`, …); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

fn ser_rfc3339<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn split_time(t: SystemTime) -> ((i64, u32, u32), u64, u64, u64, u32) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let day = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    (
        civil(day),
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis(),
    )
}

/// `2026-11-22T01:02:03.456Z`
pub fn rfc3339(t: SystemTime) -> String {
    let ((y, mo, d), h, mi, s, ms) = split_time(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `22/Nov/2026:01:02:03 +0000`
pub fn clf_time(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((y, mo, d), h, mi, s, _) = split_time(t);
    format!(
        "{d:02}/{}/{y:04}:{h:02}:{mi:02}:{s:02} +0000",
        MONTHS[(mo - 1) as usize]
    )
}

fn quoted(s: Option<&str>) -> String {
    match s {
        None | Some("") => "\"-\"".to_string(),
        Some(v) => format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")),
    }
}

/// Format one line (without the newline).
pub fn format_line(e: &AccessEntry, format: AccessLogFormat) -> String {
    match format {
        AccessLogFormat::Json => serde_json::to_string(e).unwrap_or_default(),
        AccessLogFormat::Combined => {
            let request = format!("{} {} {}", e.method, e.path, e.proto);
            format!(
                "{} - - [{}] {} {} {} {} {} {} {:.3} {}",
                e.client,
                clf_time(e.time),
                quoted(Some(&request)),
                e.status,
                e.bytes,
                quoted(e.referer.as_deref()),
                quoted(e.ua.as_deref()),
                if e.cache.is_empty() { "-" } else { &e.cache },
                e.ms,
                e.origin_ms
                    .map(|o| format!("{o:.3}"))
                    .unwrap_or_else(|| "-".into()),
            ) + &e.reason.map(|r| format!(" reason={r}")).unwrap_or_default()
        }
    }
}

/// Handle to the access log; cheap to clone. A disabled log drops entries at no cost.
#[derive(Debug, Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<AccessEntry>>,
}

impl AccessLog {
    /// A log that records nothing.
    pub fn disabled() -> Self {
        Self { tx: None }
    }

    /// Start the writer thread per `[access_log]` (stdout when no path is set).
    pub fn start(cfg: &AccessLogSection) -> io::Result<Self> {
        if !cfg.enabled {
            return Ok(Self::disabled());
        }
        let out: Box<dyn Write + Send> = match &cfg.path {
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
            None => Box::new(io::stdout()),
        };
        Self::start_with(out, cfg.format, QUEUE)
    }

    /// Start a writer thread writing to `out` with a queue of `capacity` entries.
    pub fn start_with(
        out: Box<dyn Write + Send>,
        format: AccessLogFormat,
        capacity: usize,
    ) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel::<AccessEntry>(capacity);
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let mut w = io::BufWriter::with_capacity(64 * 1024, out);
                while let Ok(first) = rx.recv() {
                    let mut next = Some(first);
                    while let Some(e) = next.take() {
                        let mut line = format_line(&e, format);
                        line.push('\n');
                        let _ = w.write_all(line.as_bytes());
                        next = rx.try_recv().ok();
                    }
                    let _ = w.flush();
                }
                let _ = w.flush();
            })?;
        Ok(Self { tx: Some(tx) })
    }

    /// True when lines are written.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Queue `entry` without waiting; returns false (and counts a drop) when the queue is full.
    pub fn log(&self, entry: AccessEntry) -> bool {
        let Some(tx) = &self.tx else { return false };
        match tx.try_send(entry) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                metrics::counter!(crate::metrics::ACCESS_LOG_DROPPED).increment(1);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;
    use std::sync::Arc;

    fn entry() -> AccessEntry {
        AccessEntry {
            time: UNIX_EPOCH + Duration::from_millis(1_795_222_923_456),
            client: "127.0.0.1".into(),
            method: "GET".into(),
            host: "cdn.example".into(),
            path: "/a?b=1".into(),
            proto: "HTTP/1.1".into(),
            status: 200,
            bytes: 1024,
            ms: 0.42,
            cache: "HIT".into(),
            origin_ms: None,
            referer: None,
            ua: Some("curl/8 \"x\"".into()),
            reason: None,
        }
    }

    #[test]
    fn time_formats() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_222_923_456);
        assert_eq!(rfc3339(t), "2026-11-21T01:02:03.456Z");
        assert_eq!(clf_time(t), "21/Nov/2026:01:02:03 +0000");
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(&rfc3339(leap)[..10], "2000-02-29");
    }

    #[test]
    fn json_and_combined_lines() {
        let j = format_line(&entry(), AccessLogFormat::Json);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["ts"], "2026-11-21T01:02:03.456Z");
        assert_eq!(v["cache"], "HIT");
        assert_eq!(v["status"], 200);
        assert!(v["origin_ms"].is_null());
        let mut e = entry();
        e.origin_ms = Some(12.5);
        e.cache = "MISS".into();
        let c = format_line(&e, AccessLogFormat::Combined);
        assert_eq!(
            c,
            "127.0.0.1 - - [21/Nov/2026:01:02:03 +0000] \"GET /a?b=1 HTTP/1.1\" 200 1024 \"-\" \"curl/8 \\\"x\\\"\" MISS 0.420 12.500"
        );
    }

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A writer stuck until the test drops the sender.
    struct Blocked(Mutex<mpsc::Receiver<()>>);
    impl Write for Blocked {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            let _ = self.0.lock().recv();
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_reach_the_writer() {
        let sink = Sink::default();
        let log = AccessLog::start_with(Box::new(sink.clone()), AccessLogFormat::Json, 16).unwrap();
        for _ in 0..5 {
            assert!(log.log(entry()));
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let lines = String::from_utf8(sink.0.lock().clone())
                .unwrap()
                .lines()
                .count();
            if lines == 5 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "only {lines} lines");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_stuck_writer_drops_instead_of_blocking() {
        let (release, rx) = mpsc::channel();
        let log =
            AccessLog::start_with(Box::new(Blocked(Mutex::new(rx))), AccessLogFormat::Json, 2)
                .unwrap();
        let started = std::time::Instant::now();
        let accepted = (0..5000).filter(|_| log.log(entry())).count();
        assert!(accepted < 5000, "accepted {accepted}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(!AccessLog::disabled().log(entry()));
        drop(release);
    }
}
