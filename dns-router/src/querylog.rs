//! Step 5 of a query: count it and, when `dns.query_log` is set, log it.
//!
//! * Metrics (names in `crate::metrics::names`): `cdn_dns_queries_total{qtype,rcode,service,
//!   region}` and `cdn_dns_answer_seconds`. Each thread keeps the counter handles it has used
//!   and counts into them locally: a query is one hash lookup and two additions, and
//!   [`Recorder::flush`] (after each UDP batch, after each TCP query) hands the counts to the
//!   shared counters and to `metrics::ANSWER_TIMES`.
//! * Query log: one JSON object per line (`ts_ms`, `client`, `transport`, `name`, `qtype`,
//!   `rcode`, `ecs`, `service`, `edges`, `region`, `rule`, `scope`, `tc`), written by a
//!   dedicated thread from a bounded queue; lines are dropped (and counted in the
//!   `dropped` field of the next line written) when the queue is full, never blocking a query.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::RecordType;
use metrics::Counter;
use serde::Serialize;

use crate::answer::Rcode;
use crate::cookies::CookieState;
use crate::handler::{Outcome, Transport};
use crate::metrics::{answer_bucket, names, ANSWER_BUCKETS, ANSWER_TIMES};
use crate::snapshot::Snapshot;

/// `cdn_dns_queries_total`'s labels as indexes: QTYPE slot, rcode, service, region.
type CounterKey = (u8, u16, u32, u32);

/// Per-thread metric handles (keyed with foldhash: the keys are a few small integers) and the
/// counts not yet handed over ([`Recorder::flush`]).
#[derive(Debug, Default)]
pub struct Recorder {
    /// Counter key → index into `counters_held`.
    counters: HashMap<CounterKey, u32, foldhash::fast::RandomState>,
    /// The last key counted and its index (consecutive queries mostly share one).
    last: Option<(CounterKey, u32)>,
    /// The counter handles, with the count not yet added to each.
    counters_held: Vec<(Counter, u64)>,
    /// Indexes of `counters_held` with a count pending.
    dirty: Vec<u32>,
    /// Answer times not yet added to `ANSWER_TIMES`: per bucket, and their sum in ns.
    times: [u64; ANSWER_BUCKETS.len() + 1],
    times_nanos: u64,
    timed: bool,
    /// `cdn_dns_cookies_total{result}` by `CookieState as usize`.
    cookies: [Option<Counter>; 5],
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Recorder {
    /// A recorder with no handles yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one answered query and its latency (handed over by [`Recorder::flush`]).
    pub fn record(&mut self, snap: &Snapshot, o: &Outcome, elapsed: Duration) {
        self.count(snap, o);
        self.time(1, elapsed);
    }

    /// Count one answered query (its latency goes separately, [`Recorder::time`]).
    pub fn count(&mut self, snap: &Snapshot, o: &Outcome) {
        let svc = o.service.map(|s| s as u32).unwrap_or(u32::MAX);
        let region = o
            .answer
            .as_ref()
            .and_then(|a| a.region)
            .map(|r| r as u32)
            .unwrap_or(u32::MAX);
        // Keyed by the label, not the raw QTYPE: clients choose the QTYPE, so 65,536 values
        // would otherwise churn this table (and the series it names).
        let slot = qtype_slot(o.qtype);
        let key = (slot, o.rcode.code(), svc, region);
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => self.index(snap, key, o.rcode),
        };
        if let Some(entry) = self.counters_held.get_mut(i as usize) {
            if entry.1 == 0 {
                self.dirty.push(i);
            }
            entry.1 += 1;
        }
        if o.cookie != CookieState::None {
            if let Some(slot) = self.cookies.get_mut(o.cookie as usize) {
                slot.get_or_insert_with(
                    || metrics::counter!(names::DNS_COOKIES, "result" => o.cookie.as_str()),
                )
                .increment(1);
            }
        }
    }

