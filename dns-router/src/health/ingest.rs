//! Pushed reports: the body of `POST /api/v1/reports` (a [`HealthReport`] as JSON) →
//! [`HealthState::report`], counted in `cdn_reports_ingested_total{result}`.
//!
//! Answers (the admin API maps them to HTTP): `accepted`, and the ignored-but-fine `stale`
//! and `out_of_order` (the edge need not retry them) are successes; a body that is not a
//! report ([`IngestError::BadJson`]), an unsupported version ([`IngestError::BadVersion`]), a
//! report dated further in the future than `health.report_max_clock_skew`
//! ([`IngestError::FromTheFuture`]: never applied, so it cannot hold off later reports), an
//! id that is not a configured edge ([`IngestError::UnknownEdge`]) and a report whose region
//! is not the one the router's config gives that edge ([`IngestError::RegionMismatch`]: two
//! edges sharing an id, or an edge and router config that disagree; its load and drain state
//! would be applied to the wrong place) are errors.

use cdn_shared::config::router::RouterConfig;
use cdn_shared::report::{HealthReport, REPORT_VERSION};
use serde::Serialize;

use super::state::{HealthState, ReportVerdict};
use super::HealthError;
use crate::metrics::names;

/// A report that was taken (applied or ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ingested {
    /// `accepted`, `stale` or `out_of_order`.
    pub result: ReportVerdict,
    /// The reporting edge.
    pub edge: String,
    /// The report's sequence number.
    pub seq: u64,
}

/// Why a report was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IngestError {
    /// Not a `HealthReport` JSON document.
    #[error("bad report JSON: {0}")]
    BadJson(String),
    /// A report version this router does not speak.
    #[error("unsupported report version {0} (this router speaks version {REPORT_VERSION})")]
    BadVersion(u32),
    /// `sent_at_ms` is later than the router's clock by more than
    /// `health.report_max_clock_skew`.
    #[error(
        "report from edge `{edge}` is dated {ahead_ms} ms in the future (more than \
         health.report_max_clock_skew; check the edge's clock)"
    )]
    FromTheFuture {
        /// The edge id.
        edge: String,
        /// How far ahead of the router's clock `sent_at_ms` is.
        ahead_ms: u64,
    },
    /// The edge id is not configured here.
    #[error("unknown edge `{0}`")]
    UnknownEdge(String),
    /// The report names another region than the router's config has for the edge.
    #[error(
        "edge `{edge}` reports region `{reported}` but is configured in region `{configured}` \
         (check the edge's `edge.id` / `edge.region` against the router's `[[edges]]`)"
    )]
    RegionMismatch {
        /// The edge id.
        edge: String,
        /// The region in the report.
        reported: String,
        /// The region in the router's config.
        configured: String,
    },
}

impl IngestError {
    /// Label for `cdn_reports_ingested_total{result}`.
    pub fn as_str(&self) -> &'static str {
        match self {
            IngestError::BadJson(_) => "bad_json",
            IngestError::BadVersion(_) => "bad_version",
            IngestError::FromTheFuture { .. } => "future",
            IngestError::UnknownEdge(_) => "unknown_edge",
            IngestError::RegionMismatch { .. } => "region_mismatch",
        }
    }
}

/// Parse and apply one report received at `now_ms`; `config` is the live config (the edge's
/// region is checked against it).
pub fn ingest(
    state: &HealthState,
    config: &RouterConfig,
    body: &[u8],
    now_ms: u64,
) -> Result<Ingested, IngestError> {
    let result = parse_and_apply(state, config, body, now_ms);
    let label = match &result {
        Ok(i) => i.result.as_str(),
        Err(e) => e.as_str(),
    };
    metrics::counter!(names::REPORTS_INGESTED, "result" => label).increment(1);
    if let Err(e) = &result {
        tracing::debug!(error = %e, "report refused");
    }
    result
}

