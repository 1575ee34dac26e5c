//! `edge --config edge.toml [--check-config] [--log-format human|json] [--log-level info]`

use clap::Parser;

use cdn_shared::cli::CommonArgs;
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::config::{load, EXIT_CONFIG};
use cdn_shared::shutdown::{cancel_on_signal, Shutdown};

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "CDN edge: caching reverse proxy")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn main() {
    let cli = Cli::parse();
    let config: EdgeConfig = match load(cli.common.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(EXIT_CONFIG);
        }
    };
    if let Err(e) = cdn_edge::check(&config) {
        let file = cli
            .common
            .config
            .as_deref()
            .map(|p| format!(" in {}", p.display()))
            .unwrap_or_default();
        eprintln!("config error{file}: {e}");
        std::process::exit(EXIT_CONFIG);
    }
    if cli.common.check_config {
        println!("config ok");
        return;
    }
    cdn_shared::telemetry::init(cli.common.log_format, &cli.common.log_level);
    let listeners = match cdn_edge::bind(&config) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot bind");
            std::process::exit(1);
        }
    };
    let result = actix_rt::System::new().block_on(async move {
        let shutdown = Shutdown::new();
        cancel_on_signal(shutdown.clone());
        cdn_edge::run(config, listeners, shutdown).await
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "edge failed");
        std::process::exit(1);
    }
}
