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

use super::process::{start_on_its_ports, Echo, Process};

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
    /// Cluster flags (`--cluster`, `--routes`, …) of a node of [`NatsServer::cluster`].
    extra: Vec<String>,
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
            extra: Vec::new(),
            process: None,
            retired: Vec::new(),
        };
        std::fs::create_dir_all(store)
            .with_context(|| format!("creating the NATS store {}", store.display()))?;
        s.start_again()?;
        Ok(s)
    }

    /// A JetStream cluster of `nodes` servers on loopback (cluster `cdn`, node `n<i>` with
    /// its store in `store/n<i>`), all started and ready. JetStream elects its leaders in the
    /// background: clients retry until it has.
    pub fn cluster(
        store: &Path,
        nodes: usize,
        config: Option<&Path>,
        echo: Echo,
    ) -> anyhow::Result<Vec<Self>> {
        let binary = nats_server_binary()?;
        let ports: Vec<(u16, u16)> = (0..nodes)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut out = Vec::new();
        for (i, (port, cluster_port)) in ports.iter().enumerate() {
            let routes: Vec<String> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, (_, c))| format!("nats://127.0.0.1:{c}"))
                .collect();
            let dir = store.join(format!("n{i}"));
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating the NATS store {}", dir.display()))?;
            out.push(Self {
                binary: binary.clone(),
                port: *port,
                store: dir,
                config: config.map(Path::to_path_buf),
                echo,
                extra: vec![
                    "-n".into(),
                    format!("n{i}"),
                    "--cluster_name".into(),
                    "cdn".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{cluster_port}"),
                    "--routes".into(),
                    routes.join(","),
                ],
                process: None,
                retired: Vec::new(),
            });
        }
        // Start them all before waiting: a node waits for its peers to be reachable.
        for n in &mut out {
            n.start_again()?;
        }
        Ok(out)
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
        args.extend(self.extra.iter().cloned());
        // Restarted on the port it had, which the OS may have given away meanwhile.
        let name = format!("nats-{}", self.port);
        let p = start_on_its_ports(
            || Process::spawn_with(&name, &self.binary, &args, &[], self.echo),
            |p| p.wait_for_line("Server is ready", READY).map(drop),
            &mut self.retired,
        )
        .with_context(|| format!("nats-server on port {} did not start", self.port))?;
        self.process = Some(p);
        Ok(())
    }
}

/// One NATS user of [`auth_config`].
#[derive(Debug, Clone)]
pub struct BusUser {
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// `None` for a router; `Some((region, edge id))` for an edge.
    pub edge: Option<(String, String)>,
}

/// A `nats-server` config (`authorization` block) with per-role permissions, the same
/// shape as `deploy/nats/nats-server.conf`: routers may publish purges, use the JetStream API
/// and write the KV bucket, and read reports and purge acks; an edge may publish only its own
/// report and purge-ack subjects and use only its own durable consumer on the purge stream.
pub fn auth_config(users: &[BusUser], purge_stream: &str, kv_bucket: &str) -> String {
    let mut out =
        String::from("# Written by the cdn-tests harness.\nauthorization {\n  users = [\n");
    for u in users {
        let (publish, subscribe) = match &u.edge {
            None => (
                vec![
                    "$JS.API.>".to_string(),
                    "cdn.purges".into(),
                    format!("$KV.{kv_bucket}.>"),
                ],
                vec![
                    "_INBOX.>".to_string(),
                    "cdn.reports.>".into(),
                    "cdn.purge_acks.>".into(),
                ],
            ),
            Some((region, id)) => {
                let consumer = cdn_shared::bus::consumer_name(id);
                (
                    vec![
                        cdn_shared::bus::report_subject(region, id),
                        cdn_shared::bus::purge_ack_subject(id),
                        "$JS.API.INFO".into(),
                        format!("$JS.API.STREAM.INFO.{purge_stream}"),
                        format!("$JS.API.CONSUMER.INFO.{purge_stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.CREATE.{purge_stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.CREATE.{purge_stream}.{consumer}.>"),
                        format!("$JS.API.CONSUMER.DURABLE.CREATE.{purge_stream}.{consumer}"),
                        format!("$JS.API.CONSUMER.MSG.NEXT.{purge_stream}.{consumer}"),
                        format!("$JS.ACK.{purge_stream}.{consumer}.>"),
                    ],
                    vec!["_INBOX.>".to_string()],
                )
            }
        };
        let list = |v: &[String]| {
            v.iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push_str(&format!(
            "    {{ user: \"{}\", password: \"{}\", permissions: {{ publish: {{ allow: [{}] }}, \
             subscribe: {{ allow: [{}] }} }} }}\n",
            u.user,
            u.password,
            list(&publish),
            list(&subscribe)
        ));
    }
    out.push_str("  ]\n}\n");
    out
}

/// Publish `payload` on `subject` as `user`/`password` with the raw NATS protocol and return
/// the server's verdict: `Ok(())` when it answered the following PING with PONG and no error,
/// `Err(message)` with its `-ERR` line otherwise (e.g. a permissions violation).
pub fn publish_as(
    url: &str,
    user: &str,
    password: &str,
    subject: &str,
    payload: &[u8],
) -> anyhow::Result<Result<(), String>> {
    use std::io::{BufRead, BufReader, Write};
    let addr = url.trim_start_matches("nats://");
    let stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?; // INFO
    anyhow::ensure!(line.starts_with("INFO"), "not a NATS server: {line}");
    let connect = serde_json::json!({
        "verbose": false, "pedantic": false, "user": user, "pass": password,
        "name": "cdn-tests publish_as", "lang": "rust", "version": "0", "protocol": 1,
    });
    let mut w = stream;
    write!(
        w,
        "CONNECT {connect}\r\nPUB {subject} {}\r\n",
        payload.len()
    )?;
    w.write_all(payload)?;
    w.write_all(b"\r\nPING\r\n")?;
    w.flush()?;
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed without an answer");
        }
        let l = line.trim_end();
        if l.starts_with("-ERR") {
            return Ok(Err(l.to_string()));
        }
        if l == "PONG" {
            return Ok(Ok(()));
        }
    }
}
