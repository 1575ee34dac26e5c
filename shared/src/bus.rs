//! The fleet bus wire contract (NATS JetStream; configured by `[bus]`, see
//! [`crate::config::bus`]). Version 1; change it deliberately.
//!
//! | what | where | body |
//! |---|---|---|
//! | purge | JetStream stream `bus.purge_stream`, subject [`PURGE_SUBJECT`] | [`PurgeMessage`] |
//! | purge applied | core subject `cdn.purge_acks.<edge>` ([`purge_ack_subject`]) | [`PurgeAck`] |
//! | operator state | KV bucket `bus.kv_bucket`, key `drain.<edge>` ([`drain_key`]) | [`DrainRecord`] |
//! | weight override | KV bucket `bus.kv_bucket`, key `weight.<edge>` ([`weight_key`]) | [`WeightRecord`] |
//! | health report | core subject `cdn.reports.<region>.<edge>` ([`report_subject`]) | `HealthReport` |
//!
//! Each edge consumes the purge stream with a durable pull consumer named by its id
//! ([`consumer_name`]), acknowledging each purge once applied, so an edge that was down resumes
//! where it stopped. Who sent a report is read from its subject (NATS permissions let an edge
//! publish only its own), never from the body.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::bus::BusSection;

/// Subject of the purge stream.
pub const PURGE_SUBJECT: &str = "cdn.purges";
/// Prefix of the per-edge purge acknowledgement subjects.
pub const PURGE_ACK_PREFIX: &str = "cdn.purge_acks";
/// Prefix of the report subjects.
pub const REPORT_PREFIX: &str = "cdn.reports";
/// The wire version in [`PurgeMessage::v`].
pub const VERSION: u32 = 1;

/// A purge as stored in the stream.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PurgeMessage {
    /// Wire version ([`VERSION`]).
    pub v: u32,
    /// Exact URLs (`host/path?query` or absolute).
    #[serde(default)]
    pub urls: Vec<String>,
    /// URL prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Surrogate keys / tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Mark stale instead of removing.
    #[serde(default)]
    pub soft: bool,
    /// When the purge was issued (Unix ms): it applies to objects stored before this.
    pub at_ms: u64,
    /// The router that accepted it (for logs).
    #[serde(default)]
    pub by: String,
}

/// An edge's acknowledgement that it applied the purge stored at stream sequence `seq`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PurgeAck {
    /// The edge.
    pub edge: String,
    /// Stream sequence of the purge.
    pub seq: u64,
    /// Objects purged (removed or marked stale).
    pub purged: u64,
}

/// Operator drain state of one edge, as stored in the KV bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DrainRecord {
    /// Drained by an operator.
    pub drained: bool,
    /// When it was set (Unix ms).
    pub at_ms: u64,
    /// The router whose API set it.
    #[serde(default)]
    pub by: String,
}

/// Operator weight override of one edge, as stored in the KV bucket.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightRecord {
    /// The weight that replaces the configured `edges[].weight`; `None` restores it.
    pub weight: Option<u32>,
    /// When it was set (Unix ms).
    pub at_ms: u64,
    /// The router whose API set it.
    #[serde(default)]
    pub by: String,
}

/// The largest weight override the admin API takes.
pub const MAX_WEIGHT: u32 = 1_000_000;

/// The KV key of an edge's weight override.
pub fn weight_key(edge: &str) -> String {
    format!("weight.{edge}")
}

/// What a KV key of the operator-state bucket is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorKey<'a> {
    /// `drain.<edge>`.
    Drain(&'a str),
    /// `weight.<edge>`.
    Weight(&'a str),
}

/// Parse a key written by [`drain_key`] or [`weight_key`]; `None` for anything else.
pub fn parse_operator_key(key: &str) -> Option<OperatorKey<'_>> {
    if let Some(e) = edge_of_drain_key(key) {
        return Some(OperatorKey::Drain(e));
    }
    key.strip_prefix("weight.")
        .filter(|e| !e.is_empty())
        .map(OperatorKey::Weight)
}

/// The KV key of an edge's drain state.
pub fn drain_key(edge: &str) -> String {
    format!("drain.{edge}")
}

/// The edge id of a KV key written by [`drain_key`].
pub fn edge_of_drain_key(key: &str) -> Option<&str> {
    key.strip_prefix("drain.").filter(|e| !e.is_empty())
}

/// The subject an edge acknowledges purges on.
pub fn purge_ack_subject(edge: &str) -> String {
    format!("{PURGE_ACK_PREFIX}.{edge}")
}

/// The subject an edge publishes its reports on.
pub fn report_subject(region: &str, edge: &str) -> String {
    format!("{REPORT_PREFIX}.{region}.{edge}")
}

