//! A whole CDN on loopback: the demo origin (in-process), one or more `dns-router`
//! processes and one `edge` process per region, wired together by generated configs.
//!
//! * [`spec`]: what the fleet is (regions, zone, demo geo map, timings); defaults are the
//!   README's fleet.
//! * [`config`]: the router and edge TOML files.
//! * this module: starting, stopping and restarting the processes, and the test API.
//!
//! # Addresses
//!
//! The origin and the routers bind port 0 (unless fixed) and their ports are read back from
//! the `listening` lines. Edges are different: the router config must name every edge's probe
//! and admin URLs before the edges start, and a restarted edge must come back on the same
//! address. So each edge's ports on its own loopback IP (127.0.1.1, 127.0.2.1, …) are
//! *reserved* before anything starts: bind `ip:0`, read the port, keep the socket until just
//! before that edge is spawned, then close it and let the edge bind the same port. A router
//! restarted by [`Fleet::restart_router`] is given the ports it had.
//!
//! Start order: origin → reserve edge ports → routers (wait `ready`, read DNS and admin
//! addresses) → edges (configured to report to every router) → wait `ready`.

pub mod config;
pub mod pop;
pub mod spec;
pub mod tls;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::harness::dns::{self, DnsQuery};
use crate::harness::http::{self, Reply};
use crate::harness::nats::{auth_config, BusUser, NatsServer};
use crate::harness::process::{lost_its_port, start_on_its_ports, Echo, Process, Signal};
use crate::harness::{binary, eventually};
use crate::origin::{OriginHandle, OriginState, Stats};

pub use spec::EdgePlan;
pub use spec::{FleetSpec, HealthTiming, RegionSpec, DEMO_TOKEN, SERVICE, ZONE};

/// How long a process may take to log `ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// One router instance.
#[derive(Debug)]
pub struct RouterNode {
    /// Index in [`FleetSpec::routers`].
    pub index: usize,
    /// Its config file.
    pub config_path: PathBuf,
    /// DNS over UDP.
    pub dns_udp: SocketAddr,
    /// DNS over TCP.
    pub dns_tcp: SocketAddr,
    /// Admin API.
    pub admin: SocketAddr,
    process: Option<Process>,
}

impl RouterNode {
    /// The running process, if any.
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// `http://<admin>`.
    pub fn admin_url(&self) -> String {
        format!("http://{}", self.admin)
    }
}

/// One edge.
#[derive(Debug)]
pub struct EdgeNode {
    /// Its addresses.
    pub plan: EdgePlan,
    /// Its config file.
    pub config_path: PathBuf,
    /// Its disk cache directory, if any.
    pub cache_dir: Option<PathBuf>,
    /// Client HTTPS listener (certificates from the demo CA, [`tls::DemoTls`]).
    pub https: SocketAddr,
    process: Option<Process>,
    reservation: Vec<TcpListener>,
}

impl EdgeNode {
    /// Edge id.
    pub fn id(&self) -> &str {
        &self.plan.id
    }

    /// Region name.
    pub fn region(&self) -> &str {
        &self.plan.region
    }

    /// The address the router answers for this edge.
    pub fn ip(&self) -> Ipv4Addr {
        self.plan.ip
    }

    /// Client HTTP listener.
    pub fn http_addr(&self) -> SocketAddr {
        self.plan.http
    }

    /// Admin listener.
    pub fn admin_addr(&self) -> SocketAddr {
        self.plan.admin
    }

    /// The running process, if any.
    pub fn process(&self) -> Option<&Process> {
        self.process.as_ref()
    }

    /// `GET <path>` on this edge with `Host: www.cdn.example.test`.
    pub fn get(&self, path: &str) -> anyhow::Result<Reply> {
        http::get(self.http_addr(), path).host(SERVICE).send()
    }

    /// A request to this edge with `Host: www.cdn.example.test`, to add headers to.
    pub fn request(&self, path: &str) -> http::Req {
        http::get(self.http_addr(), path).host(SERVICE)
    }
}

