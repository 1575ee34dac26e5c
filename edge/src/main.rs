//! `edge --config edge.toml [--check-config] [--log-format human|json] [--log-level info]`
//!
//! `edge sign-url --key-name K --key-file F [--ttl 1h] [--prefix /path/] URL`: print `URL`
//! signed for a host with `[hosts.signed_urls]` (see [`cdn_edge::tenant::signed`]).

use clap::Parser;

use cdn_shared::cli::CommonArgs;
use cdn_shared::config::edge::EdgeConfig;
use cdn_shared::config::{config_dir, load, EXIT_CONFIG};
use cdn_shared::shutdown::{cancel_on_signal, Shutdown};

#[derive(Debug, Parser)]
#[command(name = "edge", version, about = "CDN edge: caching reverse proxy")]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print a signed URL (for hosts with `[hosts.signed_urls]`).
    SignUrl {
        /// The key's name (`KeyName`), as in the host's `signed_urls.keys`.
        #[arg(long)]
        key_name: String,
        /// File holding the key (base64url).
        #[arg(long)]
        key_file: std::path::PathBuf,
        /// How long the URL stays valid, e.g. `1h`, `30m`.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        ttl: std::time::Duration,
        /// Sign a path prefix instead (one token for every URL under it, e.g. a playlist's
        /// segments): the URL's path must start with it.
        #[arg(long)]
        prefix: Option<String>,
        /// `http(s)://host/path?query`, or `/path?query`.
        url: String,
    },
}

/// `edge sign-url`: the signed URL on stdout, or a message and exit 64.
fn sign_url(
    key_name: &str,
    key_file: &std::path::Path,
    ttl: std::time::Duration,
    prefix: Option<&str>,
    url: &str,
) -> Result<String, String> {
    use cdn_edge::tenant::signed;
    let text = std::fs::read_to_string(key_file)
        .map_err(|e| format!("--key-file {}: {e}", key_file.display()))?;
    let key =
        signed::decode_key(&text).map_err(|e| format!("--key-file {}: {e}", key_file.display()))?;
    if key_name.is_empty()
        || !key_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err("--key-name: letters, digits, `-` or `_`".into());
    }
    // Split `scheme://authority` from the path and query.
    let (base, pq) = match url.find("://") {
        Some(i) => {
            let rest = &url[i + 3..];
            let at = rest.find('/').unwrap_or(rest.len());
            (&url[..i + 3 + at], &rest[at..])
        }
        None => ("", url),
    };
    let pq = if pq.is_empty() { "/" } else { pq };
    if !pq.starts_with('/') {
        return Err(format!(
            "URL {url:?}: expected http(s)://host/path or /path"
        ));
    }
    let expires = (cdn_shared::unix_ms() / 1000).saturating_add(ttl.as_secs());
    Ok(match prefix {
        None => format!("{base}{}", signed::sign(pq, key_name, &key, expires)),
        Some(p) => {
            if !p.starts_with('/') || !pq.starts_with(p) {
                return Err(format!(
                    "--prefix {p:?}: must start with / and begin the URL's path"
                ));
            }
            let sep = if pq.contains('?') { '&' } else { '?' };
            format!(
                "{base}{pq}{sep}{}",
                signed::sign_prefix(p, key_name, &key, expires)
            )
        }
    })
}

fn main() {
    quiet_library_backtraces();
    let cli = Cli::parse();
    if let Some(Command::SignUrl {
        key_name,
        key_file,
        ttl,
        prefix,
        url,
    }) = &cli.command
    {
        match sign_url(key_name, key_file, *ttl, prefix.as_deref(), url) {
            Ok(u) => println!("{u}"),
            Err(e) => {
                eprintln!("sign-url: {e}");
                std::process::exit(EXIT_CONFIG);
            }
        }
        return;
    }
    let config = match load::<EdgeConfig>(cli.common.config.as_deref()) {
        Ok(mut c) => {
            // Relative paths in the file are relative to the file, wherever the edge is started.
            c.resolve_paths(&config_dir(cli.common.config.as_deref()));
            c
        }
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
    // foyer warns about every read of an entry whose disk block was reclaimed meanwhile (with
    // disk reinsertion: thousands a minute under load) and treats it as a miss: not an event
    // for the operator's log unless the filter asks for foyer by name.
    let filter = if cli.common.log_level.contains("foyer") {
        cli.common.log_level.clone()
    } else {
        format!(
            "{},foyer_storage::engine::block::engine=error",
            cli.common.log_level
        )
    };
    cdn_shared::telemetry::init(cli.common.log_format, &filter);
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

/// Library errors (foyer's) capture a backtrace whenever `RUST_BACKTRACE` is set, and logging
/// one symbolizes it: ~60 MiB of parsed debug info kept for the life of the process (measured
/// in the long tail with disk reinsertion, where foyer reports reads of reclaimed blocks as
/// errors and treats them as misses), plus the CPU to match. Panics keep their backtraces
/// (`RUST_BACKTRACE`); `Backtrace::capture` follows `RUST_LIB_BACKTRACE`, off here unless set.
/// Runs first in `main`, before any thread exists.
fn quiet_library_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}