fn parse_and_apply(
    state: &HealthState,
    config: &RouterConfig,
    body: &[u8],
    now_ms: u64,
) -> Result<Ingested, IngestError> {
    let report: HealthReport =
        serde_json::from_slice(body).map_err(|e| IngestError::BadJson(e.to_string()))?;
    if report.version != REPORT_VERSION {
        return Err(IngestError::BadVersion(report.version));
    }
    if let Some(e) = config.edges.iter().find(|e| e.id == report.edge_id) {
        if e.region != report.region {
            return Err(IngestError::RegionMismatch {
                edge: report.edge_id,
                reported: report.region,
                configured: e.region.clone(),
            });
        }
    }
    let edge = report.edge_id.clone();
    let seq = report.seq;
    let sent_at_ms = report.sent_at_ms;
    match state.report(report, now_ms) {
        Ok(ReportVerdict::BadVersion) => Err(IngestError::BadVersion(0)),
        Ok(ReportVerdict::Future) => Err(IngestError::FromTheFuture {
            edge,
            ahead_ms: sent_at_ms.saturating_sub(now_ms),
        }),
        Ok(result) => Ok(Ingested { result, edge, seq }),
        Err(HealthError::UnknownEdge(id)) => Err(IngestError::UnknownEdge(id)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::report::{CacheFigures, Capacity, EdgeStatus, Load};

    fn config() -> RouterConfig {
        cdn_shared::config::load_str(
            "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
             [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n\
             [[edges]]\nid = \"e1\"\nregion = \"r\"\nipv4 = [\"127.0.0.1\"]\n",
        )
        .unwrap()
    }

    fn state() -> std::sync::Arc<HealthState> {
        HealthState::new_at(&config(), 0)
    }

    fn body(id: &str, seq: u64, version: u32) -> Vec<u8> {
        body_in(id, "r", seq, version)
    }

    fn body_in(id: &str, region: &str, seq: u64, version: u32) -> Vec<u8> {
        body_at(id, region, seq, version, 1, 1_000)
    }

    fn body_at(id: &str, region: &str, seq: u64, version: u32, boot: u64, at: u64) -> Vec<u8> {
        serde_json::to_vec(&HealthReport {
            version,
            edge_id: id.into(),
            region: region.into(),
            seq,
            boot_id: boot,
            sent_at_ms: at,
            status: EdgeStatus::Serving,
            load: Load::default(),
            capacity: Capacity::default(),
            cache: CacheFigures::default(),
        })
        .unwrap()
    }

    #[test]
    fn ingest_outcomes() {
        let s = state();
        let c = config();
        let ingest = |s: &HealthState, b: &[u8], now| ingest(s, &c, b, now);
        let ok = ingest(&s, &body("e1", 2, REPORT_VERSION), 1_000).unwrap();
        assert_eq!(ok.result, ReportVerdict::Accepted);
        let again = ingest(&s, &body("e1", 2, REPORT_VERSION), 1_000).unwrap();
        assert_eq!(again.result, ReportVerdict::OutOfOrder);
        let old = ingest(&s, &body("e1", 3, REPORT_VERSION), 60_000).unwrap();
        assert_eq!(old.result, ReportVerdict::Stale);
        assert_eq!(
            ingest(&s, &body("nope", 1, REPORT_VERSION), 1_000),
            Err(IngestError::UnknownEdge("nope".into()))
        );
        assert_eq!(
            ingest(&s, &body("e1", 9, 2), 1_000),
            Err(IngestError::BadVersion(2))
        );
        assert!(matches!(
            ingest(&s, b"{\"edge_id\":1}", 1_000),
            Err(IngestError::BadJson(_))
        ));
    }

    #[test]
    fn a_report_from_the_future_is_refused_and_holds_nothing_off() {
        let s = state();
        let c = config();
        let now = 1_000_000;
        let skew = c.health.report_max_clock_skew.as_millis() as u64;
        // Within the allowed skew: accepted.
        let ok = ingest(
            &s,
            &c,
            &body_at("e1", "r", 1, REPORT_VERSION, 1, now + skew),
            now,
        );
        assert_eq!(ok.unwrap().result, ReportVerdict::Accepted);
        // A year ahead, with a new boot and a huge sequence number: refused, not applied.
        let year = 365 * 24 * 3600 * 1000;
        let err = ingest(
            &s,
            &c,
            &body_at("e1", "r", u64::MAX, REPORT_VERSION, 9, now + year),
            now,
        )
        .unwrap_err();
        assert!(matches!(err, IngestError::FromTheFuture { ahead_ms, .. } if ahead_ms == year));
        assert_eq!(err.as_str(), "future");
        assert_eq!(s.view().edges["e1"].last_report.as_ref().unwrap().seq, 1);
        // u64::MAX as a date: refused too (no overflow).
        let err = ingest(
            &s,
            &c,
            &body_at("e1", "r", 5, REPORT_VERSION, 9, u64::MAX),
            now,
        )
        .unwrap_err();
        assert_eq!(err.as_str(), "future");
        // The genuine edge restarts (new boot) one second later with a correct clock: its
        // report is accepted although the accepted one was dated `skew` ahead.
        let next = ingest(
            &s,
            &c,
            &body_at("e1", "r", 1, REPORT_VERSION, 2, now + 1_000),
            now + 1_000,
        );
        assert_eq!(next.unwrap().result, ReportVerdict::Accepted);
        let view = s.view();
        let last = view.edges["e1"].last_report.as_ref().unwrap();
        assert_eq!((last.boot_id, last.seq), (2, 1));
    }

    #[test]
    fn a_report_from_another_region_is_refused_and_not_applied() {
        let s = state();
        let c = config();
        let err = ingest(
            &s,
            &c,
            &body_in("e1", "elsewhere", 5, REPORT_VERSION),
            1_000,
        )
        .unwrap_err();
        assert_eq!(
            err,
            IngestError::RegionMismatch {
                edge: "e1".into(),
                reported: "elsewhere".into(),
                configured: "r".into()
            }
        );
        assert_eq!(err.as_str(), "region_mismatch");
        assert!(err.to_string().contains("`elsewhere`"), "{err}");
        assert!(s.view().edges["e1"].last_report.is_none());
        // The right region is taken (the refused seq 5 did not count).
        let ok = ingest(&s, &c, &body("e1", 1, REPORT_VERSION), 1_000).unwrap();
        assert_eq!(ok.result, ReportVerdict::Accepted);
    }
}