/// A running fleet. Dropping it kills every process (and prints their logs when the test
/// panicked).
#[derive(Debug)]
pub struct Fleet {
    // Field order is drop order: edges, then routers, then the origin, then the directory.
    edges: Vec<EdgeNode>,
    routers: Vec<RouterNode>,
    /// Processes that were killed or restarted, kept so their logs print on failure.
    retired: Vec<Process>,
    origin: OriginHandle,
    nats: Option<NatsServer>,
    /// The other nodes of a NATS cluster ([`FleetSpec::nats_nodes`]).
    nats_peers: Vec<NatsServer>,
    spec: FleetSpec,
    dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    router_bin: PathBuf,
    edge_bin: PathBuf,
}

impl Fleet {
    /// The README fleet's spec, to adjust and [`FleetSpec::start`].
    pub fn builder() -> FleetSpec {
        FleetSpec::default()
    }

    /// Start the default fleet.
    pub fn start() -> anyhow::Result<Self> {
        FleetSpec::default().start()
    }

    /// Run a test body against this fleet. An `Err` from `body` becomes a panic *while the
    /// fleet is still alive*, so every process's log is printed as it is dropped (a test
    /// that just returned `Err` would drop the fleet first and lose the logs).
    #[track_caller]
    pub fn run(mut self, body: impl FnOnce(&mut Fleet) -> anyhow::Result<()>) {
        if let Err(e) = body(&mut self) {
            panic!("{e:?}");
        }
    }
}

impl FleetSpec {
    /// Start this fleet and [`Fleet::run`] `body` against it (panics if it cannot start).
    #[track_caller]
    pub fn run(self, body: impl FnOnce(&mut Fleet) -> anyhow::Result<()>) {
        match self.start() {
            Ok(fleet) => fleet.run(body),
            Err(e) => panic!("the fleet did not start: {e:?}"),
        }
    }

