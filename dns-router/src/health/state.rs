//! What the router believes about each edge, and the one pure function that changes it.
//!
//! * [`apply`] is the whole transition logic: probe results (rise/fall counts), pushed
//!   [`HealthReport`]s (load vs capacity with hysteresis, draining, staleness, sequence
//!   ordering), operator drain/undrain, and the staleness tick. It takes `now` so tests
//!   control time.
//! * [`HealthState`] holds an immutable [`HealthView`] behind an `ArcSwap` (the DNS hot path
//!   only loads it) and serialises mutations behind a mutex (probe tasks, the report endpoint
//!   and the admin API are all off the hot path).
//!
//! Rules, in words:
//! * `Unknown` (no data yet) is usable and never treated as `Down`: an edge goes `Down` only
//!   after `health.fall` consecutive probe failures, and `Up` after `health.rise` consecutive
//!   successes.
//! * A report whose `sent_at_ms` is older than `health.report_max_age` is ignored; so is one
//!   whose `seq` is not above the last accepted one from the same `boot_id` (or which comes
//!   from another `boot_id` but was sent before the last accepted report, whose time counts
//!   at most as the router's clock when it was accepted). A report dated later than the
//!   router's clock by more than `health.report_max_clock_skew` is refused ([`ReportVerdict::Future`]):
//!   it is never applied, so a bogus timestamp cannot make later genuine reports out of order.
//! * Overload uses [`cdn_shared::report::utilization`]: an edge becomes overloaded when
//!   utilisation reaches 1.0 and recovers only when it falls below
//!   `health.overload_recover_ratio` (hysteresis, no flapping).
//! * When the last accepted report is older than `report_max_age` (staleness tick), its load
//!   and its `draining` status no longer count (reason `report_stale`); health is still decided
//!   by probes.
//! * `reason` names why the edge is in its state, in priority order: the probe failure when
//!   `Down` (`probe_timeout`, `http_<code>`, `connect_refused`, `connect_error`,
//!   `bad_response`, and for `https://` probes `tls_handshake`, `tls_cert_untrusted`,
//!   `tls_cert_expired`, `tls_cert_name`, `tls_cert`, `tls_config`), `manual` (operator
//!   drain), `draining` (reported), `overloaded`, `report_stale`, then `probe_ok` (`Up`) or,
//!   for `Unknown`, the latest failure reason while failures are still below `fall`, or
//!   `no_data`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;
use cdn_geo::model::Health;
use cdn_shared::config::router::{HealthSection, RouterConfig};
use cdn_shared::report::{utilization, EdgeStatus, HealthReport, REPORT_VERSION};
use serde::Serialize;

pub use super::reason::{ProbeFailure, ProbeOutcome, Reason};
use tokio::sync::watch;

use super::HealthError;

/// The outcome of the latest probe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeResult {
    /// Whether the probe succeeded (HTTP 200).
    pub ok: bool,
    /// `http_200` on success, else the failure reason.
    pub outcome: ProbeOutcome,
    /// Unix ms when the probe finished.
    pub at_ms: u64,
    /// How long it took, ms.
    pub latency_ms: f64,
}

/// One input to [`apply`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A probe answered 200.
    ProbeOk {
        /// Probe duration, ms.
        latency_ms: f64,
    },
    /// A probe failed.
    ProbeFailed {
        /// Why.
        failure: ProbeFailure,
        /// Probe duration, ms.
        latency_ms: f64,
    },
    /// A pushed report (already known to be for this edge).
    Report(Box<HealthReport>),
    /// Operator drain (`POST /api/v1/edges/{id}/drain`).
    Drain,
    /// Operator undrain.
    Undrain,
    /// Operator weight override (`POST /api/v1/edges/{id}/weight`): `Some(w)` replaces the
    /// configured weight in selection, `None` restores it.
    Weight(Option<u32>),
    /// Periodic staleness check.
    Tick,
}

/// What [`report_verdict`] decided about a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportVerdict {
    /// Applied.
    Accepted,
    /// `sent_at_ms` older than `health.report_max_age`: ignored.
    Stale,
    /// Sequence not newer than the last accepted report: ignored.
    OutOfOrder,
    /// `sent_at_ms` later than the router's clock by more than
    /// `health.report_max_clock_skew`: refused (never applied, never an ordering reference).
    Future,
    /// Unsupported `version`: rejected.
    BadVersion,
}

impl ReportVerdict {
    /// Name for logs, metrics (`cdn_reports_ingested_total{result}`) and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            ReportVerdict::Accepted => "accepted",
            ReportVerdict::Stale => "stale",
            ReportVerdict::OutOfOrder => "out_of_order",
            ReportVerdict::Future => "future",
            ReportVerdict::BadVersion => "bad_version",
        }
    }
}

