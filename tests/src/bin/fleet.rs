//! `fleet`: the whole CDN on loopback, for trying it by hand.
//!
//! `cargo run --release --bin fleet` builds the release `dns-router` and `edge`
//! if needed, then starts the demo origin (127.0.0.1:8080), the router (DNS UDP+TCP on
//! 127.0.0.1:8553, admin API on 127.0.0.1:8053) and three edges (us-east 127.0.1.1:8081,
//! eu-west 127.0.2.1:8081, ap-northeast 127.0.3.1:8081; admin on port 9081 of the same IPs),
//! prints commands to try, and stops everything on Ctrl-C. `--routers 2` adds a second router
//! (127.0.0.1:8554, admin 127.0.0.1:8054); `--bus nats` runs drains, purges and reports over a
//! `nats-server` (from PATH) with JetStream instead of direct HTTP.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use cdn_tests::fleet::spec::{self, DEMO_NETWORKS};
use cdn_tests::fleet::{Fleet, FleetSpec, SERVICE};
use cdn_tests::harness::binary;
use cdn_tests::harness::process::Echo;
use clap::Parser;

/// Start the local CDN fleet: demo origin + dns-router + three edges on loopback.
#[derive(Debug, Parser)]
#[command(name = "fleet", version)]
struct Args {
    /// Router DNS address (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:8553")]
    dns: SocketAddr,
    /// Router admin API address.
    #[arg(long, default_value = "127.0.0.1:8053")]
    admin: SocketAddr,
    /// Demo origin address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    origin: SocketAddr,
    /// Edge client HTTP port (on each edge's IP).
    #[arg(long, default_value_t = 8081)]
    edge_port: u16,
    /// Edge admin port (on each edge's IP).
    #[arg(long, default_value_t = 9081)]
    edge_admin_port: u16,
    /// Edge client HTTPS port (on each edge's IP; certificates from the demo CA
    /// `<workdir>/ca.pem`).
    #[arg(long, default_value_t = 8443)]
    edge_https_port: u16,
    /// Move an edge: `REGION=IP`, e.g. `--edge-ip us-east=127.0.1.1` (repeatable).
    #[arg(long, value_name = "REGION=IP")]
    edge_ip: Vec<String>,
    /// Locate clients with this MaxMind City (or Country) database; the demo map still
    /// decides for its own prefixes.
    #[arg(long, value_name = "FILE")]
    geo_database: Option<PathBuf>,
    /// The operator token (router `operate` role, edge purge); each edge reports with
    /// `<token>-report-<edge id>`, a `report` credential of its own.
    #[arg(long, default_value = spec::DEMO_TOKEN)]
    token: String,
    /// Directory for configs and edge caches (kept); default a temporary directory.
    #[arg(long, value_name = "DIR")]
    workdir: Option<PathBuf>,
    /// Delay origin responses by its latency profile (p50 1-20 ms … p99 151-500 ms).
    #[arg(long)]
    latency_profile: bool,
    /// Don't run `cargo build` for dns-router and edge first.
    #[arg(long)]
    no_build: bool,
    /// Show every log line of every process (default: warnings and errors only).
    #[arg(long, short)]
    verbose: bool,
    /// Log level of the router and edges.
    #[arg(long, default_value = "info")]
    log_level: String,
    /// Routers to start: the first on --dns/--admin, each next one on the following ports
    /// (the second on 127.0.0.1:8554 and 127.0.0.1:8054), all with the same zone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    routers: u16,
    /// How drains, purges and reports travel: `direct` (HTTP; the single-machine default) or
    /// `nats` (starts `nats-server` from PATH with JetStream, its store in the work dir, and
    /// per-role users; routers and edges get a `[bus]` section).
    #[arg(long, value_enum, default_value_t = Bus::Direct)]
    bus: Bus,
    /// With `--bus nats`: run a JetStream cluster of this many `nats-server` nodes on loopback
    /// (3 survives one node down; the stream and bucket get 3 replicas).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=5))]
    nats_nodes: u16,
    /// Edges per region, on 127.0.R.1 … 127.0.R.N (same ports), clustered into a point of
    /// presence: each key has one owner among them (peer fills).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=9))]
    edges_per_region: u16,
    /// No `[cluster]`: the edges of a region fill from the origin alone (for comparison).
    #[arg(long)]
    no_cluster: bool,
    /// The www host's shield region: edges of the other regions fill their misses through it.
    #[arg(long, value_name = "REGION")]
    shield: Option<String>,
}