    /// Start everything and wait until every process is ready.
    pub fn start(self) -> anyhow::Result<Fleet> {
        let router_bin = binary("dns-router")?;
        let edge_bin = binary("edge")?;
        let (dir, tmp) = match &self.workdir {
            Some(d) => {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new().prefix("cdn-fleet-").tempdir()?;
                (t.path().to_path_buf(), Some(t))
            }
        };

        let origin_listener = TcpListener::bind(self.origin)
            .with_context(|| format!("binding the demo origin on {}", self.origin))?;
        let origin = OriginHandle::start_with(
            origin_listener,
            Arc::new(OriginState::new(None, self.origin_latency_profile)),
            2,
        )?;

        let mut spec = self;
        let mut nats_peers = Vec::new();
        let nats = if spec.bus {
            // Per-role users: the router's and one per edge, each edge allowed only its own
            // subjects and consumer (the same shape as deploy/nats/nats-server.conf).
            let mut users = vec![BusUser {
                user: ROUTER_BUS_USER.into(),
                password: bus_password(ROUTER_BUS_USER),
                edge: None,
            }];
            for r in &pop::edge_slots(&spec) {
                let (user, password) = edge_bus_credentials(&r.edge_id);
                users.push(BusUser {
                    user,
                    password,
                    edge: Some((r.name.clone(), r.edge_id.clone())),
                });
            }
            let conf = dir.join("nats.conf");
            std::fs::write(&conf, auth_config(&users, "CDN_PURGES", "cdn_operator"))?;
            // Its log lines are not ours (`[INF]`): echoed only with `Echo::All`.
            let echo = match spec.echo {
                Echo::All => Echo::All,
                _ => Echo::None,
            };
            let mut nodes = if spec.nats_nodes > 1 {
                NatsServer::cluster(&dir.join("nats"), spec.nats_nodes, Some(&conf), echo)?
            } else {
                vec![NatsServer::start_with(
                    &dir.join("nats"),
                    Some(&conf),
                    echo,
                )?]
            };
            let servers: Vec<String> = nodes.iter().map(|n| format!("\"{}\"", n.url())).collect();
            spec.bus_extra = format!(
                "replicas = {}\n{}",
                spec.nats_nodes.clamp(1, 3),
                spec.bus_extra
            );
            spec.router_extra.push_str(&format!(
                "\n[bus]\nservers = [{}]\nuser = \"{ROUTER_BUS_USER}\"\npassword = \"{}\"\n\
                 startup_timeout = \"3s\"\n{}\n",
                servers.join(", "),
                bus_password(ROUTER_BUS_USER),
                spec.bus_extra
            ));
            let first = nodes.remove(0);
            nats_peers = nodes;
            Some(first)
        } else {
            None
        };
        let mut edges = Vec::new();
        for r in &pop::edge_slots(&spec) {
            let (http, http_res) = reserve(r.ip, r.http_port)
                .with_context(|| format!("reserving the HTTP port of edge {}", r.edge_id))?;
            let (admin, admin_res) = reserve(r.ip, r.admin_port)
                .with_context(|| format!("reserving the admin port of edge {}", r.edge_id))?;
            let (https, https_res) = reserve(r.ip, r.https_port)
                .with_context(|| format!("reserving the HTTPS port of edge {}", r.edge_id))?;
            let cache_dir = spec
                .disk_cache
                .then(|| dir.join(format!("cache-{}", r.edge_id)));
            if let Some(c) = &cache_dir {
                std::fs::create_dir_all(c)?;
            }
            edges.push(EdgeNode {
                plan: EdgePlan {
                    id: r.edge_id.clone(),
                    region: r.name.clone(),
                    ip: r.ip,
                    http,
                    admin,
                    probe_override: r
                        .probe_url
                        .as_ref()
                        .map(|u| u.replace("{origin}", &origin.url())),
                },
                config_path: dir.join(format!("edge-{}.toml", r.edge_id)),
                cache_dir,
                https,
                process: None,
                reservation: http_res
                    .into_iter()
                    .chain(admin_res)
                    .chain(https_res)
                    .collect(),
            });
        }
        let plans: Vec<EdgePlan> = edges.iter().map(|e| e.plan.clone()).collect();

        let mut fleet = Fleet {
            edges,
            routers: Vec::new(),
            retired: Vec::new(),
            origin,
            nats,
            nats_peers,
            spec,
            dir,
            _tmp: tmp,
            router_bin,
            edge_bin,
        };

        for (i, (dns, admin)) in fleet.spec.routers.clone().into_iter().enumerate() {
            let config_path = fleet.dir.join(format!("router-{i}.toml"));
            std::fs::write(
                &config_path,
                config::router_toml(&fleet.spec, &plans, dns, admin),
            )?;
            let mut p = fleet.spawn_router(i, &config_path)?;
            p.wait_ready(READY_TIMEOUT)?;
            fleet.routers.push(RouterNode {
                index: i,
                config_path,
                dns_udp: p.addr("udp", "dns")?,
                dns_tcp: p.addr("tcp", "dns")?,
                admin: p.addr("http", "admin")?,
                process: Some(p),
            });
        }

        let routers: Vec<String> = fleet.routers.iter().map(|r| r.admin_url()).collect();
        let origin_url = fleet.origin.url();
        // The demo tenants: a URL-signing key and the edges' country map.
        let signing_key = fleet.signing_key_path();
        std::fs::write(&signing_key, demo_signing_key() + "\n")?;
        let geo_map = fleet.dir.join("edge-countries.txt");
        std::fs::write(&geo_map, config::demo_country_map())?;
        // HTTPS: the demo CA and certificates; www's `tls = {…}` goes first in its block.
        let demo_tls = tls::DemoTls::write(&fleet.dir)?;
        fleet.spec.host_extra = demo_tls.host_line(spec::SERVICE) + &fleet.spec.host_extra;
        for e in &fleet.edges {
            let text = config::edge_toml(
                &fleet.spec,
                &e.plan,
                &origin_url,
                &routers,
                e.cache_dir.as_deref(),
            );
            let text = text
                + &pop::cluster_toml(&fleet.spec, &e.plan, &plans)
                + &fleet.edge_bus_toml(&e.plan)
                + &config::tenant_hosts_toml(&origin_url, &signing_key, &geo_map, &|h| {
                    demo_tls.host_line(h)
                })
                + &demo_tls.https_only_host(&origin_url)
                + &demo_tls.edge_section(e.https);
            std::fs::write(&e.config_path, text)?;
        }
        for i in 0..fleet.edges.len() {
            fleet.edges[i].reservation.clear();
            let p = fleet.spawn_edge(i)?;
            fleet.edges[i].process = Some(p);
        }
        for i in 0..fleet.edges.len() {
            let Some(mut p) = fleet.edges[i].process.take() else {
                continue;
            };
            let ready = p.wait_ready(READY_TIMEOUT);
            fleet.edges[i].process = Some(p);
            if let Err(e) = ready {
                if !lost_its_port(&e) {
                    return Err(e);
                }
                fleet.restart_edge(&fleet.edges[i].plan.id.clone())?;
            }
        }
        Ok(fleet)
    }
}

