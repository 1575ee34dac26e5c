//! `demo-origin`: the generated-content origin used by the local fleet, the tests and the
//! load scripts. See `cdn_tests::origin` for the endpoints.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use anyhow::Context;
use cdn_shared::telemetry::{self, LogFormat, Proto};
use cdn_tests::origin::{self, FailMode, OriginState};
use clap::Parser;

/// Demo origin: `GET /obj/<size>/<id>` returns a deterministic body of that size.
#[derive(Debug, Parser)]
#[command(name = "demo-origin", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; read it from the `listening` line).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Delay every response by the latency profile (p50 1-20 ms, p90 21-50, p95 51-150,
    /// p99 151-500).
    #[arg(long)]
    latency_profile: bool,
    /// Start with the fail switch on: `503`, `close` or `hang`.
    #[arg(long, value_enum)]
    fail: Option<FailMode>,
    /// Worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
    /// Log filter.
    #[arg(long, default_value = "info")]
    log_level: String,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.log_format, &args.log_level);
    let listener =
        TcpListener::bind(args.listen).with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr()?;
    let state = Arc::new(OriginState::new(args.fail, args.latency_profile));
    let server = origin::server(listener, state, args.workers, true)?;
    telemetry::listening(Proto::Http, "origin", addr);
    telemetry::ready("demo-origin");
    server.await?;
    Ok(())
}