/// `--bus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Bus {
    /// Reports pushed over HTTP, purges fanned out over HTTP, drains per router.
    Direct,
    /// NATS JetStream.
    Nats,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if !args.no_build {
        let release = binary::is_release(&binary::profile_dir()?);
        eprintln!(
            "building dns-router and edge ({} profile; a few minutes the first time)…",
            if release { "release" } else { "dev" }
        );
        binary::build(
            &[("cdn-dns-router", "dns-router"), ("cdn-edge", "edge")],
            release,
        )?;
    }

    let mut spec = FleetSpec {
        routers: (0..args.routers)
            .map(|i| {
                let mut dns = args.dns;
                let mut admin = args.admin;
                // Port 0 (any free port) stays 0 for every router.
                if dns.port() != 0 {
                    dns.set_port(dns.port() + i);
                }
                if admin.port() != 0 {
                    admin.set_port(admin.port() + i);
                }
                (dns, admin)
            })
            .collect(),
        bus: args.bus == Bus::Nats,
        nats_nodes: usize::from(args.nats_nodes),
        origin: args.origin,
        origin_latency_profile: args.latency_profile,
        geo_database: args.geo_database.clone(),
        token: args.token.clone(),
        report_interval: Duration::from_secs(1),
        service_ttl: 30,
        edge_workers: 2,
        cache_memory: "128 MiB".into(),
        cache_disk: "256 MiB".into(),
        shutdown_grace: Duration::from_secs(5),
        log_level: args.log_level.clone(),
        workdir: args.workdir.clone(),
        echo: if args.verbose {
            Echo::All
        } else {
            Echo::Problems
        },
        edges_per_region: usize::from(args.edges_per_region),
        no_cluster: args.no_cluster,
        shield: args.shield.clone(),
        ..FleetSpec::default()
    };
    if let Some(s) = &args.shield {
        anyhow::ensure!(
            spec.regions.iter().any(|r| &r.name == s),
            "--shield `{s}`: unknown region (us-east, eu-west, ap-northeast)"
        );
    }
    for r in &mut spec.regions {
        r.http_port = args.edge_port;
        r.admin_port = args.edge_admin_port;
        r.https_port = args.edge_https_port;
    }
    for m in &args.edge_ip {
        let (region, ip) = m
            .split_once('=')
            .with_context(|| format!("--edge-ip `{m}`: expected REGION=IP"))?;
        let ip: Ipv4Addr = ip
            .parse()
            .with_context(|| format!("--edge-ip `{m}`: bad IPv4 address"))?;
        let r = spec
            .regions
            .iter_mut()
            .find(|r| r.name == region)
            .with_context(|| format!("--edge-ip `{m}`: unknown region `{region}`"))?;
        r.ip = ip;
    }

    let fleet = spec.start().context("starting the fleet")?;
    print_tour(&fleet, &args);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sig = rt.block_on(cdn_shared::shutdown::wait_for_signal());
    eprintln!("\n{sig}: stopping the fleet…");
    fleet.stop();
    eprintln!("stopped.");
    Ok(())
}

