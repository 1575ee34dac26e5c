//! `dns-router`: CLI → config → telemetry → bind → [`cdn_dns_router::run`].

use std::process::ExitCode;

use clap::Parser;

use cdn_dns_router::RouterError;
use cdn_shared::cli::CommonArgs;
use cdn_shared::config::router::RouterConfig;
use cdn_shared::config::{config_dir, load, EXIT_CONFIG};
use cdn_shared::shutdown::{cancel_on_signal, Shutdown};

/// Authoritative GeoDNS router of the CDN.
#[derive(Debug, Parser)]
#[command(name = "dns-router", version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn config_exit(e: impl std::fmt::Display) -> ExitCode {
    eprintln!("{e}");
    ExitCode::from(EXIT_CONFIG as u8)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let path = cli.common.config.as_deref();
    let config = match load::<RouterConfig>(path) {
        Ok(c) => c,
        Err(e) => return config_exit(e),
    };
    let base = config_dir(path);
    let checked = match cdn_dns_router::check(&config, &base) {
        Ok(c) => c,
        Err(e) => {
            return match e {
                // Name the file, as loading errors do.
                RouterError::Config(mut ce) => {
                    if ce.file.is_none() {
                        ce.file = path.map(|p| p.display().to_string());
                    }
                    config_exit(ce)
                }
                other => config_exit(other),
            };
        }
    };
    if cli.common.check_config {
        println!("config ok");
        return ExitCode::SUCCESS;
    }
    cdn_shared::telemetry::init(cli.common.log_format, &cli.common.log_level);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), RouterError> = rt.block_on(async {
        let sockets = cdn_dns_router::bind(&config)?;
        let shutdown = Shutdown::new();
        cancel_on_signal(shutdown.clone());
        cdn_dns_router::run_checked(
            config,
            checked,
            cli.common.config.clone(),
            sockets,
            shutdown,
        )
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(RouterError::Config(e)) => config_exit(e),
        Err(e) => {
            tracing::error!(error = %e, "dns-router failed");
            eprintln!("dns-router: {e}");
            ExitCode::FAILURE
        }
    }
}
