//! The edge's side of the fleet bus (`[bus]`, NATS JetStream; wire contract in
//! [`cdn_shared::bus`]).
//!
//! **Purges.** The edge consumes the purge stream (`bus.purge_stream`) with a durable pull
//! consumer named by its id ([`cdn_shared::bus::consumer_name`]), so the server remembers how
//! far it got. [`start`] runs before the edge serves anything: it applies every purge the edge
//! missed while it was down, and only then does `run` start its listeners. A purge applies to
//! objects stored before the purge's time (`at_ms`); newer objects are kept. Each applied purge
//! is acknowledged to the stream and announced on `cdn.purge_acks.<edge>` (the router's purge
//! API gathers these).
//!
//! If the purges it missed are no longer retained (the stream's first sequence is past the
//! consumer's ack floor), or the bus cannot be reached within `bus.startup_timeout`, the edge
//! cannot know what was purged: it marks its whole cache stale (a soft purge of everything:
//! each object is revalidated with the origin before it is served again) and starts serving.
//!
//! Afterwards a background task applies purges as they arrive; when the connection is lost
//! the client reconnects with backoff and the task catches up again.
//!
//! **Reports.** [`NatsReportSink`] publishes the reporter's `HealthReport`s to
//! `cdn.reports.<region>.<edge>`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures_util::future::BoxFuture;
use futures_util::StreamExt;

use cdn_shared::bus::{consumer_name, purge_ack_subject, PurgeAck, PurgeMessage, PURGE_SUBJECT};
use cdn_shared::config::bus::BusSection;
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::report::HealthReport;
use cdn_shared::shutdown::Shutdown;

use crate::cache::meta::Entry;
use crate::cache::store::Store;
use crate::purge::Index;

type PullConsumer = consumer::Consumer<consumer::pull::Config>;

/// What the purge consumer works on.
#[derive(Clone)]
struct Purger {
    edge: String,
    hosts: Vec<String>,
    section: BusSection,
    client: async_nats::Client,
    js: jetstream::Context,
    store: Arc<Store>,
    index: Arc<Index>,
}

/// The running bus tasks of an edge.
#[derive(Debug)]
pub struct EdgeBus {
    /// The connection (the report sink publishes on it).
    pub client: async_nats::Client,
    task: tokio::task::JoinHandle<()>,
}

impl EdgeBus {
    /// Wait for the background task to stop (after the shutdown token was cancelled).
    pub async fn join(self) {
        let _ = self.task.await;
        // Bounded: with the bus unreachable a flush would wait for the reconnection.
        let _ = tokio::time::timeout(Duration::from_secs(1), self.client.flush()).await;
    }
}

/// How a catch-up ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Every missed purge was applied.
    Applied(usize),
    /// Missed purges were no longer retained: the whole cache was marked stale (plus the
    /// purges still retained, applied).
    Lost(usize),
}

/// Connect, catch up with missed purges (bounded by `bus.startup_timeout`; past it the whole
/// cache is marked stale), then keep applying purges in the background until `shutdown`.
pub async fn start(
    config: &EdgeConfig,
    section: &BusSection,
    store: Arc<Store>,
    index: Arc<Index>,
    shutdown: Shutdown,
) -> Result<EdgeBus, String> {
    let name = format!("edge {}", config.edge.id);
    // A pull consumer is durable: after a reconnect the next fetch simply resumes.
    let (client, _reconnects) = cdn_shared::bus::connect(section, &name).await?;
    let mut js = jetstream::new(client.clone());
    js.set_timeout(section.request_timeout);
    let purger = Purger {
        edge: config.edge.id.clone(),
        hosts: config
            .hosts
            .iter()
            .map(|h| h.name.to_ascii_lowercase())
            .collect(),
        section: section.clone(),
        client: client.clone(),
        js,
        store,
        index,
    };
    let first = tokio::time::timeout(section.startup_timeout, purger.catch_up()).await;
    let consumer = match first {
        Ok(Ok((consumer, done))) => {
            tracing::info!(?done, "purges caught up from the bus");
            Some(consumer)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "purge catch-up failed: treating the whole cache as stale");
            purger.stale_everything().await;
            None
        }
        Err(_) => {
            tracing::warn!(timeout = ?section.startup_timeout,
                "fleet bus not reachable: treating the whole cache as stale");
            purger.stale_everything().await;
            None
        }
    };
    let task = tokio::spawn(purger.follow(consumer, shutdown));
    Ok(EdgeBus { client, task })
}

