//! The router's side of the fleet bus (`[bus]`, NATS JetStream; wire contract in
//! [`cdn_shared::bus`]).
//!
//! * **Operator state**: drains and weight overrides written by any router's API
//!   ([`RouterBus::put_drain`], [`RouterBus::put_weight`]) go to the KV bucket `bus.kv_bucket`
//!   (keys `drain.<edge>`, `weight.<edge>`). Every router watches the bucket and applies each
//!   change to its health state as `Event::Drain` / `Event::Undrain` / `Event::Weight`. At start
//!   [`start`] reads the whole bucket before it returns (bounded by `bus.startup_timeout`), so
//!   the first query already sees the drains; after a lost connection the bucket is read
//!   again, so changes made meanwhile are applied.
//! * **Purges**: [`RouterBus::purge`] publishes to the stream `bus.purge_stream` and waits for
//!   JetStream's ack (stored, with its sequence); then it gathers the edges' acks on
//!   `cdn.purge_acks.<edge>` for `bus.purge_ack_timeout` and lists the others as pending.
//!   No ack from the stream → an error the API answers with 503.
//! * **Reports**: a subscription on `cdn.reports.>`; the edge is the one the subject names (a
//!   configured edge in its configured region), and the body must name the same edge, else
//!   the report is refused; accepted reports go through [`crate::health::ingest`].
//!
//! With NATS down the router keeps answering from its last state and its own probes; the
//! client reconnects with backoff, and after each reconnection this module reads the bucket
//! again and sets up a new watch (a restarted server has forgotten the old one).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use async_nats::jetstream::{self, kv, stream};
use futures_util::StreamExt;
use serde::Serialize;

use cdn_shared::bus::{
    drain_key, parse_operator_key, parse_report_subject, weight_key, DrainRecord, OperatorKey,
    PurgeAck, PurgeMessage, WeightRecord, PURGE_ACK_PREFIX, PURGE_SUBJECT, REPORT_PREFIX,
};
use cdn_shared::config::bus::BusSection;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

use crate::health::state::Event;
use crate::health::HealthState;

/// Why a bus operation failed (the admin API answers 503).
#[derive(Debug, thiserror::Error)]
#[error("fleet bus unavailable: {0}")]
pub struct BusError(pub String);

/// The router's connection to the bus. Cheap to share (`Arc`).
pub struct RouterBus {
    client: async_nats::Client,
    js: jetstream::Context,
    section: BusSection,
    kv: Mutex<Option<kv::Store>>,
    reconnects: cdn_shared::bus::Reconnects,
    /// Who we are in `by` fields.
    pub name: String,
}

impl std::fmt::Debug for RouterBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouterBus")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// One edge's acknowledgement of a purge, as the purge API lists it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EdgeApplied {
    /// Edge id.
    pub edge: String,
    /// Always true (edges that did not answer are in `pending`).
    pub ok: bool,
    /// Objects the edge purged.
    pub purged: u64,
    /// Time from the API call until the edge's ack, ms.
    pub ms: f64,
}

/// The purge API's answer in bus mode.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PurgeOutcome {
    /// The stream stored the purge (edges that are down apply it when they return).
    pub stored: bool,
    /// Stream sequence of the purge.
    pub seq: u64,
    /// Edges that applied it within `bus.purge_ack_timeout`.
    pub results: Vec<EdgeApplied>,
    /// Edges not heard from yet (they apply it from the stream when they can).
    pub pending: Vec<String>,
    /// Total time, ms.
    pub ms: f64,
}