/// Everything the router knows about one edge.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EdgeHealth {
    /// Up / Down / Unknown (from probes).
    pub health: Health,
    /// Why the edge is in this state (see the module docs).
    pub reason: Reason,
    /// Unix ms when `health` last changed (or when the edge was added).
    pub since_ms: u64,
    /// No new clients: operator drain or a fresh report saying `draining`.
    pub draining: bool,
    /// Reported load reached capacity (hysteresis applied).
    pub overloaded: bool,
    /// Unix ms of the last health evidence (probe success or accepted report).
    pub last_seen_ms: Option<u64>,
    /// The latest probe.
    pub last_probe: Option<ProbeResult>,
    /// The latest accepted report.
    pub last_report: Option<HealthReport>,
    /// Utilisation from the latest fresh report (0 when none or stale).
    pub utilization: f64,
    /// Unix ms (router clock) when the latest report was accepted.
    pub last_report_received_ms: Option<u64>,
    /// The latest report is older than `report_max_age`.
    pub report_stale: bool,
    /// Drained by an operator.
    pub manual_drain: bool,
    /// The latest fresh report said `draining`.
    pub report_draining: bool,
    /// Consecutive probe successes.
    pub successes: u32,
    /// Consecutive probe failures.
    pub failures: u32,
    /// Reason of the latest probe failure.
    pub probe_failure: Option<ProbeFailure>,
    /// Operator weight override: replaces the configured `edges[].weight` among equally
    /// ranked edges while set.
    pub weight_override: Option<u32>,
}

impl EdgeHealth {
    /// A new edge: Unknown since `now_ms`.
    pub fn unknown(now_ms: u64) -> Self {
        Self {
            health: Health::Unknown,
            reason: Reason::NoData,
            since_ms: now_ms,
            draining: false,
            overloaded: false,
            last_seen_ms: None,
            last_probe: None,
            last_report: None,
            utilization: 0.0,
            last_report_received_ms: None,
            report_stale: false,
            manual_drain: false,
            report_draining: false,
            successes: 0,
            failures: 0,
            probe_failure: None,
            weight_override: None,
        }
    }

    /// The fields selection depends on; a change here bumps the view's generation.
    pub fn selection_key(&self) -> (Health, bool, bool, Option<u32>) {
        (
            self.health,
            self.draining,
            self.overloaded,
            self.weight_override,
        )
    }
}

/// Decide whether a report is applied, ignored or rejected (pure).
pub fn report_verdict(
    prev: &EdgeHealth,
    report: &HealthReport,
    now_ms: u64,
    cfg: &HealthSection,
) -> ReportVerdict {
    if report.version != REPORT_VERSION {
        return ReportVerdict::BadVersion;
    }
    let skew = u64::try_from(cfg.report_max_clock_skew.as_millis()).unwrap_or(u64::MAX);
    if report.sent_at_ms > now_ms.saturating_add(skew) {
        return ReportVerdict::Future;
    }
    let max_age = cfg.report_max_age.as_millis() as u64;
    if now_ms.saturating_sub(report.sent_at_ms) > max_age {
        return ReportVerdict::Stale;
    }
    if let Some(last) = &prev.last_report {
        let older = if last.boot_id == report.boot_id {
            report.seq <= last.seq
        } else {
            // Another process: a late report from a previous boot must not undo the new one.
            // The previous report's time counts at most as the router's clock when it was
            // accepted, so an edge clock running ahead (within the skew) cannot hold off a
            // new boot's reports either.
            let last_at = prev
                .last_report_received_ms
                .map_or(last.sent_at_ms, |r| last.sent_at_ms.min(r));
            report.sent_at_ms < last_at
        };
        if older {
            return ReportVerdict::OutOfOrder;
        }
    }
    ReportVerdict::Accepted
}

