//! The origin's shared, switchable state: the fail switch, the content version, the latency
//! profile, and request counters (`GET /_stats`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

/// How the origin fails `/obj/…` requests while the switch is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Answer `503 Service Unavailable` (with `Cache-Control: no-store`).
    #[serde(rename = "503")]
    #[value(name = "503")]
    Unavailable,
    /// Close the connection without answering.
    Close,
    /// Accept the request and never answer (until the client gives up).
    Hang,
}

impl FailMode {
    fn code(self) -> u8 {
        match self {
            FailMode::Unavailable => 1,
            FailMode::Close => 2,
            FailMode::Hang => 3,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(FailMode::Unavailable),
            2 => Some(FailMode::Close),
            3 => Some(FailMode::Hang),
            _ => None,
        }
    }
}

/// Shared by every worker; also held by in-process tests to flip switches directly.
#[derive(Debug, Default)]
pub struct OriginState {
    fail: AtomicU8,
    version: AtomicU64,
    latency_profile: AtomicBool,
    total: AtomicU64,
    paths: DashMap<String, u64>,
    statuses: DashMap<u16, u64>,
}

/// `GET /_stats` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Requests to anything but `/_…` since start or the last reset.
    pub total: u64,
    /// Requests per path (query excluded).
    pub paths: BTreeMap<String, u64>,
    /// Responses per status code (`0` = connection closed without a response).
    pub statuses: BTreeMap<String, u64>,
}

impl Stats {
    /// Requests seen for `path` (0 when none).
    pub fn path(&self, path: &str) -> u64 {
        self.paths.get(path).copied().unwrap_or(0)
    }

    /// Responses sent with `status`.
    pub fn status(&self, status: u16) -> u64 {
        self.statuses.get(&status.to_string()).copied().unwrap_or(0)
    }
}

/// `GET/POST /_control` body. In a POST, an absent field is left unchanged and
/// `"fail": null` clears the switch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Control {
    /// The fail switch.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    pub fail: Option<Option<FailMode>>,
    /// The content version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// Whether the latency profile is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_profile: Option<bool>,
}

fn present<'de, D>(d: D) -> Result<Option<Option<FailMode>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    Option::<FailMode>::deserialize(d).map(Some)
}

impl OriginState {
    /// Fresh state: not failing, version 0, counters at zero.
    pub fn new(fail: Option<FailMode>, latency_profile: bool) -> Self {
        let s = Self::default();
        s.set_fail(fail);
        s.latency_profile.store(latency_profile, Ordering::Relaxed);
        s
    }

    /// Current fail switch.
    pub fn fail(&self) -> Option<FailMode> {
        FailMode::from_code(self.fail.load(Ordering::Relaxed))
    }

    /// Set or clear the fail switch.
    pub fn set_fail(&self, mode: Option<FailMode>) {
        self.fail
            .store(mode.map(FailMode::code).unwrap_or(0), Ordering::Relaxed);
    }

    /// Current content version.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Change the content version (new ETag, Last-Modified and body for every object).
    pub fn set_version(&self, v: u64) {
        self.version.store(v, Ordering::Relaxed);
    }

    /// Whether responses are delayed by the latency profile.
    pub fn latency_profile(&self) -> bool {
        self.latency_profile.load(Ordering::Relaxed)
    }

    /// Apply a `POST /_control` body; returns the resulting state.
    pub fn apply(&self, c: &Control) -> Control {
        if let Some(f) = c.fail {
            self.set_fail(f);
        }
        if let Some(v) = c.version {
            self.set_version(v);
        }
        if let Some(p) = c.latency_profile {
            self.latency_profile.store(p, Ordering::Relaxed);
        }
        self.control()
    }

    /// The switches as a [`Control`] (every field present).
    pub fn control(&self) -> Control {
        Control {
            fail: Some(self.fail()),
            version: Some(self.version()),
            latency_profile: Some(self.latency_profile()),
        }
    }

    /// Count one request for `path`.
    pub fn count_request(&self, path: &str) {
        self.total.fetch_add(1, Ordering::Relaxed);
        *self.paths.entry(path.to_string()).or_insert(0) += 1;
    }

    /// Count one response status (`0`: closed without answering).
    pub fn count_status(&self, status: u16) {
        *self.statuses.entry(status).or_insert(0) += 1;
    }

    /// Snapshot of the counters.
    pub fn stats(&self) -> Stats {
        Stats {
            total: self.total.load(Ordering::Relaxed),
            paths: self
                .paths
                .iter()
                .map(|e| (e.key().clone(), *e.value()))
                .collect(),
            statuses: self
                .statuses
                .iter()
                .map(|e| (e.key().to_string(), *e.value()))
                .collect(),
        }
    }

    /// Zero the counters.
    pub fn reset_stats(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.paths.clear();
        self.statuses.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_distinguishes_absent_from_null() {
        let s = OriginState::new(Some(FailMode::Close), false);
        let c: Control = serde_json::from_str(r#"{"version": 3}"#).unwrap();
        let out = s.apply(&c);
        assert_eq!(out.fail, Some(Some(FailMode::Close)));
        assert_eq!(out.version, Some(3));
        let c: Control = serde_json::from_str(r#"{"fail": null}"#).unwrap();
        assert_eq!(s.apply(&c).fail, Some(None));
        let c: Control = serde_json::from_str(r#"{"fail": "503"}"#).unwrap();
        assert_eq!(s.apply(&c).fail, Some(Some(FailMode::Unavailable)));
        assert!(serde_json::from_str::<Control>(r#"{"fail": "sometimes"}"#).is_err());
        let json = serde_json::to_string(&s.control()).unwrap();
        assert!(json.contains(r#""fail":"503""#), "{json}");
    }

    #[test]
    fn counters_count_and_reset() {
        let s = OriginState::default();
        s.count_request("/obj/1k/a");
        s.count_request("/obj/1k/a");
        s.count_request("/obj/1k/b");
        s.count_status(200);
        let st = s.stats();
        assert_eq!(st.total, 3);
        assert_eq!(st.path("/obj/1k/a"), 2);
        assert_eq!(st.path("/nope"), 0);
        assert_eq!(st.status(200), 1);
        s.reset_stats();
        assert_eq!(s.stats(), Stats::default());
    }
}
