//! Types every CDN process agrees on, in the order a process uses them:
//!
//! * [`cli`]: the flags both binaries take (`--config`, `--check-config`, `--log-format`).
//! * [`config`]: TOML + `CDN_*` environment loading (figment), the router and edge schemas,
//!   validation into errors that name the key; exit status [`config::EXIT_CONFIG`] (64).
//! * [`telemetry`]: tracing setup and the fixed `listening …` / `ready` lines.
//! * [`shutdown`]: the cancellation token and signal handling.
//! * [`report`]: the `HealthReport` wire contract between edges and routers.
//! * [`purge`]: the purge request body the router and the edge both accept, and its check
//!   (selectors as host/path URLs through [`normalise`], the one path/query normaliser).
//! * [`tls`]: the certificate verifier behind the "don't verify" switches.
//! * [`access`]: who may call an admin API (role tokens, read access; constant-time checks).
#![forbid(unsafe_code)]

pub mod access;
pub mod bus;
pub mod cli;
pub mod config;
pub mod normalise;
pub mod purge;
pub mod report;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

/// Current Unix time in milliseconds (read at the edge of a request, passed inward).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