    /// `n` answers that took `elapsed` each.
    pub fn time(&mut self, n: u64, elapsed: Duration) {
        if n == 0 {
            return;
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.times[answer_bucket(nanos)] += n;
        self.times_nanos = self.times_nanos.saturating_add(nanos.saturating_mul(n));
        self.timed = true;
    }

    /// The index in `counters_held` of `key` (a handle made on first use), remembered as the
    /// last key.
    fn index(&mut self, snap: &Snapshot, key: CounterKey, rcode: Rcode) -> u32 {
        if self.counters.len() > 4096 {
            self.flush();
            self.counters.clear();
            self.counters_held.clear();
        }
        let (slot, _, svc, region) = key;
        let held = &mut self.counters_held;
        let i = *self.counters.entry(key).or_insert_with(|| {
            let service = snap
                .services
                .get(svc as usize)
                .map(|s| s.name.clone())
                .unwrap_or_else(|| "-".into());
            let region = snap
                .regions
                .get(region as usize)
                .cloned()
                .unwrap_or_else(|| "-".into());
            held.push((
                metrics::counter!(names::DNS_QUERIES,
                    "qtype" => slot_label(slot),
                    "rcode" => rcode.as_str(),
                    "service" => service,
                    "region" => region),
                0,
            ));
            (held.len() - 1) as u32
        });
        self.last = Some((key, i));
        i
    }

    /// Hand the counts recorded since the last flush to the shared metrics.
    pub fn flush(&mut self) {
        for i in self.dirty.drain(..) {
            if let Some((counter, pending)) = self.counters_held.get_mut(i as usize) {
                counter.increment(*pending);
                *pending = 0;
            }
        }
        if self.timed {
            ANSWER_TIMES.add(&self.times, self.times_nanos);
            self.times = [0; ANSWER_BUCKETS.len() + 1];
            self.times_nanos = 0;
            self.timed = false;
        }
    }

    /// Forget handles (after a config reload renamed services or regions).
    pub fn reset(&mut self) {
        self.flush();
        self.counters.clear();
        self.counters_held.clear();
        self.last = None;
    }
}

/// Presentation name of a QTYPE (the query log; any value).
pub fn qtype_name(qtype: u16) -> String {
    RecordType::from(qtype).to_string()
}

/// The `qtype` label of `cdn_dns_queries_total`: the name of a type an authoritative server
/// is commonly asked for, else `other` (so a client cycling through all 65,536 values creates
/// at most [`QTYPE_LABELS`]` + 1` series per rcode/service/region).
pub fn qtype_label(qtype: u16) -> &'static str {
    slot_label(qtype_slot(qtype))
}

/// Index of a QTYPE in [`QTYPE_LABELS`], or its length for `other`.
fn qtype_slot(qtype: u16) -> u8 {
    let i = QTYPE_LABELS
        .iter()
        .position(|(n, _)| *n == qtype)
        .unwrap_or(QTYPE_LABELS.len());
    i as u8
}

fn slot_label(slot: u8) -> &'static str {
    QTYPE_LABELS
        .get(slot as usize)
        .map(|(_, l)| *l)
        .unwrap_or("other")
}

/// The QTYPEs with their own `qtype` label.
pub const QTYPE_LABELS: &[(u16, &str)] = &[
    (1, "A"),
    (2, "NS"),
    (5, "CNAME"),
    (6, "SOA"),
    (12, "PTR"),
    (13, "HINFO"),
    (15, "MX"),
    (16, "TXT"),
    (28, "AAAA"),
    (33, "SRV"),
    (35, "NAPTR"),
    (39, "DNAME"),
    (41, "OPT"),
    (43, "DS"),
    (46, "RRSIG"),
    (47, "NSEC"),
    (48, "DNSKEY"),
    (50, "NSEC3"),
    (51, "NSEC3PARAM"),
    (52, "TLSA"),
    (64, "SVCB"),
    (65, "HTTPS"),
    (251, "IXFR"),
    (252, "AXFR"),
    (253, "MAILB"),
    (254, "MAILA"),
    (255, "ANY"),
    (257, "CAA"),
];

/// One query-log line.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// Unix ms.
    pub ts_ms: u64,
    /// Source address of the query.
    pub client: IpAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// Query name as asked (lowercase).
    pub name: String,
    /// QTYPE.
    pub qtype: String,
    /// RCODE.
    pub rcode: &'static str,
    /// ECS subnet of the query.
    pub ecs: Option<String>,
    /// Service that answered.
    pub service: Option<String>,
    /// Edges answered.
    pub edges: Vec<String>,
    /// Region of the first answered edge.
    pub region: Option<String>,
    /// Selection rule that fired.
    pub rule: Option<&'static str>,
    /// ECS scope answered.
    pub scope: Option<u8>,
    /// Truncated.
    pub tc: bool,
    /// Lines dropped since the previous line (queue full).
    #[serde(skip_serializing_if = "is_zero")]
    pub dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Entry {
    /// Build a line from an outcome.
    pub fn new(
        snap: &Snapshot,
        o: &Outcome,
        packet: &[u8],
        client: IpAddr,
        transport: Transport,
        ts_ms: u64,
    ) -> Entry {
        let (name, ecs) = match crate::wire::decode(packet) {
            Ok(crate::wire::Decoded::Query(q)) => (
                crate::wire::wire_to_string(q.name()),
                q.edns
                    .and_then(|e| e.ecs)
                    .map(|e| format!("{}/{}", e.addr, e.source_prefix)),
            ),
            _ => (String::new(), None),
        };
        let a = o.answer.as_ref();
        Entry {
            ts_ms,
            client,
            transport: match transport {
                Transport::Udp => "udp",
                Transport::Tcp => "tcp",
            },
            name,
            qtype: qtype_name(o.qtype),
            rcode: o.rcode.as_str(),
            ecs,
            service: o
                .service
                .and_then(|s| snap.services.get(s))
                .map(|s| s.name.clone()),
            edges: a.map(|a| a.edges.clone()).unwrap_or_default(),
            region: a
                .and_then(|a| a.region)
                .and_then(|r| snap.regions.get(r).cloned()),
            rule: a.map(|a| a.rule.as_str()),
            scope: a.map(|a| a.scope),
            tc: o.truncated,
            dropped: 0,
        }
    }
}