fn print_tour(fleet: &Fleet, args: &Args) {
    let r = fleet.router(0);
    let dns_port = r.dns_udp.port();
    let dns_ip = r.dns_udp.ip();
    let admin = r.admin;
    let token = fleet.token();
    let us = fleet.edge("us-east");
    let port = us.http_addr().port();
    let mut out = String::new();
    out.push_str(&format!(
        "\nThe CDN fleet is up (configs and caches in {}).\n\n",
        fleet.dir().display()
    ));
    out.push_str(&format!(
        "  origin        http://{}\n",
        fleet.origin().addr()
    ));
    out.push_str(&format!(
        "  dns-router    DNS {} (UDP+TCP), admin http://{admin}\n",
        r.dns_udp
    ));
    for r in fleet.routers().iter().skip(1) {
        out.push_str(&format!(
            "  dns-router {}  DNS {} (UDP+TCP), admin http://{}\n",
            r.index, r.dns_udp, r.admin
        ));
    }
    if let Some(n) = fleet.nats_url() {
        out.push_str(&format!(
            "  nats-server   {n} (JetStream; users and permissions in {})\n",
            fleet.dir().join("nats.conf").display()
        ));
    }
    for e in fleet.edges() {
        out.push_str(&format!(
            "  edge {:<6}   {:<13} http://{}  admin http://{}\n",
            e.id(),
            e.region(),
            e.http_addr(),
            e.admin_addr()
        ));
    }
    if let Some(db) = &args.geo_database {
        out.push_str(&format!("  geo database  {}\n", db.display()));
    }
    out.push_str("\nDemo geo map (client subnet → place):\n");
    for n in DEMO_NETWORKS {
        let place = match n.place {
            spec::Place::Region(r) => r.to_string(),
            spec::Place::Coords(lat, lon) => format!("{lat}, {lon}"),
        };
        out.push_str(&format!("  {:<18} {:<14} {}\n", n.cidr, place, n.what));
    }
    out.push_str("\n1. Nearest edge per client subnet (EDNS Client Subnet):\n");
    for region in ["us-east", "eu-west", "ap-northeast"] {
        if let Some(subnet) = spec::demo_subnet(region) {
            out.push_str(&format!(
                "   dig @{dns_ip} -p {dns_port} {SERVICE} A +subnet={subnet}    # → {}\n",
                fleet.edge(region).ip()
            ));
        }
    }
    out.push_str(&format!(
        "   dig @{dns_ip} -p {dns_port} {} TXT              # truncated over UDP, dig retries over TCP\n",
        spec::BIG_TXT
    ));
    out.push_str(&format!(
        "\n2. A cached fetch through the us-east edge (run it twice: MISS, then HIT):\n   \
         curl -sv --resolve {SERVICE}:{port}:{} http://{SERVICE}:{port}/obj/1k/hello -o /dev/null 2>&1 | grep -i cache-status\n",
        us.ip()
    ));
    out.push_str(&format!(
        "   curl -s http://{}/_stats                       # origin request counts\n",
        fleet.origin().addr()
    ));
    out.push_str(&format!(
        "\n3. Why that answer (the explain API):\n   \
         curl -s 'http://{admin}/api/v1/explain?name={SERVICE}&ecs=81.2.69.0/24'\n   \
         curl -s http://{admin}/api/v1/edges\n"
    ));
    out.push_str(&format!(
        "\n4. Drain the us-east edge, see its clients move, undrain:\n   \
         curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/api/v1/edges/{id}/drain\n   \
         dig @{dns_ip} -p {dns_port} {SERVICE} A +subnet=8.8.8.0/24 +short\n   \
         curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/api/v1/edges/{id}/undrain\n",
        id = us.id()
    ));
    out.push_str(&format!(
        "\n5. Purge everywhere:\n   \
         curl -s -X POST -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\\n     \
         -d '{{\"urls\":[\"http://{SERVICE}/obj/1k/hello\"]}}' http://{admin}/api/v1/purge\n"
    ));
    out.push_str(&format!(
        "\n6. The status page (map, edge table, explain, drain and purge; token {token}):\n   \
         open http://{admin}/\n"
    ));
    if let (Some(r1), true) = (fleet.routers().get(1), fleet.nats_url().is_some()) {
        out.push_str(&format!(
            "\n7. The fleet bus: drain through router 0, router 1 follows within a second:\n   \
             curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/api/v1/edges/{id}/drain\n   \
             dig @{ip} -p {port1} {SERVICE} A +subnet=8.8.8.0/24 +short\n   \
             curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/api/v1/edges/{id}/undrain\n",
            id = us.id(),
            ip = r1.dns_udp.ip(),
            port1 = r1.dns_udp.port(),
        ));
    }
    out.push_str(&format!(
        "\nTenant rules (www: CORS + X-Served-By; {secure}: signed URLs; {img}: 20 req/s burst 40, KP refused):\n   \
         curl -s -o /dev/null -D - --resolve {SERVICE}:{port}:{ip} http://{SERVICE}:{port}/obj/1k/c | grep -iE 'access-control|x-served-by'\n   \
         curl -si --resolve {secure}:{port}:{ip} http://{secure}:{port}/obj/1k/s | head -1     # 403: not signed\n   \
         curl -si --resolve {secure}:{port}:{ip} \"$(target/release/edge sign-url --key-name {kn} --key-file {key} --ttl 10m http://{secure}:{port}/obj/1k/s)\" | head -1\n   \
         curl -si --interface 127.0.99.1 --resolve {img}:{port}:{ip} http://{img}:{port}/obj/1k/i | head -1   # 403: 127.0.99.0/24 is KP\n   \
         for i in $(seq 60); do curl -s -o /dev/null -w '%{{http_code}} ' --resolve {img}:{port}:{ip} http://{img}:{port}/obj/1k/i; done; echo   # 200 ×40…, then 429\n",
        secure = spec::SECURE_SERVICE,
        img = spec::IMG_HOST,
        kn = spec::SIGNING_KEY_NAME,
        key = fleet.signing_key_path().display(),
        ip = us.ip(),
    ));
    let https = us.https;
    out.push_str(&format!(
        "\nHTTPS on port {hp} (certificates by SNI from the demo CA {ca}; {login}: plain HTTP → 308, HSTS):\n   \
         curl -sv --cacert {ca} --resolve {SERVICE}:{hp}:{ip} https://{SERVICE}:{hp}/obj/1k/hello -o /dev/null 2>&1 | grep -iE 'subject:|ALPN|strict-transport|x-cache'\n   \
         curl -s -o /dev/null -D - --resolve {login}:{port}:{ip} http://{login}:{port}/obj/1k/hello | grep -iE '^HTTP|^location'\n   \
         curl -s -o /dev/null -D - --cacert {ca} --resolve {login}:{hp}:{ip} https://{login}:{hp}/obj/1k/hello | grep -iE '^HTTP|^strict'\n",
        hp = https.port(),
        ip = https.ip(),
        ca = fleet.ca_path().display(),
        login = cdn_tests::fleet::tls::HTTPS_ONLY_HOST,
    ));
    if cdn_tests::fleet::pop::clustered(fleet.spec()) {
        pop_tour(fleet, &mut out);
    }
    out.push_str("\nCtrl-C stops everything.\n");
    println!("{out}");
}