/// Bind `ip:port` to hold the port; with port 0 the OS picks one. Returns the address and
/// the holding socket (`None` for a fixed port, which is only checked to be free).
fn reserve(ip: Ipv4Addr, port: u16) -> anyhow::Result<(SocketAddr, Option<TcpListener>)> {
    let l =
        TcpListener::bind((ip, port)).with_context(|| format!("{ip}:{port} is not available"))?;
    let addr = l.local_addr()?;
    if port == 0 {
        Ok((addr, Some(l)))
    } else {
        drop(l);
        Ok((addr, None))
    }
}

/// The NATS user of the fleet's routers.
pub const ROUTER_BUS_USER: &str = "router";

/// The (demo) password of a fleet NATS user.
fn bus_password(user: &str) -> String {
    format!("{user}-demo-secret")
}

/// The NATS user and password of edge `id` in a fleet on the bus.
pub fn edge_bus_credentials(id: &str) -> (String, String) {
    let user = format!("edge-{id}");
    let password = bus_password(&user);
    (user, password)
}

impl Fleet {
    /// The `[bus]` section of edge `e` (its own credentials); empty without the bus.
    fn edge_bus_toml(&self, e: &EdgePlan) -> String {
        let Some(n) = &self.nats else {
            return String::new();
        };
        let (user, password) = edge_bus_credentials(&e.id);
        let servers: Vec<String> = std::iter::once(n)
            .chain(&self.nats_peers)
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        format!(
            "\n[bus]\nservers = [{}]\nuser = \"{user}\"\npassword = \"{password}\"\n\
             startup_timeout = \"3s\"\n{}\n",
            servers.join(", "),
            self.spec.bus_extra
        )
    }

    fn spawn_router(&self, i: usize, config: &Path) -> anyhow::Result<Process> {
        Process::spawn_with(
            &format!("router-{i}"),
            &self.router_bin,
            &[
                "--config".into(),
                config.display().to_string(),
                "--log-level".into(),
                self.spec.log_level.clone(),
            ],
            &[],
            self.spec.echo,
        )
    }

    fn spawn_edge(&self, i: usize) -> anyhow::Result<Process> {
        let e = &self.edges[i];
        Process::spawn_with(
            &if self.spec.edges_per_region > 1 {
                format!("edge-{}", e.plan.id)
            } else {
                format!("edge-{}", e.plan.region)
            },
            &self.edge_bin,
            &[
                "--config".into(),
                e.config_path.display().to_string(),
                "--log-level".into(),
                self.spec.log_level.clone(),
            ],
            &[],
            self.spec.echo,
        )
    }