fn round1(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

impl RouterBus {
    /// A purge issued now by this router.
    pub fn message(
        &self,
        urls: Vec<String>,
        prefixes: Vec<String>,
        tags: Vec<String>,
        soft: bool,
    ) -> PurgeMessage {
        PurgeMessage {
            v: cdn_shared::bus::VERSION,
            urls,
            prefixes,
            tags,
            soft,
            at_ms: cdn_shared::unix_ms(),
            by: self.name.clone(),
        }
    }

    /// Record an operator drain (or undrain) of `edge` in the KV bucket.
    pub async fn put_drain(&self, edge: &str, drained: bool) -> Result<(), BusError> {
        let record = DrainRecord {
            drained,
            at_ms: cdn_shared::unix_ms(),
            by: self.name.clone(),
        };
        self.put(drain_key(edge), &record, "drain").await
    }

    /// Record an operator weight override of `edge` (`None`: back to the configured weight)
    /// in the KV bucket.
    pub async fn put_weight(&self, edge: &str, weight: Option<u32>) -> Result<(), BusError> {
        let record = WeightRecord {
            weight,
            at_ms: cdn_shared::unix_ms(),
            by: self.name.clone(),
        };
        self.put(weight_key(edge), &record, "weight").await
    }

    /// Refuse at once while the client is not connected: the NATS client would queue the write
    /// and send it on reconnection — after the API answered 503 — so a refused drain or purge
    /// would apply later, unannounced.
    fn require_connected(&self, what: &str) -> Result<(), BusError> {
        match self.client.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            state => Err(BusError(format!(
                "the fleet bus is not connected ({state}): the {what} was not sent"
            ))),
        }
    }

    async fn put(&self, key: String, record: &impl Serialize, what: &str) -> Result<(), BusError> {
        self.require_connected(what)?;
        let kv = self.kv().await?;
        let body = serde_json::to_vec(record).map_err(|e| BusError(e.to_string()))?;
        tokio::time::timeout(self.section.request_timeout, kv.put(key, body.into()))
            .await
            .map_err(|_| {
                BusError(format!(
                    "timed out writing the {what} to the KV bucket: it was sent and may still \
                     apply when the bus answers"
                ))
            })?
            .map_err(|e| BusError(format!("KV write: {e}")))?;
        Ok(())
    }

    async fn kv(&self) -> Result<kv::Store, BusError> {
        if let Some(kv) = self.kv.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(kv);
        }
        let kv = tokio::time::timeout(
            self.section.request_timeout,
            ensure_kv(&self.js, &self.section),
        )
        .await
        .map_err(|_| BusError("timed out opening the KV bucket".into()))??;
        *self.kv.lock().unwrap_or_else(|p| p.into_inner()) = Some(kv.clone());
        Ok(kv)
    }

    /// Publish `body` (a [`PurgeMessage`] from [`RouterBus::message`], encoded as JSON once
    /// by the caller, who also checks its size against [`RouterBus::max_message`]) to the
    /// stream, wait until it is stored, then gather acks from `edges` for
    /// `bus.purge_ack_timeout`.
    pub async fn purge(&self, body: Vec<u8>, edges: &[String]) -> Result<PurgeOutcome, BusError> {
        let started = Instant::now();
        self.require_connected("purge")?;
        // Subscribe before publishing, so no ack can come before we listen.
        let mut acks = self
            .client
            .subscribe(format!("{PURGE_ACK_PREFIX}.*"))
            .await
            .map_err(|e| BusError(format!("subscribe to purge acks: {e}")))?;
        let timeout = self.section.request_timeout;
        let stored = tokio::time::timeout(timeout, async {
            self.js
                .publish(PURGE_SUBJECT, body.into())
                .await
                .map_err(|e| BusError(format!("publish: {e}")))?
                .await
                .map_err(|e| BusError(format!("the purge stream did not store it: {e}")))
        })
        .await
        .map_err(|_| {
            BusError(format!(
                "the purge stream did not answer within {timeout:?}: the purge was sent and may \
                 still apply when the bus answers"
            ))
        })??;
        let seq = stored.sequence;
        let mut waiting: BTreeSet<String> = edges.iter().cloned().collect();
        let mut results = Vec::new();
        let deadline = tokio::time::Instant::now() + self.section.purge_ack_timeout;
        while !waiting.is_empty() {
            let msg = match tokio::time::timeout_at(deadline, acks.next()).await {
                Ok(Some(m)) => m,
                Ok(None) | Err(_) => break,
            };
            let Ok(ack) = serde_json::from_slice::<PurgeAck>(&msg.payload) else {
                continue;
            };
            // The subject names the edge (NATS permissions: each edge its own subject).
            let from = msg.subject.as_str().rsplit('.').next().unwrap_or_default();
            if ack.seq != seq || ack.edge != from || !waiting.remove(from) {
                continue;
            }
            results.push(EdgeApplied {
                edge: ack.edge,
                ok: true,
                purged: ack.purged,
                ms: round1(started.elapsed().as_secs_f64() * 1000.0),
            });
        }
        let _ = acks.unsubscribe().await;
        let outcome = PurgeOutcome {
            stored: true,
            seq,
            results,
            pending: waiting.into_iter().collect(),
            ms: round1(started.elapsed().as_secs_f64() * 1000.0),
        };
        tracing::info!(
            seq,
            applied = outcome.results.len(),
            pending = outcome.pending.len(),
            ms = outcome.ms,
            "purge stored on the bus"
        );
        Ok(outcome)
    }
}