/// The transition function: `prev` + `event` at `now_ms` → next state (pure).
pub fn apply(prev: &EdgeHealth, event: Event, now_ms: u64, cfg: &HealthSection) -> EdgeHealth {
    let mut e = prev.clone();
    match event {
        Event::ProbeOk { latency_ms } => {
            e.last_probe = Some(ProbeResult {
                ok: true,
                outcome: ProbeOutcome::Ok,
                at_ms: now_ms,
                latency_ms,
            });
            e.last_seen_ms = Some(now_ms);
            e.failures = 0;
            e.successes = e.successes.saturating_add(1);
            if e.health != Health::Up && e.successes >= cfg.rise {
                e.health = Health::Up;
            }
        }
        Event::ProbeFailed {
            failure,
            latency_ms,
        } => {
            e.last_probe = Some(ProbeResult {
                ok: false,
                outcome: ProbeOutcome::Failed(failure),
                at_ms: now_ms,
                latency_ms,
            });
            e.successes = 0;
            e.failures = e.failures.saturating_add(1);
            e.probe_failure = Some(failure);
            if e.health != Health::Down && e.failures >= cfg.fall {
                e.health = Health::Down;
            }
        }
        Event::Report(report) => {
            if report_verdict(prev, &report, now_ms, cfg) != ReportVerdict::Accepted {
                return e;
            }
            let u = utilization(&report.load, &report.capacity);
            e.overloaded = if prev.overloaded && !prev.report_stale {
                u >= cfg.overload_recover_ratio
            } else {
                u >= 1.0
            };
            e.utilization = u;
            e.report_draining = report.status == EdgeStatus::Draining;
            e.report_stale = false;
            e.last_seen_ms = Some(now_ms.max(e.last_seen_ms.unwrap_or(0)));
            e.last_report_received_ms = Some(now_ms);
            e.last_report = Some(*report);
        }
        Event::Drain => e.manual_drain = true,
        Event::Undrain => e.manual_drain = false,
        Event::Weight(w) => e.weight_override = w,
        Event::Tick => {
            let max_age = cfg.report_max_age.as_millis() as u64;
            if let Some(at) = e.last_report_received_ms {
                if !e.report_stale && now_ms.saturating_sub(at) > max_age {
                    e.report_stale = true;
                    e.overloaded = false;
                    e.report_draining = false;
                    e.utilization = 0.0;
                }
            }
        }
    }
    e.draining = e.manual_drain || e.report_draining;
    e.reason = reason_for(&e);
    if e.health != prev.health {
        e.since_ms = now_ms;
    }
    e
}

fn reason_for(e: &EdgeHealth) -> Reason {
    let failure = e.probe_failure.map_or(Reason::ProbeFailed, Reason::Probe);
    if e.health == Health::Down {
        return failure;
    }
    if e.manual_drain {
        return Reason::Manual;
    }
    if e.report_draining {
        return Reason::Draining;
    }
    if e.overloaded {
        return Reason::Overloaded;
    }
    if e.report_stale {
        return Reason::ReportStale;
    }
    match e.health {
        Health::Up => Reason::ProbeOk,
        _ if e.failures > 0 => failure,
        _ => Reason::NoData,
    }
}

/// An immutable snapshot of every edge's health.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HealthView {
    /// Increments on every change that can affect selection (health, draining, overload,
    /// edges added or removed).
    pub generation: u64,
    /// Edge id → state.
    pub edges: HashMap<String, EdgeHealth>,
}

/// One edge the probe tasks should probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTarget {
    /// Edge id.
    pub id: String,
    /// `[[edges]].probe_url` (or its default).
    pub url: String,
}

/// Everything the probe tasks need; published by [`HealthState::reconcile`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProbePlan {
    /// Probe settings.
    pub section: HealthSection,
    /// Edges to probe.
    pub targets: Vec<ProbeTarget>,
}

impl ProbePlan {
    fn from_config(config: &RouterConfig) -> Self {
        Self {
            section: config.health.clone(),
            targets: config
                .edges
                .iter()
                .map(|e| ProbeTarget {
                    id: e.id.clone(),
                    url: e.probe_url(),
                })
                .collect(),
        }
    }
}

/// The live health of the fleet: lock-free reads, serialised writes.
pub struct HealthState {
    view: ArcSwap<HealthView>,
    section: Mutex<HealthSection>,
    plan: watch::Sender<Arc<ProbePlan>>,
}

impl std::fmt::Debug for HealthState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthState")
            .field("generation", &self.view.load().generation)
            .finish_non_exhaustive()
    }
}

impl HealthState {
    /// Every configured edge starts `Unknown` (usable).
    pub fn new(config: &RouterConfig) -> Arc<Self> {
        Self::new_at(config, cdn_shared::unix_ms())
    }

    /// [`HealthState::new`] with an explicit clock (tests).
    pub fn new_at(config: &RouterConfig, now_ms: u64) -> Arc<Self> {
        let edges = config
            .edges
            .iter()
            .map(|e| (e.id.clone(), EdgeHealth::unknown(now_ms)))
            .collect();
        let (plan, _) = watch::channel(Arc::new(ProbePlan::from_config(config)));
        Arc::new(Self {
            view: ArcSwap::from_pointee(HealthView {
                generation: 1,
                edges,
            }),
            section: Mutex::new(config.health.clone()),
            plan,
        })
    }

    /// The current snapshot (cheap: one atomic load).
    pub fn view(&self) -> Arc<HealthView> {
        self.view.load_full()
    }

