//! Draining: the flag `/healthz` and the reporter read, and the SIGTERM sequence.
//!
//! On SIGTERM/SIGINT the edge, in this order (see [`drain_sequence`]):
//! 1. marks itself draining: `/healthz` answers 503 `draining`, and reports say `draining`;
//! 2. pushes one report immediately to every router (waiting at most `report.timeout`), so
//!    routers stop sending clients before the listeners close;
//! 3. stops accepting new client connections and lets in-flight requests finish, for at most
//!    `lifecycle.shutdown_grace`;
//! 4. stops the admin listener and the reporter last (probes see 503 until the very end).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cdn_shared::report::EdgeStatus;
use tokio::sync::Notify;

/// Serving or draining, shared by `/healthz`, the reporter and the client listeners.
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    changed: Notify,
}

impl Lifecycle {
    /// A serving lifecycle.
    pub fn new() -> Arc<Self> {
        metrics::gauge!(crate::metrics::DRAINING).set(0.0);
        Arc::new(Self::default())
    }

    /// Mark draining. Returns true the first time (false when already draining).
    pub fn start_draining(&self) -> bool {
        let first = !self.draining.swap(true, Ordering::SeqCst);
        if first {
            metrics::gauge!(crate::metrics::DRAINING).set(1.0);
            self.changed.notify_waiters();
        }
        first
    }

    /// True once draining started.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The status for reports.
    pub fn status(&self) -> EdgeStatus {
        if self.is_draining() {
            EdgeStatus::Draining
        } else {
            EdgeStatus::Serving
        }
    }

    /// Resolves once draining has started.
    pub async fn draining(&self) {
        loop {
            let notified = self.changed.notified();
            if self.is_draining() {
                return;
            }
            notified.await;
        }
    }
}

/// What the drain sequence did, for the final log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainOutcome {
    /// The immediate draining report reached every router in time.
    pub reported: bool,
    /// In-flight requests all finished within the grace period.
    pub finished_in_grace: bool,
}

/// Run the drain steps: mark draining, `push_report` (bounded by `report_timeout`), then
/// `stop_listeners` (stop accepting, finish in-flight work) bounded by `grace`.
///
/// `push_report` resolves to true when every router acknowledged the report;
/// `stop_listeners` is typically `server_handle.stop(true)` for each client listener
/// (actix's graceful stop: stop accepting, wait for in-flight requests up to its
/// `shutdown_timeout`, which `run` sets to the same grace).
pub async fn drain_sequence<R, S>(
    lifecycle: &Lifecycle,
    push_report: R,
    report_timeout: Duration,
    stop_listeners: S,
    grace: Duration,
) -> DrainOutcome
where
    R: Future<Output = bool>,
    S: Future<Output = ()>,
{
    lifecycle.start_draining();
    tracing::info!("draining: /healthz now answers 503; reporting to routers");
    let reported = tokio::time::timeout(report_timeout, push_report)
        .await
        .unwrap_or(false);
    tracing::info!(reported, "draining: stopping listeners");
    let finished_in_grace = tokio::time::timeout(grace, stop_listeners).await.is_ok();
    if !finished_in_grace {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "grace period over; closing remaining connections"
        );
    }
    DrainOutcome {
        reported,
        finished_in_grace,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn draining_flips_once_and_wakes_waiters() {
        let l = Lifecycle::new();
        assert_eq!(l.status(), EdgeStatus::Serving);
        let waiter = {
            let l = l.clone();
            tokio::spawn(async move { l.draining().await })
        };
        tokio::task::yield_now().await;
        assert!(l.start_draining());
        assert!(!l.start_draining());
        assert_eq!(l.status(), EdgeStatus::Draining);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("waiter woke")
            .unwrap();
        // Already draining: returns at once.
        l.draining().await;
    }

    #[tokio::test(start_paused = true)]
    async fn sequence_marks_first_reports_then_stops_within_grace() {
        let l = Lifecycle::new();
        let order = Arc::new(AtomicUsize::new(0));
        let o1 = order.clone();
        let l1 = l.clone();
        let push = async move {
            assert!(l1.is_draining(), "report is sent after draining is set");
            o1.fetch_add(1, Ordering::SeqCst);
            true
        };
        let o2 = order.clone();
        let stop = async move {
            assert_eq!(o2.load(Ordering::SeqCst), 1, "report before stopping");
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        let out = drain_sequence(
            &l,
            push,
            Duration::from_secs(1),
            stop,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(
            out,
            DrainOutcome {
                reported: true,
                finished_in_grace: true
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn slow_router_and_slow_requests_are_bounded() {
        let l = Lifecycle::new();
        let push = async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            true
        };
        let stop = tokio::time::sleep(Duration::from_secs(60));
        let started = tokio::time::Instant::now();
        let out = drain_sequence(
            &l,
            push,
            Duration::from_millis(500),
            stop,
            Duration::from_secs(2),
        )
        .await;
        assert!(!out.reported && !out.finished_in_grace);
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
    }
}
