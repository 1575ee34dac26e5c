//! One shutdown token passed down to every task; SIGTERM/SIGINT cancel it.

pub use tokio_util::sync::CancellationToken as Shutdown;

/// Cancel `token` on the first SIGTERM or SIGINT. Call inside a tokio runtime.
pub fn cancel_on_signal(token: Shutdown) {
    tokio::spawn(async move {
        let sig = wait_for_signal().await;
        tracing::info!(signal = sig, "shutdown requested");
        token.cancel();
    });
}

/// Wait for SIGTERM or SIGINT and return its name.
pub async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
