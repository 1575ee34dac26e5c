//! Flags both binaries take.

use std::path::PathBuf;

use crate::telemetry::LogFormat;

/// `--config FILE --check-config --log-format human|json --log-level FILTER`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonArgs {
    /// TOML config file; `CDN_<SECTION>__<KEY>` environment variables override it.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the config and exit (0 when valid, 64 when not).
    #[arg(long)]
    pub check_config: bool,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax); `RUST_LOG` overrides it.
    #[arg(long, default_value = "info")]
    pub log_level: String,
}