impl Purger {
    /// The purge stream (created with the configured retention if it does not exist yet).
    async fn stream(&self) -> Result<stream::Stream, String> {
        self.js
            .get_or_create_stream(stream::Config {
                name: self.section.purge_stream.clone(),
                subjects: vec![PURGE_SUBJECT.into()],
                max_age: self.section.purge_retention,
                num_replicas: self.section.replicas,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| format!("purge stream `{}`: {e}", self.section.purge_stream))
    }

    /// Open (or create) our durable consumer, find out whether purges were lost, and apply
    /// every pending purge. Returns the consumer for [`Purger::follow`].
    async fn catch_up(&self) -> Result<(PullConsumer, CatchUp), String> {
        let mut stream = self.stream().await?;
        let state = stream
            .info()
            .await
            .map_err(|e| format!("purge stream info: {e}"))?
            .state
            .clone();
        let name = consumer_name(&self.edge);
        let (consumer, floor) = match stream.get_consumer::<consumer::pull::Config>(&name).await {
            Ok(mut c) => {
                let floor = c
                    .info()
                    .await
                    .map_err(|e| format!("consumer info: {e}"))?
                    .ack_floor
                    .stream_sequence;
                (c, Some(floor))
            }
            Err(_) => {
                let c = stream
                    .create_consumer(consumer::pull::Config {
                        durable_name: Some(name.clone()),
                        deliver_policy: consumer::DeliverPolicy::All,
                        ack_policy: consumer::AckPolicy::Explicit,
                        ..Default::default()
                    })
                    .await
                    .map_err(|e| format!("create consumer {name}: {e}"))?;
                (c, None)
            }
        };
        // A consumer that never ran starts at sequence 1: whatever was stored before the
        // stream's first retained purge could be stale. A known one resumes after its floor.
        let lost = match floor {
            Some(floor) => state.first_sequence > floor + 1 && state.last_sequence > floor,
            None => state.first_sequence > 1 && !self.index.is_empty(),
        };
        if lost {
            tracing::warn!(
                first_retained = state.first_sequence,
                ack_floor = ?floor,
                "purges missed while down are no longer retained: treating the whole cache as stale"
            );
            self.stale_everything().await;
        }
        let mut applied = 0;
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .messages()
                .await
                .map_err(|e| format!("fetch purges: {e}"))?;
            let mut got = 0;
            while let Some(msg) = batch.next().await {
                let msg = msg.map_err(|e| format!("fetch purges: {e}"))?;
                self.handle(&msg).await?;
                got += 1;
            }
            applied += got;
            if got == 0 {
                break;
            }
        }
        Ok((
            consumer,
            if lost {
                CatchUp::Lost(applied)
            } else {
                CatchUp::Applied(applied)
            },
        ))
    }

    /// Apply one stream message, acknowledge it to the stream (waiting for the server, so a
    /// restart does not apply it twice), and announce it to the routers.
    async fn handle(&self, msg: &jetstream::Message) -> Result<(), String> {
        let seq = msg.info().map(|i| i.stream_sequence).unwrap_or(0);
        let purged = match serde_json::from_slice::<PurgeMessage>(&msg.payload) {
            Ok(p) => apply(&p, &self.index, &self.store).await,
            Err(e) => {
                tracing::warn!(seq, error = %e, "bad purge message on the bus; skipped");
                0
            }
        };
        msg.double_ack()
            .await
            .map_err(|e| format!("ack purge {seq}: {e}"))?;
        let ack = PurgeAck {
            edge: self.edge.clone(),
            seq,
            purged: purged as u64,
        };
        if let Ok(body) = serde_json::to_vec(&ack) {
            let _ = self
                .client
                .publish(purge_ack_subject(&self.edge), body.into())
                .await;
        }
        Ok(())
    }

    /// Mark every indexed object stale (revalidated before it is served again).
    async fn stale_everything(&self) {
        let mut keys: HashSet<String> = HashSet::new();
        for h in &self.hosts {
            keys.extend(self.index.keys_with_prefix(h));
        }
        for k in &keys {
            self.store.mark_stale(k).await;
        }
        metrics::counter!(crate::metrics::PURGED_OBJECTS, "mode" => "soft")
            .increment(keys.len() as u64);
        tracing::warn!(objects = keys.len(), "whole cache marked stale");
    }

    /// Apply purges as they come, until `shutdown`; after an error, reconnect and catch up.
    async fn follow(self, mut consumer: Option<PullConsumer>, shutdown: Shutdown) {
        let mut attempt = 0usize;
        loop {
            let c = match consumer.take() {
                Some(c) => c,
                None => {
                    let r = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        r = self.catch_up() => r,
                    };
                    match r {
                        Ok((c, done)) => {
                            tracing::info!(?done, "purges caught up from the bus");
                            attempt = 0;
                            c
                        }
                        Err(e) => {
                            attempt += 1;
                            tracing::warn!(error = %e, "purge catch-up failed; retrying");
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(cdn_shared::bus::reconnect_delay(attempt)) => {}
                            }
                            continue;
                        }
                    }
                }
            };
            let mut messages = match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    tracing::warn!(error = %e, "purge consumer failed; retrying");
                    continue;
                }
            };
            loop {
                let next = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    n = messages.next() => n,
                };
                match next {
                    Some(Ok(msg)) => {
                        if let Err(e) = self.handle(&msg).await {
                            tracing::warn!(error = %e, "purge not acknowledged; will catch up");
                            break;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "purge consumer interrupted; will catch up");
                        break;
                    }
                    None => break,
                }
            }
            attempt += 1;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(cdn_shared::bus::reconnect_delay(attempt)) => {}
            }
        }
    }
}

