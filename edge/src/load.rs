//! Load accounting: lock-free counters the request path bumps, turned into
//! [`cdn_shared::report::Load`] (rates over the last interval) by the reporter.
//!
//! Hooks for the request path (all are a few relaxed atomic adds, never a lock):
//! * [`LoadMeter::connection_opened`] → a [`ConnectionGuard`] that counts the connection until
//!   dropped (store it in the connection's extensions from `HttpServer::on_connect`, which
//!   actix drops when the connection closes);
//! * [`LoadMeter::request_started`] / [`LoadMeter::request_finished`] (with body bytes sent);
//! * [`LoadMeter::add_egress`] for bytes streamed after `request_finished` was decided;
//! * [`LoadMeter::cache_lookup`] (hit or not) for the hit ratio.
//!
//! CPU is read from `/proc/self/stat` (utime + stime, in `USER_HZ` = 100 ticks per second on
//! Linux); where it cannot be read, CPU is reported as 0.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use cdn_shared::report::Load;
use parking_lot::Mutex;

/// Clock ticks per second used by `/proc/<pid>/stat` (`USER_HZ`, fixed at 100 on Linux).
const USER_HZ: f64 = 100.0;

/// Counters shared by every worker. Cheap to bump; read by the reporter once per interval.
#[derive(Debug, Default)]
pub struct LoadMeter {
    connections: AtomicU64,
    in_flight: AtomicU64,
    requests: AtomicU64,
    egress_bytes: AtomicU64,
    hits: AtomicU64,
    lookups: AtomicU64,
    last: Mutex<Option<Sample>>,
}

/// Monotonic totals at one instant (for rates between two snapshots).
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    requests: u64,
    egress_bytes: u64,
    hits: u64,
    lookups: u64,
    cpu_ticks: Option<u64>,
}

/// What [`LoadMeter::snapshot`] measured since the previous snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LoadSnapshot {
    /// Load for the health report.
    pub load: Load,
    /// Hits / lookups over the interval; 0 when idle.
    pub hit_ratio: f64,
    /// Requests in flight right now.
    pub in_flight: u64,
}

/// Counts one open connection until dropped.
#[derive(Debug)]
pub struct ConnectionGuard(Arc<LoadMeter>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl LoadMeter {
    /// A new meter.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A client connection was accepted; it counts until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(Arc::clone(self))
    }

    /// A request started.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A request finished after sending `bytes_out` body bytes.
    pub fn request_finished(&self, bytes_out: u64) {
        // Saturating: a stray extra call must not wrap the gauge.
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(1))
            });
        self.egress_bytes.fetch_add(bytes_out, Ordering::Relaxed);
    }

    /// Body bytes sent outside `request_finished` (e.g. while streaming).
    pub fn add_egress(&self, bytes: u64) {
        self.egress_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A cache lookup answered from cache (`hit = true`) or not.
    pub fn cache_lookup(&self, hit: bool) {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if hit {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Open client connections right now.
    pub fn active_connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Requests started since the start (the PoP's load probe turns it into a rate).
    pub fn requests_total(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests in flight right now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Rates since the previous call (the first call has no previous sample and reports zero
    /// rates). Called by the reporter once per interval.
    pub fn snapshot(&self) -> LoadSnapshot {
        self.snapshot_at(Instant::now(), read_cpu_ticks())
    }

    fn snapshot_at(&self, now: Instant, cpu_ticks: Option<u64>) -> LoadSnapshot {
        let cur = Sample {
            at: now,
            requests: self.requests.load(Ordering::Relaxed),
            egress_bytes: self.egress_bytes.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            lookups: self.lookups.load(Ordering::Relaxed),
            cpu_ticks,
        };
        let prev = self.last.lock().replace(cur);
        let mut snap = LoadSnapshot {
            load: Load {
                active_connections: self.active_connections(),
                ..Load::default()
            },
            hit_ratio: 0.0,
            in_flight: self.in_flight(),
        };
        if let Some(prev) = prev {
            let (load, hit_ratio) = rates(&prev, &cur);
            snap.load.requests_per_sec = load.requests_per_sec;
            snap.load.egress_bytes_per_sec = load.egress_bytes_per_sec;
            snap.load.cpu = load.cpu;
            snap.hit_ratio = hit_ratio;
        }
        snap
    }
}

/// Rates between two samples (pure).
fn rates(prev: &Sample, cur: &Sample) -> (Load, f64) {
    let secs = cur.at.saturating_duration_since(prev.at).as_secs_f64();
    let mut load = Load::default();
    if secs > 0.0 {
        load.requests_per_sec = cur.requests.saturating_sub(prev.requests) as f64 / secs;
        load.egress_bytes_per_sec =
            cur.egress_bytes.saturating_sub(prev.egress_bytes) as f64 / secs;
        if let (Some(a), Some(b)) = (prev.cpu_ticks, cur.cpu_ticks) {
            load.cpu = b.saturating_sub(a) as f64 / USER_HZ / secs;
        }
    }
    let lookups = cur.lookups.saturating_sub(prev.lookups);
    let hit_ratio = if lookups == 0 {
        0.0
    } else {
        cur.hits.saturating_sub(prev.hits) as f64 / lookups as f64
    };
    (load, hit_ratio)
}

/// utime + stime of this process in clock ticks, from `/proc/self/stat`.
fn read_cpu_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_cpu_ticks(&stat)
}

/// Parse utime (field 14) + stime (field 15) from a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may contain spaces, so fields are counted after the
/// last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is index 0, so utime (14) is index 11, stime (15) index 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn parses_proc_stat_with_spaces_in_the_name() {
        let line =
            "1234 (my edge) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 8 0 100 0 0";
        assert_eq!(parse_cpu_ticks(line), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(
            read_cpu_ticks().is_some(),
            "/proc/self/stat readable on Linux"
        );
    }

    #[test]
    fn rates_over_an_interval() {
        let m = LoadMeter::new();
        let t0 = Instant::now();
        let first = m.snapshot_at(t0, Some(1000));
        assert_eq!(first.load.requests_per_sec, 0.0);
        let g1 = m.connection_opened();
        let g2 = m.connection_opened();
        for _ in 0..10 {
            m.request_started();
            m.request_finished(100);
        }
        m.request_started(); // one still in flight
        m.add_egress(24);
        m.cache_lookup(true);
        m.cache_lookup(true);
        m.cache_lookup(true);
        m.cache_lookup(false);
        let s = m.snapshot_at(t0 + Duration::from_secs(2), Some(1100));
        assert_eq!(s.load.active_connections, 2);
        assert!((s.load.requests_per_sec - 5.5).abs() < 1e-9);
        assert!((s.load.egress_bytes_per_sec - 512.0).abs() < 1e-9);
        assert!((s.load.cpu - 0.5).abs() < 1e-9);
        assert!((s.hit_ratio - 0.75).abs() < 1e-9);
        assert_eq!(s.in_flight, 1);
        drop(g1);
        drop(g2);
        let idle = m.snapshot_at(t0 + Duration::from_secs(3), None);
        assert_eq!(idle.load.active_connections, 0);
        assert_eq!(idle.load.requests_per_sec, 0.0);
        assert_eq!(idle.hit_ratio, 0.0);
        assert_eq!(idle.load.cpu, 0.0);
    }

    #[test]
    fn extra_finish_does_not_wrap() {
        let m = LoadMeter::new();
        m.request_finished(0);
        assert_eq!(m.in_flight(), 0);
    }
}