    fn edge_index(&self, name: &str) -> anyhow::Result<usize> {
        self.edges
            .iter()
            .position(|e| e.plan.region == name || e.plan.id == name)
            .ok_or_else(|| {
                anyhow!(
                    "no edge named `{name}` (have: {})",
                    self.edges
                        .iter()
                        .map(|e| format!("{}/{}", e.plan.region, e.plan.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }

    // ---------------------------------------------------------------- accessors

    /// The spec the fleet was started with.
    pub fn spec(&self) -> &FleetSpec {
        &self.spec
    }

    /// `nats://…` of the fleet's NATS server, when it runs on the bus.
    pub fn nats_url(&self) -> Option<String> {
        self.nats.as_ref().map(NatsServer::url)
    }

    /// Node `i` of the fleet's NATS cluster (0 is [`Fleet::nats`]).
    pub fn nats_node(&mut self, i: usize) -> Option<&mut NatsServer> {
        match i {
            0 => self.nats.as_mut(),
            _ => self.nats_peers.get_mut(i - 1),
        }
    }

    /// The NATS server of a fleet on the bus ([`FleetSpec::bus`]), to stop and restart.
    pub fn nats(&mut self) -> Option<&mut NatsServer> {
        self.nats.as_mut()
    }

    /// The demo URL-signing key (base64url) for `secure.cdn.example.test`, key name `demo`
    /// (`edge sign-url --key-name demo --key-file <this> URL`).
    pub fn signing_key_path(&self) -> PathBuf {
        self.dir.join("url-signing-key")
    }

    /// The demo CA certificate the edges' HTTPS certificates chain to (`curl --cacert`).
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The directory holding configs and caches.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The operator token (router `operate` role, edge purge).
    pub fn token(&self) -> &str {
        &self.spec.token
    }

    /// The in-process demo origin (flip its fail switch, change its version, read counters).
    pub fn origin(&self) -> &OriginHandle {
        &self.origin
    }

    /// The origin's request counters.
    pub fn origin_stats(&self) -> Stats {
        self.origin.stats()
    }

    /// Router `i`.
    pub fn router(&self, i: usize) -> &RouterNode {
        &self.routers[i]
    }

    /// Every router.
    pub fn routers(&self) -> &[RouterNode] {
        &self.routers
    }

    /// Router 0's DNS address (UDP; TCP is on the same port).
    pub fn router_dns(&self) -> SocketAddr {
        self.routers[0].dns_udp
    }

    /// Router 0's admin address.
    pub fn router_admin(&self) -> SocketAddr {
        self.routers[0].admin
    }

    /// The edge of region `name` (or with id `name`). Panics when there is none.
    pub fn edge(&self, name: &str) -> &EdgeNode {
        match self.edge_index(name) {
            Ok(i) => &self.edges[i],
            Err(e) => panic!("{e}"),
        }
    }

    /// Every edge.
    pub fn edges(&self) -> &[EdgeNode] {
        &self.edges
    }

    /// The edge whose IP is `ip`, if any.
    pub fn edge_by_ip(&self, ip: Ipv4Addr) -> Option<&EdgeNode> {
        self.edges.iter().find(|e| e.plan.ip == ip)
    }

    // ---------------------------------------------------------------- DNS and HTTP

    /// A-record answer of router `router` for `name`, asked over UDP with ECS `subnet`.
    pub fn resolve_via(
        &self,
        router: usize,
        name: &str,
        subnet: Option<&str>,
    ) -> anyhow::Result<Vec<Ipv4Addr>> {
        let mut q = DnsQuery::new(name, RecordType::A);
        if let Some(s) = subnet {
            q = q.subnet(s);
        }
        let m = q.udp(self.routers[router].dns_udp)?;
        Ok(dns::a_records(&m))
    }

    /// A-record answer of router 0 for the service with ECS `subnet`.
    pub fn resolve(&self, subnet: &str) -> anyhow::Result<Vec<Ipv4Addr>> {
        self.resolve_via(0, SERVICE, Some(subnet))
    }

    /// The edge router 0 answers first for clients in `subnet`.
    pub fn nearest_edge(&self, subnet: &str) -> anyhow::Result<&EdgeNode> {
        let ips = self.resolve(subnet)?;
        let first = *ips
            .first()
            .ok_or_else(|| anyhow!("no A record for {SERVICE} with ECS {subnet}"))?;
        self.edge_by_ip(first)
            .ok_or_else(|| anyhow!("answer {first} is not one of the fleet's edges"))
    }

    /// Resolve for `subnet`, then `GET <path>` from the answered edge (curl `--resolve`).
    pub fn fetch(&self, subnet: &str, path: &str) -> anyhow::Result<(String, Reply)> {
        let e = self.nearest_edge(subnet)?;
        Ok((e.plan.region.clone(), e.get(path)?))
    }

    /// `GET <path>` on router `i`'s admin API.
    pub fn admin_get(&self, i: usize, path: &str) -> anyhow::Result<Reply> {
        http::get(self.routers[i].admin, path).send()
    }

    /// `POST <path>` with a JSON body and the token on router `i`'s admin API.
    pub fn admin_post(&self, i: usize, path: &str, body: &Value) -> anyhow::Result<Reply> {
        http::post(self.routers[i].admin, path)
            .bearer(&self.spec.token)
            .json(body)
            .send()
    }

    /// Router `i`'s explanation of the service's answer for clients in `subnet`.
    pub fn explain(&self, i: usize, subnet: &str) -> anyhow::Result<Value> {
        let r = self.admin_get(i, &format!("/api/v1/explain?name={SERVICE}&ecs={subnet}"))?;
        if r.status != 200 {
            bail!("explain for {subnet}: {} {}", r.status, r.text());
        }
        r.json()
    }

    /// The explain API's candidate entry for edge `name` (region or id) for `subnet`.
    pub fn explain_candidate(&self, i: usize, subnet: &str, name: &str) -> anyhow::Result<Value> {
        let id = self.edge(name).plan.id.clone();
        let v = self.explain(i, subnet)?;
        v.get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| {
                c.iter()
                    .find(|c| c.get("edge").and_then(Value::as_str) == Some(&id))
            })
            .cloned()
            .ok_or_else(|| anyhow!("no candidate {id} in {v}"))
    }

    /// Router `i`'s full view of edge `name` (`GET /api/v1/edges/{id}`).
    pub fn edge_view(&self, i: usize, name: &str) -> anyhow::Result<Value> {
        let id = self.edge(name).plan.id.clone();
        let r = self.admin_get(i, &format!("/api/v1/edges/{id}"))?;
        if r.status != 200 {
            bail!("GET /api/v1/edges/{id}: {} {}", r.status, r.text());
        }
        r.json()
    }

    /// The health state (`up`, `down`, `unknown`) router `i` shows for edge `name`.
    pub fn edge_state(&self, i: usize, name: &str) -> anyhow::Result<String> {
        let v = self.edge_view(i, name)?;
        v.get("state")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| anyhow!("no `state` in {v}"))
    }

    /// Wait until every router shows every edge `up`.
    pub fn wait_all_up(&self, timeout: Duration) -> anyhow::Result<()> {
        eventually("every router shows every edge up", timeout, || {
            for i in 0..self.routers.len() {
                for e in &self.edges {
                    let st = self.edge_state(i, &e.plan.id)?;
                    if st != "up" {
                        bail!("router {i} shows {} as {st}", e.plan.id);
                    }
                }
            }
            Ok(())
        })
    }

    // ---------------------------------------------------------------- lifecycle

    /// SIGKILL the edge (no drain). Its log is kept for failure reports.
    pub fn kill_edge(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.edge_index(name)?;
        if let Some(mut p) = self.edges[i].process.take() {
            p.kill();
            self.retired.push(p);
        }
        Ok(())
    }

    /// Send SIGTERM to the edge (graceful drain); see [`Fleet::wait_edge_exit`].
    pub fn sigterm_edge(&self, name: &str) -> anyhow::Result<()> {
        self.signal_edge(name, Signal::TERM)
    }

    /// Send any signal to the edge (SIGSTOP makes it hang: the kernel still accepts TCP
    /// connections, nothing answers; SIGCONT resumes it).
    pub fn signal_edge(&self, name: &str, sig: Signal) -> anyhow::Result<()> {
        let i = self.edge_index(name)?;
        self.edges[i]
            .process
            .as_ref()
            .ok_or_else(|| anyhow!("edge {name} is not running"))?
            .signal(sig)
    }

    /// Wait for the edge process to exit; returns whether it exited successfully.
    pub fn wait_edge_exit(&mut self, name: &str, timeout: Duration) -> anyhow::Result<bool> {
        let i = self.edge_index(name)?;
        let mut p = self.edges[i]
            .process
            .take()
            .ok_or_else(|| anyhow!("edge {name} is not running"))?;
        let r = p.wait_exit(timeout);
        let ok = r.as_ref().map(|s| s.success()).unwrap_or(false);
        if r.is_err() {
            self.edges[i].process = Some(p);
            r?;
        } else {
            self.retired.push(p);
        }
        Ok(ok)
    }

    /// (Re)start the edge on the same addresses with the same config and cache directory:
    /// kills it first if it is still running, then waits for `ready`.
    pub fn restart_edge(&mut self, name: &str) -> anyhow::Result<()> {
        let i = self.edge_index(name)?;
        if let Some(mut p) = self.edges[i].process.take() {
            p.kill();
            self.retired.push(p);
        }
        let p = self.on_its_addresses(|f| f.spawn_edge(i))?;
        self.edges[i].process = Some(p);
        Ok(())
    }

    /// [`start_on_its_ports`] for a fleet process (`spawn`), ready when it logs `ready`.
    fn on_its_addresses(
        &mut self,
        spawn: impl Fn(&Self) -> anyhow::Result<Process>,
    ) -> anyhow::Result<Process> {
        let mut retired = std::mem::take(&mut self.retired);
        let p = start_on_its_ports(
            || spawn(self),
            |p| p.wait_ready(READY_TIMEOUT),
            &mut retired,
        );
        self.retired = retired;
        p
    }

    /// SIGKILL router `i`.
    pub fn kill_router(&mut self, i: usize) {
        if let Some(mut p) = self.routers[i].process.take() {
            p.kill();
            self.retired.push(p);
        }
    }

    /// Send a signal to router `i` (SIGHUP = reload).
    pub fn signal_router(&self, i: usize, sig: Signal) -> anyhow::Result<()> {
        self.routers[i]
            .process
            .as_ref()
            .ok_or_else(|| anyhow!("router {i} is not running"))?
            .signal(sig)
    }

    /// Router `i`'s config file.
    pub fn router_config_path(&self, i: usize) -> &std::path::Path {
        &self.routers[i].config_path
    }

    /// Rewrite router `i`'s config file: the fleet's router config plus `extra_toml`
    /// appended (e.g. a `[[zones.records]]` table, added to the last zone). Takes effect on
    /// a reload: [`Fleet::signal_router`] with SIGHUP, or `POST /api/v1/reload`.
    pub fn rewrite_router_config(&self, i: usize, extra_toml: &str) -> anyhow::Result<()> {
        let plans: Vec<EdgePlan> = self.edges.iter().map(|e| e.plan.clone()).collect();
        let r = &self.routers[i];
        let mut text = config::router_toml(&self.spec, &plans, r.dns_udp, r.admin);
        text.push('\n');
        text.push_str(extra_toml);
        std::fs::write(&r.config_path, text)?;
        Ok(())
    }

    /// (Re)start router `i` on the addresses it had (kills it first if running).
    pub fn restart_router(&mut self, i: usize) -> anyhow::Result<()> {
        self.kill_router(i);
        let plans: Vec<EdgePlan> = self.edges.iter().map(|e| e.plan.clone()).collect();
        let r = &self.routers[i];
        let text = config::router_toml(&self.spec, &plans, r.dns_udp, r.admin);
        std::fs::write(&r.config_path, text)?;
        let path = r.config_path.clone();
        let p = self.on_its_addresses(|f| f.spawn_router(i, &path))?;
        self.routers[i].process = Some(p);
        Ok(())
    }

    /// Stop everything gracefully: SIGTERM to edges and routers, wait up to the shutdown
    /// grace (+2 s), then kill whatever is left.
    pub fn stop(mut self) {
        let grace = self.spec.shutdown_grace + Duration::from_secs(2);
        let procs = self
            .edges
            .iter_mut()
            .filter_map(|e| e.process.as_mut())
            .chain(self.routers.iter_mut().filter_map(|r| r.process.as_mut()));
        let mut running: Vec<&mut Process> = procs.collect();
        for p in &running {
            let _ = p.signal(Signal::TERM);
        }
        for p in &mut running {
            let _ = p.wait_exit(grace);
        }
    }
}

/// A fresh random 32-byte URL-signing key, base64url without padding.
fn demo_signing_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
