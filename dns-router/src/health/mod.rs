//! Edge health, in flow order:
//!
//! * [`reason`]: the names of health — probe failures, probe outcomes, an edge's reason —
//!   as enums with `as_str()`.
//! * [`state`]: the per-edge [`state::EdgeHealth`], the pure transition function
//!   [`state::apply`] (rise/fall, overload hysteresis, report ordering and staleness, drain),
//!   and [`state::HealthState`] (an `ArcSwap` snapshot for the DNS path, serialised writes).
//! * [`probe`]: active HTTP probes, one task per edge, following reloads.
//! * [`ingest`]: pushed `HealthReport`s from edges (`POST /api/v1/reports`).
//! * [`gauges`]: the per-edge gauges of `GET /metrics`, rendered from the health view.
//!
//! [`start`] launches the probes (at once, for every configured edge) and the staleness tick.

pub mod gauges;
pub mod ingest;
pub mod probe;
pub mod reason;
pub mod state;

use std::sync::Arc;

use cdn_shared::config::router::RouterConfig;
use cdn_shared::shutdown::Shutdown;

pub use state::{EdgeHealth, HealthState, HealthView, ProbeResult};

/// Errors of the health module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// The id is not a configured `[[edges]].id`.
    #[error("unknown edge `{0}`")]
    UnknownEdge(String),
}

/// Start probing every edge of `config` now, follow [`HealthState::reconcile`] on reloads, and
/// run the report staleness tick. The task ends when `shutdown` is cancelled. Call inside a
/// tokio runtime.
pub fn start(
    state: Arc<HealthState>,
    config: Arc<RouterConfig>,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    // Idempotent when `state` was built from the same config.
    state.reconcile(&config);
    tokio::spawn(probe::supervise(state, shutdown))
}