/// How far this edge's clock may run ahead of the router's that stamped a purge's `at_ms`:
/// an object stored up to this long after `at_ms` (by our clock) is still purged. Purging one
/// fetched just after the purge costs a refetch; keeping one fetched just before it would serve
/// purged content.
pub const PURGE_CLOCK_SKEW_MS: u64 = 10_000;

/// Whether an object stored at `response_time_ms` (this edge's clock) is newer than a purge
/// issued at `at_ms` (the router's clock) beyond any clock skew: then the purge does not apply.
pub fn stored_after_purge(response_time_ms: u64, at_ms: u64) -> bool {
    response_time_ms > at_ms.saturating_add(PURGE_CLOCK_SKEW_MS)
}

/// Apply `purge` to objects stored before `purge.at_ms` (give or take
/// [`PURGE_CLOCK_SKEW_MS`]): hard removes them (and their index entries), soft marks them
/// stale. Returns how many objects were purged.
pub async fn apply(purge: &PurgeMessage, index: &Index, store: &Store) -> usize {
    let mode = if purge.soft { "soft" } else { "hard" };
    index.note_purge(purge.at_ms, &purge.urls, &purge.prefixes, &purge.tags);
    let mut keys: HashSet<String> = HashSet::new();
    for u in &purge.urls {
        keys.extend(index.keys_for_url(u));
    }
    for p in &purge.prefixes {
        keys.extend(index.keys_with_prefix(p));
    }
    for t in &purge.tags {
        keys.extend(index.keys_for_tag(t));
    }
    let mut purged = 0;
    for k in &keys {
        if let Some(Entry::Object(meta)) = store.get(k).await {
            if stored_after_purge(meta.response_time_ms, purge.at_ms) {
                continue; // stored after the purge was issued
            }
        }
        if purge.soft {
            store.mark_stale(k).await;
        } else {
            store.remove(k);
            index.forget(k);
        }
        purged += 1;
    }
    metrics::counter!(crate::metrics::PURGES, "kind" => "bus", "mode" => mode).increment(1);
    metrics::counter!(crate::metrics::PURGED_OBJECTS, "mode" => mode).increment(purged as u64);
    metrics::gauge!(crate::metrics::CACHE_OBJECTS).set(index.len() as f64);
    tracing::info!(purged, soft = purge.soft, by = %purge.by, "purge from the bus");
    purged
}

/// Reports to `cdn.reports.<region>.<edge>` (the reporter's target string is the subject).
#[derive(Debug)]
pub struct NatsReportSink {
    client: async_nats::Client,
}

impl NatsReportSink {
    /// A sink publishing on `client`.
    pub fn new(client: async_nats::Client) -> Self {
        Self { client }
    }

    /// The reporter target for this edge: `nats:<subject>`.
    pub fn target(region: &str, edge: &str) -> String {
        format!("nats:{}", cdn_shared::bus::report_subject(region, edge))
    }
}

impl crate::report::ReportSink for NatsReportSink {
    fn send<'a>(
        &'a self,
        router: &'a str,
        report: &'a HealthReport,
    ) -> BoxFuture<'a, Result<u16, String>> {
        Box::pin(async move {
            let subject = router
                .strip_prefix("nats:")
                .ok_or_else(|| format!("not a bus target: {router}"))?
                .to_string();
            let body = serde_json::to_vec(report).map_err(|e| e.to_string())?;
            self.client
                .publish(subject, body.into())
                .await
                .map_err(|e| e.to_string())?;
            // Core NATS has no answer: a flush proves the server took it.
            self.client.flush().await.map_err(|e| e.to_string())?;
            Ok(200)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_applies_to_objects_stored_up_to_the_clock_skew_after_it() {
        let at = 1_000_000;
        assert!(!stored_after_purge(at - 5_000, at));
        assert!(!stored_after_purge(at + 3_000, at), "edge clock 3 s ahead");
        assert!(!stored_after_purge(at + PURGE_CLOCK_SKEW_MS, at));
        assert!(stored_after_purge(at + PURGE_CLOCK_SKEW_MS + 1, at));
        assert!(!stored_after_purge(u64::MAX, u64::MAX));
    }
}