async fn ensure_kv(js: &jetstream::Context, section: &BusSection) -> Result<kv::Store, BusError> {
    if let Ok(kv) = js.get_key_value(section.kv_bucket.clone()).await {
        return Ok(kv);
    }
    // The bucket's stream is created here with the settings async-nats' `create_key_value`
    // uses: that call first reads the account info in a shape nats-server 2.9 does not send.
    js.get_or_create_stream(stream::Config {
        name: format!("KV_{}", section.kv_bucket),
        description: Some("CDN operator state (drains)".into()),
        subjects: vec![format!("$KV.{}.>", section.kv_bucket)],
        max_messages_per_subject: 5,
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: section.replicas,
        ..Default::default()
    })
    .await
    .map_err(|e| BusError(format!("create KV bucket `{}`: {e}", section.kv_bucket)))?;
    js.get_key_value(section.kv_bucket.clone())
        .await
        .map_err(|e| BusError(format!("open KV bucket `{}`: {e}", section.kv_bucket)))
}

async fn ensure_stream(js: &jetstream::Context, section: &BusSection) -> Result<(), BusError> {
    js.get_or_create_stream(stream::Config {
        name: section.purge_stream.clone(),
        subjects: vec![PURGE_SUBJECT.into()],
        max_age: section.purge_retention,
        num_replicas: section.replicas,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| BusError(format!("purge stream `{}`: {e}", section.purge_stream)))?;
    Ok(())
}

/// Apply one KV entry to the health state (a deleted key restores the default: undrained,
/// configured weight).
fn apply_entry(health: &HealthState, key: &str, value: &[u8], deleted: bool) {
    let (edge, event) = match parse_operator_key(key) {
        Some(OperatorKey::Drain(edge)) => {
            let drained = if deleted {
                false
            } else {
                match serde_json::from_slice::<DrainRecord>(value) {
                    Ok(r) => r.drained,
                    Err(e) => {
                        tracing::warn!(key, error = %e, "bad drain record in the KV bucket; ignored");
                        return;
                    }
                }
            };
            (
                edge,
                if drained {
                    Event::Drain
                } else {
                    Event::Undrain
                },
            )
        }
        Some(OperatorKey::Weight(edge)) => {
            let weight = if deleted {
                None
            } else {
                match serde_json::from_slice::<WeightRecord>(value) {
                    Ok(r) if r.weight.is_none_or(valid_weight) => r.weight,
                    Ok(r) => {
                        tracing::warn!(key, weight = ?r.weight, "weight out of range in the KV bucket; ignored");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(key, error = %e, "bad weight record in the KV bucket; ignored");
                        return;
                    }
                }
            };
            (edge, Event::Weight(weight))
        }
        None => return,
    };
    match health.event(edge, event, cdn_shared::unix_ms()) {
        Ok(_) => tracing::debug!(edge, key, "operator state applied from the bus"),
        Err(_) => tracing::debug!(edge, key, "operator state for an edge not configured here"),
    }
}

/// A weight override the API and the bucket accept: 1..=[`cdn_shared::bus::MAX_WEIGHT`].
pub fn valid_weight(w: u32) -> bool {
    (1..=cdn_shared::bus::MAX_WEIGHT).contains(&w)
}

impl RouterBus {
    /// The largest message the server takes (its `max_payload`); `None` before it is known.
    pub fn max_message(&self) -> Option<usize> {
        Some(self.client.server_info().max_payload).filter(|&m| m > 0)
    }

    /// Read the whole bucket again and apply it to `health`: after a reload added edges (the
    /// state of an edge this router did not know was skipped when it was read or watched).
    pub async fn reread(&self, health: &HealthState) -> Result<usize, BusError> {
        self.require_connected("bucket read")?;
        let kv = self.kv().await?;
        tokio::time::timeout(self.section.request_timeout, read_all(&kv, health))
            .await
            .map_err(|_| BusError("timed out reading the KV bucket".into()))?
    }
}

/// Read every key of the bucket and apply it.
async fn read_all(kv: &kv::Store, health: &HealthState) -> Result<usize, BusError> {
    let keys: Vec<String> = kv
        .keys()
        .await
        .map_err(|e| BusError(format!("KV keys: {e}")))?
        .filter_map(|k| async move { k.ok() })
        .collect()
        .await;
    for key in &keys {
        if let Some(value) = kv
            .get(key.clone())
            .await
            .map_err(|e| BusError(format!("KV get {key}: {e}")))?
        {
            apply_entry(health, key, &value, false);
        }
    }
    Ok(keys.len())
}

/// Set up (stream, bucket), read the bucket, report `ready`, then apply changes until the
/// watch ends (connection lost).
async fn sync_operator_state(
    bus: &RouterBus,
    health: &HealthState,
    ready: &tokio::sync::watch::Sender<bool>,
) -> Result<(), BusError> {
    let mut reconnects = bus.reconnects.clone();
    reconnects.borrow_and_update();
    ensure_stream(&bus.js, &bus.section).await?;
    let kv = bus.kv().await?;
    // Watch first (new changes only), then read: nothing between the two is missed, and
    // applying a drain twice changes nothing.
    let mut watch = kv
        .watch_all()
        .await
        .map_err(|e| BusError(format!("KV watch: {e}")))?;
    let n = read_all(&kv, health).await?;
    tracing::info!(keys = n, bucket = %bus.section.kv_bucket, "operator state read from the bus");
    let _ = ready.send(true);
    loop {
        let entry = tokio::select! {
            e = watch.next() => e,
            // A restarted server has forgotten the watch (an ephemeral ordered consumer),
            // and changes made meanwhile must be read: start over.
            _ = reconnects.changed() => {
                if *reconnects.borrow_and_update() <= 1 {
                    continue; // the first connection, made while this sync started
                }
                return Err(BusError("reconnected: reading the bucket again".into()));
            }
        };
        let Some(entry) = entry else {
            return Err(BusError("KV watch ended".into()));
        };
        let entry = entry.map_err(|e| BusError(format!("KV watch: {e}")))?;
        let deleted = !matches!(entry.operation, kv::Operation::Put);
        apply_entry(health, &entry.key, &entry.value, deleted);
    }
}

/// Take reports from `cdn.reports.<region>.<edge>` until shutdown.
async fn take_reports(
    client: async_nats::Client,
    health: Arc<HealthState>,
    config: Arc<ArcSwap<RouterConfig>>,
    shutdown: Shutdown,
) {
    let mut attempt = 0;
    loop {
        let mut sub = match client.subscribe(format!("{REPORT_PREFIX}.>")).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "subscribe to reports failed; retrying");
                attempt += 1;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(cdn_shared::bus::reconnect_delay(attempt)) => continue,
                }
            }
        };
        loop {
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return,
                m = sub.next() => m,
            };
            let Some(msg) = msg else { break };
            take_report(&health, &config.load(), msg.subject.as_str(), &msg.payload);
        }
    }
}

