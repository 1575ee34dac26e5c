//! SIGHUP: [`spawn_sighup`] turns each signal into [`Live::reload`](crate::live::Live::reload),
//! the same reload as `POST /api/v1/reload` (re-read, validate, rebuild, swap, or keep the old
//! config and log why).

use cdn_shared::shutdown::Shutdown;

use crate::live::Live;
pub use crate::live::{ReloadError, ReloadSummary};

/// Reload on every SIGHUP until `shutdown` is cancelled. Call inside a tokio runtime.
///
/// The signal stream is registered before this returns, so a SIGHUP sent right after the
/// call is not lost (a stream created inside the spawned task would only see signals
/// delivered after the task first ran).
pub fn spawn_sighup(live: Live, shutdown: Shutdown) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let hup = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let mut hup = match hup {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP; reload only via the admin API");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reloading config");
                    let l = live.clone();
                    // Errors are logged by `Live::reload`.
                    let _ = tokio::task::spawn_blocking(move || l.reload()).await;
                }
            }
        }
    })
}