/// The PoP / shield step of the tour (with `--edges-per-region` > 1 or `--shield`).
fn pop_tour(fleet: &Fleet, out: &mut String) {
    let origin = fleet.origin().addr();
    let curl = |e: &cdn_tests::fleet::EdgeNode, path: &str| {
        format!(
            "curl -s -o /dev/null -D - --resolve {SERVICE}:{p}:{ip} http://{SERVICE}:{p}{path} | grep -iE '^cache-status|^via'",
            p = e.http_addr().port(),
            ip = e.ip(),
        )
    };
    let stats = format!("curl -s http://{origin}/_stats | grep -o '\"/obj/1k/pop\":[0-9]*'");
    let us: Vec<&cdn_tests::fleet::EdgeNode> = fleet
        .edges()
        .iter()
        .filter(|e| e.region() == "us-east")
        .collect();
    if us.len() > 1 {
        out.push_str("\n8. A point of presence: the us-east edges share one cache (fwd=peer: filled from the key's owner, whose id leads Via); the origin sees one request:\n");
        for e in &us {
            out.push_str(&format!("   {}\n", curl(e, "/obj/1k/pop")));
        }
        out.push_str(&format!("   {stats}      # \"/obj/1k/pop\":1\n"));
    }
    if let Some(s) = &fleet.spec().shield {
        out.push_str(&format!(
            "\n9. Tiered caching: www's misses elsewhere fill through the {s} PoP (fwd=shield); three regions, one origin request:\n"
        ));
        for region in ["us-east", "eu-west", "ap-northeast"] {
            out.push_str(&format!(
                "   {}\n",
                curl(fleet.edge(region), "/obj/1k/pop-tier")
            ));
        }
        out.push_str(&format!(
            "   curl -s http://{origin}/_stats | grep -o '\"/obj/1k/pop-tier\":[0-9]*'      # \"/obj/1k/pop-tier\":1\n"
        ));
    }
}