/// Handle for sending lines to the writer thread.
#[derive(Debug, Clone)]
pub struct QueryLog {
    tx: SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
}

/// Lines queued before new ones are dropped.
const QUEUE: usize = 8192;

impl QueryLog {
    /// Open (append) `path` and start the writer thread. The thread ends when every handle
    /// is dropped.
    pub fn open(path: &Path) -> std::io::Result<QueryLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let d = dropped.clone();
        std::thread::Builder::new()
            .name("dns-querylog".into())
            .spawn(move || writer(rx, BufWriter::new(file), d))?;
        Ok(QueryLog { tx, dropped })
    }

    /// Queue a line (never blocks).
    pub fn log(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

fn writer(rx: Receiver<Entry>, mut out: BufWriter<std::fs::File>, dropped: Arc<AtomicU64>) {
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(mut e) => {
                e.dropped = dropped.swap(0, Ordering::Relaxed);
                if serde_json::to_writer(&mut out, &e).is_ok() {
                    let _ = out.write_all(b"\n");
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                let _ = out.flush();
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let _ = out.flush();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::simple;

    #[test]
    fn counts_by_key_and_times_batches() {
        let snap = crate::explain::tests::snapshot();
        let mut r = Recorder::new();
        let a = simple(1, Rcode::NoError);
        let nx = simple(1, Rcode::NxDomain);
        let aaaa = simple(28, Rcode::NoError);
        for o in [&a, &a, &nx, &a, &aaaa, &aaaa, &nx] {
            r.count(&snap, o);
        }
        // One handle per key, in first-use order, each with its own pending count.
        let pending: Vec<u64> = r.counters_held.iter().map(|(_, n)| *n).collect();
        assert_eq!(pending, vec![3, 2, 2]);
        assert_eq!(r.dirty, vec![0, 1, 2]);
        // A batch of 5 answers that took 30 µs: 5 observations in one bucket, 150 µs in all.
        r.time(5, Duration::from_micros(30));
        r.time(0, Duration::from_secs(1));
        assert_eq!(r.times.iter().sum::<u64>(), 5);
        assert_eq!(r.times[answer_bucket(30_000)], 5);
        assert_eq!(r.times_nanos, 150_000);
        r.flush();
        assert!(r.dirty.is_empty());
        assert!(r.counters_held.iter().all(|(_, n)| *n == 0));
        assert_eq!(r.times.iter().sum::<u64>(), 0);
        // After a reset the memo does not point into the emptied table.
        r.reset();
        r.count(&snap, &a);
        assert_eq!(r.counters_held.len(), 1);
        assert_eq!(r.counters_held[0].1, 1);
    }

    #[test]
    fn qtype_label_is_bounded() {
        assert_eq!(qtype_label(1), "A");
        assert_eq!(qtype_label(28), "AAAA");
        assert_eq!(qtype_label(65), "HTTPS");
        assert_eq!(qtype_label(255), "ANY");
        assert_eq!(qtype_label(0), "other");
        assert_eq!(qtype_label(65280), "other");
        let labels: std::collections::HashSet<&str> = (0..=u16::MAX).map(qtype_label).collect();
        assert_eq!(labels.len(), QTYPE_LABELS.len() + 1);
        // Every label is hickory's name for its number (the query log spells them the same),
        // except the obsolete meta types hickory does not name.
        for (n, l) in QTYPE_LABELS {
            if !matches!(*n, 253 | 254) {
                assert_eq!(qtype_name(*n), *l, "{n}");
            }
        }
    }
}