/// `(region, edge)` of a report subject; `None` for anything else.
pub fn parse_report_subject(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix(REPORT_PREFIX)?.strip_prefix('.')?;
    let (region, edge) = rest.split_once('.')?;
    if region.is_empty() || edge.is_empty() || edge.contains('.') {
        return None;
    }
    Some((region, edge))
}

/// The durable consumer name of an edge (JetStream names allow no `.`, `*`, `>`).
pub fn consumer_name(edge: &str) -> String {
    format!("edge-{}", edge.replace(['.', '*', '>', ' '], "_"))
}

/// Counts (re)connections to the bus: each change is a new connection, after which
/// server-side state that does not survive a server restart (ordered consumers, such as a KV
/// watch) must be set up again.
pub type Reconnects = tokio::sync::watch::Receiver<u64>;

/// Connect to the bus as `name` (shown by the server's monitoring). Returns at once: the
/// connection is made (and remade after a loss) in the background with backoff, so callers
/// bound their waits with the `[bus]` timeouts. Fails only on unreadable credentials.
///
/// TLS (`bus.tls_ca`, `bus.tls_cert`/`tls_key`): with a CA file TLS is required and only that
/// CA is trusted; a client certificate is presented when the server asks (mutual TLS). The
/// files are checked by [`BusSection::check_files`] before start-up; a handshake that fails
/// later (wrong CA, expired certificate) is logged and retried like any lost connection.
pub async fn connect(
    section: &BusSection,
    name: &str,
) -> Result<(async_nats::Client, Reconnects), String> {
    let (connected_tx, connected_rx) = tokio::sync::watch::channel(0u64);
    let connected_tx = std::sync::Arc::new(connected_tx);
    let mut opts = match (&section.user, &section.nkey, &section.creds_file) {
        (Some(user), _, _) => async_nats::ConnectOptions::with_user_and_password(
            user.clone(),
            section.password.clone().unwrap_or_default(),
        ),
        (_, Some(seed), _) => async_nats::ConnectOptions::with_nkey(seed.clone()),
        (_, _, Some(path)) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| format!("bus.creds_file {}: {e}", path.display()))?,
        _ => async_nats::ConnectOptions::new(),
    };
    if let Some(ca) = &section.tls_ca {
        // Only these CAs are trusted, and a server that offers no TLS is refused.
        opts = opts.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&section.tls_cert, &section.tls_key) {
        opts = opts.add_client_certificate(cert.clone(), key.clone());
    }
    opts = opts
        .name(name)
        .connection_timeout(section.connect_timeout)
        .request_timeout(Some(section.request_timeout))
        .retry_on_initial_connect()
        .max_reconnects(None::<usize>)
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let connected_tx = connected_tx.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        tracing::info!("bus connected");
                        connected_tx.send_modify(|n| *n += 1);
                    }
                    async_nats::Event::Disconnected => tracing::warn!("bus disconnected"),
                    other => tracing::debug!(event = %other, "bus event"),
                }
            }
        });
    let servers: Vec<async_nats::ServerAddr> = section
        .servers
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bus.servers: {e}"))?;
    let client = opts
        .connect(servers)
        .await
        .map_err(|e| format!("bus connect: {e}"))?;
    Ok((client, connected_rx))
}

/// Reconnect backoff: 100 ms doubling up to 5 s.
pub fn reconnect_delay(attempts: usize) -> Duration {
    let exp = attempts.min(6) as u32;
    Duration::from_millis(100 * 2u64.pow(exp)).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        assert_eq!(report_subject("eu", "e1"), "cdn.reports.eu.e1");
        assert_eq!(
            parse_report_subject("cdn.reports.eu.e1"),
            Some(("eu", "e1"))
        );
        assert_eq!(parse_report_subject("cdn.reports.eu"), None);
        assert_eq!(parse_report_subject("cdn.reports.eu.e1.x"), None);
        assert_eq!(parse_report_subject("cdn.reportsx.eu.e1"), None);
        assert_eq!(edge_of_drain_key(&drain_key("use1")), Some("use1"));
        assert_eq!(edge_of_drain_key("drain."), None);
        assert_eq!(
            parse_operator_key(&weight_key("use1")),
            Some(OperatorKey::Weight("use1"))
        );
        assert_eq!(
            parse_operator_key(&drain_key("use1")),
            Some(OperatorKey::Drain("use1"))
        );
        assert_eq!(parse_operator_key("weight."), None);
        assert_eq!(parse_operator_key("other.use1"), None);
        assert_eq!(consumer_name("a.b"), "edge-a_b");
    }
}
