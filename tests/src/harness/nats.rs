//! A `nats-server` with JetStream for tests and the local fleet: `nats-server -js -p <port>
//! -sd <store>` on 127.0.0.1, started from `PATH` (or `/usr/sbin`, where Debian's package puts
//! it), waited for until it logs `Server is ready`. A missing `nats-server` is an error that
//! says how to install it, never a skipped test.
//!
//! [`NatsServer::stop`] and [`NatsServer::start_again`] stop and restart it on the same port
//! with the same store (JetStream data survives), for failure tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};

use super::process::{Echo, Process};

/// How long the server may take to log `Server is ready`.
const READY: Duration = Duration::from_secs(15);

/// A running (or stopped) `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    binary: PathBuf,
    port: u16,
    store: PathBuf,
    config: Option<PathBuf>,
    echo: Echo,
    process: Option<Process>,
    retired: Vec<Process>,
}

/// `nats-server` from `PATH`, else `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin")]) {
        let p = dir.join("nats-server");
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "nats-server not found in PATH or /usr/sbin: install it (`apt-get install nats-server`, \
         2.9 or later; .ci/run does) to run the fleet-bus tests"
    )
}

/// A free TCP port on 127.0.0.1 (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Start a JetStream server on a free port with its store in `store`.
    pub fn start(store: &Path) -> anyhow::Result<Self> {
        Self::start_with(store, None, Echo::None)
    }

    /// [`NatsServer::start`] with a config file (`-c`, e.g. users and permissions) and
    /// live echo of its log.
    pub fn start_with(store: &Path, config: Option<&Path>, echo: Echo) -> anyhow::Result<Self> {
        let mut s = Self {
            binary: nats_server_binary()?,
            port: free_port()?,
            store: store.to_path_buf(),
            config: config.map(Path::to_path_buf),
            echo,
            process: None,
            retired: Vec::new(),
        };
        std::fs::create_dir_all(store)
            .with_context(|| format!("creating the NATS store {}", store.display()))?;
        s.start_again()?;
        Ok(s)
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether it is running.
    pub fn is_running(&self) -> bool {
        self.process.is_some()
    }

    /// Kill it (SIGKILL); the store stays.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill();
            self.retired.push(p);
        }
    }

    /// (Re)start it on the same port with the same store; waits until it is ready.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.stop();
        let mut args = vec![
            "-js".to_string(),
            "-a".into(),
            "127.0.0.1".into(),
            "-p".into(),
            self.port.to_string(),
            "-sd".into(),
            self.store.display().to_string(),
        ];
        if let Some(c) = &self.config {
            args.push("-c".into());
            args.push(c.display().to_string());
        }
        let p = Process::spawn_with(
            &format!("nats-{}", self.port),
            &self.binary,
            &args,
            &[],
            self.echo,
        )?;
        p.wait_for_line("Server is ready", READY)
            .with_context(|| format!("nats-server on port {} did not start", self.port))?;
        self.process = Some(p);
        Ok(())
    }
}
