//! The `HealthReport` wire contract (edge → router, JSON over `POST /api/v1/reports` with a
//! bearer token). Version 1. Change it deliberately: bump [`REPORT_VERSION`] and keep the
//! router accepting the previous version for one release.

use serde::{Deserialize, Serialize};

/// Current report format version.
pub const REPORT_VERSION: u32 = 1;

/// What an edge says about itself every `report.interval`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HealthReport {
    /// Format version ([`REPORT_VERSION`]).
    pub version: u32,
    /// Edge id (matches the router's `[[edges]].id`).
    pub edge_id: String,
    /// Region name.
    pub region: String,
    /// Strictly increasing per edge process; routers ignore a report whose sequence is not
    /// greater than the last one seen from the same `boot_id`.
    pub seq: u64,
    /// Random id chosen at edge start, so a restarted edge's sequence can start again.
    pub boot_id: u64,
    /// Unix time in milliseconds when the report was built.
    pub sent_at_ms: u64,
    /// Serving or draining.
    pub status: EdgeStatus,
    /// Current load.
    pub load: Load,
    /// Announced capacity.
    pub capacity: Capacity,
    /// Cache figures.
    pub cache: CacheFigures,
}

/// Edge lifecycle status.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EdgeStatus {
    /// Taking new clients.
    Serving,
    /// Finishing in-flight work; send no new clients.
    Draining,
}

impl EdgeStatus {
    /// Name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeStatus::Serving => "serving",
            EdgeStatus::Draining => "draining",
        }
    }
}

/// Load measured over the last interval.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Load {
    /// Open client connections.
    pub active_connections: u64,
    /// Requests per second.
    pub requests_per_sec: f64,
    /// Bytes per second sent to clients.
    pub egress_bytes_per_sec: f64,
    /// Process CPU use, 1.0 = one core fully busy.
    pub cpu: f64,
}

/// Limits the edge announces; a dimension left unset is unlimited. An edge is overloaded when
/// any limited dimension reaches its limit.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Capacity {
    /// Maximum client connections.
    pub active_connections: Option<u64>,
    /// Maximum requests per second.
    pub requests_per_sec: Option<f64>,
    /// Maximum egress bytes per second.
    pub egress_bytes_per_sec: Option<f64>,
    /// Maximum CPU (cores).
    pub cpu: Option<f64>,
}

/// Cache figures for dashboards.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CacheFigures {
    /// Stored objects.
    pub objects: u64,
    /// Stored bytes (memory + disk).
    pub bytes: u64,
    /// Hits / (hits + misses) over the last interval, 0 when idle.
    pub hit_ratio: f64,
}

/// The highest load/limit ratio over the limited dimensions (0 when nothing is limited).
/// ≥ 1.0 means overloaded.
pub fn utilization(load: &Load, cap: &Capacity) -> f64 {
    let mut u: f64 = 0.0;
    let mut consider = |value: f64, limit: Option<f64>| {
        if let Some(l) = limit {
            let r = if l <= 0.0 { f64::INFINITY } else { value / l };
            if r > u {
                u = r;
            }
        }
    };
    consider(
        load.active_connections as f64,
        cap.active_connections.map(|c| c as f64),
    );
    consider(load.requests_per_sec, cap.requests_per_sec);
    consider(load.egress_bytes_per_sec, cap.egress_bytes_per_sec);
    consider(load.cpu, cap.cpu);
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utilization_takes_the_worst_limited_dimension() {
        let load = Load {
            active_connections: 50,
            requests_per_sec: 900.0,
            egress_bytes_per_sec: 1e9,
            cpu: 0.5,
        };
        let cap = Capacity {
            active_connections: Some(100),
            requests_per_sec: Some(1000.0),
            ..Default::default()
        };
        assert!((utilization(&load, &cap) - 0.9).abs() < 1e-9);
        assert_eq!(utilization(&load, &Capacity::default()), 0.0);
        let zero = Capacity {
            cpu: Some(0.0),
            ..Default::default()
        };
        assert!(utilization(&load, &zero).is_infinite());
    }

    #[test]
    fn report_round_trips_and_rejects_unknown_fields() {
        let r = HealthReport {
            version: REPORT_VERSION,
            edge_id: "use1".into(),
            region: "us-east".into(),
            seq: 7,
            boot_id: 42,
            sent_at_ms: 1_700_000_000_000,
            status: EdgeStatus::Draining,
            load: Load::default(),
            capacity: Capacity::default(),
            cache: CacheFigures::default(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert!(s.contains("\"status\":\"draining\""));
        let back: HealthReport = serde_json::from_str(&s).unwrap();
        assert_eq!(back, r);
        let bad = s.replacen("{", "{\"extra\":1,", 1);
        assert!(serde_json::from_str::<HealthReport>(&bad).is_err());
    }
}