    /// The current snapshot as an `arc_swap` guard: no reference-count traffic, for the DNS
    /// hot path (hold it for one query, not across awaits).
    pub fn load(&self) -> arc_swap::Guard<Arc<HealthView>> {
        self.view.load()
    }

    /// The probe plan channel (probe tasks follow it).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ProbePlan>> {
        self.plan.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, HealthSection> {
        // A panic while holding the lock cannot leave the view half-written (it is swapped
        // whole), so a poisoned lock is safe to reuse.
        self.section.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Apply `event` to edge `id`; returns the new state.
    pub fn event(&self, id: &str, event: Event, now_ms: u64) -> Result<EdgeHealth, HealthError> {
        let section = self.lock();
        let view = self.view.load_full();
        let prev = view
            .edges
            .get(id)
            .ok_or_else(|| HealthError::UnknownEdge(id.to_string()))?;
        let next = apply(prev, event, now_ms, &section);
        self.store(&view, id, prev, &next);
        Ok(next)
    }

    /// Apply a pushed report; returns what was decided about it.
    pub fn report(&self, report: HealthReport, now_ms: u64) -> Result<ReportVerdict, HealthError> {
        let section = self.lock();
        let view = self.view.load_full();
        let id = report.edge_id.clone();
        let prev = view
            .edges
            .get(&id)
            .ok_or_else(|| HealthError::UnknownEdge(id.clone()))?;
        let verdict = report_verdict(prev, &report, now_ms, &section);
        if verdict == ReportVerdict::Accepted {
            let next = apply(prev, Event::Report(Box::new(report)), now_ms, &section);
            self.store(&view, &id, prev, &next);
        }
        Ok(verdict)
    }

    /// Run the staleness check over every edge.
    pub fn tick(&self, now_ms: u64) {
        let section = self.lock();
        let view = self.view.load_full();
        let mut next_edges = None::<HashMap<String, EdgeHealth>>;
        let mut bump = false;
        for (id, prev) in &view.edges {
            let next = apply(prev, Event::Tick, now_ms, &section);
            if &next != prev {
                bump |= next.selection_key() != prev.selection_key();
                record_transitions(id, prev, &next);
                next_edges
                    .get_or_insert_with(|| view.edges.clone())
                    .insert(id.clone(), next);
            }
        }
        if let Some(edges) = next_edges {
            self.view.store(Arc::new(HealthView {
                generation: view.generation + u64::from(bump),
                edges,
            }));
        }
    }

    /// Reload: keep the state of edges that remain, add new ones as `Unknown`, drop removed
    /// ones, take the new `[health]` settings, and publish the new probe plan (new edges are
    /// probed at once, removed ones stop).
    pub fn reconcile(&self, config: &RouterConfig) {
        self.reconcile_at(config, cdn_shared::unix_ms())
    }

    /// [`HealthState::reconcile`] with an explicit clock (tests).
    pub fn reconcile_at(&self, config: &RouterConfig, now_ms: u64) {
        let mut section = self.lock();
        *section = config.health.clone();
        let view = self.view.load_full();
        let edges: HashMap<String, EdgeHealth> = config
            .edges
            .iter()
            .map(|e| {
                let h = view
                    .edges
                    .get(&e.id)
                    .cloned()
                    .unwrap_or_else(|| EdgeHealth::unknown(now_ms));
                (e.id.clone(), h)
            })
            .collect();
        let changed =
            edges.len() != view.edges.len() || edges.keys().any(|k| !view.edges.contains_key(k));
        self.view.store(Arc::new(HealthView {
            generation: view.generation + u64::from(changed),
            edges,
        }));
        let plan = Arc::new(ProbePlan::from_config(config));
        self.plan.send_if_modified(|cur| {
            if **cur == *plan {
                false
            } else {
                *cur = plan;
                true
            }
        });
    }

    fn store(&self, view: &HealthView, id: &str, prev: &EdgeHealth, next: &EdgeHealth) {
        if prev == next {
            return;
        }
        let bump = next.selection_key() != prev.selection_key();
        record_transitions(id, prev, next);
        let mut edges = view.edges.clone();
        edges.insert(id.to_string(), next.clone());
        self.view.store(Arc::new(HealthView {
            generation: view.generation + u64::from(bump),
            edges,
        }));
    }
}

/// Count transitions (`cdn_health_transitions_total{edge,to}`) and log them. (The per-edge
/// gauges are rendered from the view at scrape time: `metrics::render_edge_gauges`.)
fn record_transitions(id: &str, prev: &EdgeHealth, next: &EdgeHealth) {
    use crate::metrics::names;
    let mut to = Vec::new();
    if prev.health != next.health {
        to.push(next.health.as_str());
    }
    if prev.draining != next.draining {
        to.push(if next.draining { "draining" } else { "serving" });
    }
    if prev.overloaded != next.overloaded {
        to.push(if next.overloaded {
            "overloaded"
        } else {
            "not_overloaded"
        });
    }
    for t in to {
        metrics::counter!(names::HEALTH_TRANSITIONS, "edge" => id.to_string(), "to" => t)
            .increment(1);
        tracing::info!(edge = id, to = t, reason = %next.reason, "edge health transition");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::report::{CacheFigures, Capacity, Load};
    use std::time::Duration;

    fn cfg() -> HealthSection {
        HealthSection::default()
    }

    fn fail(e: &EdgeHealth, f: ProbeFailure, now: u64) -> EdgeHealth {
        apply(
            e,
            Event::ProbeFailed {
                failure: f,
                latency_ms: 1.0,
            },
            now,
            &cfg(),
        )
    }

    fn ok(e: &EdgeHealth, now: u64) -> EdgeHealth {
        apply(e, Event::ProbeOk { latency_ms: 1.0 }, now, &cfg())
    }

    fn report(seq: u64, boot: u64, sent: u64, rps: f64, status: EdgeStatus) -> Event {
        Event::Report(Box::new(HealthReport {
            version: REPORT_VERSION,
            edge_id: "e1".into(),
            region: "r".into(),
            seq,
            boot_id: boot,
            sent_at_ms: sent,
            status,
            load: Load {
                requests_per_sec: rps,
                ..Default::default()
            },
            capacity: Capacity {
                requests_per_sec: Some(100.0),
                ..Default::default()
            },
            cache: CacheFigures::default(),
        }))
    }

    #[test]
    fn unknown_goes_down_only_after_fall_failures() {
        let e0 = EdgeHealth::unknown(0);
        let e1 = fail(&e0, ProbeFailure::Timeout, 10);
        assert_eq!(e1.health, Health::Unknown);
        assert_eq!(e1.reason.as_str(), "probe_timeout");
        let e2 = fail(&e1, ProbeFailure::Timeout, 20);
        assert_eq!(e2.health, Health::Unknown);
        let e3 = fail(&e2, ProbeFailure::Http(503), 30);
        assert_eq!(e3.health, Health::Down);
        assert_eq!(e3.reason.as_str(), "http_503");
        assert_eq!(e3.since_ms, 30);
        assert_eq!(e3.last_probe.as_ref().unwrap().outcome.as_str(), "http_503");
    }

    #[test]
    fn rise_needs_consecutive_successes() {
        let mut e = EdgeHealth::unknown(0);
        for t in 1..=3 {
            e = fail(&e, ProbeFailure::ConnectRefused, t);
        }
        assert_eq!(e.health, Health::Down);
        assert_eq!(e.reason.as_str(), "connect_refused");
        e = ok(&e, 10);
        assert_eq!(e.health, Health::Down, "one success is below rise=2");
        e = fail(&e, ProbeFailure::ConnectRefused, 11);
        e = ok(&e, 12);
        assert_eq!(
            e.health,
            Health::Down,
            "the failure reset the success count"
        );
        e = ok(&e, 13);
        assert_eq!(e.health, Health::Up);
        assert_eq!(e.reason.as_str(), "probe_ok");
        assert_eq!(e.since_ms, 13);
        assert_eq!(e.last_seen_ms, Some(13));
    }

    #[test]
    fn up_survives_fewer_than_fall_failures() {
        let mut e = ok(&ok(&EdgeHealth::unknown(0), 1), 2);
        assert_eq!(e.health, Health::Up);
        e = fail(&e, ProbeFailure::Timeout, 3);
        e = fail(&e, ProbeFailure::Timeout, 4);
        assert_eq!(e.health, Health::Up);
        e = ok(&e, 5);
        e = fail(&e, ProbeFailure::Timeout, 6);
        e = fail(&e, ProbeFailure::Timeout, 7);
        assert_eq!(e.health, Health::Up, "the success reset the failure count");
        e = fail(&e, ProbeFailure::Timeout, 8);
        assert_eq!(e.health, Health::Down);
        assert_eq!(e.since_ms, 8);
    }

    #[test]
    fn tls_failures_go_down_after_fall_with_their_reason() {
        let mut e = EdgeHealth::unknown(0);
        for t in 1..=3 {
            e = fail(&e, ProbeFailure::TlsCertUntrusted, t);
        }
        assert_eq!(e.health, Health::Down);
        assert_eq!(e.reason.as_str(), "tls_cert_untrusted");
    }

    #[test]
    fn overload_has_hysteresis() {
        let c = cfg();
        let now = 1_000_000;
        let mut e = EdgeHealth::unknown(0);
        e = apply(&e, report(1, 7, now, 95.0, EdgeStatus::Serving), now, &c);
        assert!(!e.overloaded);
        assert!((e.utilization - 0.95).abs() < 1e-9);
        e = apply(&e, report(2, 7, now, 100.0, EdgeStatus::Serving), now, &c);
        assert!(e.overloaded);
        assert_eq!(e.reason.as_str(), "overloaded");
        // Between the recover ratio (0.9) and 1.0: still overloaded.
        e = apply(&e, report(3, 7, now, 95.0, EdgeStatus::Serving), now, &c);
        assert!(e.overloaded);
        e = apply(&e, report(4, 7, now, 90.0, EdgeStatus::Serving), now, &c);
        assert!(e.overloaded, "exactly the recover ratio is not below it");
        e = apply(&e, report(5, 7, now, 89.0, EdgeStatus::Serving), now, &c);
        assert!(!e.overloaded);
        assert_eq!(e.reason.as_str(), "no_data");
        // Back between 0.9 and 1.0 from below: not overloaded.
        e = apply(&e, report(6, 7, now, 99.0, EdgeStatus::Serving), now, &c);
        assert!(!e.overloaded);
    }

    #[test]
    fn old_and_out_of_order_reports_are_ignored() {
        let c = cfg();
        let now = 1_000_000;
        let e0 = EdgeHealth::unknown(0);
        let e1 = apply(&e0, report(5, 7, now, 10.0, EdgeStatus::Serving), now, &c);
        assert_eq!(e1.last_report.as_ref().unwrap().seq, 5);
        // Same seq, lower seq: ignored.
        for seq in [5, 4] {
            let ev = report(seq, 7, now, 200.0, EdgeStatus::Serving);
            let Event::Report(r) = &ev else {
                unreachable!()
            };
            assert_eq!(report_verdict(&e1, r, now, &c), ReportVerdict::OutOfOrder);
            assert_eq!(apply(&e1, ev, now, &c), e1);
        }
        // Older than report_max_age (10 s): ignored.
        let old = now - 10_001;
        let ev = report(6, 7, old, 200.0, EdgeStatus::Serving);
        let Event::Report(r) = &ev else {
            unreachable!()
        };
        assert_eq!(report_verdict(&e1, r, now, &c), ReportVerdict::Stale);
        assert_eq!(apply(&e1, ev, now, &c), e1);
        // A new boot restarts the sequence.
        let e2 = apply(
            &e1,
            report(1, 8, now + 5, 10.0, EdgeStatus::Serving),
            now + 5,
            &c,
        );
        assert_eq!(e2.last_report.as_ref().unwrap().boot_id, 8);
        // A late report from the previous boot, sent before the new boot's: ignored.
        let late = report(6, 7, now + 1, 200.0, EdgeStatus::Serving);
        assert_eq!(apply(&e2, late, now + 6, &c), e2);
        // Wrong version: rejected.
        let ev = report(9, 8, now + 6, 10.0, EdgeStatus::Serving);
        let Event::Report(mut r) = ev else {
            unreachable!()
        };
        r.version = 99;
        assert_eq!(
            report_verdict(&e2, &r, now + 6, &c),
            ReportVerdict::BadVersion
        );
    }

    #[test]
    fn future_dated_reports_are_refused_and_never_an_ordering_reference() {
        let c = HealthSection {
            report_max_clock_skew: std::time::Duration::from_secs(2),
            ..cfg()
        };
        let now = 1_000_000;
        let e0 = EdgeHealth::unknown(0);
        let e1 = apply(&e0, report(1, 7, now, 10.0, EdgeStatus::Serving), now, &c);
        for sent in [now + 2_001, now + 3_600_000, u64::MAX] {
            let ev = report(2, 8, sent, 200.0, EdgeStatus::Draining);
            let Event::Report(r) = &ev else {
                unreachable!()
            };
            assert_eq!(report_verdict(&e1, r, now, &c), ReportVerdict::Future);
            assert_eq!(apply(&e1, ev, now, &c), e1, "sent {sent}");
        }
        // Exactly at the skew: accepted. A new boot whose clock is right, 100 ms later: also
        // accepted (the previous report counts as of when the router received it).
        let ahead = apply(
            &e1,
            report(2, 7, now + 2_000, 10.0, EdgeStatus::Serving),
            now,
            &c,
        );
        assert_eq!(ahead.last_report.as_ref().unwrap().seq, 2);
        let ev = report(1, 9, now + 100, 10.0, EdgeStatus::Serving);
        let Event::Report(r) = &ev else {
            unreachable!()
        };
        assert_eq!(
            report_verdict(&ahead, r, now + 100, &c),
            ReportVerdict::Accepted
        );
        let e3 = apply(&ahead, ev, now + 100, &c);
        assert_eq!(e3.last_report.as_ref().unwrap().boot_id, 9);
    }

    #[test]
    fn draining_from_report_and_operator() {
        let c = cfg();
        let now = 1_000_000;
        let mut e = EdgeHealth::unknown(0);
        e = apply(&e, report(1, 7, now, 10.0, EdgeStatus::Draining), now, &c);
        assert!(e.draining);
        assert_eq!(e.reason.as_str(), "draining");
        e = apply(&e, Event::Drain, now, &c);
        assert_eq!(e.reason.as_str(), "manual");
        e = apply(&e, report(2, 7, now, 10.0, EdgeStatus::Serving), now, &c);
        assert!(e.draining, "operator drain outlives the edge's status");
        e = apply(&e, Event::Undrain, now, &c);
        assert!(!e.draining);
        assert_eq!(e.reason.as_str(), "no_data");
    }

    #[test]
    fn stale_reports_stop_counting() {
        let c = HealthSection {
            report_max_age: Duration::from_secs(2),
            ..cfg()
        };
        let now = 1_000_000;
        let mut e = ok(&ok(&EdgeHealth::unknown(0), 1), 2);
        e = apply(&e, report(1, 7, now, 150.0, EdgeStatus::Draining), now, &c);
        assert!(e.overloaded && e.draining);
        let same = apply(&e, Event::Tick, now + 2_000, &c);
        assert_eq!(same, e, "exactly max age is still fresh");
        e = apply(&e, Event::Tick, now + 2_001, &c);
        assert!(!e.overloaded && !e.draining && e.report_stale);
        assert_eq!(e.reason.as_str(), "report_stale");
        assert_eq!(
            e.health,
            Health::Up,
            "staleness alone never marks an edge down"
        );
        // A fresh report brings it back, judged without the old overload hysteresis.
        e = apply(
            &e,
            report(2, 7, now + 3_000, 95.0, EdgeStatus::Serving),
            now + 3_000,
            &c,
        );
        assert!(!e.overloaded && !e.report_stale);
        assert_eq!(e.reason.as_str(), "probe_ok");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Whatever the probe history: the last `fall` results all failures ⇒ Down, the
            /// last `rise` all successes ⇒ Up; a change into Down (Up) only ever follows
            /// `fall` failures (`rise` successes) in a row; Unknown never follows a result.
            #[test]
            fn probe_history_decides_health(
                rise in 1u32..5,
                fall in 1u32..5,
                results in proptest::collection::vec(any::<bool>(), 0..60),
            ) {
                let cfg = HealthSection { rise, fall, ..HealthSection::default() };
                let mut e = EdgeHealth::unknown(0);
                for (i, &ok) in results.iter().enumerate() {
                    let event = if ok {
                        Event::ProbeOk { latency_ms: 1.0 }
                    } else {
                        Event::ProbeFailed { failure: ProbeFailure::Timeout, latency_ms: 1.0 }
                    };
                    let next = apply(&e, event, i as u64 + 1, &cfg);
                    let history = &results[..=i];
                    let last_all = |n: u32, want: bool| {
                        history.len() >= n as usize
                            && history[history.len() - n as usize..].iter().all(|&r| r == want)
                    };
                    if last_all(fall, false) {
                        prop_assert_eq!(next.health, Health::Down);
                    }
                    if last_all(rise, true) {
                        prop_assert_eq!(next.health, Health::Up);
                    }
                    if next.health != e.health {
                        match next.health {
                            Health::Down => prop_assert!(last_all(fall, false)),
                            Health::Up => prop_assert!(last_all(rise, true)),
                            Health::Unknown => prop_assert!(false, "back to Unknown"),
                        }
                        prop_assert_eq!(next.since_ms, i as u64 + 1);
                    }
                    e = next;
                }
            }

            /// Overload hysteresis: utilisation ≥ 1 ⇒ overloaded; below the recover ratio ⇒
            /// not; in between, the previous state is kept.
            #[test]
            fn overload_hysteresis_holds(
                ratio in 0.5f64..1.0,
                loads in proptest::collection::vec(0.0f64..150.0, 1..40),
            ) {
                let cfg = HealthSection { overload_recover_ratio: ratio, ..HealthSection::default() };
                let now = 1_000_000;
                let mut e = EdgeHealth::unknown(0);
                for (i, &rps) in loads.iter().enumerate() {
                    let next = apply(&e, report(i as u64 + 1, 7, now, rps, EdgeStatus::Serving), now, &cfg);
                    let u = rps / 100.0;
                    if u >= 1.0 {
                        prop_assert!(next.overloaded);
                    } else if u < ratio {
                        prop_assert!(!next.overloaded);
                    } else {
                        prop_assert_eq!(next.overloaded, e.overloaded);
                    }
                    e = next;
                }
            }
        }
    }

    fn config(edges: &[&str]) -> RouterConfig {
        let mut toml = String::from(
            "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
             [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n",
        );
        for (i, id) in edges.iter().enumerate() {
            toml.push_str(&format!(
                "[[edges]]\nid = \"{id}\"\nregion = \"r\"\nipv4 = [\"127.0.0.{}\"]\n",
                i + 1
            ));
        }
        cdn_shared::config::load_str(&toml).unwrap()
    }

    #[test]
    fn state_bumps_generation_only_on_selection_changes() {
        let s = HealthState::new_at(&config(&["a", "b"]), 0);
        let g0 = s.view().generation;
        assert_eq!(s.view().edges["a"].health, Health::Unknown);
        s.event("a", Event::ProbeOk { latency_ms: 1.0 }, 1).unwrap();
        assert_eq!(
            s.view().generation,
            g0,
            "still Unknown: no selection change"
        );
        assert_eq!(s.view().edges["a"].successes, 1);
        s.event("a", Event::ProbeOk { latency_ms: 1.0 }, 2).unwrap();
        assert_eq!(s.view().generation, g0 + 1);
        assert_eq!(s.view().edges["a"].health, Health::Up);
        assert!(matches!(
            s.event("zz", Event::Drain, 3),
            Err(HealthError::UnknownEdge(_))
        ));
        s.event("b", Event::Drain, 3).unwrap();
        assert_eq!(s.view().generation, g0 + 2);
        assert!(s.view().edges["b"].draining);
        // A weight override changes selection (new generation); setting it again does not.
        s.event("a", Event::Weight(Some(5)), 4).unwrap();
        assert_eq!(s.view().generation, g0 + 3);
        assert_eq!(s.view().edges["a"].weight_override, Some(5));
        s.event("a", Event::Weight(Some(5)), 5).unwrap();
        assert_eq!(s.view().generation, g0 + 3);
        s.event("a", Event::Weight(None), 6).unwrap();
        assert_eq!(s.view().generation, g0 + 4);
        assert_eq!(s.view().edges["a"].weight_override, None);
        assert_eq!(
            s.view().edges["a"].reason,
            Reason::ProbeOk,
            "weight is no reason"
        );
    }

    #[test]
    fn state_rejects_reports_from_unknown_edges() {
        let s = HealthState::new_at(&config(&["a"]), 0);
        let Event::Report(r) = report(1, 1, 5, 1.0, EdgeStatus::Serving) else {
            unreachable!()
        };
        assert!(matches!(
            s.report(*r, 5),
            Err(HealthError::UnknownEdge(id)) if id == "e1"
        ));
    }

    #[test]
    fn reconcile_keeps_adds_and_removes() {
        let s = HealthState::new_at(&config(&["a", "b"]), 0);
        let mut rx = s.subscribe();
        rx.borrow_and_update();
        s.event("a", Event::Drain, 1).unwrap();
        let g = s.view().generation;
        s.reconcile_at(&config(&["a", "c"]), 5);
        let v = s.view();
        assert!(v.generation > g);
        assert!(v.edges["a"].draining, "kept state");
        assert!(!v.edges.contains_key("b"));
        assert_eq!(v.edges["c"].health, Health::Unknown);
        assert_eq!(v.edges["c"].since_ms, 5);
        assert!(rx.has_changed().unwrap());
        let ids: Vec<_> = rx
            .borrow_and_update()
            .targets
            .iter()
            .map(|t| t.id.clone())
            .collect();
        assert_eq!(ids, ["a", "c"]);
        // Same config again: no new plan.
        s.reconcile_at(&config(&["a", "c"]), 6);
        assert!(!rx.has_changed().unwrap());
    }

    #[test]
    fn tick_marks_stale_in_state() {
        let s = HealthState::new_at(&config(&["e1"]), 0);
        let Event::Report(r) = report(1, 1, 1_000, 150.0, EdgeStatus::Serving) else {
            unreachable!()
        };
        assert_eq!(s.report(*r, 1_000).unwrap(), ReportVerdict::Accepted);
        assert!(s.view().edges["e1"].overloaded);
        let g = s.view().generation;
        s.tick(5_000);
        assert_eq!(s.view().generation, g);
        s.tick(11_001);
        assert!(!s.view().edges["e1"].overloaded);
        assert_eq!(s.view().generation, g + 1);
    }
}
