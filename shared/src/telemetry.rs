//! Logs: tracing with a human format (default) or JSON lines (`--log-format json`), and the
//! fixed lines a harness reads: `listening proto=<udp|tcp|http> name=<what> addr=<ip:port>`
//! once per bound socket, and `ready` once serving.

use std::net::SocketAddr;

use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, one line per event.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// Install the global subscriber, writing to stderr. `filter` is an `EnvFilter` directive
/// such as `info` or `info,cdn_edge=debug`; `RUST_LOG` overrides it when set.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests calling run() twice) is harmless: keep the first subscriber.
    let _ = match format {
        LogFormat::Human => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// Protocol of a bound socket, as printed in the `listening` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// DNS over UDP.
    Udp,
    /// DNS over TCP.
    Tcp,
    /// HTTP (or HTTPS) listener.
    Http,
}

impl Proto {
    /// The word used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Udp => "udp",
            Proto::Tcp => "tcp",
            Proto::Http => "http",
        }
    }
}

/// Log `listening proto=<proto> name=<name> addr=<addr>` for one bound socket.
pub fn listening(proto: Proto, name: &str, addr: SocketAddr) {
    tracing::info!(proto = %proto.as_str(), name = %name, addr = %addr, "listening");
}

/// Log the single `ready` line.
pub fn ready(what: &str) {
    tracing::info!(process = %what, "ready");
}