/// Check one report against its subject and ingest it; returns whether it was taken.
pub fn take_report(
    health: &HealthState,
    config: &RouterConfig,
    subject: &str,
    body: &[u8],
) -> bool {
    let refuse = |why: &str| {
        metrics::counter!(crate::metrics::names::REPORTS_INGESTED, "result" => "bad_subject")
            .increment(1);
        tracing::warn!(subject, why, "report refused");
        false
    };
    let Some((region, edge)) = parse_report_subject(subject) else {
        return refuse("not a report subject");
    };
    if !config
        .edges
        .iter()
        .any(|e| e.id == edge && e.region == region)
    {
        return refuse("no such edge in that region");
    }
    let Ok(named) = serde_json::from_slice::<serde_json::Value>(body) else {
        return refuse("bad JSON");
    };
    let body_edge = named.get("edge_id").and_then(|v| v.as_str());
    let body_region = named.get("region").and_then(|v| v.as_str());
    if body_edge != Some(edge) || body_region != Some(region) {
        return refuse("the body names another edge than the subject");
    }
    crate::health::ingest::ingest(health, config, body, cdn_shared::unix_ms()).is_ok()
}

/// Connect to the bus, read operator state (waiting at most `bus.startup_timeout`), and keep
/// it in sync and take reports in background tasks until `shutdown`.
pub async fn start(
    section: &BusSection,
    name: String,
    health: Arc<HealthState>,
    config: Arc<ArcSwap<RouterConfig>>,
    shutdown: Shutdown,
) -> Result<(Arc<RouterBus>, Vec<tokio::task::JoinHandle<()>>), BusError> {
    let (client, reconnects) = cdn_shared::bus::connect(section, &name)
        .await
        .map_err(BusError)?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(section.request_timeout);
    let bus = Arc::new(RouterBus {
        client: client.clone(),
        js,
        section: section.clone(),
        kv: Mutex::new(None),
        reconnects,
        name,
    });
    let (ready_tx, mut ready_rx) = tokio::sync::watch::channel(false);
    let sync = {
        let bus = bus.clone();
        let health = health.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut attempt = 0;
            loop {
                let result = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    r = sync_operator_state(&bus, &health, &ready_tx) => r,
                };
                if let Err(e) = result {
                    tracing::warn!(error = %e, "operator state sync interrupted; retrying");
                }
                attempt += 1;
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(cdn_shared::bus::reconnect_delay(attempt)) => {}
                }
            }
        })
    };
    let reports = tokio::spawn(take_reports(client, health, config, shutdown));
    let waited = tokio::time::timeout(section.startup_timeout, ready_rx.wait_for(|r| *r)).await;
    if waited.is_err() {
        tracing::warn!(
            timeout = ?section.startup_timeout,
            "fleet bus not reachable: starting with the configured drain state; \
             operator state is applied once the bus is back"
        );
    }
    Ok((bus, vec![sync, reports]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cdn_shared::report::{
        CacheFigures, Capacity, EdgeStatus, HealthReport, Load, REPORT_VERSION,
    };

    fn config() -> RouterConfig {
        cdn_shared::config::load_str(
            "[[regions]]\nname = \"r\"\nlat = 0.0\nlon = 0.0\n\
             [[regions]]\nname = \"q\"\nlat = 1.0\nlon = 1.0\n\
             [[zones]]\nname = \"cdn.test\"\nns = [\"ns1.cdn.test\"]\n\
             [[edges]]\nid = \"e1\"\nregion = \"r\"\nipv4 = [\"127.0.0.1\"]\n\
             [[edges]]\nid = \"e2\"\nregion = \"q\"\nipv4 = [\"127.0.0.2\"]\n",
        )
        .unwrap()
    }

    fn report(id: &str, region: &str, seq: u64) -> Vec<u8> {
        serde_json::to_vec(&HealthReport {
            version: REPORT_VERSION,
            edge_id: id.into(),
            region: region.into(),
            seq,
            boot_id: 1,
            sent_at_ms: cdn_shared::unix_ms(),
            status: EdgeStatus::Draining,
            load: Load::default(),
            capacity: Capacity::default(),
            cache: CacheFigures::default(),
        })
        .unwrap()
    }

    fn reported(h: &HealthState, id: &str) -> bool {
        h.view().edges[id].last_report.is_some()
    }

    #[test]
    fn the_subject_names_the_edge_and_must_match_the_body() {
        let c = config();
        let h = HealthState::new(&c);
        // Not a report subject, an unknown edge, the wrong region.
        assert!(!take_report(&h, &c, "cdn.reports.r", &report("e1", "r", 1)));
        assert!(!take_report(
            &h,
            &c,
            "cdn.reports.r.nope",
            &report("e1", "r", 1)
        ));
        assert!(!take_report(
            &h,
            &c,
            "cdn.reports.q.e1",
            &report("e1", "q", 1)
        ));
        // e1's subject carrying e2's report (or e1's, claiming another region).
        assert!(!take_report(
            &h,
            &c,
            "cdn.reports.r.e1",
            &report("e2", "q", 1)
        ));
        assert!(!take_report(
            &h,
            &c,
            "cdn.reports.r.e1",
            &report("e1", "q", 1)
        ));
        assert!(!take_report(&h, &c, "cdn.reports.r.e1", b"not json"));
        assert!(!reported(&h, "e1") && !reported(&h, "e2"));
        // The real thing.
        assert!(take_report(
            &h,
            &c,
            "cdn.reports.r.e1",
            &report("e1", "r", 1)
        ));
        assert!(reported(&h, "e1") && !reported(&h, "e2"));
    }

    #[test]
    fn drain_records_apply_and_deletes_undrain() {
        let c = config();
        let h = HealthState::new(&c);
        let rec = |drained| {
            serde_json::to_vec(&DrainRecord {
                drained,
                at_ms: 1,
                by: "t".into(),
            })
            .unwrap()
        };
        apply_entry(&h, "drain.e1", &rec(true), false);
        assert!(h.view().edges["e1"].manual_drain);
        assert!(!h.view().edges["e2"].manual_drain);
        apply_entry(&h, "drain.e1", &rec(false), false);
        assert!(!h.view().edges["e1"].manual_drain);
        apply_entry(&h, "drain.e2", &rec(true), false);
        apply_entry(&h, "drain.e2", b"", true);
        assert!(!h.view().edges["e2"].manual_drain);
        // Unknown edges, other keys and bad records change nothing.
        apply_entry(&h, "drain.nope", &rec(true), false);
        apply_entry(&h, "weight.e1", &rec(true), false);
        apply_entry(&h, "other.e1", &rec(true), false);
        apply_entry(&h, "drain.e1", b"{", false);
        assert!(!h.view().edges["e1"].manual_drain);
        assert_eq!(h.view().edges["e1"].weight_override, None);
    }

    #[test]
    fn weight_records_apply_and_deletes_restore_the_configured_weight() {
        let c = config();
        let h = HealthState::new(&c);
        let rec = |weight| {
            serde_json::to_vec(&WeightRecord {
                weight,
                at_ms: 1,
                by: "t".into(),
            })
            .unwrap()
        };
        apply_entry(&h, "weight.e1", &rec(Some(7)), false);
        assert_eq!(h.view().edges["e1"].weight_override, Some(7));
        assert_eq!(h.view().edges["e2"].weight_override, None);
        // Out of range or malformed: ignored, the previous override stays.
        apply_entry(&h, "weight.e1", &rec(Some(0)), false);
        apply_entry(&h, "weight.e1", &rec(Some(u32::MAX)), false);
        apply_entry(&h, "weight.e1", b"[]", false);
        assert_eq!(h.view().edges["e1"].weight_override, Some(7));
        apply_entry(&h, "weight.e1", &rec(None), false);
        assert_eq!(h.view().edges["e1"].weight_override, None);
        apply_entry(&h, "weight.e2", &rec(Some(3)), false);
        apply_entry(&h, "weight.e2", b"", true);
        assert_eq!(h.view().edges["e2"].weight_override, None);
        assert!(!h.view().edges["e1"].manual_drain, "weights are not drains");
    }
}
